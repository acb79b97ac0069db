package media

import (
	"encoding/binary"
	"iter"
	"time"

	"github.com/pion/interceptor/pkg/twcc"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// ReceptionStats are one received RTP stream's statistics for its
// receiver reports (RFC 3550 appendix A.3 and A.8): the SFU's of what
// each publisher sends it, and the load generator's of what its
// subscribers receive. Not safe for concurrent use.
type ReceptionStats struct {
	// ClockRate is the stream's RTP clock, Hz, which the jitter is
	// counted in.
	ClockRate float64

	started       bool
	baseSeq       uint32 // extended
	maxSeq        uint16
	cycles        uint32 // sequence number wrap-arounds, << 16
	received      uint32
	expectedPrior uint32
	receivedPrior uint32
	transit       float64 // the last packet's, in clock ticks
	jitter        float64 // in clock ticks
}

// Add counts one packet, its sequence number and RTP timestamp, which
// arrived at arrival (on any clock that only moves forward).
func (s *ReceptionStats) Add(seq uint16, timestamp uint32, arrival time.Duration) {
	if !s.started {
		s.started = true
		s.baseSeq, s.maxSeq = uint32(seq), seq
	} else if d := seq - s.maxSeq; d != 0 && d < 0x8000 {
		if seq < s.maxSeq {
			s.cycles += 1 << 16
		}
		s.maxSeq = seq
	}
	s.received++
	// Interarrival jitter: the change in transit time, in clock ticks.
	transit := arrival.Seconds()*s.ClockRate - float64(timestamp)
	if s.received > 1 {
		d := transit - s.transit
		if d < 0 {
			d = -d
		}
		s.jitter += (d - s.jitter) / 16
	}
	s.transit = transit
}

// Started reports whether a packet was counted.
func (s *ReceptionStats) Started() bool { return s.started }

// Received is the number of packets counted.
func (s *ReceptionStats) Received() uint32 { return s.received }

// Report is the stream's reception report block, as stream ssrc, and
// starts the next interval of its fraction lost.
func (s *ReceptionStats) Report(ssrc uint32) rtcp.ReceptionReport {
	extMax := s.cycles | uint32(s.maxSeq)
	expected := extMax - s.baseSeq + 1
	lost := int64(expected) - int64(s.received)
	lost = min(max(lost, -0x800000), 0x7fffff) // 24 bits, signed
	expInterval := expected - s.expectedPrior
	recInterval := s.received - s.receivedPrior
	s.expectedPrior, s.receivedPrior = expected, s.received
	var fraction uint8
	if expInterval > 0 && expInterval > recInterval {
		fraction = uint8((uint64(expInterval-recInterval) << 8) / uint64(expInterval))
	}
	return rtcp.ReceptionReport{
		SSRC:               ssrc,
		FractionLost:       fraction,
		TotalLost:          uint32(lost) & 0xffffff,
		LastSequenceNumber: extMax,
		Jitter:             uint32(s.jitter),
	}
}

// FeedbackInterval is how often a receiver sends transport-wide
// feedback, as browsers do (libwebrtc: 50-250 ms); receiver reports go
// every reportInterval.
const FeedbackInterval = feedbackInterval

// ReceiverFeedback is what a receiver tells a sender of the packets it
// receives: transport-wide feedback (the format pion's recorder builds)
// every FeedbackInterval, and a receiver report on each stream every
// second. The SFU's to each publisher, and the load generator's
// subscribers' to the SFU. Not safe for concurrent use.
type ReceiverFeedback struct {
	ssrc       uint32 // the receiver's, in its RTCP
	rec        *twcc.Recorder
	lastReport time.Time
}

// NewReceiverFeedback returns the feedback of a receiver whose RTCP
// carries SSRC ssrc.
func NewReceiverFeedback(ssrc uint32) *ReceiverFeedback {
	return &ReceiverFeedback{ssrc: ssrc, rec: twcc.NewRecorder(ssrc)}
}

// Record counts one packet, with header h, of the stream whose
// statistics are stats, which arrived at arrival (since any fixed
// start); twccID is the transport-wide sequence number's header
// extension ID, 0 for a stream without one. It allocates nothing.
func (f *ReceiverFeedback) Record(stats *ReceptionStats, h *rtp.Header, twccID uint8, arrival time.Duration) {
	if twccID != 0 {
		if ext := h.GetExtension(twccID); len(ext) >= 2 {
			f.rec.Record(h.SSRC, binary.BigEndian.Uint16(ext), arrival.Microseconds())
		}
	}
	stats.Add(h.SequenceNumber, h.Timestamp, arrival)
}

// Collect appends to pkts the transport-wide feedback gathered since
// the last call and, once the report interval has passed since the last
// reports, the receiver reports of streams (SSRC, statistics), as of now.
func (f *ReceiverFeedback) Collect(pkts []rtcp.Packet, now time.Time, streams iter.Seq2[uint32, *ReceptionStats]) []rtcp.Packet {
	pkts = append(pkts, f.rec.BuildFeedbackPacket()...)
	if now.Sub(f.lastReport) < reportInterval-feedbackInterval/2 {
		return pkts
	}
	f.lastReport = now
	var blocks []rtcp.ReceptionReport
	for ssrc, s := range streams {
		if s.Started() {
			blocks = append(blocks, s.Report(ssrc))
		}
	}
	return ReceiverReports(pkts, f.ssrc, blocks)
}

// ReceiverReports appends to pkts the receiver reports of sender that
// carry blocks: as many as it takes, since 31 report blocks fit one.
func ReceiverReports(pkts []rtcp.Packet, sender uint32, blocks []rtcp.ReceptionReport) []rtcp.Packet {
	for len(blocks) > 31 {
		pkts = append(pkts, &rtcp.ReceiverReport{SSRC: sender, Reports: blocks[:31]})
		blocks = blocks[31:]
	}
	if len(blocks) > 0 {
		pkts = append(pkts, &rtcp.ReceiverReport{SSRC: sender, Reports: blocks})
	}
	return pkts
}

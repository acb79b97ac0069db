package media

import (
	"time"

	"github.com/pion/rtcp"
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

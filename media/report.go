package media

import (
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
)

// Sender reports (RFC 3550 6.4.1) tell a subscriber's browser which
// wall-clock time each stream's RTP timestamps mean, so that it can play
// a publisher's audio and video in sync, and how much was sent. The SFU
// sends them itself, once a second per subscriber connection, from what
// each downTrack notes as it writes: pion's report interceptor did the
// same with a lock and a clock reading in the path of every packet.

// reportInterval is how often a subscriber connection gets its sender
// reports.
const reportInterval = time.Second

// reportsPerPacket bounds a compound RTCP packet: 28 bytes per sender
// report keeps 40 of them under a 1200-byte datagram.
const reportsPerPacket = 40

// ntpEpochOffset is the seconds from 1900 (NTP's epoch) to 1970.
const ntpEpochOffset = 2208988800

// NTPTime converts Unix nanoseconds to the 64-bit NTP format of sender
// reports.
func NTPTime(unixNano int64) uint64 {
	sec := uint64(unixNano/int64(time.Second)) + ntpEpochOffset
	frac := uint64(unixNano%int64(time.Second)) << 32 / uint64(time.Second)
	return sec<<32 | frac
}

// noteClock records, under wmu after a write, the outgoing stream's newest
// timestamp and when its packet arrived, in one word: the timestamp in
// the high 32 bits, the arrival in microseconds since d was created in
// the low 32 (wrapping every 71 minutes, which the reader's difference
// survives).
func (d *downTrack) noteClock() {
	at := uint32((d.rw.lastAt - d.created) / int64(time.Microsecond))
	d.clock.Store(uint64(d.rw.lastOutTS)<<32 | uint64(at))
}

// senderReport describes the stream d sends at now (Unix nanoseconds):
// its RTP time then, extrapolated from the newest packet written, and
// the packets and payload bytes sent. ok is false before the first
// packet.
func (d *downTrack) senderReport(now int64) (sr rtcp.SenderReport, ok bool) {
	v := d.clock.Load()
	if v == 0 || !d.bound.Load() {
		return sr, false
	}
	ts, at := uint32(v>>32), uint32(v)
	elapsed := uint32((now-d.created)/int64(time.Microsecond)) - at
	ticks := uint32(uint64(elapsed) * uint64(d.up.codec.ClockRate) / 1_000_000)
	return rtcp.SenderReport{
		SSRC:        d.ssrcA.Load(),
		NTPTime:     NTPTime(now),
		RTPTime:     ts + ticks,
		PacketCount: uint32(d.sent.Load()),
		OctetCount:  uint32(d.sentBytes.Load()),
	}, true
}

// sendReports writes the sender reports of every stream p receives,
// paused ones included (their clocks still run), to its sub connection.
func (p *Peer) sendReports() {
	now := time.Now().UnixNano()
	var pkts []rtcp.Packet
	p.mu.Lock()
	sub := p.sub
	for _, set := range []map[*upTrack]subscription{p.subs, p.paused} {
		for _, s := range set {
			if s.down == nil {
				continue
			}
			if sr, ok := s.down.senderReport(now); ok {
				pkts = append(pkts, &sr)
			}
		}
	}
	p.mu.Unlock()
	if sub == nil || sub.ConnectionState() != webrtc.PeerConnectionStateConnected {
		return
	}
	for len(pkts) > 0 {
		n := min(len(pkts), reportsPerPacket)
		if err := sub.WriteRTCP(pkts[:n]); err != nil {
			return
		}
		pkts = pkts[n:]
	}
}

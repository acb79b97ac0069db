package media

import (
	"encoding/binary"
	"math/bits"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// The SFU answers its subscribers' NACKs itself, instead of with pion's
// NACK responder interceptor, which allocates for every packet it caches.
// Each published video layer keeps its recent packets as received, once
// for all its subscribers (packetCache); each video downTrack keeps, per
// sequence number it sent, which of those packets it was and the
// timestamp it carried (sentPacket). A
// retransmission goes out as RTX (RFC 4588) when the subscriber
// negotiated it, else as the original packet again; either way it is
// written by the downTrack's own goroutine, under the same lock and the
// same "stopped" and "paused" checks as new packets, so that
// Allow(sub, pub, false) also ends retransmissions.

const (
	// sentCacheSize is how many recent packets a video layer keeps, and
	// a downTrack remembers having sent, for retransmission: about two
	// seconds at 1 Mbit/s. A power of two.
	sentCacheSize = 256
	// resendInterval is the shortest time between two retransmissions of
	// one packet (a NACK repeated before the first answer arrived).
	resendInterval = 30 * time.Millisecond
	// maxPendingNacks bounds the sequence numbers waiting to be resent.
	maxPendingNacks = 64
)

// sentPacket is one packet written to the subscriber: its header there,
// and which packet of which layer it carried (its payload is in that
// layer's packetCache).
type sentPacket struct {
	valid    bool
	marker   bool
	resends  uint8
	layer    uint8
	seq      uint16 // as sent
	orig     uint16 // as received from the publisher
	ts       uint32
	resentAt int64
}

// packetCache keeps a published video layer's recent packets as they
// arrived, for every subscriber's retransmissions: one copy per packet,
// not one per subscriber (which cost 300 KB per subscriber track). The
// layer's read loop writes; subscribers' writer goroutines read.
type packetCache struct {
	mu      sync.RWMutex
	entries [sentCacheSize]cachedPacket
}

type cachedPacket struct {
	valid   bool
	seq     uint16
	payload []byte
}

// put keeps a packet, replacing the one sentCacheSize before it.
func (c *packetCache) put(seq uint16, payload []byte) {
	c.mu.Lock()
	e := &c.entries[seq%sentCacheSize]
	e.valid, e.seq = true, seq
	e.payload = append(e.payload[:0], payload...)
	c.mu.Unlock()
}

// copyTo copies packet seq's payload into buf, and reports false if it is
// no longer kept.
func (c *packetCache) copyTo(buf []byte, seq uint16) (int, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e := &c.entries[seq%sentCacheSize]
	if !e.valid || e.seq != seq {
		return 0, false
	}
	return copy(buf, e.payload), true
}

// rawWriters maps a sender's id to the RTP writer at the bottom of its
// interceptor chain (just above SRTP). Retransmissions are written there,
// so that they do not count as new packets in the sender reports.
type rawWriters struct {
	mu sync.Mutex
	m  map[string]interceptor.RTPWriter
}

func (r *rawWriters) get(id string) interceptor.RTPWriter {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.m[id]
}

// rawWriterInterceptor records each local stream's writer in rawWriters.
// It must be registered first, so that it binds closest to SRTP.
type rawWriterInterceptor struct {
	interceptor.NoOp
	writers *rawWriters
}

func (f *rawWriterInterceptor) NewInterceptor(string) (interceptor.Interceptor, error) { return f, nil }

func (f *rawWriterInterceptor) BindLocalStream(info *interceptor.StreamInfo, w interceptor.RTPWriter) interceptor.RTPWriter {
	f.writers.mu.Lock()
	defer f.writers.mu.Unlock()
	f.writers.m[info.ID] = w
	return w
}

func (f *rawWriterInterceptor) UnbindLocalStream(info *interceptor.StreamInfo) {
	f.writers.mu.Lock()
	defer f.writers.mu.Unlock()
	delete(f.writers.m, info.ID)
}

func (f *rawWriterInterceptor) Close() error { return nil }

// rtxPayloadType finds the RTX payload type paired with pt (apt=pt).
func rtxPayloadType(codecs []webrtc.RTPCodecParameters, pt webrtc.PayloadType) uint8 {
	for _, c := range codecs {
		if !strings.EqualFold(c.MimeType, webrtc.MimeTypeRTX) {
			continue
		}
		for _, kv := range strings.Split(c.SDPFmtpLine, ";") {
			k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
			if k == "apt" && v == strconv.Itoa(int(pt)) {
				return uint8(c.PayloadType)
			}
		}
	}
	return 0
}

// nack queues the sequence numbers a subscriber reports lost, for run to
// resend. It is called by the RTCP reader and never blocks.
func (d *downTrack) nack(n *rtcp.TransportLayerNack) {
	// Counted before anything is ignored: the metric is what subscribers
	// asked for, whatever the SFU could answer.
	var asked uint64
	for _, pair := range n.Nacks {
		asked += 1 + uint64(bits.OnesCount16(uint16(pair.LostPackets)))
	}
	d.nacksIn.Add(asked)
	if d.cache == nil {
		return
	}
	d.qmu.Lock()
	if d.paused {
		d.qmu.Unlock()
		return
	}
	for _, pair := range n.Nacks {
		d.addNackLocked(pair.PacketID)
		for i := range uint16(16) {
			if pair.LostPackets&(1<<i) != 0 {
				d.addNackLocked(pair.PacketID + i + 1)
			}
		}
	}
	d.qmu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (d *downTrack) addNackLocked(seq uint16) {
	if d.nnacks < len(d.nacks) {
		d.nacks[d.nnacks] = seq
		d.nnacks++
	}
}

// resendPending retransmits the packets NACKed since the last call. It
// runs on the writer goroutine.
func (d *downTrack) resendPending() {
	var seqs [maxPendingNacks]uint16
	d.qmu.Lock()
	n := copy(seqs[:], d.nacks[:d.nnacks])
	d.nnacks = 0
	d.qmu.Unlock()
	if n == 0 {
		return
	}
	now := time.Now().UnixNano()
	d.wmu.Lock()
	defer d.wmu.Unlock()
	if d.stopped.Load() || d.writer == nil || !d.bound.Load() || d.isPaused() {
		return
	}
	for _, seq := range seqs[:n] {
		d.resendLocked(seq, now)
	}
}

// rememberLocked notes a packet just written: its header as sent, and
// which packet of which layer it was. wmu must be held.
func (d *downTrack) rememberLocked(seq uint16, ts uint32, marker bool, m *packetMeta) {
	e := &d.cache[seq%sentCacheSize]
	e.valid, e.seq, e.ts, e.marker, e.resentAt, e.resends = true, seq, ts, marker, 0, 0
	e.orig, e.layer = m.seq, m.layer
}

// resendLocked retransmits one cached packet. wmu must be held.
func (d *downTrack) resendLocked(seq uint16, now int64) {
	e := &d.cache[seq%sentCacheSize]
	if !e.valid || e.seq != seq {
		d.nackMissed.Add(1)
		return
	}
	if now-e.resentAt < int64(resendInterval) || e.resends >= maxResends {
		return
	}
	l := d.up.layer(int(e.layer))
	if l == nil || l.cache == nil {
		d.nackMissed.Add(1)
		return
	}
	// The payload goes after the two bytes RTX puts first.
	n, ok := l.cache.copyTo(d.rtxBuf[2:], e.orig)
	if !ok {
		d.nackMissed.Add(1)
		return
	}
	e.resentAt = now
	e.resends++
	if d.raw == nil {
		d.raw = d.raws.get(d.senderID)
	}
	h := &d.rtxHdr
	*h = rtp.Header{Version: 2, Marker: e.marker, Timestamp: e.ts, CSRC: h.CSRC[:0], Extensions: h.Extensions[:0]}
	payload := d.rtxBuf[2 : 2+n]
	if d.rtxSSRC != 0 && d.rtxPT != 0 {
		h.SSRC, h.PayloadType, h.SequenceNumber = d.rtxSSRC, d.rtxPT, d.rtxSeq
		d.rtxSeq++
		binary.BigEndian.PutUint16(d.rtxBuf[:2], seq)
		payload = d.rtxBuf[:2+n]
	} else {
		h.SSRC, h.PayloadType, h.SequenceNumber = d.ssrc, d.pt, seq
		d.handBack() // pion's path encrypts the stream's own SSRC
	}
	var err error
	if d.raw != nil {
		_, err = d.raw.Write(h, payload, nil)
	} else {
		_, err = d.writer.WriteRTP(h, payload)
	}
	if err == nil {
		d.resent.Add(1)
	}
}

// The SFU also NACKs its publishers itself, instead of with pion's NACK
// generator interceptor. pion's generator watches the media stream's
// packets only: a packet repaired through RTX never counts as received,
// so it NACKs it again every 100 ms until it leaves its window, and a
// phone on a lossy uplink retransmits every lost packet dozens of times.
// The upTrack's read loop sees repaired packets as they are delivered,
// so its generator stops asking as soon as one arrives.

const (
	// nackWindow is how many recent sequence numbers a publisher's
	// generator tracks. A power of two.
	nackWindow = 512
	// nackTick is how often missing packets are looked for; nackRetry how
	// long to wait for a retransmission before asking again, at most
	// nackTries times.
	nackTick  = 20 * time.Millisecond
	nackRetry = 100 * time.Millisecond
	nackTries = 10
	// maxResends bounds the retransmissions of one packet to a subscriber.
	maxResends = 6
)

type nackSlot struct {
	seq      uint16
	missing  bool
	tries    uint8
	lastNack int64
}

// nackGenerator tracks which of a publisher's packets arrived.
type nackGenerator struct {
	mu      sync.Mutex
	started bool
	hi      uint16
	slots   [nackWindow]nackSlot
	// missing is how many slots are missing: due scans the window only
	// when some are, so a clean stream's tick costs nothing.
	missing int
}

// set writes slot i, keeping the missing count.
func (g *nackGenerator) set(i uint16, sl nackSlot) {
	old := &g.slots[i%nackWindow]
	if old.missing {
		g.missing--
	}
	if sl.missing {
		g.missing++
	}
	*old = sl
}

// observe records an arrival, and reports whether it showed packets
// missing (a gap before it). It allocates nothing.
func (g *nackGenerator) observe(seq uint16) (gap bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.started {
		g.started, g.hi = true, seq
		g.set(seq, nackSlot{seq: seq})
		return false
	}
	ahead := seq - g.hi
	switch {
	case ahead == 0:
		return false
	case ahead < 0x8000:
		if ahead >= nackWindow {
			g.slots = [nackWindow]nackSlot{} // a jump: nothing to recover
			g.missing = 0
		} else {
			for s := g.hi + 1; s != seq; s++ {
				g.set(s, nackSlot{seq: s, missing: true})
				gap = true
			}
		}
		g.set(seq, nackSlot{seq: seq})
		g.hi = seq
		return gap
	default:
		if sl := g.slots[seq%nackWindow]; sl.seq == seq && sl.missing {
			sl.missing = false
			g.set(seq, sl)
		}
		return false
	}
}

// pending reports whether packets are missing.
func (g *nackGenerator) pending() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.missing > 0
}

// due appends to out the sequence numbers to NACK now.
func (g *nackGenerator) due(now int64, out []uint16) []uint16 {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.missing == 0 {
		return out
	}
	for i := range g.slots {
		sl := &g.slots[i]
		if !sl.missing || now-sl.lastNack < int64(nackRetry) {
			continue
		}
		if sl.tries >= nackTries || g.hi-sl.seq >= nackWindow {
			sl.missing = false
			g.missing--
			continue
		}
		sl.tries++
		sl.lastNack = now
		out = append(out, sl.seq)
	}
	return out
}

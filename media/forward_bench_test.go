package media

import (
	"fmt"
	"log/slog"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// sinkWriter is the end of the SFU's own forwarding path: where pion's
// interceptors and SRTP would take over. It counts what it is given.
type sinkWriter struct {
	packets atomic.Uint64
	last    atomic.Uint32 // last sequence number, to keep the header live
}

func (w *sinkWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	w.last.Store(uint32(h.SequenceNumber))
	w.packets.Add(1)
	return len(payload), nil
}

func (w *sinkWriter) Write(b []byte) (int, error) { return len(b), nil }

// benchPacket is a typical video packet as the read loop receives it:
// a header extension and a 1100-byte VP8 payload.
func benchPacket(tb testing.TB) []byte {
	tb.Helper()
	p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: 1, Timestamp: 3000, SSRC: 1234}, Payload: make([]byte, 1100)}
	p.Payload[0] = 0x10
	if err := p.Header.SetExtension(3, []byte{1, 2}); err != nil {
		tb.Fatal(err)
	}
	raw, err := p.Marshal()
	if err != nil {
		tb.Fatal(err)
	}
	return raw
}

func benchUpTrack(kind webrtc.RTPCodecType) *upTrack {
	codec := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}
	if kind == webrtc.RTPCodecTypeAudio {
		codec = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}
	}
	up := newUpTrack("pub-video", "pub", kind, codec, slog.New(slog.DiscardHandler))
	up.layers[0].Store(up.newLayer(0, "", nil, 1234))
	return up
}

// bindSink binds d to w as pion's Bind would.
func bindSink(d *downTrack, w *sinkWriter, ssrc uint32) {
	d.wmu.Lock()
	d.writer, d.ssrc, d.pt = w, ssrc, 100
	d.wmu.Unlock()
	d.ssrcA.Store(ssrc)
	d.bound.Store(true)
}

// BenchmarkForward measures the SFU's per-packet path: parse the packet
// once (upTrack.handle), queue it for every subscriber, and on each
// subscriber's writer goroutine (udp-inline: on the publisher's read
// loop, as over UDP) rewrite SSRC, payload type, sequence number and
// timestamp and write it. One op is one packet forwarded to all
// subscribers. It must report 0 allocs/op.
func BenchmarkForward(b *testing.B) {
	for _, c := range []struct {
		subs   int
		inline bool
	}{{1, false}, {4, false}, {10, false}, {16, false}, {1, true}, {4, true}, {10, true}, {16, true}} {
		subs := c.subs
		name := fmt.Sprintf("subs=%d", subs)
		if c.inline {
			name += "/udp-inline"
		}
		b.Run(name, func(b *testing.B) {
			up := benchUpTrack(webrtc.RTPCodecTypeVideo)
			sinks := make([]*sinkWriter, subs)
			for i := range sinks {
				sinks[i] = &sinkWriter{}
				d := newDownTrack(up, fmt.Sprint("sub", i), &rawWriters{}, up.log)
				bindSink(d, sinks[i], uint32(100+i))
				d.inline.Store(c.inline)
				up.addDown(d)
				defer d.stop(false)
			}
			raw := benchPacket(b)
			now := time.Now()
			// Warm up: every queue slot used once.
			var seq uint16
			forward := func(n int) {
				for range n {
					seq++
					raw[2], raw[3] = byte(seq>>8), byte(seq)
					up.handle(up.layer(0), raw, now, nil)
				}
			}
			var sent uint64
			drain := func() {
				for _, s := range sinks {
					for s.packets.Load() < sent {
						runtime.Gosched()
					}
				}
			}
			for range 4 * videoQueue / 32 {
				forward(32)
				sent += 32
				drain()
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			b.ResetTimer()
			// Batches smaller than the queue, so nothing is dropped and
			// every packet is written to every subscriber.
			for done := 0; done < b.N; {
				n := min(32, b.N-done)
				forward(n)
				sent += uint64(n)
				done += n
				drain()
			}
			b.StopTimer()
			for _, s := range sinks {
				if got := s.packets.Load(); got != sent {
					b.Fatalf("a subscriber got %d packets, want %d", got, sent)
				}
			}
		})
	}
}

// TestForwardAllocs is BenchmarkForward's claim as a test: forwarding a
// packet to four subscribers allocates nothing.
func TestForwardAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counts need a quiet process")
	}
	up := benchUpTrack(webrtc.RTPCodecTypeVideo)
	var sinks []*sinkWriter
	for i := range 4 {
		s := &sinkWriter{}
		d := newDownTrack(up, fmt.Sprint("sub", i), &rawWriters{}, up.log)
		bindSink(d, s, uint32(100+i))
		up.addDown(d)
		defer d.stop(false)
		sinks = append(sinks, s)
	}
	raw := benchPacket(t)
	now := time.Now()
	var seq uint16
	var sent uint64
	run := func() {
		for range 16 {
			seq++
			raw[2], raw[3] = byte(seq>>8), byte(seq)
			up.handle(up.layer(0), raw, now, nil)
		}
		sent += 16
		for _, s := range sinks {
			for s.packets.Load() < sent {
				runtime.Gosched()
			}
		}
	}
	for range 2 * videoQueue / 16 {
		run()
	}
	if allocs := testing.AllocsPerRun(200, run); allocs != 0 {
		t.Fatalf("forwarding 16 packets to 4 subscribers allocated %v times", allocs)
	}
}

// BenchmarkForwardPion is BenchmarkForward with real subscribers: each
// downTrack is bound by pion to a subscriber's PeerConnection over
// loopback UDP, so every packet also goes through pion's interceptors
// (NACK cache, RTCP reports, stats, TWCC), SRTP encryption and the
// socket. The allocations it reports beyond BenchmarkForward's are
// pion's.
func BenchmarkForwardPion(b *testing.B) {
	sfu := newTestSFU(b, Params{})
	room := sfu.NewRoom("bench")
	defer room.Close()
	up := benchUpTrack(webrtc.RTPCodecTypeVideo)
	const subs = 4
	var downs []*downTrack
	for i := range subs {
		c := newTestClient(b, room, fmt.Sprint("sub", i), clientOpts{discard: true})
		room.mu.Lock()
		c.peer.subscribeLocked(up)
		room.mu.Unlock()
		for _, d := range c.peer.downs() {
			downs = append(downs, d)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, d := range downs {
		for !d.bound.Load() {
			if time.Now().After(deadline) {
				b.Fatal("subscribers did not connect")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	raw := benchPacket(b)
	var seq uint16
	var sent uint64
	batch := func(n int) {
		for range n {
			seq++
			raw[2], raw[3] = byte(seq>>8), byte(seq)
			up.handle(up.layer(0), raw, time.Now(), nil)
		}
		sent += uint64(n)
		for _, d := range downs {
			for d.sent.Load()+d.dropped.total() < sent {
				runtime.Gosched()
			}
		}
	}
	// Let DTLS finish so that writes reach SRTP, then warm up.
	time.Sleep(500 * time.Millisecond)
	for range 16 {
		batch(32)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		n := min(32, b.N-done)
		batch(n)
		done += n
	}
}

// TestQueueMemoryFollowsUse: a subscriber track that queued a few
// packets (the first ones of a connection, before it writes inline, or
// while another write was in progress) holds memory for that many
// slots of its queue, not for all videoQueue: 192 KB a video track
// when the whole queue had its memory at the first packet queued.
func TestQueueMemoryFollowsUse(t *testing.T) {
	up := benchUpTrack(webrtc.RTPCodecTypeVideo)
	sink := &sinkWriter{}
	d := newDownTrack(up, "sub", &rawWriters{}, up.log)
	bindSink(d, sink, 100)
	up.addDown(d)
	defer d.stop(false)
	raw := benchPacket(t)
	now := time.Now()
	const queued = 5
	for seq := range uint16(queued) {
		raw[2], raw[3] = byte(seq>>8), byte(seq)
		up.handle(up.layer(0), raw, now, nil)
	}
	deadline := time.Now().Add(5 * time.Second)
	for sink.packets.Load() < queued && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := sink.packets.Load(); got != queued {
		t.Fatalf("%d of %d packets written", got, queued)
	}
	d.qmu.Lock()
	defer d.qmu.Unlock()
	held := 0
	for i := range d.ring {
		if cap(d.ring[i].payload) > 0 {
			held++
		}
	}
	if held != queued {
		t.Fatalf("%d of %d queue slots hold memory after %d packets queued, want %d", held, len(d.ring), queued, queued)
	}
}

// TestInlineQueueUnused: written inline (as over UDP) with nothing
// queued, a packet goes from the publisher's buffer to the subscriber's
// connection without a copy into the queue, so the queue's slots get
// no memory: a subscriber track costs the memory of the packets it
// actually queues, not of videoQueue (TestQueueMemoryFollowsUse).
func TestInlineQueueUnused(t *testing.T) {
	up := benchUpTrack(webrtc.RTPCodecTypeVideo)
	sink := &sinkWriter{}
	d := newDownTrack(up, "sub", &rawWriters{}, up.log)
	bindSink(d, sink, 100)
	d.inline.Store(true)
	up.addDown(d)
	defer d.stop(false)
	raw := benchPacket(t)
	now := time.Now()
	n := 3 * len(d.ring)
	for seq := range uint16(n) {
		raw[2], raw[3] = byte(seq>>8), byte(seq)
		up.handle(up.layer(0), raw, now, nil)
	}
	if got := sink.packets.Load(); got != uint64(n) {
		t.Fatalf("%d of %d packets written", got, n)
	}
	d.qmu.Lock()
	defer d.qmu.Unlock()
	if cap(d.ring[0].payload) != 0 {
		t.Fatal("the queue's memory was allocated though no packet was queued")
	}
	used := 0
	for i := range d.ring {
		if len(d.ring[i].payload) > 0 {
			used++
		}
	}
	if used != 0 {
		t.Fatalf("%d of %d queue slots were written after %d packets written inline, want none", used, len(d.ring), n)
	}
}

// TestPacketCache: a layer keeps each packet once, for every subscriber's
// retransmissions, until the one sentCacheSize later replaces it.
func TestPacketCache(t *testing.T) {
	var c packetCache
	buf := make([]byte, packetSize)
	start := uint16(65400) // the numbers wrap around on the way
	end := start + sentCacheSize + 10
	for seq := start; seq != end; seq++ {
		c.put(seq, []byte{byte(seq), byte(seq >> 8), 7})
	}
	newest := end - 1
	n, ok := c.copyTo(buf, newest)
	if !ok || n != 3 || buf[0] != byte(newest) || buf[1] != byte(newest>>8) || buf[2] != 7 {
		t.Fatalf("the newest packet: %v %d %v", ok, n, buf[:3])
	}
	if _, ok := c.copyTo(buf, start+9); ok {
		t.Fatal("a packet replaced sentCacheSize later is still served")
	}
	if _, ok := c.copyTo(buf, start+10); !ok {
		t.Fatal("the oldest packet still in the window is not served")
	}
}

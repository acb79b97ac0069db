package media

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/pion/transport/v5/packetio"
	"github.com/pion/webrtc/v4"
)

// TestDeliver: deliver takes RTP and RTCP from a direct pair's address
// into the right session buffer, and leaves everything else to pion's
// mux: other addresses, STUN and DTLS, a closed session.
func TestDeliver(t *testing.T) {
	f := newDirectFactory(nil, slog.New(slog.DiscardHandler))
	c := &directConn{factory: f, id: "pc1"}
	f.conns["pc1"] = c
	in := &directIn{srtp: packetio.NewBuffer(), srtcp: packetio.NewBuffer()}
	in.srtp.SetLimitCount(2)
	c.in.Store(in)
	peer := netip.MustParseAddrPort("192.0.2.7:5000")
	f.route("pc1", peer, true)
	sc := newInScratch()

	rtpPkt := []byte{0x80, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1}
	rtcpPkt := []byte{0x81, 201, 0, 1, 0, 0, 0, 1}
	stun := []byte{0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42}
	dtls := []byte{22, 0xfe, 0xfd, 0, 0}
	other := netip.MustParseAddrPort("192.0.2.8:5000")
	cases := []struct {
		name string
		p    []byte
		from netip.AddrPort
		want bool
	}{
		{"rtp", rtpPkt, peer, true},
		{"rtcp", rtcpPkt, peer, true},
		{"stun", stun, peer, false},
		{"dtls", dtls, peer, false},
		{"short", []byte{0x80, 96}, peer, false},
		{"other address", rtpPkt, other, false},
	}
	for _, tc := range cases {
		if got := f.deliver(tc.p, tc.from, sc); got != tc.want {
			t.Errorf("%s: deliver = %v, want %v", tc.name, got, tc.want)
		}
	}
	buf := make([]byte, 100)
	if n, _, err := in.srtp.Read(buf, nil); err != nil || n != len(rtpPkt) {
		t.Fatalf("srtp buffer: %d bytes, %v", n, err)
	}
	if n, _, err := in.srtcp.Read(buf, nil); err != nil || n != len(rtcpPkt) {
		t.Fatalf("srtcp buffer: %d bytes, %v", n, err)
	}
	if got := c.received.Load(); got != 2 {
		t.Fatalf("received = %d, want 2", got)
	}

	// A full session drops, as pion's mux does, and counts it.
	for range 3 {
		if !f.deliver(rtpPkt, peer, sc) {
			t.Fatal("not delivered to a full buffer")
		}
	}
	if c.inDropped.Load() != 1 {
		t.Fatalf("dropped = %d, want 1", c.inDropped.Load())
	}

	// Two connections claiming one address: neither gets it.
	f.conns["pc2"] = &directConn{factory: f, id: "pc2"}
	f.route("pc2", peer, true)
	if f.deliver(rtpPkt, peer, sc) {
		t.Fatal("delivered to an address two connections claim")
	}
	f.route("pc2", netip.AddrPort{}, false)

	// A closed session: pion's path.
	_ = in.srtp.Close()
	if f.deliver(rtpPkt, peer, sc) {
		t.Fatal("delivered to a closed session")
	}
	// A closed connection is forgotten, its drops are not.
	if d := f.receiveDrops(); d.Behind != 1 {
		t.Fatalf("receive drops %+v, want 1 behind", d)
	}
	_ = c.Close()
	if f.deliver(rtcpPkt, peer, sc) {
		t.Fatal("delivered to a closed connection")
	}
	if d := f.receiveDrops(); d.Behind != 1 {
		t.Fatalf("after close: receive drops %+v, want 1 behind", d)
	}
}

// TestDirectReads: a publisher's media and a subscriber's RTCP over
// direct UDP pairs reach their SRTP sessions straight from the socket's
// reader; when the publisher's pair stops being direct its packets go
// through pion's mux again, and back, and the subscriber never misses
// a beat: with pion's mux reading the one socket, and with a reader per
// core.
func TestDirectReads(t *testing.T) {
	for _, readers := range []int{1, 3} {
		t.Run(fmt.Sprintf("%d readers", readers), func(t *testing.T) { testDirectReads(t, readers) })
	}
}

func testDirectReads(t *testing.T, readers int) {
	sfu := newTestSFU(t, Params{UDPReaders: readers})
	if got := len(sfu.batch.shards); readers > 1 && got != readers+1 && runtime.GOOS == "linux" {
		t.Fatalf("%d sockets read, want %d", got, readers+1)
	}
	_, alice, bob, _ := aliceToBob(t, sfu, clientOpts{reportInterval: 100 * time.Millisecond}, 3)
	pub := sfu.direct.get(alice.peer.pub.ID())
	sub := sfu.direct.get(bob.peer.sub.ID())
	if pub == nil || sub == nil {
		t.Fatal("no direct interceptor on a connection")
	}
	waitFor(t, 5*time.Second, "direct reads", func() bool {
		return pub.received.Load() > 50 && sub.received.Load() > 5
	})
	// alice's audio, video and video's RTX are bound: decrypted by the socket's
	// reader, recorded for her feedback, handed to their layers.
	waitFor(t, 5*time.Second, "bound streams", func() bool {
		tab := pub.table.Load()
		return tab != nil && len(tab.routes) == 3 && pub.bound.Load() > 50
	})
	fb := sfu.feedback.byIDForTest(alice.peer.pub.ID())
	recorded := func() int {
		n := 0
		for ssrc := range pub.table.Load().routes {
			n += fb.receivedForTest(ssrc)
		}
		return n
	}
	r0, b0 := recorded(), pub.bound.Load()
	waitFor(t, 5*time.Second, "more bound packets", func() bool { return pub.bound.Load() > b0+60 })
	if r, b := recorded()-r0, int(pub.bound.Load()-b0); r < b-5 {
		t.Fatalf("%d bound packets handled, %d recorded for alice's feedback", b, r)
	}

	// Bob's RTCP reaches his tracks from the socket's reader:
	// a keyframe request for alice's video counts on the track sending it.
	waitFor(t, 5*time.Second, "bob's RTCP on the direct path", func() bool { return sub.rtcpIn.Load() > 3 })
	down := bob.down(webrtc.RTPCodecTypeVideo)
	plis, rtcpIn := down.plisIn.Load(), sub.rtcpIn.Load()
	if err := bob.sub.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: bob.got("alice", "video").ssrc}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "bob's keyframe request", func() bool { return down.plisIn.Load() > plis })
	if sub.rtcpIn.Load() <= rtcpIn {
		t.Fatal("the keyframe request did not come through the direct path")
	}

	// Not direct: pion's mux reads alice's packets.
	pair, err := alice.peer.pub.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil {
		t.Fatalf("alice's pub pair: %v, %v", pair, err)
	}
	sfu.direct.setPair(alice.peer.pub.ID(), nil)
	got := pub.received.Load()
	base := bob.packets("alice", "video")
	waitFor(t, 5*time.Second, "bob receiving through pion's mux", func() bool {
		return bob.packets("alice", "video") > base+30
	})
	if d := pub.received.Load() - got; d > 4 { // reads already past the check
		t.Fatalf("%d direct reads after the pair stopped being direct", d)
	}

	// Direct again.
	sfu.direct.setPair(alice.peer.pub.ID(), pair)
	got = pub.received.Load()
	base = bob.packets("alice", "video")
	waitFor(t, 5*time.Second, "direct reads again", func() bool {
		return pub.received.Load() > got+30 && bob.packets("alice", "video") > base+30
	})
	if pub.inDropped.Load() != 0 {
		t.Fatalf("%d packets dropped", pub.inDropped.Load())
	}
}

// srtpPair returns an encrypting context and a decrypting one, with
// replay protection, that share their keys.
func srtpPair(tb testing.TB) (enc, dec *srtp.Context) {
	tb.Helper()
	return testContexts(tb, srtp.ProtectionProfileAeadAes128Gcm, srtp.SRTPReplayProtection(64))
}

// TestRTPPacket: the direct read path decrypts a bound
// stream's packet with the session's context and hands it to the
// stream's handler, without allocating; a tampered or replayed packet,
// or one of a stream not bound, reaches no handler.
func TestRTPPacket(t *testing.T) {
	enc, dec := srtpPair(t)
	c := &directConn{}
	var got []rtp.Packet
	c.table.Store(&inTable{routes: map[uint32]rtpHandler{0xaa: func(raw []byte, h *rtp.Header, _ time.Time, _ *outbox) {
		var p rtp.Packet
		if err := p.Unmarshal(append([]byte(nil), raw...)); err != nil {
			t.Fatal(err)
		}
		if p.SequenceNumber != h.SequenceNumber || p.SSRC != h.SSRC {
			t.Fatalf("header %v for packet %v", h, p.Header)
		}
		got = append(got, p)
	}}})
	seal := func(ssrc uint32, seq uint16) []byte {
		p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, Timestamp: 9, SSRC: ssrc}, Payload: bytes.Repeat([]byte{byte(seq)}, 900)}
		raw, err := p.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		out, err := enc.EncryptRTP(nil, raw, nil)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	s := &inSession{rtpCtx: dec, rtpMu: &sync.Mutex{}}
	sc := newInScratch()
	first := seal(0xaa, 100)
	c.rtpPacket(s, first, sc)
	if len(got) != 1 || got[0].SequenceNumber != 100 || !bytes.Equal(got[0].Payload, bytes.Repeat([]byte{100}, 900)) {
		t.Fatalf("got %d packets, want the first", len(got))
	}
	c.rtpPacket(s, first, sc) // replayed
	tampered := seal(0xaa, 101)
	tampered[30] ^= 1
	c.rtpPacket(s, tampered, sc)
	c.rtpPacket(s, seal(0xbb, 7), sc) // not bound
	if len(got) != 1 || c.inBad.Load() != 2 {
		t.Fatalf("%d packets handled, %d bad; want 1 and 2", len(got), c.inBad.Load())
	}

	packets := make([][]byte, 200)
	for i := range packets {
		packets[i] = seal(0xaa, uint16(200+i))
	}
	got = got[:0:cap(got)]
	c.table.Store(&inTable{routes: map[uint32]rtpHandler{0xaa: func([]byte, *rtp.Header, time.Time, *outbox) {}}})
	i := 0
	allocs := testing.AllocsPerRun(100, func() {
		c.rtpPacket(s, packets[i], sc)
		i++
	})
	if allocs != 0 {
		t.Fatalf("a bound packet allocates %.1f times", allocs)
	}
	if c.bound.Load() < 100 {
		t.Fatalf("bound = %d", c.bound.Load())
	}
}

// TestUnwrapRTX: an RTX packet becomes the packet it repairs, extension
// and padding kept; one with nothing to repair is refused.
func TestUnwrapRTX(t *testing.T) {
	orig := rtp.Packet{Header: rtp.Header{Version: 2, Marker: true, PayloadType: 96, SequenceNumber: 4242, Timestamp: 777, SSRC: 0x1111}, Payload: []byte("frame data")}
	if err := orig.SetExtension(3, []byte{9, 8}); err != nil {
		t.Fatal(err)
	}
	rtx := orig
	rtx.PayloadType, rtx.SSRC, rtx.SequenceNumber = 97, 0x2222, 17
	rtx.Payload = append(binary.BigEndian.AppendUint16(nil, orig.SequenceNumber), orig.Payload...)
	rtx.Padding, rtx.PaddingSize = true, 4
	raw, err := rtx.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	out, ok := unwrapRTX(raw, 0x1111, 96)
	if !ok {
		t.Fatal("refused")
	}
	var got rtp.Packet
	if err := got.Unmarshal(out); err != nil {
		t.Fatal(err)
	}
	if got.SSRC != 0x1111 || got.PayloadType != 96 || got.SequenceNumber != 4242 || !got.Marker || got.Timestamp != 777 ||
		!bytes.Equal(got.Payload, orig.Payload) || !bytes.Equal(got.GetExtension(3), []byte{9, 8}) {
		t.Fatalf("repaired %v %q, want %v %q", got.Header, got.Payload, orig.Header, orig.Payload)
	}

	probe := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 97, SSRC: 0x2222, Padding: true, PaddingSize: 200}}
	raw, err = probe.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := unwrapRTX(raw, 0x1111, 96); ok {
		t.Fatal("repaired a padding-only probe")
	}
	for _, short := range [][]byte{nil, raw[:5], {0x90, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0xbe, 0xde}} {
		if _, ok := unwrapRTX(short, 0x1111, 96); ok {
			t.Fatalf("repaired %x", short)
		}
	}
}

// TestDirectReadsRepair: video a publisher loses on the way to the SFU
// is NACKed, and its retransmissions, on its RTX stream, are repaired on
// the direct read path: the subscriber gets every packet.
func TestDirectReadsRepair(t *testing.T) {
	sfu := newTestSFU(t, Params{})
	room, alice, bob, video := aliceToBob(t, sfu, clientOpts{}, 5)
	pub := sfu.direct.get(alice.peer.pub.ID())
	waitFor(t, 5*time.Second, "audio, video and video's RTX bound", func() bool {
		tab := pub.table.Load()
		return tab != nil && len(tab.routes) == 3
	})
	var videoSSRC uint32
	room.mu.Lock()
	for _, up := range alice.peer.ups {
		if up.kind == webrtc.RTPCodecTypeVideo {
			videoSSRC = up.layer(0).ssrc
		}
	}
	room.mu.Unlock()

	var seen, dropped atomic.Int64
	drop := func(p []byte) bool {
		if binary.BigEndian.Uint32(p[8:12]) != videoSSRC || seen.Add(1)%10 != 0 {
			return false
		}
		dropped.Add(1)
		return true
	}
	from := video.count() + 10
	sfu.direct.dropForTest.Store(&drop)
	time.Sleep(2 * time.Second)
	sfu.direct.dropForTest.Store(nil)
	to := video.count() - 10
	time.Sleep(time.Second)

	got := bob.got("alice", "video")
	missing := 0
	for c := from; c <= to; c++ {
		if !got.counters[c] {
			missing++
		}
	}
	if dropped.Load() < 20 || missing > 0 {
		t.Fatalf("%d of %d video packets missing at bob after %d were lost on the way in", missing, to-from+1, dropped.Load())
	}
	if pub.inBad.Load() != 0 {
		t.Fatalf("%d bound packets did not decrypt", pub.inBad.Load())
	}
}

// BenchmarkDirectRead: one 1100-byte video packet of a bound stream on
// the direct read path: decrypted (AES-GCM, under the
// session's mutex) and handed to its handler, here one that does
// nothing.
func BenchmarkDirectRead(b *testing.B) {
	enc, dec := srtpPair(b)
	const n = 1 << 14
	packets := make([][]byte, n)
	for i := range packets {
		p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: uint16(i), Timestamp: uint32(i / 3 * 3000), SSRC: 0xaa}, Payload: bytes.Repeat([]byte{0x5a}, 1100)}
		raw, err := p.Marshal()
		if err != nil {
			b.Fatal(err)
		}
		if packets[i], err = enc.EncryptRTP(nil, raw, nil); err != nil {
			b.Fatal(err)
		}
	}
	c := &directConn{}
	c.table.Store(&inTable{routes: map[uint32]rtpHandler{0xaa: func([]byte, *rtp.Header, time.Time, *outbox) {}}})
	s := &inSession{rtpCtx: dec, rtpMu: &sync.Mutex{}}
	sc := newInScratch()
	b.ReportAllocs()
	b.SetBytes(1100)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%n == 0 && i > 0 {
			b.StopTimer() // a new context: the packets are replays now
			_, s.rtpCtx = srtpPair(b)
			b.StartTimer()
		}
		c.rtpPacket(s, packets[i%n], sc)
	}
	if c.inBad.Load() != 0 {
		b.Fatalf("%d packets did not decrypt", c.inBad.Load())
	}
}

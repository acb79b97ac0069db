package media

import (
	"context"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/transport/v5/packetio"
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
		if got := f.deliver(tc.p, tc.from); got != tc.want {
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
		if !f.deliver(rtpPkt, peer) {
			t.Fatal("not delivered to a full buffer")
		}
	}
	if c.inDropped.Load() != 1 {
		t.Fatalf("dropped = %d, want 1", c.inDropped.Load())
	}

	// Two connections claiming one address: neither gets it.
	f.conns["pc2"] = &directConn{factory: f, id: "pc2"}
	f.route("pc2", peer, true)
	if f.deliver(rtpPkt, peer) {
		t.Fatal("delivered to an address two connections claim")
	}
	f.route("pc2", netip.AddrPort{}, false)

	// A closed session: pion's path.
	_ = in.srtp.Close()
	if f.deliver(rtpPkt, peer) {
		t.Fatal("delivered to a closed session")
	}
	// A closed connection is forgotten.
	_ = c.Close()
	if f.deliver(rtcpPkt, peer) {
		t.Fatal("delivered to a closed connection")
	}
}

// TestDirectReads: a publisher's media and a subscriber's RTCP over
// direct UDP pairs reach their SRTP sessions straight from the socket's
// reader; when the publisher's pair stops being direct its packets go
// through pion's mux again, and back, and the subscriber never misses
// a beat.
func TestDirectReads(t *testing.T) {
	sfu := newTestSFU(t, Params{})
	room := sfu.NewRoom("r1")
	defer room.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	alice := newTestClient(t, room, "alice", clientOpts{})
	bob := newTestClient(t, room, "bob", clientOpts{reportInterval: 100 * time.Millisecond})
	alice.publish(ctx, true, true, 3)
	room.Allow("bob", "alice", true)
	waitFor(t, 10*time.Second, "bob receiving alice", func() bool {
		return bob.packets("alice", "video") > 30 && bob.packets("alice", "audio") > 10
	})
	pub := sfu.direct.get(alice.peer.pub.ID())
	sub := sfu.direct.get(bob.peer.sub.ID())
	if pub == nil || sub == nil {
		t.Fatal("no direct interceptor on a connection")
	}
	waitFor(t, 5*time.Second, "direct reads", func() bool {
		return pub.received.Load() > 50 && sub.received.Load() > 5
	})

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

package media

import (
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// TestStats: through real clients, the SFU's counters move the way the
// metrics promise: packets and bytes in and out grow while media flows, a
// subscriber's PLI and NACKs are counted (and answered: a keyframe
// request to the publisher, a retransmission, or a "not cached" drop),
// and once the subscriber and then the publisher leave, the gauges fall
// while no counter goes backwards.
func TestStats(t *testing.T) {
	sfu := newTestSFU(t, Params{})
	if st := sfu.Stats(); st != (Stats{}) {
		t.Fatalf("a new SFU's stats are %+v, want zero", st)
	}
	room, alice, bob, _ := aliceToBob(t, sfu, clientOpts{}, 3)

	st := sfu.Stats()
	if st.Rooms != 1 || st.Peers != 2 || st.PublishedTracks != 2 || st.ForwardedTracks != 2 {
		t.Fatalf("gauges %+v, want 1 room, 2 peers, 2 published and 2 forwarded tracks", st)
	}
	if st.PacketsIn == 0 || st.PacketsOut == 0 {
		t.Fatalf("no packets counted while media flows: %+v", st)
	}
	// Every packet carries a payload: at least one byte each.
	if st.BytesIn < st.PacketsIn || st.BytesOut < st.PacketsOut {
		t.Fatalf("bytes below packets: %+v", st)
	}
	// What bob received was counted as sent: the SFU counts no less than
	// what reached him.
	if got := uint64(bob.packets("alice", "video") + bob.packets("alice", "audio")); st.PacketsOut < got {
		t.Fatalf("PacketsOut %d, but bob received %d", st.PacketsOut, got)
	}
	later := sfu.Stats()
	waitFor(t, 5*time.Second, "counters growing", func() bool {
		later = sfu.Stats()
		return later.PacketsIn > st.PacketsIn && later.PacketsOut > st.PacketsOut &&
			later.BytesIn > st.BytesIn && later.BytesOut > st.BytesOut
	})
	assertMonotonic(t, st, later)

	// bob asks for a keyframe: counted as received, and passed on to
	// alice (throttled, and answered by a keyframe that arrives in time,
	// so it is repeated until one goes out).
	video := bob.got("alice", "video")
	if video == nil || len(video.seqs) == 0 {
		t.Fatal("bob has no video from alice")
	}
	base := sfu.Stats()
	waitFor(t, 5*time.Second, "a PLI passed on to the publisher", func() bool {
		if err := bob.sub.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: video.ssrc}}); err != nil {
			t.Fatal(err)
		}
		return sfu.Stats().KeyframeRequests > base.KeyframeRequests
	})
	if n := sfu.Stats().PLIsIn; n <= base.PLIsIn {
		t.Fatalf("PLIsIn %d, was %d before bob's PLIs", n, base.PLIsIn)
	}

	// bob NACKs three recent packets (one pair: the packet and the two
	// after it), and one long gone from the cache.
	base = sfu.Stats()
	last := video.seqs[len(video.seqs)-1]
	if err := bob.sub.WriteRTCP([]rtcp.Packet{&rtcp.TransportLayerNack{
		MediaSSRC: video.ssrc,
		Nacks: []rtcp.NackPair{
			{PacketID: last - 2, LostPackets: 0b11},
			{PacketID: last - 2*sentCacheSize - 7},
		},
	}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the NACKs counted and answered", func() bool {
		s := sfu.Stats()
		return s.NACKsIn >= base.NACKsIn+4 && s.Retransmitted >= base.Retransmitted+3 &&
			s.Dropped.NotCached > base.Dropped.NotCached
	})

	// bob leaves: his tracks are no longer forwarded, and what they
	// counted stays in the totals.
	before := sfu.Stats()
	room.RemovePeer(bob.peer)
	after := sfu.Stats()
	if after.Peers != 1 || after.ForwardedTracks != 0 || after.PublishedTracks != 2 {
		t.Fatalf("after bob left: %+v, want 1 peer, 0 forwarded and 2 published tracks", after)
	}
	assertMonotonic(t, before, after)

	// alice leaves: her tracks end once their read loops see the closed
	// connection, and their counts stay too.
	before = sfu.Stats()
	room.RemovePeer(alice.peer)
	waitFor(t, 5*time.Second, "alice's tracks retired", func() bool {
		return sfu.Stats().PublishedTracks == 0
	})
	after = sfu.Stats()
	if after.Peers != 0 || after.Rooms != 1 {
		t.Fatalf("after alice left: %+v, want 0 peers in 1 room", after)
	}
	assertMonotonic(t, before, after)

	room.Close()
	room.Close() // a second Close does not count the room twice
	if st := sfu.Stats(); st.Rooms != 0 {
		t.Fatalf("%d rooms after the only one closed", st.Rooms)
	}
}

// assertMonotonic fails if a counter of later is below earlier's.
func assertMonotonic(t *testing.T, earlier, later Stats) {
	t.Helper()
	for _, c := range []struct {
		name string
		a, b uint64
	}{
		{"PacketsIn", earlier.PacketsIn, later.PacketsIn},
		{"BytesIn", earlier.BytesIn, later.BytesIn},
		{"PacketsOut", earlier.PacketsOut, later.PacketsOut},
		{"BytesOut", earlier.BytesOut, later.BytesOut},
		{"Retransmitted", earlier.Retransmitted, later.Retransmitted},
		{"NACKsIn", earlier.NACKsIn, later.NACKsIn},
		{"NACKsOut", earlier.NACKsOut, later.NACKsOut},
		{"PLIsIn", earlier.PLIsIn, later.PLIsIn},
		{"KeyframeRequests", earlier.KeyframeRequests, later.KeyframeRequests},
		{"Dropped.QueueFull", earlier.Dropped.QueueFull, later.Dropped.QueueFull},
		{"Dropped.KeyframeWait", earlier.Dropped.KeyframeWait, later.Dropped.KeyframeWait},
		{"Dropped.TooLate", earlier.Dropped.TooLate, later.Dropped.TooLate},
		{"Dropped.NotCached", earlier.Dropped.NotCached, later.Dropped.NotCached},
	} {
		if c.b < c.a {
			t.Errorf("%s went backwards: %d, then %d", c.name, c.a, c.b)
		}
	}
}

// chanReader is a layer's source fed by the test; closing it ends the
// read loop as a closed connection would.
type chanReader struct {
	c chan []byte
}

func (r chanReader) Read(b []byte) (int, interceptor.Attributes, error) {
	p, ok := <-r.c
	if !ok {
		return 0, nil, io.EOF
	}
	return copy(b, p), nil, nil
}

// TestStatsPublisherNACKs: the NACKs the SFU sends a publisher for
// packets that did not arrive are counted by sequence number, and a
// track's counts outlive it.
func TestStatsPublisherNACKs(t *testing.T) {
	reg := newStatsRegistry()
	up := newUpTrack("pub-video", "pub", webrtc.RTPCodecTypeVideo,
		webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, slog.New(slog.DiscardHandler))
	var mu sync.Mutex
	var nacked []uint16
	up.writeRTCP = func(pkts []rtcp.Packet) error {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range pkts {
			if n, ok := p.(*rtcp.TransportLayerNack); ok {
				for _, pair := range n.Nacks {
					nacked = append(nacked, pair.PacketList()...)
				}
			}
		}
		return nil
	}
	up.stats = reg
	src := chanReader{c: make(chan []byte)}
	ended := make(chan struct{})
	if !up.start(up.newLayer(0, "", src, 1234), func() { close(ended) }) {
		t.Fatal("the track did not start")
	}
	if st := reg.snapshot(); st.PublishedTracks != 1 {
		t.Fatalf("%d published tracks, want 1", st.PublishedTracks)
	}
	payload := []byte{0x10, 1, 2, 3, 4, 5, 6, 7}
	for _, seq := range []uint16{100, 101, 105} { // 102 to 104 lost
		raw, err := (&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, SSRC: 1234, PayloadType: 96}, Payload: payload}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		src.c <- raw
	}
	waitFor(t, 5*time.Second, "NACKs to the publisher", func() bool {
		return reg.snapshot().NACKsOut >= 3
	})
	mu.Lock()
	first := append([]uint16(nil), nacked[:3]...)
	mu.Unlock()
	if first[0] != 102 || first[1] != 103 || first[2] != 104 {
		t.Fatalf("NACKed %v first, want 102 to 104", first)
	}
	st := reg.snapshot()
	if st.PacketsIn != 3 || st.BytesIn != 3*uint64(len(payload)) {
		t.Fatalf("in: %d packets, %d bytes; want 3 and %d", st.PacketsIn, st.BytesIn, 3*len(payload))
	}

	close(src.c)
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the read loop did not end")
	}
	after := reg.snapshot()
	if after.PublishedTracks != 0 {
		t.Fatalf("%d published tracks after the track ended", after.PublishedTracks)
	}
	if after.PacketsIn != 3 {
		t.Fatalf("PacketsIn %d after the track ended, want 3 kept", after.PacketsIn)
	}
	assertMonotonic(t, st, after)
	// Retiring twice would count twice.
	reg.retireUp(up)
	if again := reg.snapshot(); again.PacketsIn != 3 {
		t.Fatalf("PacketsIn %d after a second retire, want 3", again.PacketsIn)
	}
}

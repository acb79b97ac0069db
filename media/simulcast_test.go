package media

import (
	"context"
	"encoding/binary"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/transport/v5/vnet"
	"github.com/pion/webrtc/v4"
)

// simulcastLayers are the three encodings a test publisher sends, lowest
// first, as a browser's sendEncodings list them: packets per frame and
// payload size at 30 frames a second (about 100, 260 and 960 kbit/s).
var simulcastLayers = []struct {
	rid     string
	packets int
	size    int
}{{"q", 1, 400}, {"h", 1, 1100}, {"f", 4, 1000}}

// publishSimulcast publishes a VP8 video track in three layers.
func (c *testClient) publishSimulcast(ctx context.Context) {
	c.publishSimulcastCodec(ctx, webrtc.MimeTypeVP8)
}

// shapePayload gives packet i of a frame of n packets the payload header
// of codec mime: a VP8 payload descriptor and frame tag, or an H.264 NAL
// unit (one packet) or FU-A fragments, marking a keyframe as such.
func shapePayload(mime string, p []byte, i, n int, keyframe bool) {
	if mime == webrtc.MimeTypeH264 {
		nal := byte(1) // non-IDR slice
		if keyframe {
			nal = 5 // IDR slice
		}
		if n == 1 {
			p[0], p[1] = 0x60|nal, 0x88
			return
		}
		p[0], p[1] = 0x7c, nal // FU-A (NRI 3), a middle fragment
		if i == 0 {
			p[1] |= 0x80 // start
		} else if i == n-1 {
			p[1] |= 0x40 // end
		}
		return
	}
	p[0], p[1] = 0, 1
	if i == 0 {
		p[0] = 0x10 // start of partition 0
		if keyframe {
			p[1] = 0 // keyframe
		}
	}
}

// publishSimulcastCodec publishes a video track of codec mime in three
// layers. Each payload has the codec's shape (shapePayload), names its
// layer (byte 2) and counts per layer (last four bytes); every layer has
// a keyframe every second, and one soon after a PLI or FIR for it, as a
// browser's encoder does.
func (c *testClient) publishSimulcastCodec(ctx context.Context, mime string) {
	c.t.Helper()
	var tracks []*webrtc.TrackLocalStaticRTP
	for _, l := range simulcastLayers {
		tr, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: mime, ClockRate: 90000},
			"video", c.id, webrtc.WithRTPStreamID(l.rid))
		if err != nil {
			c.t.Fatal(err)
		}
		tracks = append(tracks, tr)
	}
	sender, err := c.pub.AddTrack(tracks[0])
	if err != nil {
		c.t.Fatal(err)
	}
	for _, tr := range tracks[1:] {
		if err := sender.AddEncoding(tr); err != nil {
			c.t.Fatal(err)
		}
	}
	var keyframeWanted [3]atomic.Bool
	for i, tr := range tracks {
		go func() {
			for {
				pkts, _, err := sender.ReadSimulcastRTCP(tr.RID())
				if err != nil {
					return
				}
				for _, p := range pkts {
					switch p.(type) {
					case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
						keyframeWanted[i].Store(true)
					}
				}
			}
		}()
	}
	offer, err := c.pub.CreateOffer(nil)
	if err != nil {
		c.t.Fatal(err)
	}
	if err := c.pub.SetLocalDescription(offer); err != nil {
		c.t.Fatal(err)
	}
	if err := c.peer.HandleOffer(offer.SDP); err != nil {
		c.t.Fatal(err)
	}
	go func() {
		var midID, ridID uint8
		var mid string
		tick := time.NewTicker(33 * time.Millisecond)
		defer tick.Stop()
		var seqs [3]uint16
		var counts [3]uint32
		payload := make([]byte, 1100)
		for frame := 0; ; frame++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if midID == 0 {
				for _, e := range sender.GetParameters().HeaderExtensions {
					switch e.URI {
					case sdp.SDESMidURI:
						midID = uint8(e.ID)
					case sdp.SDESRTPStreamIDURI:
						ridID = uint8(e.ID)
					}
				}
				for _, tr := range c.pub.GetTransceivers() {
					if tr.Sender() == sender {
						mid = tr.Mid()
					}
				}
				if midID == 0 || mid == "" {
					continue
				}
			}
			for li, l := range simulcastLayers {
				keyframe := frame%30 == 0 || keyframeWanted[li].Swap(false)
				for i := range l.packets {
					p := payload[:l.size]
					shapePayload(mime, p, i, l.packets, keyframe)
					p[2] = byte(li)
					counts[li]++
					binary.BigEndian.PutUint32(p[len(p)-4:], counts[li])
					pkt := &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seqs[li], Timestamp: uint32(frame) * 3000, Marker: i == l.packets-1}, Payload: p}
					seqs[li]++
					_ = pkt.Header.SetExtension(midID, []byte(mid))
					_ = pkt.Header.SetExtension(ridID, []byte(l.rid))
					_ = tracks[li].WriteRTP(pkt)
				}
			}
		}
	}()
}

// layerRuns reads a received simulcast video: the layer of its latest
// packets, and whether every switch between layers was seamless (the
// first packet of the new layer follows the last of the old one in
// sequence, and starts a keyframe).
type layerRuns struct {
	mu       sync.Mutex
	hi       uint16 // the newest sequence number
	last     int    // its layer
	switches int
	bad      []string
	bySeq    map[uint16]byte // seq -> layer, to check the boundaries
	keyframe map[uint16]bool
	packets  int
	codec    string // the received track's
}

func watchLayers(c *testClient, stream string) *layerRuns {
	lr := &layerRuns{last: -1, bySeq: map[uint16]byte{}, keyframe: map[uint16]bool{}}
	c.sub.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		if tr.StreamID() != stream || tr.Kind() != webrtc.RTPCodecTypeVideo {
			c.onTrack(tr, nil) // the other tracks, as usual
			return
		}
		mime := tr.Codec().MimeType
		lr.mu.Lock()
		lr.codec = mime
		lr.mu.Unlock()
		isKeyframe := keyframeDetector(mime)
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			if len(p.Payload) < 3 || isKeyframe == nil {
				continue
			}
			lr.mu.Lock()
			lr.packets++
			lr.bySeq[p.SequenceNumber] = p.Payload[2]
			lr.keyframe[p.SequenceNumber] = isKeyframe(p.Payload)
			if lr.packets == 1 || seqNewer(p.SequenceNumber, lr.hi) {
				lr.hi, lr.last = p.SequenceNumber, int(p.Payload[2]) // not a late retransmission
			}
			lr.mu.Unlock()
		}
	})
	return lr
}

func (lr *layerRuns) layer() int {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	return lr.last
}

// check counts the switches and reports the broken ones: a layer change
// between two consecutive sequence numbers that is not a keyframe, or a
// sequence number missing right at a change.
func (lr *layerRuns) check(t *testing.T) int {
	t.Helper()
	lr.mu.Lock()
	defer lr.mu.Unlock()
	switches := 0
	for seq, l := range lr.bySeq {
		prev, ok := lr.bySeq[seq-1]
		if !ok {
			continue
		}
		if prev != l {
			switches++
			if !lr.keyframe[seq] {
				t.Errorf("switch from layer %d to %d at seq %d is not at a keyframe", prev, l, seq)
			}
		}
	}
	return switches
}

// TestSimulcastLayers: a three-layer publication reaches a subscriber in
// the best layer its bandwidth allows, and a subscriber that asks for
// less (a thumbnail) gets the low layer; switches happen at keyframes
// and leave no hole in the subscriber's sequence numbers.
func TestSimulcastLayers(t *testing.T) {
	t.Parallel()
	testSimulcastLayers(t, webrtc.MimeTypeVP8)
}

// TestSimulcastLayersH264 is TestSimulcastLayers with H.264, as Safari
// publishes: the subscriber receives H.264, and layer switches wait for
// an IDR picture.
func TestSimulcastLayersH264(t *testing.T) {
	t.Parallel()
	testSimulcastLayers(t, webrtc.MimeTypeH264)
}

func testSimulcastLayers(t *testing.T, mime string) {
	sfu := newTestSFU(t, Params{})
	room := sfu.NewRoom("simulcast")
	defer room.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pub := newTestClient(t, room, "pub", clientOpts{})
	sub := newTestClient(t, room, "sub", clientOpts{})
	lr := watchLayers(sub, "pub")
	pub.publishSimulcastCodec(ctx, mime)
	room.Allow("sub", "pub", true)

	waitFor(t, 10*time.Second, "the top layer", func() bool { return lr.layer() == 2 })
	lr.mu.Lock()
	codec := lr.codec
	lr.mu.Unlock()
	if !strings.EqualFold(codec, mime) {
		t.Fatalf("the subscriber receives %s, want %s", codec, mime)
	}
	sub.peer.SetMaxVideoLayer("pub", 0)
	waitFor(t, 5*time.Second, "the low layer for a thumbnail", func() bool { return lr.layer() == 0 })
	sub.peer.SetMaxVideoLayer("pub", 2)
	waitFor(t, 5*time.Second, "the top layer again", func() bool { return lr.layer() == 2 })
	time.Sleep(200 * time.Millisecond)
	n := lr.check(t)
	lr.mu.Lock()
	t.Logf("%d layer switches, %d packets", n, lr.packets)
	lr.mu.Unlock()
	if n < 2 {
		t.Fatalf("saw %d layer switches, want at least 2", n)
	}
	var seqs []uint16
	lr.mu.Lock()
	for s := range lr.bySeq {
		seqs = append(seqs, s)
	}
	lr.mu.Unlock()
	if lo, hi, n := seqSpan(seqs); hi-lo+1 != n {
		t.Fatalf("the subscriber's sequence numbers have %d holes across the switches", hi-lo+1-n)
	}
}

// seqSpan returns the lowest and highest of seqs (no wrap-around in a
// short test from a random start is not guaranteed, so unwrap around
// the first) and how many distinct there are.
func seqSpan(seqs []uint16) (lo, hi, n int) {
	if len(seqs) == 0 {
		return 0, -1, 0
	}
	base := seqs[0]
	lo, hi = 0, 0
	for _, s := range seqs {
		d := int(int16(s - base))
		lo, hi = min(lo, d), max(hi, d)
	}
	return lo, hi, len(seqs)
}

// TestSimulcastBandwidth: a subscriber behind a 250 kbit/s link (pion's
// vnet token bucket) ends up on the low layer, from the loss its receiver
// reports show, and moves up to the top layer once the limit is lifted.
func TestSimulcastBandwidth(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("bandwidth adaptation takes seconds")
	}
	n := newLossyNet(t, 0)
	sfuNet := n.host(t, "10.0.0.1")
	pubNet := n.host(t, "10.0.0.2")
	subHost, tbf := n.limitedHost(t, "10.0.0.3", 250_000, 8000)
	if err := n.router.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = n.router.Stop() }()

	sfu := newTestSFU(t, Params{Net: sfuNet, UDPAddr: "10.0.0.1:7881"})
	room := sfu.NewRoom("bandwidth")
	defer room.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pub := newTestClient(t, room, "pub", clientOpts{net: pubNet})
	sub := newTestClient(t, room, "sub", clientOpts{net: subHost, reportInterval: 200 * time.Millisecond})
	lr := watchLayers(sub, "pub")
	pub.publishSimulcast(ctx)
	room.Allow("sub", "pub", true)

	waitFor(t, 15*time.Second, "the low layer on a 250 kbit/s link", func() bool {
		return lr.layer() == 0 && sub.peer.bw.current() < 400_000
	})
	t.Logf("limited: layer %d, estimate %.0f kbit/s", lr.layer(), sub.peer.bw.current()/1000)
	tbf.SetRate(50_000_000)
	start := time.Now()
	waitFor(t, 20*time.Second, "the top layer once the limit is lifted", func() bool { return lr.layer() == 2 })
	t.Logf("unlimited: top layer after %v, estimate %.0f kbit/s", time.Since(start).Round(100*time.Millisecond), sub.peer.bw.current()/1000)
	time.Sleep(300 * time.Millisecond)
	lr.check(t)
}

// limitedHost adds a host at ip whose incoming traffic passes a token
// bucket (pion's vnet TBF) of rate bit/s with a queue of queueBytes: a
// subscriber behind a slow link. The bucket's rate can be changed later
// (SetRate) to lift the limit.
func (n *lossyNet) limitedHost(t *testing.T, ip string, rate int, queueBytes int64) (*vnet.Net, *vnet.TBFQueue) {
	t.Helper()
	h, err := newVNet(ip)
	if err != nil {
		t.Fatal(err)
	}
	tbf := vnet.NewTBFQueue(rate, 4000, queueBytes)
	limited, err := vnet.NewQueue(h, tbf)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.router.AddNet(limited); err != nil {
		t.Fatal(err)
	}
	return h, tbf
}

package media

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/transport/v5"
	"github.com/pion/webrtc/v4"

	"github.com/concord-odr/concord/media/internal/pionlog"
)

// The tests drive the SFU with real pion clients: each has a publish and
// a subscribe PeerConnection and talks to its Peer through the same
// Signal messages signaling/ relays.

func testLogger() *slog.Logger {
	if os.Getenv("CONCORD_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func newTestSFU(t testing.TB, p Params) *SFU {
	t.Helper()
	if p.Logger == nil {
		p.Logger = testLogger()
	}
	s, err := New(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// clientOpts shape a test client's network.
type clientOpts struct {
	net        transport.Net
	networks   []webrtc.NetworkType // default UDP4
	iceServers []webrtc.ICEServer
	relayOnly  bool
	discard    bool // do not read received media (benchmarks)
	// reportInterval, when set, replaces pion's 1 s receiver report
	// interval.
	reportInterval time.Duration
	// twccSend makes the client stamp transport-wide sequence numbers
	// on what it publishes, as browsers do.
	twccSend bool
	// pubRTCP, when set, gets the RTCP the SFU sends about what the
	// client publishes.
	pubRTCP func([]rtcp.Packet)
	// keepalive, when set, replaces pion's 2 s between the client's
	// binding requests on a selected pair.
	keepalive time.Duration
}

// received is what a client got from one remote track.
type received struct {
	stream, kind string
	ssrc         uint32
	packets      int
	seqs         []uint16
	tss          []uint32
	counters     map[uint32]bool // the publisher's packet numbers
	levels       int             // packets carrying an audio level
}

type testClient struct {
	t       testing.TB
	pubRTCP func([]rtcp.Packet) // clientOpts.pubRTCP
	id      string
	peer    *Peer
	pub     *webrtc.PeerConnection
	sub     *webrtc.PeerConnection
	sigs    chan Signal

	mu     sync.Mutex
	tracks []*received
	cands  []string      // the SFU's ICE candidates, as signaled
	pubOK  chan struct{} // closed when the pub connection is connected
	lose   atomic.Bool   // lose the next sub offer, as with a dropped socket
	offers []string      // the sub offers received
	closed chan struct{}
	loop   chan struct{} // closed when signalLoop returns
}

func clientAPI(t testing.TB, o clientOpts) *webrtc.API {
	t.Helper()
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	if err := me.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.AudioLevelURI}, webrtc.RTPCodecTypeAudio); err != nil {
		t.Fatal(err)
	}
	ir := &interceptor.Registry{}
	var opts []webrtc.InterceptorOption
	if o.reportInterval > 0 {
		opts = append(opts, webrtc.WithReportReceiverOptions(report.ReceiverInterval(o.reportInterval)))
	}
	if err := webrtc.RegisterDefaultInterceptorsWithOptions(me, ir, opts...); err != nil {
		t.Fatal(err)
	}
	if o.twccSend {
		if err := webrtc.ConfigureTWCCHeaderExtensionSender(me, ir); err != nil {
			t.Fatal(err)
		}
	}
	se := webrtc.SettingEngine{LoggerFactory: pionlog.Factory{Logger: testLogger()}}
	if o.net != nil {
		se.SetNet(o.net)
	}
	se.SetIncludeLoopbackCandidate(true)
	networks := o.networks
	if networks == nil {
		networks = []webrtc.NetworkType{webrtc.NetworkTypeUDP4}
	}
	se.SetNetworkTypes(networks)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetRelayAcceptanceMinWait(100 * time.Millisecond) // browsers do not wait 2 s
	if o.keepalive > 0 {
		se.SetICETimeouts(iceDisconnected, iceFailed, o.keepalive)
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
}

// newTestClient joins room as id.
func newTestClient(t testing.TB, room *Room, id string, o clientOpts) *testClient {
	t.Helper()
	c := &testClient{t: t, id: id, pubRTCP: o.pubRTCP, sigs: make(chan Signal, 4096), pubOK: make(chan struct{}), closed: make(chan struct{}), loop: make(chan struct{})}
	api := clientAPI(t, o)
	cfg := webrtc.Configuration{ICEServers: o.iceServers}
	if o.relayOnly {
		cfg.ICETransportPolicy = webrtc.ICETransportPolicyRelay
	}
	var err error
	if c.pub, err = api.NewPeerConnection(cfg); err != nil {
		t.Fatal(err)
	}
	if c.sub, err = api.NewPeerConnection(cfg); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	c.pub.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected {
			once.Do(func() { close(c.pubOK) })
		}
	})
	c.peer, err = room.AddPeer(id, func(s Signal) {
		select {
		case c.sigs <- s:
		default:
			t.Errorf("%s: signal queue full", id)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.close)
	for name, pc := range map[string]*webrtc.PeerConnection{PCPublish: c.pub, PCSubscribe: c.sub} {
		pc.OnICECandidate(func(cand *webrtc.ICECandidate) {
			if cand != nil {
				_ = c.peer.HandleCandidate(name, cand.ToJSON())
			}
		})
	}
	if !o.discard {
		c.sub.OnTrack(c.onTrack)
	}
	go c.signalLoop()
	return c
}

func (c *testClient) close() {
	select {
	case <-c.closed:
		return
	default:
		close(c.closed)
	}
	_ = c.pub.Close()
	_ = c.sub.Close()
	<-c.loop
}

// errorf reports a client error, unless the client is closing (or the
// SFU closed its connections: pion closes a connection on DTLS
// close_notify).
func (c *testClient) errorf(format string, args ...any) {
	for _, a := range args {
		if err, ok := a.(error); ok && (errors.Is(err, ErrClosed) || errors.Is(err, webrtc.ErrConnectionClosed)) {
			return
		}
	}
	select {
	case <-c.closed:
	default:
		c.t.Errorf(format, args...)
	}
}

func (c *testClient) signalLoop() {
	defer close(c.loop)
	for {
		var s Signal
		select {
		case <-c.closed:
			return
		case s = <-c.sigs:
		}
		pc := c.pub
		if s.PC == PCSubscribe {
			pc = c.sub
		}
		switch s.Type {
		case "answer":
			if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: s.SDP}); err != nil {
				c.errorf("%s: set answer: %v", c.id, err)
			}
		case "offer":
			c.mu.Lock()
			c.offers = append(c.offers, s.SDP)
			c.mu.Unlock()
			if c.lose.CompareAndSwap(true, false) {
				continue
			}
			if rd := pc.CurrentRemoteDescription(); rd != nil && rd.SDP == s.SDP {
				continue // an offer already answered, sent again
			}
			if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: s.SDP}); err != nil {
				c.errorf("%s: set offer: %v", c.id, err)
				continue
			}
			answer, err := pc.CreateAnswer(nil)
			if err == nil {
				err = pc.SetLocalDescription(answer)
			}
			if err == nil {
				err = c.peer.HandleAnswer(answer.SDP)
			}
			if err != nil {
				c.errorf("%s: answer: %v", c.id, err)
			}
		case "candidate":
			c.mu.Lock()
			c.cands = append(c.cands, s.PC+" "+s.Candidate.Candidate)
			c.mu.Unlock()
			_ = pc.AddICECandidate(*s.Candidate)
		}
	}
}

func (c *testClient) onTrack(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
	r := &received{stream: tr.StreamID(), kind: tr.Kind().String(), ssrc: uint32(tr.SSRC()), counters: map[uint32]bool{}}
	c.mu.Lock()
	c.tracks = append(c.tracks, r)
	c.mu.Unlock()
	for {
		p, _, err := tr.ReadRTP()
		if err != nil {
			return
		}
		c.mu.Lock()
		r.packets++
		r.seqs = append(r.seqs, p.SequenceNumber)
		r.tss = append(r.tss, p.Timestamp)
		if n := len(p.Payload); n >= 4 {
			r.counters[binary.BigEndian.Uint32(p.Payload[n-4:])] = true
		}
		if p.Extension && len(p.Extensions) > 0 {
			r.levels++
		}
		c.mu.Unlock()
	}
}

// sfuCandidates lists the candidates the SFU signaled ("pub candidate:...").
func (c *testClient) sfuCandidates() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.cands...)
}

// selectedPair is the candidate pair the sub connection uses.
func (c *testClient) selectedPair() *webrtc.ICECandidatePair {
	for _, r := range c.sub.GetReceivers() {
		if tr := r.Transport(); tr != nil {
			if p, err := tr.ICETransport().GetSelectedCandidatePair(); err == nil && p != nil {
				return p
			}
		}
	}
	return nil
}

// got returns a copy of what arrived from stream's track of kind (the
// latest such track), or nil.
func (c *testClient) got(stream, kind string) *received {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := len(c.tracks) - 1; i >= 0; i-- {
		r := c.tracks[i]
		if r.stream == stream && r.kind == kind {
			cp := *r
			cp.seqs = append([]uint16(nil), r.seqs...)
			cp.tss = append([]uint32(nil), r.tss...)
			cp.counters = make(map[uint32]bool, len(r.counters))
			for k := range r.counters {
				cp.counters[k] = true
			}
			return &cp
		}
	}
	return nil
}

// packets counts what arrived from stream, over all its tracks of kind.
// down returns the downTrack of a kind the SFU sends c (the last one
// found, nil if none).
func (c *testClient) down(kind webrtc.RTPCodecType) *downTrack {
	var d *downTrack
	c.peer.mu.Lock()
	defer c.peer.mu.Unlock()
	for up, s := range c.peer.subs {
		if up.kind == kind {
			d = s.down
		}
	}
	return d
}

func (c *testClient) packets(stream, kind string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, r := range c.tracks {
		if r.stream == stream && r.kind == kind {
			n += r.packets
		}
	}
	return n
}

// source is a synthetic media source a client publishes.
type source struct {
	track *webrtc.TrackLocalStaticRTP
	kind  string
	mu    sync.Mutex
	sent  uint32 // packets sent so far; also the last counter
	level func() uint8
}

func (s *source) count() uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent
}

// aliceToBob is the media tests' usual pair, in a new room of sfu:
// alice publishes audio and video (videoRate as publish takes it), bob
// (with bobOpts) may receive her, and it returns once he receives both.
// When the test ends the publishing stops and the room closes, before
// the clients do.
func aliceToBob(t *testing.T, sfu *SFU, bobOpts clientOpts, videoRate int) (room *Room, alice, bob *testClient, video *source) {
	t.Helper()
	room = sfu.NewRoom("r1")
	ctx, cancel := context.WithCancel(context.Background())
	alice = newTestClient(t, room, "alice", clientOpts{})
	bob = newTestClient(t, room, "bob", bobOpts)
	t.Cleanup(func() { // registered last: runs before the clients close
		cancel()
		room.Close()
	})
	_, video = alice.publish(ctx, true, true, videoRate)
	room.Allow("bob", "alice", true)
	waitFor(t, 10*time.Second, "bob receiving alice", func() bool {
		return bob.packets("alice", "video") > 30 && bob.packets("alice", "audio") > 10
	})
	return room, alice, bob, video
}

// publish adds an audio and/or a video source and negotiates the pub
// connection.
func (c *testClient) publish(ctx context.Context, audio, video bool, videoRate int) (a, v *source) {
	c.t.Helper()
	if audio {
		tr, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", c.id)
		if err != nil {
			c.t.Fatal(err)
		}
		a = &source{track: tr, kind: "audio"}
	}
	if video {
		tr, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "video", c.id)
		if err != nil {
			c.t.Fatal(err)
		}
		v = &source{track: tr, kind: "video"}
	}
	var senders []*webrtc.RTPSender
	for _, s := range []*source{a, v} {
		if s == nil {
			continue
		}
		sender, err := c.pub.AddTrack(s.track)
		if err != nil {
			c.t.Fatal(err)
		}
		senders = append(senders, sender)
		go func() {
			for {
				pkts, _, err := sender.ReadRTCP()
				if err != nil {
					return
				}
				if c.pubRTCP != nil {
					c.pubRTCP(pkts)
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
	if a != nil {
		go a.sendAudio(ctx, senders[0])
	}
	if v != nil {
		go v.sendVideo(ctx, videoRate)
	}
	return a, v
}

// sendAudio sends a 20 ms Opus-sized packet every 20 ms, with an audio
// level extension when a.level is set.
func (a *source) sendAudio(ctx context.Context, sender *webrtc.RTPSender) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	payload := make([]byte, 80)
	var levelID uint8
	for seq, ts := uint16(1000), uint32(0); ; seq, ts = seq+1, ts+960 {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		a.mu.Lock()
		a.sent++
		binary.BigEndian.PutUint32(payload[len(payload)-4:], a.sent)
		level := a.level
		a.mu.Unlock()
		p := &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: ts}, Payload: payload}
		if level != nil {
			if levelID == 0 {
				for _, e := range sender.GetParameters().HeaderExtensions {
					if e.URI == sdp.AudioLevelURI {
						levelID = uint8(e.ID)
					}
				}
			}
			if levelID != 0 {
				_ = p.Header.SetExtension(levelID, []byte{level()})
			}
		}
		_ = a.track.WriteRTP(p)
	}
}

// setLevel changes the audio level the source reports.
func (a *source) setLevel(level uint8) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.level = func() uint8 { return level }
}

// sendVideo sends 30 frames a second of packetsPerFrame packets each,
// VP8-shaped: each frame starts a partition, every 30th is a keyframe.
func (v *source) sendVideo(ctx context.Context, packetsPerFrame int) {
	if packetsPerFrame <= 0 {
		packetsPerFrame = 1
	}
	tick := time.NewTicker(33 * time.Millisecond)
	defer tick.Stop()
	payload := make([]byte, 1000)
	seq, ts := uint16(60000), uint32(0)
	for frame := 0; ; frame++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		ts += 3000
		for i := range packetsPerFrame {
			payload[0] = 0 // VP8 descriptor: continuation
			if i == 0 {
				payload[0] = 0x10 // start of partition 0
				payload[1] = 1    // inter frame
				if frame%30 == 0 {
					payload[1] = 0 // keyframe
				}
			}
			v.mu.Lock()
			v.sent++
			binary.BigEndian.PutUint32(payload[len(payload)-4:], v.sent)
			v.mu.Unlock()
			_ = v.track.WriteRTP(&rtp.Packet{Header: rtp.Header{
				Version: 2, SequenceNumber: seq, Timestamp: ts, Marker: i == packetsPerFrame-1,
			}, Payload: payload})
			seq++
		}
	}
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

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
	"github.com/pion/webrtc/v4"
)

// pliVideo is a VP8-shaped video source that, like a browser, sends a
// keyframe when it is sent a PLI (and as its first frame), and no other:
// the third frame after the PLI, as an encoder takes a moment.
type pliVideo struct {
	track *webrtc.TrackLocalStaticRTP
	plis  atomic.Int32
	want  atomic.Int32 // frames until a keyframe; 0 none wanted
	sent  atomic.Uint32
}

func (v *pliVideo) readRTCP(sender *webrtc.RTPSender) {
	for {
		pkts, _, err := sender.ReadRTCP()
		if err != nil {
			return
		}
		for _, p := range pkts {
			if _, ok := p.(*rtcp.PictureLossIndication); ok {
				v.plis.Add(1)
				v.want.CompareAndSwap(0, 3)
			}
		}
	}
}

// run sends 30 frames a second of 3 packets; each payload ends with the
// packet's counter.
func (v *pliVideo) run(ctx context.Context) {
	tick := time.NewTicker(33 * time.Millisecond)
	defer tick.Stop()
	payload := make([]byte, 600)
	seq, ts := uint16(30000), uint32(0)
	v.want.Store(1)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		ts += 3000
		key := false
		if n := v.want.Load(); n > 0 {
			key = n == 1
			v.want.Add(-1)
		}
		for i := range 3 {
			payload[0], payload[1] = 0, 1
			if i == 0 {
				payload[0] = 0x10
				if key {
					payload[1] = 0
				}
			}
			binary.BigEndian.PutUint32(payload[len(payload)-4:], v.sent.Add(1))
			_ = v.track.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: ts, Marker: i == 2}, Payload: payload})
			seq++
		}
	}
}

// arrival is one packet a recorder received, in order.
type arrival struct {
	seq     uint16
	ts      uint32
	counter uint32
	key     bool // the start of a VP8 keyframe
	at      time.Time
}

// recorder keeps, per stream and kind, every packet in arrival order.
type recorder struct {
	mu     sync.Mutex
	tracks map[string]int       // stream/kind -> tracks added
	got    map[string][]arrival // stream/kind -> packets
	ids    map[string]string    // stream/kind -> track id
}

func newRecorder(c *testClient) *recorder {
	r := &recorder{tracks: map[string]int{}, got: map[string][]arrival{}, ids: map[string]string{}}
	c.sub.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		key := tr.StreamID() + "/" + tr.Kind().String()
		r.mu.Lock()
		r.tracks[key]++
		r.ids[key] = tr.ID()
		r.mu.Unlock()
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			a := arrival{seq: p.SequenceNumber, ts: p.Timestamp, at: time.Now()}
			if n := len(p.Payload); n >= 4 {
				a.counter = binary.BigEndian.Uint32(p.Payload[n-4:])
			}
			a.key = len(p.Payload) > 1 && p.Payload[0] == 0x10 && p.Payload[1] == 0
			r.mu.Lock()
			r.got[key] = append(r.got[key], a)
			r.mu.Unlock()
		}
	})
	return r
}

func (r *recorder) packets(key string) []arrival {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]arrival(nil), r.got[key]...)
}

func (r *recorder) count(key string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got[key])
}

// publishPLIVideo publishes an audio source and a PLI-answering video
// source; screen, when set, is the video's track id and is marked as a
// screen share.
func publishPLIVideo(ctx context.Context, t *testing.T, c *testClient, videoID string, screen bool) (*source, *pliVideo) {
	t.Helper()
	at, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", c.id)
	if err != nil {
		t.Fatal(err)
	}
	vt, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, videoID, c.id)
	if err != nil {
		t.Fatal(err)
	}
	a, v := &source{track: at, kind: "audio"}, &pliVideo{track: vt}
	as, err := c.pub.AddTrack(at)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			if _, _, err := as.ReadRTCP(); err != nil {
				return
			}
		}
	}()
	vs, err := c.pub.AddTrack(vt)
	if err != nil {
		t.Fatal(err)
	}
	go v.readRTCP(vs)
	offer, err := c.pub.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.pub.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	if screen {
		c.peer.SetScreenTracks([]string{videoID})
	}
	if err := c.peer.HandleOffer(offer.SDP); err != nil {
		t.Fatal(err)
	}
	go a.sendAudio(ctx, as)
	go v.run(ctx)
	return a, v
}

func (c *testClient) offerCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.offers)
}

// firstAfter returns the index of the first packet whose counter is
// above last, -1 if none.
func firstAfter(ps []arrival, last uint32) int {
	for i, p := range ps {
		if p.counter > last {
			return i
		}
	}
	return -1
}

// lastBefore returns the newest packet (highest counter) of ps: not a
// late retransmission.
func lastBefore(ps []arrival) arrival {
	var best arrival
	for _, p := range ps {
		if p.counter >= best.counter {
			best = p
		}
	}
	return best
}

// TestPauseResume: at the forwarding layer, Allow(false) pauses a
// subscription (nothing written after it returns, NACKs no longer
// answered, no renegotiation) and Allow(true) resumes it without
// renegotiation: the receiver's sequence numbers continue without a gap,
// its timestamps advance by about the time elapsed, and its first video
// packet after the pause starts a keyframe, asked for on resuming. A mute
// pauses and resumes the audio the same way.
func TestPauseResume(t *testing.T) {
	sfu := newTestSFU(t, Params{})
	room := sfu.NewRoom("pause")
	defer room.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	alice := newTestClient(t, room, "alice", clientOpts{})
	bob := newTestClient(t, room, "bob", clientOpts{discard: true})
	rec := newRecorder(bob)
	audio, video := publishPLIVideo(ctx, t, alice, "camera", false)
	room.Allow("bob", "alice", true)
	waitFor(t, 10*time.Second, "bob receiving alice", func() bool {
		return rec.count("alice/video") > 30 && rec.count("alice/audio") > 15
	})
	var dv, da *downTrack
	for _, d := range bob.peer.downs() {
		if d.up.kind == webrtc.RTPCodecTypeVideo {
			dv = d
		} else {
			da = d
		}
	}
	if dv == nil || da == nil {
		t.Fatal("bob has no video or audio downTrack")
	}
	// A NACK of a packet sent is answered while forwarding...
	nackLast := func() {
		ps := rec.packets("alice/video")
		dv.nack(&rtcp.TransportLayerNack{Nacks: []rtcp.NackPair{{PacketID: ps[len(ps)-2].seq}}})
	}
	resent := dv.resent.Load()
	nackLast()
	waitFor(t, 5*time.Second, "a NACK answered", func() bool { return dv.resent.Load() > resent })

	offers := bob.offerCount()
	room.Allow("bob", "alice", false)
	pausedAt := time.Now()
	lastA, lastV := audio.count(), video.sent.Load()
	sentA, sentV, resent := da.sent.Load(), dv.sent.Load(), dv.resent.Load()
	if n := len(bob.peer.Subscriptions()); n != 0 {
		t.Fatalf("Subscriptions lists %d paused tracks", n)
	}
	nackLast() // ...and not while paused
	time.Sleep(time.Second)
	if a, v := da.sent.Load()-sentA, dv.sent.Load()-sentV; a+v != 0 {
		t.Fatalf("%d audio and %d video packets written to bob after Allow(false) returned", a, v)
	}
	if n := dv.resent.Load() - resent; n != 0 {
		t.Fatalf("%d retransmissions written to a paused subscriber", n)
	}
	for _, k := range []struct {
		key  string
		last uint32
	}{{"alice/audio", lastA}, {"alice/video", lastV}} {
		if i := firstAfter(rec.packets(k.key), k.last); i >= 0 {
			t.Fatalf("bob received %s sent after Allow(false) returned", k.key)
		}
	}

	plis := video.plis.Load()
	resumedAt := time.Now()
	room.Allow("bob", "alice", true)
	lastV2 := video.sent.Load()
	waitFor(t, 10*time.Second, "bob receiving alice again", func() bool {
		return firstAfter(rec.packets("alice/video"), lastV2) >= 0 && firstAfter(rec.packets("alice/audio"), lastA) >= 0
	})
	t.Logf("video back %s after Allow(true); PLIs %d -> %d", time.Since(resumedAt), plis, video.plis.Load())
	if video.plis.Load() <= plis {
		t.Error("no keyframe was asked of the publisher on resuming")
	}
	if n := bob.offerCount(); n != offers {
		t.Fatalf("pausing and resuming sent %d sub offers", n-offers)
	}
	if n := len(bob.peer.Subscriptions()); n != 2 {
		t.Fatalf("Subscriptions lists %d tracks after resuming, want 2", n)
	}
	rec.mu.Lock()
	tracks := rec.tracks["alice/video"] + rec.tracks["alice/audio"]
	rec.mu.Unlock()
	if tracks != 2 {
		t.Fatalf("bob's connection got %d tracks of alice, want the same 2 throughout", tracks)
	}
	for _, k := range []struct {
		key   string
		last  uint32
		clock float64
	}{{"alice/audio", lastA, 48000}, {"alice/video", lastV, 90000}} {
		ps := rec.packets(k.key)
		i := firstAfter(ps, k.last)
		before, after := lastBefore(ps[:i]), ps[i]
		if after.seq != before.seq+1 {
			t.Errorf("%s: sequence %d before the pause, %d after: not continuous", k.key, before.seq, after.seq)
		}
		gap := after.at.Sub(before.at).Seconds()
		dts := float64(int32(after.ts-before.ts)) / k.clock
		if dts <= 0 || dts < gap-0.3 || dts > gap+0.3 {
			t.Errorf("%s: timestamp advanced %.3fs across a pause of %.3fs", k.key, dts, gap)
		}
		if k.key == "alice/video" && !after.key {
			t.Errorf("the first video packet after the pause (counter %d) is not a keyframe", after.counter)
		}
	}
	if gap := time.Since(pausedAt); gap < time.Second {
		t.Fatalf("paused only %s", gap)
	}

	// A mute pauses the audio alone, and unmuting resumes it in place.
	room.SetAudioMuted("alice", true)
	lastA = audio.count()
	vBase := rec.count("alice/video")
	time.Sleep(600 * time.Millisecond)
	if i := firstAfter(rec.packets("alice/audio"), lastA); i >= 0 {
		t.Fatal("bob received muted audio")
	}
	if rec.count("alice/video") < vBase+5 {
		t.Fatal("the mute stopped the video")
	}
	room.SetAudioMuted("alice", false)
	waitFor(t, 10*time.Second, "audio after unmuting", func() bool {
		return firstAfter(rec.packets("alice/audio"), lastA) >= 0
	})
	ps := rec.packets("alice/audio")
	if i := firstAfter(ps, lastA); ps[i].seq != lastBefore(ps[:i]).seq+1 {
		t.Errorf("audio sequence %d before the mute, %d after", lastBefore(ps[:i]).seq, ps[i].seq)
	}
	if n := bob.offerCount(); n != offers {
		t.Fatalf("muting and unmuting sent %d sub offers", n-offers)
	}
}

// TestScreenTrackStream: a track the publisher marks as a screen share
// reaches subscribers in stream "<publisher>.screen", with the same
// visibility as its other tracks; a subscriber never allowed gets no
// track of it added.
func TestScreenTrackStream(t *testing.T) {
	sfu := newTestSFU(t, Params{})
	room := sfu.NewRoom("screen")
	defer room.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	alice := newTestClient(t, room, "alice", clientOpts{})
	bob := newTestClient(t, room, "bob", clientOpts{discard: true})
	carol := newTestClient(t, room, "carol", clientOpts{discard: true})
	bobRec, carolRec := newRecorder(bob), newRecorder(carol)
	room.Allow("bob", "alice", true)
	publishPLIVideo(ctx, t, alice, "draft-agreement", true)
	waitFor(t, 10*time.Second, "bob receiving alice's screen", func() bool {
		return bobRec.count("alice"+ScreenStreamSuffix+"/video") > 10 && bobRec.count("alice/audio") > 5
	})
	bobRec.mu.Lock()
	id, camera := bobRec.ids["alice.screen/video"], bobRec.tracks["alice/video"]
	bobRec.mu.Unlock()
	if id != "alice-draft-agreement" || camera != 0 {
		t.Fatalf("screen track id %q, %d video tracks in alice's camera stream", id, camera)
	}
	time.Sleep(300 * time.Millisecond)
	carol.mu.Lock()
	for _, o := range carol.offers {
		if strings.Contains(o, "draft-agreement") {
			t.Error("carol, never allowed, was offered alice's screen")
		}
	}
	carol.mu.Unlock()
	if n := carolRec.count("alice.screen/video"); n != 0 {
		t.Fatalf("carol received %d screen packets", n)
	}
	room.Allow("carol", "alice", true)
	waitFor(t, 10*time.Second, "carol receiving alice's screen", func() bool {
		return carolRec.count("alice.screen/video") > 10
	})
}

// TestMutedIsNobodysSpeaker: a muted publisher, however loud, is not an
// active speaker for those whose copy of its audio is paused.
func TestMutedIsNobodysSpeaker(t *testing.T) {
	sfu := newTestSFU(t, Params{})
	room := sfu.NewRoom("mute-speaker")
	defer room.Close()
	speakerOf := watchSpeakers(room)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	alice := newTestClient(t, room, "alice", clientOpts{})
	newTestClient(t, room, "bob", clientOpts{})
	a, _ := alice.publish(ctx, true, false, 0)
	a.setLevel(20)
	room.Allow("bob", "alice", true)
	waitFor(t, 5*time.Second, "alice speaking to bob", func() bool { return speakerOf("bob") == "alice" })
	room.SetAudioMuted("alice", true)
	waitFor(t, 3*time.Second, "bob's speaker cleared", func() bool { return speakerOf("bob") == "" })
	time.Sleep(4 * speakerTick)
	if s := speakerOf("bob"); s != "" {
		t.Fatalf("bob was told %q speaks while muted", s)
	}
	room.SetAudioMuted("alice", false)
	waitFor(t, 5*time.Second, "alice speaking again", func() bool { return speakerOf("bob") == "alice" })
}

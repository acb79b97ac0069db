package main

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/concord-odr/concord/cases"
	"github.com/concord-odr/concord/cases/joinlink"
)

// pionClient is a synthetic participant: it joins through the real
// signaling endpoint, publishes an audio and a video track, and counts
// the RTP it receives per publishing participant.
type pionClient struct {
	t    *testing.T
	name string
	ws   *websocket.Conn
	wmu  sync.Mutex
	pub  *webrtc.PeerConnection
	sub  *webrtc.PeerConnection

	mu       sync.Mutex
	received map[string]map[string]int // stream (participant) id -> kind -> packets
	lastRTP  map[string]time.Time      // stream id -> arrival of its latest packet
	joined   map[string]any
	room     map[string]any // the latest room view
	chats    []map[string]any
	left     map[string]bool // participants the server said left
	closed   bool
	errors   []map[string]any
	ended    string
	types    map[string]int // messages received, by type

	// Since watchFrom's time: the first arrival per "stream/kind".
	watchAt time.Time
	first   map[string]time.Time
}

func clientAPI(t *testing.T) *webrtc.API {
	t.Helper()
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(me, ir); err != nil {
		t.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
}

func wsURL(base string) string { return "ws" + strings.TrimPrefix(base, "http") + "/ws" }

// dialSignaling opens a socket and sends join; it returns the socket and
// the server's first answer.
func dialSignaling(t *testing.T, base, token string) (*websocket.Conn, map[string]any) {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(wsURL(base), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ws.WriteJSON(map[string]any{"type": "join", "token": token}); err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	var first map[string]any
	if err := ws.ReadJSON(&first); err != nil {
		t.Fatalf("read first message: %v", err)
	}
	_ = ws.SetReadDeadline(time.Time{})
	return ws, first
}

func newPionClient(ctx context.Context, t *testing.T, name, base, token string) *pionClient {
	t.Helper()
	ws, first := dialSignaling(t, base, token)
	if first["type"] != "joined" {
		t.Fatalf("%s: first message %v, want joined", name, first)
	}
	c := &pionClient{t: t, name: name, ws: ws, received: map[string]map[string]int{}, lastRTP: map[string]time.Time{}, first: map[string]time.Time{}, left: map[string]bool{}, types: map[string]int{}, joined: first}
	api := clientAPI(t)
	var err error
	if c.pub, err = api.NewPeerConnection(webrtc.Configuration{}); err != nil {
		t.Fatal(err)
	}
	if c.sub, err = api.NewPeerConnection(webrtc.Configuration{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.close() })
	for pcName, pc := range map[string]*webrtc.PeerConnection{"pub": c.pub, "sub": c.sub} {
		pcName := pcName
		pc.OnICECandidate(func(cand *webrtc.ICECandidate) {
			if cand != nil {
				c.send(map[string]any{"type": "candidate", "pc": pcName, "candidate": cand.ToJSON()})
			}
		})
	}
	c.sub.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		stream, kind := tr.StreamID(), tr.Kind().String()
		for {
			if _, _, err := tr.ReadRTP(); err != nil {
				return
			}
			c.mu.Lock()
			if c.received[stream] == nil {
				c.received[stream] = map[string]int{}
			}
			c.received[stream][kind]++
			now := time.Now()
			c.lastRTP[stream] = now
			if k := stream + "/" + kind; !c.watchAt.IsZero() && now.After(c.watchAt) && c.first[k].IsZero() {
				c.first[k] = now
			}
			c.mu.Unlock()
		}
	})

	audio, _ := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", name)
	video, _ := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "video", name)
	sender, err := c.pub.AddTrack(audio)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			if _, _, err := sender.ReadRTCP(); err != nil {
				return
			}
		}
	}()
	c.addVideo(ctx, video)
	go writeSynthetic(ctx, audio, 20*time.Millisecond, 960, 111, nil)

	go c.readLoop()
	offer, err := c.pub.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.pub.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	c.send(map[string]any{"type": "offer", "pc": "pub", "sdp": offer.SDP})
	return c
}

// addVideo publishes a VP8-shaped video track that, like a browser's,
// sends a keyframe first and whenever it gets a PLI (only then).
func (c *pionClient) addVideo(ctx context.Context, video *webrtc.TrackLocalStaticRTP) {
	c.t.Helper()
	sender, err := c.pub.AddTrack(video)
	if err != nil {
		c.t.Fatal(err)
	}
	key := &atomic.Bool{}
	key.Store(true)
	go func() {
		for {
			pkts, _, err := sender.ReadRTCP()
			if err != nil {
				return
			}
			for _, p := range pkts {
				if _, ok := p.(*rtcp.PictureLossIndication); ok {
					key.Store(true)
				}
			}
		}
	}()
	go writeSynthetic(ctx, video, 33*time.Millisecond, 3000, 96, key)
}

// watchFrom starts noting, per stream and kind, the first packet that
// arrives after at.
func (c *pionClient) watchFrom(at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.watchAt, c.first = at, map[string]time.Time{}
}

// firstSince returns when the first packet of stream's kind arrived
// since watchFrom, zero if none yet.
func (c *pionClient) firstSince(stream, kind string) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.first[stream+"/"+kind]
}

// writeSynthetic sends packets of recognisable payload until ctx ends.
// With key set, the payload is VP8-shaped (one packet a frame), a
// keyframe when key is set, which it clears.
func writeSynthetic(ctx context.Context, tr *webrtc.TrackLocalStaticRTP, every time.Duration, tsStep uint32, pt uint8, key *atomic.Bool) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	payload := make([]byte, 200)
	for i := range payload {
		payload[i] = byte(i)
	}
	var seq uint16
	var ts uint32
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			seq++
			ts += tsStep
			if key != nil {
				payload[0], payload[1] = 0x10, 1 // start of partition 0, inter frame
				if key.Swap(false) {
					payload[1] = 0
				}
			}
			_ = tr.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: pt, SequenceNumber: seq, Timestamp: ts, Marker: true}, Payload: payload})
		}
	}
}

func (c *pionClient) send(v any) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.WriteJSON(v)
}

// failf reports a client-side failure unless the client is shutting down.
func (c *pionClient) failf(format string, args ...any) {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if !closed {
		c.t.Errorf(format, args...)
	}
}

func (c *pionClient) readLoop() {
	c.wmu.Lock()
	ws := c.ws
	c.wmu.Unlock()
	for {
		var m map[string]any
		if err := ws.ReadJSON(&m); err != nil {
			return
		}
		pc, _ := m["pc"].(string)
		c.mu.Lock()
		typ, _ := m["type"].(string)
		c.types[typ]++
		c.mu.Unlock()
		switch m["type"] {
		case "answer":
			if err := c.pub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: m["sdp"].(string)}); err != nil {
				c.failf("%s: pub answer: %v", c.name, err)
			}
		case "offer":
			if err := c.sub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: m["sdp"].(string)}); err != nil {
				c.failf("%s: sub offer: %v", c.name, err)
				continue
			}
			answer, err := c.sub.CreateAnswer(nil)
			if err != nil {
				c.failf("%s: create answer: %v", c.name, err)
				continue
			}
			if err := c.sub.SetLocalDescription(answer); err != nil {
				c.failf("%s: set answer: %v", c.name, err)
				continue
			}
			c.send(map[string]any{"type": "answer", "pc": "sub", "sdp": answer.SDP})
		case "candidate":
			b, _ := json.Marshal(m["candidate"])
			var init webrtc.ICECandidateInit
			_ = json.Unmarshal(b, &init)
			target := c.pub
			if pc == "sub" {
				target = c.sub
			}
			_ = target.AddICECandidate(init)
		case "room":
			c.mu.Lock()
			c.room, _ = m["room"].(map[string]any)
			c.mu.Unlock()
		case "participant_left":
			c.mu.Lock()
			id, _ := m["participantId"].(string)
			c.left[id] = true
			c.mu.Unlock()
		case "chat":
			c.mu.Lock()
			c.chats = append(c.chats, m)
			c.mu.Unlock()
		case "session_ended":
			c.mu.Lock()
			c.ended, _ = m["result"].(string)
			c.mu.Unlock()
		case "error":
			c.mu.Lock()
			c.errors = append(c.errors, m)
			c.mu.Unlock()
		}
	}
}

// count reports how many messages of a type the client received.
func (c *pionClient) count(typ string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.types[typ]
}

// stateOf returns a participant's lobby state in this client's latest
// room view.
func (c *pionClient) stateOf(id string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	ps, _ := c.room["participants"].([]any)
	for _, p := range ps {
		if pm, _ := p.(map[string]any); pm["id"] == id {
			st, _ := pm["state"].(string)
			return st
		}
	}
	return ""
}

// admitAll has the mediator client admit the parties once they consent.
func admitAll(t *testing.T, med *pionClient, parties ...*pionClient) {
	t.Helper()
	for _, p := range parties {
		p.send(map[string]any{"type": "consent"})
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		med.send(map[string]any{"type": "admit_all"})
		time.Sleep(50 * time.Millisecond)
		done := true
		for _, p := range parties {
			if med.stateOf(p.selfID()) != "admitted" {
				done = false
			}
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("parties were not admitted within 5s")
		}
	}
}

// from reports how many audio and video packets arrived from stream.
func (c *pionClient) from(stream string) (audio, video int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.received[stream]["audio"], c.received[stream]["video"]
}

func (c *pionClient) streams() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.received)
}

func (c *pionClient) selfID() string {
	self, _ := c.joined["self"].(map[string]any)
	id, _ := self["id"].(string)
	return id
}

func (c *pionClient) close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	_ = c.ws.Close()
	_ = c.pub.Close()
	_ = c.sub.Close()
}

// tokenFromURL extracts the token of a join URL.
func tokenFromURL(u string) string {
	_, tok, _ := strings.Cut(u, "#")
	return tok
}

// TestThreePartiesThroughSFU is the walking skeleton's media proof: three
// participants publish audio and video; each receives both kinds from
// the other two through the server, and a participant of another session
// receives nothing.
func TestThreePartiesThroughSFU(t *testing.T) {
	ts := startTestServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// A second case and session, whose participant must see none of it.
	other := otherSession(t, ts)

	clients := []*pionClient{
		newPionClient(ctx, t, "mediator", ts.BaseURL, tokenFromURL(ts.Demo.Mediator)),
		newPionClient(ctx, t, "consumer", ts.BaseURL, tokenFromURL(ts.Demo.Consumer)),
		newPionClient(ctx, t, "merchant", ts.BaseURL, tokenFromURL(ts.Demo.Merchant)),
	}
	outsider := newPionClient(ctx, t, "outsider", ts.BaseURL, other)
	outsider.send(map[string]any{"type": "consent"})
	admitAll(t, clients[0], clients[1], clients[2])

	waitAllReceiveAll(t, clients, 5*time.Second)
	for _, c := range clients {
		if _, v := c.from(c.selfID()); v != 0 {
			t.Errorf("%s received its own video", c.name)
		}
		if n := c.streams(); n != 2 {
			t.Errorf("%s receives %d streams, want 2", c.name, n)
		}
	}
	time.Sleep(300 * time.Millisecond)
	if n := outsider.streams(); n != 0 {
		t.Fatalf("a participant of another session received %d streams", n)
	}
	// The outsider's own media reached no one in the demo room.
	for _, c := range clients {
		if a, v := c.from(outsider.selfID()); a+v != 0 {
			t.Fatalf("%s received the outsider's media", c.name)
		}
	}
}

// waitAllReceiveAll waits until every client has received at least five
// audio and five video packets from each of the others.
func waitAllReceiveAll(t *testing.T, clients []*pionClient, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		done := true
		for _, c := range clients {
			for _, o := range clients {
				if o == c {
					continue
				}
				a, v := c.from(o.selfID())
				if a < 5 || v < 5 {
					done = false
				}
			}
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			for _, c := range clients {
				c.mu.Lock()
				t.Logf("%s (%s) received %v errors %v", c.name, c.selfID(), c.received, c.errors)
				c.mu.Unlock()
			}
			t.Fatalf("not every participant received audio and video from each other one within %v", d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// otherSession creates a second case with a session and returns a join
// token for its applicant.
func otherSession(t *testing.T, ts *testServer) string {
	t.Helper()
	ctx := context.Background()
	c, _, err := ts.cases.OpenCase(ctx, cases.NewCase{
		InstitutionID: demoInstitutionID, Category: "online-payment", Channel: "online",
		Applicant: cases.Party{Name: "Other applicant"}, Respondent: cases.Party{Name: "Other merchant"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := walkTo(ctx, ts.cases, c, cases.StateAccepted, "test"); err != nil {
		t.Fatal(err)
	}
	sess, err := ts.cases.ScheduleSession(ctx, c.ID, "test", []cases.Participant{
		{Name: "M2", Role: cases.RoleMediator, Side: cases.SideNeutral},
		{Name: "A2", Role: cases.RoleParty, Side: cases.SideApplicant},
	})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := ts.signer.Issue(joinlink.Claims{CaseID: c.ID, SessionID: sess.ID, Role: cases.RoleParty, Side: cases.SideApplicant,
		RegisteredClaims: jwt.RegisteredClaims{Subject: sess.Participants[1].ID}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

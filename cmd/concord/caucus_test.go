package main

import (
	"context"
	"testing"
	"time"
)

// roomOfThree joins the demo's mediator, consumer (applicant) and
// merchant (respondent) as pion clients and admits the parties.
func roomOfThree(t *testing.T, ctx context.Context, ts *testServer) (med, app, resp *pionClient) {
	t.Helper()
	med = newPionClient(ctx, t, "mediator", ts.BaseURL, tokenFromURL(ts.Demo.Mediator))
	app = newPionClient(ctx, t, "consumer", ts.BaseURL, tokenFromURL(ts.Demo.Consumer))
	resp = newPionClient(ctx, t, "merchant", ts.BaseURL, tokenFromURL(ts.Demo.Merchant))
	admitAll(t, med, app, resp)
	waitReceiving(t, 5*time.Second, [][2]*pionClient{{med, app}, {med, resp}, {app, med}, {app, resp}, {resp, med}, {resp, app}})
	return med, app, resp
}

// total counts every packet sub received from pub.
func total(sub, pub *pionClient) int {
	a, v := sub.from(pub.selfID())
	return a + v
}

// waitReceiving waits until, for each {sub, pub} pair, sub's count from
// pub grows.
func waitReceiving(t *testing.T, within time.Duration, pairs [][2]*pionClient) {
	t.Helper()
	start := make([]int, len(pairs))
	for i, p := range pairs {
		start[i] = total(p[0], p[1])
	}
	deadline := time.Now().Add(within)
	for {
		ok := true
		for i, p := range pairs {
			if total(p[0], p[1]) < start[i]+3 {
				ok = false
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			for i, p := range pairs {
				t.Logf("%s from %s: %d -> %d", p[0].name, p[1].name, start[i], total(p[0], p[1]))
			}
			t.Fatalf("media did not flow within %s", within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// quiet waits until no packet has arrived on any of the {sub, pub} pairs
// for 300 ms (at most 5 s), so that a baseline taken afterwards excludes
// packets forwarded before a change.
func quiet(t *testing.T, pairs [][2]*pionClient) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		latest := time.Time{}
		for _, p := range pairs {
			p[0].mu.Lock()
			if at := p[0].lastRTP[p[1].selfID()]; at.After(latest) {
				latest = at
			}
			p[0].mu.Unlock()
		}
		if time.Since(latest) > 300*time.Millisecond {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("media kept flowing %s after the change", time.Since(latest))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func setMode(c *pionClient, caucus bool, side string) time.Time {
	mode := map[string]any{"caucus": caucus}
	if caucus {
		mode["side"] = side
	}
	at := time.Now()
	c.send(map[string]any{"type": "set_mode", "mode": mode})
	return at
}

func chatsFrom(c *pionClient, from string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, m := range c.chats {
		if m["from"] == from {
			n++
		}
	}
	return n
}

// TestCaucusIsolation proves confidentiality at packet level through the
// real server: during a caucus with the applicant, the respondent's
// connections receive no RTP from the applicant or the mediator (and the
// last packet arrived within 100 ms of the mode change), no chat, and
// audio and video flow again within 500 ms of the return to joint: the
// paused tracks resume without renegotiation.
func TestCaucusIsolation(t *testing.T) {
	ts := startTestServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	med, app, resp := roomOfThree(t, ctx, ts)

	changedAt := setMode(med, true, "applicant")
	// Settle: packets forwarded before the change may still be in the
	// client's sockets and buffers (on a loaded machine, for a while).
	quiet(t, [][2]*pionClient{{resp, app}, {resp, med}, {app, resp}})
	fromApp, fromMed := total(resp, app), total(resp, med)
	appFromResp := total(app, resp)
	for _, who := range []*pionClient{app, med} {
		resp.mu.Lock()
		last := resp.lastRTP[who.selfID()]
		resp.mu.Unlock()
		t.Logf("respondent's last packet from %s arrived %s after the caucus was asked for", who.name, last.Sub(changedAt))
	}
	app.send(map[string]any{"type": "chat", "text": "my bottom line is 800 yuan"})
	time.Sleep(2 * time.Second)
	if n := total(resp, app) - fromApp; n != 0 {
		t.Errorf("respondent received %d packets from the applicant during the caucus", n)
	}
	if n := total(resp, med) - fromMed; n != 0 {
		t.Errorf("respondent received %d packets from the mediator during the caucus", n)
	}
	if n := total(app, resp) - appFromResp; n != 0 {
		t.Errorf("applicant received %d packets from the respondent during the caucus", n)
	}
	if chatsFrom(med, app.selfID()) != 1 {
		t.Error("the mediator did not get the caucus chat")
	}
	if chatsFrom(resp, app.selfID()) != 0 {
		t.Error("the respondent got the applicant's caucus chat")
	}
	// The caucus itself keeps working.
	waitReceiving(t, time.Second, [][2]*pionClient{{med, app}, {app, med}})

	offers := resp.count("offer")
	for _, c := range []*pionClient{resp, app} {
		c.watchFrom(time.Now())
	}
	back := setMode(med, false, "")
	type flow struct {
		sub, pub *pionClient
		kind     string
	}
	var flows []flow
	for _, kind := range []string{"audio", "video"} {
		flows = append(flows, flow{resp, app, kind}, flow{resp, med, kind}, flow{app, resp, kind})
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, f := range flows {
		for f.sub.firstSince(f.pub.selfID(), f.kind).IsZero() {
			if time.Now().After(deadline) {
				t.Fatalf("%s received no %s from %s after the return to joint", f.sub.name, f.kind, f.pub.name)
			}
			time.Sleep(10 * time.Millisecond)
		}
		// No renegotiation is involved, so this holds on a loaded machine.
		d := f.sub.firstSince(f.pub.selfID(), f.kind).Sub(back)
		t.Logf("%s's %s from %s flowed again %s after the return to joint", f.sub.name, f.kind, f.pub.name, d)
		if d >= 500*time.Millisecond {
			t.Errorf("%s's %s from %s came back %s after the return to joint, want < 500ms", f.sub.name, f.kind, f.pub.name, d)
		}
	}
	if n := resp.count("offer") - offers; n != 0 {
		t.Errorf("the return to joint sent the respondent %d sub offers", n)
	}
	resp.send(map[string]any{"type": "chat", "text": "joint again"})
	time.Sleep(200 * time.Millisecond)
	if chatsFrom(app, resp.selfID()) != 1 || chatsFrom(med, resp.selfID()) != 1 {
		t.Error("joint chat did not reach everyone")
	}
}

// TestRapidCaucusToggles switches 50 times between the two caucuses: the
// two sides are never in one room, so neither may ever receive a packet
// or a chat of the other.
func TestRapidCaucusToggles(t *testing.T) {
	ts := startTestServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	med, app, resp := roomOfThree(t, ctx, ts)
	setMode(med, true, "applicant")
	quiet(t, [][2]*pionClient{{app, resp}, {resp, app}})
	appFromResp, respFromApp := total(app, resp), total(resp, app)
	for i := 0; i < 50; i++ {
		side := []string{"respondent", "applicant"}[i%2]
		setMode(med, true, side)
		app.send(map[string]any{"type": "chat", "text": "applicant secret"})
		resp.send(map[string]any{"type": "chat", "text": "respondent secret"})
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	if n := total(app, resp) - appFromResp; n != 0 {
		t.Errorf("applicant received %d packets from the respondent", n)
	}
	if n := total(resp, app) - respFromApp; n != 0 {
		t.Errorf("respondent received %d packets from the applicant", n)
	}
	if chatsFrom(app, resp.selfID()) != 0 || chatsFrom(resp, app.selfID()) != 0 {
		t.Error("a chat crossed between the caucuses")
	}
	// The server still works: back to joint, everyone hears everyone.
	setMode(med, false, "")
	waitReceiving(t, 3*time.Second, [][2]*pionClient{{app, resp}, {resp, app}, {med, app}})
}

// TestLobbyAndRemoval: a waiting party receives and sends nothing; a
// removed party is disconnected and its link no longer works.
func TestLobbyAndRemoval(t *testing.T) {
	ts := startTestServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	med := newPionClient(ctx, t, "mediator", ts.BaseURL, tokenFromURL(ts.Demo.Mediator))
	app := newPionClient(ctx, t, "consumer", ts.BaseURL, tokenFromURL(ts.Demo.Consumer))
	time.Sleep(time.Second)
	if total(med, app)+total(app, med) != 0 {
		t.Fatal("media flowed to or from the lobby")
	}
	// Admission needs consent.
	med.send(map[string]any{"type": "admit", "participantId": app.selfID()})
	time.Sleep(100 * time.Millisecond)
	med.mu.Lock()
	gotNoConsent := len(med.errors) > 0 && med.errors[len(med.errors)-1]["code"] == "no_consent"
	med.mu.Unlock()
	if !gotNoConsent {
		t.Fatal("admitting without consent was not refused")
	}
	// A party cannot run the room.
	app.send(map[string]any{"type": "set_mode", "mode": map[string]any{"caucus": false}})
	time.Sleep(100 * time.Millisecond)
	app.mu.Lock()
	gotNotAllowed := len(app.errors) > 0 && app.errors[len(app.errors)-1]["code"] == "not_allowed"
	app.mu.Unlock()
	if !gotNotAllowed {
		t.Fatal("a party's set_mode was not refused")
	}
	admitAll(t, med, app)
	waitReceiving(t, 5*time.Second, [][2]*pionClient{{med, app}, {app, med}})

	med.send(map[string]any{"type": "remove", "participantId": app.selfID()})
	time.Sleep(300 * time.Millisecond)
	app.mu.Lock()
	removed := len(app.errors) > 0 && app.errors[len(app.errors)-1]["code"] == "removed"
	app.mu.Unlock()
	if !removed {
		t.Fatal("the removed party was not told")
	}
	if _, m := dialSignaling(t, ts.BaseURL, tokenFromURL(ts.Demo.Consumer)); m["code"] != "removed" {
		t.Fatalf("removed party's link still works: %v", m)
	}
	// The timeline is in the case record, without content.
	var rec struct {
		Events []struct {
			Type string `json:"type"`
		} `json:"events"`
	}
	getJSON(t, ts.BaseURL+"/api/v1/cases/"+ts.Demo.CaseID, ts.MediatorToken, &rec)
	seen := map[string]bool{}
	for _, e := range rec.Events {
		seen[e.Type] = true
	}
	for _, want := range []string{"room.consent", "room.admitted", "room.removed"} {
		if !seen[want] {
			t.Errorf("timeline lacks %s: %v", want, seen)
		}
	}
}

// TestReconnectDuringCaucus: a respondent that reconnects (a new device)
// during a caucus with the applicant gets nothing of it, and receives
// again when the mediator returns to joint.
func TestReconnectDuringCaucus(t *testing.T) {
	ts := startTestServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	med, app, resp := roomOfThree(t, ctx, ts)
	setMode(med, true, "applicant")
	time.Sleep(200 * time.Millisecond)
	resp.close()
	again := newPionClient(ctx, t, "merchant-again", ts.BaseURL, tokenFromURL(ts.Demo.Merchant))
	again.send(map[string]any{"type": "consent"})
	time.Sleep(1500 * time.Millisecond)
	if n := total(again, app) + total(again, med); n != 0 {
		t.Fatalf("the reconnected respondent received %d packets from the caucus", n)
	}
	if again.stateOf(again.selfID()) != "admitted" {
		// Its admission survived the reconnect.
		t.Fatalf("reconnected respondent state %q", again.stateOf(again.selfID()))
	}
	setMode(med, false, "")
	waitReceiving(t, 3*time.Second, [][2]*pionClient{{again, app}, {again, med}, {app, again}})
}

// TestMuteIsEnforcedByServer: a participant muted by the mediator reaches
// nobody with its audio, whatever its client sends, while its video still
// flows; its own unmute lets the audio through again.
func TestMuteIsEnforcedByServer(t *testing.T) {
	ts := startTestServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	med, app, resp := roomOfThree(t, ctx, ts)
	med.send(map[string]any{"type": "mute", "participantId": app.selfID()})
	quietAudio := func() (int, int) {
		time.Sleep(500 * time.Millisecond)
		a1, _ := resp.from(app.selfID())
		a2, _ := med.from(app.selfID())
		return a1, a2
	}
	r1, m1 := quietAudio()
	time.Sleep(1500 * time.Millisecond)
	r2, m2 := quietAudio()
	if r2 != r1 || m2 != m1 {
		t.Fatalf("muted audio still forwarded: respondent %d -> %d, mediator %d -> %d", r1, r2, m1, m2)
	}
	_, v1 := resp.from(app.selfID())
	time.Sleep(500 * time.Millisecond)
	if _, v2 := resp.from(app.selfID()); v2 <= v1 {
		t.Fatal("the muted participant's video stopped too")
	}
	app.send(map[string]any{"type": "unmute"})
	deadline := time.Now().Add(3 * time.Second)
	for {
		if a, _ := resp.from(app.selfID()); a > r2+5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("audio did not come back after the participant unmuted")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestCaucusDurationsRecorded: the case record adds up the time spent in
// joint session and in each side's caucus, from the room's timeline.
func TestCaucusDurationsRecorded(t *testing.T) {
	ts := startTestServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	med, _, _ := roomOfThree(t, ctx, ts)
	setMode(med, true, "applicant")
	time.Sleep(700 * time.Millisecond)
	setMode(med, true, "respondent")
	time.Sleep(400 * time.Millisecond)
	setMode(med, false, "")
	time.Sleep(200 * time.Millisecond)
	var rec struct {
		SessionModes map[string]map[string]float64 `json:"sessionModes"`
	}
	getJSON(t, ts.BaseURL+"/api/v1/cases/"+ts.Demo.CaseID, ts.MediatorToken, &rec)
	m := rec.SessionModes[ts.Demo.SessionID]
	if a := m["caucus:applicant"]; a < 0.5 || a > 2 {
		t.Fatalf("applicant caucus %.2fs, want about 0.7s (all: %v)", a, m)
	}
	if r := m["caucus:respondent"]; r < 0.25 || r > 2 {
		t.Fatalf("respondent caucus %.2fs, want about 0.4s (all: %v)", r, m)
	}
	if m["joint"] <= 0 {
		t.Fatalf("no joint time: %v", m)
	}
}

package main

import (
	"context"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// reconnect drops the client's socket (the media connections stay up,
// as when a phone's signaling connection breaks) and joins again.
func (c *pionClient) reconnect(t *testing.T, base, token string, resume bool) map[string]any {
	t.Helper()
	c.wmu.Lock()
	_ = c.ws.Close()
	c.wmu.Unlock()
	time.Sleep(100 * time.Millisecond)
	ws, _, err := websocket.DefaultDialer.Dial(wsURL(base), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ws.WriteJSON(map[string]any{"type": "join", "token": token, "resume": resume}); err != nil {
		t.Fatal(err)
	}
	var first map[string]any
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if err := ws.ReadJSON(&first); err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Time{})
	c.wmu.Lock()
	c.ws = ws
	c.wmu.Unlock()
	go c.readLoop()
	return first
}

func (c *pionClient) sawLeft(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.left[id]
}

// TestResumeKeepsPlace: a participant whose socket drops comes back
// within the grace period as the same participant, on the same media
// connections, and the others see no leave.
func TestResumeKeepsPlace(t *testing.T) {
	ts := startTestServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	med, app, resp := roomOfThree(t, ctx, ts)

	first := app.reconnect(t, ts.BaseURL, tokenFromURL(ts.Demo.Consumer), true)
	if first["type"] != "joined" || first["resumed"] != true {
		t.Fatalf("resume answered %v", first)
	}
	// Media keeps flowing both ways on the connections it already had.
	waitReceiving(t, 2*time.Second, [][2]*pionClient{{med, app}, {app, med}, {app, resp}, {resp, app}})
	if med.sawLeft(app.selfID()) || resp.sawLeft(app.selfID()) {
		t.Fatal("the others saw the resumed participant leave")
	}
	// Still admitted: no second trip through the lobby.
	if st := med.stateOf(app.selfID()); st != "admitted" {
		t.Fatalf("state after resume %q", st)
	}
	// One stay in the attendance, not two.
	var rec struct {
		Sessions []struct {
			Attendance []struct {
				ParticipantID string `json:"participantId"`
			} `json:"attendance"`
		} `json:"sessions"`
	}
	getJSON(t, ts.BaseURL+"/api/v1/cases/"+ts.Demo.CaseID, ts.MediatorToken, &rec)
	n := 0
	for _, a := range rec.Sessions[0].Attendance {
		if a.ParticipantID == app.selfID() {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d stays for the resumed participant", n)
	}
}

// TestDroppedParticipantLeavesAfterGrace: without a reconnect the place
// is given up when the grace period ends.
func TestDroppedParticipantLeavesAfterGrace(t *testing.T) {
	cfg := testConfig(t)
	cfg.ResumeGrace = 500 * time.Millisecond
	ts := startTestServerWith(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	med, app, _ := roomOfThree(t, ctx, ts)
	app.wmu.Lock()
	_ = app.ws.Close()
	app.wmu.Unlock()
	time.Sleep(200 * time.Millisecond)
	if med.sawLeft(app.selfID()) {
		t.Fatal("left before the grace period ended")
	}
	deadline := time.Now().Add(3 * time.Second)
	for !med.sawLeft(app.selfID()) {
		if time.Now().After(deadline) {
			t.Fatal("the dropped participant never left")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

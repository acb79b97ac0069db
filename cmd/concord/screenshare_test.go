package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

// shareScreen adds a screen-share video track with the given track id to
// c's pub connection and renegotiates it, marking the track in the
// offer's screenTracks.
func (c *pionClient) shareScreen(ctx context.Context, trackID string) {
	c.t.Helper()
	screen, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, trackID, c.selfID())
	if err != nil {
		c.t.Fatal(err)
	}
	c.addVideo(ctx, screen)
	offer, err := c.pub.CreateOffer(nil)
	if err != nil {
		c.t.Fatal(err)
	}
	if err := c.pub.SetLocalDescription(offer); err != nil {
		c.t.Fatal(err)
	}
	c.send(map[string]any{"type": "offer", "pc": "pub", "sdp": offer.SDP, "screenTracks": []string{trackID}})
}

// screenPackets counts the screen-share packets sub received from pub.
func screenPackets(sub, pub *pionClient) int {
	_, v := sub.from(pub.selfID() + ".screen")
	return v
}

// TestScreenShareFollowsCaucus: the mediator shares its screen (a draft
// agreement) during a caucus with the applicant. The applicant receives
// it as stream "<mediator id>.screen"; the respondent receives no packet
// of it and its connection is never offered the track; after the return
// to joint it receives it too.
func TestScreenShareFollowsCaucus(t *testing.T) {
	ts := startTestServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	med, app, resp := roomOfThree(t, ctx, ts)

	setMode(med, true, "applicant")
	quiet(t, [][2]*pionClient{{resp, app}, {resp, med}})
	med.shareScreen(ctx, "draft-screen")
	deadline := time.Now().Add(10 * time.Second)
	for screenPackets(app, med) < 10 {
		if time.Now().After(deadline) {
			t.Fatalf("the applicant received %d screen packets from the mediator in the caucus", screenPackets(app, med))
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The camera stays in its own stream.
	if _, v := app.from(med.selfID()); v == 0 {
		t.Fatal("the applicant lost the mediator's camera")
	}
	time.Sleep(2 * time.Second)
	if n := screenPackets(resp, med); n != 0 {
		t.Fatalf("the respondent received %d screen packets during the caucus", n)
	}
	if rd := resp.sub.RemoteDescription(); rd == nil || strings.Contains(rd.SDP, "draft-screen") || strings.Contains(rd.SDP, ".screen") {
		t.Fatal("the respondent's connection was offered the caucus's screen track")
	}

	setMode(med, false, "")
	deadline = time.Now().Add(10 * time.Second)
	for screenPackets(resp, med) < 10 {
		if time.Now().After(deadline) {
			t.Fatalf("the respondent received %d screen packets after the return to joint", screenPackets(resp, med))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if rd := resp.sub.RemoteDescription(); rd == nil || !strings.Contains(rd.SDP, med.selfID()+".screen") {
		t.Fatal("the respondent's description has no screen stream after the return to joint")
	}
}

// TestBadScreenTracks: an offer with a malformed screenTracks gets a
// non-fatal bad_message, and the connection keeps working.
func TestBadScreenTracks(t *testing.T) {
	ts := startTestServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	med, app, _ := roomOfThree(t, ctx, ts)

	for _, bad := range []any{
		[]string{"a", "b", "c", "d", "e"},
		[]string{""},
		[]string{strings.Repeat("x", 65)},
		"screen",
	} {
		before := app.count("error")
		app.send(map[string]any{"type": "offer", "pc": "pub", "sdp": "v=0", "screenTracks": bad})
		deadline := time.Now().Add(5 * time.Second)
		for app.count("error") == before {
			if time.Now().After(deadline) {
				t.Fatalf("screenTracks %v: no error", bad)
			}
			time.Sleep(10 * time.Millisecond)
		}
		app.mu.Lock()
		last := app.errors[len(app.errors)-1]
		app.mu.Unlock()
		if last["code"] != "bad_message" || last["fatal"] == true {
			t.Fatalf("screenTracks %v: error %v, want non-fatal bad_message", bad, last)
		}
	}
	app.send(map[string]any{"type": "chat", "text": "still here"})
	waitReceiving(t, 5*time.Second, [][2]*pionClient{{med, app}, {app, med}})
	deadline := time.Now().Add(5 * time.Second)
	for chatsFrom(med, app.selfID()) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the connection stopped working after a bad screenTracks")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

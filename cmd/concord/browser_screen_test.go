package main

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestBrowserScreenShare shares the mediator's screen from the room page
// (headless Chromium grants getDisplayMedia a fake screen under
// --use-fake-ui-for-media-stream): both parties show it as a large tile
// labelled with the mediator's name, apart from the mediator's camera
// tile, and receive it; when the mediator stops, the tile goes on both.
// Shared again during a private meeting with the applicant, the screen
// reaches the applicant and not the respondent, whose page shows the
// waiting panel and no tile of the meeting. The browser's own "stop
// sharing" (the track ends) stops the share too.
func TestBrowserScreenShare(t *testing.T) {
	step := stepper(t)
	browserCtx := startBrowser(t)
	axe := loadAxe(t)
	srv := startTestServer(t)
	demo := srv.Demo

	med := openTab(t, browserCtx, "mediator", demo.Mediator, false)
	consumer := openTab(t, browserCtx, "consumer", demo.Consumer, true) // on a phone
	merchant := openTab(t, browserCtx, "merchant", demo.Merchant, true) // on a phone
	tabs := []*tab{med, consumer, merchant}
	dumpOnFailure(t, tabs)

	med.waitState(t, "in-room", joinWait)
	enterRoomWith(t, med, entryQuiet, consumer, merchant)
	waitMediaFlowing(t, tabs, 2, joinWait)
	step("media flows")
	medID := evalJS[string](t, med, selfIDJS)
	medName := evalJS[string](t, med, `document.querySelector('#participants li[data-participant-id] .person-name').textContent.replace(/\s*\(.*\)\s*$/, '')`)
	consumerID := evalJS[string](t, consumer, selfIDJS)
	// The consumer reads the page in Chinese.
	consumer.click(t, "#lang-switch")
	consumer.waitJS(t, `document.documentElement.lang === 'zh-CN'`, uiWait, "switch to Chinese")

	// A phone has no screen to share: the button shows on desktops only,
	// which the phone-sized test tabs still are underneath.
	if !evalJS[bool](t, med, `!document.getElementById('toggle-screen').hidden`) {
		t.Fatal("the mediator's page (desktop) offers no Share screen button")
	}

	// The mediator shares during the joint session.
	med.click(t, "#toggle-screen")
	med.waitJS(t, `!document.getElementById('sharing-notice').hidden && document.getElementById('toggle-screen').dataset.on === 'true'`, uiWait, "say it shares its screen")
	for _, p := range []*tab{consumer, merchant} {
		waitScreenFlowing(t, p, medID)
		// The camera tile is still there, apart from the screen.
		if n := evalJS[int](t, p, fmt.Sprintf(`document.querySelectorAll('#tiles [data-participant-id=%q]').length`, medID)); n != 1 {
			t.Errorf("%s: %d camera tiles of the mediator next to the screen, want 1", p.name, n)
		}
	}
	label := evalJS[string](t, consumer, `document.querySelector('#screens .screen-tile .tile-name').textContent`)
	if !strings.Contains(label, medName) || !strings.Contains(label, "共享的屏幕") {
		t.Errorf("the consumer's screen tile is labelled %q, want the mediator's name %q and 共享的屏幕", label, medName)
	}
	label = evalJS[string](t, merchant, `document.querySelector('#screens .screen-tile .tile-name').textContent`)
	if !strings.Contains(label, medName) || !strings.Contains(label, "Screen shared by") {
		t.Errorf("the merchant's screen tile is labelled %q, want the mediator's name %q", label, medName)
	}
	consumer.screenshot(t, "concord-phone-screen-share.png")
	med.screenshot(t, "concord-mediator-screen-share.png")
	axe.audit(t, consumer, "room with a shared screen (phone, Chinese)")
	axe.audit(t, med, "room while sharing the screen (mediator)")
	step("screen shown")

	// The mediator stops: the tile goes on both.
	med.click(t, "#toggle-screen")
	med.waitJS(t, `document.getElementById('sharing-notice').hidden && document.getElementById('toggle-screen').dataset.on === 'false'`, uiWait, "stop sharing")
	for _, p := range []*tab{consumer, merchant} {
		p.waitJS(t, `document.querySelectorAll('#screens .screen-tile').length === 0 && document.getElementById('screens').hidden`, uiWait, "take the screen tile away")
	}
	step("screen stopped")

	// A private meeting with the applicant, then the mediator shares.
	med.click(t, "#mode-caucus-applicant")
	merchant.waitJS(t, `!document.getElementById('caucus-wait').hidden`, uiWait, "show the waiting panel")
	consumer.waitJS(t, `document.querySelector('#mode-label[data-mode="caucus-in"]') !== null`, uiWait, "say it is in the caucus")
	med.click(t, "#toggle-screen")
	med.waitJS(t, `document.getElementById('toggle-screen').dataset.on === 'true'`, uiWait, "share again")
	waitScreenFlowing(t, consumer, medID)
	step("screen in the caucus")
	// Over a window, the respondent shows no tile of the meeting and
	// receives nothing of the screen.
	m1 := sampleScreen(t, merchant)
	time.Sleep(2 * time.Second)
	m2 := sampleScreen(t, merchant)
	if len(m2.Tiles) > 0 {
		t.Errorf("during the applicant's caucus the merchant's page shows the screen of %v", m2.Tiles)
	}
	if m2.Bytes != m1.Bytes {
		t.Errorf("during the applicant's caucus the merchant receives the mediator's screen: %.0f then %.0f bytes", m1.Bytes, m2.Bytes)
	}
	for _, id := range []string{medID, consumerID} {
		if evalJS[bool](t, merchant, fmt.Sprintf(`document.querySelector('#tiles [data-participant-id=%q]') !== null`, id)) {
			t.Errorf("during the applicant's caucus the merchant's page shows a tile of %s", id)
		}
	}
	merchant.screenshot(t, "concord-phone-caucus-screen-waiting.png")

	// Back to the joint session: the respondent sees the screen too.
	med.click(t, "#mode-joint")
	merchant.waitJS(t, `document.getElementById('caucus-wait').hidden`, uiWait, "take the waiting panel away")
	waitScreenFlowing(t, merchant, medID)
	step("joint again")

	// The browser's own "Stop sharing" ends the track: the page stops the
	// share, and the tiles go.
	evalJS[bool](t, med, `(() => {
		const s = window.concord.pub.getSenders().find((x) => x.track && x.track.contentHint === 'detail');
		s.track.dispatchEvent(new Event('ended'));
		return true;
	})()`)
	med.waitJS(t, `document.getElementById('toggle-screen').dataset.on === 'false'`, uiWait, "stop sharing when the track ends")
	for _, p := range []*tab{consumer, merchant} {
		p.waitJS(t, `document.querySelectorAll('#screens .screen-tile').length === 0`, uiWait, "take the screen tile away")
	}

	checkNoPageProblems(t, tabs)
}

// screenJS reads a page's shared screens: whose screen tiles it shows,
// the widest one's video width, and the bytes received on every sub
// transceiver whose stream is a screen share (by the remote description's
// a=msid, so that a track the page does not show still counts).
const screenJS = `(async () => {
	const out = { tiles: [], width: 0, bytes: 0, mids: [] };
	for (const el of document.querySelectorAll('#screens [data-screen-of]')) {
		out.tiles.push(el.dataset.screenOf);
		out.width = Math.max(out.width, el.querySelector('video').videoWidth);
	}
	const pc = window.concord && window.concord.sub;
	if (!pc || !pc.remoteDescription) return out;
	for (const section of pc.remoteDescription.sdp.split(/\r\nm=/).slice(1)) {
		const mid = /\r\na=mid:(\S+)/.exec(section);
		const msid = /\r\na=msid:(\S+)/.exec(section);
		if (mid && msid && msid[1].endsWith('.screen')) out.mids.push(mid[1]);
	}
	const stats = await pc.getStats();
	stats.forEach((s) => {
		if (s.type === 'inbound-rtp' && out.mids.includes(s.mid)) out.bytes += s.bytesReceived || 0;
	});
	return out;
})()`

type screenSample struct {
	Tiles []string `json:"tiles"`
	Width float64  `json:"width"`
	Bytes float64  `json:"bytes"`
	Mids  []string `json:"mids"`
}

func sampleScreen(t *testing.T, tb *tab) screenSample {
	t.Helper()
	return evalJS[screenSample](t, tb, screenJS)
}

// waitScreenFlowing waits until tb shows pubID's screen as a tile with
// video, and the screen's inbound bytes grow.
func waitScreenFlowing(t *testing.T, tb *tab, pubID string) {
	t.Helper()
	tb.waitJS(t, fmt.Sprintf(`[...document.querySelectorAll('#screens .screen-tile[data-screen-of=%q] video')].some((v) => v.videoWidth > 0)`, pubID),
		joinWait, "show the shared screen")
	deadline := time.Now().Add(joinWait)
	first := sampleScreen(t, tb)
	for {
		time.Sleep(500 * time.Millisecond)
		s := sampleScreen(t, tb)
		if s.Bytes > first.Bytes && first.Bytes > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the shared screen's inbound bytes do not grow: %+v then %+v", tb.name, first, s)
		}
		if first.Bytes == 0 {
			first = s
		}
	}
}

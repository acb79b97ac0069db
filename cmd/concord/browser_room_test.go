package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// TestBrowserCaucus runs a private meeting (caucus) in real browsers: the
// mediator checks the identity of the first party waiting on video and
// admits the two parties one by one, then meets the applicant (the
// consumer) alone. The respondent's page (the merchant, on a phone) says
// it is waiting, and its getStats() shows that no byte of the caucus's
// audio or video reaches it, while the consumer still receives the
// mediator; the consumer's chat reaches the mediator and not the
// merchant. Back in the joint session, the merchant receives again.
func TestBrowserCaucus(t *testing.T) {
	step := stepper(t)
	browserCtx := startBrowser(t)
	axe := loadAxe(t)
	srv := startTestServer(t)
	demo := srv.Demo

	med := openTab(t, browserCtx, "mediator", demo.Mediator, false)
	consumer := openTab(t, browserCtx, "consumer", demo.Consumer, false)
	merchant := openTab(t, browserCtx, "merchant", demo.Merchant, true) // on a phone
	tabs := []*tab{med, consumer, merchant}
	dumpOnFailure(t, tabs)

	med.waitState(t, "in-room", joinWait)
	step("tabs open")
	enterRoomWith(t, med, entryEach, consumer, merchant)
	step("identity checked, admitted")
	waitMediaFlowing(t, tabs, 2, joinWait)
	step("media flows")

	medID := evalJS[string](t, med, selfIDJS)

	// The measurement sees the media: in the joint session everything the
	// merchant's connection receives grows.
	p1 := sampleMedia(t, merchant)
	time.Sleep(700 * time.Millisecond)
	if p2 := sampleMedia(t, merchant); p2.Transport.Bytes <= p1.Transport.Bytes {
		t.Fatalf("in the joint session the merchant's transport bytes do not grow: %+v then %+v", p1.Transport, p2.Transport)
	}

	// A private meeting with the applicant.
	med.click(t, "#mode-caucus-applicant")
	med.waitJS(t, `document.getElementById('mode-caucus-applicant').getAttribute('aria-pressed') === 'true'`, uiWait, "show the caucus as the current mode")
	merchant.waitJS(t, `document.querySelector('#mode-label[data-mode="caucus-waiting"]') !== null`, uiWait, "say it waits outside the caucus")
	consumer.waitJS(t, `document.querySelector('#mode-label[data-mode="caucus-in"]') !== null`, uiWait, "say it is in the caucus")

	// Once what was on its way has arrived, the merchant's inbound bytes
	// stand still while the consumer's bytes from the mediator grow.
	settle(t, merchant, uiWait)
	m1, c1 := sampleMedia(t, merchant), sampleMedia(t, consumer)
	time.Sleep(1800 * time.Millisecond)
	m2, c2 := sampleMedia(t, merchant), sampleMedia(t, consumer)
	t.Logf("merchant's inbound bytes during the caucus: %v, then %v; transport %+v, then %+v", m1.Bytes, m2.Bytes, m1.Transport, m2.Transport)
	if len(m1.Bytes) == 0 {
		t.Logf("(the browser dropped the stats of the tracks the caucus took away)")
	}
	for k, b := range m2.Bytes {
		if b != m1.Bytes[k] {
			t.Errorf("during the applicant's caucus the merchant still receives %s: %.0f then %.0f bytes", k, m1.Bytes[k], b)
		}
	}
	// Nor does media reach its connection on a track it does not know of.
	// The server pauses the caucus's tracks rather than removing them, and
	// may still send RTCP for them (a few small packets a second); one
	// audio track alone would be 50 packets a second.
	if !onlyRTCP(m1, m2, 1800*time.Millisecond) {
		t.Errorf("during the applicant's caucus the merchant's connection still receives media: %+v then %+v", m1.Transport, m2.Transport)
	}
	if len(m2.Tiles) > 0 {
		t.Errorf("during the applicant's caucus the merchant's page shows video of %v", m2.Tiles)
	}
	if c2.ByParticipant[medID] <= c1.ByParticipant[medID] {
		t.Errorf("during the caucus the consumer does not receive the mediator: %.0f then %.0f bytes", c1.ByParticipant[medID], c2.ByParticipant[medID])
	}
	// The merchant's page shows the waiting panel instead of the tiles of
	// those in the caucus: no tile (nor frozen last frame) of them.
	consumerID := evalJS[string](t, consumer, selfIDJS)
	if !evalJS[bool](t, merchant, `!document.getElementById('caucus-wait').hidden && document.getElementById('caucus-wait').textContent.includes('speaking privately')`) {
		t.Error("during the applicant's caucus the merchant's page shows no waiting panel")
	}
	for _, id := range []string{medID, consumerID} {
		if evalJS[bool](t, merchant, fmt.Sprintf(`document.querySelector('#tiles [data-participant-id=%q]') !== null`, id)) {
			t.Errorf("during the applicant's caucus the merchant's page shows a tile of %s", id)
		}
	}
	// Inside, the consumer sees the mediator, and the merchant only as
	// waiting outside, without its media.
	merchantID := evalJS[string](t, merchant, selfIDJS)
	if !evalJS[bool](t, consumer, fmt.Sprintf(`(() => {
		const m = document.querySelector('#tiles [data-participant-id=%q]');
		return !!m && m.classList.contains('away') && !m.querySelector('video').srcObject;
	})()`, merchantID)) {
		t.Error("inside the caucus the consumer's page does not show the merchant as waiting outside, without media")
	}
	merchant.screenshot(t, "concord-phone-caucus-waiting.png")
	med.screenshot(t, "concord-mediator-caucus.png")
	axe.audit(t, merchant, "caucus, waiting (phone)")
	axe.audit(t, consumer, "caucus, inside")
	consumer.screenshot(t, "concord-caucus-inside.png")

	step("caucus checked")
	// The consumer's chat stays in the caucus.
	const secret = "Caucus only: my bottom line is 100 CNY / 底线100元"
	if err := chromedp.Do(consumer.ctx,
		chromedp.SendKeys(chromedp.ID("chat-input"), secret),
		chromedp.Click(chromedp.ID("chat-send")),
	); err != nil {
		t.Fatal("consumer: sending a chat message:", err)
	}
	hasChat := func(text string) string {
		return fmt.Sprintf(`document.getElementById('chat-log').textContent.includes(%q)`, text)
	}
	consumer.waitJS(t, hasChat(secret), uiWait, "show its own chat message")
	med.waitJS(t, hasChat(secret), uiWait, "show the consumer's caucus chat")
	time.Sleep(500 * time.Millisecond)
	if evalJS[bool](t, merchant, hasChat(secret)) {
		t.Error("the merchant's page shows a chat message sent inside the applicant's caucus")
	}

	step("caucus chat checked")
	// Back to the joint session: the merchant receives again.
	med.click(t, "#mode-joint")
	merchant.waitJS(t, `document.querySelector('#mode-label[data-mode="joint"]') !== null`, uiWait, "say the joint session is back")
	merchant.waitJS(t, fmt.Sprintf(`document.getElementById('caucus-wait').hidden && document.querySelector('#tiles [data-participant-id=%q]') !== null && document.querySelector('#tiles [data-participant-id=%q]') !== null`, medID, consumerID),
		uiWait, "bring back the tiles of the mediator and the consumer")
	waitMediaFlowing(t, []*tab{merchant}, 2, joinWait)
	step("joint again")
	const hello = "Back together / 大家好"
	if err := chromedp.Do(consumer.ctx,
		chromedp.SendKeys(chromedp.ID("chat-input"), hello),
		chromedp.Click(chromedp.ID("chat-send")),
	); err != nil {
		t.Fatal("consumer: sending a chat message:", err)
	}
	merchant.waitJS(t, hasChat(hello), uiWait, "show the joint session's chat")
	// The server passes each socket its messages in order: had the caucus's
	// message gone to the merchant, it would be there before this one.
	if evalJS[bool](t, merchant, hasChat(secret)) {
		t.Error("the merchant's page shows a chat message sent inside the applicant's caucus")
	}

	checkNoPageProblems(t, tabs)
}

// onlyRTCP reports whether what a connection received between two
// samples taken window apart is at most a trickle of RTCP: no more than
// eight packets a second, of at most 150 bytes on average.
func onlyRTCP(a, b mediaSample, window time.Duration) bool {
	packets := b.Transport.Packets - a.Transport.Packets
	if packets == 0 {
		return true
	}
	return packets <= 8*window.Seconds() && (b.Transport.Bytes-a.Transport.Bytes)/packets <= 150
}

// settle waits until a page's sub connection has received no media for
// half a second: the packets that were on their way when a caucus began
// have arrived. A connection that keeps receiving fails the test.
func sameBytes(a, b mediaSample) bool {
	if len(a.Bytes) != len(b.Bytes) {
		return false
	}
	for k, v := range a.Bytes {
		if b.Bytes[k] != v {
			return false
		}
	}
	return true
}

func settle(t *testing.T, tb *tab, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	prev := sampleMedia(t, tb)
	for {
		time.Sleep(500 * time.Millisecond)
		s := sampleMedia(t, tb)
		if onlyRTCP(prev, s, 500*time.Millisecond) && sameBytes(prev, s) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: its connection still receives %v after the caucus began: %+v then %+v", tb.name, within, prev.Transport, s.Transport)
		}
		prev = s
	}
}

// TestBrowserMediatorControls drives the mediator's controls from the
// console: mute, and the party's own unmute; ask to unmute; private notes
// that only mediators see; the lock; and removal, after which the removed
// party's page says so plainly.
func TestBrowserMediatorControls(t *testing.T) {
	step := stepper(t)
	browserCtx := startBrowser(t)
	axe := loadAxe(t)
	srv := startTestServer(t)
	demo := srv.Demo

	med := openTab(t, browserCtx, "mediator", demo.Mediator, true) // on a phone
	consumer := openTab(t, browserCtx, "consumer", demo.Consumer, false)
	merchant := openTab(t, browserCtx, "merchant", demo.Merchant, true) // on a phone
	tabs := []*tab{med, consumer, merchant}
	dumpOnFailure(t, tabs)

	med.waitState(t, "in-room", joinWait)
	step("tabs open")
	enterRoomWith(t, med, entryQuiet, consumer, merchant)
	step("admitted")
	merchantID := evalJS[string](t, merchant, selfIDJS)
	person := func(id, action string) string {
		return fmt.Sprintf(`#participants li[data-participant-id=%q] button[data-action=%q]`, id, action)
	}

	// The mediator mutes the merchant, who unmutes itself.
	muteSel := person(merchantID, "mute")
	med.click(t, muteSel)
	merchant.waitJS(t, `!document.getElementById('muted-notice').hidden`, uiWait, "say the mediator muted it")
	merchant.screenshot(t, "concord-phone-muted.png")
	merchant.click(t, "#self-unmute")
	merchant.waitJS(t, `document.getElementById('muted-notice').hidden && document.getElementById('toggle-mic').dataset.on === 'true'`, uiWait, "unmute")
	med.waitJS(t, fmt.Sprintf(`!document.querySelector(%q).disabled`, muteSel), uiWait, "show the merchant unmuted")

	// The merchant turns its microphone off; the mediator asks it to speak.
	merchant.click(t, "#toggle-mic")
	merchant.waitJS(t, `document.getElementById('toggle-mic').dataset.on === 'false'`, uiWait, "turn the microphone off")
	med.click(t, person(merchantID, "ask-unmute"))
	merchant.waitJS(t, `!document.getElementById('unmute-request').hidden`, uiWait, "pass on the mediator's request to unmute")
	merchant.screenshot(t, "concord-phone-unmute-request.png")
	merchant.click(t, "#unmute-accept")
	merchant.waitJS(t, `document.getElementById('unmute-request').hidden && document.getElementById('toggle-mic').dataset.on === 'true'`, uiWait, "unmute on request")

	step("mute and unmute done")
	// Private notes, and the lock.
	const note = "Merchant open to a partial refund"
	if err := chromedp.Do(med.ctx,
		chromedp.SendKeys(chromedp.ID("notes-input"), note),
		chromedp.Click(chromedp.ID("notes-send")),
	); err != nil {
		t.Fatal("mediator: writing a note:", err)
	}
	med.waitJS(t, fmt.Sprintf(`document.getElementById('notes-log').textContent.includes(%q)`, note), uiWait, "show the note")
	if evalJS[bool](t, merchant, fmt.Sprintf(`document.body.textContent.includes(%q)`, note)) {
		t.Error("the merchant's page shows the mediator's private note")
	}
	med.click(t, "#lock-room")
	med.waitJS(t, `document.getElementById('lock-room').getAttribute('aria-pressed') === 'true'`, uiWait, "show the room locked")
	med.fullScreenshot(t, "concord-phone-mediator-console.png")
	axe.audit(t, med, "mediator console (phone)")

	step("notes and lock done")
	// Removed: the merchant's page says so plainly.
	med.click(t, person(merchantID, "remove"))
	med.click(t, person(merchantID, "remove-confirm"))
	merchant.waitState(t, "error", uiWait)
	merchant.waitJS(t, `document.body.dataset.error === 'removed'`, uiWait, "say it was removed")
	merchant.screenshot(t, "concord-phone-removed.png")
	axe.audit(t, merchant, "removed")

	checkNoPageProblems(t, tabs)
}

// TestBrowserPreflightAccessible audits the screens before the room: the
// preflight while the browser asks for the camera, the guidance when the
// camera is refused, a page opened without its link, and the landing page.
func TestBrowserPreflightAccessible(t *testing.T) {
	browserCtx := startBrowser(t)
	axe := loadAxe(t)
	srv := startTestServer(t)
	demo := srv.Demo

	// getUserMedia replaced before the page's scripts run.
	gum := func(body string) chromedp.Action[chromedp.Void] {
		js := `(() => {
			const md = navigator.mediaDevices;
			if (md) md.getUserMedia = () => ` + body + `;
		})();`
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: js})
			return err
		})
	}
	asking := openTab(t, browserCtx, "asking", demo.Consumer, true, gum(`new Promise(() => {})`))
	denied := openTab(t, browserCtx, "denied", demo.Merchant, true, gum(`Promise.reject(new DOMException('Permission denied', 'NotAllowedError'))`))
	nolink := openTab(t, browserCtx, "nolink", srv.BaseURL+"/join", true)
	landing := openTab(t, browserCtx, "landing", srv.BaseURL+"/", true)
	tabs := []*tab{asking, denied, nolink, landing}
	dumpOnFailure(t, tabs)

	asking.waitJS(t, `document.body.dataset.state === 'preflight' && !document.getElementById('preview-note').hidden`, uiWait, "ask for the camera")
	asking.screenshot(t, "concord-phone-preflight.png")
	axe.audit(t, asking, "preflight")

	denied.waitJS(t, `!document.getElementById('media-problem').hidden && !document.getElementById('media-audio-only').hidden`, uiWait, "explain the refused camera")
	denied.screenshot(t, "concord-phone-preflight-denied.png")
	axe.audit(t, denied, "camera refused")
	if text := evalJS[string](t, denied, `document.getElementById('media-problem-help').textContent`); strings.TrimSpace(text) == "" {
		t.Error("the refused-camera screen gives no guidance")
	}

	nolink.waitState(t, "error", uiWait)
	axe.audit(t, nolink, "no link")

	landing.waitJS(t, `document.readyState === 'complete'`, uiWait, "load")
	axe.audit(t, landing, "landing")

	checkNoPageProblems(t, tabs)
}

// TestBrowserPartyNetworkAndCamera covers the party's preflight choices on
// phones: a connection the browser reports as 2G gets the plain "too weak
// for video" notice (in Chinese too) and goes on with audio only; a phone
// with two cameras (Chromium's fake devices) switches from one to the
// other in the lobby, and the mediator still receives its video. The
// mediator's page marks the active speaker's tile.
func TestBrowserPartyNetworkAndCamera(t *testing.T) {
	step := stepper(t)
	browserCtx := startBrowser(t, chromedp.Flag("use-fake-device-for-media-stream", "device-count=2"))
	axe := loadAxe(t)
	srv := startTestServer(t)
	demo := srv.Demo

	slow := chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		js := `Object.defineProperty(navigator, 'connection', { configurable: true, value: { effectiveType: '2g', downlink: 0.1, rtt: 1800, addEventListener() {} } });`
		_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: js})
		return err
	})
	med := openTab(t, browserCtx, "mediator", demo.Mediator, false)
	consumer := openTab(t, browserCtx, "consumer", demo.Consumer, true, slow) // on a phone, on 2G
	merchant := openTab(t, browserCtx, "merchant", demo.Merchant, true)       // on a phone
	tabs := []*tab{med, consumer, merchant}
	dumpOnFailure(t, tabs)

	// The weak connection: said plainly, in English and in Chinese.
	consumer.waitJS(t, `!document.getElementById('weak-net').hidden && document.getElementById('weak-net').textContent.includes('too weak for video')`, joinWait, "say the connection is too weak for video")
	consumer.click(t, "#lang-switch")
	consumer.waitJS(t, `document.getElementById('weak-net').textContent.includes('仅语音')`, uiWait, "say it in Chinese")
	consumer.screenshot(t, "concord-phone-weak-network.png")
	axe.audit(t, consumer, "weak network notice (phone, Chinese)")
	consumer.click(t, "#weak-audio-only")
	consumer.waitJS(t, `document.getElementById('weak-net').hidden && document.getElementById('toggle-cam').disabled && document.getElementById('self-view').srcObject.getVideoTracks().length === 0`,
		uiWait, "go on with audio only")
	if evalJS[bool](t, merchant, `!document.getElementById('weak-net').hidden`) {
		t.Error("the merchant's page (a normal connection) says the connection is too weak")
	}
	step("audio only")

	// Two cameras: the merchant switches in the lobby.
	merchant.waitState(t, "consent", joinWait)
	merchant.click(t, "#consent-accept")
	merchant.waitState(t, "lobby", uiWait)
	merchant.waitJS(t, `!document.getElementById('switch-cam').hidden`, uiWait, "offer to switch the camera")
	before := evalJS[string](t, merchant, `document.getElementById('lobby-preview').srcObject.getVideoTracks()[0].getSettings().deviceId`)
	// Chromium's second fake camera is a depth camera (Y16) that encodes
	// few frames: switch to it and back, to a new track of the first.
	first := evalJS[string](t, merchant, `(() => { const tr = document.getElementById('lobby-preview').srcObject.getVideoTracks()[0]; window.firstCam = tr; return tr.id; })()`)
	merchant.click(t, "#switch-cam")
	merchant.waitJS(t, fmt.Sprintf(`(() => {
		const tr = document.getElementById('lobby-preview').srcObject.getVideoTracks()[0];
		return !!tr && tr.readyState === 'live' && tr.getSettings().deviceId !== %q;
	})()`, before), uiWait, "switch to the other camera")
	merchant.click(t, "#switch-cam")
	merchant.waitJS(t, fmt.Sprintf(`(() => {
		const tr = document.getElementById('lobby-preview').srcObject.getVideoTracks()[0];
		return !!tr && tr.readyState === 'live' && tr.getSettings().deviceId === %q && tr.id !== %q;
	})()`, before, first), uiWait, "switch back to the first camera")
	if n := evalJS[int](t, merchant, `document.getElementById('lobby-preview').srcObject.getVideoTracks().length`); n != 1 {
		t.Errorf("after switching cameras the merchant's stream has %d video tracks, want 1", n)
	}
	step("camera switched")

	consumer.waitState(t, "consent", joinWait)
	consumer.click(t, "#consent-accept")
	consumer.waitState(t, "lobby", uiWait)
	med.waitJS(t, `document.querySelectorAll('#lobby-list [data-participant-id][data-consented="true"]').length === 2`, uiWait, "list both parties in the lobby")
	med.click(t, "#admit-all")
	consumer.waitState(t, "in-room", uiWait)
	merchant.waitState(t, "in-room", uiWait)
	merchantID := evalJS[string](t, merchant, selfIDJS)
	consumerID := evalJS[string](t, consumer, selfIDJS)
	// The mediator receives the merchant's video from the switched camera;
	// the consumer's tile shows no video.
	waitMediaFlowing(t, []*tab{med}, 1, joinWait)
	if tiles := sampleMedia(t, med).Tiles; len(tiles) != 1 || tiles[0] != merchantID {
		t.Errorf("the mediator's page shows video of %v, want the merchant's only", tiles)
	}
	med.waitJS(t, fmt.Sprintf(`document.querySelector('#tiles [data-participant-id=%q]').classList.contains('no-video')`, consumerID), uiWait, "show the consumer without video")
	// The fake microphones beep: someone becomes the active speaker.
	med.waitJS(t, `document.querySelector('#tiles .tile.speaking, #participants .person.speaking') !== null`, joinWait, "mark the active speaker")

	checkNoPageProblems(t, tabs)
}

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
// mediator admits the two parties one by one, then meets the applicant
// (the consumer) alone. The respondent's page (the merchant, on a phone)
// says it is waiting, and its getStats() shows that no byte of the
// caucus's audio or video reaches it, while the consumer still receives
// the mediator; the consumer's chat reaches the mediator and not the
// merchant. Back in the joint session, the merchant receives again. Then
// the mediator's controls: mute and the party's unmute, notes, the lock.
func TestBrowserCaucus(t *testing.T) {
	browserCtx := startBrowser(t)
	axe := loadAxe(t)
	srv := startTestServer(t)
	demo := srv.Demo

	med := openTab(t, browserCtx, "mediator", demo.Mediator, false)
	consumer := openTab(t, browserCtx, "consumer", demo.Consumer, false)
	merchant := openTab(t, browserCtx, "merchant", demo.Merchant, true) // on a phone
	tabs := []*tab{med, consumer, merchant}
	dumpOnFailure(t, tabs)

	med.waitState(t, "in-room", 20*time.Second)
	enterRoomWith(t, med, true, consumer, merchant)
	waitMediaFlowing(t, tabs, 2, 20*time.Second)

	medID := evalJS[string](t, med, selfIDJS)
	merchantID := evalJS[string](t, merchant, selfIDJS)
	if medID == "" || merchantID == "" {
		t.Fatalf("no participant ids on the pages: mediator %q, merchant %q", medID, merchantID)
	}

	// A private meeting with the applicant.
	med.click(t, "#mode-caucus-applicant")
	med.waitJS(t, `document.getElementById('mode-caucus-applicant').getAttribute('aria-pressed') === 'true'`, 5*time.Second, "show the caucus as the current mode")
	merchant.waitJS(t, `document.querySelector('#mode-label[data-mode="caucus-waiting"]') !== null`, 5*time.Second, "say it waits outside the caucus")
	consumer.waitJS(t, `document.querySelector('#mode-label[data-mode="caucus-in"]') !== null`, 5*time.Second, "say it is in the caucus")

	// After a short settle, the merchant's inbound bytes stand still while
	// the consumer's bytes from the mediator grow.
	time.Sleep(1200 * time.Millisecond)
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
	if len(m2.Tiles) > 0 {
		t.Errorf("during the applicant's caucus the merchant's page shows video of %v", m2.Tiles)
	}
	if c2.ByParticipant[medID] <= c1.ByParticipant[medID] {
		t.Errorf("during the caucus the consumer does not receive the mediator: %.0f then %.0f bytes", c1.ByParticipant[medID], c2.ByParticipant[medID])
	}
	away := evalJS[int](t, merchant, `document.querySelectorAll('#tiles .tile.away').length`)
	if away < 2 {
		t.Errorf("the merchant's page greys out %d tiles of the caucus, want 2", away)
	}
	merchant.screenshot(t, "concord-phone-caucus-waiting.png")
	med.screenshot(t, "concord-mediator-caucus.png")
	axe.audit(t, merchant, "caucus, waiting (phone)")
	axe.audit(t, consumer, "caucus, inside")

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
	consumer.waitJS(t, hasChat(secret), 5*time.Second, "show its own chat message")
	med.waitJS(t, hasChat(secret), 5*time.Second, "show the consumer's caucus chat")
	time.Sleep(500 * time.Millisecond)
	if evalJS[bool](t, merchant, hasChat(secret)) {
		t.Error("the merchant's page shows a chat message sent inside the applicant's caucus")
	}

	// Back to the joint session: the merchant receives again.
	med.click(t, "#mode-joint")
	merchant.waitJS(t, `document.querySelector('#mode-label[data-mode="joint"]') !== null`, 5*time.Second, "say the joint session is back")
	waitMediaFlowing(t, []*tab{merchant}, 2, 10*time.Second)
	const hello = "Back together / 大家好"
	if err := chromedp.Do(consumer.ctx,
		chromedp.SendKeys(chromedp.ID("chat-input"), hello),
		chromedp.Click(chromedp.ID("chat-send")),
	); err != nil {
		t.Fatal("consumer: sending a chat message:", err)
	}
	merchant.waitJS(t, hasChat(hello), 5*time.Second, "show the joint session's chat")

	// The mediator mutes the merchant, who unmutes itself.
	muteSel := fmt.Sprintf(`#participants li[data-participant-id=%q] button[data-action="mute"]`, merchantID)
	med.click(t, muteSel)
	merchant.waitJS(t, `!document.getElementById('muted-notice').hidden`, 5*time.Second, "say the mediator muted it")
	merchant.screenshot(t, "concord-phone-muted.png")
	merchant.click(t, "#self-unmute")
	merchant.waitJS(t, `document.getElementById('muted-notice').hidden && document.getElementById('toggle-mic').dataset.on === 'true'`, 5*time.Second, "unmute")
	med.waitJS(t, fmt.Sprintf(`!document.querySelector(%q).disabled`, muteSel), 5*time.Second, "show the merchant unmuted")

	// Private notes, and the lock.
	const note = "Merchant open to a partial refund"
	if err := chromedp.Do(med.ctx,
		chromedp.SendKeys(chromedp.ID("notes-input"), note),
		chromedp.Click(chromedp.ID("notes-send")),
	); err != nil {
		t.Fatal("mediator: writing a note:", err)
	}
	med.waitJS(t, fmt.Sprintf(`document.getElementById('notes-log').textContent.includes(%q)`, note), 5*time.Second, "show the note")
	if evalJS[bool](t, merchant, fmt.Sprintf(`document.body.textContent.includes(%q)`, note)) {
		t.Error("the merchant's page shows the mediator's private note")
	}
	med.click(t, "#lock-room")
	med.waitJS(t, `document.getElementById('lock-room').getAttribute('aria-pressed') === 'true'`, 5*time.Second, "show the room locked")
	axe.audit(t, med, "mediator console")
	med.fullScreenshot(t, "concord-mediator-console.png")
	if err := chromedp.Do(med.ctx, chromedp.EmulateViewport(360, 740, chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulatePortrait)); err == nil {
		time.Sleep(300 * time.Millisecond)
		med.fullScreenshot(t, "concord-phone-mediator-console.png")
		axe.audit(t, med, "mediator console (phone)")
	}

	// Removed: the merchant's page says so plainly.
	med.click(t, fmt.Sprintf(`#participants li[data-participant-id=%q] button[data-action="remove"]`, merchantID))
	med.click(t, fmt.Sprintf(`#participants li[data-participant-id=%q] button[data-action="remove-confirm"]`, merchantID))
	merchant.waitState(t, "error", 5*time.Second)
	merchant.waitJS(t, `document.body.dataset.error === 'removed'`, time.Second, "say it was removed")
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

	asking.waitJS(t, `document.body.dataset.state === 'preflight' && !document.getElementById('preview-note').hidden`, 10*time.Second, "ask for the camera")
	asking.screenshot(t, "concord-phone-preflight.png")
	axe.audit(t, asking, "preflight")

	denied.waitJS(t, `!document.getElementById('media-problem').hidden && !document.getElementById('media-audio-only').hidden`, 10*time.Second, "explain the refused camera")
	denied.screenshot(t, "concord-phone-preflight-denied.png")
	axe.audit(t, denied, "camera refused")
	if text := evalJS[string](t, denied, `document.getElementById('media-problem-help').textContent`); strings.TrimSpace(text) == "" {
		t.Error("the refused-camera screen gives no guidance")
	}

	nolink.waitState(t, "error", 10*time.Second)
	axe.audit(t, nolink, "no link")

	landing.waitJS(t, `document.readyState === 'complete'`, 10*time.Second, "load")
	axe.audit(t, landing, "landing")

	checkNoPageProblems(t, tabs)
}

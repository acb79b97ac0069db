package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserThreeParties runs the embedded browser client in a real
// Chromium: the mediator, the consumer and the merchant join the demo
// session from their links; the parties accept the session rules and wait
// in the lobby until the mediator admits them; each then receives the
// other two's video through the SFU, and the mediator records a settled
// outcome from the page. Every screen passes an axe-core audit.
//
// It needs chromium on PATH; without it the test is skipped, unless CI is
// set. Screenshots of the key screens go to screenshots/ (see
// screenshotRoot).
func TestBrowserThreeParties(t *testing.T) {
	step := stepper(t)
	browserCtx := startBrowser(t)
	axe := loadAxe(t) // fetched while the server and the tabs start
	srv := startTestServer(t)
	demo := srv.Demo

	ctx, cancel := context.WithTimeout(context.Background(), testLimit)
	defer cancel()

	med := openTab(t, browserCtx, "mediator", demo.Mediator, false)
	consumer := openTab(t, browserCtx, "consumer", demo.Consumer, true) // on a phone
	merchant := openTab(t, browserCtx, "merchant", demo.Merchant, false)
	tabs := []*tab{med, consumer, merchant}
	dumpOnFailure(t, tabs)
	t.Cleanup(func() {
		if t.Failed() && srv.sfu != nil {
			// Whether media reached the SFU, and what it dropped: a flake
			// seen once in CI had the mediator's video reach no one.
			t.Logf("SFU: %+v", srv.sfu.Stats())
		}
	})

	// The mediator enters directly; the parties are shown the rules.
	step("tabs open")
	med.waitState(t, "in-room", joinWait)
	consumer.waitState(t, "consent", joinWait)
	merchant.waitState(t, "consent", joinWait)
	consumer.screenshot(t, "concord-phone-consent.png")
	axe.audit(t, consumer, "consent")
	// The consumer goes on in Chinese, the default for most parties.
	consumer.click(t, "#lang-switch")
	consumer.waitJS(t, `document.documentElement.lang === 'zh-CN' && document.getElementById('consent-accept').textContent.includes('同意')`, uiWait, "switch to Chinese")
	consumer.screenshot(t, "concord-phone-consent-zh.png")
	axe.audit(t, consumer, "consent (Chinese)")

	step("rules shown")
	enterRoom(t, med, consumer, merchant)
	step("admitted")

	// Every page receives two remote video streams whose bytes grow, and
	// shows them in two tiles.
	waitMediaFlowing(t, tabs, 2, joinWait)
	step("media flows")
	consumer.screenshot(t, "concord-phone.png")
	consumer.screenshot(t, "concord-phone-room.png")
	axe.audit(t, consumer, "room (phone)")
	axe.audit(t, med, "room (mediator)")

	// The mediator ends the session with a settled outcome.
	const terms = "The merchant refunds 128.00 CNY within 7 days; 商家七日内退款。"
	if err := chromedp.Do(med.ctx,
		chromedp.WaitVisible(chromedp.ID("end-session")),
		chromedp.Click(chromedp.ID("end-session")),
		chromedp.WaitVisible(chromedp.ID("outcome-result")),
		chromedp.SetValue(chromedp.ID("outcome-result"), "settled"),
		chromedp.SendKeys(chromedp.ID("outcome-terms"), terms),
	); err != nil {
		t.Fatal("mediator: filling the outcome form:", err)
	}
	med.screenshot(t, "concord-mediator.png")
	axe.audit(t, med, "outcome form")
	if err := chromedp.Do(med.ctx,
		chromedp.Click(chromedp.ID("outcome-submit")),
		chromedp.WaitVisible(chromedp.ID("outcome-done")),
	); err != nil {
		t.Fatal("mediator: submitting the outcome:", err)
	}
	med.screenshot(t, "concord-mediator-done.png")
	merchant.screenshot(t, "concord-ended.png")

	step("outcome recorded")
	// Every page shows the end.
	for _, tb := range tabs {
		tb.waitState(t, "ended", uiWait)
	}
	consumer.screenshot(t, "concord-after-session-phone.png")
	merchant.screenshot(t, "concord-after-session.png")
	axe.audit(t, consumer, "ended")

	// The case record has the outcome, the session times and the attendance.
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.BaseURL+"/api/v1/cases/"+demo.CaseID, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+srv.MediatorToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal("GET case:", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET case: status %d", resp.StatusCode)
	}
	var rec caseRecordJSON
	if err := json.NewDecoder(resp.Body).Decode(&rec); err != nil {
		t.Fatal("GET case: decoding:", err)
	}
	checkClosedCase(t, rec, terms, demo.SessionID)

	checkNoPageProblems(t, tabs)
}

// ---------------------------------------------------------------- browser

// stepper returns a function that logs how long the test has run at each
// step, to tell a slow machine from a stuck step.
func stepper(t *testing.T) func(string) {
	start := time.Now()
	return func(what string) { t.Logf("%5.1fs %s", time.Since(start).Seconds(), what) }
}

// Timeouts. A loaded machine (CI runs every package's tests at once, on
// few CPUs, next to three tabs encoding video) can be many times slower
// than an idle one; each wait ends as soon as its condition holds, so on
// an idle machine every browser test takes well under a minute.
const (
	uiWait    = 20 * time.Second // a page reacts to a click or a room change
	joinWait  = 45 * time.Second // a page loads and joins, or media starts flowing
	testLimit = 4 * time.Minute  // one whole test
)

// startBrowser starts a headless Chromium with fake camera and microphone
// for the test, or skips the test when there is none (fails under CI).
// extra options override the defaults.
func startBrowser(t *testing.T, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	chrome, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") == "" {
			t.Skip("chromium is not installed; skipping the real-browser test")
		}
		t.Fatal("chromium is not installed, and CI needs the real-browser test:", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testLimit)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chrome),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
		chromedp.Flag("lang", "en-US"),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, append(opts, extra...)...)
	browserCtx, cancelBrowser := chromedp.NewContext(allocCtx)
	// Cleanups run last-in first-out: the browser closes before the
	// server the test starts after it.
	t.Cleanup(cancel)
	t.Cleanup(cancelAlloc)
	t.Cleanup(cancelBrowser)
	if err := chromedp.Do(browserCtx); err != nil { // starts the browser
		t.Fatal("starting chromium:", err)
	}
	return browserCtx
}

// tab is one page of the test, with its console log.
type tab struct {
	name  string
	ctx   context.Context
	log   *pageLog
	phone bool // at 360x740, for the screenshots' names
}

// openTab opens url in a new tab, phone-sized (360x740, touch) if phone.
func openTab(t *testing.T, browserCtx context.Context, name, url string, phone bool, before ...chromedp.Action[chromedp.Void]) *tab {
	t.Helper()
	tabCtx, cancelTab := chromedp.NewContext(browserCtx)
	t.Cleanup(cancelTab)
	if err := chromedp.Do(tabCtx); err != nil { // opens the tab
		t.Fatalf("%s: opening a tab: %v", name, err)
	}
	tb := &tab{name: name, ctx: tabCtx, log: watchConsole(tabCtx), phone: phone}
	steps := append([]chromedp.Action[chromedp.Void]{}, before...)
	if phone {
		steps = append(steps, chromedp.EmulateViewport(360, 740, chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulatePortrait))
	}
	steps = append(steps, chromedp.Navigate(url))
	if err := chromedp.Do(tabCtx, steps...); err != nil {
		t.Fatalf("%s: opening %s: %v", name, redact(url), err)
	}
	return tb
}

// dumpOnFailure logs every page's state and console if the test fails.
func dumpOnFailure(t *testing.T, tabs []*tab) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, tb := range tabs {
			ctx, cancel := context.WithTimeout(tb.ctx, 3*time.Second)
			state, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.dataset.state + ' | ' + document.getElementById('status').textContent + ' | ' + (document.getElementById('mode-label') || {}).textContent + ' | ' + document.getElementById('alert').textContent`))
			rtp, _ := chromedp.Run(ctx, chromedp.Evaluate[string](rtpSummaryJS, chromedp.EvalAwaitPromise))
			cancel()
			t.Logf("%s page: %s\nits connections: %s\n%s", tb.name, state, rtp, tb.log.String())
		}
	})
}

// rtpSummaryJS describes a page's two connections for a failure's
// report: their states, and each RTP stream sent (what the page
// publishes: packets, frames encoded, keyframes, what limits it) and
// received.
const rtpSummaryJS = `(async () => {
	const out = [];
	for (const name of ['pub', 'sub']) {
		const pc = window.concord && window.concord[name];
		if (!pc) { out.push(name + ': none'); continue; }
		const parts = [name + ': ' + pc.connectionState + '/' + pc.iceConnectionState];
		(await pc.getStats()).forEach((s) => {
			if (s.type === 'outbound-rtp') parts.push('sent ' + s.kind + (s.rid ? ' ' + s.rid : '') + ' ssrc ' + s.ssrc + ': ' + s.packetsSent + ' packets, ' + (s.framesEncoded || 0) + ' frames, ' + (s.keyFramesEncoded || 0) + ' keyframes, limited by ' + (s.qualityLimitationReason || 'none') + (s.active === false ? ', inactive' : ''));
			if (s.type === 'inbound-rtp') parts.push('received ' + s.kind + ' ' + (s.trackIdentifier || s.ssrc) + ': ' + s.packetsReceived + ' packets, ' + (s.framesDecoded || 0) + ' frames decoded, ' + (s.pliCount || 0) + ' PLIs sent');
		});
		out.push(parts.join('; '));
	}
	return out.join('\n');
})()`

// waitState waits until the page's body[data-state] is state.
func (tb *tab) waitState(t *testing.T, state string, timeout time.Duration) {
	t.Helper()
	tb.waitJS(t, fmt.Sprintf(`document.body.dataset.state === %q`, state), timeout, "reach "+state)
}

// waitJS polls a JavaScript condition.
func (tb *tab) waitJS(t *testing.T, cond string, timeout time.Duration, what string) {
	t.Helper()
	if _, err := chromedp.Run(tb.ctx, chromedp.Poll[bool](cond,
		chromedp.WithPollingTimeout(timeout), chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
		t.Fatalf("%s: the page did not %s within %v: %v", tb.name, what, timeout, err)
	}
}

// eval evaluates a JavaScript expression on the page.
func evalJS[T any](t *testing.T, tb *tab, js string) T {
	t.Helper()
	v, err := chromedp.Run(tb.ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("%s: evaluating %.60q: %v", tb.name, js, err)
	}
	return v
}

// click clicks the element with the CSS selector sel once it is visible.
func (tb *tab) click(t *testing.T, sel string) {
	t.Helper()
	// A page that re-renders (a view filled in once its data arrive, a
	// poll) may replace the element between finding and clicking it: the
	// click is tried again on the new one, as a user would tap again.
	var err error
	for range 3 {
		if err = tb.tryClick(t, sel); err == nil || !strings.Contains(err.Error(), "Could not find node") {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("%s: clicking %s: %v", tb.name, sel, err)
	}
}

func (tb *tab) tryClick(t *testing.T, sel string) error {
	t.Helper()
	if err := chromedp.Do(tb.ctx,
		chromedp.WaitVisible(sel),
		chromedp.ScrollIntoView(sel),
	); err != nil {
		return err
	}
	// A real tap hits whatever is on top: make sure that is the element.
	hit := fmt.Sprintf(`(() => {
		const el = document.querySelector(%q);
		if (!el) return '';
		const r = el.getBoundingClientRect();
		const top = document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2);
		return el === top || el.contains(top) ? '' : String(top && (top.id || top.className || top.tagName));
	})()`, sel)
	if over := evalJS[string](t, tb, hit); over != "" {
		t.Fatalf("%s: %s is covered by %s", tb.name, sel, over)
	}
	return chromedp.Do(tb.ctx, chromedp.Click(sel))
}

// Screenshots of the key screens are kept so that a reviewer can look at
// them without running a browser: by default in screenshots/ at the
// repository root (ignored by git), one folder per test, each file named
// by its step and the viewport it was taken at (phone or desktop).
// CONCORD_BROWSER_SCREENSHOTS names another folder, or "off" for none.

// screenshotRoot is the folder the screenshots go to, or "" for none.
var screenshotRoot = sync.OnceValue(func() string {
	switch dir := os.Getenv("CONCORD_BROWSER_SCREENSHOTS"); dir {
	case "off":
		return ""
	case "":
	default:
		return dir
	}
	// go test runs in the package's folder: the root is the first folder
	// up from it with go.mod.
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "screenshots")
		}
		up := filepath.Dir(dir)
		if up == dir {
			return ""
		}
		dir = up
	}
})

// screenshotDirs remembers the test folders already emptied in this run,
// so that a folder never mixes this run's screenshots with older ones.
var screenshotDirs sync.Map

// screenshotPath returns where tb's screenshot of step goes, creating
// its folder, or "" when screenshots are off or the folder cannot be
// made (a screenshot is for people; it never fails a test).
func (tb *tab) screenshotPath(t *testing.T, step string) string {
	t.Helper()
	root := screenshotRoot()
	if root == "" {
		return ""
	}
	dir := filepath.Join(root, strings.ReplaceAll(t.Name(), "/", "-"))
	if _, done := screenshotDirs.LoadOrStore(dir, true); !done {
		_ = os.RemoveAll(dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Logf("screenshot %s: %v", step, err)
		return ""
	}
	name := strings.TrimSuffix(step, ".png")
	view := "desktop"
	if tb.phone {
		view = "phone"
	}
	if !strings.Contains(name, view) {
		name += "-" + view
	}
	return filepath.Join(dir, name+".png")
}

// screenshot saves what the page shows in its viewport.
func (tb *tab) screenshot(t *testing.T, step string) {
	t.Helper()
	if path := tb.screenshotPath(t, step); path != "" {
		saveScreenshot(t, tb.ctx, path)
	}
}

// fullScreenshot saves the whole page, beyond the viewport.
func (tb *tab) fullScreenshot(t *testing.T, step string) {
	t.Helper()
	path := tb.screenshotPath(t, step)
	if path == "" {
		return
	}
	buf, err := chromedp.Run(tb.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Logf("screenshot %s: %v", path, err)
		return
	}
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		t.Logf("screenshot %s: %v", path, err)
	}
}

func saveScreenshot(t *testing.T, ctx context.Context, path string) {
	t.Helper()
	buf, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Logf("screenshot %s: %v", path, err)
		return
	}
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		t.Logf("screenshot %s: %v", path, err)
	}
}

// ---------------------------------------------------------------- the room

// enterRoom takes the parties through the session rules and the lobby:
// each accepts the rules; once all of them have, the mediator admits
// everyone at once. The lobby screens are photographed and audited.
func enterRoom(t *testing.T, med *tab, parties ...*tab) {
	enterRoomWith(t, med, entryAll, parties...)
}

// How enterRoomWith admits the parties.
const (
	entryAll   = iota // "Admit all", with screenshots and audits of the lobby
	entryQuiet        // "Admit all", nothing else
	entryEach         // an identity check, then each party's own Admit button
)

func enterRoomWith(t *testing.T, med *tab, how int, parties ...*tab) {
	t.Helper()
	for i, p := range parties {
		p.waitState(t, "consent", joinWait)
		p.click(t, "#consent-accept")
		p.waitState(t, "lobby", uiWait)
		p.waitJS(t, `!document.getElementById('lobby-view').hidden`, uiWait, "show the lobby")
		if i == 0 && how == entryAll {
			p.screenshot(t, "concord-phone-lobby.png")
			axeFor(t).audit(t, p, "lobby")
		}
	}
	// The mediator's lobby lists them all, with their consent.
	med.waitJS(t, fmt.Sprintf(`document.querySelectorAll('#lobby-list [data-participant-id][data-consented="true"]').length === %d`, len(parties)),
		uiWait, "list the consenting parties in the lobby")
	if how == entryAll {
		med.screenshot(t, "concord-mediator-lobby.png")
		axeFor(t).audit(t, med, "mediator console with the lobby")
	}
	if how == entryEach {
		checkIdentity(t, med, parties)
		for n := len(parties); n > 0; n-- {
			med.click(t, `#lobby-list [data-participant-id] button[data-action="admit"]`)
			med.waitJS(t, fmt.Sprintf(`document.querySelectorAll('#lobby-list [data-participant-id]').length === %d`, n-1),
				uiWait, "admit one party")
		}
	} else {
		med.click(t, "#admit-all")
	}
	for _, p := range append([]*tab{med}, parties...) {
		p.waitState(t, "in-room", uiWait)
	}
}

// selfIDJS reads a page's own participant id: everyone lists itself first
// among the people.
const selfIDJS = `document.querySelector('#participants li[data-participant-id]').dataset.participantId`

// checkIdentity has the mediator check the identity of the first person
// in the lobby on video: its video appears as a tile for the mediator, its
// page says it is being seen, and the mediator marks the identity checked.
func checkIdentity(t *testing.T, med *tab, parties []*tab) {
	t.Helper()
	item := `#lobby-list li[data-participant-id]`
	id := evalJS[string](t, med, `document.querySelector('`+item+`').dataset.participantId`)
	var party *tab
	for _, p := range parties {
		if evalJS[string](t, p, selfIDJS) == id {
			party = p
		}
	}
	if party == nil {
		t.Fatalf("no page is the participant %s waiting first in the lobby", id)
	}
	med.click(t, item+` button[data-action="check"]`)
	med.waitJS(t, fmt.Sprintf(`[...document.querySelectorAll('#tiles .tile.checking[data-participant-id=%q] video')].some((v) => v.videoWidth > 0)`, id),
		uiWait, "show the waiting party's video for the identity check")
	party.waitJS(t, `!document.getElementById('lobby-checking').hidden`, uiWait, "say the mediator sees it")
	med.screenshot(t, "concord-mediator-identity-check.png")
	party.screenshot(t, "concord-lobby-checking.png")
	med.click(t, item+` button[data-action="checked"]`)
	med.waitJS(t, `document.querySelector('`+item+` button[data-action="checked"]').disabled`, uiWait, "mark the identity checked")
}

// statsJS reads a page's inbound media: bytes per received track
// ("video:ID", "audio:ID"), per participant whose tile shows its media,
// and which tiles show video.
const statsJS = `(async () => {
	const pc = window.concord && window.concord.sub;
	const bytes = {};
	const byTrack = {};
	const transport = { bytes: 0, packets: 0 };
	if (pc) {
		const stats = await pc.getStats();
		stats.forEach((s) => {
			if (s.type === 'transport') {
				transport.bytes += s.bytesReceived || 0;
				transport.packets += s.packetsReceived || 0;
			}
			if (s.type === 'inbound-rtp' && (s.kind === 'video' || s.kind === 'audio')) {
				const key = s.kind + ':' + (s.trackIdentifier || String(s.ssrc));
				bytes[key] = (bytes[key] || 0) + (s.bytesReceived || 0);
				if (s.trackIdentifier) byTrack[s.trackIdentifier] = (byTrack[s.trackIdentifier] || 0) + (s.bytesReceived || 0);
			}
		});
	}
	const tiles = [];
	const byParticipant = {};
	for (const el of document.querySelectorAll('#tiles [data-participant-id]')) {
		const v = el.querySelector('video');
		if (v.videoWidth > 0) tiles.push(el.dataset.participantId);
		const s = v.srcObject;
		if (s) for (const tr of s.getTracks()) {
			if (byTrack[tr.id] !== undefined) byParticipant[el.dataset.participantId] = (byParticipant[el.dataset.participantId] || 0) + byTrack[tr.id];
		}
	}
	return { bytes, tiles, byParticipant, transport };
})()`

type mediaSample struct {
	Bytes         map[string]float64 `json:"bytes"`
	Tiles         []string           `json:"tiles"`
	ByParticipant map[string]float64 `json:"byParticipant"`
	// Transport is everything the sub connection received, media or not,
	// including packets of tracks the page no longer knows.
	Transport struct {
		Bytes   float64 `json:"bytes"`
		Packets float64 `json:"packets"`
	} `json:"transport"`
}

func sampleMedia(t *testing.T, tb *tab) mediaSample {
	t.Helper()
	return evalJS[mediaSample](t, tb, statsJS)
}

// videoKeys counts the received video tracks with bytes.
func (s mediaSample) videoKeys() int {
	n := 0
	for k, v := range s.Bytes {
		if strings.HasPrefix(k, "video:") && v > 0 {
			n++
		}
	}
	return n
}

// grownVideo counts the video tracks whose bytes grew since prev.
func (s mediaSample) grownVideo(prev mediaSample) int {
	n := 0
	for k, b := range s.Bytes {
		if pb, had := prev.Bytes[k]; strings.HasPrefix(k, "video:") && had && pb > 0 && b > pb {
			n++
		}
	}
	return n
}

// waitMediaFlowing waits until every page receives at least n remote
// video streams whose bytes grow, shown in n tiles.
func waitMediaFlowing(t *testing.T, tabs []*tab, n int, timeout time.Duration) {
	t.Helper()
	first := make(map[string]mediaSample)
	ok := make(map[string]bool)
	deadline := time.Now().Add(timeout)
	var last map[string]mediaSample
	for len(ok) < len(tabs) {
		if time.Now().After(deadline) {
			t.Fatalf("not every page received %d growing remote video streams within %v; pages OK: %v; last samples: %+v", n, timeout, ok, last)
		}
		last = make(map[string]mediaSample)
		for _, tb := range tabs {
			if ok[tb.name] {
				continue
			}
			s := sampleMedia(t, tb)
			last[tb.name] = s
			prev, seen := first[tb.name]
			if s.videoKeys() < n || len(s.Tiles) < n {
				delete(first, tb.name)
				continue
			}
			if !seen {
				first[tb.name] = s
				continue
			}
			if s.grownVideo(prev) >= n {
				ok[tb.name] = true
			}
		}
		time.Sleep(400 * time.Millisecond)
	}
}

// ---------------------------------------------------------------- logs

// redact hides the token of a join link.
func redact(u string) string {
	if i := strings.IndexByte(u, '#'); i >= 0 {
		return u[:i] + "#…"
	}
	return u
}

// pageLog collects a tab's console messages.
type pageLog struct {
	mu   sync.Mutex
	msgs []chromedp.ConsoleMessage
}

func watchConsole(ctx context.Context) *pageLog {
	l := &pageLog{}
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			l.mu.Lock()
			l.msgs = append(l.msgs, m)
			l.mu.Unlock()
		}
	}()
	return l
}

func (l *pageLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, m := range l.msgs {
		fmt.Fprintf(&b, "  console.%s: %s\n", m.Type, m.Text)
	}
	return b.String()
}

// problems returns uncaught exceptions and Content-Security-Policy
// violations.
func (l *pageLog) problems() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, m := range l.msgs {
		if m.IsException() || strings.Contains(m.Text, "Content Security Policy") {
			out = append(out, fmt.Sprintf("%s: %s", m.Type, m.Text))
		}
	}
	return out
}

func checkNoPageProblems(t *testing.T, tabs []*tab) {
	t.Helper()
	for _, tb := range tabs {
		if msgs := tb.log.problems(); len(msgs) > 0 {
			t.Errorf("%s page logged problems:\n%s", tb.name, strings.Join(msgs, "\n"))
		}
	}
}

// ---------------------------------------------------------------- the record

// caseRecordJSON is the part of GET /api/v1/cases/{id} the test reads.
type caseRecordJSON struct {
	State   string `json:"state"`
	Outcome *struct {
		Result    string `json:"result"`
		Terms     string `json:"terms"`
		SessionID string `json:"sessionId"`
	} `json:"outcome"`
	Sessions []struct {
		ID         string     `json:"id"`
		Status     string     `json:"status"`
		StartedAt  *time.Time `json:"startedAt"`
		EndedAt    *time.Time `json:"endedAt"`
		Attendance []struct {
			ParticipantID string     `json:"participantId"`
			JoinedAt      time.Time  `json:"joinedAt"`
			LeftAt        *time.Time `json:"leftAt"`
		} `json:"attendance"`
	} `json:"sessions"`
}

func checkClosedCase(t *testing.T, rec caseRecordJSON, terms, sessionID string) {
	t.Helper()
	if rec.State != "closed" {
		t.Errorf("case state = %q, want closed", rec.State)
	}
	if rec.Outcome == nil {
		t.Fatal("case has no outcome")
	}
	if rec.Outcome.Result != "settled" {
		t.Errorf("outcome result = %q, want settled", rec.Outcome.Result)
	}
	if rec.Outcome.Terms != terms {
		t.Errorf("outcome terms = %q, want %q", rec.Outcome.Terms, terms)
	}
	if len(rec.Sessions) == 0 {
		t.Fatal("case has no sessions")
	}
	s := rec.Sessions[0]
	if s.ID != sessionID {
		t.Errorf("sessions[0].id = %q, want %q", s.ID, sessionID)
	}
	if s.StartedAt == nil || s.EndedAt == nil {
		t.Fatalf("session startedAt = %v, endedAt = %v; want both set", s.StartedAt, s.EndedAt)
	}
	if s.EndedAt.Before(*s.StartedAt) {
		t.Errorf("session ended (%v) before it started (%v)", s.EndedAt, s.StartedAt)
	}
	who := make(map[string]bool)
	for _, a := range s.Attendance {
		who[a.ParticipantID] = true
		if a.LeftAt == nil {
			t.Errorf("attendance of %s has no leftAt after the session ended", a.ParticipantID)
		}
	}
	if len(who) != 3 {
		t.Errorf("attendance names %d participants (%v), want 3", len(who), who)
	}
}

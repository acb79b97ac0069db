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
// session from their links, each receives the other two's video through
// the SFU, and the mediator records a settled outcome from the page.
//
// It needs chromium on PATH; without it the test is skipped, unless CI is
// set. Set CONCORD_BROWSER_SCREENSHOTS to a folder to keep screenshots of
// a phone-sized page and of the mediator's page.
func TestBrowserThreeParties(t *testing.T) {
	chrome, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") == "" {
			t.Skip("chromium is not installed; skipping the real-browser test")
		}
		t.Fatal("chromium is not installed, and CI needs the real-browser test:", err)
	}

	srv := startTestServer(t)
	demo := srv.Demo

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chrome),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
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
	)
	defer cancelAlloc()

	browserCtx, cancelBrowser := chromedp.NewContext(allocCtx)
	defer cancelBrowser()
	if err := chromedp.Do(browserCtx); err != nil { // starts the browser
		t.Fatal("starting chromium:", err)
	}

	type tab struct {
		name string
		url  string
		ctx  context.Context
		log  *pageLog
	}
	tabs := []*tab{
		{name: "mediator", url: demo.Mediator},
		{name: "consumer", url: demo.Consumer},
		{name: "merchant", url: demo.Merchant},
	}
	for _, tb := range tabs {
		tabCtx, cancelTab := chromedp.NewContext(browserCtx)
		defer cancelTab()
		tb.ctx = tabCtx
		if err := chromedp.Do(tabCtx); err != nil { // opens the tab
			t.Fatalf("%s: opening a tab: %v", tb.name, err)
		}
		tb.log = watchConsole(tabCtx)
		var steps []chromedp.Action[chromedp.Void]
		if tb.name == "consumer" {
			// The consumer is on a phone.
			steps = append(steps, chromedp.EmulateViewport(360, 740, chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulatePortrait))
		}
		steps = append(steps, chromedp.Navigate(tb.url))
		if err := chromedp.Do(tabCtx, steps...); err != nil {
			t.Fatalf("%s: opening %s: %v", tb.name, redact(tb.url), err)
		}
	}
	defer func() {
		if t.Failed() {
			for _, tb := range tabs {
				state, _ := chromedp.Run(tb.ctx, chromedp.Evaluate[string](`document.body.dataset.state + ' | ' + document.getElementById('status').textContent + ' | ' + document.getElementById('alert').textContent`))
				t.Logf("%s page: %s\n%s", tb.name, state, tb.log.String())
			}
		}
	}()

	// Everyone reaches the room.
	for _, tb := range tabs {
		if _, err := chromedp.Run(tb.ctx, chromedp.Poll[bool](`document.body.dataset.state === 'in-room'`,
			chromedp.WithPollingTimeout(20*time.Second), chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
			t.Fatalf("%s: the page did not reach the room: %v", tb.name, err)
		}
	}

	// Every page receives two remote video streams whose bytes grow, and
	// shows them in two tiles.
	const statsJS = `(async () => {
		const pc = window.concord && window.concord.sub;
		const bytes = {};
		if (pc) {
			const stats = await pc.getStats();
			stats.forEach((s) => {
				if (s.type === 'inbound-rtp' && s.kind === 'video') {
					const key = s.trackIdentifier || String(s.ssrc);
					bytes[key] = (bytes[key] || 0) + (s.bytesReceived || 0);
				}
			});
		}
		const tiles = [...document.querySelectorAll('#tiles [data-participant-id]')]
			.filter((el) => el.querySelector('video').videoWidth > 0)
			.map((el) => el.dataset.participantId);
		return { bytes, tiles };
	})()`
	type sample struct {
		Bytes map[string]float64 `json:"bytes"`
		Tiles []string           `json:"tiles"`
	}
	first := make(map[string]sample)
	ok := make(map[string]bool)
	deadline := time.Now().Add(20 * time.Second)
	var last map[string]sample
	for len(ok) < len(tabs) {
		if time.Now().After(deadline) {
			t.Fatalf("not every page received two growing remote video streams within 20s; pages OK: %v; last samples: %+v", ok, last)
		}
		last = make(map[string]sample)
		for _, tb := range tabs {
			if ok[tb.name] {
				continue
			}
			s, err := chromedp.Run(tb.ctx, chromedp.Evaluate[sample](statsJS, chromedp.EvalAwaitPromise))
			if err != nil {
				t.Fatalf("%s: reading stats: %v", tb.name, err)
			}
			last[tb.name] = s
			prev, seen := first[tb.name]
			if countPositive(s.Bytes) < 2 || len(s.Tiles) < 2 {
				delete(first, tb.name)
				continue
			}
			if !seen {
				first[tb.name] = s
				continue
			}
			grown := 0
			for k, b := range s.Bytes {
				if pb, had := prev.Bytes[k]; had && pb > 0 && b > pb {
					grown++
				}
			}
			if grown >= 2 {
				ok[tb.name] = true
			}
		}
		time.Sleep(500 * time.Millisecond)
	}

	shots := os.Getenv("CONCORD_BROWSER_SCREENSHOTS")
	if shots != "" {
		saveScreenshot(t, tabs[1].ctx, filepath.Join(shots, "concord-phone.png"))
	}

	// The mediator ends the session with a settled outcome.
	med := tabs[0].ctx
	const terms = "The merchant refunds 128.00 CNY within 7 days; 商家七日内退款。"
	if err := chromedp.Do(med,
		chromedp.WaitVisible(chromedp.ID("end-session")),
		chromedp.Click(chromedp.ID("end-session")),
		chromedp.WaitVisible(chromedp.ID("outcome-result")),
		chromedp.SetValue(chromedp.ID("outcome-result"), "settled"),
		chromedp.SendKeys(chromedp.ID("outcome-terms"), terms),
	); err != nil {
		t.Fatal("mediator: filling the outcome form:", err)
	}
	if shots != "" {
		saveScreenshot(t, med, filepath.Join(shots, "concord-mediator.png"))
	}
	if err := chromedp.Do(med,
		chromedp.Click(chromedp.ID("outcome-submit")),
		chromedp.WaitVisible(chromedp.ID("outcome-done")),
	); err != nil {
		t.Fatal("mediator: submitting the outcome:", err)
	}
	if shots != "" {
		saveScreenshot(t, med, filepath.Join(shots, "concord-mediator-done.png"))
		saveScreenshot(t, tabs[2].ctx, filepath.Join(shots, "concord-ended.png"))
	}

	// Every page shows the end.
	for _, tb := range tabs {
		if _, err := chromedp.Run(tb.ctx, chromedp.Poll[bool](`document.body.dataset.state === 'ended'`,
			chromedp.WithPollingTimeout(10*time.Second), chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
			t.Fatalf("%s: the page did not show the end of the session: %v", tb.name, err)
		}
	}

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

	for _, tb := range tabs {
		if msgs := tb.log.problems(); len(msgs) > 0 {
			t.Errorf("%s page logged problems:\n%s", tb.name, strings.Join(msgs, "\n"))
		}
	}
}

func countPositive(m map[string]float64) int {
	n := 0
	for _, v := range m {
		if v > 0 {
			n++
		}
	}
	return n
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

package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserKiosk: the kiosk page in a real browser signs in as the
// device, is in large type, and starts a session for a walk-in visitor,
// whose place in the queue it then shows.
func TestBrowserKiosk(t *testing.T) {
	browser := startBrowser(t)
	ts := startTestServer(t)
	const pw = "correct horse battery"
	var errb bytes.Buffer
	if code := runUser([]string{"add", "--data-dir", ts.Config.DataDir, "--login", "kiosk1", "--role", "kiosk",
		"--institution", demoInstitutionID, "--password-stdin"}, nil, strings.NewReader(pw+"\n"), &bytes.Buffer{}, &errb); code != 0 {
		t.Fatalf("user add: %d %s", code, errb.String())
	}
	tb := openTab(t, browser, "kiosk", ts.BaseURL+"/kiosk", false)
	tb.waitJS(t, `!document.getElementById('kiosk-login').hidden`, 20*time.Second, "show the device sign-in")
	evalJS[bool](t, tb, `(() => {
		document.getElementById('kiosk-login-name').value = 'kiosk1';
		document.getElementById('kiosk-login-password').value = '`+pw+`';
		document.getElementById('kiosk-login-form').requestSubmit();
		return true; })()`)
	tb.waitJS(t, `!document.getElementById('kiosk-home').hidden`, 20*time.Second, "sign in")

	// Large type: the base text and the buttons are at least 24 px.
	for _, sel := range []string{"body", "#kiosk-new", "#kiosk-home h1"} {
		px := evalJS[float64](t, tb, `parseFloat(getComputedStyle(document.querySelector('`+sel+`')).fontSize)`)
		if px < 24 {
			t.Errorf("%s font-size %.1f px, want at least 24", sel, px)
		}
	}
	if h := evalJS[float64](t, tb, `document.getElementById('kiosk-new').getBoundingClientRect().height`); h < 100 {
		t.Errorf("the start button is %.0f px high", h)
	}

	tb.click(t, "#kiosk-new")
	tb.waitJS(t, `!document.getElementById('kiosk-form-view').hidden`, 10*time.Second, "show the visitor form")
	evalJS[bool](t, tb, `(() => {
		document.getElementById('kiosk-name').value = '王阿姨';
		document.getElementById('kiosk-category').value = 'product-quality';
		document.getElementById('kiosk-description').value = '电饭煲坏了';
		document.getElementById('kiosk-form').requestSubmit();
		return true; })()`)
	tb.waitJS(t, `!document.getElementById('kiosk-home').hidden && !document.getElementById('kiosk-current').hidden`, 20*time.Second, "show the new session")
	visitor := evalJS[string](t, tb, `document.getElementById('kiosk-visitor').textContent`)
	place := evalJS[string](t, tb, `document.getElementById('kiosk-place').textContent`)
	if !strings.Contains(visitor, "王阿姨") || !strings.Contains(place, "1") {
		t.Fatalf("current session: %q %q", visitor, place)
	}
	if evalJS[bool](t, tb, `!document.getElementById('kiosk-join').disabled`) {
		t.Fatal("join is enabled before a mediator took the session")
	}
	if n := evalJS[float64](t, tb, `document.querySelectorAll('#kiosk-list li').length`); n != 1 {
		t.Fatalf("today's list has %v items", n)
	}
	// The device stays signed in across a reload (a restarted kiosk): the
	// refresh cookie signs it in again and the session is still listed.
	if err := chromedp.Do(tb.ctx, chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	tb.waitJS(t, `!document.getElementById('kiosk-home').hidden && document.querySelectorAll('#kiosk-list li').length === 1`,
		20*time.Second, "signed in again after a reload, with today's session")
	checkNoPageProblems(t, []*tab{tb})
}

package main

import (
	"strings"
	"testing"
	"time"
)

// TestBrowserShortLink: the short link an SMS carries (/j/CODE) opens the
// join page, which exchanges the code for the join token and goes on to
// the session rules; an unknown code gets a plain error.
func TestBrowserShortLink(t *testing.T) {
	ts := startTestServer(t)
	l, ok := ts.Main.Demo.Link("consumer")
	if !ok || l.Short == "" || !strings.Contains(l.Short, "/j/") {
		t.Fatalf("demo has no short consumer link: %+v", l)
	}
	browser := startBrowser(t)
	good := openTab(t, browser, "short-link", l.Short, true)
	bad := openTab(t, browser, "bad-code", ts.BaseURL+"/j/zzzzzzzzzz", true)
	dumpOnFailure(t, []*tab{good, bad})
	good.waitJS(t, `location.hash.length > 100 && !location.hash.startsWith('#code=')`, 20*time.Second, "exchange the code for a token")
	good.waitJS(t, `['joining', 'consent', 'lobby', 'in-room'].includes(document.body.dataset.state)`, 20*time.Second, "join with the exchanged token")
	bad.waitState(t, "error", 20*time.Second)
}

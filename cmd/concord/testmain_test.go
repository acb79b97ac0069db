package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/concord-odr/concord/media"
)

// testServer is a whole Concord server on loopback ports picked by the
// kernel, with a temporary data folder and the demo case seeded.
type testServer struct {
	*Main
	BaseURL       string
	Demo          demoLinks
	MediatorToken string
}

// demoLinks are the demo's three join URLs.
type demoLinks struct {
	CaseID, SessionID            string
	Mediator, Consumer, Merchant string
}

func testLogger() *slog.Logger {
	if os.Getenv("CONCORD_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// serverLogger is a test server's logger: what testLogger gives with
// CONCORD_TEST_LOG, else the server's log from Info up kept in memory
// and printed if the test fails, with what the SFU forwarded: a failure
// seen once in many runs has to be told from its first report.
func serverLogger(t *testing.T, sfu func() *media.SFU) *slog.Logger {
	if os.Getenv("CONCORD_TEST_LOG") != "" {
		return testLogger()
	}
	buf := &tailBuffer{max: 256 << 10}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		if s := sfu(); s != nil {
			st := s.Stats()
			st.ForwardDelay = media.DelayHistogram{}
			t.Logf("server's media at the end: %+v", st)
		}
		t.Logf("server log (Info and up, last %d KB):\n%s", buf.max>>10, buf.String())
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (w *tailBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b = append(w.b, p...)
	if over := len(w.b) - w.max; over > 0 {
		w.b = append(w.b[:0], w.b[over:]...)
	}
	return len(p), nil
}

func (w *tailBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.b)
}

func testConfig(t *testing.T) Config {
	t.Helper()
	cfg, err := parseConfig("serve", []string{
		"--addr", "127.0.0.1:0",
		"--media-udp", "127.0.0.1:0",
		"--media-tcp", "127.0.0.1:0",
		"--admin-addr", "127.0.0.1:0",
		"--data-dir", t.TempDir(),
		"--demo",
		// Not the test binary's GOMAXPROCS (media's TestAdaptProcs
		// covers the server's default).
		"--adaptive-procs=false",
	}, nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// startTestServer runs a server until the test ends.
func startTestServer(t *testing.T) *testServer {
	t.Helper()
	return startTestServerWith(t, testConfig(t))
}

func startTestServerWith(t *testing.T, cfg Config) *testServer {
	t.Helper()
	var m *Main
	m = NewMain(cfg, io.Discard, serverLogger(t, func() *media.SFU { return m.sfu }))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.Run(ctx); err != nil {
		_ = m.Close()
		t.Fatalf("server did not start: %v", err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	ts := &testServer{Main: m, BaseURL: m.BaseURL()}
	if d := m.Demo; d != nil {
		link := func(label string) string {
			l, ok := d.Link(label)
			if !ok {
				t.Fatalf("demo has no %s link", label)
			}
			return ts.BaseURL + "/join#" + l.Token
		}
		ts.Demo = demoLinks{
			CaseID: d.CaseID, SessionID: d.SessionID,
			Mediator: link("mediator"), Consumer: link("consumer"), Merchant: link("merchant"),
		}
		med, _ := d.Link("mediator")
		ts.MediatorToken = med.Token
	}
	return ts
}

// getJSON fetches a URL with a bearer token and decodes the answer.
func getJSON(t *testing.T, url, token string, out any) int {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("decode %s: %v", url, err)
		}
	}
	return resp.StatusCode
}

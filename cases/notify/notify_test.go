package notify

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/concord-odr/concord/cases"
	"github.com/concord-odr/concord/cases/sqlite"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func openStore(t *testing.T) cases.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "cases.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	return s
}

// gateway is a fake SMS gateway: it fails the first failures requests
// with status, then delivers, remembering each message id once.
type gateway struct {
	t        *testing.T
	secret   string
	mu       sync.Mutex
	failures int
	status   int
	requests int
	received map[string]WebhookBody
	dups     int
}

func (g *gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	g.mu.Lock()
	defer g.mu.Unlock()
	g.requests++
	if g.secret != "" {
		if got := r.Header.Get(SignatureHeader); got != Sign(g.secret, r.Header.Get(TimestampHeader), body) {
			g.t.Errorf("bad signature %q", got)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
	}
	if g.failures > 0 {
		g.failures--
		if g.status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "7")
		}
		w.WriteHeader(g.status)
		return
	}
	var m WebhookBody
	if err := json.Unmarshal(body, &m); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if key := r.Header.Get(IdempotencyHeader); key != m.ID {
		g.t.Errorf("Idempotency-Key %q, message id %q", key, m.ID)
	}
	if _, seen := g.received[m.ID]; seen {
		g.dups++
	} else {
		g.received[m.ID] = m
	}
	w.WriteHeader(http.StatusAccepted)
}

func (g *gateway) stats() (requests, delivered, dups int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.requests, len(g.received), g.dups
}

func newGateway(t *testing.T, failures, status int, secret string) (*gateway, *httptest.Server) {
	g := &gateway{t: t, failures: failures, status: status, secret: secret, received: map[string]WebhookBody{}}
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	return g, srv
}

func getMessage(t *testing.T, s cases.Store, id string) *cases.OutboxMessage {
	t.Helper()
	var m *cases.OutboxMessage
	if err := s.View(t.Context(), func(tx cases.Tx) error {
		var err error
		m, err = tx.OutboxMessage(t.Context(), id)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return m
}

// newOutbox returns an outbox whose worker only runs when the test calls
// Flush (its poll is an hour, and nothing kicks it but Send).
func newOutbox(t *testing.T, s cases.Store, sender Notifier, c *clock) *Outbox {
	o := NewOutbox(OutboxParams{Store: s, Sender: sender, Now: c.Now, Poll: time.Hour,
		MinBackoff: time.Second, MaxBackoff: time.Minute, MaxAge: time.Hour})
	t.Cleanup(func() { _ = o.Close() })
	return o
}

// TestGatewayOutage: the gateway fails for a while; every message is
// delivered once it is back, none twice, and the record keeps no link.
func TestGatewayOutage(t *testing.T) {
	store := openStore(t)
	g, srv := newGateway(t, 5, http.StatusServiceUnavailable, "gateway-secret")
	c := &clock{now: time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)}
	o := NewOutbox(OutboxParams{Store: store, Sender: &Webhook{URL: srv.URL, Secret: "gateway-secret", Now: c.Now},
		Now: c.Now, Poll: time.Hour, MinBackoff: time.Second, MaxBackoff: time.Minute, MaxAge: time.Hour})
	defer o.Close()
	// Stop the worker's own rounds from racing the test's: it only runs
	// when kicked, and Send kicks it, so flush under our control below.
	ids := []string{}
	for i := range 3 {
		m := Message{ID: "msg_" + string(rune('a'+i)), To: "+86 138 0000 000" + string(rune('0'+i)), Channel: cases.NotifySMS,
			Text: "【Concord】link http://x/j/k3v9x2m7q" + string(rune('a'+i))}
		if err := o.Send(t.Context(), m); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
	}
	// Rounds until the gateway recovers: each failure backs off.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, delivered, _ := g.stats(); delivered == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not delivered: %+v", g.received)
		}
		c.Add(2 * time.Minute) // past any backoff
		if _, err := o.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	requests, delivered, dups := g.stats()
	if delivered != 3 || dups != 0 || requests != 8 {
		t.Fatalf("requests %d, delivered %d, duplicates %d", requests, delivered, dups)
	}
	for _, id := range ids {
		m := getMessage(t, store, id)
		if m.Status != cases.OutboxSent || m.SentAt == nil || m.Text != "" || !strings.HasPrefix(m.To, "*") || m.LastError != "" {
			t.Fatalf("after delivery: %+v", m)
		}
	}
	// Nothing is sent again.
	c.Add(time.Hour)
	if n, _ := o.Flush(t.Context()); n != 0 {
		t.Fatalf("flushed %d again", n)
	}
}

func TestBackoffAndRetryAfter(t *testing.T) {
	store := openStore(t)
	_, srv := newGateway(t, 1, http.StatusTooManyRequests, "")
	c := &clock{now: time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)}
	o := newOutbox(t, store, &Webhook{URL: srv.URL}, c)
	if err := o.Send(t.Context(), Message{ID: "m1", To: "13800000000", Channel: cases.NotifySMS, Text: "x"}); err != nil {
		t.Fatal(err)
	}
	// The attempt is complete once its error is recorded: Attempts already
	// counts when the message is claimed, before the gateway answers.
	waitFlushed(t, o, store, "m1", func(m *cases.OutboxMessage) bool { return m.Attempts >= 1 && m.LastError != "" })
	m := getMessage(t, store, "m1")
	if m.Status != cases.OutboxPending || m.Attempts != 1 || m.NextAttemptAt.Sub(c.Now()) != 7*time.Second ||
		!strings.Contains(m.LastError, "429") {
		t.Fatalf("after a 429 with Retry-After 7: %+v (now %v)", m, c.Now())
	}
	// Not due yet: nothing happens.
	c.Add(6 * time.Second)
	if n, _ := o.Flush(t.Context()); n != 0 {
		t.Fatal("sent before Retry-After")
	}
	c.Add(time.Second)
	if n, err := o.Flush(t.Context()); n != 1 || err != nil {
		t.Fatalf("flush after Retry-After: %d %v", n, err)
	}

	// The backoff doubles up to its ceiling, with jitter.
	for attempts, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 10: time.Minute} {
		d := o.backoff(attempts)
		if d < want*9/10 || d > want*11/10 {
			t.Errorf("backoff(%d) = %v, want about %v", attempts, d, want)
		}
	}
}

// waitFlushed flushes until check holds for the message (the worker may
// have taken it first).
func waitFlushed(t *testing.T, o *Outbox, s cases.Store, id string, check func(*cases.OutboxMessage) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !check(getMessage(t, s, id)) {
		if time.Now().After(deadline) {
			t.Fatalf("message %s: %+v", id, getMessage(t, s, id))
		}
		_, _ = o.Flush(t.Context())
		time.Sleep(10 * time.Millisecond)
	}
}

func TestPermanentFailureAndMaxAge(t *testing.T) {
	store := openStore(t)
	_, bad := newGateway(t, 100, http.StatusBadRequest, "")
	c := &clock{now: time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)}
	o := newOutbox(t, store, &Webhook{URL: bad.URL}, c)
	if err := o.Send(t.Context(), Message{ID: "m1", To: "13800000000", Channel: cases.NotifySMS, Text: "x"}); err != nil {
		t.Fatal(err)
	}
	waitFlushed(t, o, store, "m1", func(m *cases.OutboxMessage) bool { return m.Status != cases.OutboxPending })
	if m := getMessage(t, store, "m1"); m.Status != cases.OutboxFailed || m.Attempts != 1 || m.Text != "" || !strings.Contains(m.LastError, "400") {
		t.Fatalf("after a 400: %+v", m)
	}

	_ = o.Close()
	// A gateway that stays down: retried until MaxAge, then given up.
	_, down := newGateway(t, 1000, http.StatusBadGateway, "")
	o2 := newOutbox(t, store, &Webhook{URL: down.URL}, c)
	if err := o2.Send(t.Context(), Message{ID: "m2", To: "13800000000", Channel: cases.NotifySMS, Text: "x"}); err != nil {
		t.Fatal(err)
	}
	for range 200 {
		c.Add(2 * time.Minute)
		_, _ = o2.Flush(t.Context())
		if getMessage(t, store, "m2").Status != cases.OutboxPending {
			break
		}
	}
	if m := getMessage(t, store, "m2"); m.Status != cases.OutboxFailed || m.Attempts < 2 {
		t.Fatalf("after MaxAge: %+v", m)
	}
}

// TestTwoWorkers: two nodes' outboxes on one store deliver each message
// once.
func TestTwoWorkers(t *testing.T) {
	store := openStore(t)
	g, srv := newGateway(t, 0, 0, "")
	a := NewOutbox(OutboxParams{Store: store, Sender: &Webhook{URL: srv.URL}, Poll: 10 * time.Millisecond})
	b := NewOutbox(OutboxParams{Store: store, Sender: &Webhook{URL: srv.URL}, Poll: 10 * time.Millisecond})
	defer a.Close()
	defer b.Close()
	for i := range 40 {
		o := a
		if i%2 == 1 {
			o = b
		}
		if err := o.Send(t.Context(), Message{To: "13800000000", Channel: cases.NotifySMS, Text: "hello"}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, delivered, _ := g.stats()
		if delivered == 40 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of 40 delivered", delivered)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if requests, _, dups := g.stats(); requests != 40 || dups != 0 {
		t.Fatalf("%d requests, %d duplicates", requests, dups)
	}
	// Close is idempotent and stops the worker.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	_ = a.Close()
}

func TestWebhook(t *testing.T) {
	var got *http.Request
	var body []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		body, _ = io.ReadAll(r.Body)
		if strings.HasSuffix(r.URL.Path, "/redirect") {
			http.Redirect(w, r, "https://elsewhere.example/", http.StatusFound)
			return
		}
		w.WriteHeader(204)
	}))
	defer srv.Close()
	wh := &Webhook{URL: srv.URL + "/send", Secret: "s3cret", Now: func() time.Time { return time.Unix(1772416800, 0) }}
	m := Message{ID: "msg_1", To: "+86 138 0000 0000", Channel: cases.NotifyWeChat, Text: "hi"}
	if err := wh.Send(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	if got.Header.Get(IdempotencyHeader) != "msg_1" || got.Header.Get(TimestampHeader) != "1772416800" ||
		got.Header.Get(SignatureHeader) != Sign("s3cret", "1772416800", body) || got.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("headers: %v", got.Header)
	}
	var wb WebhookBody
	if err := json.Unmarshal(body, &wb); err != nil || wb != (WebhookBody{ID: "msg_1", Channel: "wechat", To: "+86 138 0000 0000", Text: "hi"}) {
		t.Fatalf("body %s", body)
	}
	// A redirect is not followed: the message would go to someone else.
	wh.URL = srv.URL + "/redirect"
	if err := wh.Send(t.Context(), m); !errors.Is(err, ErrPermanent) {
		t.Fatalf("redirect: %v", err)
	}
	// A bad message is permanent; a network failure is not, and does not
	// quote the URL (which may hold a credential).
	if err := wh.Send(t.Context(), Message{ID: "x", To: "1", Channel: "pigeon", Text: "x"}); !errors.Is(err, ErrPermanent) {
		t.Fatalf("bad channel: %v", err)
	}
	wh.URL = "http://127.0.0.1:1/send?token=secret"
	err := wh.Send(t.Context(), m)
	if err == nil || errors.Is(err, ErrPermanent) || strings.Contains(err.Error(), "secret") {
		t.Fatalf("network failure: %v", err)
	}
}

func TestLogSender(t *testing.T) {
	var buf strings.Builder
	l := Log{Logger: slog.New(slog.NewTextHandler(&buf, nil))}
	if err := l.Send(context.Background(), Message{ID: "m", To: "+8613800001234", Channel: "sms", Text: "http://x/j/abc"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "http://x/j/abc") || strings.Contains(buf.String(), "13800001234") || !strings.Contains(buf.String(), "1234") {
		t.Fatalf("log: %s", buf.String())
	}
	if Mask("12") != "**" || Mask("+8613800001234") != "**********1234" {
		t.Fatalf("Mask: %q %q", Mask("12"), Mask("+8613800001234"))
	}
}

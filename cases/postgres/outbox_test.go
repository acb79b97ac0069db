package postgres_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/concord-odr/concord/cases"
	"github.com/concord-odr/concord/cases/casetest"
	"github.com/concord-odr/concord/cases/postgres"
)

// tcpProxy forwards connections to a target; cut closes its listener and
// every connection, as a database that went away, and restore listens on
// the same address again.
type tcpProxy struct {
	t      *testing.T
	target string
	addr   string
	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

func startProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	p := &tcpProxy{t: t, target: target, conns: map[net.Conn]struct{}{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(func() {
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *tcpProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
			if err != nil {
				_ = c.Close()
				continue
			}
			p.mu.Lock()
			if p.ln != ln { // cut meanwhile
				p.mu.Unlock()
				_ = c.Close()
				_ = up.Close()
				continue
			}
			p.conns[c], p.conns[up] = struct{}{}, struct{}{}
			p.mu.Unlock()
			pipe := func(dst, src net.Conn) {
				_, _ = io.Copy(dst, src)
				_ = dst.Close()
				_ = src.Close()
			}
			p.wg.Go(func() { pipe(up, c) })
			p.wg.Go(func() { pipe(c, up) })
		}
	})
}

// cut drops the listener and every open connection.
func (p *tcpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		_ = c.Close()
	}
	clear(p.conns)
}

// restore listens on the proxy's address again.
func (p *tcpProxy) restore() {
	var ln net.Listener
	var err error
	for range 50 {
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		p.t.Fatalf("restore proxy: %v", err)
	}
	p.serve(ln)
}

// TestOutboxWhileDatabaseAway ends sessions while the connection to
// PostgreSQL is cut and restored: the outcomes that could not be written
// wait in the local outbox, and once the database is back every outcome
// is recorded exactly once.
func TestOutboxWhileDatabaseAway(t *testing.T) {
	ctx := t.Context()
	_, dbURL := newSchema(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Skipf("CONCORD_TEST_DATABASE_URL is not a URL: %v", err)
	}
	proxy := startProxy(t, u.Host)
	q := u.Query()
	q.Set("connect_timeout", "2")
	q.Set("pool_max_conns", "4")
	u.RawQuery = q.Encode()
	u.Host = proxy.addr
	s := openURL(t, u.String())
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	box, err := cases.OpenOutcomeOutbox(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	svc := cases.NewService(cases.ServiceParams{Store: s, Outbox: box, Logger: log})

	const n = 24
	sessions := casetest.MediatingSessions(t, svc, n)
	outcome := func(i int) cases.Outcome {
		if i%2 == 0 {
			return cases.Outcome{Result: cases.ResultSettled, Terms: "退款129.90元"}
		}
		return cases.Outcome{Result: cases.ResultNotSettled, Remedies: []string{"online litigation"}}
	}

	// Sessions end every 15 ms, each in its own goroutine, so that some
	// are in flight when the connection is cut, a third of the way
	// through, and when it is restored, after two thirds.
	const step = 15 * time.Millisecond
	results := make([]*cases.EndResult, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, sess := range sessions {
		wg.Go(func() {
			time.Sleep(time.Duration(i) * step)
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			results[i], errs[i] = svc.EndSessionDurably(rctx, cases.EndRequest{SessionID: sess.ID, ActorID: sess.Participants[0].ID, Outcome: outcome(i)})
		})
	}
	time.Sleep(n / 3 * step)
	proxy.cut()
	time.Sleep(n / 3 * step)
	proxy.restore()
	wg.Wait()
	var written, queued int
	for i, res := range results {
		if errs[i] != nil {
			t.Fatalf("EndSessionDurably %d: %v", i, errs[i])
		}
		if res.Queued {
			queued++
		} else {
			written++
		}
	}
	t.Logf("%d outcomes written at once, %d queued", written, queued)
	if queued == 0 {
		t.Fatal("no outcome was queued while the database was away")
	}

	// The replayer writes what waits, once the database answers.
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := box.Replay(ctx, svc, log)
		pending, perr := box.Pending()
		if perr != nil {
			t.Fatal(perr)
		}
		if len(pending) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("outbox not drained: %d pending (%+v, %v)", len(pending), st, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if failed, err := box.Failed(); err != nil || len(failed) != 0 {
		t.Fatalf("failed entries: %v %v", failed, err)
	}

	// Count, through a connection of its own: every outcome there, once.
	direct := openURL(t, dbURL)
	for i, sess := range sessions {
		var evs []cases.Event
		var c *cases.Case
		err := direct.View(ctx, func(tx cases.Tx) error {
			var err error
			if c, err = tx.Case(ctx, sess.CaseID); err != nil {
				return err
			}
			evs, err = tx.Events(ctx, sess.CaseID)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		count := map[string]int{}
		for _, e := range evs {
			count[e.Type]++
		}
		if count["session.ended"] != 1 || count["case.closed"] != 1 || c.State != cases.StateClosed || c.Outcome.Result != outcome(i).Result {
			t.Fatalf("case %d: state %s outcome %+v, events %v", i, c.State, c.Outcome, count)
		}
		if rep := cases.VerifyChain(c.ID, evs); !rep.OK {
			t.Fatalf("case %d: chain broken: %+v", i, rep.Break)
		}
	}
}

// TestUnreachableIsUnavailable checks that a store whose database went
// away answers EUNAVAILABLE, the code the outbox falls back on.
func TestUnreachableIsUnavailable(t *testing.T) {
	ctx := t.Context()
	_, dbURL := newSchema(t)
	u, _ := url.Parse(dbURL)
	proxy := startProxy(t, u.Host)
	u.Host = proxy.addr
	s, err := postgres.Open(ctx, u.String())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	proxy.cut()
	err = s.View(ctx, func(tx cases.Tx) error { _, err := tx.Case(ctx, "x"); return err })
	if cases.ErrorCode(err) != cases.EUNAVAILABLE {
		t.Fatalf("View with the database away = %v (%s)", err, cases.ErrorCode(err))
	}
}

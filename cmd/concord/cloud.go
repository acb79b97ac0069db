package main

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/concord-odr/concord/cases"
)

// cloudMediation runs the 24-hour service's background parts: the ODR
// worker (complaints to the merchants' inboxes, overdue ones to
// mediation), the reminder worker (a day and 15 minutes before each
// scheduled session) and the instant-mediation queue's timer.
type cloudMediation struct {
	odr, reminders *cases.Worker
	queue          *cases.Queue
}

func startCloudMediation(svc *cases.Service, log *slog.Logger) *cloudMediation {
	return &cloudMediation{
		odr:       cases.NewODRWorker(cases.ODRWorkerParams{Service: svc, Logger: log.With("part", "odr")}),
		reminders: cases.NewReminderWorker(cases.ReminderWorkerParams{Service: svc, Logger: log.With("part", "reminders")}),
		queue:     cases.NewQueue(cases.QueueParams{Service: svc, Logger: log.With("part", "queue")}, true),
	}
}

// Close stops the three; it is idempotent.
func (c *cloudMediation) Close() error {
	return errors.Join(c.odr.Close(), c.reminders.Close(), c.queue.Close())
}

// endedSession is a session that a committed transaction ended.
type endedSession struct {
	ID     string
	CaseID string
	Mode   string
	// Result is how a reconciliation room ended: settled or escalated
	// (its record's status); empty for other sessions.
	Result string
}

// sessionEnds is the case store as the service sees it, telling after
// each committed transaction which sessions it ended, whatever ended
// them: an outcome recorded through the API or replayed from the
// outbox, a reconciliation settled or escalated by the merchant, the
// applicant, an admin or the deadline worker.
type sessionEnds struct {
	cases.Store

	mu      sync.Mutex
	onEnded func(endedSession)
}

func watchSessionEnds(s cases.Store) *sessionEnds { return &sessionEnds{Store: s} }

// notify sets what is told of ended sessions.
func (w *sessionEnds) notify(fn func(endedSession)) {
	w.mu.Lock()
	w.onEnded = fn
	w.mu.Unlock()
}

// Update runs fn and, once its transaction has committed, reports the
// sessions it ended.
func (w *sessionEnds) Update(ctx context.Context, fn func(cases.Tx) error) error {
	var last *endsTx
	err := w.Store.Update(ctx, func(tx cases.Tx) error {
		last = &endsTx{Tx: tx, results: map[string]string{}}
		return fn(last)
	})
	if err != nil || last == nil || len(last.ended) == 0 {
		return err
	}
	w.mu.Lock()
	fn2 := w.onEnded
	w.mu.Unlock()
	if fn2 == nil {
		return nil
	}
	for _, e := range last.ended {
		if e.Mode == cases.ModeReconciliation {
			e.Result = last.results[e.ID]
		}
		fn2(e)
	}
	return nil
}

// endsTx notes the sessions written as ended, and the results of the
// reconciliations that ended with them.
type endsTx struct {
	cases.Tx
	ended   []endedSession
	results map[string]string // reconciliation room -> status
}

// PutSession notes a session written as ended. One written again once
// ended (an attendance closed late) is noted again: ending a room and
// releasing a session are idempotent.
func (t *endsTx) PutSession(ctx context.Context, s *cases.Session) error {
	if err := t.Tx.PutSession(ctx, s); err != nil {
		return err
	}
	if s.Status == cases.SessionEnded {
		t.ended = append(t.ended, endedSession{ID: s.ID, CaseID: s.CaseID, Mode: s.Mode})
	}
	return nil
}

func (t *endsTx) PutReconciliation(ctx context.Context, r *cases.Reconciliation) error {
	if err := t.Tx.PutReconciliation(ctx, r); err != nil {
		return err
	}
	if r.SessionID != "" && !r.Open() {
		t.results[r.SessionID] = r.Status
	}
	return nil
}

// roomCloser is what ends a live room (signaling.Server).
type roomCloser interface {
	EndSession(sessionID, result string)
}

// sessionEnded is told of each ended session: the queue frees the
// mediator of an instant session, and the live room of a reconciliation
// (which has no mediator to end it) is ended for everyone.
func (c *cloudMediation) sessionEnded(rooms roomCloser) func(endedSession) {
	return func(e endedSession) {
		if e.Mode == cases.ModeReconciliation && rooms != nil {
			result := e.Result
			if result == "" {
				result = cases.SessionEnded
			}
			rooms.EndSession(e.ID, result)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c.queue.Release(ctx, e.ID)
	}
}

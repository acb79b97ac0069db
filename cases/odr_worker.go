package cases

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// The ODR worker is what makes the reconciliation deadline the server's,
// not the merchant's goodwill: each round it
//
//   - moves the submitted complaints against an enrolled ODR enterprise
//     into reconciliation, so that they reach the merchant's inbox first;
//   - escalates the cases whose reconciliation deadline has passed, and
//     those of enterprises no longer enrolled, to mediation.
//
// Every step is an ordinary lifecycle step, in its own transaction, so
// several nodes may run workers on one store: a case another node moved
// first is a version conflict here, and skipped.

// workerActor is the actor the worker's steps are recorded with.
const workerActor = "system:odr"

// SweepResult counts what one round of the worker did.
type SweepResult struct {
	Routed    int `json:"routed"`    // submitted -> reconciliation
	Escalated int `json:"escalated"` // reconciliation -> dispatched
	Failed    int `json:"failed"`    // steps refused (logged), tried again next round
}

// sweepBatch is the most cases one listing of a round reads.
const sweepBatch = 200

// SweepReconciliation runs one round of the ODR worker at the service's
// current time.
func (s *Service) SweepReconciliation(ctx context.Context) (SweepResult, error) {
	var res SweepResult
	if err := s.routeSubmitted(ctx, &res); err != nil {
		return res, err
	}
	if err := s.escalateOverdue(ctx, &res); err != nil {
		return res, err
	}
	return res, s.escalateUnenrolled(ctx, &res)
}

// routeSubmitted moves submitted ODR complaints into reconciliation.
func (s *Service) routeSubmitted(ctx context.Context, res *SweepResult) error {
	f := CaseFilter{State: StateSubmitted, Limit: sweepBatch}
	for {
		var list []Case
		if err := s.store.View(ctx, func(tx Tx) error {
			var err error
			list, err = tx.ListCases(ctx, f)
			return err
		}); err != nil {
			return err
		}
		for _, c := range list {
			if !c.Respondent.ODREnterprise || c.Respondent.CreditCode == "" {
				continue
			}
			err := s.store.Update(ctx, func(tx Tx) error {
				cur, err := tx.Case(ctx, c.ID)
				if err != nil {
					return err
				}
				if cur.State != StateSubmitted {
					return nil
				}
				e, err := tx.Enterprise(ctx, cur.Respondent.CreditCode)
				if ErrorCode(err) == ENOTFOUND {
					return nil
				}
				if err != nil {
					return err
				}
				if e.Status != EnterpriseEnrolled || enterpriseCovers(e, cur) != nil {
					return nil // staff dispatch it as any other case
				}
				if err := s.applyLocked(ctx, tx, cur, TransitionRequest{To: StateReconciliation, Actor: workerActor}); err != nil {
					return err
				}
				res.Routed++
				return nil
			})
			s.sweepError(err, "route to reconciliation", c.ID, res)
		}
		if len(list) < f.Limit {
			return nil
		}
		last := list[len(list)-1]
		f.AfterCreatedAt, f.AfterID = last.CreatedAt, last.ID
	}
}

// escalateOverdue escalates the reconciliations whose deadline passed.
func (s *Service) escalateOverdue(ctx context.Context, res *SweepResult) error {
	now := s.now().UTC()
	f := CaseFilter{State: StateReconciliation, DueBy: now, Limit: sweepBatch}
	for {
		var list []Case
		if err := s.store.View(ctx, func(tx Tx) error {
			var err error
			list, err = tx.ListCases(ctx, f)
			return err
		}); err != nil {
			return err
		}
		for _, c := range list {
			err := s.store.Update(ctx, func(tx Tx) error {
				cur, err := tx.Case(ctx, c.ID)
				if err != nil {
					return err
				}
				if cur.State != StateReconciliation || !cur.Overdue(s.now().UTC()) {
					return nil
				}
				if err := s.escalateLocked(ctx, tx, cur, ReasonDeadlinePassed, "", workerActor); err != nil {
					return err
				}
				res.Escalated++
				return nil
			})
			s.sweepError(err, "escalate overdue reconciliation", c.ID, res)
		}
		if len(list) < f.Limit {
			return nil
		}
		last := list[len(list)-1]
		f.AfterCreatedAt, f.AfterID = last.CreatedAt, last.ID
	}
}

// escalateUnenrolled escalates the open reconciliations of enterprises
// whose enrolment was suspended or removed by a route that did not
// escalate them itself (the platform admin's PUT).
func (s *Service) escalateUnenrolled(ctx context.Context, res *SweepResult) error {
	var open []Reconciliation
	var enterprises []Enterprise
	if err := s.store.View(ctx, func(tx Tx) error {
		var err error
		if open, err = tx.Reconciliations(ctx, ReconciliationFilter{Open: true, Limit: 100000}); err != nil {
			return err
		}
		enterprises, err = tx.Enterprises(ctx)
		return err
	}); err != nil {
		return err
	}
	enrolled := map[string]bool{}
	for _, e := range enterprises {
		enrolled[e.CreditCode] = e.Status == EnterpriseEnrolled
	}
	for _, r := range open {
		if enrolled[r.EnterpriseCode] {
			continue
		}
		err := s.store.Update(ctx, func(tx Tx) error {
			cur, err := tx.Case(ctx, r.CaseID)
			if err != nil {
				return err
			}
			if cur.State != StateReconciliation {
				return nil
			}
			e, err := tx.Enterprise(ctx, r.EnterpriseCode)
			if err == nil && e.Status == EnterpriseEnrolled {
				return nil
			}
			if err != nil && ErrorCode(err) != ENOTFOUND {
				return err
			}
			if err := s.escalateLocked(ctx, tx, cur, ReasonEnterpriseSuspended, "the enterprise is no longer enrolled", workerActor); err != nil {
				return err
			}
			res.Escalated++
			return nil
		})
		s.sweepError(err, "escalate reconciliation of an unenrolled enterprise", r.CaseID, res)
	}
	return nil
}

// sweepError logs a refused step; the next round tries again.
func (s *Service) sweepError(err error, what, caseID string, res *SweepResult) {
	if err == nil {
		return
	}
	res.Failed++
	level := slog.LevelWarn
	if ErrorCode(err) == ECONFLICT {
		level = slog.LevelDebug // another node or request moved it first
	}
	s.log.Log(context.Background(), level, "odr worker: "+what, "case", caseID, "err", err)
}

// ODRWorkerParams configures the ODR worker.
type ODRWorkerParams struct {
	Service *Service
	Logger  *slog.Logger
	// Interval is the time between rounds; 0 means one minute.
	Interval time.Duration
}

// NewODRWorker starts a worker that runs SweepReconciliation every
// Interval until Close.
func NewODRWorker(p ODRWorkerParams) *Worker {
	return newWorker("odr worker", p.Logger, p.Interval, func(ctx context.Context) (int, error) {
		res, err := p.Service.SweepReconciliation(ctx)
		return res.Routed + res.Escalated, err
	})
}

// ReminderWorkerParams configures the reminder worker.
type ReminderWorkerParams struct {
	Service *Service
	Logger  *slog.Logger
	// Interval is the time between rounds; 0 means one minute.
	Interval time.Duration
}

// NewReminderWorker starts a worker that runs SendDueReminders every
// Interval until Close.
func NewReminderWorker(p ReminderWorkerParams) *Worker {
	return newWorker("reminder worker", p.Logger, p.Interval, p.Service.SendDueReminders)
}

// Worker runs a round of work every interval, or when kicked, until
// Close.
type Worker struct {
	name     string
	log      *slog.Logger
	interval time.Duration
	round    func(context.Context) (int, error)
	kick     chan struct{}
	closed   chan struct{}
	done     chan struct{}
	once     sync.Once
}

func newWorker(name string, log *slog.Logger, interval time.Duration, round func(context.Context) (int, error)) *Worker {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if interval <= 0 {
		interval = time.Minute
	}
	w := &Worker{name: name, log: log, interval: interval, round: round,
		kick: make(chan struct{}, 1), closed: make(chan struct{}), done: make(chan struct{})}
	go w.run()
	return w
}

// Kick asks for a round now (after an intake, for example).
func (w *Worker) Kick() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

func (w *Worker) run() {
	defer close(w.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-w.closed:
			cancel()
		case <-ctx.Done():
		}
	}()
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		n, err := w.round(ctx)
		if err != nil && ctx.Err() == nil {
			w.log.Warn(w.name+": round failed", "err", err)
		} else if n > 0 {
			w.log.Info(w.name+": round", "done", n)
		}
		select {
		case <-w.closed:
			return
		case <-t.C:
		case <-w.kick:
		}
	}
}

// Close stops the worker and waits for its round to end. It is
// idempotent.
func (w *Worker) Close() error {
	w.once.Do(func() { close(w.closed) })
	<-w.done
	return nil
}

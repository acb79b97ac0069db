package notify

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/concord-odr/concord/cases"
)

// OutboxParams configures an Outbox.
type OutboxParams struct {
	Store cases.Store
	// Sender delivers; nil means Log.
	Sender Notifier
	Logger *slog.Logger
	Now    func() time.Time
	// Poll is how often the worker looks for due messages when nobody
	// kicks it (messages queued by other nodes, retries); 0 means 5s.
	Poll time.Duration
	// Lease is how long a message taken by a worker is left alone by the
	// others; it must exceed SendTimeout. 0 means 2 minutes.
	Lease time.Duration
	// SendTimeout bounds one delivery attempt; 0 means 15s.
	SendTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait between attempts, which
	// doubles from one to the next; 0 means 2s and 15 minutes.
	MinBackoff, MaxBackoff time.Duration
	// MaxAge is how long a message is retried before it is given up
	// (status failed, kept for the operator); 0 means 72 hours.
	MaxAge time.Duration
	// Batch is the most messages taken at once; 0 means 20.
	Batch int
}

// Outbox queues messages in the case store and delivers them from a
// worker goroutine: at least once, each attempt carrying the message's id
// as the gateway's idempotency key, so that a gateway that honours it
// delivers exactly once. Several nodes may run an Outbox on one store: a
// message taken by one is leased, not taken by the others meanwhile.
//
// After delivery (or when it is given up) a message's text, which holds
// a join link, is erased and its recipient masked; the record of when and
// to what channel stays.
type Outbox struct {
	p      OutboxParams
	log    *slog.Logger
	kick   chan struct{}
	closed chan struct{}
	done   chan struct{}
	cancel context.CancelFunc
	once   sync.Once
}

var _ Notifier = (*Outbox)(nil)

// NewOutbox returns an Outbox whose worker runs until Close.
func NewOutbox(p OutboxParams) *Outbox {
	if p.Logger == nil {
		p.Logger = slog.New(slog.DiscardHandler)
	}
	if p.Sender == nil {
		p.Sender = Log{Logger: p.Logger}
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	if p.Poll <= 0 {
		p.Poll = 5 * time.Second
	}
	if p.SendTimeout <= 0 {
		p.SendTimeout = 15 * time.Second
	}
	if p.Lease <= p.SendTimeout {
		p.Lease = max(2*time.Minute, 2*p.SendTimeout)
	}
	if p.MinBackoff <= 0 {
		p.MinBackoff = 2 * time.Second
	}
	if p.MaxBackoff <= 0 {
		p.MaxBackoff = 15 * time.Minute
	}
	if p.MaxAge <= 0 {
		p.MaxAge = 72 * time.Hour
	}
	if p.Batch <= 0 {
		p.Batch = 20
	}
	ctx, cancel := context.WithCancel(context.Background())
	o := &Outbox{p: p, log: p.Logger, kick: make(chan struct{}, 1), closed: make(chan struct{}),
		done: make(chan struct{}), cancel: cancel}
	go o.run(ctx)
	return o
}

// Send queues m for delivery (a new id is given when it has none). It
// returns once the message is stored.
func (o *Outbox) Send(ctx context.Context, m Message) error {
	if err := m.Check(); err != nil {
		return err
	}
	if m.ID == "" {
		m.ID = cases.NewID("msg_")
	}
	now := o.p.Now().UTC()
	err := o.p.Store.Update(ctx, func(tx cases.Tx) error {
		return tx.PutOutbox(ctx, &cases.OutboxMessage{ID: m.ID, Channel: m.Channel, To: m.To, Text: m.Text,
			Status: cases.OutboxPending, NextAttemptAt: now, CreatedAt: now})
	})
	if err != nil {
		return err
	}
	o.Kick()
	return nil
}

// Kick wakes the worker: messages wait.
func (o *Outbox) Kick() {
	select {
	case o.kick <- struct{}{}:
	default:
	}
}

// Close stops the worker, abandoning an attempt in flight (its message is
// retried after its lease). It is idempotent.
func (o *Outbox) Close() error {
	o.once.Do(func() {
		close(o.closed)
		o.cancel()
		<-o.done
	})
	return nil
}

func (o *Outbox) run(ctx context.Context) {
	defer close(o.done)
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-o.closed:
			return
		case <-o.kick:
		case <-t.C:
		}
		if _, err := o.Flush(ctx); err != nil && ctx.Err() == nil {
			o.log.Warn("outbox: delivery round failed", "err", err)
		}
		t.Reset(o.p.Poll)
	}
}

// Flush delivers the messages due now, round after round until none is
// left, and returns how many it delivered.
func (o *Outbox) Flush(ctx context.Context) (int, error) {
	delivered := 0
	for ctx.Err() == nil {
		var batch []cases.OutboxMessage
		now := o.p.Now().UTC()
		err := o.p.Store.Update(ctx, func(tx cases.Tx) error {
			var err error
			batch, err = tx.ClaimOutbox(ctx, now, now.Add(o.p.Lease), o.p.Batch)
			return err
		})
		if err != nil {
			return delivered, err
		}
		if len(batch) == 0 {
			return delivered, nil
		}
		for _, m := range batch {
			ok, err := o.deliver(ctx, m)
			if err != nil {
				return delivered, err
			}
			if ok {
				delivered++
			}
		}
	}
	return delivered, ctx.Err()
}

// deliver makes one attempt at m and records its result.
func (o *Outbox) deliver(ctx context.Context, m cases.OutboxMessage) (bool, error) {
	sctx, cancel := context.WithTimeout(ctx, o.p.SendTimeout)
	sendErr := o.p.Sender.Send(sctx, Message{ID: m.ID, To: m.To, Channel: m.Channel, Text: m.Text})
	cancel()
	if sendErr != nil && ctx.Err() != nil {
		return false, ctx.Err() // shutting down: the lease brings it back
	}
	now := o.p.Now().UTC()
	log := o.log.With("message", m.ID, "channel", m.Channel, "to", Mask(m.To), "attempt", m.Attempts)
	err := o.p.Store.Update(ctx, func(tx cases.Tx) error {
		cur, err := tx.OutboxMessage(ctx, m.ID)
		if err != nil {
			return err
		}
		if cur.Status != cases.OutboxPending {
			return nil
		}
		switch {
		case sendErr == nil:
			cur.Status, cur.SentAt, cur.LastError = cases.OutboxSent, &now, ""
			cur.Text, cur.To = "", Mask(cur.To)
		case errors.Is(sendErr, ErrPermanent) || now.Sub(cur.CreatedAt) >= o.p.MaxAge:
			cur.Status, cur.LastError = cases.OutboxFailed, truncate(sendErr.Error(), 500)
			cur.Text, cur.To = "", Mask(cur.To)
		default:
			wait := o.backoff(cur.Attempts)
			var ra *RetryAfterError
			if errors.As(sendErr, &ra) && ra.After > wait {
				wait = ra.After
			}
			cur.NextAttemptAt, cur.LastError = now.Add(wait), truncate(sendErr.Error(), 500)
		}
		return tx.PutOutbox(ctx, cur)
	})
	if err != nil {
		return false, err
	}
	switch {
	case sendErr == nil:
		log.Info("notification delivered")
		return true, nil
	case errors.Is(sendErr, ErrPermanent):
		log.Error("notification refused by the gateway; given up", "err", sendErr)
	default:
		log.Warn("notification not delivered; will retry", "err", sendErr)
	}
	return false, nil
}

// backoff is the wait after the given number of attempts: doubling from
// MinBackoff up to MaxBackoff, with a fifth of jitter.
func (o *Outbox) backoff(attempts int) time.Duration {
	d := o.p.MinBackoff
	for i := 1; i < attempts && d < o.p.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, o.p.MaxBackoff)
	jitter := time.Duration(rand.Int64N(int64(d)/5 + 1))
	return d - d/10 + jitter
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

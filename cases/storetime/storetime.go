// Package storetime normalises the times of values before a case store
// keeps them: UTC, truncated to the microsecond, the precision both the
// embedded and the PostgreSQL store keep. Put methods apply it to the
// value they are given, so what the caller holds after a successful Put
// equals what a later read returns.
package storetime

import (
	"time"

	"github.com/concord-odr/concord/cases"
)

// UTC returns t in UTC, truncated to the microsecond.
func UTC(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// utcPtr returns a new pointer to UTC(*t), or nil.
func UTCPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := UTC(*t)
	return &u
}

// Institution normalises an institution in place.
func Institution(inst *cases.Institution) {
	inst.CreatedAt = UTC(inst.CreatedAt)
}

// Case normalises a case in place; nested values are copied, not shared.
func Case(c *cases.Case) {
	c.CreatedAt = UTC(c.CreatedAt)
	c.UpdatedAt = UTC(c.UpdatedAt)
	if c.Outcome != nil {
		o := *c.Outcome
		o.RecordedAt = UTC(o.RecordedAt)
		o.NextSessionAt = UTCPtr(o.NextSessionAt)
		c.Outcome = &o
	}
	if c.Deadlines != nil {
		ds := make([]cases.Deadline, len(c.Deadlines))
		for i, d := range c.Deadlines {
			d.StartedAt = UTC(d.StartedAt)
			d.DueAt = UTC(d.DueAt)
			d.MetAt = UTCPtr(d.MetAt)
			ds[i] = d
		}
		c.Deadlines = ds
	}
	if c.Confirmation != nil {
		cf := *c.Confirmation
		cf.RequestedAt = UTC(cf.RequestedAt)
		cf.DecidedAt = UTCPtr(cf.DecidedAt)
		c.Confirmation = &cf
	}
	if c.Referral != nil {
		r := *c.Referral
		r.At = UTC(r.At)
		c.Referral = &r
	}
	if c.Agreement != nil {
		a := *c.Agreement
		a.EffectiveAt = UTC(a.EffectiveAt)
		c.Agreement = &a
	}
}

// Mediator normalises a mediator in place.
func Mediator(m *cases.Mediator) {
	m.CreatedAt = UTC(m.CreatedAt)
}

// Enterprise normalises an ODR enterprise in place.
func Enterprise(e *cases.Enterprise) {
	e.CreatedAt = UTC(e.CreatedAt)
	e.UpdatedAt = UTC(e.UpdatedAt)
}

// Session normalises a session in place.
func Session(s *cases.Session) {
	s.CreatedAt = UTC(s.CreatedAt)
	s.ScheduledAt = UTCPtr(s.ScheduledAt)
	s.StartedAt = UTCPtr(s.StartedAt)
	s.EndedAt = UTCPtr(s.EndedAt)
	for i := range s.Attendance {
		a := &s.Attendance[i]
		a.JoinedAt = UTC(a.JoinedAt)
		a.LeftAt = UTCPtr(a.LeftAt)
	}
}

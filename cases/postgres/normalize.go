package postgres

import (
	"time"

	"github.com/concord-odr/concord/cases"
)

// The store keeps times in UTC with microsecond precision. Put methods
// normalise the times of the value they are given in place, so that what
// the caller holds after a successful Put equals what a later read
// returns.

// utc returns t in UTC, truncated to the microsecond.
func utc(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// utcPtr returns a new pointer to utc(*t), or nil.
func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := utc(*t)
	return &u
}

func normalizeInstitution(inst *cases.Institution) {
	inst.CreatedAt = utc(inst.CreatedAt)
}

func normalizeCase(c *cases.Case) {
	c.CreatedAt = utc(c.CreatedAt)
	c.UpdatedAt = utc(c.UpdatedAt)
	if c.Outcome != nil {
		o := *c.Outcome
		o.RecordedAt = utc(o.RecordedAt)
		o.NextSessionAt = utcPtr(o.NextSessionAt)
		c.Outcome = &o
	}
	if c.Deadlines != nil {
		ds := make([]cases.Deadline, len(c.Deadlines))
		for i, d := range c.Deadlines {
			d.StartedAt = utc(d.StartedAt)
			d.DueAt = utc(d.DueAt)
			d.MetAt = utcPtr(d.MetAt)
			ds[i] = d
		}
		c.Deadlines = ds
	}
	if c.Confirmation != nil {
		cf := *c.Confirmation
		cf.RequestedAt = utc(cf.RequestedAt)
		cf.DecidedAt = utcPtr(cf.DecidedAt)
		c.Confirmation = &cf
	}
	if c.Referral != nil {
		r := *c.Referral
		r.At = utc(r.At)
		c.Referral = &r
	}
	if c.Agreement != nil {
		a := *c.Agreement
		a.EffectiveAt = utc(a.EffectiveAt)
		c.Agreement = &a
	}
}

func normalizeMediator(m *cases.Mediator) {
	m.CreatedAt = utc(m.CreatedAt)
}

func normalizeEnterprise(e *cases.Enterprise) {
	e.CreatedAt = utc(e.CreatedAt)
	e.UpdatedAt = utc(e.UpdatedAt)
}

func normalizeSession(s *cases.Session) {
	s.CreatedAt = utc(s.CreatedAt)
	s.ScheduledAt = utcPtr(s.ScheduledAt)
	s.StartedAt = utcPtr(s.StartedAt)
	s.EndedAt = utcPtr(s.EndedAt)
	for i := range s.Attendance {
		a := &s.Attendance[i]
		a.JoinedAt = utc(a.JoinedAt)
		a.LeftAt = utcPtr(a.LeftAt)
	}
}

package sqlite

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
		c.Outcome = &o
	}
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

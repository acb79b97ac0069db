package cases

import (
	"context"
	"time"
)

// Shift is a period a mediator is on duty for the instant-mediation
// queue of its institution. Being on duty also needs live presence (see
// queue.go): a mediator on shift but away is not offered anything.
type Shift struct {
	ID            string    `json:"id"`
	MediatorID    string    `json:"mediatorId"`
	InstitutionID string    `json:"institutionId"`
	StartsAt      time.Time `json:"startsAt"`
	EndsAt        time.Time `json:"endsAt"`
	CreatedBy     string    `json:"createdBy,omitempty"`
	CreatedAt     time.Time `json:"createdAt"`
}

// Covers reports whether the shift runs at t.
func (s *Shift) Covers(t time.Time) bool { return !t.Before(s.StartsAt) && t.Before(s.EndsAt) }

// ShiftFilter selects shifts for Tx.Shifts. Zero fields select
// everything.
type ShiftFilter struct {
	InstitutionID string
	MediatorID    string
	// From and To select the shifts that overlap [From, To).
	From time.Time
	To   time.Time
}

// maxShift is the longest shift.
const maxShift = 24 * time.Hour

// PutShift creates or replaces a shift of a mediator of an institution.
func (s *Service) PutShift(ctx context.Context, sh *Shift) error {
	if !sh.EndsAt.After(sh.StartsAt) {
		return FieldErrorf("endsAt", "endsAt must be after startsAt")
	}
	if sh.EndsAt.Sub(sh.StartsAt) > maxShift {
		return FieldErrorf("endsAt", "a shift lasts at most %s", maxShift)
	}
	if sh.ID == "" {
		sh.ID = NewID("shift_")
	}
	if err := validText("id", sh.ID, 64, true); err != nil {
		return err
	}
	sh.StartsAt = sh.StartsAt.UTC().Truncate(time.Microsecond)
	sh.EndsAt = sh.EndsAt.UTC().Truncate(time.Microsecond)
	if sh.CreatedAt.IsZero() {
		sh.CreatedAt = s.now().UTC().Truncate(time.Microsecond)
	}
	return s.store.Update(ctx, func(tx Tx) error {
		m, err := tx.Mediator(ctx, sh.MediatorID)
		if ErrorCode(err) == ENOTFOUND {
			return FieldErrorf("mediatorId", "mediator %q does not exist", sh.MediatorID)
		}
		if err != nil {
			return err
		}
		if sh.InstitutionID == "" {
			sh.InstitutionID = m.InstitutionID
		}
		if m.InstitutionID != sh.InstitutionID {
			return FieldErrorf("mediatorId", "the mediator does not belong to institution %s", sh.InstitutionID)
		}
		if m.Status != MediatorActive {
			return FieldErrorf("mediatorId", "mediator %s is not active", m.Name)
		}
		overlapping, err := tx.Shifts(ctx, ShiftFilter{MediatorID: sh.MediatorID, From: sh.StartsAt, To: sh.EndsAt})
		if err != nil {
			return err
		}
		for _, o := range overlapping {
			if o.ID != sh.ID {
				return Errorf(ECONFLICT, "the mediator already has shift %s from %s to %s", o.ID,
					o.StartsAt.Format(time.RFC3339), o.EndsAt.Format(time.RFC3339))
			}
		}
		return tx.PutShift(ctx, sh)
	})
}

// Shifts lists shifts.
func (s *Service) Shifts(ctx context.Context, f ShiftFilter) ([]Shift, error) {
	var list []Shift
	err := s.store.View(ctx, func(tx Tx) error {
		var err error
		list, err = tx.Shifts(ctx, f)
		return err
	})
	return list, err
}

// DeleteShift removes a shift.
func (s *Service) DeleteShift(ctx context.Context, id string) error {
	return s.store.Update(ctx, func(tx Tx) error { return tx.DeleteShift(ctx, id) })
}

// OnShift returns the ids of the mediators of an institution on shift at
// t.
func (s *Service) OnShift(ctx context.Context, institutionID string, t time.Time) ([]string, error) {
	list, err := s.Shifts(ctx, ShiftFilter{InstitutionID: institutionID, From: t, To: t.Add(time.Microsecond)})
	if err != nil {
		return nil, err
	}
	var ids []string
	seen := map[string]bool{}
	for _, sh := range list {
		if sh.Covers(t) && !seen[sh.MediatorID] {
			seen[sh.MediatorID] = true
			ids = append(ids, sh.MediatorID)
		}
	}
	return ids, nil
}

package cases

import (
	"context"
	"regexp"
)

// levelRank orders institution levels from the highest.
var levelRank = map[string]int{LevelProvince: 1, LevelCity: 2, LevelDistrict: 3, LevelCommunity: 4}

var institutionCode = regexp.MustCompile(`^[0-9A-Za-z]{1,12}$`)

// PutInstitution creates or replaces an institution. Its level is one of
// the four; its parent, when set, exists and is of a higher level.
func (s *Service) PutInstitution(ctx context.Context, inst *Institution) error {
	if err := validText("name", inst.Name, 200, true); err != nil {
		return err
	}
	if !institutionCode.MatchString(inst.Code) {
		return FieldErrorf("code", "code must be 1 to 12 letters or digits; it starts the case numbers")
	}
	if levelRank[inst.Level] == 0 {
		return FieldErrorf("level", "level must be province, city, district or community")
	}
	if inst.Status == "" {
		inst.Status = InstitutionActive
	}
	switch inst.Status {
	case InstitutionActive, InstitutionSuspended, InstitutionClosed:
	default:
		return FieldErrorf("status", "status must be active, suspended or closed")
	}
	if inst.ID == "" {
		inst.ID = NewID("inst_")
	}
	if inst.CreatedAt.IsZero() {
		inst.CreatedAt = s.now().UTC()
	}
	return s.store.Update(ctx, func(tx Tx) error {
		if inst.ParentID != "" {
			if inst.ParentID == inst.ID {
				return FieldErrorf("parentId", "an institution cannot be its own parent")
			}
			parent, err := tx.Institution(ctx, inst.ParentID)
			if ErrorCode(err) == ENOTFOUND {
				return FieldErrorf("parentId", "parent institution %q does not exist", inst.ParentID)
			}
			if err != nil {
				return err
			}
			if levelRank[parent.Level] >= levelRank[inst.Level] {
				return FieldErrorf("parentId", "a %s institution cannot sit under a %s one", inst.Level, parent.Level)
			}
		}
		if old, err := tx.Institution(ctx, inst.ID); err == nil {
			inst.CreatedAt = old.CreatedAt
		} else if ErrorCode(err) != ENOTFOUND {
			return err
		}
		return tx.PutInstitution(ctx, inst)
	})
}

// Institution reads one institution.
func (s *Service) Institution(ctx context.Context, id string) (*Institution, error) {
	var inst *Institution
	err := s.store.View(ctx, func(tx Tx) error {
		var err error
		inst, err = tx.Institution(ctx, id)
		return err
	})
	return inst, err
}

// Institutions lists every institution.
func (s *Service) Institutions(ctx context.Context) ([]Institution, error) {
	var list []Institution
	err := s.store.View(ctx, func(tx Tx) error {
		var err error
		list, err = tx.Institutions(ctx)
		return err
	})
	return list, err
}

// PutMediator creates or replaces a mediator of an institution that is
// not closed.
func (s *Service) PutMediator(ctx context.Context, m *Mediator) error {
	if err := validText("name", m.Name, 200, true); err != nil {
		return err
	}
	if m.Status == "" {
		m.Status = MediatorActive
	}
	if m.Status != MediatorActive && m.Status != MediatorInactive {
		return FieldErrorf("status", "status must be active or inactive")
	}
	if m.ID == "" {
		m.ID = NewID("med_")
	}
	if m.CreatedAt.IsZero() {
		m.CreatedAt = s.now().UTC()
	}
	return s.store.Update(ctx, func(tx Tx) error {
		inst, err := tx.Institution(ctx, m.InstitutionID)
		if ErrorCode(err) == ENOTFOUND {
			return FieldErrorf("institutionId", "institution %q does not exist", m.InstitutionID)
		}
		if err != nil {
			return err
		}
		if inst.Status == InstitutionClosed {
			return FieldErrorf("institutionId", "institution %s is closed", inst.Name)
		}
		if old, err := tx.Mediator(ctx, m.ID); err == nil {
			if old.InstitutionID != m.InstitutionID {
				return FieldErrorf("institutionId", "a mediator belongs to one institution")
			}
			m.CreatedAt = old.CreatedAt
		} else if ErrorCode(err) != ENOTFOUND {
			return err
		}
		return tx.PutMediator(ctx, m)
	})
}

// Mediators lists the mediators of an institution.
func (s *Service) Mediators(ctx context.Context, institutionID string) ([]Mediator, error) {
	var list []Mediator
	err := s.store.View(ctx, func(tx Tx) error {
		if _, err := tx.Institution(ctx, institutionID); err != nil {
			return err
		}
		var err error
		list, err = tx.Mediators(ctx, institutionID)
		return err
	})
	return list, err
}

// PutEnterprise enrols (or updates, or withdraws) an ODR enterprise.
func (s *Service) PutEnterprise(ctx context.Context, e *Enterprise) error {
	if !ValidCreditCode(e.CreditCode) {
		return FieldErrorf("creditCode", "creditCode is not an 18-character unified social credit code")
	}
	if err := validText("name", e.Name, 200, true); err != nil {
		return err
	}
	if e.Status == "" {
		e.Status = EnterpriseEnrolled
	}
	if !validEnterpriseStatus(e.Status) {
		return FieldErrorf("status", "status must be pending, enrolled, suspended or withdrawn")
	}
	if err := checkEnrolment(e); err != nil {
		return err
	}
	now := s.now().UTC()
	e.CreatedAt, e.UpdatedAt = now, now
	return s.store.Update(ctx, func(tx Tx) error {
		if old, err := tx.Enterprise(ctx, e.CreditCode); err == nil {
			e.CreatedAt = old.CreatedAt
			keepEnrolment(e, old)
		} else if ErrorCode(err) != ENOTFOUND {
			return err
		}
		return tx.PutEnterprise(ctx, e)
	})
}

// Enterprise reads one ODR enterprise.
func (s *Service) Enterprise(ctx context.Context, creditCode string) (*Enterprise, error) {
	var e *Enterprise
	err := s.store.View(ctx, func(tx Tx) error {
		var err error
		e, err = tx.Enterprise(ctx, creditCode)
		return err
	})
	return e, err
}

package cases

import (
	"context"
	"fmt"
	"time"

	"github.com/concord-odr/concord/cases/calendar"
)

// Performance tracking: when an agreement is signed, each of its terms
// with a deadline becomes a follow-up. The applicant (or staff) reports
// whether the term was performed; a term not performed by its deadline
// shows on the mediator's list.

// Follow-up statuses.
const (
	FollowUpPending      = "pending"       // nothing reported yet
	FollowUpPerformed    = "performed"     // reported performed
	FollowUpNotPerformed = "not_performed" // reported not performed
	FollowUpSuperseded   = "superseded"    // its agreement was corrected
)

// PerformanceReport is one report on a term's performance.
type PerformanceReport struct {
	Performed bool      `json:"performed"`
	By        string    `json:"by"`             // participant id, or "operator"
	Side      string    `json:"side,omitempty"` // the reporting party's side
	At        time.Time `json:"at"`
	Note      string    `json:"note,omitempty"`
}

// FollowUp tracks the performance of one agreed term.
type FollowUp struct {
	ID          string `json:"id"`
	CaseID      string `json:"caseId"`
	CaseNumber  string `json:"caseNumber"`
	AgreementID string `json:"agreementId"`
	TermNo      int    `json:"termNo"`
	Text        string `json:"text"`
	Obligor     string `json:"obligor,omitempty"`
	AmountCents int64  `json:"amountCents,omitempty"`
	Method      string `json:"method,omitempty"`
	Deadline    string `json:"deadline"` // YYYY-MM-DD
	// DueAt is the end of the deadline day in China time: from then on an
	// unperformed term is overdue.
	DueAt         time.Time           `json:"dueAt"`
	InstitutionID string              `json:"institutionId"`
	MediatorID    string              `json:"mediatorId,omitempty"` // the case's mediator
	Status        string              `json:"status"`
	Reports       []PerformanceReport `json:"reports"`
	Version       int64               `json:"version"`
	CreatedAt     time.Time           `json:"createdAt"`
	UpdatedAt     time.Time           `json:"updatedAt"`
}

// Overdue reports whether the term is unperformed past its deadline.
func (f *FollowUp) Overdue(now time.Time) bool {
	return (f.Status == FollowUpPending || f.Status == FollowUpNotPerformed) && !now.Before(f.DueAt)
}

// FollowUpFilter selects follow-ups for Tx.FollowUps. Zero fields select
// everything.
type FollowUpFilter struct {
	CaseID        string
	AgreementID   string
	InstitutionID string
	MediatorID    string
	// OverdueAt, when set, selects the pending or not performed follow-ups
	// due at or before it.
	OverdueAt time.Time
	// Limit is the most returned; 0 or less means 500.
	Limit int
}

// followUpID names the follow-up of one term of one agreement.
func followUpID(agreementID string, term int) string {
	return fmt.Sprintf("%s.t%d", agreementID, term)
}

// createFollowUps records a follow-up for each term of a with a deadline.
func (s *Service) createFollowUps(ctx context.Context, tx Tx, c *Case, a *Agreement, now time.Time) error {
	for _, t := range a.Content.Terms {
		if t.Deadline == "" {
			continue
		}
		d, err := calendar.ParseDate(t.Deadline)
		if err != nil {
			return FieldErrorf("content.terms.deadline", "term %d: deadline: %v", t.No, err)
		}
		f := &FollowUp{
			ID: followUpID(a.ID, t.No), CaseID: c.ID, CaseNumber: c.Number, AgreementID: a.ID, TermNo: t.No,
			Text: t.Text, Obligor: t.Obligor, AmountCents: t.AmountCents, Method: t.Method,
			Deadline: t.Deadline, DueAt: d.AddDays(1).Start().UTC(),
			InstitutionID: c.InstitutionID, MediatorID: c.MediatorID,
			Status: FollowUpPending, Reports: []PerformanceReport{}, CreatedAt: now, UpdatedAt: now,
		}
		if err := tx.PutFollowUp(ctx, f); err != nil {
			return err
		}
	}
	return nil
}

// supersedeFollowUps closes the follow-ups of a corrected agreement.
func supersedeFollowUps(ctx context.Context, tx Tx, caseID, agreementID string, now time.Time) error {
	list, err := tx.FollowUps(ctx, FollowUpFilter{CaseID: caseID, AgreementID: agreementID})
	if err != nil {
		return err
	}
	for i := range list {
		f := &list[i]
		f.Status = FollowUpSuperseded
		f.UpdatedAt = now
		if err := tx.PutFollowUp(ctx, f); err != nil {
			return err
		}
	}
	return nil
}

// PerformanceRequest reports whether a term was performed.
type PerformanceRequest struct {
	CaseID      string
	AgreementID string
	TermNo      int
	Performed   bool
	Note        string
	// Actor is the applicant reporting from a session; Staff, when set
	// instead, is the staff member recording it.
	Actor AgreementActor
	Staff string
}

// ReportPerformance records whether a term of a case's agreement in force
// was performed. The applicant reports for itself; staff may record a
// report on anyone's behalf.
func (s *Service) ReportPerformance(ctx context.Context, req PerformanceRequest) (*FollowUp, error) {
	if err := validText("note", req.Note, 2000, false); err != nil {
		return nil, err
	}
	var out *FollowUp
	err := s.store.Update(ctx, func(tx Tx) error {
		by, side := req.Staff, ""
		if req.Staff == "" {
			_, p, err := participantLocked(ctx, tx, req.CaseID, req.Actor, RoleParty)
			if err != nil {
				return err
			}
			if p.Side != SideApplicant {
				return Errorf(ENOTFOUND, "follow-up not found")
			}
			by, side = p.ID, p.Side
		}
		list, err := tx.FollowUps(ctx, FollowUpFilter{CaseID: req.CaseID, AgreementID: req.AgreementID})
		if err != nil {
			return err
		}
		var f *FollowUp
		for i := range list {
			if list[i].TermNo == req.TermNo {
				f = &list[i]
			}
		}
		if f == nil {
			return Errorf(ENOTFOUND, "follow-up not found")
		}
		if f.Status == FollowUpSuperseded {
			return Errorf(ETRANSITION, "the agreement was corrected; report on the correction's terms")
		}
		now := s.now().UTC()
		f.Reports = append(f.Reports, PerformanceReport{Performed: req.Performed, By: by, Side: side, At: now, Note: req.Note})
		f.Status = FollowUpNotPerformed
		if req.Performed {
			f.Status = FollowUpPerformed
		}
		f.UpdatedAt = now
		if err := tx.PutFollowUp(ctx, f); err != nil {
			return err
		}
		out = f
		return s.appendEvent(ctx, tx, req.CaseID, "agreement.performance", by, map[string]any{
			"agreementId": f.AgreementID, "termNo": f.TermNo, "performed": req.Performed,
			"late": now.After(f.DueAt),
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// FollowUps lists follow-ups. With overdue set it lists the terms not
// performed by their deadline, as of now.
func (s *Service) FollowUps(ctx context.Context, f FollowUpFilter, overdue bool) ([]FollowUp, error) {
	if overdue {
		f.OverdueAt = s.now().UTC()
	}
	var list []FollowUp
	err := s.store.View(ctx, func(tx Tx) error {
		if f.CaseID != "" {
			if _, err := tx.Case(ctx, f.CaseID); err != nil {
				return err
			}
		}
		var err error
		list, err = tx.FollowUps(ctx, f)
		return err
	})
	if list == nil {
		list = []FollowUp{}
	}
	return list, err
}

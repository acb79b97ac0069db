package cases

import (
	"context"
	"strings"
	"time"

	"github.com/concord-odr/concord/cases/calendar"
	"github.com/concord-odr/concord/cases/rules"
)

// transitions lists, for each state, the states a case may move to (see
// DESIGN.md, "Case lifecycle"). Guards in checkLocked refine it: closed
// goes on to confirmation only when settled and to referral only when not
// settled, for example.
//
//	submitted -> reconciliation (the respondent is an enrolled ODR enterprise)
//	submitted -> dispatched (to an active institution)
//	reconciliation -> closed (reconciled) | dispatched (declined, or the deadline passed)
//	dispatched -> respondent_contacted (within the working days of the rule set)
//	respondent_contacted -> accepted | rejected (with a reason)
//	accepted -> mediating (a session is scheduled)
//	mediating -> closed (settled, partially settled, not settled with remedies, withdrawn)
//	closed (settled) -> confirmation_requested -> confirmed | confirmation_refused
//	closed (not settled) -> referred (arbitration with an agreement, or litigation)
var transitions = map[State][]State{
	StateSubmitted:             {StateReconciliation, StateDispatched},
	StateReconciliation:        {StateClosed, StateDispatched},
	StateDispatched:            {StateRespondentContacted},
	StateRespondentContacted:   {StateAccepted, StateRejected},
	StateAccepted:              {StateMediating},
	StateMediating:             {StateClosed},
	StateClosed:                {StateConfirmationRequested, StateReferred},
	StateConfirmationRequested: {StateConfirmed, StateConfirmationRefused},
}

// CanTransition reports whether the lifecycle table has from -> to. The
// transition may still be refused by a guard.
func CanTransition(from, to State) bool {
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// Next lists the states the table allows after from.
func Next(from State) []State { return append([]State(nil), transitions[from]...) }

// Reasons for leaving reconciliation for an institution.
const (
	ReasonDeclined       = "declined"        // the enterprise declined to settle
	ReasonDeadlinePassed = "deadline_passed" // it did not settle in time
)

// Where a case goes after the parties' agreement or its failure.
const (
	ByCourt       = "court"
	ByArbitration = "arbitration"
	ToArbitration = "arbitration"
	ToLitigation  = "litigation"
)

// TransitionRequest asks for one lifecycle step. Which fields a step
// needs depends on To; the others must be empty.
type TransitionRequest struct {
	To    State
	Actor string
	// Version, when not 0, is the version of the case the caller saw: a
	// case changed since is refused with ECONFLICT, not merged.
	Version int64
	// InstitutionID is where dispatched sends the case; empty keeps the
	// case's institution.
	InstitutionID string
	// MediatorID is who accepted assigns the case to (optional).
	MediatorID string
	// ReasonCode: rejected needs one of the rule set's reject reasons;
	// leaving reconciliation for dispatched needs declined or
	// deadline_passed.
	ReasonCode string
	// Reason is free text; rejected requires it.
	Reason string
	// Outcome is what closed records.
	Outcome *Outcome
	// By: confirmation_requested needs court or arbitration; referred
	// needs arbitration or litigation.
	By string
	// Body names the court or arbitration body (optional).
	Body string
	// ArbitrationAgreement must be true to refer a case to arbitration.
	ArbitrationAgreement bool
	Note                 string
	// Payload is recorded in the event as given.
	Payload any
}

// Transition moves a case to another state, if the lifecycle allows it,
// and appends the event that records it in the same transaction. payload
// is recorded in the event. Steps that need more than a state (a reason,
// an outcome) go through Apply.
func (s *Service) Transition(ctx context.Context, caseID string, to State, actor string, payload any) (*Case, error) {
	return s.Apply(ctx, caseID, TransitionRequest{To: to, Actor: actor, Payload: payload})
}

// Apply performs one lifecycle step on a case, checking the table and
// the step's guards, and appends its event in the same transaction.
func (s *Service) Apply(ctx context.Context, caseID string, req TransitionRequest) (*Case, error) {
	if err := validText("note", req.Note, 2000, false); err != nil {
		return nil, err
	}
	var c *Case
	err := s.store.Update(ctx, func(tx Tx) error {
		var err error
		c, err = tx.Case(ctx, caseID)
		if err != nil {
			return err
		}
		if req.Version != 0 && req.Version != c.Version {
			return Errorf(ECONFLICT, "the case is at version %d, not %d: it was changed by someone else; reload it and try again", c.Version, req.Version)
		}
		return s.applyLocked(ctx, tx, c, req)
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// transitionLocked changes c's state inside tx.
func (s *Service) transitionLocked(ctx context.Context, tx Tx, c *Case, to State, actor string, payload any) error {
	return s.applyLocked(ctx, tx, c, TransitionRequest{To: to, Actor: actor, Payload: payload})
}

// applyLocked checks and performs req on c inside tx.
func (s *Service) applyLocked(ctx context.Context, tx Tx, c *Case, req TransitionRequest) error {
	if !req.To.Valid() {
		return FieldErrorf("to", "unknown state %q", req.To)
	}
	if !CanTransition(c.State, req.To) {
		return Errorf(ETRANSITION, "a case in state %s cannot move to %s%s", c.State, req.To, allowedAfter(c.State))
	}
	now := s.now().UTC()
	details, err := s.checkLocked(ctx, tx, c, req, now)
	if err != nil {
		return err
	}
	if req.Note != "" {
		details["note"] = req.Note
	}
	if req.Payload != nil {
		details["payload"] = req.Payload
	}
	from := c.State
	if err := s.setStateLocked(ctx, tx, c, req.To, req.Actor, details); err != nil {
		return err
	}
	// The reconciliation record follows the case in and out of its stage
	// (odr.go), whichever route the step took.
	return s.reconciliationStepLocked(ctx, tx, c, from, req)
}

// allowedAfter describes the states a case may move to from st.
func allowedAfter(st State) string {
	next := transitions[st]
	if len(next) == 0 {
		return " (it is final)"
	}
	names := make([]string, len(next))
	for i, n := range next {
		names[i] = string(n)
	}
	return " (it may move to " + strings.Join(names, ", ") + ")"
}

// checkLocked applies the guards of req.To to c, fills in what the step
// records on the case, and returns the details its event records.
func (s *Service) checkLocked(ctx context.Context, tx Tx, c *Case, req TransitionRequest, now time.Time) (map[string]any, error) {
	d := map[string]any{}
	if err := unexpected(req); err != nil {
		return nil, err
	}
	switch req.To {
	case StateReconciliation:
		if c.Respondent.CreditCode == "" {
			return nil, Errorf(ETRANSITION, "the respondent has no credit code, so it is not an ODR enterprise; dispatch the case instead")
		}
		e, err := tx.Enterprise(ctx, c.Respondent.CreditCode)
		if ErrorCode(err) == ENOTFOUND || err == nil && e.Status != EnterpriseEnrolled {
			return nil, Errorf(ETRANSITION, "the respondent is not an enrolled ODR enterprise; dispatch the case instead")
		}
		if err != nil {
			return nil, err
		}
		if err := enterpriseCovers(e, c); err != nil {
			return nil, err
		}
		d["enterprise"] = e.CreditCode

	case StateDispatched:
		if c.State == StateReconciliation {
			switch req.ReasonCode {
			case ReasonDeclined, ReasonRefused, ReasonEnterpriseSuspended:
			case ReasonDeadlinePassed:
				if !c.Overdue(now) {
					due := c.PendingDeadline()
					return nil, Errorf(ETRANSITION, "the reconciliation deadline has not passed (it ends with %s)", dueDate(due))
				}
			default:
				return nil, FieldErrorf("reasonCode", "leaving reconciliation needs reasonCode %s, %s, %s or %s",
					ReasonDeclined, ReasonRefused, ReasonDeadlinePassed, ReasonEnterpriseSuspended)
			}
			d["reasonCode"] = req.ReasonCode
			if err := validField("reason", req.Reason, 2000, false); err != nil {
				return nil, err
			}
			if req.Reason != "" {
				d["reason"] = req.Reason
			}
		} else if req.ReasonCode != "" {
			return nil, FieldErrorf("reasonCode", "a reason is given only when a case leaves reconciliation")
		} else if req.Reason != "" {
			return nil, FieldErrorf("reason", "a reason is given only when a case leaves reconciliation")
		}
		target := req.InstitutionID
		if target == "" {
			target = c.InstitutionID
		}
		inst, err := tx.Institution(ctx, target)
		if ErrorCode(err) == ENOTFOUND {
			return nil, FieldErrorf("institutionId", "institution %q does not exist", target)
		}
		if err != nil {
			return nil, err
		}
		if inst.Status != InstitutionActive {
			return nil, FieldErrorf("institutionId", "institution %s is %s and receives no new cases", inst.Name, inst.Status)
		}
		d["institutionId"] = inst.ID
		if c.InstitutionID != inst.ID {
			d["fromInstitutionId"] = c.InstitutionID
			c.InstitutionID = inst.ID
		}

	case StateAccepted:
		if req.MediatorID != "" {
			m, err := tx.Mediator(ctx, req.MediatorID)
			if ErrorCode(err) == ENOTFOUND || err == nil && m.InstitutionID != c.InstitutionID {
				return nil, FieldErrorf("mediatorId", "no mediator %q at the case's institution", req.MediatorID)
			}
			if err != nil {
				return nil, err
			}
			if m.Status != MediatorActive {
				return nil, FieldErrorf("mediatorId", "mediator %s is not active", m.Name)
			}
			c.MediatorID = m.ID
			d["mediatorId"] = m.ID
		}

	case StateRejected:
		rs := s.ruleSet(c)
		reason, ok := rs.RejectReason(req.ReasonCode)
		if !ok {
			codes := make([]string, len(rs.RejectReasons))
			for i, r := range rs.RejectReasons {
				codes[i] = r.Code
			}
			return nil, FieldErrorf("reasonCode", "a rejection needs a reasonCode of rule set %s: %s", rs.ID, strings.Join(codes, ", "))
		}
		if err := validField("reason", req.Reason, 2000, true); err != nil {
			return nil, err
		}
		c.Rejection = &Rejection{Code: reason.Code, Label: reason.Label, Text: req.Reason}
		d["reasonCode"] = reason.Code
		d["reason"] = req.Reason

	case StateClosed:
		if req.Outcome == nil {
			return nil, FieldErrorf("outcome", "closing a case needs an outcome")
		}
		o := *req.Outcome
		if c.State == StateReconciliation {
			if o.Result != ResultReconciled {
				return nil, FieldErrorf("outcome.result", "a case in reconciliation closes as %s", ResultReconciled)
			}
		} else if !o.Result.Final() {
			return nil, FieldErrorf("outcome.result", "a mediated case closes as settled, partially_settled, not_settled or withdrawn, not %q", o.Result)
		}
		if err := checkOutcome(o); err != nil {
			return nil, err
		}
		o.RecordedBy = req.Actor
		o.RecordedAt = now
		c.Outcome = &o
		d["outcome"] = o

	case StateConfirmationRequested:
		if c.Outcome == nil || !c.Outcome.Result.settles() {
			return nil, Errorf(ETRANSITION, "only a settled or partially settled case has an agreement to confirm")
		}
		if req.By != ByCourt && req.By != ByArbitration {
			return nil, FieldErrorf("by", "confirmation is requested from a court or an arbitration body: by must be %s or %s", ByCourt, ByArbitration)
		}
		if err := validField("body", req.Body, 200, false); err != nil {
			return nil, err
		}
		// The window runs from the agreement taking effect: the mediator's
		// signature (see effectiveAt).
		window := s.ruleSet(c).ConfirmationWindowDays
		last := calendar.DateOf(effectiveAt(c)).AddDays(window)
		if last.Before(calendar.DateOf(now)) {
			return nil, Errorf(ETRANSITION, "confirmation must be requested within %d days of the agreement; the last day was %s", window, last)
		}
		c.Confirmation = &Confirmation{By: req.By, Body: req.Body, RequestedAt: now, Deadline: last.String()}
		d["by"] = req.By
		d["deadline"] = last.String()
		if c.Agreement != nil {
			c.Confirmation.AgreementID = c.Agreement.ID
			d["agreementId"] = c.Agreement.ID
			d["textHash"] = c.Agreement.TextHash
		}
		if req.Body != "" {
			d["body"] = req.Body
		}

	case StateConfirmed, StateConfirmationRefused:
		if req.To == StateConfirmationRefused {
			if err := validField("reason", req.Reason, 2000, true); err != nil {
				return nil, err
			}
			d["reason"] = req.Reason
		}
		var cf Confirmation
		if c.Confirmation != nil {
			cf = *c.Confirmation
		}
		at := now
		cf.DecidedAt = &at
		cf.Confirmed = req.To == StateConfirmed
		cf.Note = req.Reason
		c.Confirmation = &cf

	case StateReferred:
		if c.Outcome == nil || c.Outcome.Result != ResultNotSettled {
			return nil, Errorf(ETRANSITION, "only a case closed as not settled is referred")
		}
		switch req.By {
		case ToArbitration:
			if !req.ArbitrationAgreement {
				return nil, FieldErrorf("arbitrationAgreement", "referral to arbitration needs the parties' arbitration agreement")
			}
		case ToLitigation:
		default:
			return nil, FieldErrorf("by", "a case is referred to %s or %s", ToArbitration, ToLitigation)
		}
		if err := validField("body", req.Body, 200, false); err != nil {
			return nil, err
		}
		c.Referral = &Referral{To: req.By, Body: req.Body, At: now, Note: req.Note}
		d["to"] = req.By
		if req.ArbitrationAgreement {
			d["arbitrationAgreement"] = true
		}
		if req.Body != "" {
			d["body"] = req.Body
		}
	}
	return d, nil
}

// unexpected refuses the fields of req that its step does not use, so
// that a caller's mistake is not silently ignored.
func unexpected(req TransitionRequest) error {
	type field struct {
		name string
		set  bool
		used []State
	}
	for _, f := range []field{
		{"institutionId", req.InstitutionID != "", []State{StateDispatched}},
		{"mediatorId", req.MediatorID != "", []State{StateAccepted}},
		{"reasonCode", req.ReasonCode != "", []State{StateDispatched, StateRejected}},
		{"reason", req.Reason != "", []State{StateDispatched, StateRejected, StateConfirmationRefused}},
		{"outcome", req.Outcome != nil, []State{StateClosed}},
		{"by", req.By != "", []State{StateConfirmationRequested, StateReferred}},
		{"body", req.Body != "", []State{StateConfirmationRequested, StateReferred}},
		{"arbitrationAgreement", req.ArbitrationAgreement, []State{StateReferred}},
	} {
		if !f.set {
			continue
		}
		ok := false
		for _, st := range f.used {
			ok = ok || st == req.To
		}
		if !ok {
			return FieldErrorf(f.name, "%s is not used when moving a case to %s", f.name, req.To)
		}
	}
	return nil
}

// checkOutcome validates what an outcome must carry.
func checkOutcome(o Outcome) error {
	needTerms := o.Result == ResultSettled || o.Result == ResultPartiallySettled || o.Result == ResultReconciled
	if err := validField("outcome.terms", o.Terms, 20000, needTerms); err != nil {
		return err
	}
	if o.Result == ResultNotSettled && len(o.Remedies) == 0 {
		return FieldErrorf("outcome.remedies", "a not-settled outcome needs the remedies shown to the applicant")
	}
	if len(o.Remedies) > 10 {
		return FieldErrorf("outcome.remedies", "at most 10 remedies")
	}
	for _, r := range o.Remedies {
		if err := validField("outcome.remedies", r, 500, true); err != nil {
			return err
		}
	}
	return nil
}

func dueDate(d *Deadline) string {
	if d == nil {
		return "no deadline"
	}
	return d.DueDate
}

// setStateLocked writes c in state to with the event recording it. A
// pending deadline is met by leaving its state; entering dispatched or
// reconciliation starts the next one.
func (s *Service) setStateLocked(ctx context.Context, tx Tx, c *Case, to State, actor string, details map[string]any) error {
	from := c.State
	now := s.now().UTC()
	if details == nil {
		details = map[string]any{}
	}
	details["from"] = from
	if p := c.PendingDeadline(); p != nil {
		at := now
		p.MetAt = &at
		p.Late = !now.Before(p.DueAt)
		if p.Late {
			details["lateFor"] = p.Kind
		}
	}
	switch to {
	case StateDispatched:
		dl := s.deadline(c, DeadlineRespondentContact, now)
		c.Deadlines = append(c.Deadlines, dl)
		details["dueDate"] = dl.DueDate
	case StateReconciliation:
		dl, err := s.reconciliationDeadline(ctx, tx, c, now)
		if err != nil {
			return err
		}
		c.Deadlines = append(c.Deadlines, dl)
		details["dueDate"] = dl.DueDate
	}
	c.State = to
	c.UpdatedAt = now
	if err := tx.PutCase(ctx, c); err != nil {
		return err
	}
	return s.appendEvent(ctx, tx, c.ID, "case."+string(to), actor, details)
}

// deadline starts a deadline of the given kind at now under c's rule set.
func (s *Service) deadline(c *Case, kind string, now time.Time) Deadline {
	rs := s.ruleSet(c)
	days := rs.RespondentContactDays
	if kind == DeadlineReconciliation {
		days = rs.ReconciliationDays
	}
	return s.deadlineDays(c, kind, days, now)
}

// deadlineDays starts a deadline of the given kind and length at now.
func (s *Service) deadlineDays(c *Case, kind string, days int, now time.Time) Deadline {
	rs := s.ruleSet(c)
	due, exact := s.cal.AddWorkdays(calendar.DateOf(now), days)
	if !exact {
		s.log.Warn("working-day calendar lacks a year; deadline counts weekends only",
			"case", c.ID, "kind", kind, "due", due.String(), "years", s.cal.Years())
	}
	return Deadline{
		Kind:        kind,
		RuleSetID:   rs.ID,
		WorkingDays: days,
		StartedAt:   now,
		DueDate:     due.String(),
		DueAt:       due.AddDays(1).Start().UTC(),
		Approximate: !exact,
	}
}

// ruleSet returns the rule set c is handled by: the one it was opened
// under, or for a case that predates rule sets (or names one no longer
// configured) the one in force on the day it was opened.
func (s *Service) ruleSet(c *Case) *rules.RuleSet {
	if rs, ok := s.rules.Get(c.RuleSetID); ok {
		return rs
	}
	if c.RuleSetID != "" {
		s.log.Warn("case names an unknown rule set; using the one in force when it was opened", "case", c.ID, "ruleSet", c.RuleSetID)
	}
	return s.rules.InForce(calendar.DateOf(c.CreatedAt))
}

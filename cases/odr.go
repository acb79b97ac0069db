package cases

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/concord-odr/concord/cases/calendar"
)

// ODR reconciliation, the merchants' "green channel". A merchant enrols
// as an ODR enterprise; an institution admin approves, suspends or
// removes the enrolment. A complaint against an enrolled enterprise goes
// to reconciliation first (the worker in odr_worker.go moves it there):
// the merchant's inbox, where it accepts the claim, makes a counter-offer,
// asks for a video reconciliation (applicant and merchant in a room, no
// mediator) or declines. The applicant accepts or refuses an offer.
//
//	settled (claim accepted, or an offer accepted) -> closed (reconciled, with the terms)
//	declined, refused, deadline passed, enrolment suspended -> dispatched,
//	    to the institution the dispatch routes give for its category and district
//
// The deadline (the enterprise's response days, at most the rule set's
// reconciliation days) is enforced by the server: the worker escalates a
// case whose deadline passed, whatever is pending.

// Enterprise statuses beside EnterpriseEnrolled and EnterpriseWithdrawn.
const (
	// EnterprisePending: the enrolment was applied for and waits for an
	// institution admin's approval. Complaints do not go to it yet.
	EnterprisePending = "pending"
	// EnterpriseSuspended: its enrolment is suspended; complaints go to
	// mediation and its open reconciliations escalate.
	EnterpriseSuspended = "suspended"
)

func validEnterpriseStatus(s string) bool {
	switch s {
	case EnterprisePending, EnterpriseEnrolled, EnterpriseSuspended, EnterpriseWithdrawn:
		return true
	}
	return false
}

// Reasons a case leaves reconciliation, beside ReasonDeclined and
// ReasonDeadlinePassed.
const (
	// ReasonRefused: the applicant refused the enterprise's offer.
	ReasonRefused = "refused"
	// ReasonEnterpriseSuspended: the enterprise's enrolment was suspended
	// or removed while the case waited on it.
	ReasonEnterpriseSuspended = "enterprise_suspended"
)

// Reconciliation statuses.
const (
	RecAwaitingMerchant = "awaiting_merchant" // nothing answered yet
	RecOfferPending     = "offer_pending"     // the applicant answers an offer
	RecVideo            = "video"             // a video reconciliation was asked for
	RecSettled          = "settled"           // closed as reconciled
	RecEscalated        = "escalated"         // gone to mediation
)

// Merchant actions on a complaint in its inbox.
const (
	ActAcceptClaim = "accept"  // accept the applicant's claims: settles
	ActCounter     = "counter" // a counter-offer for the applicant to answer
	ActVideo       = "video"   // ask for a video reconciliation
	ActDecline     = "decline" // decline: the case goes to mediation
)

// Offer statuses.
const (
	OfferPending    = "pending"
	OfferAccepted   = "accepted"
	OfferRefused    = "refused"
	OfferSuperseded = "superseded" // a later offer replaced it
	OfferLapsed     = "lapsed"     // the case left reconciliation unanswered
)

// ModeReconciliation is the mode of a reconciliation's session: the
// applicant and the merchant in one room, with no mediator.
const ModeReconciliation = "reconciliation"

// maxResponseDays bounds the working days an enterprise commits to.
const maxResponseDays = 30

// Offer is what the merchant proposes: the claims accepted as they are,
// or a counter-offer.
type Offer struct {
	ID          string `json:"id"`
	Kind        string `json:"kind"` // accept, counter
	Terms       string `json:"terms"`
	AmountCents int64  `json:"amountCents"`
	// PerformBy is the day (YYYY-MM-DD, China) by which the merchant
	// performs the terms, if given.
	PerformBy  string     `json:"performBy,omitempty"`
	By         string     `json:"by"`
	At         time.Time  `json:"at"`
	Status     string     `json:"status"`
	AnsweredAt *time.Time `json:"answeredAt,omitempty"`
	AnsweredBy string     `json:"answeredBy,omitempty"`
	// Note is the applicant's reason for refusing, if given.
	Note string `json:"note,omitempty"`
}

// Reconciliation is the record of a case's reconciliation stage: what
// the merchant and the applicant did, and how it ended. It outlives the
// stage, for the merchant's dashboard and the statistics.
type Reconciliation struct {
	CaseID         string `json:"caseId"`
	EnterpriseCode string `json:"enterpriseCode"`
	InstitutionID  string `json:"institutionId"` // where the case was when it began
	Category       string `json:"category"`
	Status         string `json:"status"`
	// SessionID is the reconciliation room: the applicant's and the
	// merchant's join links are for it, and a video reconciliation is
	// held in it.
	SessionID string    `json:"sessionId,omitempty"`
	StartedAt time.Time `json:"startedAt"`
	// DueAt is when the deadline passes; DueDate its last working day.
	DueAt        time.Time `json:"dueAt"`
	DueDate      string    `json:"dueDate"`
	ResponseDays int       `json:"responseDays"`
	// FirstResponseAt is the merchant's first answer.
	FirstResponseAt  *time.Time `json:"firstResponseAt,omitempty"`
	VideoRequestedAt *time.Time `json:"videoRequestedAt,omitempty"`
	Offers           []Offer    `json:"offers"`
	// EndedAt, Result and the rest say how the stage ended: Result is
	// settled or the escalation's reason code.
	EndedAt     *time.Time `json:"endedAt,omitempty"`
	Result      string     `json:"result,omitempty"`
	Terms       string     `json:"terms,omitempty"`
	AmountCents int64      `json:"amountCents,omitempty"`
	Reason      string     `json:"reason,omitempty"`
	EscalatedTo string     `json:"escalatedTo,omitempty"`
	Version     int64      `json:"version"`
}

// Open reports whether the stage is still running.
func (r *Reconciliation) Open() bool { return r.EndedAt == nil }

// pendingOffer returns the offer waiting for the applicant, or nil.
func (r *Reconciliation) pendingOffer() *Offer {
	for i := len(r.Offers) - 1; i >= 0; i-- {
		if r.Offers[i].Status == OfferPending {
			return &r.Offers[i]
		}
	}
	return nil
}

// ReconciliationFilter selects reconciliations for Tx.Reconciliations.
// Zero fields select everything.
type ReconciliationFilter struct {
	EnterpriseCode string
	// Open selects the stages still running.
	Open bool
	// StartedFrom and StartedBefore bound StartedAt: From <= t < Before.
	StartedFrom   time.Time
	StartedBefore time.Time
	// AfterStartedAt and AfterCaseID, when AfterCaseID is set, continue a
	// listing after that one in (StartedAt, CaseID) order.
	AfterStartedAt time.Time
	AfterCaseID    string
	// Limit is the most returned; 0 or less means 100.
	Limit int
}

// DispatchRoute says which institution receives the cases of a category
// and a district when they leave reconciliation. An empty Category or
// District matches any.
type DispatchRoute struct {
	ID            string    `json:"id"`
	Category      string    `json:"category,omitempty"`
	District      string    `json:"district,omitempty"`
	InstitutionID string    `json:"institutionId"`
	CreatedAt     time.Time `json:"createdAt"`
}

// specificity ranks a route: both keys matched first, then the district
// (the merchant's locality decides jurisdiction), then the category.
func (r *DispatchRoute) specificity() int {
	n := 0
	if r.District != "" {
		n += 2
	}
	if r.Category != "" {
		n++
	}
	return n
}

// checkEnrolment validates the enrolment fields of an enterprise.
func checkEnrolment(e *Enterprise) error {
	if len(e.Categories) > len(Categories()) {
		return FieldErrorf("categories", "at most %d categories", len(Categories()))
	}
	seen := map[string]bool{}
	for _, c := range e.Categories {
		if !slices.Contains(Categories(), c) {
			return FieldErrorf("categories", "categories must be among %s", strings.Join(Categories(), ", "))
		}
		if seen[c] {
			return FieldErrorf("categories", "category %s is listed twice", c)
		}
		seen[c] = true
	}
	if len(e.Stores) > 50 {
		return FieldErrorf("stores", "at most 50 stores or platforms")
	}
	for _, st := range e.Stores {
		if err := validText("stores", st, 200, true); err != nil {
			return err
		}
	}
	if e.District != "" && !validDistrict(e.District) {
		return FieldErrorf("district", "district must be an administrative division code of 6 digits")
	}
	if e.ResponseDays < 0 || e.ResponseDays > maxResponseDays {
		return FieldErrorf("responseDays", "responseDays must be between 1 and %d working days (0: the rule set's)", maxResponseDays)
	}
	if err := validText("institutionId", e.InstitutionID, 64, false); err != nil {
		return err
	}
	return validText("statusReason", e.StatusReason, 500, false)
}

// validDistrict reports whether s is a 6-digit administrative division
// code.
func validDistrict(s string) bool {
	if len(s) != 6 {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// keepEnrolment keeps, on an enterprise replaced without its enrolment
// fields (the platform admin's PUT), those of the stored one.
func keepEnrolment(e, old *Enterprise) {
	if e.InstitutionID == "" {
		e.InstitutionID = old.InstitutionID
	}
	if e.Categories == nil {
		e.Categories = old.Categories
	}
	if e.Stores == nil {
		e.Stores = old.Stores
	}
	if e.District == "" {
		e.District = old.District
	}
	if e.ResponseDays == 0 {
		e.ResponseDays = old.ResponseDays
	}
	if e.ReviewedAt == nil && e.ReviewedBy == "" {
		e.ReviewedBy, e.ReviewedAt = old.ReviewedBy, old.ReviewedAt
	}
}

// enterpriseCovers refuses reconciliation for a case whose category the
// enterprise's enrolment does not cover.
func enterpriseCovers(e *Enterprise, c *Case) error {
	if len(e.Categories) > 0 && !slices.Contains(e.Categories, c.Category) {
		return Errorf(ETRANSITION, "the enterprise's enrolment does not cover %s complaints; dispatch the case instead", c.Category)
	}
	return nil
}

// reconciliationDeadline starts c's reconciliation deadline: the working
// days the enterprise committed to, at most the rule set's.
func (s *Service) reconciliationDeadline(ctx context.Context, tx Tx, c *Case, now time.Time) (Deadline, error) {
	days := s.ruleSet(c).ReconciliationDays
	e, err := tx.Enterprise(ctx, c.Respondent.CreditCode)
	switch {
	case err == nil:
		if e.ResponseDays > 0 && e.ResponseDays < days {
			days = e.ResponseDays
		}
	case ErrorCode(err) != ENOTFOUND:
		return Deadline{}, err
	}
	return s.deadlineDays(c, DeadlineReconciliation, days, now), nil
}

// Enrolment actions of an institution admin.
const (
	EnrolApprove   = "approve"   // pending -> enrolled
	EnrolSuspend   = "suspend"   // enrolled -> suspended (a reason is required)
	EnrolReinstate = "reinstate" // suspended -> enrolled
	EnrolRemove    = "remove"    // any -> withdrawn (a reason is required)
)

// Enrolment is what a merchant applies with.
type Enrolment struct {
	CreditCode    string
	Name          string
	InstitutionID string
	Categories    []string
	Stores        []string
	District      string
	ResponseDays  int
	Actor         string
}

// ApplyEnrolment records a merchant's application to enrol as an ODR
// enterprise, pending approval, or updates the details of one that
// exists (a withdrawn one applies again and is pending).
func (s *Service) ApplyEnrolment(ctx context.Context, in Enrolment) (*Enterprise, error) {
	if !ValidCreditCode(in.CreditCode) {
		return nil, FieldErrorf("creditCode", "creditCode is not an 18-character unified social credit code")
	}
	if err := validText("name", in.Name, 200, true); err != nil {
		return nil, err
	}
	if strings.TrimSpace(in.InstitutionID) == "" {
		return nil, FieldErrorf("institutionId", "institutionId is required: the institution that supervises the enrolment")
	}
	e := &Enterprise{
		CreditCode: in.CreditCode, Name: strings.TrimSpace(in.Name), Status: EnterprisePending,
		InstitutionID: in.InstitutionID, Categories: in.Categories, Stores: in.Stores,
		District: in.District, ResponseDays: in.ResponseDays,
	}
	if e.Categories == nil {
		e.Categories = []string{}
	}
	if e.Stores == nil {
		e.Stores = []string{}
	}
	if err := checkEnrolment(e); err != nil {
		return nil, err
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	e.CreatedAt, e.UpdatedAt = now, now
	err := s.store.Update(ctx, func(tx Tx) error {
		inst, err := tx.Institution(ctx, e.InstitutionID)
		if ErrorCode(err) == ENOTFOUND {
			return FieldErrorf("institutionId", "institution %q does not exist", e.InstitutionID)
		}
		if err != nil {
			return err
		}
		if inst.Status == InstitutionClosed {
			return FieldErrorf("institutionId", "institution %s is closed", inst.Name)
		}
		old, err := tx.Enterprise(ctx, e.CreditCode)
		switch {
		case err == nil:
			e.CreatedAt = old.CreatedAt
			if old.Status != EnterpriseWithdrawn {
				e.Status = old.Status
				e.StatusReason = old.StatusReason
			}
			e.ReviewedBy, e.ReviewedAt = old.ReviewedBy, old.ReviewedAt
		case ErrorCode(err) != ENOTFOUND:
			return err
		}
		return tx.PutEnterprise(ctx, e)
	})
	if err != nil {
		return nil, err
	}
	return e, nil
}

// ReviewEnrolment approves, suspends, reinstates or removes an
// enrolment. Suspending or removing one escalates its open
// reconciliations in the same transaction.
func (s *Service) ReviewEnrolment(ctx context.Context, creditCode, action, reason, actor string) (*Enterprise, error) {
	if err := validText("reason", reason, 500, action == EnrolSuspend || action == EnrolRemove); err != nil {
		return nil, err
	}
	var e *Enterprise
	err := s.store.Update(ctx, func(tx Tx) error {
		var err error
		e, err = tx.Enterprise(ctx, creditCode)
		if err != nil {
			return err
		}
		from := e.Status
		var to string
		switch action {
		case EnrolApprove:
			if from != EnterprisePending {
				return Errorf(ETRANSITION, "only a pending enrolment is approved; this one is %s", from)
			}
			to = EnterpriseEnrolled
		case EnrolSuspend:
			if from != EnterpriseEnrolled {
				return Errorf(ETRANSITION, "only an enrolled enterprise is suspended; this one is %s", from)
			}
			to = EnterpriseSuspended
		case EnrolReinstate:
			if from != EnterpriseSuspended {
				return Errorf(ETRANSITION, "only a suspended enrolment is reinstated; this one is %s", from)
			}
			to = EnterpriseEnrolled
		case EnrolRemove:
			if from == EnterpriseWithdrawn {
				return Errorf(ETRANSITION, "the enrolment is already removed")
			}
			to = EnterpriseWithdrawn
		default:
			return FieldErrorf("action", "action must be %s, %s, %s or %s", EnrolApprove, EnrolSuspend, EnrolReinstate, EnrolRemove)
		}
		now := s.now().UTC().Truncate(time.Microsecond)
		e.Status, e.StatusReason = to, reason
		e.ReviewedBy, e.ReviewedAt, e.UpdatedAt = actor, &now, now
		if err := tx.PutEnterprise(ctx, e); err != nil {
			return err
		}
		if to == EnterpriseEnrolled {
			return nil
		}
		open, err := tx.Reconciliations(ctx, ReconciliationFilter{EnterpriseCode: e.CreditCode, Open: true, Limit: 10000})
		if err != nil {
			return err
		}
		for _, r := range open {
			c, err := tx.Case(ctx, r.CaseID)
			if err != nil {
				return err
			}
			if c.State != StateReconciliation {
				continue
			}
			text := "the enterprise's ODR enrolment was " + map[string]string{EnterpriseSuspended: "suspended", EnterpriseWithdrawn: "removed"}[to]
			if err := s.escalateLocked(ctx, tx, c, ReasonEnterpriseSuspended, text, actor); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return e, nil
}

// EnterpriseQuery selects enterprises. Zero fields select everything.
type EnterpriseQuery struct {
	Status string
	// InstitutionIDs, when not nil, selects the enterprises supervised by
	// one of these institutions.
	InstitutionIDs []string
}

// ListEnterprises lists the ODR enterprises that match q by credit code.
func (s *Service) ListEnterprises(ctx context.Context, q EnterpriseQuery) ([]Enterprise, error) {
	if q.Status != "" && !validEnterpriseStatus(q.Status) {
		return nil, FieldErrorf("status", "status must be pending, enrolled, suspended or withdrawn")
	}
	var all []Enterprise
	err := s.store.View(ctx, func(tx Tx) error {
		var err error
		all, err = tx.Enterprises(ctx)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := []Enterprise{}
	for _, e := range all {
		if q.Status != "" && e.Status != q.Status {
			continue
		}
		if q.InstitutionIDs != nil && !slices.Contains(q.InstitutionIDs, e.InstitutionID) {
			continue
		}
		out = append(out, e)
	}
	return out, nil
}

// reconciliationStepLocked keeps c's reconciliation record in step with
// a lifecycle step from one state to c's new one: entering
// reconciliation opens it, with the reconciliation room; leaving it
// closes it, lapses an unanswered offer and ends the room.
func (s *Service) reconciliationStepLocked(ctx context.Context, tx Tx, c *Case, from State, req TransitionRequest) error {
	now := s.now().UTC().Truncate(time.Microsecond)
	switch {
	case c.State == StateReconciliation:
		dl := c.PendingDeadline()
		if dl == nil {
			return fmt.Errorf("cases: reconciliation of %s started without a deadline", c.ID)
		}
		sess := &Session{
			ID: NewID("s_"), CaseID: c.ID, Mode: ModeReconciliation, Status: SessionScheduled,
			Participants: []Participant{
				{ID: NewID("p_"), Name: c.Applicant.Name, Role: RoleParty, Side: SideApplicant},
				{ID: NewID("p_"), Name: c.Respondent.Name, Role: RoleParty, Side: SideRespondent},
			},
			Attendance: []Attendance{}, CreatedAt: now,
		}
		if err := tx.PutSession(ctx, sess); err != nil {
			return err
		}
		r := &Reconciliation{
			CaseID: c.ID, EnterpriseCode: c.Respondent.CreditCode, InstitutionID: c.InstitutionID,
			Category: c.Category, Status: RecAwaitingMerchant, SessionID: sess.ID, StartedAt: now,
			DueAt: dl.DueAt, DueDate: dl.DueDate, ResponseDays: dl.WorkingDays, Offers: []Offer{},
		}
		if err := tx.PutReconciliation(ctx, r); err != nil {
			return err
		}
		s.notifyApplicantLocked(ctx, tx, c, fmt.Sprintf(
			"【Concord在线调解】您对%s的投诉（案件%s）已转商家处理，商家须在%s前答复。您可通过收到的链接查看进展。",
			c.Respondent.Name, c.Number, dl.DueDate))
		return nil

	case from == StateReconciliation:
		r, err := tx.Reconciliation(ctx, c.ID)
		if ErrorCode(err) == ENOTFOUND {
			return nil // a case that entered reconciliation before the records
		}
		if err != nil {
			return err
		}
		r.EndedAt = &now
		if c.State == StateClosed {
			r.Status, r.Result = RecSettled, RecSettled
			if c.Outcome != nil {
				r.Terms = c.Outcome.Terms
			}
		} else {
			r.Status, r.Result, r.Reason = RecEscalated, req.ReasonCode, req.Reason
			r.EscalatedTo = c.InstitutionID
		}
		for i := range r.Offers {
			if r.Offers[i].Status == OfferPending {
				r.Offers[i].Status = OfferLapsed
			}
		}
		if err := tx.PutReconciliation(ctx, r); err != nil {
			return err
		}
		if r.SessionID != "" {
			if err := s.endRoomLocked(ctx, tx, r.SessionID, now); err != nil {
				return err
			}
		}
		if c.State == StateDispatched {
			s.notifyApplicantLocked(ctx, tx, c, fmt.Sprintf(
				"【Concord在线调解】您的投诉（案件%s）未能与商家和解，已转调解机构处理。", c.Number))
		}
	}
	return nil
}

// endRoomLocked ends the reconciliation room when the stage ends.
func (s *Service) endRoomLocked(ctx context.Context, tx Tx, sessionID string, now time.Time) error {
	sess, err := tx.Session(ctx, sessionID)
	if ErrorCode(err) == ENOTFOUND {
		return nil
	}
	if err != nil {
		return err
	}
	if sess.Status == SessionEnded {
		return nil
	}
	sess.Status = SessionEnded
	sess.EndedAt = &now
	closeAttendance(sess, "", now)
	// The case's own event (closed or dispatched) records the end.
	return tx.PutSession(ctx, sess)
}

// notifyApplicantLocked queues a text message to the applicant's phone,
// if the case has a usable one. A missing phone is not an error: the
// applicant also sees the case through its link.
func (s *Service) notifyApplicantLocked(ctx context.Context, tx Tx, c *Case, text string) {
	phone := strings.TrimSpace(c.Applicant.Phone)
	if phone == "" || !phonePattern.MatchString(phone) {
		return
	}
	now := s.now().UTC()
	m := &OutboxMessage{ID: NewID("msg_"), Channel: NotifySMS, To: phone, Text: text, CaseID: c.ID,
		Status: OutboxPending, NextAttemptAt: now, CreatedAt: now}
	if err := tx.PutOutbox(ctx, m); err != nil {
		// The message is a courtesy: the step stands without it.
		s.log.Warn("odr: applicant notification not queued", "case", c.ID, "err", err)
	}
}

// MerchantAction is what an enterprise does with a complaint in its
// inbox.
type MerchantAction struct {
	Kind string // accept, counter, video, decline
	// EnterpriseCode is the enterprise the caller acts for; a case against
	// another is not found. Empty for a platform admin acting for it.
	EnterpriseCode string
	Actor          string
	// Terms: for accept, how the claims are performed (the claims
	// themselves when empty); for counter, the offer. Required for
	// counter.
	Terms       string
	AmountCents int64
	PerformBy   string // YYYY-MM-DD, optional
	// Reason: why it declines (required for decline).
	Reason string
	// ScheduledAt: when the video reconciliation is to be held (optional).
	ScheduledAt *time.Time
}

// ReconciliationResult is a case after a reconciliation step.
type ReconciliationResult struct {
	Case           *Case           `json:"case"`
	Reconciliation *Reconciliation `json:"reconciliation"`
	// Session is the reconciliation room, for a video request.
	Session *Session `json:"session,omitempty"`
}

// openReconciliationLocked reads a case in reconciliation and its record,
// hiding a case the caller's enterprise is not the respondent of.
func (s *Service) openReconciliationLocked(ctx context.Context, tx Tx, caseID, enterprise string) (*Case, *Reconciliation, error) {
	c, err := tx.Case(ctx, caseID)
	if err != nil {
		return nil, nil, err
	}
	if enterprise != "" && c.Respondent.CreditCode != enterprise {
		return nil, nil, Errorf(ENOTFOUND, "case not found")
	}
	if c.State != StateReconciliation {
		return nil, nil, Errorf(ETRANSITION, "the case is not in reconciliation (it is %s)", c.State)
	}
	r, err := tx.Reconciliation(ctx, c.ID)
	if err != nil {
		return nil, nil, err
	}
	return c, r, nil
}

// MerchantAct performs a merchant's action on a complaint in
// reconciliation.
func (s *Service) MerchantAct(ctx context.Context, caseID string, a MerchantAction) (*ReconciliationResult, error) {
	switch a.Kind {
	case ActAcceptClaim:
		if err := validText("terms", a.Terms, 20000, false); err != nil {
			return nil, err
		}
	case ActCounter:
		if err := validText("terms", a.Terms, 20000, true); err != nil {
			return nil, err
		}
	case ActDecline:
		if err := validText("reason", a.Reason, 2000, true); err != nil {
			return nil, err
		}
	case ActVideo:
	default:
		return nil, FieldErrorf("action", "action must be %s, %s, %s or %s", ActAcceptClaim, ActCounter, ActVideo, ActDecline)
	}
	if a.AmountCents < 0 {
		return nil, FieldErrorf("amountCents", "amountCents must not be negative")
	}
	if a.PerformBy != "" {
		if _, err := calendar.ParseDate(a.PerformBy); err != nil {
			return nil, FieldErrorf("performBy", "performBy: %v", err)
		}
	}
	res := &ReconciliationResult{}
	err := s.store.Update(ctx, func(tx Tx) error {
		c, r, err := s.openReconciliationLocked(ctx, tx, caseID, a.EnterpriseCode)
		if err != nil {
			return err
		}
		now := s.now().UTC().Truncate(time.Microsecond)
		if c.Overdue(now) {
			return Errorf(ETRANSITION, "the reconciliation deadline has passed; the case goes to mediation")
		}
		if r.FirstResponseAt == nil {
			r.FirstResponseAt = &now
		}
		switch a.Kind {
		case ActAcceptClaim, ActCounter:
			terms := strings.TrimSpace(a.Terms)
			amount := a.AmountCents
			if a.Kind == ActAcceptClaim {
				terms = acceptedClaimTerms(c, terms)
				if amount == 0 {
					amount = c.AmountCents
				}
			}
			for i := range r.Offers {
				if r.Offers[i].Status == OfferPending {
					r.Offers[i].Status = OfferSuperseded
				}
			}
			o := Offer{ID: NewID("off_"), Kind: a.Kind, Terms: terms, AmountCents: amount, PerformBy: a.PerformBy,
				By: a.Actor, At: now, Status: OfferPending}
			if a.Kind == ActAcceptClaim {
				o.Status, o.AnsweredAt = OfferAccepted, &now
			} else {
				r.Status = RecOfferPending
			}
			r.Offers = append(r.Offers, o)
			r.AmountCents = amount
			if err := tx.PutReconciliation(ctx, r); err != nil {
				return err
			}
			if err := s.appendEvent(ctx, tx, c.ID, "reconciliation.offer", a.Actor, map[string]any{
				"offerId": o.ID, "kind": o.Kind, "amountCents": o.AmountCents, "performBy": o.PerformBy}); err != nil {
				return err
			}
			if a.Kind == ActCounter {
				s.notifyApplicantLocked(ctx, tx, c, fmt.Sprintf(
					"【Concord在线调解】%s对您的投诉（案件%s）提出了和解方案，请在%s前通过收到的链接查看并答复。",
					c.Respondent.Name, c.Number, r.DueDate))
				break
			}
			if err := s.settleLocked(ctx, tx, c, terms, a.Actor); err != nil {
				return err
			}
		case ActVideo:
			sess, err := s.videoLocked(ctx, tx, c, r, a, now)
			if err != nil {
				return err
			}
			res.Session = sess
		case ActDecline:
			if err := tx.PutReconciliation(ctx, r); err != nil {
				return err
			}
			if err := s.escalateLocked(ctx, tx, c, ReasonDeclined, strings.TrimSpace(a.Reason), a.Actor); err != nil {
				return err
			}
		}
		return s.resultLocked(ctx, tx, c.ID, res)
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// acceptedClaimTerms are the terms of a claim the merchant accepts: the
// claims, and how they are performed.
func acceptedClaimTerms(c *Case, how string) string {
	terms := "被申请人接受申请人的全部诉求：" + strings.TrimSpace(c.Claims)
	if strings.TrimSpace(c.Claims) == "" {
		terms = "被申请人接受申请人的全部诉求"
	}
	if how != "" {
		terms += "\n履行方式：" + how
	}
	return terms
}

// videoLocked asks for a video reconciliation in the case's room.
func (s *Service) videoLocked(ctx context.Context, tx Tx, c *Case, r *Reconciliation, a MerchantAction, now time.Time) (*Session, error) {
	if a.ScheduledAt != nil && a.ScheduledAt.Before(now.Add(-time.Minute)) {
		return nil, FieldErrorf("scheduledAt", "scheduledAt is in the past")
	}
	if a.ScheduledAt != nil && !a.ScheduledAt.Before(r.DueAt) {
		return nil, FieldErrorf("scheduledAt", "the video reconciliation must be held before the deadline (%s)", r.DueDate)
	}
	sess, err := tx.Session(ctx, r.SessionID)
	if err != nil {
		return nil, err
	}
	if sess.Status == SessionEnded {
		return nil, Errorf(ETRANSITION, "the reconciliation room has ended")
	}
	if a.ScheduledAt != nil {
		at := a.ScheduledAt.UTC().Truncate(time.Microsecond)
		sess.ScheduledAt = &at
		if err := tx.PutSession(ctx, sess); err != nil {
			return nil, err
		}
	}
	if r.Status == RecAwaitingMerchant {
		r.Status = RecVideo
	}
	r.VideoRequestedAt = &now
	if err := tx.PutReconciliation(ctx, r); err != nil {
		return nil, err
	}
	payload := map[string]any{"sessionId": sess.ID}
	if sess.ScheduledAt != nil {
		payload["scheduledAt"] = sess.ScheduledAt
	}
	if err := s.appendEvent(ctx, tx, c.ID, "reconciliation.video", a.Actor, payload); err != nil {
		return nil, err
	}
	when := "尽快"
	if sess.ScheduledAt != nil {
		when = "于" + sess.ScheduledAt.In(calendar.Zone()).Format("1月2日15:04")
	}
	s.notifyApplicantLocked(ctx, tx, c, fmt.Sprintf(
		"【Concord在线调解】%s请求与您视频和解（案件%s），请%s通过收到的链接进入视频。", c.Respondent.Name, c.Number, when))
	return sess, nil
}

// settleLocked closes c as reconciled with the terms.
func (s *Service) settleLocked(ctx context.Context, tx Tx, c *Case, terms, actor string) error {
	return s.applyLocked(ctx, tx, c, TransitionRequest{
		To: StateClosed, Actor: actor, Outcome: &Outcome{Result: ResultReconciled, Terms: terms},
	})
}

// escalateLocked sends c from reconciliation to the institution its
// dispatch routes give.
func (s *Service) escalateLocked(ctx context.Context, tx Tx, c *Case, reasonCode, reason, actor string) error {
	target, err := s.routeLocked(ctx, tx, c)
	if err != nil {
		return err
	}
	return s.applyLocked(ctx, tx, c, TransitionRequest{
		To: StateDispatched, Actor: actor, ReasonCode: reasonCode, Reason: reason, InstitutionID: target,
	})
}

// resultLocked fills res with the case and its record as they are now.
func (s *Service) resultLocked(ctx context.Context, tx Tx, caseID string, res *ReconciliationResult) error {
	c, err := tx.Case(ctx, caseID)
	if err != nil {
		return err
	}
	r, err := tx.Reconciliation(ctx, caseID)
	if err != nil {
		return err
	}
	res.Case, res.Reconciliation = c, r
	return nil
}

// ApplicantAnswer is the applicant's answer to an offer.
type ApplicantAnswer struct {
	OfferID string
	Accept  bool
	Note    string
	Actor   string
}

// AnswerOffer records the applicant's answer to the pending offer:
// accepted, the case closes as reconciled with its terms; refused, it
// goes to mediation.
func (s *Service) AnswerOffer(ctx context.Context, caseID string, a ApplicantAnswer) (*ReconciliationResult, error) {
	if err := validText("note", a.Note, 2000, false); err != nil {
		return nil, err
	}
	res := &ReconciliationResult{}
	err := s.store.Update(ctx, func(tx Tx) error {
		c, r, err := s.openReconciliationLocked(ctx, tx, caseID, "")
		if err != nil {
			return err
		}
		o := r.pendingOffer()
		if o == nil || (a.OfferID != "" && o.ID != a.OfferID) {
			return Errorf(ETRANSITION, "there is no pending offer to answer; the merchant may have changed it")
		}
		now := s.now().UTC().Truncate(time.Microsecond)
		o.AnsweredAt, o.AnsweredBy, o.Note = &now, a.Actor, strings.TrimSpace(a.Note)
		if a.Accept {
			o.Status = OfferAccepted
		} else {
			o.Status = OfferRefused
		}
		terms := o.Terms
		if err := tx.PutReconciliation(ctx, r); err != nil {
			return err
		}
		if err := s.appendEvent(ctx, tx, c.ID, "reconciliation.answer", a.Actor, map[string]any{
			"offerId": o.ID, "accepted": a.Accept}); err != nil {
			return err
		}
		if a.Accept {
			if err := s.settleLocked(ctx, tx, c, terms, a.Actor); err != nil {
				return err
			}
		} else if err := s.escalateLocked(ctx, tx, c, ReasonRefused, o.Note, a.Actor); err != nil {
			return err
		}
		return s.resultLocked(ctx, tx, c.ID, res)
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// Reconciliation reads a case's reconciliation record.
func (s *Service) Reconciliation(ctx context.Context, caseID string) (*Reconciliation, error) {
	var r *Reconciliation
	err := s.store.View(ctx, func(tx Tx) error {
		var err error
		r, err = tx.Reconciliation(ctx, caseID)
		return err
	})
	return r, err
}

// InboxItem is one complaint in a merchant's inbox: what the merchant
// needs to answer it. The applicant's contact details are not in it: the
// parties talk through the platform.
type InboxItem struct {
	CaseID         string          `json:"caseId"`
	Number         string          `json:"number"`
	Category       string          `json:"category"`
	Channel        string          `json:"channel"`
	ApplicantName  string          `json:"applicantName"`
	Claims         string          `json:"claims,omitempty"`
	AmountCents    int64           `json:"amountCents"`
	IncidentDate   string          `json:"incidentDate,omitempty"`
	SubmittedAt    time.Time       `json:"submittedAt"`
	Reconciliation *Reconciliation `json:"reconciliation"`
}

// Inbox lists the complaints against an enterprise that wait in
// reconciliation, the soonest due first.
func (s *Service) Inbox(ctx context.Context, enterpriseCode string) ([]InboxItem, error) {
	items := []InboxItem{}
	err := s.store.View(ctx, func(tx Tx) error {
		open, err := tx.Reconciliations(ctx, ReconciliationFilter{EnterpriseCode: enterpriseCode, Open: true, Limit: 1000})
		if err != nil {
			return err
		}
		for i := range open {
			r := &open[i]
			c, err := tx.Case(ctx, r.CaseID)
			if err != nil {
				return err
			}
			if c.State != StateReconciliation {
				continue
			}
			items = append(items, InboxItem{
				CaseID: c.ID, Number: c.Number, Category: c.Category, Channel: c.Channel,
				ApplicantName: c.Applicant.Name, Claims: c.Claims, AmountCents: c.AmountCents,
				IncidentDate: c.IncidentDate, SubmittedAt: c.CreatedAt, Reconciliation: r,
			})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.SliceStable(items, func(i, j int) bool {
		return items[i].Reconciliation.DueAt.Before(items[j].Reconciliation.DueAt)
	})
	return items, nil
}

// routeLocked chooses the active institution a case leaving
// reconciliation goes to: the most specific dispatch route for its
// category and its district (the enterprise's) whose institution, or
// failing that the nearest active one above it, is active; with no route,
// the case's own institution or the nearest active one above it.
func (s *Service) routeLocked(ctx context.Context, tx Tx, c *Case) (string, error) {
	district := ""
	if c.Respondent.CreditCode != "" {
		e, err := tx.Enterprise(ctx, c.Respondent.CreditCode)
		switch {
		case err == nil:
			district = e.District
		case ErrorCode(err) != ENOTFOUND:
			return "", err
		}
	}
	routes, err := tx.DispatchRoutes(ctx)
	if err != nil {
		return "", err
	}
	insts, err := tx.Institutions(ctx)
	if err != nil {
		return "", err
	}
	byID := make(map[string]*Institution, len(insts))
	for i := range insts {
		byID[insts[i].ID] = &insts[i]
	}
	var match []DispatchRoute
	for _, r := range routes {
		if (r.Category == "" || r.Category == c.Category) && (r.District == "" || r.District == district) {
			match = append(match, r)
		}
	}
	sort.SliceStable(match, func(i, j int) bool { return match[i].specificity() > match[j].specificity() })
	for _, r := range match {
		if id := activeUpward(byID, r.InstitutionID); id != "" {
			return id, nil
		}
	}
	if id := activeUpward(byID, c.InstitutionID); id != "" {
		return id, nil
	}
	return "", Errorf(ETRANSITION, "no active institution receives %s cases from district %q; add a dispatch route", c.Category, district)
}

// activeUpward returns id if that institution is active, or the nearest
// active institution above it, or "".
func activeUpward(byID map[string]*Institution, id string) string {
	for range len(byID) + 1 {
		inst, ok := byID[id]
		if !ok {
			return ""
		}
		if inst.Status == InstitutionActive {
			return inst.ID
		}
		id = inst.ParentID
	}
	return ""
}

// PutDispatchRoute creates or replaces a dispatch route.
func (s *Service) PutDispatchRoute(ctx context.Context, r *DispatchRoute) error {
	if r.Category != "" && !slices.Contains(Categories(), r.Category) {
		return FieldErrorf("category", "category must be one of %s, or empty for any", strings.Join(Categories(), ", "))
	}
	if r.District != "" && !validDistrict(r.District) {
		return FieldErrorf("district", "district must be an administrative division code of 6 digits, or empty for any")
	}
	if r.ID == "" {
		r.ID = NewID("route_")
	}
	if err := validText("id", r.ID, 64, true); err != nil {
		return err
	}
	if r.CreatedAt.IsZero() {
		r.CreatedAt = s.now().UTC().Truncate(time.Microsecond)
	}
	return s.store.Update(ctx, func(tx Tx) error {
		if _, err := tx.Institution(ctx, r.InstitutionID); ErrorCode(err) == ENOTFOUND {
			return FieldErrorf("institutionId", "institution %q does not exist", r.InstitutionID)
		} else if err != nil {
			return err
		}
		routes, err := tx.DispatchRoutes(ctx)
		if err != nil {
			return err
		}
		for _, o := range routes {
			if o.ID != r.ID && o.Category == r.Category && o.District == r.District {
				return Errorf(ECONFLICT, "route %s already sends category %q of district %q; change it instead", o.ID, o.Category, o.District)
			}
		}
		return tx.PutDispatchRoute(ctx, r)
	})
}

// DispatchRoutes lists the dispatch routes.
func (s *Service) DispatchRoutes(ctx context.Context) ([]DispatchRoute, error) {
	var list []DispatchRoute
	err := s.store.View(ctx, func(tx Tx) error {
		var err error
		list, err = tx.DispatchRoutes(ctx)
		return err
	})
	return list, err
}

// DispatchRoute reads one dispatch route.
func (s *Service) DispatchRoute(ctx context.Context, id string) (*DispatchRoute, error) {
	list, err := s.DispatchRoutes(ctx)
	if err != nil {
		return nil, err
	}
	for i := range list {
		if list[i].ID == id {
			return &list[i], nil
		}
	}
	return nil, Errorf(ENOTFOUND, "dispatch route not found")
}

// DeleteDispatchRoute removes a dispatch route.
func (s *Service) DeleteDispatchRoute(ctx context.Context, id string) error {
	return s.store.Update(ctx, func(tx Tx) error { return tx.DeleteDispatchRoute(ctx, id) })
}

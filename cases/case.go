// Package cases holds the dispute case: its lifecycle rules, its sessions,
// its outcome and its append-only event log, and the Store interface that
// the PostgreSQL and embedded stores implement. It knows nothing of
// WebRTC, sockets or SQL drivers.
package cases

import (
	"encoding/json"
	"time"
)

// State is where a case stands in its lifecycle.
type State string

// Case states (see DESIGN.md, "Case lifecycle", and lifecycle.go for
// the transitions between them).
const (
	StateSubmitted             State = "submitted"
	StateReconciliation        State = "reconciliation"
	StateDispatched            State = "dispatched"
	StateRespondentContacted   State = "respondent_contacted"
	StateAccepted              State = "accepted"
	StateRejected              State = "rejected"
	StateMediating             State = "mediating"
	StateClosed                State = "closed"
	StateConfirmationRequested State = "confirmation_requested"
	StateConfirmed             State = "confirmed"
	StateConfirmationRefused   State = "confirmation_refused"
	StateReferred              State = "referred"
)

// States lists every state, in lifecycle order.
func States() []State {
	return []State{
		StateSubmitted, StateReconciliation, StateDispatched, StateRespondentContacted,
		StateAccepted, StateRejected, StateMediating, StateClosed,
		StateConfirmationRequested, StateConfirmed, StateConfirmationRefused, StateReferred,
	}
}

// Valid reports whether s is a known state.
func (s State) Valid() bool {
	for _, x := range States() {
		if x == s {
			return true
		}
	}
	return false
}

// Result is how a dispute ended, or how one session left it.
type Result string

// Outcome results.
const (
	ResultSettled          Result = "settled"
	ResultPartiallySettled Result = "partially_settled"
	ResultNotSettled       Result = "not_settled"
	ResultWithdrawn        Result = "withdrawn"
	ResultAdjourned        Result = "adjourned"
	// ResultReconciled closes a case the respondent, an ODR enterprise,
	// settled directly with the applicant, before any mediator.
	ResultReconciled Result = "reconciled"
)

// Final reports whether a session ending with this result closes the
// case.
func (r Result) Final() bool {
	switch r {
	case ResultSettled, ResultPartiallySettled, ResultNotSettled, ResultWithdrawn:
		return true
	}
	return false
}

// Valid reports whether r is a known result of a session.
func (r Result) Valid() bool { return r.Final() || r == ResultAdjourned }

// settles reports whether the result comes with an agreement that a
// court or an arbitration body may be asked to confirm.
func (r Result) settles() bool { return r == ResultSettled || r == ResultPartiallySettled }

// Institution levels, from the highest.
const (
	LevelProvince  = "province"
	LevelCity      = "city"
	LevelDistrict  = "district" // county or district
	LevelCommunity = "community"
)

// Institution statuses.
const (
	InstitutionActive    = "active"    // receives cases
	InstitutionSuspended = "suspended" // keeps its cases, receives no new ones
	InstitutionClosed    = "closed"
)

// Institution is a mediation organisation that receives cases.
type Institution struct {
	ID        string    `json:"id"`
	Code      string    `json:"code"` // short code used in case numbers, e.g. "0310"
	Name      string    `json:"name"`
	Level     string    `json:"level"` // province, city, district, community
	ParentID  string    `json:"parentId,omitempty"`
	Status    string    `json:"status"` // active, suspended, closed
	CreatedAt time.Time `json:"createdAt"`
}

// Mediator statuses.
const (
	MediatorActive   = "active"
	MediatorInactive = "inactive"
)

// Mediator is a person who mediates for one institution.
type Mediator struct {
	ID            string    `json:"id"`
	InstitutionID string    `json:"institutionId"`
	Name          string    `json:"name"`
	Status        string    `json:"status"` // active, inactive
	CreatedAt     time.Time `json:"createdAt"`
}

// Enterprise statuses.
const (
	EnterpriseEnrolled  = "enrolled"
	EnterpriseWithdrawn = "withdrawn"
)

// Enterprise is a merchant enrolled as an "ODR enterprise": complaints
// against it go first to reconciliation, where it may settle directly.
// It is known by its unified social credit code.
type Enterprise struct {
	CreditCode string `json:"creditCode"`
	Name       string `json:"name"`
	// Status: pending (applied), enrolled (approved), suspended or
	// withdrawn (removed); see odr.go.
	Status string `json:"status"`
	// Enrolment (see odr.go): the supervising institution, the
	// categories and the stores or platforms the merchant covers, its
	// district (an administrative division code, which dispatch uses) and
	// the working days it commits to answer in (0: the rule set's).
	InstitutionID string   `json:"institutionId,omitempty"`
	Categories    []string `json:"categories,omitempty"`
	Stores        []string `json:"stores,omitempty"`
	District      string   `json:"district,omitempty"`
	ResponseDays  int      `json:"responseDays,omitempty"`
	// StatusReason is why it was suspended or removed; ReviewedBy and
	// ReviewedAt record the last approval, suspension or removal.
	StatusReason string     `json:"statusReason,omitempty"`
	ReviewedBy   string     `json:"reviewedBy,omitempty"`
	ReviewedAt   *time.Time `json:"reviewedAt,omitempty"`
	CreatedAt    time.Time  `json:"createdAt"`
	UpdatedAt    time.Time  `json:"updatedAt"`
}

// Party is one side of a dispute.
type Party struct {
	Name  string `json:"name"`
	Kind  string `json:"kind"` // person or organisation
	Phone string `json:"phone,omitempty"`
	// CreditCode is an organisation's unified social credit code.
	CreditCode string `json:"creditCode,omitempty"`
	// ODREnterprise is set at intake when the respondent was an enrolled
	// ODR enterprise; reconciliation checks the enrolment again.
	ODREnterprise bool `json:"odrEnterprise,omitempty"`
}

// Deadline kinds.
const (
	DeadlineRespondentContact = "respondent_contact"
	DeadlineReconciliation    = "reconciliation"
)

// Deadline is a time limit in working days, computed when it starts and
// kept with the case.
type Deadline struct {
	Kind        string    `json:"kind"`
	RuleSetID   string    `json:"ruleSetId"`
	WorkingDays int       `json:"workingDays"`
	StartedAt   time.Time `json:"startedAt"`
	// DueDate is the last working day (in China) of the time limit.
	DueDate string `json:"dueDate"`
	// DueAt is the end of DueDate: from this instant on the deadline is
	// overdue.
	DueAt time.Time `json:"dueAt"`
	// Approximate is set when the working-day calendar lacked a year the
	// time limit runs through, so that only weekends were skipped there.
	Approximate bool       `json:"approximate,omitempty"`
	MetAt       *time.Time `json:"metAt,omitempty"`
	Late        bool       `json:"late,omitempty"` // met after DueAt
}

// Rejection is why an institution did not accept a case. It is shown to
// the applicant.
type Rejection struct {
	Code  string `json:"code"`
	Label string `json:"label"`
	Text  string `json:"text"`
}

// Confirmation is a request to a court (judicial confirmation) or an
// arbitration body to confirm a mediation agreement.
type Confirmation struct {
	By          string     `json:"by"` // court, arbitration
	Body        string     `json:"body,omitempty"`
	RequestedAt time.Time  `json:"requestedAt"`
	DecidedAt   *time.Time `json:"decidedAt,omitempty"`
	Confirmed   bool       `json:"confirmed"`
	Note        string     `json:"note,omitempty"`
	// AgreementID names the agreement to confirm, and Deadline the last
	// day (China time) it could be requested: 30 days from its signature.
	AgreementID string `json:"agreementId,omitempty"`
	Deadline    string `json:"deadline,omitempty"`
}

// Referral is where a case that did not settle went next.
type Referral struct {
	To   string    `json:"to"` // arbitration, litigation
	Body string    `json:"body,omitempty"`
	At   time.Time `json:"at"`
	Note string    `json:"note,omitempty"`
}

// Outcome is what a mediator recorded at the end of a session.
type Outcome struct {
	Result     Result    `json:"result"`
	Terms      string    `json:"terms,omitempty"`
	Remedies   []string  `json:"remedies,omitempty"`
	SessionID  string    `json:"sessionId,omitempty"`
	RecordedBy string    `json:"recordedBy"`
	RecordedAt time.Time `json:"recordedAt"`
	// AgreementID names the signed agreement of a settled outcome.
	AgreementID string `json:"agreementId,omitempty"`
	// NextSessionAt is when an adjourned case meets again, if scheduled.
	NextSessionAt *time.Time `json:"nextSessionAt,omitempty"`
}

// Case is one dispute.
type Case struct {
	ID            string   `json:"id"`
	Number        string   `json:"number"`
	InstitutionID string   `json:"institutionId"`
	State         State    `json:"state"`
	Outcome       *Outcome `json:"outcome,omitempty"`
	Category      string   `json:"category"`
	Channel       string   `json:"channel"`
	ExternalRef   string   `json:"externalRef,omitempty"`
	Applicant     Party    `json:"applicant"`
	Respondent    Party    `json:"respondent"`
	Claims        string   `json:"claims,omitempty"`
	AmountCents   int64    `json:"amountCents"`
	// IncidentDate is the day the dispute arose, YYYY-MM-DD, if known.
	IncidentDate string `json:"incidentDate,omitempty"`
	// RuleSetID names the rule set in force on the day the case was
	// opened; the case is handled by it to the end.
	RuleSetID    string        `json:"ruleSetId,omitempty"`
	MediatorID   string        `json:"mediatorId,omitempty"`
	Deadlines    []Deadline    `json:"deadlines,omitempty"`
	Rejection    *Rejection    `json:"rejection,omitempty"`
	Confirmation *Confirmation `json:"confirmation,omitempty"`
	Referral     *Referral     `json:"referral,omitempty"`
	// Agreement is the case's signed mediation agreement in force.
	Agreement *AgreementRef `json:"agreement,omitempty"`
	Version   int64         `json:"version"`
	CreatedAt time.Time     `json:"createdAt"`
	UpdatedAt time.Time     `json:"updatedAt"`
}

// PendingDeadline returns the deadline the case is running against, or
// nil.
func (c *Case) PendingDeadline() *Deadline {
	for i := len(c.Deadlines) - 1; i >= 0; i-- {
		if c.Deadlines[i].MetAt == nil {
			return &c.Deadlines[i]
		}
	}
	return nil
}

// DueAt returns when the pending deadline falls due, or nil. Stores index
// it to list overdue cases.
func (c *Case) DueAt() *time.Time {
	if d := c.PendingDeadline(); d != nil {
		t := d.DueAt
		return &t
	}
	return nil
}

// Overdue reports whether the case's pending deadline has passed at now.
func (c *Case) Overdue(now time.Time) bool {
	d := c.PendingDeadline()
	return d != nil && !now.Before(d.DueAt)
}

// Roles of a session participant.
const (
	RoleMediator = "mediator"
	RoleParty    = "party"
)

// Sides of a session participant.
const (
	SideApplicant  = "applicant"
	SideRespondent = "respondent"
	SideNeutral    = "neutral"
)

// Participant is one person invited to a session.
type Participant struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Role string `json:"role"`
	Side string `json:"side"`
}

// Attendance is one stay of a participant in a session's room.
type Attendance struct {
	ParticipantID string     `json:"participantId"`
	JoinedAt      time.Time  `json:"joinedAt"`
	LeftAt        *time.Time `json:"leftAt,omitempty"`
}

// Session statuses.
const (
	SessionScheduled = "scheduled"
	SessionLive      = "live"
	SessionEnded     = "ended"
)

// Session is one mediation meeting of a case: one room.
type Session struct {
	ID           string        `json:"id"`
	CaseID       string        `json:"caseId"`
	Mode         string        `json:"mode"` // joint, back_to_back, mixed
	Status       string        `json:"status"`
	ScheduledAt  *time.Time    `json:"scheduledAt,omitempty"`
	StartedAt    *time.Time    `json:"startedAt,omitempty"`
	EndedAt      *time.Time    `json:"endedAt,omitempty"`
	Participants []Participant `json:"participants"`
	Attendance   []Attendance  `json:"attendance"`
	Version      int64         `json:"version"`
	CreatedAt    time.Time     `json:"createdAt"`
}

// Participant returns the session's participant with the given id.
func (s *Session) Participant(id string) (Participant, bool) {
	for _, p := range s.Participants {
		if p.ID == id {
			return p, true
		}
	}
	return Participant{}, false
}

// Event is one entry of a case's append-only log.
type Event struct {
	CaseID  string          `json:"caseId"`
	Seq     int64           `json:"seq"`
	Type    string          `json:"type"`
	Actor   string          `json:"actor"`
	At      time.Time       `json:"at"`
	Payload json.RawMessage `json:"payload,omitempty"`
	// PrevHash and Hash chain the case's log (see audit.go): the hash of
	// the event before this one ("" for the first) and this event's own.
	PrevHash string `json:"prevHash,omitempty"`
	Hash     string `json:"hash,omitempty"`
}

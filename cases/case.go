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

// Case states (see DESIGN.md, "Case lifecycle").
const (
	StateSubmitted  State = "submitted"
	StateDispatched State = "dispatched"
	StateAccepted   State = "accepted"
	StateMediating  State = "mediating"
	StateClosed     State = "closed"
)

// Result is how a dispute ended, or how one session left it.
type Result string

// Outcome results.
const (
	ResultSettled          Result = "settled"
	ResultPartiallySettled Result = "partially_settled"
	ResultNotSettled       Result = "not_settled"
	ResultWithdrawn        Result = "withdrawn"
	ResultAdjourned        Result = "adjourned"
)

// Final reports whether the result closes the case.
func (r Result) Final() bool {
	switch r {
	case ResultSettled, ResultPartiallySettled, ResultNotSettled, ResultWithdrawn:
		return true
	}
	return false
}

// Valid reports whether r is a known result.
func (r Result) Valid() bool { return r.Final() || r == ResultAdjourned }

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

// Party is one side of a dispute.
type Party struct {
	Name  string `json:"name"`
	Kind  string `json:"kind"` // person or organisation
	Phone string `json:"phone,omitempty"`
}

// Outcome is what a mediator recorded at the end of a session.
type Outcome struct {
	Result     Result    `json:"result"`
	Terms      string    `json:"terms,omitempty"`
	Remedies   []string  `json:"remedies,omitempty"`
	SessionID  string    `json:"sessionId,omitempty"`
	RecordedBy string    `json:"recordedBy"`
	RecordedAt time.Time `json:"recordedAt"`
}

// Case is one dispute.
type Case struct {
	ID            string    `json:"id"`
	Number        string    `json:"number"`
	InstitutionID string    `json:"institutionId"`
	State         State     `json:"state"`
	Outcome       *Outcome  `json:"outcome,omitempty"`
	Category      string    `json:"category"`
	Channel       string    `json:"channel"`
	ExternalRef   string    `json:"externalRef,omitempty"`
	Applicant     Party     `json:"applicant"`
	Respondent    Party     `json:"respondent"`
	Claims        string    `json:"claims,omitempty"`
	AmountCents   int64     `json:"amountCents"`
	Version       int64     `json:"version"`
	CreatedAt     time.Time `json:"createdAt"`
	UpdatedAt     time.Time `json:"updatedAt"`
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
}

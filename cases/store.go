package cases

import (
	"context"
	"encoding/json"
	"time"
)

// Store keeps institutions, cases, sessions and case events. Every write
// happens inside Update, so a state change and the events that record it
// commit together or not at all.
//
// Implementations: cases/sqlite (embedded, the default) and
// cases/postgres. Both pass the contract suite in cases/casetest.
type Store interface {
	// Update runs fn in one read-write transaction. If fn returns an error
	// nothing it wrote is kept and the error is returned unchanged.
	Update(ctx context.Context, fn func(Tx) error) error
	// View runs fn in a read-only transaction.
	View(ctx context.Context, fn func(Tx) error) error
	// Close releases the store's resources.
	Close() error
}

// Tx is one transaction of a Store. Getters return an *Error with code
// ENOTFOUND when nothing matches. Put methods insert when the stored
// version is 0 and otherwise update only if the row still has that
// version (ECONFLICT if not); on success they increment Version.
type Tx interface {
	Institution(ctx context.Context, id string) (*Institution, error)
	// PutInstitution inserts or replaces an institution (no versioning).
	PutInstitution(ctx context.Context, inst *Institution) error
	// Institutions lists every institution by code, then id.
	Institutions(ctx context.Context) ([]Institution, error)

	Mediator(ctx context.Context, id string) (*Mediator, error)
	// PutMediator inserts or replaces a mediator (no versioning).
	PutMediator(ctx context.Context, m *Mediator) error
	// Mediators lists an institution's mediators by name, then id.
	Mediators(ctx context.Context, institutionID string) ([]Mediator, error)

	// Enterprise returns the ODR enterprise with the given credit code.
	Enterprise(ctx context.Context, creditCode string) (*Enterprise, error)
	// PutEnterprise inserts or replaces an enterprise (no versioning).
	PutEnterprise(ctx context.Context, e *Enterprise) error

	Case(ctx context.Context, id string) (*Case, error)
	// CaseByExternalRef finds a case by its channel and external number.
	CaseByExternalRef(ctx context.Context, channel, ref string) (*Case, error)
	// PutCase inserts or updates a case. A second case with the same
	// non-empty (channel, external ref), or the same number, is ECONFLICT.
	PutCase(ctx context.Context, c *Case) error
	// NextCaseSeq returns the next number (1, 2, ...) in the sequence of
	// cases of one institution and year.
	NextCaseSeq(ctx context.Context, institutionID string, year int) (int64, error)
	// ListCases lists the cases that match f in (CreatedAt, ID) order,
	// at most f.Limit of them.
	ListCases(ctx context.Context, f CaseFilter) ([]Case, error)

	Session(ctx context.Context, id string) (*Session, error)
	// Sessions lists a case's sessions, oldest first.
	Sessions(ctx context.Context, caseID string) ([]Session, error)
	PutSession(ctx context.Context, s *Session) error

	// AppendEvent adds an event to its case's log and sets its Seq
	// (1, 2, ... per case). Events are never changed or removed.
	AppendEvent(ctx context.Context, e *Event) error
	// Events lists a case's events in order.
	Events(ctx context.Context, caseID string) ([]Event, error)

	// Idempotency returns the record of an idempotency key.
	Idempotency(ctx context.Context, scope, key string) (*IdempotencyRecord, error)
	// PutIdempotency records a key once: a second record with the same
	// scope and key is ECONFLICT.
	PutIdempotency(ctx context.Context, r *IdempotencyRecord) error
}

// CaseFilter selects cases for Tx.ListCases. Zero fields select
// everything.
type CaseFilter struct {
	State         State
	InstitutionID string
	Category      string
	// DueBy, when set, selects the cases whose pending deadline falls due
	// at or before it: the overdue ones.
	DueBy time.Time
	// CreatedFrom and CreatedBefore bound CreatedAt: From <= t < Before.
	CreatedFrom   time.Time
	CreatedBefore time.Time
	// AfterCreatedAt and AfterID, when AfterID is set, select the cases
	// that come after that one in (CreatedAt, ID) order.
	AfterCreatedAt time.Time
	AfterID        string
	// Limit is the most cases returned; 0 or less means 100.
	Limit int
}

// IdempotencyRecord is what a create request with an Idempotency-Key
// produced: a repeat with the same key gets the same answer.
type IdempotencyRecord struct {
	Scope       string          `json:"scope"` // who and which endpoint
	Key         string          `json:"key"`
	RequestHash string          `json:"requestHash"`
	CaseID      string          `json:"caseId,omitempty"`
	Status      int             `json:"status"`
	Response    json.RawMessage `json:"response"`
	CreatedAt   time.Time       `json:"createdAt"`
}

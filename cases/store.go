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
	// (1, 2, ... per case), PrevHash and Hash (SealEvent; a log written
	// before hashing is chained first). Events are never changed or
	// removed.
	AppendEvent(ctx context.Context, e *Event) error
	// Events lists a case's events in order, with their hashes.
	Events(ctx context.Context, caseID string) ([]Event, error)

	// Idempotency returns the record of an idempotency key.
	Idempotency(ctx context.Context, scope, key string) (*IdempotencyRecord, error)
	// PutIdempotency records a key once: a second record with the same
	// scope and key is ECONFLICT.
	PutIdempotency(ctx context.Context, r *IdempotencyRecord) error

	// ChainHeads lists the last event of every case's log, with its hash
	// (see audit.go).
	ChainHeads(ctx context.Context) ([]ChainHead, error)

	// Agreement returns one agreement version.
	Agreement(ctx context.Context, id string) (*Agreement, error)
	// Agreements lists a case's agreements by number.
	Agreements(ctx context.Context, caseID string) ([]Agreement, error)
	// PutAgreement inserts or updates an agreement (versioned). A second
	// agreement with the same case and number is ECONFLICT.
	PutAgreement(ctx context.Context, a *Agreement) error
	// PutFollowUp inserts or updates a follow-up of an agreed term
	// (versioned).
	PutFollowUp(ctx context.Context, f *FollowUp) error
	// FollowUps lists the follow-ups that match f by DueAt, then ID.
	FollowUps(ctx context.Context, f FollowUpFilter) ([]FollowUp, error)

	// Account returns a staff account by id.
	Account(ctx context.Context, id string) (*Account, error)
	// AccountByLogin returns a staff account by its (lower-case) login.
	AccountByLogin(ctx context.Context, login string) (*Account, error)
	// PutAccount inserts or updates an account, versioned like PutCase. A
	// second account with the same login is ECONFLICT.
	PutAccount(ctx context.Context, a *Account) error
	// Accounts lists the accounts that match f by login.
	Accounts(ctx context.Context, f AccountFilter) ([]Account, error)

	// StaffSession returns a login session; in an Update it is locked.
	StaffSession(ctx context.Context, id string) (*StaffSession, error)
	// PutStaffSession inserts or replaces a login session (no versioning).
	PutStaffSession(ctx context.Context, s *StaffSession) error
	// RevokeStaffSessions revokes every session of an account that is not
	// revoked yet, and returns how many it revoked.
	RevokeStaffSessions(ctx context.Context, accountID, reason string, at time.Time) (int, error)
	// RefreshToken returns a refresh token by hash; in an Update it is
	// locked, so that two refreshes with one token take turns.
	RefreshToken(ctx context.Context, hash string) (*RefreshToken, error)
	// PutRefreshToken inserts or replaces a refresh token. Its session
	// must exist.
	PutRefreshToken(ctx context.Context, r *RefreshToken) error

	// JoinLinkByCode returns the short join link with the given code hash.
	JoinLinkByCode(ctx context.Context, codeHash string) (*JoinLink, error)
	// PutJoinLink inserts a short join link. A second link with the same
	// id or code hash is ECONFLICT.
	PutJoinLink(ctx context.Context, l *JoinLink) error
	// JoinLinks lists a session's short links, oldest first.
	JoinLinks(ctx context.Context, sessionID string) ([]JoinLink, error)

	// PutRevocation records a revocation. If one with the same key exists
	// it is kept and r is filled from it.
	PutRevocation(ctx context.Context, r *Revocation) error
	// Revocation returns a revocation that covers a token with this jti
	// of this participant of this session: of the token, the participant
	// or the session. ENOTFOUND when none does.
	Revocation(ctx context.Context, jti, sessionID, participantID string) (*Revocation, error)

	// PutOutbox inserts or replaces an outbox message.
	PutOutbox(ctx context.Context, m *OutboxMessage) error
	// OutboxMessage returns an outbox message by id.
	OutboxMessage(ctx context.Context, id string) (*OutboxMessage, error)
	// ClaimOutbox takes up to limit pending messages due at now, oldest
	// first, counts an attempt on each and moves their next attempt to
	// leaseUntil, so that no other worker takes them meanwhile. Messages
	// another transaction holds are skipped.
	ClaimOutbox(ctx context.Context, now, leaseUntil time.Time, limit int) ([]OutboxMessage, error)

	// ODR reconciliation (odr.go).

	// Enterprises lists every ODR enterprise by credit code.
	Enterprises(ctx context.Context) ([]Enterprise, error)
	// Reconciliation returns a case's reconciliation record.
	Reconciliation(ctx context.Context, caseID string) (*Reconciliation, error)
	// PutReconciliation inserts or updates a case's reconciliation record,
	// versioned like PutCase. Its case must exist.
	PutReconciliation(ctx context.Context, r *Reconciliation) error
	// Reconciliations lists the records that match f by StartedAt, then
	// CaseID.
	Reconciliations(ctx context.Context, f ReconciliationFilter) ([]Reconciliation, error)
	// DispatchRoutes lists the dispatch routes by id.
	DispatchRoutes(ctx context.Context) ([]DispatchRoute, error)
	// PutDispatchRoute inserts or replaces a dispatch route.
	PutDispatchRoute(ctx context.Context, r *DispatchRoute) error
	// DeleteDispatchRoute removes a dispatch route (ENOTFOUND if none).
	DeleteDispatchRoute(ctx context.Context, id string) error

	// Mediators' shifts (queue.go) and session reminders (schedule.go).

	// PutShift inserts or replaces a shift.
	PutShift(ctx context.Context, s *Shift) error
	// DeleteShift removes a shift (ENOTFOUND if none).
	DeleteShift(ctx context.Context, id string) error
	// Shifts lists the shifts that match f by StartsAt, then ID.
	Shifts(ctx context.Context, f ShiftFilter) ([]Shift, error)
	// PutReminder inserts or replaces a session reminder.
	PutReminder(ctx context.Context, r *Reminder) error
	// Reminders lists the reminders that match f by DueAt, then ID.
	Reminders(ctx context.Context, f ReminderFilter) ([]Reminder, error)
}

// CaseFilter selects cases for Tx.ListCases. Zero fields select
// everything.
type CaseFilter struct {
	State         State
	InstitutionID string
	// InstitutionIDs, when not nil, selects the cases of one of these
	// institutions (an empty, non-nil list selects none). It narrows
	// InstitutionID, it does not widen it.
	InstitutionIDs []string
	// RespondentCreditCode selects the complaints against one enterprise.
	RespondentCreditCode string
	Category             string
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

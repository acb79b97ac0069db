package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/concord-odr/concord/cases"
	"github.com/concord-odr/concord/cases/storetime"
	"github.com/jackc/pgx/v5"
)

// tx is one transaction of the store. Put methods normalise the times of
// the value they write to UTC microseconds (see normalize.go) and, on
// success, increment its Version.
type tx struct {
	tx       pgx.Tx
	readOnly bool
}

var _ cases.Tx = (*tx)(nil)

// Safe messages of the conflicts a write can meet.
const (
	msgCaseExists     = "a case with this id, number or external reference already exists"
	msgCaseChanged    = "the case was changed by someone else; reload it and try again"
	msgSessionExists  = "a session with this id already exists"
	msgSessionChanged = "the session was changed by someone else; reload it and try again"
	msgEventRace      = "another event was added to the case at the same time; try again"
)

// writable returns an error when t may not write.
func (t *tx) writable(op string) error {
	if t.readOnly {
		return fmt.Errorf("postgres: %s: write in a read-only transaction", op)
	}
	return nil
}

// lock is the clause that locks the rows a getter reads in a read-write
// transaction, so that concurrent Updates of one case take turns.
func (t *tx) lock() string {
	if t.readOnly {
		return ""
	}
	return " FOR UPDATE"
}

// constraintError maps a write's constraint violations to domain errors.
func constraintError(op string, err error, unique, foreignKey string) error {
	switch code := pgCode(err); {
	case code == codeUniqueViolation && unique != "":
		return domainError(op, cases.ECONFLICT, unique, err)
	case code == codeForeignKeyViolation && foreignKey != "":
		return domainError(op, cases.ENOTFOUND, foreignKey, err)
	}
	return dbError(op, err)
}

// Institution returns the institution with the given id.
func (t *tx) Institution(ctx context.Context, id string) (*cases.Institution, error) {
	var doc []byte
	err := t.tx.QueryRow(ctx, `SELECT doc FROM institutions WHERE id = $1`, id).Scan(&doc)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, cases.Errorf(cases.ENOTFOUND, "institution not found")
	}
	if err != nil {
		return nil, dbError("get institution", err)
	}
	var inst cases.Institution
	if err := json.Unmarshal(doc, &inst); err != nil {
		return nil, fmt.Errorf("postgres: decode institution %s: %w", id, err)
	}
	return &inst, nil
}

// PutInstitution inserts or replaces an institution.
func (t *tx) PutInstitution(ctx context.Context, inst *cases.Institution) error {
	if err := t.writable("put institution"); err != nil {
		return err
	}
	if inst.ID == "" {
		return cases.Errorf(cases.EINVALID, "institution id is required")
	}
	storetime.Institution(inst)
	doc, err := json.Marshal(inst)
	if err != nil {
		return fmt.Errorf("postgres: encode institution: %w", err)
	}
	_, err = t.tx.Exec(ctx, `INSERT INTO institutions
		(id, code, name, level, parent_id, status, created_at, doc)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (id) DO UPDATE SET
			code = excluded.code, name = excluded.name, level = excluded.level,
			parent_id = excluded.parent_id, status = excluded.status,
			created_at = excluded.created_at, doc = excluded.doc`,
		inst.ID, inst.Code, inst.Name, inst.Level, inst.ParentID, inst.Status, inst.CreatedAt, doc)
	if err != nil {
		return dbError("put institution", err)
	}
	return nil
}

// Case returns the case with the given id, locking it in an Update.
func (t *tx) Case(ctx context.Context, id string) (*cases.Case, error) {
	return t.getCase(ctx, `SELECT version, doc FROM cases WHERE id = $1`+t.lock(), id)
}

// CaseByExternalRef returns the case with the given channel and external
// reference, locking it in an Update. An empty reference matches nothing.
func (t *tx) CaseByExternalRef(ctx context.Context, channel, ref string) (*cases.Case, error) {
	if ref == "" {
		return nil, cases.Errorf(cases.ENOTFOUND, "case not found")
	}
	return t.getCase(ctx, `SELECT version, doc FROM cases
		WHERE channel = $1 AND external_ref = $2 AND external_ref <> ''`+t.lock(), channel, ref)
}

func (t *tx) getCase(ctx context.Context, query string, args ...any) (*cases.Case, error) {
	var version int64
	var doc []byte
	err := t.tx.QueryRow(ctx, query, args...).Scan(&version, &doc)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, cases.Errorf(cases.ENOTFOUND, "case not found")
	}
	if err != nil {
		return nil, dbError("get case", err)
	}
	var c cases.Case
	if err := json.Unmarshal(doc, &c); err != nil {
		return nil, fmt.Errorf("postgres: decode case: %w", err)
	}
	c.Version = version
	return &c, nil
}

// PutCase inserts c when its Version is 0, and otherwise updates it if
// the stored row still has that version.
func (t *tx) PutCase(ctx context.Context, c *cases.Case) error {
	if err := t.writable("put case"); err != nil {
		return err
	}
	if c.ID == "" {
		return cases.Errorf(cases.EINVALID, "case id is required")
	}
	if c.Version < 0 {
		return cases.Errorf(cases.EINVALID, "case version must not be negative")
	}
	storetime.Case(c)
	next := *c
	next.Version++
	doc, err := json.Marshal(&next)
	if err != nil {
		return fmt.Errorf("postgres: encode case: %w", err)
	}
	if c.Version == 0 {
		_, err = t.tx.Exec(ctx, `INSERT INTO cases
			(id, number, institution_id, state, channel, external_ref, version, created_at, updated_at, doc, category, due_at,
			 respondent_credit_code)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
			c.ID, c.Number, c.InstitutionID, string(c.State), c.Channel, c.ExternalRef, next.Version,
			c.CreatedAt, c.UpdatedAt, doc, c.Category, c.DueAt(), c.Respondent.CreditCode)
		if err != nil {
			return constraintError("insert case", err, msgCaseExists, "")
		}
	} else {
		tag, err := t.tx.Exec(ctx, `UPDATE cases SET
			number = $1, institution_id = $2, state = $3, channel = $4, external_ref = $5,
			version = $6, created_at = $7, updated_at = $8, doc = $9, category = $12, due_at = $13,
			respondent_credit_code = $14
			WHERE id = $10 AND version = $11`,
			c.Number, c.InstitutionID, string(c.State), c.Channel, c.ExternalRef,
			next.Version, c.CreatedAt, c.UpdatedAt, doc,
			c.ID, c.Version, c.Category, c.DueAt(), c.Respondent.CreditCode)
		if err != nil {
			return constraintError("update case", err, msgCaseExists, "")
		}
		if tag.RowsAffected() == 0 {
			return cases.Errorf(cases.ECONFLICT, msgCaseChanged)
		}
	}
	c.Version = next.Version
	return nil
}

// NextCaseSeq returns the next number in the sequence of cases of one
// institution and year.
func (t *tx) NextCaseSeq(ctx context.Context, institutionID string, year int) (int64, error) {
	if err := t.writable("next case number"); err != nil {
		return 0, err
	}
	var last int64
	err := t.tx.QueryRow(ctx, `INSERT INTO case_seq (institution_id, year, "last")
		VALUES ($1, $2, 1)
		ON CONFLICT (institution_id, year) DO UPDATE SET "last" = case_seq."last" + 1
		RETURNING "last"`, institutionID, year).Scan(&last)
	if err != nil {
		return 0, dbError("next case number", err)
	}
	return last, nil
}

// Session returns the session with the given id, locking it in an Update.
func (t *tx) Session(ctx context.Context, id string) (*cases.Session, error) {
	var version int64
	var doc []byte
	err := t.tx.QueryRow(ctx, `SELECT version, doc FROM sessions WHERE id = $1`+t.lock(), id).Scan(&version, &doc)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, cases.Errorf(cases.ENOTFOUND, "session not found")
	}
	if err != nil {
		return nil, dbError("get session", err)
	}
	return decodeSession(version, doc)
}

func decodeSession(version int64, doc []byte) (*cases.Session, error) {
	var s cases.Session
	if err := json.Unmarshal(doc, &s); err != nil {
		return nil, fmt.Errorf("postgres: decode session: %w", err)
	}
	s.Version = version
	return &s, nil
}

// Sessions lists a case's sessions by creation time, then id.
func (t *tx) Sessions(ctx context.Context, caseID string) ([]cases.Session, error) {
	rows, err := t.tx.Query(ctx, `SELECT version, doc FROM sessions
		WHERE case_id = $1 ORDER BY created_at, id`, caseID)
	if err != nil {
		return nil, dbError("list sessions", err)
	}
	defer rows.Close()
	list := []cases.Session{}
	for rows.Next() {
		var version int64
		var doc []byte
		if err := rows.Scan(&version, &doc); err != nil {
			return nil, dbError("list sessions", err)
		}
		s, err := decodeSession(version, doc)
		if err != nil {
			return nil, err
		}
		list = append(list, *s)
	}
	if err := rows.Err(); err != nil {
		return nil, dbError("list sessions", err)
	}
	return list, nil
}

// PutSession inserts s when its Version is 0, and otherwise updates it if
// the stored row still has that version. Its case must exist.
func (t *tx) PutSession(ctx context.Context, s *cases.Session) error {
	if err := t.writable("put session"); err != nil {
		return err
	}
	if s.ID == "" || s.CaseID == "" {
		return cases.Errorf(cases.EINVALID, "session id and case id are required")
	}
	if s.Version < 0 {
		return cases.Errorf(cases.EINVALID, "session version must not be negative")
	}
	storetime.Session(s)
	next := *s
	next.Version++
	doc, err := json.Marshal(&next)
	if err != nil {
		return fmt.Errorf("postgres: encode session: %w", err)
	}
	if s.Version == 0 {
		_, err = t.tx.Exec(ctx, `INSERT INTO sessions
			(id, case_id, status, version, created_at, doc) VALUES ($1, $2, $3, $4, $5, $6)`,
			s.ID, s.CaseID, s.Status, next.Version, s.CreatedAt, doc)
		if err != nil {
			return constraintError("insert session", err, msgSessionExists, "case not found")
		}
	} else {
		tag, err := t.tx.Exec(ctx, `UPDATE sessions SET
			case_id = $1, status = $2, version = $3, created_at = $4, doc = $5
			WHERE id = $6 AND version = $7`,
			s.CaseID, s.Status, next.Version, s.CreatedAt, doc, s.ID, s.Version)
		if err != nil {
			return constraintError("update session", err, msgSessionExists, "case not found")
		}
		if tag.RowsAffected() == 0 {
			return cases.Errorf(cases.ECONFLICT, msgSessionChanged)
		}
	}
	s.Version = next.Version
	return nil
}

// AppendEvent adds e to its case's log with the next sequence number of
// that case and sets e.Seq, e.PrevHash and e.Hash (see audit.go). The
// case must exist. Two transactions that
// append to one case at once without holding its lock (see Case) compute
// the same number; the primary key turns the second into a
// cases.ECONFLICT, never a duplicate or a gap.
func (t *tx) AppendEvent(ctx context.Context, e *cases.Event) error {
	if err := t.writable("append event"); err != nil {
		return err
	}
	if e.CaseID == "" || e.Type == "" {
		return cases.Errorf(cases.EINVALID, "an event needs a case id and a type")
	}
	if len(e.Payload) > 0 && !json.Valid(e.Payload) {
		return cases.Errorf(cases.EINVALID, "event payload is not valid JSON")
	}
	e.At = storetime.UTC(e.At)
	return t.appendChained(ctx, e)
}

// Events lists a case's events by sequence number. Payloads come back as
// PostgreSQL prints jsonb: the same value, but keys may be reordered and
// spacing differ from what was written.
func (t *tx) Events(ctx context.Context, caseID string) ([]cases.Event, error) {
	rows, err := t.tx.Query(ctx, `SELECT seq, type, actor, at, payload::text, prev_hash, hash FROM case_events
		WHERE case_id = $1 ORDER BY seq`, caseID)
	if err != nil {
		return nil, dbError("list events", err)
	}
	defer rows.Close()
	list := []cases.Event{}
	for rows.Next() {
		e := cases.Event{CaseID: caseID}
		var at time.Time
		var payload *string
		if err := rows.Scan(&e.Seq, &e.Type, &e.Actor, &at, &payload, &e.PrevHash, &e.Hash); err != nil {
			return nil, dbError("list events", err)
		}
		e.At = at.UTC()
		if payload != nil {
			e.Payload = json.RawMessage(*payload)
		}
		list = append(list, e)
	}
	if err := rows.Err(); err != nil {
		return nil, dbError("list events", err)
	}
	return list, nil
}

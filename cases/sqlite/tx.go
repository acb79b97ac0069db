package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/concord-odr/concord/cases"
	"github.com/concord-odr/concord/cases/storetime"
)

// tx is one transaction of the store. Put methods normalise the times of
// the value they write to UTC microseconds (see normalize.go) and, on
// success, increment its Version.
type tx struct {
	tx       *sql.Tx
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
		return fmt.Errorf("sqlite: %s: write in a read-only transaction", op)
	}
	return nil
}

// micros returns t as stored: microseconds since the Unix epoch.
func micros(t time.Time) int64 { return t.UnixMicro() }

// Institution returns the institution with the given id.
func (t *tx) Institution(ctx context.Context, id string) (*cases.Institution, error) {
	var doc string
	err := t.tx.QueryRowContext(ctx, `SELECT doc FROM institutions WHERE id = ?`, id).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, cases.Errorf(cases.ENOTFOUND, "institution not found")
	}
	if err != nil {
		return nil, dbError("get institution", err)
	}
	var inst cases.Institution
	if err := json.Unmarshal([]byte(doc), &inst); err != nil {
		return nil, fmt.Errorf("sqlite: decode institution %s: %w", id, err)
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
		return fmt.Errorf("sqlite: encode institution: %w", err)
	}
	_, err = t.tx.ExecContext(ctx, `INSERT INTO institutions
		(id, code, name, level, parent_id, status, created_at, doc)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET
			code = excluded.code, name = excluded.name, level = excluded.level,
			parent_id = excluded.parent_id, status = excluded.status,
			created_at = excluded.created_at, doc = excluded.doc`,
		inst.ID, inst.Code, inst.Name, inst.Level, inst.ParentID, inst.Status, micros(inst.CreatedAt), string(doc))
	if err != nil {
		return dbError("put institution", err)
	}
	return nil
}

// Case returns the case with the given id.
func (t *tx) Case(ctx context.Context, id string) (*cases.Case, error) {
	return t.getCase(ctx, `SELECT version, doc FROM cases WHERE id = ?`, id)
}

// CaseByExternalRef returns the case with the given channel and external
// reference. An empty reference matches nothing.
func (t *tx) CaseByExternalRef(ctx context.Context, channel, ref string) (*cases.Case, error) {
	if ref == "" {
		return nil, cases.Errorf(cases.ENOTFOUND, "case not found")
	}
	return t.getCase(ctx, `SELECT version, doc FROM cases
		WHERE channel = ? AND external_ref = ? AND external_ref <> ''`, channel, ref)
}

func (t *tx) getCase(ctx context.Context, query string, args ...any) (*cases.Case, error) {
	var version int64
	var doc string
	err := t.tx.QueryRowContext(ctx, query, args...).Scan(&version, &doc)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, cases.Errorf(cases.ENOTFOUND, "case not found")
	}
	if err != nil {
		return nil, dbError("get case", err)
	}
	var c cases.Case
	if err := json.Unmarshal([]byte(doc), &c); err != nil {
		return nil, fmt.Errorf("sqlite: decode case: %w", err)
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
		return fmt.Errorf("sqlite: encode case: %w", err)
	}
	var dueAt any // NULL without a pending deadline
	if d := c.DueAt(); d != nil {
		dueAt = micros(*d)
	}
	if c.Version == 0 {
		_, err = t.tx.ExecContext(ctx, `INSERT INTO cases
			(id, number, institution_id, state, channel, external_ref, version, created_at, updated_at, doc, category, due_at,
			 respondent_credit_code)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			c.ID, c.Number, c.InstitutionID, string(c.State), c.Channel, c.ExternalRef, next.Version,
			micros(c.CreatedAt), micros(c.UpdatedAt), string(doc), c.Category, dueAt, c.Respondent.CreditCode)
		if isUnique(err) {
			return fmt.Errorf("sqlite: insert case: %w: %w", cases.Errorf(cases.ECONFLICT, msgCaseExists), err)
		}
		if err != nil {
			return dbError("insert case", err)
		}
	} else {
		res, err := t.tx.ExecContext(ctx, `UPDATE cases SET
			number = ?, institution_id = ?, state = ?, channel = ?, external_ref = ?,
			version = ?, created_at = ?, updated_at = ?, doc = ?, category = ?, due_at = ?,
			respondent_credit_code = ?
			WHERE id = ? AND version = ?`,
			c.Number, c.InstitutionID, string(c.State), c.Channel, c.ExternalRef,
			next.Version, micros(c.CreatedAt), micros(c.UpdatedAt), string(doc), c.Category, dueAt,
			c.Respondent.CreditCode, c.ID, c.Version)
		if isUnique(err) {
			return fmt.Errorf("sqlite: update case: %w: %w", cases.Errorf(cases.ECONFLICT, msgCaseExists), err)
		}
		if err != nil {
			return dbError("update case", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return dbError("update case", err)
		} else if n == 0 {
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
	err := t.tx.QueryRowContext(ctx, `INSERT INTO case_seq (institution_id, year, "last")
		VALUES (?, ?, 1)
		ON CONFLICT (institution_id, year) DO UPDATE SET "last" = case_seq."last" + 1
		RETURNING "last"`, institutionID, year).Scan(&last)
	if err != nil {
		return 0, dbError("next case number", err)
	}
	return last, nil
}

// Session returns the session with the given id.
func (t *tx) Session(ctx context.Context, id string) (*cases.Session, error) {
	var version int64
	var doc string
	err := t.tx.QueryRowContext(ctx, `SELECT version, doc FROM sessions WHERE id = ?`, id).Scan(&version, &doc)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, cases.Errorf(cases.ENOTFOUND, "session not found")
	}
	if err != nil {
		return nil, dbError("get session", err)
	}
	return decodeSession(version, doc)
}

func decodeSession(version int64, doc string) (*cases.Session, error) {
	var s cases.Session
	if err := json.Unmarshal([]byte(doc), &s); err != nil {
		return nil, fmt.Errorf("sqlite: decode session: %w", err)
	}
	s.Version = version
	return &s, nil
}

// Sessions lists a case's sessions by creation time, then id.
func (t *tx) Sessions(ctx context.Context, caseID string) ([]cases.Session, error) {
	rows, err := t.tx.QueryContext(ctx, `SELECT version, doc FROM sessions
		WHERE case_id = ? ORDER BY created_at, id`, caseID)
	if err != nil {
		return nil, dbError("list sessions", err)
	}
	defer rows.Close()
	list := []cases.Session{}
	for rows.Next() {
		var version int64
		var doc string
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
		return fmt.Errorf("sqlite: encode session: %w", err)
	}
	if s.Version == 0 {
		_, err = t.tx.ExecContext(ctx, `INSERT INTO sessions
			(id, case_id, status, version, created_at, doc) VALUES (?, ?, ?, ?, ?, ?)`,
			s.ID, s.CaseID, s.Status, next.Version, micros(s.CreatedAt), string(doc))
	} else {
		var res sql.Result
		res, err = t.tx.ExecContext(ctx, `UPDATE sessions SET
			case_id = ?, status = ?, version = ?, created_at = ?, doc = ?
			WHERE id = ? AND version = ?`,
			s.CaseID, s.Status, next.Version, micros(s.CreatedAt), string(doc), s.ID, s.Version)
		if err == nil {
			var n int64
			if n, err = res.RowsAffected(); err == nil && n == 0 {
				return cases.Errorf(cases.ECONFLICT, msgSessionChanged)
			}
		}
	}
	switch {
	case isUnique(err):
		return fmt.Errorf("sqlite: put session: %w: %w", cases.Errorf(cases.ECONFLICT, msgSessionExists), err)
	case isForeignKey(err):
		return fmt.Errorf("sqlite: put session: %w: %w", cases.Errorf(cases.ENOTFOUND, "case not found"), err)
	case err != nil:
		return dbError("put session", err)
	}
	s.Version = next.Version
	return nil
}

// AppendEvent adds e to its case's log with the next sequence number of
// that case and sets e.Seq, e.PrevHash and e.Hash (see audit.go). The
// case must exist.
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

// Events lists a case's events by sequence number.
func (t *tx) Events(ctx context.Context, caseID string) ([]cases.Event, error) {
	rows, err := t.tx.QueryContext(ctx, `SELECT seq, type, actor, at, payload, prev_hash, hash FROM case_events
		WHERE case_id = ? ORDER BY seq`, caseID)
	if err != nil {
		return nil, dbError("list events", err)
	}
	defer rows.Close()
	list := []cases.Event{}
	for rows.Next() {
		e := cases.Event{CaseID: caseID}
		var at int64
		var payload sql.NullString
		if err := rows.Scan(&e.Seq, &e.Type, &e.Actor, &at, &payload, &e.PrevHash, &e.Hash); err != nil {
			return nil, dbError("list events", err)
		}
		e.At = time.UnixMicro(at).UTC()
		if payload.Valid {
			e.Payload = json.RawMessage(payload.String)
		}
		list = append(list, e)
	}
	if err := rows.Err(); err != nil {
		return nil, dbError("list events", err)
	}
	return list, nil
}

package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/concord-odr/concord/cases"
	"github.com/concord-odr/concord/cases/storetime"
	"github.com/jackc/pgx/v5"
)

// Hash chain of the case event log, agreements and their follow-ups.

// appendChained inserts e after the last event of its case, chained to
// that event's hash. A log written before hashing is chained first.
func (t *tx) appendChained(ctx context.Context, e *cases.Event) error {
	var last int64
	var prev string
	err := t.tx.QueryRow(ctx, `SELECT seq, hash FROM case_events
		WHERE case_id = $1 ORDER BY seq DESC LIMIT 1`, e.CaseID).Scan(&last, &prev)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return dbError("append event", err)
	}
	if err == nil && prev == "" {
		if prev, err = t.chainCase(ctx, e.CaseID); err != nil {
			return err
		}
	}
	sealed := *e
	sealed.Seq = last + 1
	if err := cases.SealEvent(&sealed, prev); err != nil {
		return err
	}
	var payload *string // NULL when empty
	if len(e.Payload) > 0 {
		p := string(e.Payload)
		payload = &p
	}
	_, err = t.tx.Exec(ctx, `INSERT INTO case_events (case_id, seq, type, actor, at, payload, prev_hash, hash)
		VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8)`,
		e.CaseID, sealed.Seq, e.Type, e.Actor, e.At, payload, sealed.PrevHash, sealed.Hash)
	if err != nil {
		return constraintError("append event", err, msgEventRace, "case not found")
	}
	e.Seq, e.PrevHash, e.Hash = sealed.Seq, sealed.PrevHash, sealed.Hash
	return nil
}

// chainCase seals the events of a case that have no hash yet, in seq
// order, and returns the hash of the last event. It locks the case, so
// that appends to it wait.
func (t *tx) chainCase(ctx context.Context, caseID string) (string, error) {
	if _, err := t.tx.Exec(ctx, `SELECT 1 FROM cases WHERE id = $1 FOR UPDATE`, caseID); err != nil {
		return "", dbError("chain events", err)
	}
	events, err := t.Events(ctx, caseID)
	if err != nil {
		return "", err
	}
	sealed, err := cases.ChainEvents(events)
	if err != nil {
		return "", fmt.Errorf("postgres: %w", err)
	}
	for _, i := range sealed {
		e := events[i]
		if _, err := t.tx.Exec(ctx, `UPDATE case_events SET prev_hash = $1, hash = $2
			WHERE case_id = $3 AND seq = $4`, e.PrevHash, e.Hash, caseID, e.Seq); err != nil {
			return "", dbError("chain events", err)
		}
	}
	if len(events) == 0 {
		return "", nil
	}
	return events[len(events)-1].Hash, nil
}

// chainUnhashed chains every case log that has events without a hash:
// those written before the log was hash-chained. Each case is chained in
// its own transaction.
func (s *Store) chainUnhashed(ctx context.Context) error {
	for {
		rows, err := s.pool.Query(ctx, `SELECT DISTINCT case_id FROM case_events WHERE hash = '' LIMIT 100`)
		if err != nil {
			return dbError("find unchained events", err)
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return dbError("find unchained events", err)
		}
		if len(ids) == 0 {
			return nil
		}
		for _, id := range ids {
			if err := s.Update(ctx, func(ct cases.Tx) error {
				_, err := ct.(*tx).chainCase(ctx, id)
				return err
			}); err != nil {
				return err
			}
		}
	}
}

// ChainHeads lists the last event of every case's log.
func (t *tx) ChainHeads(ctx context.Context) ([]cases.ChainHead, error) {
	rows, err := t.tx.Query(ctx, `SELECT DISTINCT ON (case_id) case_id, seq, hash, at
		FROM case_events ORDER BY case_id, seq DESC`)
	if err != nil {
		return nil, dbError("chain heads", err)
	}
	defer rows.Close()
	list := []cases.ChainHead{}
	for rows.Next() {
		var h cases.ChainHead
		if err := rows.Scan(&h.CaseID, &h.Seq, &h.Hash, &h.At); err != nil {
			return nil, dbError("chain heads", err)
		}
		h.At = h.At.UTC()
		list = append(list, h)
	}
	if err := rows.Err(); err != nil {
		return nil, dbError("chain heads", err)
	}
	return list, nil
}

// Agreement returns the agreement with the given id, locking it in an
// Update.
func (t *tx) Agreement(ctx context.Context, id string) (*cases.Agreement, error) {
	var a cases.Agreement
	if err := getDoc(ctx, t, "agreement", &a, `SELECT doc FROM agreements WHERE id = $1`+t.lock(), id); err != nil {
		return nil, err
	}
	return &a, nil
}

// Agreements lists a case's agreements by number.
func (t *tx) Agreements(ctx context.Context, caseID string) ([]cases.Agreement, error) {
	return listDocs[cases.Agreement](ctx, t, "list agreements",
		`SELECT doc FROM agreements WHERE case_id = $1 ORDER BY number`, caseID)
}

// PutAgreement inserts a when its Version is 0, and otherwise updates it
// if the stored row still has that version.
func (t *tx) PutAgreement(ctx context.Context, a *cases.Agreement) error {
	if err := t.writable("put agreement"); err != nil {
		return err
	}
	if a.ID == "" || a.CaseID == "" || a.Number < 1 {
		return cases.Errorf(cases.EINVALID, "agreement id, case id and number are required")
	}
	if a.Version < 0 {
		return cases.Errorf(cases.EINVALID, "agreement version must not be negative")
	}
	normalizeAgreement(a)
	next := *a
	next.Version++
	doc, err := json.Marshal(&next)
	if err != nil {
		return fmt.Errorf("postgres: encode agreement: %w", err)
	}
	const exists = "an agreement with this id or number already exists"
	if a.Version == 0 {
		_, err = t.tx.Exec(ctx, `INSERT INTO agreements
			(id, case_id, number, status, version, created_at, updated_at, doc) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			a.ID, a.CaseID, a.Number, a.Status, next.Version, a.CreatedAt, a.UpdatedAt, doc)
		if err != nil {
			return constraintError("insert agreement", err, exists, "case not found")
		}
	} else {
		tag, err := t.tx.Exec(ctx, `UPDATE agreements SET status = $1, version = $2, updated_at = $3, doc = $4
			WHERE id = $5 AND case_id = $6 AND number = $7 AND version = $8`,
			a.Status, next.Version, a.UpdatedAt, doc, a.ID, a.CaseID, a.Number, a.Version)
		if err != nil {
			return constraintError("update agreement", err, exists, "case not found")
		}
		if tag.RowsAffected() == 0 {
			return cases.Errorf(cases.ECONFLICT, "the agreement was changed by someone else; reload it and try again")
		}
	}
	a.Version = next.Version
	return nil
}

// PutFollowUp inserts f when its Version is 0, and otherwise updates it
// if the stored row still has that version.
func (t *tx) PutFollowUp(ctx context.Context, f *cases.FollowUp) error {
	if err := t.writable("put follow-up"); err != nil {
		return err
	}
	if f.ID == "" || f.CaseID == "" || f.AgreementID == "" {
		return cases.Errorf(cases.EINVALID, "follow-up id, case id and agreement id are required")
	}
	if f.Version < 0 {
		return cases.Errorf(cases.EINVALID, "follow-up version must not be negative")
	}
	normalizeFollowUp(f)
	next := *f
	next.Version++
	doc, err := json.Marshal(&next)
	if err != nil {
		return fmt.Errorf("postgres: encode follow-up: %w", err)
	}
	const exists = "a follow-up with this id already exists"
	if f.Version == 0 {
		_, err = t.tx.Exec(ctx, `INSERT INTO follow_ups
			(id, case_id, agreement_id, institution_id, mediator_id, status, due_at, version, created_at, doc)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			f.ID, f.CaseID, f.AgreementID, f.InstitutionID, f.MediatorID, f.Status, f.DueAt,
			next.Version, f.CreatedAt, doc)
		if err != nil {
			return constraintError("insert follow-up", err, exists, "agreement not found")
		}
	} else {
		tag, err := t.tx.Exec(ctx, `UPDATE follow_ups SET
			institution_id = $1, mediator_id = $2, status = $3, due_at = $4, version = $5, doc = $6
			WHERE id = $7 AND version = $8`,
			f.InstitutionID, f.MediatorID, f.Status, f.DueAt, next.Version, doc, f.ID, f.Version)
		if err != nil {
			return constraintError("update follow-up", err, exists, "agreement not found")
		}
		if tag.RowsAffected() == 0 {
			return cases.Errorf(cases.ECONFLICT, "the follow-up was changed by someone else; reload it and try again")
		}
	}
	f.Version = next.Version
	return nil
}

// FollowUps lists the follow-ups that match f by due time, then id.
func (t *tx) FollowUps(ctx context.Context, f cases.FollowUpFilter) ([]cases.FollowUp, error) {
	var where []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, strings.ReplaceAll(cond, "?", "$"+strconv.Itoa(len(args))))
	}
	if f.CaseID != "" {
		add("case_id = ?", f.CaseID)
	}
	if f.AgreementID != "" {
		add("agreement_id = ?", f.AgreementID)
	}
	if f.InstitutionID != "" {
		add("institution_id = ?", f.InstitutionID)
	}
	if f.MediatorID != "" {
		add("mediator_id = ?", f.MediatorID)
	}
	if !f.OverdueAt.IsZero() {
		add("status IN ('pending', 'not_performed') AND due_at <= ?", f.OverdueAt)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 500
	}
	q := `SELECT doc FROM follow_ups`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	args = append(args, limit)
	q += ` ORDER BY due_at, id LIMIT $` + strconv.Itoa(len(args))
	return listDocs[cases.FollowUp](ctx, t, "list follow-ups", q, args...)
}

func normalizeAgreement(a *cases.Agreement) {
	a.CreatedAt = storetime.UTC(a.CreatedAt)
	a.UpdatedAt = storetime.UTC(a.UpdatedAt)
	a.EffectiveAt = storetime.UTCPtr(a.EffectiveAt)
	if a.Confirmations != nil {
		cs := make([]cases.AgreementConfirmation, len(a.Confirmations))
		for i, c := range a.Confirmations {
			c.At = storetime.UTC(c.At)
			cs[i] = c
		}
		a.Confirmations = cs
	}
	if a.Signature != nil {
		s := *a.Signature
		s.At = storetime.UTC(s.At)
		a.Signature = &s
	}
}

func normalizeFollowUp(f *cases.FollowUp) {
	f.DueAt = storetime.UTC(f.DueAt)
	f.CreatedAt = storetime.UTC(f.CreatedAt)
	f.UpdatedAt = storetime.UTC(f.UpdatedAt)
	if f.Reports != nil {
		rs := make([]cases.PerformanceReport, len(f.Reports))
		for i, r := range f.Reports {
			r.At = storetime.UTC(r.At)
			rs[i] = r
		}
		f.Reports = rs
	}
}

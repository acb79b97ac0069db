package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/concord-odr/concord/cases"
	"github.com/concord-odr/concord/cases/storetime"
)

// Hash chain of the case event log, agreements and their follow-ups.

// appendChained inserts e after the last event of its case, chained to
// that event's hash. A log written before hashing is chained first.
func (t *tx) appendChained(ctx context.Context, e *cases.Event) error {
	var last int64
	var prev string
	err := t.tx.QueryRowContext(ctx, `SELECT seq, hash FROM case_events
		WHERE case_id = ? ORDER BY seq DESC LIMIT 1`, e.CaseID).Scan(&last, &prev)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
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
	var payload any // NULL when empty
	if len(e.Payload) > 0 {
		payload = string(e.Payload)
	}
	_, err = t.tx.ExecContext(ctx, `INSERT INTO case_events (case_id, seq, type, actor, at, payload, prev_hash, hash)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		e.CaseID, sealed.Seq, e.Type, e.Actor, micros(e.At), payload, sealed.PrevHash, sealed.Hash)
	switch {
	case isUnique(err):
		return fmt.Errorf("sqlite: append event: %w: %w", cases.Errorf(cases.ECONFLICT, msgEventRace), err)
	case isForeignKey(err):
		return fmt.Errorf("sqlite: append event: %w: %w", cases.Errorf(cases.ENOTFOUND, "case not found"), err)
	case err != nil:
		return dbError("append event", err)
	}
	e.Seq, e.PrevHash, e.Hash = sealed.Seq, sealed.PrevHash, sealed.Hash
	return nil
}

// chainCase seals the events of a case that have no hash yet, in seq
// order, and returns the hash of the last event.
func (t *tx) chainCase(ctx context.Context, caseID string) (string, error) {
	events, err := t.Events(ctx, caseID)
	if err != nil {
		return "", err
	}
	sealed, err := cases.ChainEvents(events)
	if err != nil {
		return "", fmt.Errorf("sqlite: %w", err)
	}
	for _, i := range sealed {
		e := events[i]
		if _, err := t.tx.ExecContext(ctx, `UPDATE case_events SET prev_hash = ?, hash = ?
			WHERE case_id = ? AND seq = ?`, e.PrevHash, e.Hash, caseID, e.Seq); err != nil {
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
		var ids []string
		err := s.View(ctx, func(vt cases.Tx) error {
			rows, err := vt.(*tx).tx.QueryContext(ctx, `SELECT DISTINCT case_id FROM case_events WHERE hash = '' LIMIT 100`)
			if err != nil {
				return dbError("find unchained events", err)
			}
			defer rows.Close()
			for rows.Next() {
				var id string
				if err := rows.Scan(&id); err != nil {
					return dbError("find unchained events", err)
				}
				ids = append(ids, id)
			}
			return rows.Err()
		})
		if err != nil || len(ids) == 0 {
			return err
		}
		for _, id := range ids {
			if err := s.Update(ctx, func(t cases.Tx) error {
				_, err := t.(*tx).chainCase(ctx, id)
				return err
			}); err != nil {
				return err
			}
		}
	}
}

// ChainHeads lists the last event of every case's log.
func (t *tx) ChainHeads(ctx context.Context) ([]cases.ChainHead, error) {
	// SQLite returns the other columns of the row holding max(seq).
	rows, err := t.tx.QueryContext(ctx, `SELECT case_id, max(seq), hash, at FROM case_events GROUP BY case_id ORDER BY case_id`)
	if err != nil {
		return nil, dbError("chain heads", err)
	}
	defer rows.Close()
	list := []cases.ChainHead{}
	for rows.Next() {
		var h cases.ChainHead
		var at int64
		if err := rows.Scan(&h.CaseID, &h.Seq, &h.Hash, &at); err != nil {
			return nil, dbError("chain heads", err)
		}
		h.At = fromMicros(at)
		list = append(list, h)
	}
	if err := rows.Err(); err != nil {
		return nil, dbError("chain heads", err)
	}
	return list, nil
}

// Agreement returns the agreement with the given id.
func (t *tx) Agreement(ctx context.Context, id string) (*cases.Agreement, error) {
	var a cases.Agreement
	if err := getDoc(ctx, t, "agreement", &a, `SELECT doc FROM agreements WHERE id = ?`, id); err != nil {
		return nil, err
	}
	return &a, nil
}

// Agreements lists a case's agreements by number.
func (t *tx) Agreements(ctx context.Context, caseID string) ([]cases.Agreement, error) {
	return listDocs[cases.Agreement](ctx, t, "list agreements",
		`SELECT doc FROM agreements WHERE case_id = ? ORDER BY number`, caseID)
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
		return fmt.Errorf("sqlite: encode agreement: %w", err)
	}
	if a.Version == 0 {
		_, err = t.tx.ExecContext(ctx, `INSERT INTO agreements
			(id, case_id, number, status, version, created_at, updated_at, doc) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			a.ID, a.CaseID, a.Number, a.Status, next.Version, micros(a.CreatedAt), micros(a.UpdatedAt), string(doc))
	} else {
		var res sql.Result
		res, err = t.tx.ExecContext(ctx, `UPDATE agreements SET
			status = ?, version = ?, updated_at = ?, doc = ?
			WHERE id = ? AND case_id = ? AND number = ? AND version = ?`,
			a.Status, next.Version, micros(a.UpdatedAt), string(doc), a.ID, a.CaseID, a.Number, a.Version)
		if err == nil {
			var n int64
			if n, err = res.RowsAffected(); err == nil && n == 0 {
				return cases.Errorf(cases.ECONFLICT, "the agreement was changed by someone else; reload it and try again")
			}
		}
	}
	switch {
	case isUnique(err):
		return fmt.Errorf("sqlite: put agreement: %w: %w", cases.Errorf(cases.ECONFLICT, "an agreement with this id or number already exists"), err)
	case isForeignKey(err):
		return fmt.Errorf("sqlite: put agreement: %w: %w", cases.Errorf(cases.ENOTFOUND, "case not found"), err)
	case err != nil:
		return dbError("put agreement", err)
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
		return fmt.Errorf("sqlite: encode follow-up: %w", err)
	}
	if f.Version == 0 {
		_, err = t.tx.ExecContext(ctx, `INSERT INTO follow_ups
			(id, case_id, agreement_id, institution_id, mediator_id, status, due_at, version, created_at, doc)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			f.ID, f.CaseID, f.AgreementID, f.InstitutionID, f.MediatorID, f.Status, micros(f.DueAt),
			next.Version, micros(f.CreatedAt), string(doc))
	} else {
		var res sql.Result
		res, err = t.tx.ExecContext(ctx, `UPDATE follow_ups SET
			institution_id = ?, mediator_id = ?, status = ?, due_at = ?, version = ?, doc = ?
			WHERE id = ? AND version = ?`,
			f.InstitutionID, f.MediatorID, f.Status, micros(f.DueAt), next.Version, string(doc), f.ID, f.Version)
		if err == nil {
			var n int64
			if n, err = res.RowsAffected(); err == nil && n == 0 {
				return cases.Errorf(cases.ECONFLICT, "the follow-up was changed by someone else; reload it and try again")
			}
		}
	}
	switch {
	case isUnique(err):
		return fmt.Errorf("sqlite: put follow-up: %w: %w", cases.Errorf(cases.ECONFLICT, "a follow-up with this id already exists"), err)
	case isForeignKey(err):
		return fmt.Errorf("sqlite: put follow-up: %w: %w", cases.Errorf(cases.ENOTFOUND, "agreement not found"), err)
	case err != nil:
		return dbError("put follow-up", err)
	}
	f.Version = next.Version
	return nil
}

// FollowUps lists the follow-ups that match f by due time, then id.
func (t *tx) FollowUps(ctx context.Context, f cases.FollowUpFilter) ([]cases.FollowUp, error) {
	var where []string
	var args []any
	add := func(cond string, v any) {
		where = append(where, cond)
		args = append(args, v)
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
		add("status IN ('pending', 'not_performed') AND due_at <= ?", micros(f.OverdueAt))
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 500
	}
	q := `SELECT doc FROM follow_ups`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY due_at, id LIMIT ?`
	args = append(args, limit)
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

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

// ODR reconciliation records, dispatch routes, mediators' shifts and
// session reminders (migration 0005).

// Enterprises lists every ODR enterprise by credit code.
func (t *tx) Enterprises(ctx context.Context) ([]cases.Enterprise, error) {
	return listDocs[cases.Enterprise](ctx, t, "list enterprises", `SELECT doc FROM enterprises ORDER BY credit_code`)
}

func normalizeReconciliation(r *cases.Reconciliation) {
	r.StartedAt = storetime.UTC(r.StartedAt)
	r.DueAt = storetime.UTC(r.DueAt)
	r.FirstResponseAt = storetime.UTCPtr(r.FirstResponseAt)
	r.VideoRequestedAt = storetime.UTCPtr(r.VideoRequestedAt)
	r.EndedAt = storetime.UTCPtr(r.EndedAt)
	offers := make([]cases.Offer, len(r.Offers))
	for i, o := range r.Offers {
		o.At = storetime.UTC(o.At)
		o.AnsweredAt = storetime.UTCPtr(o.AnsweredAt)
		offers[i] = o
	}
	r.Offers = offers
}

// Reconciliation returns a case's reconciliation record.
func (t *tx) Reconciliation(ctx context.Context, caseID string) (*cases.Reconciliation, error) {
	var version int64
	var doc string
	err := t.tx.QueryRowContext(ctx, `SELECT version, doc FROM odr_reconciliations WHERE case_id = ?`, caseID).Scan(&version, &doc)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, cases.Errorf(cases.ENOTFOUND, "reconciliation not found")
	}
	if err != nil {
		return nil, dbError("get reconciliation", err)
	}
	var r cases.Reconciliation
	if err := json.Unmarshal([]byte(doc), &r); err != nil {
		return nil, fmt.Errorf("sqlite: decode reconciliation: %w", err)
	}
	r.Version = version
	return &r, nil
}

// PutReconciliation inserts r when its Version is 0, and otherwise
// updates it if the stored row still has that version.
func (t *tx) PutReconciliation(ctx context.Context, r *cases.Reconciliation) error {
	if err := t.writable("put reconciliation"); err != nil {
		return err
	}
	if r.CaseID == "" || r.Version < 0 {
		return cases.Errorf(cases.EINVALID, "reconciliation case id is required")
	}
	normalizeReconciliation(r)
	next := *r
	next.Version++
	doc, err := json.Marshal(&next)
	if err != nil {
		return fmt.Errorf("sqlite: encode reconciliation: %w", err)
	}
	open := 0
	if r.Open() {
		open = 1
	}
	if r.Version == 0 {
		_, err = t.tx.ExecContext(ctx, `INSERT INTO odr_reconciliations
			(case_id, enterprise_code, status, open, started_at, version, doc) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			r.CaseID, r.EnterpriseCode, r.Status, open, micros(r.StartedAt), next.Version, string(doc))
		switch {
		case isUnique(err):
			return fmt.Errorf("sqlite: insert reconciliation: %w: %w", cases.Errorf(cases.ECONFLICT, "the case already has a reconciliation"), err)
		case isForeignKey(err):
			return fmt.Errorf("sqlite: insert reconciliation: %w: %w", cases.Errorf(cases.ENOTFOUND, "case not found"), err)
		case err != nil:
			return dbError("insert reconciliation", err)
		}
	} else {
		res, err := t.tx.ExecContext(ctx, `UPDATE odr_reconciliations SET
			enterprise_code = ?, status = ?, open = ?, started_at = ?, version = ?, doc = ?
			WHERE case_id = ? AND version = ?`,
			r.EnterpriseCode, r.Status, open, micros(r.StartedAt), next.Version, string(doc), r.CaseID, r.Version)
		if err != nil {
			return dbError("update reconciliation", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return dbError("update reconciliation", err)
		} else if n == 0 {
			return cases.Errorf(cases.ECONFLICT, "the reconciliation was changed by someone else; reload it and try again")
		}
	}
	r.Version = next.Version
	return nil
}

// Reconciliations lists the records that match f by StartedAt, then
// CaseID.
func (t *tx) Reconciliations(ctx context.Context, f cases.ReconciliationFilter) ([]cases.Reconciliation, error) {
	var where []string
	var args []any
	add := func(cond string, vs ...any) {
		where = append(where, cond)
		args = append(args, vs...)
	}
	if f.EnterpriseCode != "" {
		add("enterprise_code = ?", f.EnterpriseCode)
	}
	if f.Open {
		add("open = 1")
	}
	if !f.StartedFrom.IsZero() {
		add("started_at >= ?", micros(f.StartedFrom))
	}
	if !f.StartedBefore.IsZero() {
		add("started_at < ?", micros(f.StartedBefore))
	}
	if f.AfterCaseID != "" {
		add("(started_at, case_id) > (?, ?)", micros(f.AfterStartedAt), f.AfterCaseID)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	query := `SELECT version, doc FROM odr_reconciliations`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY started_at, case_id LIMIT ?"
	args = append(args, limit)
	rows, err := t.tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, dbError("list reconciliations", err)
	}
	defer rows.Close()
	list := []cases.Reconciliation{}
	for rows.Next() {
		var version int64
		var doc string
		if err := rows.Scan(&version, &doc); err != nil {
			return nil, dbError("list reconciliations", err)
		}
		var r cases.Reconciliation
		if err := json.Unmarshal([]byte(doc), &r); err != nil {
			return nil, fmt.Errorf("sqlite: decode reconciliation: %w", err)
		}
		r.Version = version
		list = append(list, r)
	}
	if err := rows.Err(); err != nil {
		return nil, dbError("list reconciliations", err)
	}
	return list, nil
}

// DispatchRoutes lists the dispatch routes by id.
func (t *tx) DispatchRoutes(ctx context.Context) ([]cases.DispatchRoute, error) {
	return listDocs[cases.DispatchRoute](ctx, t, "list dispatch routes", `SELECT doc FROM odr_routes ORDER BY id`)
}

// PutDispatchRoute inserts or replaces a dispatch route.
func (t *tx) PutDispatchRoute(ctx context.Context, r *cases.DispatchRoute) error {
	if err := t.writable("put dispatch route"); err != nil {
		return err
	}
	if r.ID == "" || r.InstitutionID == "" {
		return cases.Errorf(cases.EINVALID, "dispatch route id and institution id are required")
	}
	r.CreatedAt = storetime.UTC(r.CreatedAt)
	doc, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("sqlite: encode dispatch route: %w", err)
	}
	_, err = t.tx.ExecContext(ctx, `INSERT INTO odr_routes (id, category, district, institution_id, doc)
		VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET category = excluded.category, district = excluded.district,
			institution_id = excluded.institution_id, doc = excluded.doc`,
		r.ID, r.Category, r.District, r.InstitutionID, string(doc))
	if isForeignKey(err) {
		return fmt.Errorf("sqlite: put dispatch route: %w: %w", cases.Errorf(cases.ENOTFOUND, "institution not found"), err)
	}
	if err != nil {
		return dbError("put dispatch route", err)
	}
	return nil
}

// DeleteDispatchRoute removes a dispatch route.
func (t *tx) DeleteDispatchRoute(ctx context.Context, id string) error {
	return t.deleteRow(ctx, "dispatch route", `DELETE FROM odr_routes WHERE id = ?`, id)
}

// deleteRow runs a DELETE of one row; none is ENOTFOUND.
func (t *tx) deleteRow(ctx context.Context, what, query string, args ...any) error {
	if err := t.writable("delete " + what); err != nil {
		return err
	}
	res, err := t.tx.ExecContext(ctx, query, args...)
	if err != nil {
		return dbError("delete "+what, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return dbError("delete "+what, err)
	} else if n == 0 {
		return cases.Errorf(cases.ENOTFOUND, "%s not found", what)
	}
	return nil
}

// PutShift inserts or replaces a shift. Its mediator must exist.
func (t *tx) PutShift(ctx context.Context, s *cases.Shift) error {
	if err := t.writable("put shift"); err != nil {
		return err
	}
	if s.ID == "" || s.MediatorID == "" {
		return cases.Errorf(cases.EINVALID, "shift id and mediator id are required")
	}
	s.StartsAt, s.EndsAt, s.CreatedAt = storetime.UTC(s.StartsAt), storetime.UTC(s.EndsAt), storetime.UTC(s.CreatedAt)
	doc, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("sqlite: encode shift: %w", err)
	}
	_, err = t.tx.ExecContext(ctx, `INSERT INTO mediator_shifts (id, mediator_id, institution_id, starts_at, ends_at, doc)
		VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET mediator_id = excluded.mediator_id, institution_id = excluded.institution_id,
			starts_at = excluded.starts_at, ends_at = excluded.ends_at, doc = excluded.doc`,
		s.ID, s.MediatorID, s.InstitutionID, micros(s.StartsAt), micros(s.EndsAt), string(doc))
	if isForeignKey(err) {
		return fmt.Errorf("sqlite: put shift: %w: %w", cases.Errorf(cases.ENOTFOUND, "mediator not found"), err)
	}
	if err != nil {
		return dbError("put shift", err)
	}
	return nil
}

// DeleteShift removes a shift.
func (t *tx) DeleteShift(ctx context.Context, id string) error {
	return t.deleteRow(ctx, "shift", `DELETE FROM mediator_shifts WHERE id = ?`, id)
}

// Shifts lists the shifts that match f by StartsAt, then ID.
func (t *tx) Shifts(ctx context.Context, f cases.ShiftFilter) ([]cases.Shift, error) {
	var where []string
	var args []any
	if f.InstitutionID != "" {
		where, args = append(where, "institution_id = ?"), append(args, f.InstitutionID)
	}
	if f.MediatorID != "" {
		where, args = append(where, "mediator_id = ?"), append(args, f.MediatorID)
	}
	if !f.From.IsZero() {
		where, args = append(where, "ends_at > ?"), append(args, micros(f.From))
	}
	if !f.To.IsZero() {
		where, args = append(where, "starts_at < ?"), append(args, micros(f.To))
	}
	query := `SELECT doc FROM mediator_shifts`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	return listDocs[cases.Shift](ctx, t, "list shifts", query+" ORDER BY starts_at, id", args...)
}

// PutReminder inserts or replaces a session reminder.
func (t *tx) PutReminder(ctx context.Context, r *cases.Reminder) error {
	if err := t.writable("put reminder"); err != nil {
		return err
	}
	if r.ID == "" || r.SessionID == "" {
		return cases.Errorf(cases.EINVALID, "reminder id and session id are required")
	}
	r.SessionAt, r.DueAt, r.CreatedAt, r.SentAt = storetime.UTC(r.SessionAt), storetime.UTC(r.DueAt), storetime.UTC(r.CreatedAt), storetime.UTCPtr(r.SentAt)
	doc, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("sqlite: encode reminder: %w", err)
	}
	_, err = t.tx.ExecContext(ctx, `INSERT INTO session_reminders (id, session_id, status, due_at, doc)
		VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET session_id = excluded.session_id, status = excluded.status,
			due_at = excluded.due_at, doc = excluded.doc`,
		r.ID, r.SessionID, r.Status, micros(r.DueAt), string(doc))
	if isForeignKey(err) {
		return fmt.Errorf("sqlite: put reminder: %w: %w", cases.Errorf(cases.ENOTFOUND, "session not found"), err)
	}
	if err != nil {
		return dbError("put reminder", err)
	}
	return nil
}

// Reminders lists the reminders that match f by DueAt, then ID.
func (t *tx) Reminders(ctx context.Context, f cases.ReminderFilter) ([]cases.Reminder, error) {
	var where []string
	var args []any
	if f.SessionID != "" {
		where, args = append(where, "session_id = ?"), append(args, f.SessionID)
	}
	if f.Pending {
		where = append(where, "status = 'pending'")
	}
	if !f.DueBy.IsZero() {
		where, args = append(where, "due_at <= ?"), append(args, micros(f.DueBy))
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	query := `SELECT doc FROM session_reminders`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	return listDocs[cases.Reminder](ctx, t, "list reminders", query+" ORDER BY due_at, id LIMIT ?", append(args, limit)...)
}

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

// where builds a WHERE clause with numbered parameters.
type where struct {
	conds []string
	args  []any
}

func (w *where) add(cond string, vs ...any) {
	for _, v := range vs {
		w.args = append(w.args, v)
		cond = strings.Replace(cond, "?", "$"+strconv.Itoa(len(w.args)), 1)
	}
	w.conds = append(w.conds, cond)
}

func (w *where) String() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}

// next returns the placeholder of one more argument.
func (w *where) next(v any) string {
	w.args = append(w.args, v)
	return "$" + strconv.Itoa(len(w.args))
}

// Reconciliation returns a case's reconciliation record; in an Update it
// is locked.
func (t *tx) Reconciliation(ctx context.Context, caseID string) (*cases.Reconciliation, error) {
	var version int64
	var doc []byte
	err := t.tx.QueryRow(ctx, `SELECT version, doc FROM odr_reconciliations WHERE case_id = $1`+t.lock(), caseID).Scan(&version, &doc)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, cases.Errorf(cases.ENOTFOUND, "reconciliation not found")
	}
	if err != nil {
		return nil, dbError("get reconciliation", err)
	}
	var r cases.Reconciliation
	if err := json.Unmarshal(doc, &r); err != nil {
		return nil, fmt.Errorf("postgres: decode reconciliation: %w", err)
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
		return fmt.Errorf("postgres: encode reconciliation: %w", err)
	}
	if r.Version == 0 {
		_, err = t.tx.Exec(ctx, `INSERT INTO odr_reconciliations
			(case_id, enterprise_code, status, open, started_at, version, doc) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			r.CaseID, r.EnterpriseCode, r.Status, r.Open(), r.StartedAt, next.Version, doc)
		if err != nil {
			return constraintError("insert reconciliation", err, "the case already has a reconciliation", "case not found")
		}
	} else {
		tag, err := t.tx.Exec(ctx, `UPDATE odr_reconciliations SET
			enterprise_code = $1, status = $2, open = $3, started_at = $4, version = $5, doc = $6
			WHERE case_id = $7 AND version = $8`,
			r.EnterpriseCode, r.Status, r.Open(), r.StartedAt, next.Version, doc, r.CaseID, r.Version)
		if err != nil {
			return dbError("update reconciliation", err)
		}
		if tag.RowsAffected() == 0 {
			return cases.Errorf(cases.ECONFLICT, "the reconciliation was changed by someone else; reload it and try again")
		}
	}
	r.Version = next.Version
	return nil
}

// Reconciliations lists the records that match f by StartedAt, then
// CaseID.
func (t *tx) Reconciliations(ctx context.Context, f cases.ReconciliationFilter) ([]cases.Reconciliation, error) {
	var w where
	if f.EnterpriseCode != "" {
		w.add("enterprise_code = ?", f.EnterpriseCode)
	}
	if f.Open {
		w.add("open")
	}
	if !f.StartedFrom.IsZero() {
		w.add("started_at >= ?", f.StartedFrom)
	}
	if !f.StartedBefore.IsZero() {
		w.add("started_at < ?", f.StartedBefore)
	}
	if f.AfterCaseID != "" {
		w.add("(started_at, case_id) > (?, ?)", f.AfterStartedAt, f.AfterCaseID)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	query := `SELECT version, doc FROM odr_reconciliations` + w.String() + " ORDER BY started_at, case_id LIMIT " + w.next(limit)
	rows, err := t.tx.Query(ctx, query, w.args...)
	if err != nil {
		return nil, dbError("list reconciliations", err)
	}
	defer rows.Close()
	list := []cases.Reconciliation{}
	for rows.Next() {
		var version int64
		var doc []byte
		if err := rows.Scan(&version, &doc); err != nil {
			return nil, dbError("list reconciliations", err)
		}
		var r cases.Reconciliation
		if err := json.Unmarshal(doc, &r); err != nil {
			return nil, fmt.Errorf("postgres: decode reconciliation: %w", err)
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
		return fmt.Errorf("postgres: encode dispatch route: %w", err)
	}
	_, err = t.tx.Exec(ctx, `INSERT INTO odr_routes (id, category, district, institution_id, doc)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (id) DO UPDATE SET category = excluded.category, district = excluded.district,
			institution_id = excluded.institution_id, doc = excluded.doc`,
		r.ID, r.Category, r.District, r.InstitutionID, doc)
	if err != nil {
		return constraintError("put dispatch route", err, "", "institution not found")
	}
	return nil
}

// DeleteDispatchRoute removes a dispatch route.
func (t *tx) DeleteDispatchRoute(ctx context.Context, id string) error {
	return t.deleteRow(ctx, "dispatch route", `DELETE FROM odr_routes WHERE id = $1`, id)
}

// deleteRow runs a DELETE of one row; none is ENOTFOUND.
func (t *tx) deleteRow(ctx context.Context, what, query string, args ...any) error {
	if err := t.writable("delete " + what); err != nil {
		return err
	}
	tag, err := t.tx.Exec(ctx, query, args...)
	if err != nil {
		return dbError("delete "+what, err)
	}
	if tag.RowsAffected() == 0 {
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
		return fmt.Errorf("postgres: encode shift: %w", err)
	}
	_, err = t.tx.Exec(ctx, `INSERT INTO mediator_shifts (id, mediator_id, institution_id, starts_at, ends_at, doc)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (id) DO UPDATE SET mediator_id = excluded.mediator_id, institution_id = excluded.institution_id,
			starts_at = excluded.starts_at, ends_at = excluded.ends_at, doc = excluded.doc`,
		s.ID, s.MediatorID, s.InstitutionID, s.StartsAt, s.EndsAt, doc)
	if err != nil {
		return constraintError("put shift", err, "", "mediator not found")
	}
	return nil
}

// DeleteShift removes a shift.
func (t *tx) DeleteShift(ctx context.Context, id string) error {
	return t.deleteRow(ctx, "shift", `DELETE FROM mediator_shifts WHERE id = $1`, id)
}

// Shifts lists the shifts that match f by StartsAt, then ID.
func (t *tx) Shifts(ctx context.Context, f cases.ShiftFilter) ([]cases.Shift, error) {
	var w where
	if f.InstitutionID != "" {
		w.add("institution_id = ?", f.InstitutionID)
	}
	if f.MediatorID != "" {
		w.add("mediator_id = ?", f.MediatorID)
	}
	if !f.From.IsZero() {
		w.add("ends_at > ?", f.From)
	}
	if !f.To.IsZero() {
		w.add("starts_at < ?", f.To)
	}
	return listDocs[cases.Shift](ctx, t, "list shifts", `SELECT doc FROM mediator_shifts`+w.String()+" ORDER BY starts_at, id", w.args...)
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
		return fmt.Errorf("postgres: encode reminder: %w", err)
	}
	_, err = t.tx.Exec(ctx, `INSERT INTO session_reminders (id, session_id, status, due_at, doc)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (id) DO UPDATE SET session_id = excluded.session_id, status = excluded.status,
			due_at = excluded.due_at, doc = excluded.doc`,
		r.ID, r.SessionID, r.Status, r.DueAt, doc)
	if err != nil {
		return constraintError("put reminder", err, "", "session not found")
	}
	return nil
}

// Reminders lists the reminders that match f by DueAt, then ID.
func (t *tx) Reminders(ctx context.Context, f cases.ReminderFilter) ([]cases.Reminder, error) {
	var w where
	if f.SessionID != "" {
		w.add("session_id = ?", f.SessionID)
	}
	if f.Pending {
		w.add("status = 'pending'")
	}
	if !f.DueBy.IsZero() {
		w.add("due_at <= ?", f.DueBy)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	query := `SELECT doc FROM session_reminders` + w.String() + " ORDER BY due_at, id LIMIT " + w.next(limit)
	return listDocs[cases.Reminder](ctx, t, "list reminders", query, w.args...)
}

package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/concord-odr/concord/cases"
	"github.com/concord-odr/concord/cases/storetime"
)

// Institutions lists every institution by code, then id.
func (t *tx) Institutions(ctx context.Context) ([]cases.Institution, error) {
	return listDocs[cases.Institution](ctx, t, "list institutions",
		`SELECT doc FROM institutions ORDER BY code, id`)
}

// listDocs decodes the doc column of every row of a query.
func listDocs[T any](ctx context.Context, t *tx, op, query string, args ...any) ([]T, error) {
	rows, err := t.tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, dbError(op, err)
	}
	defer rows.Close()
	list := []T{}
	for rows.Next() {
		var doc string
		if err := rows.Scan(&doc); err != nil {
			return nil, dbError(op, err)
		}
		var v T
		if err := json.Unmarshal([]byte(doc), &v); err != nil {
			return nil, fmt.Errorf("sqlite: %s: decode: %w", op, err)
		}
		list = append(list, v)
	}
	if err := rows.Err(); err != nil {
		return nil, dbError(op, err)
	}
	return list, nil
}

// getDoc decodes the doc column of the one row of a query into v.
func getDoc(ctx context.Context, t *tx, what string, v any, query string, args ...any) error {
	var doc string
	err := t.tx.QueryRowContext(ctx, query, args...).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return cases.Errorf(cases.ENOTFOUND, "%s not found", what)
	}
	if err != nil {
		return dbError("get "+what, err)
	}
	if err := json.Unmarshal([]byte(doc), v); err != nil {
		return fmt.Errorf("sqlite: decode %s: %w", what, err)
	}
	return nil
}

// Mediator returns the mediator with the given id.
func (t *tx) Mediator(ctx context.Context, id string) (*cases.Mediator, error) {
	var m cases.Mediator
	if err := getDoc(ctx, t, "mediator", &m, `SELECT doc FROM mediators WHERE id = ?`, id); err != nil {
		return nil, err
	}
	return &m, nil
}

// PutMediator inserts or replaces a mediator. Its institution must exist.
func (t *tx) PutMediator(ctx context.Context, m *cases.Mediator) error {
	if err := t.writable("put mediator"); err != nil {
		return err
	}
	if m.ID == "" || m.InstitutionID == "" {
		return cases.Errorf(cases.EINVALID, "mediator id and institution id are required")
	}
	storetime.Mediator(m)
	doc, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("sqlite: encode mediator: %w", err)
	}
	_, err = t.tx.ExecContext(ctx, `INSERT INTO mediators (id, institution_id, name, status, created_at, doc)
		VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET institution_id = excluded.institution_id, name = excluded.name,
			status = excluded.status, created_at = excluded.created_at, doc = excluded.doc`,
		m.ID, m.InstitutionID, m.Name, m.Status, micros(m.CreatedAt), string(doc))
	if isForeignKey(err) {
		return fmt.Errorf("sqlite: put mediator: %w: %w", cases.Errorf(cases.ENOTFOUND, "institution not found"), err)
	}
	if err != nil {
		return dbError("put mediator", err)
	}
	return nil
}

// Mediators lists an institution's mediators by name, then id.
func (t *tx) Mediators(ctx context.Context, institutionID string) ([]cases.Mediator, error) {
	return listDocs[cases.Mediator](ctx, t, "list mediators",
		`SELECT doc FROM mediators WHERE institution_id = ? ORDER BY name, id`, institutionID)
}

// Enterprise returns the enterprise with the given credit code.
func (t *tx) Enterprise(ctx context.Context, creditCode string) (*cases.Enterprise, error) {
	var e cases.Enterprise
	if err := getDoc(ctx, t, "enterprise", &e, `SELECT doc FROM enterprises WHERE credit_code = ?`, creditCode); err != nil {
		return nil, err
	}
	return &e, nil
}

// PutEnterprise inserts or replaces an enterprise.
func (t *tx) PutEnterprise(ctx context.Context, e *cases.Enterprise) error {
	if err := t.writable("put enterprise"); err != nil {
		return err
	}
	if e.CreditCode == "" {
		return cases.Errorf(cases.EINVALID, "enterprise credit code is required")
	}
	storetime.Enterprise(e)
	doc, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("sqlite: encode enterprise: %w", err)
	}
	_, err = t.tx.ExecContext(ctx, `INSERT INTO enterprises (credit_code, name, status, created_at, updated_at, doc)
		VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (credit_code) DO UPDATE SET name = excluded.name, status = excluded.status,
			created_at = excluded.created_at, updated_at = excluded.updated_at, doc = excluded.doc`,
		e.CreditCode, e.Name, e.Status, micros(e.CreatedAt), micros(e.UpdatedAt), string(doc))
	if err != nil {
		return dbError("put enterprise", err)
	}
	return nil
}

// ListCases lists the cases that match f by creation time, then id.
func (t *tx) ListCases(ctx context.Context, f cases.CaseFilter) ([]cases.Case, error) {
	var where []string
	var args []any
	add := func(cond string, vs ...any) {
		where = append(where, cond)
		args = append(args, vs...)
	}
	if f.State != "" {
		add("state = ?", string(f.State))
	}
	if f.InstitutionID != "" {
		add("institution_id = ?", f.InstitutionID)
	}
	if f.InstitutionIDs != nil {
		if len(f.InstitutionIDs) == 0 {
			add("0 = 1")
		} else {
			ids := make([]any, len(f.InstitutionIDs))
			for i, id := range f.InstitutionIDs {
				ids[i] = id
			}
			add("institution_id IN ("+strings.TrimSuffix(strings.Repeat("?, ", len(ids)), ", ")+")", ids...)
		}
	}
	if f.RespondentCreditCode != "" {
		add("respondent_credit_code = ?", f.RespondentCreditCode)
	}
	if f.Category != "" {
		add("category = ?", f.Category)
	}
	if !f.DueBy.IsZero() {
		add("due_at IS NOT NULL AND due_at <= ?", micros(f.DueBy))
	}
	if !f.CreatedFrom.IsZero() {
		add("created_at >= ?", micros(f.CreatedFrom))
	}
	if !f.CreatedBefore.IsZero() {
		add("created_at < ?", micros(f.CreatedBefore))
	}
	if f.AfterID != "" {
		add("(created_at, id) > (?, ?)", micros(f.AfterCreatedAt), f.AfterID)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	query := `SELECT version, doc FROM cases`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY created_at, id LIMIT ?"
	args = append(args, limit)
	rows, err := t.tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, dbError("list cases", err)
	}
	defer rows.Close()
	list := []cases.Case{}
	for rows.Next() {
		var version int64
		var doc string
		if err := rows.Scan(&version, &doc); err != nil {
			return nil, dbError("list cases", err)
		}
		var c cases.Case
		if err := json.Unmarshal([]byte(doc), &c); err != nil {
			return nil, fmt.Errorf("sqlite: decode case: %w", err)
		}
		c.Version = version
		list = append(list, c)
	}
	if err := rows.Err(); err != nil {
		return nil, dbError("list cases", err)
	}
	return list, nil
}

// Idempotency returns the record of an idempotency key.
func (t *tx) Idempotency(ctx context.Context, scope, key string) (*cases.IdempotencyRecord, error) {
	r := cases.IdempotencyRecord{Scope: scope, Key: key}
	var response string
	var created int64
	err := t.tx.QueryRowContext(ctx, `SELECT request_hash, case_id, status, response, created_at
		FROM idempotency_keys WHERE scope = ? AND key = ?`, scope, key).
		Scan(&r.RequestHash, &r.CaseID, &r.Status, &response, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, cases.Errorf(cases.ENOTFOUND, "idempotency key not found")
	}
	if err != nil {
		return nil, dbError("get idempotency key", err)
	}
	r.Response = json.RawMessage(response)
	r.CreatedAt = time.UnixMicro(created).UTC()
	return &r, nil
}

// PutIdempotency records a key; a second record of it is ECONFLICT.
func (t *tx) PutIdempotency(ctx context.Context, r *cases.IdempotencyRecord) error {
	if err := t.writable("put idempotency key"); err != nil {
		return err
	}
	if r.Scope == "" || r.Key == "" {
		return cases.Errorf(cases.EINVALID, "an idempotency record needs a scope and a key")
	}
	r.CreatedAt = storetime.UTC(r.CreatedAt)
	_, err := t.tx.ExecContext(ctx, `INSERT INTO idempotency_keys
		(scope, key, request_hash, case_id, status, response, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		r.Scope, r.Key, r.RequestHash, r.CaseID, r.Status, string(r.Response), micros(r.CreatedAt))
	if isUnique(err) {
		return fmt.Errorf("sqlite: put idempotency key: %w: %w", cases.Errorf(cases.ECONFLICT, "this idempotency key was used by a concurrent request"), err)
	}
	if err != nil {
		return dbError("put idempotency key", err)
	}
	return nil
}

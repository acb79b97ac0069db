package postgres

import (
	"context"
	"errors"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/concord-odr/concord/cases"
	"github.com/concord-odr/concord/cases/storetime"
	"github.com/jackc/pgx/v5"
)

// Safe messages of the identity tables' conflicts.
const (
	msgLoginTaken     = "an account with this login already exists"
	msgAccountChanged = "the account was changed by someone else; reload it and try again"
	msgLinkExists     = "a join link with this id or code already exists"
)

// utcOf returns a nullable column's time in UTC.
func utcOf(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

const accountColumns = `id, login, name, role, institution_id, enterprise_code, status, password_hash,
	token_version, password_changed_at, version, created_at, updated_at, mediator_id`

func scanAccount(row pgx.Row) (*cases.Account, error) {
	var a cases.Account
	var role string
	err := row.Scan(&a.ID, &a.Login, &a.Name, &role, &a.InstitutionID, &a.EnterpriseCode, &a.Status,
		&a.PasswordHash, &a.TokenVersion, &a.PasswordChangedAt, &a.Version, &a.CreatedAt, &a.UpdatedAt, &a.MediatorID)
	if err != nil {
		return nil, err
	}
	a.Role = cases.StaffRole(role)
	a.PasswordChangedAt, a.CreatedAt, a.UpdatedAt = a.PasswordChangedAt.UTC(), a.CreatedAt.UTC(), a.UpdatedAt.UTC()
	return &a, nil
}

func (t *tx) getAccount(ctx context.Context, where string, arg any) (*cases.Account, error) {
	a, err := scanAccount(t.tx.QueryRow(ctx, `SELECT `+accountColumns+` FROM staff_accounts WHERE `+where+t.lock(), arg))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, cases.Errorf(cases.ENOTFOUND, "account not found")
	}
	if err != nil {
		return nil, dbError("get account", err)
	}
	return a, nil
}

// Account returns a staff account by id, locking it in an Update.
func (t *tx) Account(ctx context.Context, id string) (*cases.Account, error) {
	return t.getAccount(ctx, "id = $1", id)
}

// AccountByLogin returns a staff account by login, locking it in an
// Update.
func (t *tx) AccountByLogin(ctx context.Context, login string) (*cases.Account, error) {
	return t.getAccount(ctx, "login = $1", login)
}

// PutAccount inserts a when its Version is 0, and otherwise updates it if
// the stored row still has that version.
func (t *tx) PutAccount(ctx context.Context, a *cases.Account) error {
	if err := t.writable("put account"); err != nil {
		return err
	}
	if a.ID == "" || a.Login == "" {
		return cases.Errorf(cases.EINVALID, "account id and login are required")
	}
	if a.Version < 0 {
		return cases.Errorf(cases.EINVALID, "account version must not be negative")
	}
	a.PasswordChangedAt, a.CreatedAt, a.UpdatedAt = storetime.UTC(a.PasswordChangedAt), storetime.UTC(a.CreatedAt), storetime.UTC(a.UpdatedAt)
	args := []any{a.Login, a.Name, string(a.Role), a.InstitutionID, a.EnterpriseCode, a.Status, a.PasswordHash,
		a.TokenVersion, a.PasswordChangedAt, a.Version + 1, a.CreatedAt, a.UpdatedAt, a.ID, a.MediatorID}
	if a.Version == 0 {
		_, err := t.tx.Exec(ctx, `INSERT INTO staff_accounts
			(login, name, role, institution_id, enterprise_code, status, password_hash,
			 token_version, password_changed_at, version, created_at, updated_at, id, mediator_id)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`, args...)
		if err != nil {
			return constraintError("insert account", err, msgLoginTaken, "")
		}
	} else {
		tag, err := t.tx.Exec(ctx, `UPDATE staff_accounts SET
			login = $1, name = $2, role = $3, institution_id = $4, enterprise_code = $5, status = $6,
			password_hash = $7, token_version = $8, password_changed_at = $9, version = $10,
			created_at = $11, updated_at = $12, mediator_id = $14
			WHERE id = $13 AND version = $15`, append(args, a.Version)...)
		if err != nil {
			return constraintError("update account", err, msgLoginTaken, "")
		}
		if tag.RowsAffected() == 0 {
			return cases.Errorf(cases.ECONFLICT, msgAccountChanged)
		}
	}
	a.Version++
	return nil
}

// Accounts lists the accounts that match f by login.
func (t *tx) Accounts(ctx context.Context, f cases.AccountFilter) ([]cases.Account, error) {
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if f.InstitutionIDs != nil {
		where = append(where, "institution_id = ANY("+arg(append([]string{}, f.InstitutionIDs...))+"::text[])")
	}
	if f.Role != "" {
		where = append(where, "role = "+arg(string(f.Role)))
	}
	if f.EnterpriseCode != "" {
		where = append(where, "enterprise_code = "+arg(f.EnterpriseCode))
	}
	query := `SELECT ` + accountColumns + ` FROM staff_accounts`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	rows, err := t.tx.Query(ctx, query+" ORDER BY login", args...)
	if err != nil {
		return nil, dbError("list accounts", err)
	}
	defer rows.Close()
	list := []cases.Account{}
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			return nil, dbError("list accounts", err)
		}
		list = append(list, *a)
	}
	if err := rows.Err(); err != nil {
		return nil, dbError("list accounts", err)
	}
	return list, nil
}

// StaffSession returns a login session by id, locking it in an Update.
func (t *tx) StaffSession(ctx context.Context, id string) (*cases.StaffSession, error) {
	var s cases.StaffSession
	err := t.tx.QueryRow(ctx, `SELECT id, account_id, created_at, last_used_at, expires_at, revoked_at, revoke_reason
		FROM staff_sessions WHERE id = $1`+t.lock(), id).
		Scan(&s.ID, &s.AccountID, &s.CreatedAt, &s.LastUsedAt, &s.ExpiresAt, &s.RevokedAt, &s.RevokeReason)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, cases.Errorf(cases.ENOTFOUND, "session not found")
	}
	if err != nil {
		return nil, dbError("get staff session", err)
	}
	s.CreatedAt, s.LastUsedAt, s.ExpiresAt, s.RevokedAt = s.CreatedAt.UTC(), s.LastUsedAt.UTC(), s.ExpiresAt.UTC(), utcOf(s.RevokedAt)
	return &s, nil
}

// PutStaffSession inserts or replaces a login session.
func (t *tx) PutStaffSession(ctx context.Context, s *cases.StaffSession) error {
	if err := t.writable("put staff session"); err != nil {
		return err
	}
	if s.ID == "" || s.AccountID == "" {
		return cases.Errorf(cases.EINVALID, "session id and account id are required")
	}
	s.CreatedAt, s.LastUsedAt, s.ExpiresAt, s.RevokedAt = storetime.UTC(s.CreatedAt), storetime.UTC(s.LastUsedAt), storetime.UTC(s.ExpiresAt), storetime.UTCPtr(s.RevokedAt)
	_, err := t.tx.Exec(ctx, `INSERT INTO staff_sessions
		(id, account_id, created_at, last_used_at, expires_at, revoked_at, revoke_reason)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (id) DO UPDATE SET
			account_id = excluded.account_id, created_at = excluded.created_at,
			last_used_at = excluded.last_used_at, expires_at = excluded.expires_at,
			revoked_at = excluded.revoked_at, revoke_reason = excluded.revoke_reason`,
		s.ID, s.AccountID, s.CreatedAt, s.LastUsedAt, s.ExpiresAt, s.RevokedAt, s.RevokeReason)
	if err != nil {
		return constraintError("put staff session", err, "", "account not found")
	}
	return nil
}

// RevokeStaffSessions revokes every open session of an account.
func (t *tx) RevokeStaffSessions(ctx context.Context, accountID, reason string, at time.Time) (int, error) {
	if err := t.writable("revoke staff sessions"); err != nil {
		return 0, err
	}
	tag, err := t.tx.Exec(ctx, `UPDATE staff_sessions SET revoked_at = $1, revoke_reason = $2
		WHERE account_id = $3 AND revoked_at IS NULL`, storetime.UTC(at), reason, accountID)
	if err != nil {
		return 0, dbError("revoke staff sessions", err)
	}
	return int(tag.RowsAffected()), nil
}

// RefreshToken returns a refresh token by hash, locking it in an Update.
func (t *tx) RefreshToken(ctx context.Context, hash string) (*cases.RefreshToken, error) {
	var r cases.RefreshToken
	err := t.tx.QueryRow(ctx, `SELECT hash, session_id, created_at, expires_at, rotated_at
		FROM refresh_tokens WHERE hash = $1`+t.lock(), hash).Scan(&r.Hash, &r.SessionID, &r.CreatedAt, &r.ExpiresAt, &r.RotatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, cases.Errorf(cases.ENOTFOUND, "refresh token not found")
	}
	if err != nil {
		return nil, dbError("get refresh token", err)
	}
	r.CreatedAt, r.ExpiresAt, r.RotatedAt = r.CreatedAt.UTC(), r.ExpiresAt.UTC(), utcOf(r.RotatedAt)
	return &r, nil
}

// PutRefreshToken inserts or replaces a refresh token.
func (t *tx) PutRefreshToken(ctx context.Context, r *cases.RefreshToken) error {
	if err := t.writable("put refresh token"); err != nil {
		return err
	}
	if r.Hash == "" || r.SessionID == "" {
		return cases.Errorf(cases.EINVALID, "refresh token hash and session id are required")
	}
	r.CreatedAt, r.ExpiresAt, r.RotatedAt = storetime.UTC(r.CreatedAt), storetime.UTC(r.ExpiresAt), storetime.UTCPtr(r.RotatedAt)
	_, err := t.tx.Exec(ctx, `INSERT INTO refresh_tokens (hash, session_id, created_at, expires_at, rotated_at)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (hash) DO UPDATE SET session_id = excluded.session_id, created_at = excluded.created_at,
			expires_at = excluded.expires_at, rotated_at = excluded.rotated_at`,
		r.Hash, r.SessionID, r.CreatedAt, r.ExpiresAt, r.RotatedAt)
	if err != nil {
		return constraintError("put refresh token", err, "", "session not found")
	}
	return nil
}

const joinLinkColumns = `id, code_hash, case_id, session_id, participant_id, created_by, created_at, expires_at`

func scanJoinLink(row pgx.Row) (*cases.JoinLink, error) {
	var l cases.JoinLink
	if err := row.Scan(&l.ID, &l.CodeHash, &l.CaseID, &l.SessionID, &l.ParticipantID, &l.CreatedBy, &l.CreatedAt, &l.ExpiresAt); err != nil {
		return nil, err
	}
	l.CreatedAt, l.ExpiresAt = l.CreatedAt.UTC(), l.ExpiresAt.UTC()
	return &l, nil
}

// JoinLinkByCode returns the short link with the given code hash.
func (t *tx) JoinLinkByCode(ctx context.Context, codeHash string) (*cases.JoinLink, error) {
	l, err := scanJoinLink(t.tx.QueryRow(ctx, `SELECT `+joinLinkColumns+` FROM join_links WHERE code_hash = $1`, codeHash))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, cases.Errorf(cases.ENOTFOUND, "join link not found")
	}
	if err != nil {
		return nil, dbError("get join link", err)
	}
	return l, nil
}

// PutJoinLink inserts a short link.
func (t *tx) PutJoinLink(ctx context.Context, l *cases.JoinLink) error {
	if err := t.writable("put join link"); err != nil {
		return err
	}
	if l.ID == "" || l.CodeHash == "" || l.SessionID == "" || l.CaseID == "" || l.ParticipantID == "" {
		return cases.Errorf(cases.EINVALID, "a join link needs an id, a code, a case, a session and a participant")
	}
	l.CreatedAt, l.ExpiresAt = storetime.UTC(l.CreatedAt), storetime.UTC(l.ExpiresAt)
	_, err := t.tx.Exec(ctx, `INSERT INTO join_links (`+joinLinkColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		l.ID, l.CodeHash, l.CaseID, l.SessionID, l.ParticipantID, l.CreatedBy, l.CreatedAt, l.ExpiresAt)
	if err != nil {
		return constraintError("put join link", err, msgLinkExists, "session not found")
	}
	return nil
}

// JoinLinks lists a session's short links, oldest first.
func (t *tx) JoinLinks(ctx context.Context, sessionID string) ([]cases.JoinLink, error) {
	rows, err := t.tx.Query(ctx, `SELECT `+joinLinkColumns+` FROM join_links
		WHERE session_id = $1 ORDER BY created_at, id`, sessionID)
	if err != nil {
		return nil, dbError("list join links", err)
	}
	defer rows.Close()
	list := []cases.JoinLink{}
	for rows.Next() {
		l, err := scanJoinLink(rows)
		if err != nil {
			return nil, dbError("list join links", err)
		}
		list = append(list, *l)
	}
	if err := rows.Err(); err != nil {
		return nil, dbError("list join links", err)
	}
	return list, nil
}

// PutRevocation records a revocation unless one with its key exists, in
// which case r is filled from the one recorded.
func (t *tx) PutRevocation(ctx context.Context, r *cases.Revocation) error {
	if err := t.writable("put revocation"); err != nil {
		return err
	}
	if r.Key == "" {
		r.Key = cases.RevocationKey(r.Kind, r.JTI, r.SessionID, r.ParticipantID)
	}
	if r.Key == "" {
		return cases.Errorf(cases.EINVALID, "unknown revocation kind %q", r.Kind)
	}
	r.RevokedAt = storetime.UTC(r.RevokedAt)
	_, err := t.tx.Exec(ctx, `INSERT INTO revocations
		(key, kind, jti, case_id, session_id, participant_id, reason, actor, revoked_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (key) DO NOTHING`,
		r.Key, r.Kind, r.JTI, r.CaseID, r.SessionID, r.ParticipantID, r.Reason, r.Actor, r.RevokedAt)
	if err != nil {
		return dbError("put revocation", err)
	}
	got, err := t.revocation(ctx, `key = $1`, r.Key)
	if err != nil {
		return err
	}
	*r = *got
	return nil
}

// Revocation returns a revocation covering the token, its participant or
// its session.
func (t *tx) Revocation(ctx context.Context, jti, sessionID, participantID string) (*cases.Revocation, error) {
	return t.revocation(ctx, `key IN ($1, $2, $3) ORDER BY revoked_at, key LIMIT 1`,
		cases.RevocationKey(cases.RevokeToken, jti, "", ""),
		cases.RevocationKey(cases.RevokeParticipant, "", sessionID, participantID),
		cases.RevocationKey(cases.RevokeSession, "", sessionID, ""))
}

func (t *tx) revocation(ctx context.Context, where string, args ...any) (*cases.Revocation, error) {
	var r cases.Revocation
	err := t.tx.QueryRow(ctx, `SELECT key, kind, jti, case_id, session_id, participant_id, reason, actor, revoked_at
		FROM revocations WHERE `+where, args...).Scan(&r.Key, &r.Kind, &r.JTI, &r.CaseID, &r.SessionID, &r.ParticipantID, &r.Reason, &r.Actor, &r.RevokedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, cases.Errorf(cases.ENOTFOUND, "not revoked")
	}
	if err != nil {
		return nil, dbError("get revocation", err)
	}
	r.RevokedAt = r.RevokedAt.UTC()
	return &r, nil
}

const outboxColumns = `id, channel, recipient, body, case_id, status, attempts, next_attempt_at, last_error, created_at, sent_at`

func scanOutbox(row pgx.Row) (*cases.OutboxMessage, error) {
	var m cases.OutboxMessage
	if err := row.Scan(&m.ID, &m.Channel, &m.To, &m.Text, &m.CaseID, &m.Status, &m.Attempts, &m.NextAttemptAt,
		&m.LastError, &m.CreatedAt, &m.SentAt); err != nil {
		return nil, err
	}
	m.NextAttemptAt, m.CreatedAt, m.SentAt = m.NextAttemptAt.UTC(), m.CreatedAt.UTC(), utcOf(m.SentAt)
	return &m, nil
}

// PutOutbox inserts or replaces an outbox message.
func (t *tx) PutOutbox(ctx context.Context, m *cases.OutboxMessage) error {
	if err := t.writable("put outbox message"); err != nil {
		return err
	}
	if m.ID == "" || m.Channel == "" || m.Status == "" {
		return cases.Errorf(cases.EINVALID, "an outbox message needs an id, a channel and a status")
	}
	m.NextAttemptAt, m.CreatedAt, m.SentAt = storetime.UTC(m.NextAttemptAt), storetime.UTC(m.CreatedAt), storetime.UTCPtr(m.SentAt)
	_, err := t.tx.Exec(ctx, `INSERT INTO outbox (`+outboxColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
		ON CONFLICT (id) DO UPDATE SET channel = excluded.channel, recipient = excluded.recipient,
			body = excluded.body, case_id = excluded.case_id, status = excluded.status,
			attempts = excluded.attempts, next_attempt_at = excluded.next_attempt_at,
			last_error = excluded.last_error, created_at = excluded.created_at, sent_at = excluded.sent_at`,
		m.ID, m.Channel, m.To, m.Text, m.CaseID, m.Status, m.Attempts, m.NextAttemptAt, m.LastError, m.CreatedAt, m.SentAt)
	if err != nil {
		return dbError("put outbox message", err)
	}
	return nil
}

// OutboxMessage returns an outbox message by id.
func (t *tx) OutboxMessage(ctx context.Context, id string) (*cases.OutboxMessage, error) {
	m, err := scanOutbox(t.tx.QueryRow(ctx, `SELECT `+outboxColumns+` FROM outbox WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, cases.Errorf(cases.ENOTFOUND, "message not found")
	}
	if err != nil {
		return nil, dbError("get outbox message", err)
	}
	return m, nil
}

// ClaimOutbox takes the pending messages due at now, skipping those that
// another node's transaction holds.
func (t *tx) ClaimOutbox(ctx context.Context, now, leaseUntil time.Time, limit int) ([]cases.OutboxMessage, error) {
	if err := t.writable("claim outbox"); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = 10
	}
	rows, err := t.tx.Query(ctx, `UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $1
		WHERE id IN (
			SELECT id FROM outbox WHERE status = $2 AND next_attempt_at <= $3
			ORDER BY next_attempt_at, created_at, id LIMIT $4
			FOR UPDATE SKIP LOCKED)
		RETURNING `+outboxColumns, storetime.UTC(leaseUntil), cases.OutboxPending, now, limit)
	if err != nil {
		return nil, dbError("claim outbox", err)
	}
	defer rows.Close()
	list := []cases.OutboxMessage{}
	for rows.Next() {
		m, err := scanOutbox(rows)
		if err != nil {
			return nil, dbError("claim outbox", err)
		}
		list = append(list, *m)
	}
	if err := rows.Err(); err != nil {
		return nil, dbError("claim outbox", err)
	}
	sort.Slice(list, func(i, j int) bool {
		if !list[i].CreatedAt.Equal(list[j].CreatedAt) {
			return list[i].CreatedAt.Before(list[j].CreatedAt)
		}
		return list[i].ID < list[j].ID
	})
	return list, nil
}

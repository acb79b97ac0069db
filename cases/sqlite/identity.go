package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/concord-odr/concord/cases"
	"github.com/concord-odr/concord/cases/storetime"
)

// Safe messages of the identity tables' conflicts.
const (
	msgLoginTaken     = "an account with this login already exists"
	msgAccountChanged = "the account was changed by someone else; reload it and try again"
	msgLinkExists     = "a join link with this id or code already exists"
)

// fromMicros is the inverse of micros.
func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }

// nullMicros returns NULL for a nil time.
func nullMicros(t *time.Time) any {
	if t == nil {
		return nil
	}
	return micros(*t)
}

// timePtr returns the time of a nullable column.
func timePtr(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromMicros(v.Int64)
	return &t
}

const accountColumns = `id, login, name, role, institution_id, enterprise_code, status, password_hash,
	token_version, password_changed_at, version, created_at, updated_at, mediator_id`

type scanner interface{ Scan(dest ...any) error }

func scanAccount(row scanner) (*cases.Account, error) {
	var a cases.Account
	var role string
	var changed, created, updated int64
	err := row.Scan(&a.ID, &a.Login, &a.Name, &role, &a.InstitutionID, &a.EnterpriseCode, &a.Status,
		&a.PasswordHash, &a.TokenVersion, &changed, &a.Version, &created, &updated, &a.MediatorID)
	if err != nil {
		return nil, err
	}
	a.Role = cases.StaffRole(role)
	a.PasswordChangedAt, a.CreatedAt, a.UpdatedAt = fromMicros(changed), fromMicros(created), fromMicros(updated)
	return &a, nil
}

func (t *tx) getAccount(ctx context.Context, where string, arg any) (*cases.Account, error) {
	a, err := scanAccount(t.tx.QueryRowContext(ctx, `SELECT `+accountColumns+` FROM staff_accounts WHERE `+where, arg))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, cases.Errorf(cases.ENOTFOUND, "account not found")
	}
	if err != nil {
		return nil, dbError("get account", err)
	}
	return a, nil
}

// Account returns a staff account by id.
func (t *tx) Account(ctx context.Context, id string) (*cases.Account, error) {
	return t.getAccount(ctx, "id = ?", id)
}

// AccountByLogin returns a staff account by login.
func (t *tx) AccountByLogin(ctx context.Context, login string) (*cases.Account, error) {
	return t.getAccount(ctx, "login = ?", login)
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
		a.TokenVersion, micros(a.PasswordChangedAt), a.Version + 1, micros(a.CreatedAt), micros(a.UpdatedAt), a.MediatorID, a.ID}
	var err error
	if a.Version == 0 {
		_, err = t.tx.ExecContext(ctx, `INSERT INTO staff_accounts
			(login, name, role, institution_id, enterprise_code, status, password_hash,
			 token_version, password_changed_at, version, created_at, updated_at, mediator_id, id)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, args...)
	} else {
		var res sql.Result
		res, err = t.tx.ExecContext(ctx, `UPDATE staff_accounts SET
			login = ?, name = ?, role = ?, institution_id = ?, enterprise_code = ?, status = ?, password_hash = ?,
			token_version = ?, password_changed_at = ?, version = ?, created_at = ?, updated_at = ?, mediator_id = ?
			WHERE id = ? AND version = ?`, append(args, a.Version)...)
		if err == nil {
			var n int64
			if n, err = res.RowsAffected(); err == nil && n == 0 {
				return cases.Errorf(cases.ECONFLICT, msgAccountChanged)
			}
		}
	}
	if isUnique(err) {
		return fmt.Errorf("sqlite: put account: %w: %w", cases.Errorf(cases.ECONFLICT, msgLoginTaken), err)
	}
	if err != nil {
		return dbError("put account", err)
	}
	a.Version++
	return nil
}

// Accounts lists the accounts that match f by login.
func (t *tx) Accounts(ctx context.Context, f cases.AccountFilter) ([]cases.Account, error) {
	var where []string
	var args []any
	if f.InstitutionIDs != nil {
		if len(f.InstitutionIDs) == 0 {
			where = append(where, "0 = 1")
		} else {
			where = append(where, "institution_id IN ("+strings.TrimSuffix(strings.Repeat("?, ", len(f.InstitutionIDs)), ", ")+")")
			for _, id := range f.InstitutionIDs {
				args = append(args, id)
			}
		}
	}
	if f.Role != "" {
		where = append(where, "role = ?")
		args = append(args, string(f.Role))
	}
	if f.EnterpriseCode != "" {
		where = append(where, "enterprise_code = ?")
		args = append(args, f.EnterpriseCode)
	}
	query := `SELECT ` + accountColumns + ` FROM staff_accounts`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	rows, err := t.tx.QueryContext(ctx, query+" ORDER BY login", args...)
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

// StaffSession returns a login session by id.
func (t *tx) StaffSession(ctx context.Context, id string) (*cases.StaffSession, error) {
	var s cases.StaffSession
	var created, used, expires int64
	var revoked sql.NullInt64
	err := t.tx.QueryRowContext(ctx, `SELECT id, account_id, created_at, last_used_at, expires_at, revoked_at, revoke_reason
		FROM staff_sessions WHERE id = ?`, id).Scan(&s.ID, &s.AccountID, &created, &used, &expires, &revoked, &s.RevokeReason)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, cases.Errorf(cases.ENOTFOUND, "session not found")
	}
	if err != nil {
		return nil, dbError("get staff session", err)
	}
	s.CreatedAt, s.LastUsedAt, s.ExpiresAt = fromMicros(created), fromMicros(used), fromMicros(expires)
	s.RevokedAt = timePtr(revoked)
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
	_, err := t.tx.ExecContext(ctx, `INSERT INTO staff_sessions
		(id, account_id, created_at, last_used_at, expires_at, revoked_at, revoke_reason)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET
			account_id = excluded.account_id, created_at = excluded.created_at,
			last_used_at = excluded.last_used_at, expires_at = excluded.expires_at,
			revoked_at = excluded.revoked_at, revoke_reason = excluded.revoke_reason`,
		s.ID, s.AccountID, micros(s.CreatedAt), micros(s.LastUsedAt), micros(s.ExpiresAt), nullMicros(s.RevokedAt), s.RevokeReason)
	if isForeignKey(err) {
		return fmt.Errorf("sqlite: put staff session: %w: %w", cases.Errorf(cases.ENOTFOUND, "account not found"), err)
	}
	if err != nil {
		return dbError("put staff session", err)
	}
	return nil
}

// RevokeStaffSessions revokes every open session of an account.
func (t *tx) RevokeStaffSessions(ctx context.Context, accountID, reason string, at time.Time) (int, error) {
	if err := t.writable("revoke staff sessions"); err != nil {
		return 0, err
	}
	res, err := t.tx.ExecContext(ctx, `UPDATE staff_sessions SET revoked_at = ?, revoke_reason = ?
		WHERE account_id = ? AND revoked_at IS NULL`, micros(storetime.UTC(at)), reason, accountID)
	if err != nil {
		return 0, dbError("revoke staff sessions", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, dbError("revoke staff sessions", err)
	}
	return int(n), nil
}

// RefreshToken returns a refresh token by the hash of its secret.
func (t *tx) RefreshToken(ctx context.Context, hash string) (*cases.RefreshToken, error) {
	var r cases.RefreshToken
	var created, expires int64
	var rotated sql.NullInt64
	err := t.tx.QueryRowContext(ctx, `SELECT hash, session_id, created_at, expires_at, rotated_at
		FROM refresh_tokens WHERE hash = ?`, hash).Scan(&r.Hash, &r.SessionID, &created, &expires, &rotated)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, cases.Errorf(cases.ENOTFOUND, "refresh token not found")
	}
	if err != nil {
		return nil, dbError("get refresh token", err)
	}
	r.CreatedAt, r.ExpiresAt, r.RotatedAt = fromMicros(created), fromMicros(expires), timePtr(rotated)
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
	_, err := t.tx.ExecContext(ctx, `INSERT INTO refresh_tokens (hash, session_id, created_at, expires_at, rotated_at)
		VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (hash) DO UPDATE SET session_id = excluded.session_id, created_at = excluded.created_at,
			expires_at = excluded.expires_at, rotated_at = excluded.rotated_at`,
		r.Hash, r.SessionID, micros(r.CreatedAt), micros(r.ExpiresAt), nullMicros(r.RotatedAt))
	if isForeignKey(err) {
		return fmt.Errorf("sqlite: put refresh token: %w: %w", cases.Errorf(cases.ENOTFOUND, "session not found"), err)
	}
	if err != nil {
		return dbError("put refresh token", err)
	}
	return nil
}

const joinLinkColumns = `id, code_hash, case_id, session_id, participant_id, created_by, created_at, expires_at`

func scanJoinLink(row scanner) (*cases.JoinLink, error) {
	var l cases.JoinLink
	var created, expires int64
	if err := row.Scan(&l.ID, &l.CodeHash, &l.CaseID, &l.SessionID, &l.ParticipantID, &l.CreatedBy, &created, &expires); err != nil {
		return nil, err
	}
	l.CreatedAt, l.ExpiresAt = fromMicros(created), fromMicros(expires)
	return &l, nil
}

// JoinLinkByCode returns the short link with the given code hash.
func (t *tx) JoinLinkByCode(ctx context.Context, codeHash string) (*cases.JoinLink, error) {
	l, err := scanJoinLink(t.tx.QueryRowContext(ctx, `SELECT `+joinLinkColumns+` FROM join_links WHERE code_hash = ?`, codeHash))
	if errors.Is(err, sql.ErrNoRows) {
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
	_, err := t.tx.ExecContext(ctx, `INSERT INTO join_links (`+joinLinkColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		l.ID, l.CodeHash, l.CaseID, l.SessionID, l.ParticipantID, l.CreatedBy, micros(l.CreatedAt), micros(l.ExpiresAt))
	switch {
	case isUnique(err):
		return fmt.Errorf("sqlite: put join link: %w: %w", cases.Errorf(cases.ECONFLICT, msgLinkExists), err)
	case isForeignKey(err):
		return fmt.Errorf("sqlite: put join link: %w: %w", cases.Errorf(cases.ENOTFOUND, "session not found"), err)
	case err != nil:
		return dbError("put join link", err)
	}
	return nil
}

// JoinLinks lists a session's short links, oldest first.
func (t *tx) JoinLinks(ctx context.Context, sessionID string) ([]cases.JoinLink, error) {
	rows, err := t.tx.QueryContext(ctx, `SELECT `+joinLinkColumns+` FROM join_links
		WHERE session_id = ? ORDER BY created_at, id`, sessionID)
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
	_, err := t.tx.ExecContext(ctx, `INSERT INTO revocations
		(key, kind, jti, case_id, session_id, participant_id, reason, actor, revoked_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING`,
		r.Key, r.Kind, r.JTI, r.CaseID, r.SessionID, r.ParticipantID, r.Reason, r.Actor, micros(r.RevokedAt))
	if err != nil {
		return dbError("put revocation", err)
	}
	got, err := t.revocation(ctx, `key = ?`, r.Key)
	if err != nil {
		return err
	}
	*r = *got
	return nil
}

// Revocation returns a revocation covering the token, its participant or
// its session.
func (t *tx) Revocation(ctx context.Context, jti, sessionID, participantID string) (*cases.Revocation, error) {
	keys := []any{
		cases.RevocationKey(cases.RevokeToken, jti, "", ""),
		cases.RevocationKey(cases.RevokeParticipant, "", sessionID, participantID),
		cases.RevocationKey(cases.RevokeSession, "", sessionID, ""),
	}
	return t.revocation(ctx, `key IN (?, ?, ?) ORDER BY revoked_at, key LIMIT 1`, keys...)
}

func (t *tx) revocation(ctx context.Context, where string, args ...any) (*cases.Revocation, error) {
	var r cases.Revocation
	var at int64
	err := t.tx.QueryRowContext(ctx, `SELECT key, kind, jti, case_id, session_id, participant_id, reason, actor, revoked_at
		FROM revocations WHERE `+where, args...).Scan(&r.Key, &r.Kind, &r.JTI, &r.CaseID, &r.SessionID, &r.ParticipantID, &r.Reason, &r.Actor, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, cases.Errorf(cases.ENOTFOUND, "not revoked")
	}
	if err != nil {
		return nil, dbError("get revocation", err)
	}
	r.RevokedAt = fromMicros(at)
	return &r, nil
}

const outboxColumns = `id, channel, recipient, body, case_id, status, attempts, next_attempt_at, last_error, created_at, sent_at`

func scanOutbox(row scanner) (*cases.OutboxMessage, error) {
	var m cases.OutboxMessage
	var next, created int64
	var sent sql.NullInt64
	if err := row.Scan(&m.ID, &m.Channel, &m.To, &m.Text, &m.CaseID, &m.Status, &m.Attempts, &next, &m.LastError, &created, &sent); err != nil {
		return nil, err
	}
	m.NextAttemptAt, m.CreatedAt, m.SentAt = fromMicros(next), fromMicros(created), timePtr(sent)
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
	_, err := t.tx.ExecContext(ctx, `INSERT INTO outbox (`+outboxColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET channel = excluded.channel, recipient = excluded.recipient,
			body = excluded.body, case_id = excluded.case_id, status = excluded.status,
			attempts = excluded.attempts, next_attempt_at = excluded.next_attempt_at,
			last_error = excluded.last_error, created_at = excluded.created_at, sent_at = excluded.sent_at`,
		m.ID, m.Channel, m.To, m.Text, m.CaseID, m.Status, m.Attempts, micros(m.NextAttemptAt), m.LastError,
		micros(m.CreatedAt), nullMicros(m.SentAt))
	if err != nil {
		return dbError("put outbox message", err)
	}
	return nil
}

// OutboxMessage returns an outbox message by id.
func (t *tx) OutboxMessage(ctx context.Context, id string) (*cases.OutboxMessage, error) {
	m, err := scanOutbox(t.tx.QueryRowContext(ctx, `SELECT `+outboxColumns+` FROM outbox WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, cases.Errorf(cases.ENOTFOUND, "message not found")
	}
	if err != nil {
		return nil, dbError("get outbox message", err)
	}
	return m, nil
}

// ClaimOutbox takes the pending messages due at now. Updates are
// serialised, so no other transaction can take the same ones.
func (t *tx) ClaimOutbox(ctx context.Context, now, leaseUntil time.Time, limit int) ([]cases.OutboxMessage, error) {
	if err := t.writable("claim outbox"); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = 10
	}
	rows, err := t.tx.QueryContext(ctx, `SELECT `+outboxColumns+` FROM outbox
		WHERE status = ? AND next_attempt_at <= ? ORDER BY next_attempt_at, created_at, id LIMIT ?`,
		cases.OutboxPending, micros(now), limit)
	if err != nil {
		return nil, dbError("claim outbox", err)
	}
	list := []cases.OutboxMessage{}
	for rows.Next() {
		m, err := scanOutbox(rows)
		if err != nil {
			rows.Close()
			return nil, dbError("claim outbox", err)
		}
		list = append(list, *m)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, dbError("claim outbox", err)
	}
	lease := storetime.UTC(leaseUntil)
	for i := range list {
		list[i].Attempts++
		list[i].NextAttemptAt = lease
		if _, err := t.tx.ExecContext(ctx, `UPDATE outbox SET attempts = ?, next_attempt_at = ? WHERE id = ?`,
			list[i].Attempts, micros(lease), list[i].ID); err != nil {
			return nil, dbError("claim outbox", err)
		}
	}
	return list, nil
}

package identity

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/concord-odr/concord/cases"
)

// msgBadCredentials is the one answer to a failed login, whatever failed:
// it says nothing of whether the login exists.
const msgBadCredentials = "the login or the password is wrong"

// Reasons a staff session was revoked.
const (
	ReasonLogout          = "logout"
	ReasonPasswordChanged = "password_changed"
	ReasonPasswordReset   = "password_reset"
	ReasonDisabled        = "account_disabled"
	ReasonReuse           = "refresh_token_reused"
)

var loginPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._@+-]{1,63}$`)

// NormalizeLogin returns the form a login is stored and looked up in.
func NormalizeLogin(login string) string { return strings.ToLower(strings.TrimSpace(login)) }

// NewAccount is what creating a staff account needs.
type NewAccount struct {
	Login          string
	Name           string
	Role           cases.StaffRole
	InstitutionID  string
	EnterpriseCode string
	// MediatorID links a mediator's account to its mediator record, of
	// the same institution (optional).
	MediatorID string
	Password   string
}

// CreateAccount creates a staff account bound as its role requires: an
// institution admin or a mediator to an institution that is not closed
// (a mediator optionally to its mediator record there too), a kiosk to a
// community station, a merchant agent to an enrolled ODR enterprise, a
// platform admin to nothing.
func (s *Service) CreateAccount(ctx context.Context, actor string, in NewAccount) (*cases.Account, error) {
	login := NormalizeLogin(in.Login)
	if !loginPattern.MatchString(login) {
		return nil, cases.FieldErrorf("login", "login must be 2 to 64 letters, digits or . _ @ + -, starting with a letter or digit")
	}
	if err := validName(in.Name); err != nil {
		return nil, err
	}
	if err := checkBinding(in.Role, in.InstitutionID, in.EnterpriseCode); err != nil {
		return nil, err
	}
	if in.MediatorID != "" && in.Role != cases.StaffMediator {
		return nil, cases.FieldErrorf("mediatorId", "only a mediator's account is linked to a mediator record")
	}
	if err := validPassword("password", in.Password, login); err != nil {
		return nil, err
	}
	hash, err := s.hasher.hash(ctx, in.Password)
	if err != nil {
		return nil, err
	}
	now := s.now().UTC()
	a := &cases.Account{
		ID: cases.NewID("acct_"), Login: login, Name: strings.TrimSpace(in.Name), Role: in.Role,
		InstitutionID: in.InstitutionID, EnterpriseCode: in.EnterpriseCode, MediatorID: in.MediatorID,
		Status: cases.AccountActive, PasswordHash: hash, TokenVersion: 1,
		PasswordChangedAt: now, CreatedAt: now, UpdatedAt: now,
	}
	err = s.store.Update(ctx, func(tx cases.Tx) error {
		if err := bindingExists(ctx, tx, a); err != nil {
			return err
		}
		return tx.PutAccount(ctx, a)
	})
	if err != nil {
		return nil, err
	}
	s.log.Info("staff account created", "account", a.ID, "role", a.Role, "institution", a.InstitutionID,
		"enterprise", a.EnterpriseCode, "actor", actor)
	return a, nil
}

func validName(name string) error {
	name = strings.TrimSpace(name)
	if name == "" {
		return cases.FieldErrorf("name", "name is required")
	}
	if !utf8.ValidString(name) || utf8.RuneCountInString(name) > 200 {
		return cases.FieldErrorf("name", "name must be valid text of at most 200 characters")
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return cases.FieldErrorf("name", "name contains a control character")
		}
	}
	return nil
}

// checkBinding checks that a role comes with exactly the binding it needs.
func checkBinding(role cases.StaffRole, institutionID, enterpriseCode string) error {
	switch role {
	case cases.StaffPlatformAdmin:
		if institutionID != "" || enterpriseCode != "" {
			return cases.FieldErrorf("institutionId", "a platform admin is bound to no institution or enterprise")
		}
	case cases.StaffInstitutionAdmin, cases.StaffMediator, cases.StaffKiosk:
		if institutionID == "" {
			return cases.FieldErrorf("institutionId", "an institution admin, a mediator or a kiosk needs an institutionId")
		}
		if enterpriseCode != "" {
			return cases.FieldErrorf("enterpriseCode", "an institution's staff is bound to no enterprise")
		}
	case cases.StaffMerchantAgent:
		if enterpriseCode == "" {
			return cases.FieldErrorf("enterpriseCode", "a merchant agent needs the enterpriseCode (credit code) of its ODR enterprise")
		}
		if institutionID != "" {
			return cases.FieldErrorf("institutionId", "a merchant agent is bound to no institution")
		}
	default:
		return cases.FieldErrorf("role", "role must be platform_admin, institution_admin, mediator, merchant_agent or kiosk")
	}
	return nil
}

// bindingExists checks that an account's institution or enterprise exists
// and takes staff.
func bindingExists(ctx context.Context, tx cases.Tx, a *cases.Account) error {
	if a.InstitutionID != "" {
		inst, err := tx.Institution(ctx, a.InstitutionID)
		if cases.ErrorCode(err) == cases.ENOTFOUND {
			return cases.FieldErrorf("institutionId", "institution %q does not exist", a.InstitutionID)
		}
		if err != nil {
			return err
		}
		if inst.Status == cases.InstitutionClosed {
			return cases.FieldErrorf("institutionId", "institution %s is closed", inst.Name)
		}
		if a.Role == cases.StaffKiosk && inst.Level != cases.LevelCommunity {
			return cases.FieldErrorf("institutionId", "a kiosk belongs to a community station; %s is at the %s level", inst.Name, inst.Level)
		}
	}
	if a.MediatorID != "" {
		m, err := tx.Mediator(ctx, a.MediatorID)
		if cases.ErrorCode(err) == cases.ENOTFOUND || err == nil && m.InstitutionID != a.InstitutionID {
			return cases.FieldErrorf("mediatorId", "institution %s has no mediator %q", a.InstitutionID, a.MediatorID)
		}
		if err != nil {
			return err
		}
	}
	if a.EnterpriseCode != "" {
		e, err := tx.Enterprise(ctx, a.EnterpriseCode)
		if cases.ErrorCode(err) == cases.ENOTFOUND {
			return cases.FieldErrorf("enterpriseCode", "no ODR enterprise has credit code %q", a.EnterpriseCode)
		}
		if err != nil {
			return err
		}
		if e.Status != cases.EnterpriseEnrolled {
			return cases.FieldErrorf("enterpriseCode", "enterprise %s is not enrolled", e.Name)
		}
	}
	return nil
}

// Account reads one account.
func (s *Service) Account(ctx context.Context, id string) (*cases.Account, error) {
	var a *cases.Account
	err := s.store.View(ctx, func(tx cases.Tx) error {
		var err error
		a, err = tx.Account(ctx, id)
		return err
	})
	return a, err
}

// Accounts lists the accounts that match f.
func (s *Service) Accounts(ctx context.Context, f cases.AccountFilter) ([]cases.Account, error) {
	var list []cases.Account
	err := s.store.View(ctx, func(tx cases.Tx) error {
		var err error
		list, err = tx.Accounts(ctx, f)
		return err
	})
	return list, err
}

// Login is a started or refreshed staff login.
type Login struct {
	Account *cases.Account
	// AccessToken goes in the Authorization header of API requests until
	// AccessExpiresAt.
	AccessToken     string
	AccessExpiresAt time.Time
	// RefreshToken goes in the refresh cookie; it is spent by the next
	// refresh.
	RefreshToken     string
	RefreshExpiresAt time.Time
	SessionID        string
	// IssuedAt is when the tokens were issued, by the service's clock.
	IssuedAt time.Time
}

// Login checks a login and password and starts a session. Any failure
// is the same EUNAUTHORIZED answer, after the same work.
func (s *Service) Login(ctx context.Context, login, password string) (*Login, error) {
	login = NormalizeLogin(login)
	var a *cases.Account
	err := s.store.View(ctx, func(tx cases.Tx) error {
		var err error
		a, err = tx.AccountByLogin(ctx, login)
		return err
	})
	if cases.ErrorCode(err) == cases.ENOTFOUND || len(login) > 64 {
		_, _, _ = s.hasher.check(ctx, s.hasher.dummy, password)
		return nil, errUnauthorized(msgBadCredentials)
	}
	if err != nil {
		return nil, err
	}
	ok, stale, err := s.hasher.check(ctx, a.PasswordHash, password)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		s.log.Error("stored password hash unusable", "account", a.ID, "err", err)
		return nil, errUnauthorized(msgBadCredentials)
	}
	if !ok {
		s.log.Info("login refused: wrong password", "account", a.ID)
		return nil, errUnauthorized(msgBadCredentials)
	}
	if a.Status != cases.AccountActive {
		s.log.Info("login refused: account disabled", "account", a.ID)
		return nil, errUnauthorized(msgBadCredentials)
	}
	var rehash string
	if stale {
		if rehash, err = s.hasher.hash(ctx, password); err != nil {
			return nil, err
		}
	}
	var l *Login
	err = s.store.Update(ctx, func(tx cases.Tx) error {
		acct, err := tx.Account(ctx, a.ID)
		if err != nil {
			return err
		}
		if acct.PasswordHash != a.PasswordHash || acct.Status != cases.AccountActive {
			// The password changed, or the account was disabled, meanwhile.
			return errUnauthorized(msgBadCredentials)
		}
		if rehash != "" {
			acct.PasswordHash = rehash
			acct.UpdatedAt = s.now().UTC()
			if err := tx.PutAccount(ctx, acct); err != nil {
				return err
			}
		}
		l, err = s.startSessionTx(ctx, tx, acct)
		return err
	})
	if err != nil {
		return nil, err
	}
	s.log.Info("staff login", "account", a.ID, "session", l.SessionID)
	return l, nil
}

// hashSecret is how refresh token secrets are kept.
func hashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// startSessionTx starts a login session for a with its first refresh
// token.
func (s *Service) startSessionTx(ctx context.Context, tx cases.Tx, a *cases.Account) (*Login, error) {
	now := s.now().UTC()
	sess := &cases.StaffSession{
		ID: cases.NewID("ss_"), AccountID: a.ID, CreatedAt: now, LastUsedAt: now, ExpiresAt: now.Add(s.p.SessionTTL),
	}
	if err := tx.PutStaffSession(ctx, sess); err != nil {
		return nil, err
	}
	return s.issueTx(ctx, tx, a, sess)
}

// issueTx issues a new refresh token of sess and an access token.
func (s *Service) issueTx(ctx context.Context, tx cases.Tx, a *cases.Account, sess *cases.StaffSession) (*Login, error) {
	now := s.now().UTC()
	secret := randomID(32)
	rt := &cases.RefreshToken{Hash: hashSecret(secret), SessionID: sess.ID, CreatedAt: now, ExpiresAt: now.Add(s.p.RefreshTTL)}
	if rt.ExpiresAt.After(sess.ExpiresAt) {
		rt.ExpiresAt = sess.ExpiresAt
	}
	if err := tx.PutRefreshToken(ctx, rt); err != nil {
		return nil, err
	}
	ttl := s.p.AccessTTL
	if left := sess.ExpiresAt.Sub(now); left < ttl {
		ttl = left
	}
	tok, exp, err := s.access.issue(AccessClaims{Role: a.Role, SessionID: sess.ID, TokenVersion: a.TokenVersion,
		RegisteredClaims: registered(a.ID)}, ttl)
	if err != nil {
		return nil, err
	}
	return &Login{Account: a, AccessToken: tok, AccessExpiresAt: exp, RefreshToken: secret,
		RefreshExpiresAt: rt.ExpiresAt, SessionID: sess.ID, IssuedAt: now}, nil
}

// Refresh spends a refresh token for a new access token and the next
// refresh token. A token presented again after it was spent is a reuse:
// someone holds a copy, so the whole session is revoked.
func (s *Service) Refresh(ctx context.Context, refreshToken string) (*Login, error) {
	if refreshToken == "" || len(refreshToken) > 256 {
		return nil, errUnauthorized("no valid refresh token")
	}
	var l *Login
	var reused *cases.StaffSession
	err := s.store.Update(ctx, func(tx cases.Tx) error {
		now := s.now().UTC()
		rt, err := tx.RefreshToken(ctx, hashSecret(refreshToken))
		if cases.ErrorCode(err) == cases.ENOTFOUND {
			return errUnauthorized("no valid refresh token")
		}
		if err != nil {
			return err
		}
		sess, err := tx.StaffSession(ctx, rt.SessionID)
		if err != nil {
			return err
		}
		if rt.RotatedAt != nil {
			if sess.RevokedAt == nil {
				sess.RevokedAt, sess.RevokeReason = &now, ReasonReuse
				if err := tx.PutStaffSession(ctx, sess); err != nil {
					return err
				}
			}
			reused = sess
			return nil // commit the revocation; the caller is refused below
		}
		if !sess.Active(now) || !now.Before(rt.ExpiresAt) {
			return errUnauthorized("the login has ended; log in again")
		}
		a, err := tx.Account(ctx, sess.AccountID)
		if err != nil {
			return err
		}
		if a.Status != cases.AccountActive {
			return errUnauthorized("the login has ended; log in again")
		}
		rt.RotatedAt = &now
		if err := tx.PutRefreshToken(ctx, rt); err != nil {
			return err
		}
		sess.LastUsedAt = now
		if err := tx.PutStaffSession(ctx, sess); err != nil {
			return err
		}
		l, err = s.issueTx(ctx, tx, a, sess)
		return err
	})
	if err != nil {
		return nil, err
	}
	if reused != nil {
		s.log.Warn("refresh token reused: session revoked", "account", reused.AccountID, "session", reused.ID)
		return nil, errUnauthorized("the refresh token was already used; the login has been ended, log in again")
	}
	return l, nil
}

// Logout revokes the session of a refresh token, or the session with the
// given id; either may be empty. Unknown or revoked sessions are no
// error.
func (s *Service) Logout(ctx context.Context, refreshToken, sessionID string) error {
	return s.store.Update(ctx, func(tx cases.Tx) error {
		now := s.now().UTC()
		ids := []string{}
		if refreshToken != "" && len(refreshToken) <= 256 {
			rt, err := tx.RefreshToken(ctx, hashSecret(refreshToken))
			switch cases.ErrorCode(err) {
			case "":
				ids = append(ids, rt.SessionID)
			case cases.ENOTFOUND:
			default:
				return err
			}
		}
		if sessionID != "" {
			ids = append(ids, sessionID)
		}
		for _, id := range ids {
			sess, err := tx.StaffSession(ctx, id)
			if cases.ErrorCode(err) == cases.ENOTFOUND {
				continue
			}
			if err != nil {
				return err
			}
			if sess.RevokedAt == nil {
				sess.RevokedAt, sess.RevokeReason = &now, ReasonLogout
				if err := tx.PutStaffSession(ctx, sess); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// ChangePassword changes an account's own password after checking the
// current one. Every session of the account, the caller's included, is
// revoked and every access token stops working; the caller gets a new
// login.
func (s *Service) ChangePassword(ctx context.Context, accountID, current, next string) (*Login, error) {
	a, err := s.Account(ctx, accountID)
	if err != nil {
		return nil, err
	}
	ok, _, err := s.hasher.check(ctx, a.PasswordHash, current)
	if err != nil && ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if !ok {
		return nil, cases.FieldErrorf("currentPassword", "the current password is wrong")
	}
	if err := validPassword("newPassword", next, a.Login); err != nil {
		return nil, err
	}
	if next == current {
		return nil, cases.FieldErrorf("newPassword", "the new password must differ from the current one")
	}
	hash, err := s.hasher.hash(ctx, next)
	if err != nil {
		return nil, err
	}
	var l *Login
	err = s.store.Update(ctx, func(tx cases.Tx) error {
		acct, err := s.setPasswordTx(ctx, tx, accountID, a.PasswordHash, hash, ReasonPasswordChanged)
		if err != nil {
			return err
		}
		if acct.Status != cases.AccountActive {
			return errUnauthorized(msgBadCredentials)
		}
		l, err = s.startSessionTx(ctx, tx, acct)
		return err
	})
	if err != nil {
		return nil, err
	}
	s.log.Info("staff password changed", "account", accountID)
	return l, nil
}

// ResetPassword sets an account's password for an admin, revoking every
// session of the account.
func (s *Service) ResetPassword(ctx context.Context, actor, accountID, password string) error {
	a, err := s.Account(ctx, accountID)
	if err != nil {
		return err
	}
	if err := validPassword("password", password, a.Login); err != nil {
		return err
	}
	hash, err := s.hasher.hash(ctx, password)
	if err != nil {
		return err
	}
	err = s.store.Update(ctx, func(tx cases.Tx) error {
		_, err := s.setPasswordTx(ctx, tx, accountID, "", hash, ReasonPasswordReset)
		return err
	})
	if err != nil {
		return err
	}
	s.log.Info("staff password reset", "account", accountID, "actor", actor)
	return nil
}

// setPasswordTx stores a new password hash, revokes every session and
// access token of the account. When was is set, the stored hash must
// still be it.
func (s *Service) setPasswordTx(ctx context.Context, tx cases.Tx, accountID, was, hash, reason string) (*cases.Account, error) {
	a, err := tx.Account(ctx, accountID)
	if err != nil {
		return nil, err
	}
	if was != "" && a.PasswordHash != was {
		return nil, cases.Errorf(cases.ECONFLICT, "the password was changed meanwhile; try again")
	}
	now := s.now().UTC()
	a.PasswordHash, a.PasswordChangedAt, a.UpdatedAt = hash, now, now
	a.TokenVersion++
	if err := tx.PutAccount(ctx, a); err != nil {
		return nil, err
	}
	if _, err := tx.RevokeStaffSessions(ctx, a.ID, reason, now); err != nil {
		return nil, err
	}
	return a, nil
}

// SetStatus activates or disables an account. Disabling revokes every
// session and access token of the account.
func (s *Service) SetStatus(ctx context.Context, actor, accountID, status string) (*cases.Account, error) {
	if status != cases.AccountActive && status != cases.AccountDisabled {
		return nil, cases.FieldErrorf("status", "status must be active or disabled")
	}
	var a *cases.Account
	err := s.store.Update(ctx, func(tx cases.Tx) error {
		var err error
		if a, err = tx.Account(ctx, accountID); err != nil {
			return err
		}
		if a.Status == status {
			return nil
		}
		now := s.now().UTC()
		a.Status, a.UpdatedAt = status, now
		if status == cases.AccountDisabled {
			a.TokenVersion++
			if _, err := tx.RevokeStaffSessions(ctx, a.ID, ReasonDisabled, now); err != nil {
				return err
			}
		}
		return tx.PutAccount(ctx, a)
	})
	if err != nil {
		return nil, err
	}
	s.log.Info("staff account status", "account", accountID, "status", status, "actor", actor)
	return a, nil
}

// Staff is an authenticated staff member.
type Staff struct {
	Account *cases.Account
	Claims  *AccessClaims
}

// Authenticate checks a staff access token and that its account is
// active, its password unchanged and its session not revoked since the
// token was issued.
func (s *Service) Authenticate(ctx context.Context, token string) (*Staff, error) {
	c, err := s.access.verify(token)
	if err != nil {
		return nil, errUnauthorized(err.Error())
	}
	var a *cases.Account
	err = s.store.View(ctx, func(tx cases.Tx) error {
		var err error
		if a, err = tx.Account(ctx, c.AccountID()); err != nil {
			return err
		}
		sess, err := tx.StaffSession(ctx, c.SessionID)
		if err != nil {
			return err
		}
		if sess.AccountID != a.ID || !sess.Active(s.now()) {
			return errUnauthorized("the login has ended; log in again")
		}
		return nil
	})
	if cases.ErrorCode(err) == cases.ENOTFOUND {
		return nil, errUnauthorized(ErrTokenInvalid.Error())
	}
	if err != nil {
		return nil, err
	}
	if a.Status != cases.AccountActive || a.TokenVersion != c.TokenVersion || a.Role != c.Role {
		return nil, errUnauthorized("the access token was revoked; log in again")
	}
	return &Staff{Account: a, Claims: c}, nil
}

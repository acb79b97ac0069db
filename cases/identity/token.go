package identity

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/concord-odr/concord/cases"
	"github.com/concord-odr/concord/cases/joinlink"
)

const (
	// Issuer is the iss claim of staff access tokens (as of join tokens).
	Issuer = joinlink.Issuer
	// StaffAudience is the aud claim of staff access tokens. A join token
	// (audience concord-join) is never a staff token, nor the reverse.
	StaffAudience = "concord-staff"
)

// AccessClaims is what a staff access token says about its bearer. The
// account is re-read on every request: the claims only say which account
// and login the token belongs to.
type AccessClaims struct {
	Role         cases.StaffRole `json:"role"`
	SessionID    string          `json:"sid"`
	TokenVersion int64           `json:"ver"`
	jwt.RegisteredClaims
}

// AccountID is the account the token was issued to.
func (c *AccessClaims) AccountID() string { return c.Subject }

// Errors of access tokens. They are safe to show.
var (
	ErrTokenExpired = errors.New("the access token has expired")
	ErrTokenInvalid = errors.New("the access token is not valid")
)

// tokenSigner signs and verifies staff access tokens with HMAC-SHA256.
// The algorithm is pinned and keys are chosen by kid, as for join tokens.
type tokenSigner struct {
	current joinlink.Key
	keys    map[string][]byte
	now     func() time.Time
}

func newTokenSigner(current joinlink.Key, older []joinlink.Key, now func() time.Time) (*tokenSigner, error) {
	if len(current.Secret) < 32 || current.ID == "" {
		return nil, errors.New("identity: staff signing key shorter than 32 bytes or without an id")
	}
	s := &tokenSigner{current: current, keys: map[string][]byte{current.ID: current.Secret}, now: now}
	for _, k := range older {
		s.keys[k.ID] = k.Secret
	}
	return s, nil
}

func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// issue signs c, valid from now for ttl.
func (s *tokenSigner) issue(c AccessClaims, ttl time.Duration) (string, time.Time, error) {
	now := s.now()
	exp := now.Add(ttl)
	c.Issuer = Issuer
	c.Audience = jwt.ClaimStrings{StaffAudience}
	c.IssuedAt = jwt.NewNumericDate(now)
	c.NotBefore = jwt.NewNumericDate(now.Add(-30 * time.Second))
	c.ExpiresAt = jwt.NewNumericDate(exp)
	c.ID = randomID(9)
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, &c)
	t.Header["kid"] = s.current.ID
	tok, err := t.SignedString(s.current.Secret)
	return tok, exp, err
}

// verify checks a token's signature, algorithm, issuer, audience and
// validity period.
func (s *tokenSigner) verify(token string) (*AccessClaims, error) {
	if len(token) > 4096 {
		return nil, ErrTokenInvalid
	}
	var c AccessClaims
	_, err := jwt.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		key, ok := s.keys[kid]
		if !ok {
			return nil, fmt.Errorf("unknown key id %q", kid)
		}
		return key, nil
	},
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithAudience(StaffAudience),
		jwt.WithIssuer(Issuer),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(s.now),
	)
	switch {
	case err == nil:
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, ErrTokenExpired
	default:
		return nil, ErrTokenInvalid
	}
	if c.Subject == "" || c.SessionID == "" || !c.Role.Valid() {
		return nil, ErrTokenInvalid
	}
	return &c, nil
}

// registered returns the registered claims naming subject.
func registered(subject string) jwt.RegisteredClaims { return jwt.RegisteredClaims{Subject: subject} }

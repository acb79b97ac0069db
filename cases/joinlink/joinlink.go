// Package joinlink issues and verifies the signed tokens carried by join
// links: one token names one participant of one session of one case.
package joinlink

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	// Issuer is the iss claim of every join token.
	Issuer = "concord"
	// Audience is the aud claim of join tokens; tokens for any other
	// audience are refused.
	Audience = "concord-join"
)

// Claims is what a join token says about its bearer.
type Claims struct {
	CaseID    string `json:"case"`
	SessionID string `json:"ses"`
	Role      string `json:"role"`
	Side      string `json:"side"`
	Name      string `json:"name,omitempty"`
	jwt.RegisteredClaims
}

// ParticipantID is the participant the token was issued to.
func (c *Claims) ParticipantID() string { return c.Subject }

// Errors returned by Verify. They are safe to show to a user.
var (
	ErrExpired  = errors.New("the join link has expired")
	ErrNotYet   = errors.New("the join link is not valid yet")
	ErrAudience = errors.New("the token is not a join link")
	ErrInvalid  = errors.New("the join link is not valid")
	// ErrRevoked: the link was revoked (by staff, or because its case was
	// closed) before it expired.
	ErrRevoked = errors.New("the join link has been revoked")
	// ErrRemoved: the mediator removed the participant from the session.
	ErrRemoved = errors.New("the mediator has removed you from this session")
	// ErrSessionEnded: the session the link is for has ended.
	ErrSessionEnded = errors.New("this session has ended")
)

// Key is one signing key with its identifier.
type Key struct {
	ID     string
	Secret []byte
}

// Signer issues and verifies join tokens with HMAC-SHA256. The algorithm
// is pinned: a token naming any other algorithm is refused.
type Signer struct {
	current  Key
	keys     map[string][]byte
	olderIDs []string // in the order given
	now      func() time.Time
}

// NewSigner returns a Signer that signs with current and verifies with
// current and any older keys (which still verify until their tokens
// expire). now may be nil.
func NewSigner(current Key, older []Key, now func() time.Time) (*Signer, error) {
	if len(current.Secret) < 32 {
		return nil, errors.New("joinlink: signing key shorter than 32 bytes")
	}
	if now == nil {
		now = time.Now
	}
	s := &Signer{current: current, keys: map[string][]byte{current.ID: current.Secret}, now: now}
	for _, k := range older {
		if _, dup := s.keys[k.ID]; !dup {
			s.olderIDs = append(s.olderIDs, k.ID)
		}
		s.keys[k.ID] = k.Secret
	}
	return s, nil
}

// Issue returns a signed token for c, valid from now for ttl.
func (s *Signer) Issue(c Claims, ttl time.Duration) (string, error) {
	now := s.now()
	c.Issuer = Issuer
	c.Audience = jwt.ClaimStrings{Audience}
	c.IssuedAt = jwt.NewNumericDate(now)
	c.NotBefore = jwt.NewNumericDate(now.Add(-30 * time.Second))
	c.ExpiresAt = jwt.NewNumericDate(now.Add(ttl))
	if c.ID == "" {
		var b [9]byte
		_, _ = rand.Read(b[:])
		c.ID = base64.RawURLEncoding.EncodeToString(b[:])
	}
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, &c)
	t.Header["kid"] = s.current.ID
	return t.SignedString(s.current.Secret)
}

// Digests returns the HMAC-SHA256 of label and data under each of the
// signer's keys, the current key's first, in hex. Short link codes are
// kept as such digests, so that a copy of the database alone does not
// give working links, and a code issued before a rotation is still found.
func (s *Signer) Digests(label string, data []byte) []string {
	digest := func(secret []byte) string {
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(label))
		m.Write([]byte{0})
		m.Write(data)
		return hex.EncodeToString(m.Sum(nil))
	}
	out := []string{digest(s.current.Secret)}
	for _, id := range s.olderIDs {
		out = append(out, digest(s.keys[id]))
	}
	return out
}

// Verify checks a token's signature, algorithm, issuer, audience and
// validity period, and returns its claims.
func (s *Signer) Verify(token string) (*Claims, error) {
	if len(token) > 4096 {
		return nil, ErrInvalid
	}
	var c Claims
	_, err := jwt.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		key, ok := s.keys[kid]
		if !ok {
			return nil, fmt.Errorf("unknown key id %q", kid)
		}
		return key, nil
	},
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithAudience(Audience),
		jwt.WithIssuer(Issuer),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(s.now),
	)
	switch {
	case err == nil:
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, ErrExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return nil, ErrNotYet
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return nil, ErrAudience
	default:
		return nil, ErrInvalid
	}
	if c.Subject == "" || c.SessionID == "" || c.CaseID == "" {
		return nil, ErrInvalid
	}
	return &c, nil
}

// LoadOrCreateKey reads the signing key kept in dir, creating a random
// one (readable by the owner only) on first use.
func LoadOrCreateKey(dir string) (Key, error) {
	return LoadOrCreateKeyFile(filepath.Join(dir, "joinlink.key"))
}

// LoadKeyring reads the current signing key of a kind ("joinlink",
// "staff") kept in dir as NAME.key, creating it on first use, and the
// older keys kept beside it as NAME.key.* (for example joinlink.key.1 or
// joinlink.key.2026-05-01): those verify the tokens they signed until
// the tokens expire, while new tokens are signed with the current key.
// To rotate, rename NAME.key to NAME.key.SUFFIX and restart; delete the
// old file once every token it signed has expired. extra names more
// files of older keys, anywhere.
func LoadKeyring(dir, name string, extra ...string) (current Key, older []Key, err error) {
	current, err = LoadOrCreateKeyFile(filepath.Join(dir, name+".key"))
	if err != nil {
		return Key{}, nil, err
	}
	paths, err := filepath.Glob(filepath.Join(dir, name+".key.*"))
	if err != nil {
		return Key{}, nil, err
	}
	seen := map[string]bool{current.ID: true}
	for _, path := range append(paths, extra...) {
		k, err := LoadKeyFile(path)
		if err != nil {
			return Key{}, nil, err
		}
		if !seen[k.ID] {
			seen[k.ID] = true
			older = append(older, k)
		}
	}
	return current, older, nil
}

// RotateKey makes the current key of a kind in dir an older one, renamed
// NAME.key.SUFFIX, so that the next LoadKeyring creates a new current
// key. It returns the new name of the old file.
func RotateKey(dir, name, suffix string) (string, error) {
	from := filepath.Join(dir, name+".key")
	to := filepath.Join(dir, name+".key."+suffix)
	if _, err := os.Stat(to); err == nil {
		return "", fmt.Errorf("rotate key: %s exists", to)
	}
	if err := os.Rename(from, to); err != nil {
		return "", fmt.Errorf("rotate key: %w", err)
	}
	return to, nil
}

// LoadKeyFile reads a key file that must exist.
func LoadKeyFile(path string) (Key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Key{}, fmt.Errorf("read signing key: %w", err)
	}
	return parseKey(path, b)
}

func parseKey(path string, b []byte) (Key, error) {
	secret, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(secret) < 32 {
		return Key{}, fmt.Errorf("signing key %s is malformed", path)
	}
	return keyFromSecret(secret), nil
}

// LoadOrCreateKeyFile reads the signing key kept at path, creating a
// random one (readable by the owner only) on first use.
func LoadOrCreateKeyFile(path string) (Key, error) {
	dir := filepath.Dir(path)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		secret := make([]byte, 32)
		if _, err := rand.Read(secret); err != nil {
			return Key{}, err
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return Key{}, err
		}
		if err := os.WriteFile(path, []byte(hex.EncodeToString(secret)+"\n"), 0o600); err != nil {
			return Key{}, fmt.Errorf("write signing key: %w", err)
		}
		return keyFromSecret(secret), nil
	}
	if err != nil {
		return Key{}, fmt.Errorf("read signing key: %w", err)
	}
	return parseKey(path, b)
}

// keyFromSecret derives a stable, non-secret key id from the secret.
func keyFromSecret(secret []byte) Key {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("concord key id"))
	return Key{ID: hex.EncodeToString(m.Sum(nil))[:8], Secret: secret}
}

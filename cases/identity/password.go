package identity

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"

	"github.com/concord-odr/concord/cases"
)

// HashParams are the argon2id cost parameters of new password hashes.
// A hash keeps the parameters it was made with, so raising them does not
// lock anyone out: older hashes verify with their own and are rehashed
// at the next login.
type HashParams struct {
	Memory  uint32 // KiB
	Time    uint32 // passes
	Threads uint8
}

// DefaultHashParams follow OWASP's password storage recommendation for
// argon2id (19 MiB, 2 passes, 1 lane).
var DefaultHashParams = HashParams{Memory: 19 * 1024, Time: 2, Threads: 1}

const (
	saltLen = 16
	keyLen  = 32
	// Bounds on the parameters a stored hash may name, so that a corrupt
	// or hostile hash cannot make verification exhaust the server.
	maxMemory  = 1 << 20 // 1 GiB
	maxTime    = 16
	maxThreads = 16
)

// Password length limits, in characters and (for the hash's input) bytes.
const (
	MinPasswordLen   = 12
	MaxPasswordLen   = 256
	maxPasswordBytes = 1024
)

var errMalformedHash = errors.New("identity: malformed password hash")

// hashPassword returns the PHC-style encoding of an argon2id hash of
// password with a new random salt:
//
//	$argon2id$v=19$m=19456,t=2,p=1$<salt>$<key>
//
// with the salt and key in unpadded standard base64.
func hashPassword(password string, p HashParams) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, keyLen)
	return encodeHash(p, salt, key), nil
}

// encodeHash writes an argon2id hash in the PHC string format.
func encodeHash(p HashParams, salt, key []byte) string {
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Time, p.Threads, enc.EncodeToString(salt), enc.EncodeToString(key))
}

// decodedHash is a parsed password hash.
type decodedHash struct {
	params    HashParams
	salt, key []byte
}

func decodeHash(encoded string) (*decodedHash, error) {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return nil, errMalformedHash
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return nil, errMalformedHash
	}
	var d decodedHash
	if n, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &d.params.Memory, &d.params.Time, &d.params.Threads); err != nil || n != 3 {
		return nil, errMalformedHash
	}
	p := d.params
	if p.Memory < 8*uint32(max(p.Threads, 1)) || p.Memory > maxMemory || p.Time < 1 || p.Time > maxTime || p.Threads < 1 || p.Threads > maxThreads {
		return nil, errMalformedHash
	}
	var err error
	enc := base64.RawStdEncoding
	if d.salt, err = enc.DecodeString(parts[4]); err != nil || len(d.salt) < 8 {
		return nil, errMalformedHash
	}
	if d.key, err = enc.DecodeString(parts[5]); err != nil || len(d.key) < 16 || len(d.key) > 64 {
		return nil, errMalformedHash
	}
	return &d, nil
}

// checkPassword reports whether password matches the encoded hash, and
// whether the hash's parameters differ from want (so that it should be
// rehashed).
func checkPassword(encoded, password string, want HashParams) (ok, stale bool, err error) {
	d, err := decodeHash(encoded)
	if err != nil {
		return false, false, err
	}
	if len(password) > maxPasswordBytes {
		return false, false, nil
	}
	key := argon2.IDKey([]byte(password), d.salt, d.params.Time, d.params.Memory, d.params.Threads, uint32(len(d.key)))
	ok = subtle.ConstantTimeCompare(key, d.key) == 1
	return ok, d.params != want, nil
}

// validPassword applies the password policy: 12 to 256 characters, not
// the login itself, no control characters.
func validPassword(field, password, login string) error {
	if !utf8.ValidString(password) {
		return cases.FieldErrorf(field, "%s is not valid UTF-8", field)
	}
	n := utf8.RuneCountInString(password)
	if n < MinPasswordLen {
		return cases.FieldErrorf(field, "%s must be at least %d characters long", field, MinPasswordLen)
	}
	if n > MaxPasswordLen || len(password) > maxPasswordBytes {
		return cases.FieldErrorf(field, "%s must be at most %d characters long", field, MaxPasswordLen)
	}
	for _, r := range password {
		if r < 0x20 || r == 0x7f {
			return cases.FieldErrorf(field, "%s contains a control character", field)
		}
	}
	if login != "" && strings.EqualFold(strings.TrimSpace(password), login) {
		return cases.FieldErrorf(field, "%s must not be the login", field)
	}
	return nil
}

// hasher bounds how many argon2 computations run at once: each takes
// HashParams.Memory, so that a burst of logins cannot exhaust memory.
type hasher struct {
	params HashParams
	slots  chan struct{}
	// dummy is a hash of nothing in particular, checked against when a
	// login names no account, so that the answer takes as long.
	dummy string
}

func newHasher(p HashParams, concurrency int) (*hasher, error) {
	if concurrency < 1 {
		concurrency = 4
	}
	// Random salt and key in the real encoding: checking a password
	// against it costs a real derivation, and building it costs none
	// (deriving one at start-up held HashParams.Memory for nothing).
	salt, key := make([]byte, saltLen), make([]byte, keyLen)
	if _, err := rand.Read(salt); err != nil {
		return nil, err
	}
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	return &hasher{params: p, slots: make(chan struct{}, concurrency), dummy: encodeHash(p, salt, key)}, nil
}

func (h *hasher) acquire(ctx context.Context) error {
	select {
	case h.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *hasher) release() { <-h.slots }

func (h *hasher) hash(ctx context.Context, password string) (string, error) {
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	defer h.release()
	return hashPassword(password, h.params)
}

func (h *hasher) check(ctx context.Context, encoded, password string) (ok, stale bool, err error) {
	if err := h.acquire(ctx); err != nil {
		return false, false, err
	}
	defer h.release()
	return checkPassword(encoded, password, h.params)
}

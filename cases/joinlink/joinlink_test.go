package joinlink

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func testSigner(t *testing.T, now func() time.Time) *Signer {
	t.Helper()
	s, err := NewSigner(Key{ID: "k1", Secret: []byte(strings.Repeat("s", 32))}, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func claims() Claims {
	return Claims{CaseID: "case_1", SessionID: "s_1", Role: "party", Side: "applicant",
		RegisteredClaims: jwt.RegisteredClaims{Subject: "p_1"}}
}

func TestIssueVerify(t *testing.T) {
	s := testSigner(t, nil)
	tok, err := s.Issue(claims(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if c.ParticipantID() != "p_1" || c.SessionID != "s_1" || c.CaseID != "case_1" || c.Role != "party" {
		t.Fatalf("claims = %+v", c)
	}
}

func TestRefused(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	s := testSigner(t, clock)
	good, err := s.Issue(claims(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := NewSigner(Key{ID: "k1", Secret: []byte(strings.Repeat("x", 32))}, nil, clock)
	foreign, _ := other.Issue(claims(), time.Hour)

	wrongAud := claims()
	wrongAud.Issuer = Issuer
	wrongAud.Audience = jwt.ClaimStrings{"something-else"}
	wrongAud.ExpiresAt = jwt.NewNumericDate(now.Add(time.Hour))
	tokAud := jwt.NewWithClaims(jwt.SigningMethodHS256, &wrongAud)
	tokAud.Header["kid"] = "k1"
	audStr, _ := tokAud.SignedString([]byte(strings.Repeat("s", 32)))

	none := jwt.NewWithClaims(jwt.SigningMethodNone, &wrongAud)
	noneStr, _ := none.SignedString(jwt.UnsafeAllowNoneSignatureType)

	parts := strings.Split(good, ".")
	// Flip one character in the middle of the payload.
	payload := []byte(parts[1])
	mid := len(payload) / 2
	if payload[mid] == 'a' {
		payload[mid] = 'b'
	} else {
		payload[mid] = 'a'
	}
	tampered := parts[0] + "." + string(payload) + "." + parts[2]

	tests := []struct {
		name  string
		token string
		clock time.Duration
		want  error
	}{
		{"tampered payload", tampered, 0, ErrInvalid},
		{"other key", foreign, 0, ErrInvalid},
		{"foreign audience", audStr, 0, ErrAudience},
		{"alg none", noneStr, 0, ErrInvalid},
		{"expired", good, 2 * time.Hour, ErrExpired},
		{"garbage", "not.a.token", 0, ErrInvalid},
		{"empty", "", 0, ErrInvalid},
		{"huge", strings.Repeat("a", 10000), 0, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			at := now.Add(tt.clock)
			s := testSigner(t, func() time.Time { return at })
			_, err := s.Verify(tt.token)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestRotation(t *testing.T) {
	old := Key{ID: "old", Secret: []byte(strings.Repeat("o", 32))}
	s1, _ := NewSigner(old, nil, nil)
	tok, _ := s1.Issue(claims(), time.Hour)
	s2, _ := NewSigner(Key{ID: "new", Secret: []byte(strings.Repeat("n", 32))}, []Key{old}, nil)
	if _, err := s2.Verify(tok); err != nil {
		t.Fatalf("old key no longer verifies: %v", err)
	}
	s3, _ := NewSigner(Key{ID: "new", Secret: []byte(strings.Repeat("n", 32))}, nil, nil)
	if _, err := s3.Verify(tok); !errors.Is(err, ErrInvalid) {
		t.Fatalf("dropped key still verifies: %v", err)
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	dir := t.TempDir()
	k1, err := LoadOrCreateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := LoadOrCreateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	if k1.ID != k2.ID || string(k1.Secret) != string(k2.Secret) || len(k1.Secret) != 32 {
		t.Fatalf("key not kept: %v %v", k1.ID, k2.ID)
	}
}

// FuzzVerify: no input makes verification panic, and nothing but a token
// this signer issued verifies.
func FuzzVerify(f *testing.F) {
	s := testSigner(&testing.T{}, nil)
	good, _ := s.Issue(claims(), time.Hour)
	for _, seed := range []string{good, "", "a.b.c", "eyJhbGciOiJub25lIn0.e30.", strings.Repeat("x.", 100)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, token string) {
		c, err := s.Verify(token)
		if err == nil && (c.ParticipantID() != "p_1" || c.SessionID != "s_1") {
			t.Fatalf("forged token verified: %+v", c)
		}
	})
}

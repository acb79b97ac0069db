package identity

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/concord-odr/concord/cases"
	"github.com/concord-odr/concord/cases/joinlink"
)

// Each forged-token test builds a token an attacker could make and checks
// that neither the join verifier (in every mode) nor staff
// authentication accepts it. forgeEnv has a case with a session, its
// applicant's genuine join token and a staff member's genuine access
// token, to forge from.
type forgeEnv struct {
	*env
	c      *cases.Case
	sess   *cases.Session
	app    IssuedLink
	join   string // the applicant's genuine join token
	access string // the mediator's genuine access token
}

func newForgeEnv(t *testing.T) *forgeEnv {
	e := newEnv(t)
	e.staffFixture()
	c := e.mediatingCase("inst_b")
	sess, links := e.schedule(c)
	app := link(t, links, cases.SideApplicant)
	ex, err := e.id.Exchange(t.Context(), app.Code)
	if err != nil {
		t.Fatal(err)
	}
	l, err := e.id.Login(t.Context(), "wang", testPassword)
	if err != nil {
		t.Fatal(err)
	}
	f := &forgeEnv{env: e, c: c, sess: sess, app: app, join: ex.Token, access: l.AccessToken}
	f.accepted(t, f.join, f.access) // the genuine tokens pass
	return f
}

// joinClaims are the genuine applicant's claims, valid now.
func (f *forgeEnv) joinClaims() jwt.MapClaims {
	now := f.clock.Now()
	return jwt.MapClaims{
		"iss": joinlink.Issuer, "aud": []string{joinlink.Audience}, "sub": f.app.ParticipantID,
		"case": f.c.ID, "ses": f.sess.ID, "role": "party", "side": "applicant", "jti": "forged-1",
		"iat": now.Unix(), "nbf": now.Add(-time.Minute).Unix(), "exp": now.Add(time.Hour).Unix(),
	}
}

// staffClaims are the genuine mediator's access claims, valid now.
func (f *forgeEnv) staffClaims(t *testing.T) jwt.MapClaims {
	c, err := f.id.access.verify(f.access)
	if err != nil {
		t.Fatal(err)
	}
	now := f.clock.Now()
	return jwt.MapClaims{
		"iss": Issuer, "aud": []string{StaffAudience}, "sub": c.Subject, "role": string(c.Role),
		"sid": c.SessionID, "ver": c.TokenVersion, "jti": "forged-2",
		"iat": now.Unix(), "nbf": now.Add(-time.Minute).Unix(), "exp": now.Add(time.Hour).Unix(),
	}
}

func sign(t *testing.T, m jwt.SigningMethod, kid string, key any, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// accepted checks that a join token and an access token pass.
func (f *forgeEnv) accepted(t *testing.T, join, access string) {
	t.Helper()
	for _, mode := range []VerifyMode{ForSignaling, ForAPI, Strict} {
		if _, err := f.id.Verifier(mode).VerifyContext(t.Context(), join); err != nil {
			t.Fatalf("genuine join token refused (mode %d): %v", mode, err)
		}
	}
	if _, err := f.id.Authenticate(t.Context(), access); err != nil {
		t.Fatalf("genuine access token refused: %v", err)
	}
}

// refused checks that token passes nowhere, and that the join verifier
// refuses it with want (when want is not nil).
func (f *forgeEnv) refused(t *testing.T, token string, want error) {
	t.Helper()
	for _, mode := range []VerifyMode{ForSignaling, ForAPI, Strict} {
		_, err := f.id.Verifier(mode).VerifyContext(t.Context(), token)
		if err == nil {
			t.Errorf("join verifier (mode %d) accepted the forged token", mode)
		} else if want != nil && !errors.Is(err, want) {
			t.Errorf("join verifier (mode %d): %v, want %v", mode, err, want)
		}
	}
	if _, err := f.id.Authenticate(t.Context(), token); cases.ErrorCode(err) != cases.EUNAUTHORIZED {
		t.Errorf("staff authentication: %v, want unauthorized", err)
	}
}

func TestForgedAlgNone(t *testing.T) {
	f := newForgeEnv(t)
	f.refused(t, sign(t, jwt.SigningMethodNone, linkKey.ID, jwt.UnsafeAllowNoneSignatureType, f.joinClaims()), joinlink.ErrInvalid)
	f.refused(t, sign(t, jwt.SigningMethodNone, staffKey.ID, jwt.UnsafeAllowNoneSignatureType, f.staffClaims(t)), nil)
	// Hand-made, with an empty signature and "alg":"NONE".
	h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"NONE","typ":"JWT","kid":"` + linkKey.ID + `"}`))
	b, _ := json.Marshal(f.joinClaims())
	f.refused(t, h+"."+base64.RawURLEncoding.EncodeToString(b)+".", joinlink.ErrInvalid)
}

// TestForgedHS256WithPublicKey: the algorithm-confusion attack, HS256
// keyed with public key material, is refused: keys are looked up by kid
// among our HMAC secrets only, and the algorithm is pinned.
func TestForgedHS256WithPublicKey(t *testing.T) {
	f := newForgeEnv(t)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	for _, pub := range [][]byte{pubPEM, der, edPub, []byte(linkKey.ID)} {
		f.refused(t, sign(t, jwt.SigningMethodHS256, linkKey.ID, pub, f.joinClaims()), joinlink.ErrInvalid)
		f.refused(t, sign(t, jwt.SigningMethodHS256, staffKey.ID, pub, f.staffClaims(t)), nil)
	}
	// And the asymmetric algorithms themselves are refused.
	f.refused(t, sign(t, jwt.SigningMethodRS256, linkKey.ID, rsaKey, f.joinClaims()), joinlink.ErrInvalid)
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	f.refused(t, sign(t, jwt.SigningMethodEdDSA, staffKey.ID, edPriv, f.staffClaims(t)), nil)
	// HS512 with the right secret is still not HS256.
	f.refused(t, sign(t, jwt.SigningMethodHS512, linkKey.ID, linkKey.Secret, f.joinClaims()), joinlink.ErrInvalid)
}

func TestForgedUnknownKid(t *testing.T) {
	f := newForgeEnv(t)
	for _, kid := range []string{"", "nope", "../joinlink.key", staffKey.ID} {
		f.refused(t, sign(t, jwt.SigningMethodHS256, kid, linkKey.Secret, f.joinClaims()), joinlink.ErrInvalid)
	}
	for _, kid := range []string{"", "nope", linkKey.ID} {
		f.refused(t, sign(t, jwt.SigningMethodHS256, kid, staffKey.Secret, f.staffClaims(t)), nil)
	}
	// A numeric kid is not a string.
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, f.joinClaims())
	tok.Header["kid"] = 1
	s, _ := tok.SignedString(linkKey.Secret)
	f.refused(t, s, joinlink.ErrInvalid)
}

func TestForgedWrongAudience(t *testing.T) {
	f := newForgeEnv(t)
	for _, aud := range [][]string{{"concord-staff"}, {"something-else"}, {}} {
		c := f.joinClaims()
		c["aud"] = aud
		f.refused(t, sign(t, jwt.SigningMethodHS256, linkKey.ID, linkKey.Secret, c), nil)
		s := f.staffClaims(t)
		s["aud"] = aud
		if len(aud) == 1 && aud[0] == StaffAudience {
			s["aud"] = []string{joinlink.Audience}
		}
		f.refused(t, sign(t, jwt.SigningMethodHS256, staffKey.ID, staffKey.Secret, s), nil)
	}
	// A genuine join token is not a staff token, and the reverse.
	for _, mode := range []VerifyMode{ForSignaling, ForAPI, Strict} {
		if _, err := f.id.Verifier(mode).VerifyContext(t.Context(), f.access); err == nil {
			t.Errorf("an access token as a join token (mode %d): %v", mode, err)
		}
	}
	if _, err := f.id.Authenticate(t.Context(), f.join); err == nil {
		t.Fatal("a join token authenticated as staff")
	}
}

func TestForgedWrongIssuer(t *testing.T) {
	f := newForgeEnv(t)
	for _, iss := range []string{"", "evil", "Concord"} {
		c := f.joinClaims()
		c["iss"] = iss
		f.refused(t, sign(t, jwt.SigningMethodHS256, linkKey.ID, linkKey.Secret, c), joinlink.ErrInvalid)
		s := f.staffClaims(t)
		s["iss"] = iss
		f.refused(t, sign(t, jwt.SigningMethodHS256, staffKey.ID, staffKey.Secret, s), nil)
	}
}

func TestForgedExpired(t *testing.T) {
	f := newForgeEnv(t)
	c := f.joinClaims()
	c["exp"] = f.clock.Now().Add(-time.Second).Unix()
	f.refused(t, sign(t, jwt.SigningMethodHS256, linkKey.ID, linkKey.Secret, c), joinlink.ErrExpired)
	delete(c, "exp") // no expiry at all
	f.refused(t, sign(t, jwt.SigningMethodHS256, linkKey.ID, linkKey.Secret, c), nil)
	s := f.staffClaims(t)
	s["exp"] = f.clock.Now().Add(-time.Second).Unix()
	f.refused(t, sign(t, jwt.SigningMethodHS256, staffKey.ID, staffKey.Secret, s), nil)
	// Genuine tokens expire too.
	f.clock.Add(73 * time.Hour)
	f.refused(t, f.join, joinlink.ErrExpired)
	f.refused(t, f.access, nil)
}

func TestForgedNotYetValid(t *testing.T) {
	f := newForgeEnv(t)
	c := f.joinClaims()
	c["nbf"] = f.clock.Now().Add(time.Hour).Unix()
	f.refused(t, sign(t, jwt.SigningMethodHS256, linkKey.ID, linkKey.Secret, c), joinlink.ErrNotYet)
	s := f.staffClaims(t)
	s["nbf"] = f.clock.Now().Add(time.Hour).Unix()
	f.refused(t, sign(t, jwt.SigningMethodHS256, staffKey.ID, staffKey.Secret, s), nil)
	s = f.staffClaims(t)
	s["iat"] = f.clock.Now().Add(time.Hour).Unix()
	f.refused(t, sign(t, jwt.SigningMethodHS256, staffKey.ID, staffKey.Secret, s), nil)
}

// TestForgedAnotherCasesSession: a genuinely signed token that pairs one
// case with another case's session is refused; and a participant id of
// another session does not get in.
func TestForgedAnotherCasesSession(t *testing.T) {
	f := newForgeEnv(t)
	other := f.mediatingCase("inst_c")
	otherSess, otherLinks := f.schedule(other)
	c := f.joinClaims()
	c["ses"] = otherSess.ID // our case, their session
	tok, _ := f.signer.Issue(joinlink.Claims{CaseID: f.c.ID, SessionID: otherSess.ID, Role: "party", Side: "applicant",
		RegisteredClaims: jwt.RegisteredClaims{Subject: link(t, otherLinks, cases.SideApplicant).ParticipantID}}, time.Hour)
	for _, mode := range []VerifyMode{ForSignaling, ForAPI, Strict} {
		if _, err := f.id.Verifier(mode).VerifyContext(t.Context(), tok); !errors.Is(err, joinlink.ErrInvalid) {
			t.Errorf("mode %d: %v, want invalid", mode, err)
		}
	}
	f.refused(t, sign(t, jwt.SigningMethodHS256, linkKey.ID, linkKey.Secret, c), joinlink.ErrInvalid)
	// Our participant in their session (right case pairing) is unknown.
	tok, _ = f.signer.Issue(joinlink.Claims{CaseID: other.ID, SessionID: otherSess.ID, Role: "party", Side: "applicant",
		RegisteredClaims: jwt.RegisteredClaims{Subject: f.app.ParticipantID}}, time.Hour)
	for _, mode := range []VerifyMode{ForAPI, Strict} {
		if _, err := f.id.Verifier(mode).VerifyContext(t.Context(), tok); !errors.Is(err, joinlink.ErrInvalid) {
			t.Errorf("mode %d: participant of another session: %v", mode, err)
		}
	}
}

func TestForgedRevokedJTI(t *testing.T) {
	f := newForgeEnv(t)
	claims, err := f.signer.Verify(f.join)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.id.Revoke(t.Context(), "staff:x", RevokeRequest{SessionID: f.sess.ID, JTI: claims.ID}); err != nil {
		t.Fatal(err)
	}
	f.refused(t, f.join, joinlink.ErrRevoked)
	// Minting a new token with the same jti does not escape it.
	c := f.joinClaims()
	c["jti"] = claims.ID
	f.refused(t, sign(t, jwt.SigningMethodHS256, linkKey.ID, linkKey.Secret, c), joinlink.ErrRevoked)
	// Logging out revokes the staff session behind an access token.
	l, _ := f.id.Login(t.Context(), "wang", testPassword)
	if err := f.id.Logout(t.Context(), l.RefreshToken, ""); err != nil {
		t.Fatal(err)
	}
	f.refused(t, l.AccessToken, nil)
}

func TestForgedTamperedClaim(t *testing.T) {
	f := newForgeEnv(t)
	tamper := func(token string, edit func(m map[string]any)) string {
		parts := strings.Split(token, ".")
		b, err := base64.RawURLEncoding.DecodeString(parts[1])
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		edit(m)
		b, _ = json.Marshal(m)
		return parts[0] + "." + base64.RawURLEncoding.EncodeToString(b) + "." + parts[2]
	}
	for name, edit := range map[string]func(map[string]any){
		"role":    func(m map[string]any) { m["role"] = "mediator" },
		"side":    func(m map[string]any) { m["side"] = "respondent" },
		"case":    func(m map[string]any) { m["case"] = "case_other" },
		"expiry":  func(m map[string]any) { m["exp"] = float64(time.Now().Add(365 * 24 * time.Hour).Unix()) },
		"subject": func(m map[string]any) { m["sub"] = "p_someone" },
	} {
		t.Run("join "+name, func(t *testing.T) { f.refused(t, tamper(f.join, edit), joinlink.ErrInvalid) })
	}
	for name, edit := range map[string]func(map[string]any){
		"role":    func(m map[string]any) { m["role"] = "platform_admin" },
		"version": func(m map[string]any) { m["ver"] = float64(99) },
		"subject": func(m map[string]any) { m["sub"] = "acct_someone" },
	} {
		t.Run("access "+name, func(t *testing.T) { f.refused(t, tamper(f.access, edit), nil) })
	}
	// A flipped bit in the signature.
	b := []byte(f.join)
	b[len(b)-3] ^= 1
	f.refused(t, string(b), nil)
	// A genuinely signed access token whose role the account does not
	// have (say, from before a role change) is refused too.
	s := f.staffClaims(t)
	s["role"] = string(cases.StaffPlatformAdmin)
	f.refused(t, sign(t, jwt.SigningMethodHS256, staffKey.ID, staffKey.Secret, s), nil)
}

// FuzzVerifyJoin: no input makes the join verifier or staff
// authentication panic, and nothing but a genuine token passes.
func FuzzVerifyJoin(f *testing.F) {
	// Keys of its own: the tokens a fuzzing worker makes are its own.
	e := newEnvKeys(f, randomKey("jk1"), randomKey("sk1"))
	e.staffFixture()
	c := e.mediatingCase("inst_b")
	_, links := e.schedule(c)
	ex, err := e.id.Exchange(f.Context(), links[1].Code)
	if err != nil {
		f.Fatal(err)
	}
	l, err := e.id.Login(f.Context(), "wang", testPassword)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{ex.Token, l.AccessToken, "", "a.b.c", "eyJhbGciOiJub25lIn0.e30.", strings.Repeat("x.", 100),
		"eyJhbGciOiJIUzI1NiIsImtpZCI6ImprMSJ9.eyJzdWIiOiJwIn0.AAAA"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, token string) {
		for _, mode := range []VerifyMode{ForSignaling, ForAPI, Strict} {
			if c, err := e.id.Verifier(mode).VerifyContext(t.Context(), token); err == nil && token != ex.Token {
				t.Fatalf("forged token verified: %+v", c)
			}
		}
		if _, err := e.id.Authenticate(t.Context(), token); err == nil && token != l.AccessToken {
			t.Fatal("forged access token authenticated")
		}
	})
}

// FuzzExchange: no code makes the exchange panic, and only the issued
// code (in any of the spellings NormalizeCode forgives) exchanges.
func FuzzExchange(f *testing.F) {
	e := newEnv(f)
	c := e.mediatingCase("inst_a")
	_, links := e.schedule(c)
	issued := links[1].Code
	for _, s := range []string{issued, strings.ToUpper(issued), "", "k3v9x2m7qa", "K3V9-X2M7-QA", "0000000000",
		"oooooooooo", "\x00\x00", strings.Repeat("z", 40)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, code string) {
		ex, err := e.id.Exchange(t.Context(), code)
		norm, _ := NormalizeCode(code)
		if norm == issued {
			if err != nil {
				t.Fatalf("the issued code spelt %q: %v", code, err)
			}
			return
		}
		if err == nil {
			t.Fatalf("code %q exchanged: %+v", code, ex)
		}
		if cases.ErrorCode(err) != ELinkNotFound {
			t.Fatalf("code %q: %v", code, err)
		}
	})
}

package identity

import (
	"strings"
	"testing"
	"time"

	"github.com/concord-odr/concord/cases"
	"github.com/concord-odr/concord/cases/joinlink"
)

const testPassword = "correct horse battery"

func TestPasswordHash(t *testing.T) {
	h, err := hashPassword(testPassword, testHash)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("hash %q does not carry its parameters", h)
	}
	h2, _ := hashPassword(testPassword, testHash)
	if h == h2 {
		t.Fatal("two hashes of one password are equal: no salt")
	}
	if ok, stale, err := checkPassword(h, testPassword, testHash); !ok || stale || err != nil {
		t.Fatalf("right password: %v %v %v", ok, stale, err)
	}
	if ok, _, _ := checkPassword(h, testPassword+"x", testHash); ok {
		t.Fatal("wrong password accepted")
	}
	if ok, stale, _ := checkPassword(h, testPassword, DefaultHashParams); !ok || !stale {
		t.Fatalf("hash with other parameters: ok %v, stale %v", ok, stale)
	}
	for _, bad := range []string{
		"", "plain", "$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=16$m=64,t=1,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=4194304,t=1,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5", // 4 GiB: refused
		"$argon2id$v=19$m=64,t=100,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=64,t=1,p=1$!!$a2V5a2V5a2V5a2V5a2V5a2V5",
	} {
		if ok, _, err := checkPassword(bad, testPassword, testHash); ok || err == nil {
			t.Errorf("malformed hash %q: ok %v err %v", bad, ok, err)
		}
	}
}

// FuzzCheckPassword: no stored hash makes verification panic or accept.
func FuzzCheckPassword(f *testing.F) {
	good, _ := hashPassword(testPassword, testHash)
	for _, s := range []string{good, "", "$argon2id$v=19$m=64,t=1,p=1$$", "$argon2id$v=19$m=0,t=0,p=0$a$b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, encoded string) {
		ok, _, err := checkPassword(encoded, "not the password", testHash)
		if ok {
			t.Fatalf("%q accepted a wrong password", encoded)
		}
		_ = err
	})
}

func TestPasswordPolicy(t *testing.T) {
	for _, tt := range []struct {
		pw, login string
		ok        bool
	}{
		{testPassword, "wang", true},
		{"short", "wang", false},
		{strings.Repeat("x", 257), "wang", false},
		{"wang.mediator", "wang.mediator", false},
		{"tab\tin the middle", "wang", false},
		{"十二个汉字的密码也是可以的吧", "wang", true},
	} {
		err := validPassword("password", tt.pw, tt.login)
		if (err == nil) != tt.ok {
			t.Errorf("validPassword(%q) = %v", tt.pw, err)
		}
	}
}

// staffFixture creates an institution, an enterprise and one account of
// each role.
func (e *env) staffFixture() map[cases.StaffRole]*cases.Account {
	e.t.Helper()
	ctx := e.t.Context()
	if err := e.cases.PutInstitution(ctx, &cases.Institution{ID: "inst_a", Code: "0310", Name: "A", Level: cases.LevelDistrict}); err != nil {
		e.t.Fatal(err)
	}
	if err := e.cases.PutEnterprise(ctx, &cases.Enterprise{CreditCode: "91310000MA1FL0AB2C", Name: "Shop"}); err != nil {
		e.t.Fatal(err)
	}
	out := map[cases.StaffRole]*cases.Account{}
	for _, n := range []NewAccount{
		{Login: "Root", Name: "Root", Role: cases.StaffPlatformAdmin},
		{Login: "admin.a", Name: "Admin A", Role: cases.StaffInstitutionAdmin, InstitutionID: "inst_a"},
		{Login: "wang", Name: "Wang", Role: cases.StaffMediator, InstitutionID: "inst_a"},
		{Login: "shop", Name: "Shop agent", Role: cases.StaffMerchantAgent, EnterpriseCode: "91310000MA1FL0AB2C"},
	} {
		n.Password = testPassword
		a, err := e.id.CreateAccount(ctx, "operator", n)
		if err != nil {
			e.t.Fatalf("CreateAccount %s: %v", n.Login, err)
		}
		out[a.Role] = a
	}
	return out
}

func TestCreateAccount(t *testing.T) {
	e := newEnv(t)
	accts := e.staffFixture()
	if accts[cases.StaffPlatformAdmin].Login != "root" {
		t.Fatalf("login not lower-cased: %q", accts[cases.StaffPlatformAdmin].Login)
	}
	ctx := t.Context()
	for _, tt := range []struct {
		name  string
		in    NewAccount
		code  string
		field string
	}{
		{"taken login", NewAccount{Login: "WANG", Name: "x", Role: cases.StaffMediator, InstitutionID: "inst_a"}, cases.ECONFLICT, ""},
		{"bad login", NewAccount{Login: "a b", Name: "x", Role: cases.StaffPlatformAdmin}, cases.EINVALID, "login"},
		{"no name", NewAccount{Login: "li", Role: cases.StaffPlatformAdmin}, cases.EINVALID, "name"},
		{"bad role", NewAccount{Login: "li", Name: "x", Role: "king"}, cases.EINVALID, "role"},
		{"mediator without institution", NewAccount{Login: "li", Name: "x", Role: cases.StaffMediator}, cases.EINVALID, "institutionId"},
		{"unknown institution", NewAccount{Login: "li", Name: "x", Role: cases.StaffMediator, InstitutionID: "inst_x"}, cases.EINVALID, "institutionId"},
		{"admin bound", NewAccount{Login: "li", Name: "x", Role: cases.StaffPlatformAdmin, InstitutionID: "inst_a"}, cases.EINVALID, "institutionId"},
		{"agent without enterprise", NewAccount{Login: "li", Name: "x", Role: cases.StaffMerchantAgent}, cases.EINVALID, "enterpriseCode"},
		{"unknown enterprise", NewAccount{Login: "li", Name: "x", Role: cases.StaffMerchantAgent, EnterpriseCode: "913100007000000000"}, cases.EINVALID, "enterpriseCode"},
		{"weak password", NewAccount{Login: "li", Name: "x", Role: cases.StaffPlatformAdmin, Password: "123"}, cases.EINVALID, "password"},
	} {
		if tt.in.Password == "" {
			tt.in.Password = testPassword
		}
		_, err := e.id.CreateAccount(ctx, "operator", tt.in)
		if cases.ErrorCode(err) != tt.code || cases.ErrorField(err) != tt.field {
			t.Errorf("%s: %v (field %q), want %s %q", tt.name, err, cases.ErrorField(err), tt.code, tt.field)
		}
	}
}

func TestLoginRefreshLogout(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	wang := e.staffFixture()[cases.StaffMediator]

	for _, tt := range []struct{ login, pw string }{
		{"wang", "wrong password!"}, {"nobody", testPassword}, {"", ""}, {strings.Repeat("w", 100), testPassword},
	} {
		_, err := e.id.Login(ctx, tt.login, tt.pw)
		if cases.ErrorCode(err) != cases.EUNAUTHORIZED || cases.ErrorMessage(err) != msgBadCredentials {
			t.Errorf("Login(%q, %q) = %v, want the one bad-credentials answer", tt.login, tt.pw, err)
		}
	}

	l, err := e.id.Login(ctx, " WANG ", testPassword)
	if err != nil {
		t.Fatal(err)
	}
	if l.Account.ID != wang.ID || l.AccessToken == "" || l.RefreshToken == "" ||
		l.AccessExpiresAt.Sub(e.clock.Now()) != 15*time.Minute || l.RefreshExpiresAt.Sub(e.clock.Now()) != 12*time.Hour {
		t.Fatalf("login: %+v", l)
	}
	st, err := e.id.Authenticate(ctx, l.AccessToken)
	if err != nil || st.Account.ID != wang.ID || st.Account.Role != cases.StaffMediator {
		t.Fatalf("Authenticate: %+v %v", st, err)
	}

	// The access token expires after 15 minutes; a refresh gives a new one
	// and spends the refresh token.
	e.clock.Add(16 * time.Minute)
	if _, err := e.id.Authenticate(ctx, l.AccessToken); cases.ErrorCode(err) != cases.EUNAUTHORIZED {
		t.Fatalf("expired access token: %v", err)
	}
	l2, err := e.id.Refresh(ctx, l.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if l2.RefreshToken == l.RefreshToken || l2.SessionID != l.SessionID {
		t.Fatalf("refresh did not rotate: %+v", l2)
	}
	if _, err := e.id.Authenticate(ctx, l2.AccessToken); err != nil {
		t.Fatalf("refreshed access token: %v", err)
	}

	// Presenting the spent token again revokes the whole session: the
	// newest tokens stop working too.
	if _, err := e.id.Refresh(ctx, l.RefreshToken); cases.ErrorCode(err) != cases.EUNAUTHORIZED {
		t.Fatalf("reused refresh token: %v", err)
	}
	if _, err := e.id.Refresh(ctx, l2.RefreshToken); cases.ErrorCode(err) != cases.EUNAUTHORIZED {
		t.Fatalf("refresh after a reuse: %v", err)
	}
	if _, err := e.id.Authenticate(ctx, l2.AccessToken); cases.ErrorCode(err) != cases.EUNAUTHORIZED {
		t.Fatalf("access token after a reuse: %v", err)
	}

	// Logout ends the session at once, access token included.
	l3, err := e.id.Login(ctx, "wang", testPassword)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.id.Logout(ctx, l3.RefreshToken, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := e.id.Authenticate(ctx, l3.AccessToken); cases.ErrorCode(err) != cases.EUNAUTHORIZED {
		t.Fatalf("access token after logout: %v", err)
	}
	if _, err := e.id.Refresh(ctx, l3.RefreshToken); cases.ErrorCode(err) != cases.EUNAUTHORIZED {
		t.Fatalf("refresh after logout: %v", err)
	}
	if err := e.id.Logout(ctx, "unknown", "ss_unknown"); err != nil {
		t.Fatalf("logout of nothing: %v", err)
	}

	// A refresh token lives 12 hours unused; the login 7 days at most.
	l4, _ := e.id.Login(ctx, "wang", testPassword)
	e.clock.Add(13 * time.Hour)
	if _, err := e.id.Refresh(ctx, l4.RefreshToken); cases.ErrorCode(err) != cases.EUNAUTHORIZED {
		t.Fatalf("idle refresh token: %v", err)
	}
	start := e.clock.Now()
	l5, _ := e.id.Login(ctx, "wang", testPassword)
	for {
		e.clock.Add(11 * time.Hour)
		next, err := e.id.Refresh(ctx, l5.RefreshToken)
		if e.clock.Now().Sub(start) >= 7*24*time.Hour {
			if cases.ErrorCode(err) != cases.EUNAUTHORIZED {
				t.Fatalf("a login refreshed past 7 days: %v", err)
			}
			break
		}
		if err != nil {
			t.Fatalf("refresh within the login's life (%v in): %v", e.clock.Now().Sub(start), err)
		}
		l5 = next
	}
}

func TestPasswordChangeRevokesSessions(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	wang := e.staffFixture()[cases.StaffMediator]
	phone, _ := e.id.Login(ctx, "wang", testPassword)
	desk, _ := e.id.Login(ctx, "wang", testPassword)

	if _, err := e.id.ChangePassword(ctx, wang.ID, "not the password", "a brand new passphrase"); cases.ErrorField(err) != "currentPassword" {
		t.Fatalf("wrong current password: %v", err)
	}
	if _, err := e.id.ChangePassword(ctx, wang.ID, testPassword, "short"); cases.ErrorField(err) != "newPassword" {
		t.Fatalf("weak new password: %v", err)
	}
	l, err := e.id.ChangePassword(ctx, wang.ID, testPassword, "a brand new passphrase")
	if err != nil {
		t.Fatal(err)
	}
	for name, old := range map[string]*Login{"phone": phone, "desk": desk} {
		if _, err := e.id.Authenticate(ctx, old.AccessToken); cases.ErrorCode(err) != cases.EUNAUTHORIZED {
			t.Errorf("%s access token after password change: %v", name, err)
		}
		if _, err := e.id.Refresh(ctx, old.RefreshToken); cases.ErrorCode(err) != cases.EUNAUTHORIZED {
			t.Errorf("%s refresh after password change: %v", name, err)
		}
	}
	if _, err := e.id.Authenticate(ctx, l.AccessToken); err != nil {
		t.Fatalf("new login after password change: %v", err)
	}
	if _, err := e.id.Login(ctx, "wang", testPassword); cases.ErrorCode(err) != cases.EUNAUTHORIZED {
		t.Fatalf("old password still logs in: %v", err)
	}
	if _, err := e.id.Login(ctx, "wang", "a brand new passphrase"); err != nil {
		t.Fatalf("new password: %v", err)
	}

	// An admin's reset and disabling the account end every session too.
	l2, _ := e.id.Login(ctx, "wang", "a brand new passphrase")
	if err := e.id.ResetPassword(ctx, "operator", wang.ID, "reset by the admin!"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.id.Authenticate(ctx, l2.AccessToken); cases.ErrorCode(err) != cases.EUNAUTHORIZED {
		t.Fatalf("access token after reset: %v", err)
	}
	l3, err := e.id.Login(ctx, "wang", "reset by the admin!")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.id.SetStatus(ctx, "operator", wang.ID, cases.AccountDisabled); err != nil {
		t.Fatal(err)
	}
	if _, err := e.id.Authenticate(ctx, l3.AccessToken); cases.ErrorCode(err) != cases.EUNAUTHORIZED {
		t.Fatalf("access token of a disabled account: %v", err)
	}
	if _, err := e.id.Login(ctx, "wang", "reset by the admin!"); cases.ErrorMessage(err) != msgBadCredentials {
		t.Fatalf("a disabled account logs in: %v", err)
	}
	if _, err := e.id.SetStatus(ctx, "operator", wang.ID, cases.AccountActive); err != nil {
		t.Fatal(err)
	}
	if _, err := e.id.Login(ctx, "wang", "reset by the admin!"); err != nil {
		t.Fatalf("re-enabled account: %v", err)
	}
}

// TestRehashOnLogin: a hash made with other parameters is replaced at
// the next successful login.
func TestRehashOnLogin(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	wang := e.staffFixture()[cases.StaffMediator]
	stronger := e.newService(e.signer, staffKey, nil)
	stronger.p.Hash = HashParams{Memory: 128, Time: 1, Threads: 1}
	stronger.hasher.params = stronger.p.Hash
	if _, err := stronger.Login(ctx, "wang", testPassword); err != nil {
		t.Fatal(err)
	}
	a, _ := e.id.Account(ctx, wang.ID)
	if !strings.Contains(a.PasswordHash, "m=128,") {
		t.Fatalf("hash not upgraded: %s", a.PasswordHash)
	}
	if _, err := e.id.Login(ctx, "wang", testPassword); err != nil {
		t.Fatalf("login with the upgraded hash: %v", err)
	}
}

// TestStaffKeyRotation: access tokens signed with the old staff key
// verify while it is kept as an older key; new ones use the new key.
func TestStaffKeyRotation(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	e.staffFixture()
	l, _ := e.id.Login(ctx, "wang", testPassword)
	newKey := staffKey
	newKey.ID, newKey.Secret = "sk2", []byte(strings.Repeat("n", 32))
	rotated := e.newService(e.signer, newKey, []joinlink.Key{staffKey})
	if _, err := rotated.Authenticate(ctx, l.AccessToken); err != nil {
		t.Fatalf("old key no longer verifies: %v", err)
	}
	l2, _ := rotated.Login(ctx, "wang", testPassword)
	if _, err := e.id.Authenticate(ctx, l2.AccessToken); err == nil {
		t.Fatal("a token of the new key verified without it")
	}
	dropped := e.newService(e.signer, newKey, nil)
	if _, err := dropped.Authenticate(ctx, l.AccessToken); err == nil {
		t.Fatal("a dropped key still verifies")
	}
}

package web

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/concord-odr/concord/cases"
	"github.com/concord-odr/concord/cases/identity"
	"github.com/concord-odr/concord/cases/joinlink"
	"github.com/concord-odr/concord/cases/sqlite"
	"github.com/concord-odr/concord/web/ratelimit"
)

const (
	testPassword    = "correct horse battery"
	otherCreditCode = "913100007000000000"
)

// idEnv is the HTTP API with staff accounts and join links.
type idEnv struct {
	*apiEnv
	id *identity.Service
}

// newIDEnv serves the API with an identity service; mutate may change the
// handler's parameters.
func newIDEnv(t testing.TB, mutate func(*Params)) *idEnv {
	t.Helper()
	store, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "cases.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	if err := store.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	clock := &testClock{now: time.Date(2026, 3, 2, 10, 0, 0, 0, time.FixedZone("CST", 8*3600))}
	svc := cases.NewService(cases.ServiceParams{Store: store, Now: clock.Now})
	signer, err := joinlink.NewSigner(joinlink.Key{ID: "k1", Secret: bytes.Repeat([]byte("s"), 32)}, nil, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	var base string
	id, err := identity.New(identity.Params{
		Store: store, Now: clock.Now, Links: signer,
		StaffKey: joinlink.Key{ID: "st1", Secret: bytes.Repeat([]byte("t"), 32)},
		BaseURL:  func() string { return base },
		Hash:     identity.HashParams{Memory: 64, Time: 1, Threads: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	p := Params{AdminToken: testAdminToken, ImportSecret: testImportSecret, Cases: svc,
		Tokens: id.Verifier(identity.ForAPI), Identity: id}
	if mutate != nil {
		mutate(&p)
	}
	h := NewHandler(p)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	base = srv.URL
	return &idEnv{apiEnv: &apiEnv{t: t, url: srv.URL, handler: h, svc: svc, store: store, clock: clock, signer: signer}, id: id}
}

// noRedirect is a client that shows redirects instead of following them.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// as sends a request with a bearer token (none when token is empty).
func (e *idEnv) as(token, method, path string, body any, headers ...string) (*http.Response, []byte) {
	e.t.Helper()
	if token != "" {
		headers = append([]string{"Authorization", "Bearer " + token}, headers...)
	}
	return e.request(method, path, body, headers...)
}

// asOK sends a request with a token, wants status and decodes into out.
func (e *idEnv) asOK(token, method, path string, body any, status int, out any) {
	e.t.Helper()
	resp, b := e.as(token, method, path, body)
	if resp.StatusCode != status {
		e.t.Fatalf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			e.t.Fatalf("%s %s: decode %s: %v", method, path, b, err)
		}
	}
}

// login logs in and returns the answer and the refresh cookie.
func (e *idEnv) login(login, password string) (loginAnswer, *http.Cookie) {
	e.t.Helper()
	resp, b := e.request("POST", "/api/v1/auth/login", map[string]any{"login": login, "password": password})
	if resp.StatusCode != 200 {
		e.t.Fatalf("login %s: %d %s", login, resp.StatusCode, b)
	}
	var a loginAnswer
	if err := json.Unmarshal(b, &a); err != nil {
		e.t.Fatal(err)
	}
	return a, refreshCookieOf(e.t, resp)
}

func refreshCookieOf(t testing.TB, resp *http.Response) *http.Cookie {
	t.Helper()
	for _, c := range resp.Cookies() {
		if c.Name == refreshCookie {
			return c
		}
	}
	t.Fatalf("no refresh cookie in %v", resp.Header.Values("Set-Cookie"))
	return nil
}

// world is a small platform to test access on: a province P with
// districts A (and community A1 below it) and B; two ODR enterprises E
// and F; staff of each role; case A at A, a complaint against E, and
// case B at B, each mediating with a session and its parties' join
// tokens.
type world struct {
	*idEnv
	instP, instA, instA1, instB string
	caseA, caseB                cases.Case
	sessA, sessB                sessionAnswer
	accounts                    map[string]*cases.Account
	tokens                      map[string]string
}

func newWorld(t testing.TB) *world {
	e := newIDEnv(t, func(p *Params) {
		big := ratelimit.Rule{Limit: 10000, Window: time.Minute}
		p.Limits = Limits{LoginPerIP: big, LoginPerAccount: big, ExchangePerIP: big, ExchangePerCode: big, RefreshPerIP: big, PasswordPerAcct: big}
	})
	w := &world{idEnv: e, accounts: map[string]*cases.Account{}, tokens: map[string]string{"operator": testAdminToken}}
	op := testAdminToken
	inst := func(code, name, level, parent string) string {
		var i cases.Institution
		body := map[string]any{"code": code, "name": name, "level": level}
		if parent != "" {
			body["parentId"] = parent
		}
		e.asOK(op, "POST", "/api/v1/institutions", body, 201, &i)
		return i.ID
	}
	w.instP = inst("31", "Shanghai", "province", "")
	w.instA = inst("0310", "District A", "district", w.instP)
	w.instA1 = inst("031001", "Community A1", "community", w.instA)
	w.instB = inst("0320", "District B", "district", w.instP)
	for _, cc := range []string{testCreditCode, otherCreditCode} {
		e.asOK(op, "PUT", "/api/v1/enterprises/"+cc, map[string]any{"name": "Shop " + cc[len(cc)-4:]}, 200, nil)
	}
	for _, a := range []struct{ key, role, inst, ent string }{
		{"platform", "platform_admin", "", ""},
		{"adminA", "institution_admin", w.instA, ""},
		{"medA", "mediator", w.instA, ""},
		{"medA1", "mediator", w.instA1, ""},
		{"adminB", "institution_admin", w.instB, ""},
		{"medB", "mediator", w.instB, ""},
		{"agentE", "merchant_agent", "", testCreditCode},
		{"agentF", "merchant_agent", "", otherCreditCode},
	} {
		var acct cases.Account
		body := map[string]any{"login": a.key, "name": a.key, "role": a.role, "password": testPassword}
		if a.inst != "" {
			body["institutionId"] = a.inst
		}
		if a.ent != "" {
			body["enterpriseCode"] = a.ent
		}
		e.asOK(op, "POST", "/api/v1/accounts", body, 201, &acct)
		w.accounts[a.key] = &acct
		ans, _ := e.login(a.key, testPassword)
		w.tokens[a.key] = ans.AccessToken
	}
	w.caseA, w.sessA = w.mediating(w.instA, true, "A")
	w.caseB, w.sessB = w.mediating(w.instB, false, "B")
	return w
}

// mediating opens a case at inst, takes it to a scheduled session and
// keeps its parties' join tokens as party<suffix> and medPart<suffix>.
func (w *world) mediating(inst string, odr bool, suffix string) (cases.Case, sessionAnswer) {
	w.t.Helper()
	op := testAdminToken
	body := caseBody(inst, odr)
	body["channel"] = "window"
	var c cases.Case
	w.asOK(op, "POST", "/api/v1/cases", body, 201, &c)
	for _, to := range []string{"dispatched", "respondent_contacted", "accepted"} {
		w.asOK(op, "POST", "/api/v1/cases/"+c.ID+"/transitions", map[string]any{"to": to}, 200, &c)
	}
	var s sessionAnswer
	w.asOK(op, "POST", "/api/v1/cases/"+c.ID+"/sessions", map[string]any{"participants": []map[string]any{
		{"name": "Mediator " + suffix, "role": "mediator", "side": "neutral"},
		{"name": "Applicant " + suffix, "role": "party", "side": "applicant"},
		{"name": "Respondent " + suffix, "role": "party", "side": "respondent"},
	}}, 201, &s)
	for _, l := range s.Links {
		var ex identity.Exchanged
		w.asOK("", "POST", "/api/v1/join/exchange", map[string]any{"code": l.Code}, 200, &ex)
		switch l.Side {
		case cases.SideNeutral:
			w.tokens["medPart"+suffix] = ex.Token
		case cases.SideApplicant:
			w.tokens["party"+suffix] = ex.Token
		case cases.SideRespondent:
			w.tokens["resp"+suffix] = ex.Token
		}
	}
	c.State = cases.StateMediating
	return c, s
}

// link returns the session's link of a side.
func (s sessionAnswer) link(t testing.TB, side string) identity.IssuedLink {
	t.Helper()
	for _, l := range s.Links {
		if l.Side == side {
			return l
		}
	}
	t.Fatalf("no %s link", side)
	return identity.IssuedLink{}
}

package web

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/concord-odr/concord/cases"
	"github.com/concord-odr/concord/cases/identity"
	"github.com/concord-odr/concord/signaling/cluster/redistest"
	"github.com/concord-odr/concord/web/ratelimit"
)

// createStaff creates an account with the operator token and logs in.
func (e *idEnv) createStaff(login, role, inst string) (cases.Account, loginAnswer, *http.Cookie) {
	e.t.Helper()
	var a cases.Account
	body := map[string]any{"login": login, "name": login, "role": role, "password": testPassword}
	if inst != "" {
		body["institutionId"] = inst
	}
	e.asOK(testAdminToken, "POST", "/api/v1/accounts", body, 201, &a)
	ans, c := e.login(login, testPassword)
	return a, ans, c
}

// withCookie sends a request with a refresh cookie.
func (e *idEnv) withCookie(method, path string, c *http.Cookie, headers ...string) (*http.Response, []byte) {
	e.t.Helper()
	return e.request(method, path, nil, append([]string{"Cookie", c.Name + "=" + c.Value}, headers...)...)
}

func TestStaffLoginOverHTTP(t *testing.T) {
	e := newIDEnv(t, nil)
	_, ans, cookie := e.createStaff("root", "platform_admin", "")
	if ans.TokenType != "Bearer" || ans.ExpiresIn < 14*60 || ans.ExpiresIn > 15*60 || ans.Account.Login != "root" {
		t.Fatalf("login answer: %+v", ans)
	}
	if !cookie.HttpOnly || !cookie.Secure || cookie.SameSite != http.SameSiteStrictMode || cookie.Path != "/api/v1/auth" || cookie.MaxAge <= 0 {
		t.Fatalf("refresh cookie: %+v", cookie)
	}
	resp, b := e.request("POST", "/api/v1/auth/login", map[string]any{"login": "root", "password": testPassword})
	if strings.Contains(string(b), cookieValue(resp)) {
		t.Fatal("the refresh token is in the body")
	}
	var me meAnswer
	e.asOK(ans.AccessToken, "GET", "/api/v1/auth/me", nil, 200, &me)
	if me.Kind != "staff" || me.Account.Role != cases.StaffPlatformAdmin {
		t.Fatalf("me: %+v", me)
	}
	e.asOK(ans.AccessToken, "GET", "/api/v1/cases", nil, 200, nil)

	// Wrong passwords and unknown logins get one answer.
	for _, body := range []map[string]any{{"login": "root", "password": "wrong password!"}, {"login": "nobody", "password": testPassword}} {
		resp, b := e.request("POST", "/api/v1/auth/login", body)
		wantProblem(t, resp, b, 401, cases.EUNAUTHORIZED, "")
		if !strings.Contains(string(b), "the login or the password is wrong") {
			t.Fatalf("login refusal: %s", b)
		}
	}

	// Refresh rotates the cookie.
	resp, b = e.withCookie("POST", "/api/v1/auth/refresh", cookie)
	if resp.StatusCode != 200 {
		t.Fatalf("refresh: %d %s", resp.StatusCode, b)
	}
	next := refreshCookieOf(t, resp)
	if next.Value == cookie.Value {
		t.Fatal("refresh did not rotate the cookie")
	}
	var ans2 loginAnswer
	_ = json.Unmarshal(b, &ans2)
	e.asOK(ans2.AccessToken, "GET", "/api/v1/cases", nil, 200, nil)

	// Cross-site refreshes are refused.
	resp, b = e.withCookie("POST", "/api/v1/auth/refresh", next, "Origin", "https://evil.example")
	wantProblem(t, resp, b, 403, cases.EFORBIDDEN, "")
	resp, b = e.withCookie("POST", "/api/v1/auth/refresh", next, "Sec-Fetch-Site", "cross-site")
	wantProblem(t, resp, b, 403, cases.EFORBIDDEN, "")
	resp, b = e.request("POST", "/api/v1/auth/refresh", nil)
	wantProblem(t, resp, b, 401, codeUnauthorized, "")

	// The old cookie again: the login ends, the newest cookie and access
	// token with it.
	resp, b = e.withCookie("POST", "/api/v1/auth/refresh", cookie)
	wantProblem(t, resp, b, 401, cases.EUNAUTHORIZED, "")
	if c := refreshCookieOf(t, resp); c.MaxAge >= 0 && c.Value != "" {
		t.Fatalf("a refused refresh does not clear the cookie: %+v", c)
	}
	resp, b = e.withCookie("POST", "/api/v1/auth/refresh", next)
	wantProblem(t, resp, b, 401, cases.EUNAUTHORIZED, "")
	resp, b = e.as(ans2.AccessToken, "GET", "/api/v1/cases", nil)
	wantProblem(t, resp, b, 401, cases.EUNAUTHORIZED, "")

	// Logout ends the login of the cookie and of the access token.
	ans3, c3 := e.login("root", testPassword)
	resp, _ = e.request("POST", "/api/v1/auth/logout", nil, "Cookie", c3.Name+"="+c3.Value, "Authorization", "Bearer "+ans3.AccessToken)
	if resp.StatusCode != 204 || refreshCookieOf(t, resp).MaxAge >= 0 {
		t.Fatalf("logout: %d %v", resp.StatusCode, resp.Header.Values("Set-Cookie"))
	}
	resp, b = e.as(ans3.AccessToken, "GET", "/api/v1/cases", nil)
	wantProblem(t, resp, b, 401, cases.EUNAUTHORIZED, "")
	resp, b = e.withCookie("POST", "/api/v1/auth/refresh", c3)
	wantProblem(t, resp, b, 401, cases.EUNAUTHORIZED, "")

	// A password change ends every login and answers a new one.
	ans4, _ := e.login("root", testPassword)
	ans5, _ := e.login("root", testPassword)
	resp, b = e.as(ans4.AccessToken, "POST", "/api/v1/auth/password", map[string]any{"currentPassword": "nope nope nope", "newPassword": "a brand new passphrase"})
	wantProblem(t, resp, b, 422, cases.EINVALID, "currentPassword")
	var changed loginAnswer
	e.asOK(ans4.AccessToken, "POST", "/api/v1/auth/password", map[string]any{"currentPassword": testPassword, "newPassword": "a brand new passphrase"}, 200, &changed)
	for _, old := range []string{ans4.AccessToken, ans5.AccessToken} {
		resp, b = e.as(old, "GET", "/api/v1/cases", nil)
		wantProblem(t, resp, b, 401, cases.EUNAUTHORIZED, "")
	}
	e.asOK(changed.AccessToken, "GET", "/api/v1/cases", nil, 200, nil)
}

func cookieValue(resp *http.Response) string {
	for _, c := range resp.Cookies() {
		if c.Name == refreshCookie {
			return c.Value
		}
	}
	return "no cookie"
}

// TestAccountsOverHTTP: the operator token bootstraps the first platform
// admin; accounts are managed within scope; disabling ends logins.
func TestAccountsOverHTTP(t *testing.T) {
	w := newWorld(t)
	medA := w.accounts["medA"]
	var got cases.Account
	w.asOK(w.tokens["medA"], "GET", "/api/v1/accounts/"+medA.ID, nil, 200, &got) // oneself
	if got.ID != medA.ID || strings.Contains(mustJSON(t, got), "argon2") {
		t.Fatalf("account: %+v", got)
	}
	// The institution admin of A disables mediator A: its token stops.
	w.asOK(w.tokens["adminA"], "PUT", "/api/v1/accounts/"+medA.ID+"/status", map[string]any{"status": "disabled"}, 200, &got)
	if got.Status != cases.AccountDisabled {
		t.Fatalf("status: %+v", got)
	}
	resp, b := w.as(w.tokens["medA"], "GET", "/api/v1/cases", nil)
	wantProblem(t, resp, b, 401, cases.EUNAUTHORIZED, "")
	w.asOK(w.tokens["adminA"], "PUT", "/api/v1/accounts/"+medA.ID+"/status", map[string]any{"status": "active"}, 200, nil)
	// A reset password works, the old one does not.
	resp, _ = w.as(w.tokens["adminA"], "POST", "/api/v1/accounts/"+medA.ID+"/password", map[string]any{"password": "reset by the admin!"})
	if resp.StatusCode != 204 {
		t.Fatalf("reset: %d", resp.StatusCode)
	}
	w.login("medA", "reset by the admin!")
	resp, b = w.request("POST", "/api/v1/auth/login", map[string]any{"login": "medA", "password": testPassword})
	wantProblem(t, resp, b, 401, cases.EUNAUTHORIZED, "")
	// An institution admin creates a mediator below its institution.
	w.asOK(w.tokens["adminA"], "POST", "/api/v1/accounts", map[string]any{"login": "zhao", "name": "Zhao", "role": "mediator",
		"institutionId": w.instA1, "password": testPassword}, 201, &got)
	resp, b = w.as(w.tokens["adminA"], "POST", "/api/v1/accounts", map[string]any{"login": "zhao", "name": "Zhao", "role": "mediator",
		"institutionId": w.instA1, "password": testPassword})
	wantProblem(t, resp, b, 409, cases.ECONFLICT, "")
	resp, b = w.as(w.tokens["adminA"], "POST", "/api/v1/accounts", map[string]any{"login": "qian", "name": "Qian", "role": "mediator",
		"institutionId": w.instA1, "password": "short"})
	wantProblem(t, resp, b, 422, cases.EINVALID, "password")
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestScheduleSendsLinks: scheduling a session issues a short link per
// participant and queues the parties' ones for SMS; a link exchanges for
// a token that opens the party's own case; revoking it refuses both.
func TestScheduleSendsLinks(t *testing.T) {
	w := newWorld(t)
	// The world's sessions were scheduled by the operator with the case's
	// phone numbers: the applicant's link went by SMS; the respondent has
	// no phone; the mediator's link is not sent.
	app, resp, med := w.sessA.link(t, "applicant"), w.sessA.link(t, "respondent"), w.sessA.link(t, "neutral")
	if app.Notified != cases.NotifySMS || resp.Notified != "" || med.Notified != "" {
		t.Fatalf("notified: %+v", w.sessA.Links)
	}
	if !strings.HasPrefix(app.URL, w.url+"/j/") || len(app.URL) != len(w.url)+3+identity.CodeLen {
		t.Fatalf("link URL %q", app.URL)
	}
	var m *cases.OutboxMessage
	_ = w.store.View(t.Context(), func(tx cases.Tx) error {
		var err error
		m, err = tx.OutboxMessage(t.Context(), app.MessageID)
		return err
	})
	if m == nil || m.To != "+86 138 0000 0000" || !strings.Contains(m.Text, app.URL) {
		t.Fatalf("outbox: %+v", m)
	}

	// Explicit phones and WeChat, and notify false.
	var s sessionAnswer
	w.asOK(w.tokens["medA"], "POST", "/api/v1/cases/"+w.caseA.ID+"/sessions", map[string]any{"participants": []map[string]any{
		{"name": "M", "role": "mediator", "side": "neutral", "phone": "13900000000"},
		{"name": "P", "role": "party", "side": "applicant", "phone": "oWx_openid_42", "channel": "wechat"},
		{"name": "Q", "role": "party", "side": "applicant"},
	}}, 201, &s)
	if len(s.Links) != 3 || s.Links[0].Notified != "sms" || s.Links[1].Notified != "wechat" || s.Links[2].Notified != "" {
		t.Fatalf("links: %+v", s.Links)
	}
	var quiet sessionAnswer
	w.asOK(w.tokens["medA"], "POST", "/api/v1/cases/"+w.caseA.ID+"/sessions", map[string]any{"notify": false, "participants": []map[string]any{
		{"name": "M", "role": "mediator", "side": "neutral"}, {"name": "P", "role": "party", "side": "applicant"},
	}}, 201, &quiet)
	for _, l := range quiet.Links {
		if l.Notified != "" {
			t.Fatalf("notify false sent %+v", l)
		}
	}
	r, b := w.as(w.tokens["medA"], "POST", "/api/v1/cases/"+w.caseA.ID+"/sessions", map[string]any{"participants": []map[string]any{
		{"name": "M", "role": "mediator", "side": "neutral", "phone": "call me maybe"}}})
	wantProblem(t, r, b, 422, cases.EINVALID, "participants.phone")

	// The exchanged token opens the party's own case, not another.
	tok := w.tokens["partyA"]
	w.asOK(tok, "GET", "/api/v1/cases/"+w.caseA.ID, nil, 200, nil)
	r, b = w.as(tok, "GET", "/api/v1/cases/"+w.caseB.ID, nil)
	wantProblem(t, r, b, 404, cases.ENOTFOUND, "")

	// Revoking the applicant refuses its token and its link.
	var rev cases.Revocation
	w.asOK(w.tokens["medA"], "POST", "/api/v1/sessions/"+w.sessA.ID+"/revocations",
		map[string]any{"participantId": app.ParticipantID, "reason": "wrong person"}, 201, &rev)
	if rev.Kind != cases.RevokeParticipant || rev.Actor != "staff:"+w.accounts["medA"].ID {
		t.Fatalf("revocation: %+v", rev)
	}
	r, b = w.as(tok, "GET", "/api/v1/cases/"+w.caseA.ID, nil)
	wantProblem(t, r, b, 401, cases.EUNAUTHORIZED, "")
	r, b = w.request("POST", "/api/v1/join/exchange", map[string]any{"code": app.Code})
	wantProblem(t, r, b, 410, identity.ELinkRevoked, "")
	// The respondent's link still works; a new link for it too.
	w.asOK("", "POST", "/api/v1/join/exchange", map[string]any{"code": strings.ToUpper(resp.Code)}, 200, nil)
	var again struct {
		Items []identity.IssuedLink `json:"items"`
	}
	w.asOK(w.tokens["medA"], "POST", "/api/v1/sessions/"+w.sessA.ID+"/links", map[string]any{
		"participantIds": []string{resp.ParticipantID},
		"recipients":     []map[string]any{{"participantId": resp.ParticipantID, "phone": "+86 139 1111 2222"}},
	}, 201, &again)
	if len(again.Items) != 1 || again.Items[0].Notified != "sms" {
		t.Fatalf("reissued: %+v", again)
	}
	// A revoked participant gets no new link.
	r, b = w.as(w.tokens["medA"], "POST", "/api/v1/sessions/"+w.sessA.ID+"/links", map[string]any{"participantIds": []string{app.ParticipantID}})
	wantProblem(t, r, b, 409, cases.ETRANSITION, "")
}

func TestExchangeAndShortLink(t *testing.T) {
	w := newWorld(t)
	for _, tt := range []struct{ in, want string }{
		{"K3V9-X2M7-QA", "/join#code=k3v9x2m7qa"},
		{"k3v9x2m7qa", "/join#code=k3v9x2m7qa"},
		{"<script>", "/join#code=invalid"},
		{"waytoolongforacode", "/join#code=invalid"},
	} {
		req, _ := http.NewRequest("GET", w.url+"/j/"+tt.in, nil)
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 302 || resp.Header.Get("Location") != tt.want || resp.Header.Get("Cache-Control") != "no-store" ||
			resp.Header.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("/j/%s: %d %q", tt.in, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	for _, code := range []string{"k3v9x2m7qa", "nonsense", ""} {
		r, b := w.request("POST", "/api/v1/join/exchange", map[string]any{"code": code})
		wantProblem(t, r, b, 404, identity.ELinkNotFound, "")
	}
	r, b := w.request("POST", "/api/v1/join/exchange", map[string]any{"code": "x", "extra": 1})
	wantProblem(t, r, b, 400, codeBadRequest, "")

	// After the session ends, its links no longer exchange, but the
	// parties still read their case (the outcome).
	med := w.tokens["medPartA"]
	w.asOK(med, "POST", "/api/v1/sessions/"+w.sessA.ID+"/end", map[string]any{"result": "settled", "terms": "refund"}, 200, nil)
	r, b = w.request("POST", "/api/v1/join/exchange", map[string]any{"code": w.sessA.link(t, "applicant").Code})
	wantProblem(t, r, b, 410, identity.ESessionEnded, "")
	w.asOK(w.tokens["partyA"], "GET", "/api/v1/cases/"+w.caseA.ID, nil, 200, nil)
}

func TestLoginRateLimits(t *testing.T) {
	e := newIDEnv(t, func(p *Params) {
		p.Limits = Limits{
			LoginPerAccount: ratelimit.Rule{Limit: 3, Window: time.Minute},
			LoginPerIP:      ratelimit.Rule{Limit: 6, Window: time.Minute},
		}
	})
	e.createStaff("root", "platform_admin", "")
	try := func(login, pw string) (*http.Response, []byte) {
		return e.request("POST", "/api/v1/auth/login", map[string]any{"login": login, "password": pw})
	}
	// createStaff logged in once: two more tries for root, then 429.
	for range 2 {
		if r, b := try("root", "wrong password!"); r.StatusCode != 401 {
			t.Fatalf("%d %s", r.StatusCode, b)
		}
	}
	r, b := try("ROOT", testPassword) // the right password too: the account is limited
	wantProblem(t, r, b, 429, codeRateLimited, "")
	if s, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || s < 1 || s > 60 {
		t.Fatalf("Retry-After %q", r.Header.Get("Retry-After"))
	}
	// Other accounts from this address: limited by the address after 6.
	if r, _ := try("someone", "x"); r.StatusCode != 401 {
		t.Fatalf("another account: %d", r.StatusCode)
	}
	if r, _ := try("someone-else", "x"); r.StatusCode != 401 {
		t.Fatalf("another account: %d", r.StatusCode)
	}
	r, b = try("third", "x")
	wantProblem(t, r, b, 429, codeRateLimited, "")
}

func TestExchangeRateLimits(t *testing.T) {
	w := newIDEnv(t, func(p *Params) {
		p.Limits = Limits{
			ExchangePerIP:   ratelimit.Rule{Limit: 5, Window: time.Minute},
			ExchangePerCode: ratelimit.Rule{Limit: 2, Window: time.Minute},
		}
	})
	for range 2 {
		r, _ := w.request("POST", "/api/v1/join/exchange", map[string]any{"code": "K3V9X2M7QA"})
		if r.StatusCode != 404 {
			t.Fatalf("%d", r.StatusCode)
		}
	}
	r, b := w.request("POST", "/api/v1/join/exchange", map[string]any{"code": "k3v9-x2m7-qa"}) // the same code spelt otherwise
	wantProblem(t, r, b, 429, codeRateLimited, "")
	for range 2 {
		w.request("POST", "/api/v1/join/exchange", map[string]any{"code": "aaaaaaaaaa"})
	}
	r, b = w.request("POST", "/api/v1/join/exchange", map[string]any{"code": "bbbbbbbbbb"})
	wantProblem(t, r, b, 429, codeRateLimited, "")
}

// TestClientIP: behind a trusted proxy the client is the nearest
// untrusted address of X-Forwarded-For; otherwise the header is ignored.
func TestClientIP(t *testing.T) {
	h := NewHandler(Params{TrustedProxies: mustPrefixes(t, "10.0.0.0/8")})
	for _, tt := range []struct{ remote, xff, want string }{
		{"203.0.113.5:1234", "", "203.0.113.5"},
		{"203.0.113.5:1234", "198.51.100.1", "203.0.113.5"}, // untrusted peer: header ignored
		{"10.1.2.3:1234", "198.51.100.1", "198.51.100.1"},
		{"10.1.2.3:1234", "198.51.100.1, 10.9.9.9", "198.51.100.1"},
		{"10.1.2.3:1234", "6.6.6.6, 198.51.100.1", "198.51.100.1"}, // a client cannot spoof past the proxy
		{"10.1.2.3:1234", "garbage", "10.1.2.3"},
		{"[2001:db8:1:2:3:4:5:6]:443", "", "2001:db8:1:2::/64"},
		{"[::ffff:203.0.113.9]:80", "", "203.0.113.9"},
	} {
		r, _ := http.NewRequest("GET", "/", nil)
		r.RemoteAddr = tt.remote
		if tt.xff != "" {
			r.Header.Set("X-Forwarded-For", tt.xff)
		}
		if got := h.clientIP(r); got != tt.want {
			t.Errorf("clientIP(%s, %q) = %s, want %s", tt.remote, tt.xff, got, tt.want)
		}
	}
}

// TestRedisRateLimitAcrossNodes: two API nodes sharing Redis share the
// login limits.
func TestRedisRateLimitAcrossNodes(t *testing.T) {
	client := redistest.Client(t)
	prefix := redistest.Prefix(t, client)
	limits := Limits{LoginPerAccount: ratelimit.Rule{Limit: 3, Window: time.Minute}}
	node := func() *idEnv {
		return newIDEnv(t, func(p *Params) {
			p.Limiter = ratelimit.NewRedis(ratelimit.RedisParams{Client: client, Prefix: prefix})
			p.Limits = limits
		})
	}
	a, b := node(), node()
	codes := []int{}
	for i := range 4 {
		n := a
		if i%2 == 1 {
			n = b
		}
		r, _ := n.request("POST", "/api/v1/auth/login", map[string]any{"login": "wang", "password": "wrong password!"})
		codes = append(codes, r.StatusCode)
	}
	if want := []int{401, 401, 401, 429}; !slices.Equal(codes, want) {
		t.Fatalf("answers across two nodes: %v, want %v", codes, want)
	}
}

func mustPrefixes(t *testing.T, cidrs ...string) []netip.Prefix {
	t.Helper()
	var out []netip.Prefix
	for _, c := range cidrs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

// FuzzBearer: no Authorization header gets a staff route to answer
// anything but 401, nor makes the server fail.
func FuzzBearer(f *testing.F) {
	e := newIDEnv(f, nil)
	for _, s := range []string{"", "Bearer ", "Bearer x", "Basic abc", "Bearer " + testAdminToken + "x",
		"Bearer eyJhbGciOiJub25lIn0.eyJhdWQiOiJjb25jb3JkLXN0YWZmIn0.", "Bearer a.b.c", "bearer " + testAdminToken} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, auth string) {
		if strings.ContainsAny(auth, "\r\n\x00") || auth == "Bearer "+testAdminToken {
			return // not a header a client can send, or the real credential
		}
		req, err := http.NewRequest("GET", e.url+"/api/v1/cases", nil)
		if err != nil {
			return
		}
		req.Header.Set("Authorization", auth)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return // refused by the client library
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Fatalf("Authorization %q: %d", auth, resp.StatusCode)
		}
	})
}

// FuzzExchangeHTTP: no body makes the join exchange answer a token or
// fail; only refusals.
func FuzzExchangeHTTP(f *testing.F) {
	e := newIDEnv(f, func(p *Params) {
		big := ratelimit.Rule{Limit: 1 << 30, Window: time.Minute}
		p.Limits = Limits{ExchangePerIP: big, ExchangePerCode: big, ExchangeBurstAll: big}
	})
	for _, s := range []string{`{"code":"k3v9x2m7qa"}`, `{"code":""}`, `{}`, `[]`, `{"code":1}`, `{"code":"K3V9-X2M7-QA"}`,
		`{"code":"` + strings.Repeat("a", 5000) + `"}`, `{"code":"\u0000"}`, ``} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		resp, err := http.Post(e.url+"/api/v1/join/exchange", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch resp.StatusCode {
		case 400, 404, 413:
		default:
			t.Fatalf("body %q: %d %s", body, resp.StatusCode, b)
		}
	})
}

// fakeRooms records what the handler asks of the room server.
type fakeRooms struct {
	mu      sync.Mutex
	revoked []string
}

func (f *fakeRooms) EndSession(string, string) {}

func (f *fakeRooms) RevokeLinks(sessionID, participantID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.revoked = append(f.revoked, sessionID+"/"+participantID)
}

// TestRevocationDropsConnections: revoking a participant's or a
// session's links tells the room server, which implements LinkRevoker.
func TestRevocationDropsConnections(t *testing.T) {
	rooms := &fakeRooms{}
	e := newIDEnv(t, func(p *Params) { p.Rooms = rooms })
	w := &world{idEnv: e, accounts: map[string]*cases.Account{}, tokens: map[string]string{}}
	e.asOK(testAdminToken, "POST", "/api/v1/institutions", map[string]any{"code": "0310", "name": "A", "level": "district"}, 201, nil)
	var insts struct {
		Items []cases.Institution `json:"items"`
	}
	e.asOK("", "GET", "/api/v1/institutions", nil, 200, &insts)
	_, s := w.mediating(insts.Items[0].ID, false, "A")
	app := s.link(t, "applicant")
	e.asOK(testAdminToken, "POST", "/api/v1/sessions/"+s.ID+"/revocations", map[string]any{"jti": linkID(t, w.tokens["partyA"])}, 201, nil)
	e.asOK(testAdminToken, "POST", "/api/v1/sessions/"+s.ID+"/revocations", map[string]any{"participantId": app.ParticipantID}, 201, nil)
	e.asOK(testAdminToken, "POST", "/api/v1/sessions/"+s.ID+"/revocations", map[string]any{}, 201, nil)
	rooms.mu.Lock()
	defer rooms.mu.Unlock()
	if want := []string{s.ID + "/" + app.ParticipantID, s.ID + "/"}; !slices.Equal(rooms.revoked, want) {
		t.Fatalf("room server told %v, want %v", rooms.revoked, want)
	}
}

// linkID returns the jti of a join token.
func linkID(t *testing.T, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		ID string `json:"jti"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c.ID
}

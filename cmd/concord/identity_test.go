package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/concord-odr/concord/cases/joinlink"
)

// TestUserAddAndLogin: "concord user add" creates the first platform
// admin in the data folder; it logs in to the running server and opens
// the staff API with its access token.
func TestUserAddAndLogin(t *testing.T) {
	ts := startTestServer(t)
	var out, errb bytes.Buffer
	code := runUser([]string{"add", "--data-dir", ts.Config.DataDir, "--login", "Root", "--role", "platform_admin", "--password-stdin"},
		nil, strings.NewReader("correct horse battery\n"), &out, &errb)
	if code != 0 || !strings.Contains(out.String(), "created platform_admin root") {
		t.Fatalf("user add: %d %q %q", code, out.String(), errb.String())
	}
	// A generated password is printed once.
	out.Reset()
	if code := runUser([]string{"add", "--data-dir", ts.Config.DataDir, "--login", "li", "--role", "mediator",
		"--institution", demoInstitutionID}, nil, nil, &out, &errb); code != 0 || !strings.Contains(out.String(), "password (shown once") {
		t.Fatalf("user add with a generated password: %d %q", code, out.String())
	}
	for _, bad := range [][]string{
		{"add", "--data-dir", ts.Config.DataDir, "--login", "root", "--role", "platform_admin"}, // taken
		{"add", "--data-dir", ts.Config.DataDir, "--login", "x1", "--role", "king"},
		{"add", "--data-dir", ts.Config.DataDir, "--role", "platform_admin"},
		{"remove"},
	} {
		errb.Reset()
		if code := runUser(bad, nil, nil, io.Discard, &errb); code == 0 {
			t.Errorf("user %v succeeded", bad)
		}
	}
	if code := run([]string{"user", "add", "--help"}, nil, io.Discard, io.Discard); code != 0 {
		t.Fatalf("user add --help: %d", code)
	}

	code, body := post(t, ts.BaseURL+"/api/v1/auth/login", "", "application/json", `{"login":"root","password":"correct horse battery"}`)
	if code != 200 || body["accessToken"] == nil {
		t.Fatalf("login: %d %v", code, body)
	}
	tok := body["accessToken"].(string)
	if code := getJSON(t, ts.BaseURL+"/api/v1/cases", tok, nil); code != 200 {
		t.Fatalf("staff API with the access token: %d", code)
	}
	if code := getJSON(t, ts.BaseURL+"/api/v1/cases/"+ts.Demo.CaseID, tok, nil); code != 200 {
		t.Fatalf("case with the access token: %d", code)
	}
}

// TestShortLinkJoin: the demo's short link redirects to the join page
// with its code; the code exchanges for a token that joins the room.
func TestShortLinkJoin(t *testing.T) {
	ts := startTestServer(t)
	l, ok := ts.Main.Demo.Link("consumer")
	if !ok || !strings.HasPrefix(l.Short, ts.BaseURL+"/j/") {
		t.Fatalf("demo short link: %+v", l)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(l.Short)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	code := strings.TrimPrefix(l.Short, ts.BaseURL+"/j/")
	if resp.StatusCode != 302 || resp.Header.Get("Location") != "/join#code="+code {
		t.Fatalf("short link: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	status, body := post(t, ts.BaseURL+"/api/v1/join/exchange", "", "application/json", `{"code":"`+strings.ToUpper(code)+`"}`)
	if status != 200 {
		t.Fatalf("exchange: %d %v", status, body)
	}
	ws, m := dialSignaling(t, ts.BaseURL, body["token"].(string))
	defer ws.Close()
	if m["type"] != "joined" {
		t.Fatalf("join with the exchanged token: %v", m)
	}
}

// TestRevokedLinkRefused: a participant's links revoked by staff no
// longer join, before they expire.
func TestRevokedLinkRefused(t *testing.T) {
	ts := startTestServer(t)
	consumer := tokenFromURL(ts.Demo.Consumer)
	claims, err := ts.signer.Verify(consumer)
	if err != nil {
		t.Fatal(err)
	}
	status, body := post(t, ts.BaseURL+"/api/v1/sessions/"+ts.Demo.SessionID+"/revocations", ts.Config.AdminToken,
		"application/json", `{"participantId":"`+claims.ParticipantID()+`","reason":"sent to the wrong number"}`)
	if status != 201 {
		t.Fatalf("revoke: %d %v", status, body)
	}
	ws, m := dialSignaling(t, ts.BaseURL, consumer)
	defer ws.Close()
	if m["code"] != "invalid_token" || !strings.Contains(m["message"].(string), "revoked") {
		t.Fatalf("revoked link joined: %v", m)
	}
	var p map[string]any
	if code := getJSON(t, ts.BaseURL+"/api/v1/cases/"+ts.Demo.CaseID, consumer, &p); code != 401 {
		t.Fatalf("revoked token reads the case: %d %v", code, p)
	}
	// The other parties are untouched.
	ws2, m := dialSignaling(t, ts.BaseURL, tokenFromURL(ts.Demo.Merchant))
	defer ws2.Close()
	if m["type"] != "joined" {
		t.Fatalf("merchant: %v", m)
	}
}

// TestKeyRotationAcrossRestart: after the join link key is rotated in the
// data folder, links signed with the old key still join until they
// expire, and new ones are signed with the new key.
func TestKeyRotationAcrossRestart(t *testing.T) {
	cfg := testConfig(t)
	first := startTestServerWith(t, cfg)
	old := tokenFromURL(first.Demo.Consumer)
	oldKid := kid(t, old)
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := joinlink.RotateKey(cfg.DataDir, "joinlink", "1"); err != nil {
		t.Fatal(err)
	}
	second := startTestServerWith(t, cfg)
	if k := kid(t, tokenFromURL(second.Demo.Consumer)); k == oldKid {
		t.Fatalf("new links still signed with %s", k)
	}
	ws, m := dialSignaling(t, second.BaseURL, old)
	defer ws.Close()
	if m["type"] != "joined" {
		t.Fatalf("a link of the rotated-out key: %v", m)
	}
}

func kid(t *testing.T, token string) string {
	t.Helper()
	tok, _, err := jwt.NewParser().ParseUnverified(token, &joinlink.Claims{})
	if err != nil {
		t.Fatal(err)
	}
	k, _ := tok.Header["kid"].(string)
	return k
}

// TestScheduleNotifiesGateway: with a gateway configured, scheduling a
// session through the API posts each party's short link to it.
func TestScheduleNotifiesGateway(t *testing.T) {
	var mu sync.Mutex
	var got []map[string]string
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]string
		_ = json.NewDecoder(r.Body).Decode(&m)
		if r.Header.Get("Idempotency-Key") != m["id"] || r.Header.Get("X-Concord-Signature") == "" {
			w.WriteHeader(400)
			return
		}
		mu.Lock()
		got = append(got, m)
		mu.Unlock()
		w.WriteHeader(202)
	}))
	defer gw.Close()
	cfg := testConfig(t)
	cfg.NotifyWebhookURL = gw.URL
	cfg.NotifyWebhookSecret = "gateway-secret"
	ts := startTestServerWith(t, cfg)
	c := otherCase(t, ts)
	status, body := post(t, ts.BaseURL+"/api/v1/cases/"+c+"/sessions", ts.Config.AdminToken, "application/json",
		`{"participants":[{"name":"M","role":"mediator","side":"neutral"},{"name":"A","role":"party","side":"applicant","phone":"+86 138 0000 1111"}]}`)
	if status != 201 {
		t.Fatalf("schedule: %d %v", status, body)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway received %d messages", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got[0]["to"] != "+86 138 0000 1111" || !strings.Contains(got[0]["text"], ts.BaseURL+"/j/") {
		t.Fatalf("gateway got %v", got[0])
	}
}

// otherCase opens a case of the demo institution and takes it to
// accepted.
func otherCase(t *testing.T, ts *testServer) string {
	t.Helper()
	status, body := post(t, ts.BaseURL+"/api/v1/cases", ts.Config.AdminToken, "application/json",
		`{"channel":"window","institutionId":"`+demoInstitutionID+`","category":"e-commerce",`+
			`"applicant":{"name":"A","kind":"person"},"respondent":{"name":"R","kind":"organisation"},"claims":"x","amountCents":1}`)
	if status != 201 {
		t.Fatalf("open case: %d %v", status, body)
	}
	id := body["id"].(string)
	for _, to := range []string{"dispatched", "respondent_contacted", "accepted"} {
		if status, body := post(t, ts.BaseURL+"/api/v1/cases/"+id+"/transitions", ts.Config.AdminToken, "application/json", `{"to":"`+to+`"}`); status != 200 {
			t.Fatalf("%s: %d %v", to, status, body)
		}
	}
	return id
}

func TestIdentityConfig(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--notify-webhook-url", "ftp://gw"}, "notify-webhook-url"},
		{[]string{"--notify-webhook-url", "http://gw.example/send"}, "https"},
		{[]string{"--trusted-proxies", "10.0.0.0/8,nonsense"}, "trusted-proxies"},
	} {
		_, err := parseConfig("serve", tt.args, nil, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: %v, want an error about %s", tt.args, err, tt.want)
		}
	}
	cfg, err := parseConfig("serve", []string{"--notify-webhook-url", "http://127.0.0.1:9/send", "--trusted-proxies", "10.0.0.0/8, 192.168.1.1"},
		[]string{"CONCORD_NOTIFY_WEBHOOK_SECRET=s", "CONCORD_LINK_KEYS=/a,/b"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := cfg.trustedProxies(); len(p) != 2 || p[1].String() != "192.168.1.1/32" || cfg.NotifyWebhookSecret != "s" || cfg.LinkKeys != "/a,/b" {
		t.Fatalf("config: %+v %v", cfg, p)
	}
}

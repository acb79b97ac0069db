package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/concord-odr/concord/cases"
	"github.com/concord-odr/concord/cases/joinlink"
)

// putJSONAs sends a PUT with a JSON body and a bearer token.
func putJSONAs(t *testing.T, url, token, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("PUT", url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func staffLogin(t *testing.T, ts *testServer, login, password string) string {
	t.Helper()
	code, body := post(t, ts.BaseURL+"/api/v1/auth/login", "", "application/json",
		fmt.Sprintf(`{"login":%q,"password":%q}`, login, password))
	if code != 200 {
		t.Fatalf("login %s: %d %v", login, code, body)
	}
	return body["accessToken"].(string)
}

// TestKioskWalkInReleasesMediator: a kiosk account and a mediator's
// account linked to its record are created with "concord user add"; the
// kiosk starts a walk-in session, the mediator takes it as "me", the
// kiosk joins as the visitor; when the mediator ends the session the
// room ends and the queue frees the mediator's load.
func TestKioskWalkInReleasesMediator(t *testing.T) {
	ts := startTestServer(t)
	ctx := context.Background()
	const pw = "correct horse battery"
	m := &cases.Mediator{InstitutionID: demoInstitutionID, Name: "值班调解员"}
	if err := ts.cases.PutMediator(ctx, m); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := ts.cases.PutShift(ctx, &cases.Shift{MediatorID: m.ID, StartsAt: now.Add(-time.Hour), EndsAt: now.Add(8 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"--login", "kiosk1", "--role", "kiosk", "--institution", demoInstitutionID},
		{"--login", "duty", "--role", "mediator", "--institution", demoInstitutionID, "--mediator", m.ID},
	} {
		var out, errb bytes.Buffer
		full := append([]string{"add", "--data-dir", ts.Config.DataDir, "--password-stdin"}, args...)
		if code := runUser(full, nil, strings.NewReader(pw+"\n"), &out, &errb); code != 0 {
			t.Fatalf("user add %v: %d %q", args, code, errb.String())
		}
	}
	var errb bytes.Buffer
	if code := runUser([]string{"add", "--data-dir", ts.Config.DataDir, "--login", "duty2", "--role", "mediator",
		"--institution", demoInstitutionID, "--mediator", "med_nope", "--password-stdin"}, nil, strings.NewReader(pw+"\n"), io.Discard, &errb); code == 0 ||
		!strings.Contains(errb.String(), "no mediator") {
		t.Fatalf("a link to an unknown mediator: %d %q", code, errb.String())
	}
	kiosk, duty := staffLogin(t, ts, "kiosk1", pw), staffLogin(t, ts, "duty", pw)

	if code, st := putJSONAs(t, ts.BaseURL+"/api/v1/queue/mediators/me/presence", duty, `{"available":true}`); code != 200 || st["mediatorId"] != m.ID {
		t.Fatalf("presence: %d %v", code, st)
	}
	code, ks := post(t, ts.BaseURL+"/api/v1/kiosk/sessions", kiosk, "application/json",
		`{"name":"王阿姨","category":"product-quality","description":"电饭煲坏了"}`)
	if code != 201 {
		t.Fatalf("kiosk start: %d %v", code, ks)
	}
	caseID := ks["caseId"].(string)
	ticket := ks["ticket"].(map[string]any)
	if ticket["status"] != cases.QueueOffered {
		t.Fatalf("ticket: %v", ticket)
	}
	// The kiosk's token opens nothing else.
	if code := getJSON(t, ts.BaseURL+"/api/v1/cases/"+caseID, kiosk, nil); code != 403 {
		t.Fatalf("a kiosk reads a case: %d", code)
	}
	code, sess := post(t, ts.BaseURL+"/api/v1/queue/requests/"+ticket["id"].(string)+"/accept", duty, "application/json", `{}`)
	if code != 201 {
		t.Fatalf("accept: %d %v", code, sess)
	}
	sessionID := sess["id"].(string)
	load := func() float64 {
		var st map[string]any
		if code := getJSON(t, ts.BaseURL+"/api/v1/queue/mediators/me", duty, &st); code != 200 {
			t.Fatalf("status: %d %v", code, st)
		}
		return st["active"].(float64)
	}
	if n := load(); n != 1 {
		t.Fatalf("load after accept %v", n)
	}

	code, j := post(t, ts.BaseURL+"/api/v1/kiosk/sessions/"+caseID+"/join", kiosk, "application/json", `{}`)
	if code != 200 || j["url"] != "/join#"+j["token"].(string) {
		t.Fatalf("kiosk join: %d %v", code, j)
	}
	ws, first := dialSignaling(t, ts.BaseURL, j["token"].(string))
	defer ws.Close()
	self, _ := first["self"].(map[string]any)
	if first["type"] != "joined" || self["side"] != cases.SideApplicant || self["name"] != "王阿姨" {
		t.Fatalf("visitor join: %v", first)
	}

	// The mediator ends the session by its join token.
	var medP cases.Participant
	s, err := ts.cases.Session(ctx, sessionID)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range s.Participants {
		if p.Role == cases.RoleMediator {
			medP = p
		}
	}
	medTok, err := ts.signer.Issue(joinlink.Claims{CaseID: caseID, SessionID: sessionID, Role: medP.Role, Side: medP.Side,
		RegisteredClaims: jwt.RegisteredClaims{Subject: medP.ID}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	code, rec := post(t, ts.BaseURL+"/api/v1/sessions/"+sessionID+"/end", medTok, "application/json", `{"result":"withdrawn"}`)
	if code != 200 {
		t.Fatalf("end: %d %v", code, rec)
	}
	if m := readUntil(t, ws, "session_ended"); m["result"] != "withdrawn" {
		t.Fatalf("session_ended: %v", m)
	}
	if n := load(); n != 0 {
		t.Fatalf("load after the session ended %v, want 0: the queue did not release it", n)
	}
}

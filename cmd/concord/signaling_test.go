package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/concord-odr/concord/cases/joinlink"
)

// readUntil reads messages until one of the given type arrives.
func readUntil(t *testing.T, ws *websocket.Conn, typ string) map[string]any {
	t.Helper()
	return readUntilWithin(t, ws, typ, 5*time.Second)
}

// readUntilWithin is readUntil with a time limit of d.
func readUntilWithin(t *testing.T, ws *websocket.Conn, typ string, d time.Duration) map[string]any {
	t.Helper()
	_ = ws.SetReadDeadline(time.Now().Add(d))
	defer ws.SetReadDeadline(time.Time{})
	for {
		var m map[string]any
		if err := ws.ReadJSON(&m); err != nil {
			t.Fatalf("waiting for %s: %v", typ, err)
		}
		if m["type"] == typ {
			return m
		}
	}
}

func TestJoinRefusals(t *testing.T) {
	ts := startTestServer(t)
	good := tokenFromURL(ts.Demo.Consumer)
	parts := strings.Split(good, ".")
	payload := []byte(parts[1])
	payload[len(payload)/2] ^= 1
	tampered := parts[0] + "." + string(payload) + "." + parts[2]

	claims := joinlink.Claims{CaseID: ts.Demo.CaseID, SessionID: ts.Demo.SessionID, Role: "party", Side: "applicant",
		RegisteredClaims: jwt.RegisteredClaims{Subject: "p_nobody"}}
	unknownParticipant, _ := ts.signer.Issue(claims, time.Hour)
	expiredSigner, _ := joinlink.NewSigner(joinlink.Key{ID: mustKeyID(t, ts), Secret: mustSecret(t, ts)}, nil,
		func() time.Time { return time.Now().Add(-48 * time.Hour) })
	claims.Subject = "p_x"
	expired, _ := expiredSigner.Issue(claims, time.Hour)

	tests := []struct {
		name, token, code string
	}{
		{"tampered", tampered, "invalid_token"},
		{"garbage", "hello", "invalid_token"},
		{"expired", expired, "token_expired"},
		{"unknown participant", unknownParticipant, "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws, first := dialSignaling(t, ts.BaseURL, tt.token)
			defer ws.Close()
			if first["type"] != "error" || first["code"] != tt.code || first["fatal"] != true {
				t.Fatalf("got %v, want fatal error %s", first, tt.code)
			}
			_ = ws.SetReadDeadline(time.Now().Add(3 * time.Second))
			var m map[string]any
			err := ws.ReadJSON(&m)
			if !websocket.IsCloseError(err, websocket.ClosePolicyViolation) {
				t.Fatalf("socket not closed with policy violation: %v %v", m, err)
			}
		})
	}
}

func mustKeyID(t *testing.T, ts *testServer) string {
	k, err := joinlink.LoadOrCreateKey(ts.Config.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	return k.ID
}

func mustSecret(t *testing.T, ts *testServer) []byte {
	k, err := joinlink.LoadOrCreateKey(ts.Config.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	return k.Secret
}

func TestBadMessages(t *testing.T) {
	ts := startTestServer(t)

	// Anything before join is refused and closes the socket.
	ws, _, err := websocket.DefaultDialer.Dial(wsURL(ts.BaseURL), nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = ws.WriteJSON(map[string]any{"type": "offer", "pc": "pub", "sdp": "x"})
	if m := readUntil(t, ws, "error"); m["code"] != "join_required" {
		t.Fatalf("got %v", m)
	}
	ws.Close()

	ws, first := dialSignaling(t, ts.BaseURL, tokenFromURL(ts.Demo.Consumer))
	defer ws.Close()
	if first["type"] != "joined" {
		t.Fatalf("join: %v", first)
	}
	for _, tc := range []struct {
		raw  string
		code string
	}{
		{`not json`, "bad_message"},
		{`{"type":"launch"}`, "bad_message"},
		{`{}`, "bad_message"},
		{`{"type":"offer","pc":"sub","sdp":"v=0"}`, "bad_message"},
		{`{"type":"candidate","pc":"pub"}`, "bad_message"},
		{`{"type":"offer","pc":"pub","sdp":"this is not sdp"}`, "negotiation_failed"},
		{`{"type":"answer","pc":"sub","sdp":"v=0"}`, "negotiation_failed"},
		{`{"type":"join","token":"again"}`, "already_joined"},
	} {
		if err := ws.WriteMessage(websocket.TextMessage, []byte(tc.raw)); err != nil {
			t.Fatal(err)
		}
		m := readUntil(t, ws, "error")
		if m["code"] != tc.code || m["fatal"] == true {
			t.Fatalf("%s: got %v, want non-fatal %s", tc.raw, m, tc.code)
		}
	}
	// An oversized frame closes the socket; the server stays up.
	big := `{"type":"offer","pc":"pub","sdp":"` + strings.Repeat("a", 70<<10) + `"}`
	_ = ws.WriteMessage(websocket.TextMessage, []byte(big))
	_ = ws.SetReadDeadline(time.Now().Add(3 * time.Second))
	for {
		var m map[string]any
		if err := ws.ReadJSON(&m); err != nil {
			break
		}
	}
	if code := getJSON(t, ts.BaseURL+"/healthz", "", nil); code != 200 {
		t.Fatalf("healthz after abuse: %d", code)
	}
}

func TestOriginChecked(t *testing.T) {
	ts := startTestServer(t)
	h := http.Header{"Origin": {"https://evil.example"}}
	_, resp, err := websocket.DefaultDialer.Dial(wsURL(ts.BaseURL), h)
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign origin: err=%v resp=%v", err, resp)
	}
	h = http.Header{"Origin": {ts.BaseURL}}
	ws, _, err := websocket.DefaultDialer.Dial(wsURL(ts.BaseURL), h)
	if err != nil {
		t.Fatalf("same origin refused: %v", err)
	}
	ws.Close()
}

func TestSecondDeviceTakesOver(t *testing.T) {
	ts := startTestServer(t)
	tok := tokenFromURL(ts.Demo.Consumer)
	first, m := dialSignaling(t, ts.BaseURL, tok)
	defer first.Close()
	if m["type"] != "joined" {
		t.Fatal(m)
	}
	second, m := dialSignaling(t, ts.BaseURL, tok)
	defer second.Close()
	if m["type"] != "joined" {
		t.Fatal(m)
	}
	if e := readUntil(t, first, "error"); e["code"] != "replaced" {
		t.Fatalf("old device told %v", e)
	}
	// The case record shows one open stay, on the new device.
	var rec struct {
		Sessions []struct {
			Attendance []struct {
				ParticipantID string     `json:"participantId"`
				LeftAt        *time.Time `json:"leftAt"`
			} `json:"attendance"`
		} `json:"sessions"`
	}
	time.Sleep(200 * time.Millisecond)
	getJSON(t, ts.BaseURL+"/api/v1/cases/"+ts.Demo.CaseID, ts.MediatorToken, &rec)
	open := 0
	for _, a := range rec.Sessions[0].Attendance {
		if a.LeftAt == nil {
			open++
		}
	}
	if len(rec.Sessions[0].Attendance) != 2 || open != 1 {
		t.Fatalf("attendance after takeover: %+v", rec.Sessions[0].Attendance)
	}
}

func post(t *testing.T, url, token, contentType, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, bytes.NewBufferString(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode >= 400 && resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("%s: error answered as %s", url, resp.Header.Get("Content-Type"))
	}
	return resp.StatusCode, out
}

func TestAPIRefusalsAndOutcome(t *testing.T) {
	ts := startTestServer(t)
	caseURL := ts.BaseURL + "/api/v1/cases/" + ts.Demo.CaseID
	endURL := ts.BaseURL + "/api/v1/sessions/" + ts.Demo.SessionID + "/end"
	consumer := tokenFromURL(ts.Demo.Consumer)
	other := otherSession(t, ts)

	var p map[string]any
	if code := getJSON(t, caseURL, "", &p); code != 401 || p["code"] != "unauthorized" {
		t.Fatalf("no token: %d %v", code, p)
	}
	if code := getJSON(t, caseURL, "forged", &p); code != 401 {
		t.Fatalf("forged token: %d %v", code, p)
	}
	if code := getJSON(t, caseURL, other, &p); code != 404 || p["code"] != "not_found" {
		t.Fatalf("another case's token: %d %v", code, p)
	}
	if code := getJSON(t, caseURL, consumer, &p); code != 200 || p["state"] != "mediating" {
		t.Fatalf("party reads own case: %d %v", code, p)
	}

	for _, tc := range []struct {
		name, token, ctype, body string
		status                   int
		code                     string
	}{
		{"party may not end", consumer, "application/json", `{"result":"settled","terms":"x"}`, 404, "not_found"},
		{"other session", other, "application/json", `{"result":"settled","terms":"x"}`, 404, "not_found"},
		{"not json", ts.MediatorToken, "text/plain", `x`, 415, "unsupported_media_type"},
		{"unknown field", ts.MediatorToken, "application/json", `{"result":"settled","terms":"x","extra":1}`, 400, "bad_request"},
		{"wrong type", ts.MediatorToken, "application/json", `{"result":5}`, 400, "bad_request"},
		{"unknown result", ts.MediatorToken, "application/json", `{"result":"won"}`, 422, "invalid"},
		{"settled needs terms", ts.MediatorToken, "application/json", `{"result":"settled"}`, 422, "invalid"},
		{"not settled needs remedies", ts.MediatorToken, "application/json", `{"result":"not_settled"}`, 422, "invalid"},
		{"too large", ts.MediatorToken, "application/json", `{"result":"settled","terms":"` + strings.Repeat("x", 70<<10) + `"}`, 413, "too_large"},
	} {
		code, body := post(t, endURL, tc.token, tc.ctype, tc.body)
		if code != tc.status || body["code"] != tc.code {
			t.Errorf("%s: %d %v, want %d %s", tc.name, code, body, tc.status, tc.code)
		}
	}
	// None of that changed the case.
	getJSON(t, caseURL, consumer, &p)
	if p["state"] != "mediating" {
		t.Fatalf("refused requests changed the case: %v", p["state"])
	}

	// A party in the room is told when the mediator ends the session.
	ws, _ := dialSignaling(t, ts.BaseURL, consumer)
	defer ws.Close()
	code, body := post(t, endURL, ts.MediatorToken, "application/json", `{"result":"settled","terms":"Refund 1,299 yuan by 30 Nov."}`)
	if code != 200 || body["state"] != "closed" {
		t.Fatalf("end session: %d %v", code, body)
	}
	if m := readUntil(t, ws, "session_ended"); m["result"] != "settled" {
		t.Fatalf("party told %v", m)
	}
	var rec struct {
		State   string `json:"state"`
		Outcome struct {
			Result string `json:"result"`
			Terms  string `json:"terms"`
		} `json:"outcome"`
		Sessions []struct {
			StartedAt  *time.Time `json:"startedAt"`
			EndedAt    *time.Time `json:"endedAt"`
			Attendance []struct {
				LeftAt *time.Time `json:"leftAt"`
			} `json:"attendance"`
		} `json:"sessions"`
		Events []struct {
			Type string `json:"type"`
		} `json:"events"`
	}
	getJSON(t, caseURL, ts.MediatorToken, &rec)
	if rec.State != "closed" || rec.Outcome.Result != "settled" || !strings.Contains(rec.Outcome.Terms, "1,299") {
		t.Fatalf("case after end: %+v", rec)
	}
	s := rec.Sessions[0]
	if s.StartedAt == nil || s.EndedAt == nil || len(s.Attendance) != 1 || s.Attendance[0].LeftAt == nil {
		t.Fatalf("session record: %+v", s)
	}
	if last := rec.Events[len(rec.Events)-1].Type; last != "case.closed" {
		t.Fatalf("last event %s", last)
	}
	// The ended session can no longer be joined or ended again.
	_, m := dialSignaling(t, ts.BaseURL, consumer)
	if m["code"] != "session_ended" {
		t.Fatalf("join after end: %v", m)
	}
	if code, body := post(t, endURL, ts.MediatorToken, "application/json", `{"result":"settled","terms":"again"}`); code != 409 {
		t.Fatalf("second end: %d %v", code, body)
	}
}

func TestDemoIsIdempotent(t *testing.T) {
	cfg := testConfig(t)
	first := startTestServerWith(t, cfg)
	caseID, sessionID := first.Demo.CaseID, first.Demo.SessionID
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	second := startTestServerWith(t, cfg)
	if second.Demo.CaseID != caseID || second.Demo.SessionID != sessionID {
		t.Fatalf("second run made new demo data: %s/%s vs %s/%s", second.Demo.CaseID, second.Demo.SessionID, caseID, sessionID)
	}
	var rec struct {
		Sessions []any `json:"sessions"`
		Events   []any `json:"events"`
	}
	getJSON(t, second.BaseURL+"/api/v1/cases/"+caseID, second.MediatorToken, &rec)
	if len(rec.Sessions) != 1 {
		t.Fatalf("%d sessions after two runs", len(rec.Sessions))
	}
	// The first run's links still work after a restart (same key).
	if _, m := dialSignaling(t, second.BaseURL, tokenFromURL(first.Demo.Consumer)); m["type"] != "joined" {
		t.Fatalf("old link after restart: %v", m)
	}
}

// TestRevokedLinkDropsConnection: revoking a participant's links drops
// the socket it has open, and the link no longer joins.
func TestRevokedLinkDropsConnection(t *testing.T) {
	ts := startTestServer(t)
	tok := tokenFromURL(ts.Demo.Consumer)
	ws, joined := dialSignaling(t, ts.BaseURL, tok)
	defer ws.Close()
	self, _ := joined["self"].(map[string]any)
	body, _ := json.Marshal(map[string]any{"participantId": self["id"]})
	code, out := post(t, ts.BaseURL+"/api/v1/sessions/"+ts.Demo.SessionID+"/revocations", ts.Config.AdminToken, "application/json", string(body))
	if code != 201 {
		t.Fatalf("revoke: %d %v", code, out)
	}
	if m := readUntil(t, ws, "error"); m["code"] != "link_revoked" || m["fatal"] != true {
		t.Fatalf("connected participant told %v", m)
	}
	if _, m := dialSignaling(t, ts.BaseURL, tok); m["type"] != "error" {
		t.Fatalf("revoked link still joins: %v", m)
	}
}

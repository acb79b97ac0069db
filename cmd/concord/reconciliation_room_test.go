package main

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/concord-odr/concord/cases"
)

const recCreditCode = "91310000MA1FL8XQ3D"

// reconciliationCase enrols an ODR enterprise and files a complaint
// against it that goes to reconciliation; it returns the case and its
// reconciliation room.
func reconciliationCase(t *testing.T, ts *testServer) (caseID, sessionID string) {
	t.Helper()
	ctx := context.Background()
	if _, err := ts.cases.ApplyEnrolment(ctx, cases.Enrolment{CreditCode: recCreditCode, Name: "某某网店",
		InstitutionID: demoInstitutionID, Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.cases.ReviewEnrolment(ctx, recCreditCode, cases.EnrolApprove, "", "test"); err != nil {
		t.Fatal(err)
	}
	c, _, err := ts.cases.OpenCase(ctx, cases.NewCase{
		InstitutionID: demoInstitutionID, Category: "e-commerce", Channel: "online",
		Applicant:  cases.Party{Name: "消费者甲", Kind: "person"},
		Respondent: cases.Party{Name: "某某网店", Kind: "organisation", CreditCode: recCreditCode},
		Claims:     "退货退款", AmountCents: 19900, Actor: "test",
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ts.cases.Transition(ctx, c.ID, cases.StateReconciliation, "test", nil); err != nil {
		t.Fatal(err)
	}
	rec, err := ts.cases.Reconciliation(ctx, c.ID)
	if err != nil || rec.SessionID == "" {
		t.Fatalf("reconciliation room: %v %+v", err, rec)
	}
	return c.ID, rec.SessionID
}

// reconciliationLinks issues the room's links through the API and
// exchanges them: side -> code and token.
func reconciliationLinks(t *testing.T, ts *testServer, sessionID string) (codes, tokens map[string]string) {
	t.Helper()
	status, body := post(t, ts.BaseURL+"/api/v1/sessions/"+sessionID+"/links", ts.Config.AdminToken, "application/json", `{}`)
	if status != http.StatusCreated {
		t.Fatalf("issue links: %d %v", status, body)
	}
	items, _ := body["items"].([]any)
	if len(items) != 2 {
		t.Fatalf("links: %v", body)
	}
	codes, tokens = map[string]string{}, map[string]string{}
	for _, it := range items {
		l := it.(map[string]any)
		if l["role"] != cases.RoleParty {
			t.Fatalf("a reconciliation link for a %v", l["role"])
		}
		side := l["side"].(string)
		codes[side] = l["code"].(string)
		status, ex := post(t, ts.BaseURL+"/api/v1/join/exchange", "", "application/json", fmt.Sprintf(`{"code":%q}`, codes[side]))
		if status != http.StatusOK {
			t.Fatalf("exchange %s: %d %v", side, status, ex)
		}
		tokens[side] = ex["token"].(string)
	}
	return codes, tokens
}

func (c *pionClient) errorCodes() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, e := range c.errors {
		code, _ := e["code"].(string)
		out = append(out, code)
	}
	return out
}

func (c *pionClient) endedWith() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ended
}

// TestReconciliationRoom: the consumer and the merchant join the
// reconciliation room by their links, are admitted on consent with no
// mediator, receive each other's media and chat, cannot act as a
// mediator, and are sent away when the merchant settles; the links then
// stop working.
func TestReconciliationRoom(t *testing.T) {
	ts := startTestServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	caseID, sessionID := reconciliationCase(t, ts)
	codes, tokens := reconciliationLinks(t, ts, sessionID)

	app := newPionClient(ctx, t, "consumer", ts.BaseURL, tokens[cases.SideApplicant])
	resp := newPionClient(ctx, t, "merchant", ts.BaseURL, tokens[cases.SideRespondent])
	app.send(map[string]any{"type": "consent"})
	resp.send(map[string]any{"type": "consent"})
	waitReceiving(t, 15*time.Second, [][2]*pionClient{{app, resp}, {resp, app}})
	if app.stateOf(resp.selfID()) != "admitted" || resp.stateOf(app.selfID()) != "admitted" {
		t.Fatal("the parties are not admitted in each other's view")
	}
	app.mu.Lock()
	unmediated := app.room["unmediated"]
	app.mu.Unlock()
	if unmediated != true {
		t.Fatalf("room view does not say unmediated: %v", unmediated)
	}

	// Mediator actions are refused with their own code; the mode stays joint.
	setMode(app, true, cases.SideApplicant)
	resp.send(map[string]any{"type": "mute", "participantId": app.selfID()})
	resp.send(map[string]any{"type": "lock", "locked": true})
	deadline := time.Now().Add(10 * time.Second)
	for len(app.errorCodes()) < 1 || len(resp.errorCodes()) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("errors: consumer %v merchant %v", app.errorCodes(), resp.errorCodes())
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, code := range append(app.errorCodes(), resp.errorCodes()...) {
		if code != "not_allowed_in_reconciliation" {
			t.Fatalf("error code %q, want not_allowed_in_reconciliation", code)
		}
	}
	waitReceiving(t, 10*time.Second, [][2]*pionClient{{app, resp}, {resp, app}})

	app.send(map[string]any{"type": "chat", "text": "您好，我想退货"})
	deadline = time.Now().Add(10 * time.Second)
	for chatsFrom(resp, app.selfID()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the merchant did not receive the consumer's chat")
		}
		time.Sleep(20 * time.Millisecond)
	}

	// The merchant accepts the claim: the case closes and the room ends.
	if _, err := ts.cases.MerchantAct(ctx, caseID, cases.MerchantAction{Kind: cases.ActAcceptClaim, Actor: "staff:test"}); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(10 * time.Second)
	for app.endedWith() != cases.RecSettled || resp.endedWith() != cases.RecSettled {
		if time.Now().After(deadline) {
			t.Fatalf("session_ended: consumer %q merchant %q", app.endedWith(), resp.endedWith())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := ts.sig.Rooms(); n != 0 {
		t.Fatalf("%d rooms open after the reconciliation ended", n)
	}

	// The links and tokens no longer join, nor are new ones issued.
	status, ex := post(t, ts.BaseURL+"/api/v1/join/exchange", "", "application/json", fmt.Sprintf(`{"code":%q}`, codes[cases.SideApplicant]))
	if status < 400 || ex["code"] != "session_ended" {
		t.Fatalf("exchange after the end: %d %v", status, ex)
	}
	ws, first := dialSignaling(t, ts.BaseURL, tokens[cases.SideRespondent])
	ws.Close()
	if first["type"] != "error" || first["code"] != "session_ended" {
		t.Fatalf("join after the end: %v", first)
	}
	status, body := post(t, ts.BaseURL+"/api/v1/sessions/"+sessionID+"/links", ts.Config.AdminToken, "application/json", `{}`)
	if status != http.StatusConflict || body["code"] != cases.ETRANSITION {
		t.Fatalf("links of a settled reconciliation: %d %v", status, body)
	}
}

// TestReconciliationLinksOnlyInReconciliation: a mediation session's
// links need a mediating case, and the reconciliation room's need a case
// in reconciliation; a declined reconciliation ends its room too.
func TestReconciliationLinksOnlyInReconciliation(t *testing.T) {
	ts := startTestServer(t)
	ctx := context.Background()
	caseID, sessionID := reconciliationCase(t, ts)
	_, tokens := reconciliationLinks(t, ts, sessionID)

	ws, first := dialSignaling(t, ts.BaseURL, tokens[cases.SideApplicant])
	defer ws.Close()
	if first["type"] != "joined" {
		t.Fatalf("join: %v", first)
	}
	_ = ws.WriteJSON(map[string]any{"type": "note", "text": "x"})
	if m := readUntil(t, ws, "error"); m["code"] != "not_allowed_in_reconciliation" || m["fatal"] == true {
		t.Fatalf("note: %v", m)
	}

	// The merchant declines: the case goes to mediation, the room ends.
	if _, err := ts.cases.MerchantAct(ctx, caseID, cases.MerchantAction{Kind: cases.ActDecline, Reason: "不同意", Actor: "staff:test"}); err != nil {
		t.Fatal(err)
	}
	if m := readUntil(t, ws, "session_ended"); m["result"] != cases.RecEscalated {
		t.Fatalf("session_ended: %v", m)
	}
	status, body := post(t, ts.BaseURL+"/api/v1/sessions/"+sessionID+"/links", ts.Config.AdminToken, "application/json", `{}`)
	if status != http.StatusConflict || body["code"] != cases.ETRANSITION {
		t.Fatalf("links after escalation: %d %v", status, body)
	}
	if c, err := ts.cases.Case(ctx, caseID); err != nil || c.State != cases.StateDispatched {
		t.Fatalf("case: %v %+v", err, c)
	}
}

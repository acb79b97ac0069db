package web

import (
	"strings"
	"testing"
	"time"

	"github.com/concord-odr/concord/cases"
)

// kioskAccount creates, as institution admin A, a kiosk of community
// station A1 and signs it in.
func (w *world) kioskAccount(t *testing.T, login string) (*cases.Account, string) {
	t.Helper()
	var a cases.Account
	w.asOK(w.tokens["adminA"], "POST", "/api/v1/accounts", map[string]any{"login": login, "name": "Kiosk " + login,
		"role": "kiosk", "institutionId": w.instA1, "password": testPassword}, 201, &a)
	ans, _ := w.login(login, testPassword)
	return &a, ans.AccessToken
}

// TestKioskWalkIn: a kiosk starts a walk-in session, sees its place in
// the queue, and once a mediator of the station takes it, gets the
// visitor's join token; another kiosk sees none of it.
func TestKioskWalkIn(t *testing.T) {
	w := newWorld(t)
	_, kiosk := w.kioskAccount(t, "kiosk.a1")
	_, other := w.kioskAccount(t, "kiosk.a1b")

	// A kiosk belongs to a community station.
	resp, b := w.as(w.tokens["adminA"], "POST", "/api/v1/accounts", map[string]any{"login": "kiosk.a", "name": "K",
		"role": "kiosk", "institutionId": w.instA, "password": testPassword})
	wantProblem(t, resp, b, 422, cases.EINVALID, "institutionId")

	// A mediator of the station is on duty.
	var m cases.Mediator
	w.asOK(w.tokens["adminA"], "POST", "/api/v1/institutions/"+w.instA1+"/mediators", map[string]any{"name": "Station mediator"}, 201, &m)
	now := w.clock.Now()
	w.asOK(w.tokens["adminA"], "POST", "/api/v1/institutions/"+w.instA1+"/shifts", map[string]any{
		"mediatorId": m.ID, "startsAt": now.Add(-time.Hour), "endsAt": now.Add(8 * time.Hour)}, 201, nil)
	w.asOK(w.tokens["medA1"], "PUT", "/api/v1/queue/mediators/"+m.ID+"/presence", map[string]any{"available": true}, 200, nil)

	// Validation: a description is needed, and intake checks the rest.
	resp, b = w.as(kiosk, "POST", "/api/v1/kiosk/sessions", map[string]any{"name": "王阿姨", "category": "e-commerce"})
	wantProblem(t, resp, b, 422, cases.EINVALID, "description")
	resp, b = w.as(kiosk, "POST", "/api/v1/kiosk/sessions", map[string]any{"name": "王阿姨", "category": "gold", "description": "x"})
	wantProblem(t, resp, b, 422, cases.EINVALID, "category")

	var ks kioskSession
	w.asOK(kiosk, "POST", "/api/v1/kiosk/sessions", map[string]any{"name": "王阿姨", "phone": "13800000001",
		"category": "product-quality", "description": "买的电饭煲坏了，商家不给退"}, 201, &ks)
	if ks.State != cases.StateAccepted || ks.Ticket == nil || ks.Ticket.Status != cases.QueueOffered || ks.Ticket.Position != 1 ||
		ks.Ticket.OnDuty != 1 || ks.Ticket.ExpectedWaitSeconds <= 0 || ks.Visitor != "王阿姨" {
		t.Fatalf("started: %+v %+v", ks, ks.Ticket)
	}
	var c cases.Case
	w.asOK(testAdminToken, "GET", "/api/v1/cases/"+ks.CaseID, nil, 200, &c)
	if c.Channel != cases.ChannelKiosk || c.InstitutionID != w.instA1 || c.Applicant.Phone != "13800000001" {
		t.Fatalf("case: %+v", c)
	}

	// Before a mediator takes it there is nothing to join.
	resp, b = w.as(kiosk, "POST", "/api/v1/kiosk/sessions/"+ks.CaseID+"/join", nil)
	wantProblem(t, resp, b, 409, cases.ETRANSITION, "")

	var list struct{ Items []kioskSession }
	w.asOK(kiosk, "GET", "/api/v1/kiosk/sessions", nil, 200, &list)
	if len(list.Items) != 1 || list.Items[0].CaseID != ks.CaseID || list.Items[0].Ticket == nil {
		t.Fatalf("kiosk list: %+v", list.Items)
	}
	w.asOK(other, "GET", "/api/v1/kiosk/sessions", nil, 200, &list)
	if len(list.Items) != 0 {
		t.Fatalf("another kiosk lists %+v", list.Items)
	}

	// The station's mediator takes it.
	var sess cases.Session
	w.asOK(w.tokens["medA1"], "POST", "/api/v1/queue/requests/"+ks.Ticket.ID+"/accept", map[string]any{"mediatorId": m.ID}, 201, &sess)

	resp, b = w.as(other, "POST", "/api/v1/kiosk/sessions/"+ks.CaseID+"/join", nil)
	wantProblem(t, resp, b, 404, cases.ENOTFOUND, "")
	var j kioskJoinAnswer
	w.asOK(kiosk, "POST", "/api/v1/kiosk/sessions/"+ks.CaseID+"/join", nil, 200, &j)
	if j.SessionID != sess.ID || j.URL != "/join#"+j.Token || !j.ExpiresAt.After(now) {
		t.Fatalf("join: %+v", j)
	}
	var me meAnswer
	w.asOK(j.Token, "GET", "/api/v1/auth/me", nil, 200, &me)
	if me.Kind != "party" || me.Party.Role != cases.RoleParty || me.Party.Side != cases.SideApplicant ||
		me.Party.SessionID != sess.ID || me.Party.Name != "王阿姨" {
		t.Fatalf("the token is not the visitor's: %+v %+v", me, me.Party)
	}
	w.asOK(kiosk, "GET", "/api/v1/kiosk/sessions", nil, 200, &list)
	if len(list.Items) != 1 || list.Items[0].Ticket.Status != cases.QueueAccepted || list.Items[0].Ticket.SessionID != sess.ID {
		t.Fatalf("after accept: %+v", list.Items[0].Ticket)
	}
}

// TestKioskOnlyItsRoutes walks every documented route: a kiosk's token
// is refused (403) by every route that needs a credential, except the
// kiosk's own and /auth/me; staff are refused the kiosk's routes.
func TestKioskOnlyItsRoutes(t *testing.T) {
	w := newWorld(t)
	_, kiosk := w.kioskAccount(t, "kiosk.a1")
	own := map[string]bool{
		"GET /api/v1/kiosk/sessions": true, "POST /api/v1/kiosk/sessions": true,
		"POST /api/v1/kiosk/sessions/{id}/join": true, "GET /api/v1/auth/me": true,
	}
	checked := 0
	for _, route := range documentedRoutes(t) {
		method, path, _ := strings.Cut(route, " ")
		url := pathParam.ReplaceAllString(path, "x")
		switch route {
		case "POST /api/v1/auth/login", "POST /api/v1/auth/refresh", "POST /api/v1/auth/logout",
			"POST /api/v1/imports/cases", "POST /api/v1/webhooks/confirmation-results":
			continue // they read no bearer token
		}
		anon, _ := w.as("", method, url, map[string]any{})
		if anon.StatusCode != 401 {
			continue // public: no credential is needed
		}
		resp, b := w.as(kiosk, method, url, map[string]any{})
		if own[route] {
			if resp.StatusCode == 403 || resp.StatusCode == 401 {
				t.Errorf("%s: the kiosk is refused its own route: %d %s", route, resp.StatusCode, b)
			}
			continue
		}
		checked++
		if resp.StatusCode != 403 || resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: a kiosk gets %d %s, want 403", route, resp.StatusCode, b)
		}
	}
	if checked < 40 {
		t.Fatalf("only %d guarded routes checked", checked)
	}
	for _, who := range []string{"adminA", "medA1", "platform", "operator"} {
		resp, b := w.as(w.tokens[who], "GET", "/api/v1/kiosk/sessions", nil)
		wantProblem(t, resp, b, 403, cases.EFORBIDDEN, "")
	}
	resp, b := w.as(w.tokens["partyA"], "GET", "/api/v1/kiosk/sessions", nil)
	wantProblem(t, resp, b, 401, codeUnauthorized, "")
}

// TestMediatorAccountLink: a mediator's account linked to its record
// acts on the queue as "me", and is forbidden to act for a colleague.
func TestMediatorAccountLink(t *testing.T) {
	w := newWorld(t)
	adminA := w.tokens["adminA"]
	var zhang, li, far cases.Mediator
	w.asOK(adminA, "POST", "/api/v1/institutions/"+w.instA+"/mediators", map[string]any{"name": "Zhang"}, 201, &zhang)
	w.asOK(adminA, "POST", "/api/v1/institutions/"+w.instA+"/mediators", map[string]any{"name": "Li"}, 201, &li)
	w.asOK(w.tokens["adminB"], "POST", "/api/v1/institutions/"+w.instB+"/mediators", map[string]any{"name": "Far"}, 201, &far)
	now := w.clock.Now()
	for _, m := range []cases.Mediator{zhang, li} {
		w.asOK(adminA, "POST", "/api/v1/institutions/"+w.instA+"/shifts", map[string]any{
			"mediatorId": m.ID, "startsAt": now.Add(-time.Hour), "endsAt": now.Add(8 * time.Hour)}, 201, nil)
	}

	// The link is checked at creation: same institution.
	resp, b := w.as(adminA, "POST", "/api/v1/accounts", map[string]any{"login": "zhang2", "name": "Zhang", "role": "mediator",
		"institutionId": w.instA, "mediatorId": far.ID, "password": testPassword})
	wantProblem(t, resp, b, 422, cases.EINVALID, "mediatorId")
	var acct cases.Account
	w.asOK(adminA, "POST", "/api/v1/accounts", map[string]any{"login": "zhang", "name": "Zhang", "role": "mediator",
		"institutionId": w.instA, "mediatorId": zhang.ID, "password": testPassword}, 201, &acct)
	if acct.MediatorID != zhang.ID {
		t.Fatalf("account %+v", acct)
	}
	ans, _ := w.login("zhang", testPassword)
	tok := ans.AccessToken

	var st cases.DutyStatus
	w.asOK(tok, "PUT", "/api/v1/queue/mediators/me/presence", map[string]any{"available": true}, 200, &st)
	if st.MediatorID != zhang.ID || !st.OnDuty {
		t.Fatalf("me: %+v", st)
	}
	w.asOK(tok, "PUT", "/api/v1/queue/mediators/"+zhang.ID+"/presence", map[string]any{"available": true}, 200, &st)
	w.asOK(tok, "GET", "/api/v1/queue/mediators/me", nil, 200, &st)
	if st.MediatorID != zhang.ID {
		t.Fatalf("me: %+v", st)
	}
	// Not for a colleague, nor another institution's (unknown to it).
	resp, b = w.as(tok, "PUT", "/api/v1/queue/mediators/"+li.ID+"/presence", map[string]any{"available": true})
	wantProblem(t, resp, b, 403, cases.EFORBIDDEN, "")
	resp, b = w.as(tok, "GET", "/api/v1/queue/mediators/"+li.ID, nil)
	wantProblem(t, resp, b, 403, cases.EFORBIDDEN, "")
	resp, b = w.as(tok, "GET", "/api/v1/queue/mediators/"+far.ID, nil)
	wantProblem(t, resp, b, 404, cases.ENOTFOUND, "")
	// An account not linked has no "me".
	resp, b = w.as(w.tokens["medA"], "GET", "/api/v1/queue/mediators/me", nil)
	wantProblem(t, resp, b, 404, cases.ENOTFOUND, "")

	// Offered a request, it accepts as itself, with no mediatorId; the
	// colleague's answer is refused.
	var tk cases.Ticket
	w.asOK(w.tokens["partyA"], "POST", "/api/v1/queue/requests", map[string]any{"caseId": w.caseA.ID}, 201, &tk)
	if tk.Status != cases.QueueOffered {
		t.Fatalf("ticket %+v", tk)
	}
	resp, b = w.as(tok, "POST", "/api/v1/queue/requests/"+tk.ID+"/pass", map[string]any{"mediatorId": li.ID})
	wantProblem(t, resp, b, 403, cases.EFORBIDDEN, "")
	var sess cases.Session
	w.asOK(tok, "POST", "/api/v1/queue/requests/"+tk.ID+"/accept", map[string]any{}, 201, &sess)
	w.asOK(tok, "GET", "/api/v1/queue/mediators/me", nil, 200, &st)
	if st.Active != 1 {
		t.Fatalf("after accept: %+v", st)
	}
}

package web

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/concord-odr/concord/cases"
)

// publicRoutes need no credential (or carry their own: an HMAC
// signature, a short link's code, a password, a refresh cookie).
var publicRoutes = []string{
	"GET /api/v1/openapi.json",
	"POST /api/v1/intake",
	"POST /api/v1/imports/cases",
	"GET /api/v1/rulesets",
	"GET /api/v1/institutions",
	"POST /api/v1/auth/login",
	"POST /api/v1/auth/refresh",
	"POST /api/v1/auth/logout",
	"POST /api/v1/join/exchange",
	"POST /api/v1/webhooks/confirmation-results",
}

// platformRoutes are for the operator and platform admins only.
var platformRoutes = []string{
	"PUT /api/v1/enterprises/{creditCode}",
	"GET /api/v1/followups",
	"GET /api/v1/audit/heads",
	"GET /api/v1/cases/{id}/audit",
}

// staffCollectionRoutes are staff routes on no single case, session,
// account or institution; who may use them is checked in
// TestCollectionRoutesRefuse and the scope of their answers in
// TestListScope.
var staffCollectionRoutes = []string{
	"POST /api/v1/cases",
	"GET /api/v1/cases",
	"POST /api/v1/accounts",
	"GET /api/v1/accounts",
	"POST /api/v1/institutions",
	"POST /api/v1/auth/password",
	"GET /api/v1/auth/me",
}

// requestFor returns the concrete path and a valid body of a route
// pattern in the world: it addresses case A, session A, mediator A's
// account, institution A or enterprise E.
func (w *world) requestFor(route string) (method, path string, body any) {
	method, path, _ = strings.Cut(route, " ")
	switch {
	case strings.HasPrefix(path, "/api/v1/cases/{id}"):
		path = strings.Replace(path, "{id}", w.caseA.ID, 1)
	case strings.HasPrefix(path, "/api/v1/sessions/{id}"):
		path = strings.Replace(path, "{id}", w.sessA.ID, 1)
	case strings.HasPrefix(path, "/api/v1/accounts/{id}"):
		path = strings.Replace(path, "{id}", w.accounts["medA"].ID, 1)
	case strings.HasPrefix(path, "/api/v1/institutions/{id}"):
		path = strings.Replace(path, "{id}", w.instA, 1)
	case strings.HasPrefix(path, "/api/v1/odr/cases/{id}"):
		path = strings.Replace(path, "{id}", w.caseA.ID, 1)
	}
	path = strings.NewReplacer("{creditCode}", testCreditCode, "{aid}", "agr_x", "{no}", "1").Replace(path)
	bodies := map[string]any{
		"POST /api/v1/cases/{id}/transitions": map[string]any{"to": "closed", "outcome": map[string]any{"result": "withdrawn"}},
		"POST /api/v1/cases/{id}/sessions": map[string]any{"participants": []map[string]any{
			{"name": "M", "role": "mediator", "side": "neutral"}, {"name": "P", "role": "party", "side": "applicant"}}},
		"POST /api/v1/sessions/{id}/end":           map[string]any{"result": "adjourned"},
		"POST /api/v1/sessions/{id}/revocations":   map[string]any{"reason": "test"},
		"PUT /api/v1/accounts/{id}/status":         map[string]any{"status": "disabled"},
		"POST /api/v1/accounts/{id}/password":      map[string]any{"password": "another long password"},
		"PUT /api/v1/institutions/{id}":            map[string]any{"code": "0310", "name": "Renamed", "level": "district", "parentId": w.instP},
		"POST /api/v1/institutions/{id}/mediators": map[string]any{"name": "New mediator"},
		"PUT /api/v1/enterprises/{creditCode}":     map[string]any{"name": "Renamed"},
		"POST /api/v1/cases": func() any {
			b := caseBody(w.instA, false)
			b["channel"] = "window"
			return b
		}(),
		"POST /api/v1/accounts": map[string]any{"login": "newbie", "name": "Newbie", "role": "mediator",
			"institutionId": w.instA, "password": testPassword},
		"POST /api/v1/institutions":  map[string]any{"code": "0330", "name": "New", "level": "community", "parentId": w.instA},
		"POST /api/v1/auth/password": map[string]any{"currentPassword": testPassword, "newPassword": "a brand new passphrase"},
	}
	body, ok := bodies[route]
	if !ok && (method == "POST" || method == "PUT") {
		body = "{}"
	}
	return method, path, body
}

// refusal says who must be refused on a route, with which statuses.
type refusal struct {
	who    []string
	status []int
}

// refusals classifies a route: the principals that must be refused on it
// because they belong to another case, session, institution or account,
// or hold a credential of the wrong kind or role. ok is false for a
// route this test does not know: add it here.
func (w *world) refusals(route string) (rs []refusal, ok bool) {
	otherCase := refusal{[]string{"partyB", "medPartB", "respB", "medB", "adminB", "agentF", "medA1"}, []int{401, 404}}
	parties := refusal{[]string{"partyA", "medPartA", "respA"}, []int{401}}
	allStaffButPlatform := refusal{[]string{"adminA", "medA", "medA1", "adminB", "medB", "agentE", "agentF"}, []int{403, 404}}
	_, path, _ := strings.Cut(route, " ")
	switch {
	case slices.Contains(publicRoutes, route):
		return nil, true
	case slices.Contains(platformRoutes, route):
		return []refusal{allStaffButPlatform, parties}, true
	case slices.Contains(staffCollectionRoutes, route):
		return nil, true // see TestCollectionRoutesRefuse
	case route == "GET /api/v1/cases/{id}" || route == "GET /api/v1/cases/{id}/events":
		return []refusal{otherCase}, true
	case route == "POST /api/v1/cases/{id}/transitions" || route == "POST /api/v1/cases/{id}/sessions":
		// The case's own parties hold the wrong kind of credential; its
		// merchant agent sees it but may not do this.
		return []refusal{otherCase, parties, {[]string{"agentE"}, []int{403}}}, true
	case strings.HasPrefix(path, "/api/v1/cases/{id}/"):
		// Routes of other APIs on one case (agreements, follow-ups): at
		// least another case's principals are refused.
		return []refusal{otherCase}, true
	case route == "POST /api/v1/sessions/{id}/end":
		// Only the session's own mediator, by its join token.
		return []refusal{otherCase, {[]string{"partyA", "respA"}, []int{404}},
			{[]string{"operator", "platform", "adminA", "medA", "agentE"}, []int{401}}}, true
	case strings.HasPrefix(path, "/api/v1/sessions/{id}/"):
		return []refusal{otherCase, parties, {[]string{"agentE"}, []int{403}}}, true
	case strings.HasPrefix(path, "/api/v1/accounts/{id}"):
		out := refusal{[]string{"medB", "adminB", "agentE", "agentF", "medA1"}, []int{404}}
		if route == "GET /api/v1/accounts/{id}" {
			return []refusal{out, parties}, true
		}
		return []refusal{out, parties, {[]string{"medA"}, []int{403}}}, true // not on oneself
	case strings.HasPrefix(path, "/api/v1/institutions/{id}"):
		out := refusal{[]string{"medB", "adminB", "agentE", "agentF", "medA1"}, []int{403}}
		if route == "PUT /api/v1/institutions/{id}" || route == "POST /api/v1/institutions/{id}/mediators" {
			// A mediator does not manage its institution; nor does an
			// institution admin change its own record.
			out.who = append(out.who, "medA")
		}
		if route == "PUT /api/v1/institutions/{id}" {
			out.who = append(out.who, "adminA")
		}
		return []refusal{out, parties}, true
	case strings.HasPrefix(path, "/api/v1/kiosk/"):
		// A kiosk device's own routes (kiosk_api_test.go): staff are
		// forbidden, parties hold the wrong kind of credential.
		return []refusal{{[]string{"operator", "platform", "adminA", "medA", "medA1", "agentE"}, []int{403}}, parties}, true
	case strings.HasPrefix(path, "/api/v1/odr/") || strings.HasPrefix(path, "/api/v1/stats") ||
		strings.HasPrefix(path, "/api/v1/queue/") || strings.HasPrefix(path, "/api/v1/shifts/"):
		return w.odrRefusals(route) // odr_authz_test.go
	}
	return nil, false
}

// TestEveryRouteRefuses enumerates every /api/v1 route the handler
// registers and checks that each refuses: no credential and forged
// credentials (unless public), and the principals of another case,
// session, institution or account, or of the wrong role. A new route
// fails this test until it is classified in refusals.
func TestEveryRouteRefuses(t *testing.T) {
	w := newWorld(t)
	routes := registeredAPIRoutes(t)
	forged := []string{"garbage", w.tokens["partyA"] + "x", testAdminToken + "x",
		strings.Replace(w.tokens["platform"], ".", ".e30", 1)}
	for _, route := range routes {
		t.Run(route, func(t *testing.T) {
			rs, ok := w.refusals(route)
			if !ok {
				t.Fatalf("route %s is not classified: say in refusals who it must refuse", route)
			}
			method, path, body := w.requestFor(route)
			check := func(who, token string, want []int) {
				t.Helper()
				resp, b := w.as(token, method, path, body)
				if !slices.Contains(want, resp.StatusCode) {
					t.Errorf("%s: %s %s answered %d, want one of %v: %s", who, method, path, resp.StatusCode, want, b)
					return
				}
				var p Problem
				if resp.Header.Get("Content-Type") != "application/problem+json" || json.Unmarshal(b, &p) != nil || p.Status != resp.StatusCode {
					t.Errorf("%s: refusal is not a problem document: %s", who, b)
				}
				if resp.StatusCode == 404 && strings.Contains(string(b), w.caseA.Number) {
					t.Errorf("%s: a not_found tells of the case: %s", who, b)
				}
			}
			if slices.Contains(publicRoutes, route) {
				return
			}
			check("anonymous", "", []int{401})
			for _, tok := range forged {
				check("forged token", tok, []int{401})
			}
			for _, r := range rs {
				for _, who := range r.who {
					check(who, w.tokens[who], r.status)
				}
			}
		})
	}
	// Nothing the refused requests asked for happened.
	var c cases.Case
	w.asOK(testAdminToken, "GET", "/api/v1/cases/"+w.caseA.ID, nil, 200, &c)
	if c.State != cases.StateMediating {
		t.Fatalf("case A was changed by a refused request: %s", c.State)
	}
	var a cases.Account
	w.asOK(testAdminToken, "GET", "/api/v1/accounts/"+w.accounts["medA"].ID, nil, 200, &a)
	if a.Status != cases.AccountActive {
		t.Fatal("mediator A's account was disabled by a refused request")
	}
	w.asOK(w.tokens["partyA"], "GET", "/api/v1/cases/"+w.caseA.ID, nil, 200, nil)
}

// TestCollectionRoutesRefuse checks the staff routes on no single
// resource: the wrong kind of credential, and roles that may not.
func TestCollectionRoutesRefuse(t *testing.T) {
	w := newWorld(t)
	for _, tt := range []struct {
		route string
		who   []string
		want  int
	}{
		{"POST /api/v1/cases", []string{"partyA", "medPartA"}, 401},
		{"POST /api/v1/cases", []string{"agentE", "medB", "adminB", "medA1"}, 403}, // at institution A
		{"GET /api/v1/cases", []string{"partyA", "medPartA"}, 401},
		{"POST /api/v1/accounts", []string{"partyA"}, 401},
		{"POST /api/v1/accounts", []string{"medA", "agentE", "adminB", "medA1"}, 403},
		{"GET /api/v1/accounts", []string{"partyA"}, 401},
		{"GET /api/v1/accounts", []string{"medA", "agentE"}, 403},
		{"POST /api/v1/institutions", []string{"partyA"}, 401},
		{"POST /api/v1/institutions", []string{"medA", "agentE", "adminB"}, 403},
		{"POST /api/v1/auth/password", []string{"partyA"}, 401},
		{"POST /api/v1/auth/password", []string{"operator"}, 403},
		{"GET /api/v1/auth/me", []string{""}, 401},
	} {
		method, path, body := w.requestFor(tt.route)
		for _, who := range tt.who {
			resp, b := w.as(w.tokens[who], method, path, body)
			if resp.StatusCode != tt.want {
				t.Errorf("%s by %q: %d, want %d: %s", tt.route, who, resp.StatusCode, tt.want, b)
			}
		}
	}
	// An institution admin may not create a platform admin, even at home.
	resp, b := w.as(w.tokens["adminA"], "POST", "/api/v1/accounts", map[string]any{
		"login": "sneaky", "name": "x", "role": "platform_admin", "password": testPassword})
	wantProblem(t, resp, b, 403, cases.EFORBIDDEN, "")
	// Nor a merchant agent.
	resp, b = w.as(w.tokens["adminA"], "POST", "/api/v1/accounts", map[string]any{
		"login": "sneaky", "name": "x", "role": "merchant_agent", "enterpriseCode": testCreditCode, "password": testPassword})
	wantProblem(t, resp, b, 403, cases.EFORBIDDEN, "")
}

// TestListScope: each principal lists exactly the cases and accounts it
// may see.
func TestListScope(t *testing.T) {
	w := newWorld(t)
	A, B := w.caseA.ID, w.caseB.ID
	for who, want := range map[string][]string{
		"operator": {A, B}, "platform": {A, B},
		"adminA": {A}, "medA": {A}, "medA1": {}, "adminB": {B}, "medB": {B},
		"agentE": {A}, "agentF": {},
	} {
		var page cases.CasePage
		w.asOK(w.tokens[who], "GET", "/api/v1/cases", nil, 200, &page)
		got := []string{}
		for _, c := range page.Items {
			got = append(got, c.ID)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s lists %v, want %v", who, got, want)
		}
		// Asking for another institution's cases does not widen the scope.
		w.asOK(w.tokens[who], "GET", "/api/v1/cases?institutionId="+w.instB, nil, 200, &page)
		for _, c := range page.Items {
			if !slices.Contains(want, c.ID) {
				t.Errorf("%s lists %s with institutionId=B", who, c.ID)
			}
		}
	}
	for who, want := range map[string][]string{
		"platform": {"adminA", "adminB", "agentE", "agentF", "medA", "medA1", "medB", "platform"},
		"adminA":   {"adminA", "medA", "medA1"},
		"adminB":   {"adminB", "medB"},
	} {
		var list struct {
			Items []cases.Account `json:"items"`
		}
		w.asOK(w.tokens[who], "GET", "/api/v1/accounts", nil, 200, &list)
		got := []string{}
		for _, a := range list.Items {
			got = append(got, a.Login)
		}
		for i := range want {
			want[i] = strings.ToLower(want[i])
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s lists accounts %v, want %v", who, got, want)
		}
		w.asOK(w.tokens[who], "GET", "/api/v1/accounts?institutionId="+w.instB, nil, 200, &list)
		for _, a := range list.Items {
			if !slices.Contains(want, a.Login) {
				t.Errorf("%s lists account %s with institutionId=B", who, a.Login)
			}
		}
	}
}

// TestRolesOnOwnCases: what each role may do on the cases it sees.
func TestRolesOnOwnCases(t *testing.T) {
	w := newWorld(t)
	A := w.caseA.ID
	// Everyone in scope reads case A.
	for _, who := range []string{"operator", "platform", "adminA", "medA", "agentE", "partyA", "medPartA"} {
		w.asOK(w.tokens[who], "GET", "/api/v1/cases/"+A, nil, 200, nil)
		w.asOK(w.tokens[who], "GET", "/api/v1/cases/"+A+"/events", nil, 200, nil)
	}
	// A mediator schedules sessions and sends links at its institution;
	// an institution admin of a parent institution too.
	var s sessionAnswer
	w.asOK(w.tokens["medA"], "POST", "/api/v1/cases/"+A+"/sessions", map[string]any{"participants": []map[string]any{
		{"name": "M", "role": "mediator", "side": "neutral"}}}, 201, &s)
	var ev struct {
		Items []cases.Event `json:"items"`
	}
	w.asOK(w.tokens["medA"], "GET", "/api/v1/cases/"+A+"/events", nil, 200, &ev)
	if last := ev.Items[len(ev.Items)-1]; last.Actor != "staff:"+w.accounts["medA"].ID {
		t.Fatalf("the staff member is not the actor: %+v", last)
	}
	w.asOK(w.tokens["medA"], "POST", "/api/v1/sessions/"+s.ID+"/links", map[string]any{}, 201, nil)
	// A mediator does not dispatch; an institution admin does.
	resp, b := w.as(w.tokens["medA"], "POST", "/api/v1/cases/"+A+"/transitions", map[string]any{"to": "dispatched"})
	wantProblem(t, resp, b, 403, cases.EFORBIDDEN, "")
	// A mediator closes the case.
	w.asOK(w.tokens["medA"], "POST", "/api/v1/cases/"+A+"/transitions",
		map[string]any{"to": "closed", "outcome": map[string]any{"result": "withdrawn"}}, 200, nil)

	// A merchant agent settles in reconciliation, and nothing else.
	body := caseBody(w.instB, true)
	body["channel"] = "window"
	var c cases.Case
	w.asOK(testAdminToken, "POST", "/api/v1/cases", body, 201, &c)
	w.asOK(testAdminToken, "POST", "/api/v1/cases/"+c.ID+"/transitions", map[string]any{"to": "reconciliation"}, 200, nil)
	resp, b = w.as(w.tokens["agentF"], "POST", "/api/v1/cases/"+c.ID+"/transitions",
		map[string]any{"to": "closed", "outcome": map[string]any{"result": "reconciled", "terms": "refund"}})
	wantProblem(t, resp, b, 404, cases.ENOTFOUND, "")
	w.asOK(w.tokens["agentE"], "POST", "/api/v1/cases/"+c.ID+"/transitions",
		map[string]any{"to": "closed", "outcome": map[string]any{"result": "reconciled", "terms": "refund"}}, 200, &c)
	if c.State != cases.StateClosed {
		t.Fatalf("reconciled: %s", c.State)
	}
}

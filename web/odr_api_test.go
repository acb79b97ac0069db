package web

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/concord-odr/concord/cases"
	"github.com/concord-odr/concord/cases/joinlink"
	"github.com/concord-odr/concord/web/ratelimit"
	"github.com/golang-jwt/jwt/v5"
)

// odrEnv is the API with two districts under a city, dispatch routes, an
// ODR enterprise enrolled through the API, and staff of each role.
type odrEnv struct {
	*idEnv
	city, distA, distB, ecomA string
	tokens                    map[string]string
}

func newODREnv(t *testing.T) *odrEnv {
	t.Helper()
	e := &odrEnv{idEnv: newIDEnv(t, func(p *Params) {
		big := ratelimit.Rule{Limit: 10000, Window: time.Minute}
		p.Limits = Limits{LoginPerIP: big, LoginPerAccount: big, ExchangePerIP: big, ExchangePerCode: big, RefreshPerIP: big, PasswordPerAcct: big}
	}), tokens: map[string]string{"operator": testAdminToken}}
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
	e.city = inst("3101", "City Centre", "city", "")
	e.distA = inst("0310", "District A", "district", e.city)
	e.distB = inst("0320", "District B", "district", e.city)
	e.ecomA = inst("031099", "District A E-commerce Committee", "community", e.distA)
	for _, a := range []struct{ key, role, inst string }{
		{"adminA", "institution_admin", e.distA},
		{"adminB", "institution_admin", e.distB},
		{"medA", "mediator", e.distA},
	} {
		e.account(a.key, a.role, a.inst, "")
	}
	// Institution admin A enrols the merchant; it is pending until approved.
	var ent cases.Enterprise
	e.asOK(e.tokens["adminA"], "POST", "/api/v1/odr/enterprises", map[string]any{
		"creditCode": testCreditCode, "name": "Bright Home Ltd", "institutionId": e.distA,
		"categories": []string{"e-commerce", "product-quality"}, "stores": []string{"JD: Bright Home"},
		"district": "310104", "responseDays": 5,
	}, 201, &ent)
	if ent.Status != cases.EnterprisePending {
		t.Fatalf("enrolment %+v", ent)
	}
	// B may not see it, let alone approve it.
	resp, b := e.as(e.tokens["adminB"], "POST", "/api/v1/odr/enterprises/"+testCreditCode+"/review", map[string]any{"action": "approve"})
	wantProblem(t, resp, b, 404, cases.ENOTFOUND, "")
	e.asOK(e.tokens["adminA"], "POST", "/api/v1/odr/enterprises/"+testCreditCode+"/review", map[string]any{"action": "approve"}, 200, &ent)
	if ent.Status != cases.EnterpriseEnrolled {
		t.Fatalf("approved: %+v", ent)
	}
	e.account("agentE", "merchant_agent", "", testCreditCode)
	// Another enterprise, enrolled by the platform, with its own agent.
	e.asOK(op, "POST", "/api/v1/odr/enterprises", map[string]any{"creditCode": otherCreditCode, "name": "Other Ltd", "institutionId": e.distB}, 201, nil)
	e.asOK(op, "POST", "/api/v1/odr/enterprises/"+otherCreditCode+"/review", map[string]any{"action": "approve"}, 200, nil)
	e.account("agentF", "merchant_agent", "", otherCreditCode)
	// District A's e-commerce complaints go to its committee.
	e.asOK(op, "PUT", "/api/v1/odr/routes/a-ecom", map[string]any{"category": "e-commerce", "district": "310104", "institutionId": e.ecomA}, 200, nil)
	e.asOK(e.tokens["adminA"], "PUT", "/api/v1/odr/routes/a-any", map[string]any{"district": "310104", "institutionId": e.distA}, 200, nil)
	return e
}

// account creates a staff account and logs it in.
func (e *odrEnv) account(key, role, inst, ent string) {
	e.t.Helper()
	body := map[string]any{"login": key, "name": key, "role": role, "password": testPassword}
	if inst != "" {
		body["institutionId"] = inst
	}
	if ent != "" {
		body["enterpriseCode"] = ent
	}
	e.asOK(testAdminToken, "POST", "/api/v1/accounts", body, 201, nil)
	e.relogin(key)
}

func (e *odrEnv) relogin(key string) {
	e.t.Helper()
	ans, _ := e.login(key, testPassword)
	e.tokens[key] = ans.AccessToken
}

// complaint files a complaint against the enterprise through the public
// form and runs the worker's round, which puts it in the inbox.
func (e *odrEnv) complaint(category, creditCode string) string {
	e.t.Helper()
	body := caseBody(e.distA, true)
	body["category"] = category
	body["respondent"].(map[string]any)["creditCode"] = creditCode
	var ans intakeAnswer
	e.asOK("", "POST", "/api/v1/intake", body, 201, &ans)
	if ans.State != cases.StateSubmitted {
		e.t.Fatalf("intake state %s", ans.State)
	}
	var sw cases.SweepResult
	e.asOK(testAdminToken, "POST", "/api/v1/odr/sweep", nil, 200, &sw)
	if sw.Routed != 1 {
		e.t.Fatalf("sweep %+v", sw)
	}
	return ans.ID
}

// applicantToken is the applicant's join token for the case's
// reconciliation room, as its link would give it.
func (e *odrEnv) applicantToken(caseID, side string) string {
	e.t.Helper()
	rec, err := e.svc.Reconciliation(e.t.Context(), caseID)
	if err != nil {
		e.t.Fatal(err)
	}
	sess, err := e.svc.Session(e.t.Context(), rec.SessionID)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, p := range sess.Participants {
		if p.Side == side {
			tok, err := e.signer.Issue(joinlink.Claims{CaseID: caseID, SessionID: sess.ID, Role: p.Role, Side: p.Side,
				RegisteredClaims: jwt.RegisteredClaims{Subject: p.ID}}, time.Hour)
			if err != nil {
				e.t.Fatal(err)
			}
			return tok
		}
	}
	e.t.Fatalf("no %s in the room", side)
	return ""
}

// TestReconciliationOverHTTP walks complaints through every path of
// reconciliation through the API, with a fake clock.
func TestReconciliationOverHTTP(t *testing.T) {
	e := newODREnv(t)
	// Staff tokens live 15 minutes; the clock moves by hours.
	agent := func() string { e.relogin("agentE"); return e.tokens["agentE"] }
	act := func(body map[string]any) func(id string) reconciliationAnswer {
		return func(id string) reconciliationAnswer {
			var a reconciliationAnswer
			e.asOK(agent(), "POST", "/api/v1/odr/cases/"+id+"/actions", body, 200, &a)
			return a
		}
	}
	answer := func(accept bool) func(id string) reconciliationAnswer {
		return func(id string) reconciliationAnswer {
			var cur reconciliationAnswer
			tok := e.applicantToken(id, cases.SideApplicant)
			e.asOK(tok, "GET", "/api/v1/odr/cases/"+id, nil, 200, &cur)
			offer := cur.Reconciliation.Offers[len(cur.Reconciliation.Offers)-1]
			var a reconciliationAnswer
			e.asOK(tok, "POST", "/api/v1/odr/cases/"+id+"/answer", map[string]any{"offerId": offer.ID, "accept": accept, "note": "not enough"}, 200, &a)
			return a
		}
	}
	lapse := func(id string) reconciliationAnswer {
		rec, _ := e.svc.Reconciliation(t.Context(), id)
		e.clock.Add(rec.DueAt.Sub(e.clock.Now()) - time.Hour)
		var sw cases.SweepResult
		e.asOK(testAdminToken, "POST", "/api/v1/odr/sweep", nil, 200, &sw)
		if sw.Escalated != 0 {
			t.Fatalf("escalated an hour before the deadline: %+v", sw)
		}
		e.clock.Add(time.Hour)
		e.asOK(testAdminToken, "POST", "/api/v1/odr/sweep", nil, 200, &sw)
		if sw.Escalated != 1 {
			t.Fatalf("sweep at the deadline: %+v", sw)
		}
		var a reconciliationAnswer
		e.asOK(testAdminToken, "GET", "/api/v1/odr/cases/"+id, nil, 200, &a)
		e.relogin("agentE")
		return a
	}
	counter := act(map[string]any{"action": "counter", "terms": "Refund 800 yuan within 3 days", "amountCents": 80000, "performBy": "2026-03-12"})
	for _, tt := range []struct {
		name     string
		category string
		steps    []func(string) reconciliationAnswer
		state    cases.State
		result   string
		inst     string
		terms    string
	}{
		{"accept the claim", "e-commerce", []func(string) reconciliationAnswer{act(map[string]any{"action": "accept", "terms": "refund within 3 days"})},
			cases.StateClosed, cases.RecSettled, "", "rice cooker"},
		{"counter-offer accepted", "e-commerce", []func(string) reconciliationAnswer{counter, answer(true)},
			cases.StateClosed, cases.RecSettled, "", "Refund 800 yuan"},
		{"counter-offer refused", "e-commerce", []func(string) reconciliationAnswer{counter, answer(false)},
			cases.StateDispatched, cases.ReasonRefused, e.ecomA, ""},
		{"declined", "product-quality", []func(string) reconciliationAnswer{act(map[string]any{"action": "decline", "reason": "used beyond warranty"})},
			cases.StateDispatched, cases.ReasonDeclined, e.distA, ""},
		{"video, then the claim accepted", "e-commerce", []func(string) reconciliationAnswer{
			act(map[string]any{"action": "video", "scheduledAt": "2026-03-03T15:00:00+08:00"}), act(map[string]any{"action": "accept"})},
			cases.StateClosed, cases.RecSettled, "", "rice cooker"},
		{"deadline passes", "e-commerce", []func(string) reconciliationAnswer{lapse},
			cases.StateDispatched, cases.ReasonDeadlinePassed, e.ecomA, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			id := e.complaint(tt.category, testCreditCode)
			var inbox struct{ Items []cases.InboxItem }
			e.asOK(agent(), "GET", "/api/v1/odr/enterprises/"+testCreditCode+"/inbox", nil, 200, &inbox)
			if !slices.ContainsFunc(inbox.Items, func(it cases.InboxItem) bool { return it.CaseID == id }) {
				t.Fatalf("complaint %s not in the inbox %+v", id, inbox.Items)
			}
			var a reconciliationAnswer
			for _, st := range tt.steps {
				e.clock.Add(time.Hour)
				a = st(id)
			}
			if a.State != tt.state || a.Reconciliation.Result != tt.result {
				t.Fatalf("state %s result %q", a.State, a.Reconciliation.Result)
			}
			var rec cases.CaseRecord
			e.asOK(testAdminToken, "GET", "/api/v1/cases/"+id, nil, 200, &rec)
			if tt.inst != "" && rec.InstitutionID != tt.inst {
				t.Fatalf("dispatched to %s, want %s", rec.InstitutionID, tt.inst)
			}
			if tt.terms != "" && (rec.Outcome == nil || rec.Outcome.Result != cases.ResultReconciled || !strings.Contains(rec.Outcome.Terms, tt.terms)) {
				t.Fatalf("outcome %+v", rec.Outcome)
			}
			if last := rec.Events[len(rec.Events)-1]; last.Type != "case."+string(tt.state) {
				t.Fatalf("last event %s", last.Type)
			}
			// Once the stage is over, the merchant can do no more.
			resp, b := e.as(agent(), "POST", "/api/v1/odr/cases/"+id+"/actions", map[string]any{"action": "accept"})
			wantProblem(t, resp, b, 409, cases.ETRANSITION, "")
		})
	}

	var dash cases.MerchantDashboard
	e.asOK(agent(), "GET", "/api/v1/odr/enterprises/"+testCreditCode+"/dashboard", nil, 200, &dash)
	if dash.Total != 6 || dash.Settled != 3 || dash.Escalated != 3 || len(dash.ByCategory) != 2 {
		t.Fatalf("dashboard %+v", dash)
	}
	e.relogin("adminA")
	e.asOK(e.tokens["adminA"], "GET", "/api/v1/odr/enterprises/"+testCreditCode+"/dashboard?from=2026-03-01", nil, 200, &dash)
	resp, b := e.as(agent(), "GET", "/api/v1/odr/enterprises/"+testCreditCode+"/dashboard?since=2026", nil)
	wantProblem(t, resp, b, 400, codeBadRequest, "since")
}

// TestReconciliationAccess checks who may do what.
func TestReconciliationAccess(t *testing.T) {
	e := newODREnv(t)
	id := e.complaint("e-commerce", testCreditCode)
	path := "/api/v1/odr/cases/" + id
	counter := map[string]any{"action": "counter", "terms": "half"}
	e.asOK(e.tokens["agentE"], "POST", path+"/actions", counter, 200, nil)
	applicant := e.applicantToken(id, cases.SideApplicant)
	respondent := e.applicantToken(id, cases.SideRespondent)
	e.account("medB", "mediator", e.distB, "")
	for _, tc := range []struct {
		name, token, method, path string
		body                      any
		status                    int
		code, field               string
	}{
		{"another merchant's action", e.tokens["agentF"], "POST", path + "/actions", counter, 404, cases.ENOTFOUND, ""},
		{"another merchant's read", e.tokens["agentF"], "GET", path, nil, 404, cases.ENOTFOUND, ""},
		{"another merchant's inbox", e.tokens["agentF"], "GET", "/api/v1/odr/enterprises/" + testCreditCode + "/inbox", nil, 404, cases.ENOTFOUND, ""},
		{"another merchant's dashboard", e.tokens["agentF"], "GET", "/api/v1/odr/enterprises/" + testCreditCode + "/dashboard", nil, 404, cases.ENOTFOUND, ""},
		{"an institution admin answers for the merchant", e.tokens["adminA"], "POST", path + "/actions", counter, 403, cases.EFORBIDDEN, ""},
		{"an institution admin reads the inbox", e.tokens["adminA"], "GET", "/api/v1/odr/enterprises/" + testCreditCode + "/inbox", nil, 403, cases.EFORBIDDEN, ""},
		{"a mediator of another district", e.tokens["medB"], "GET", path, nil, 404, cases.ENOTFOUND, ""},
		{"a mediator enrols", e.tokens["medA"], "POST", "/api/v1/odr/enterprises", map[string]any{"creditCode": "91310000MA1FL0CD3E", "name": "x", "institutionId": e.distA}, 403, cases.EFORBIDDEN, ""},
		{"an admin enrols outside its scope", e.tokens["adminB"], "POST", "/api/v1/odr/enterprises", map[string]any{"creditCode": "91310000MA1FL0CD3E", "name": "x", "institutionId": e.distA}, 403, cases.EFORBIDDEN, ""},
		{"the merchant reviews itself", e.tokens["agentE"], "POST", "/api/v1/odr/enterprises/" + testCreditCode + "/review", map[string]any{"action": "suspend", "reason": "x"}, 403, cases.EFORBIDDEN, ""},
		{"the respondent answers its own offer", respondent, "POST", path + "/answer", map[string]any{"accept": true}, 403, cases.EFORBIDDEN, ""},
		{"staff answer for the applicant", e.tokens["adminA"], "POST", path + "/answer", map[string]any{"accept": true}, 401, codeUnauthorized, ""},
		{"an answer without accept", applicant, "POST", path + "/answer", map[string]any{"note": "?"}, 422, cases.EINVALID, "accept"},
		{"the applicant acts for the merchant", applicant, "POST", path + "/actions", counter, 401, codeUnauthorized, ""},
		{"an admin routes outside its scope", e.tokens["adminB"], "PUT", "/api/v1/odr/routes/b", map[string]any{"institutionId": e.distA}, 403, cases.EFORBIDDEN, ""},
		{"an admin takes another's route", e.tokens["adminB"], "PUT", "/api/v1/odr/routes/a-any", map[string]any{"institutionId": e.distB}, 403, cases.EFORBIDDEN, ""},
		{"a mediator lists routes", e.tokens["medA"], "GET", "/api/v1/odr/routes", nil, 403, cases.EFORBIDDEN, ""},
		{"an admin runs the worker", e.tokens["adminA"], "POST", "/api/v1/odr/sweep", nil, 403, cases.EFORBIDDEN, ""},
		{"an unknown action", e.tokens["agentE"], "POST", path + "/actions", map[string]any{"action": "ignore"}, 422, cases.EINVALID, "action"},
		{"an unknown field", e.tokens["agentE"], "POST", path + "/actions", map[string]any{"action": "accept", "price": 1}, 400, codeBadRequest, "price"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, b := e.as(tc.token, tc.method, tc.path, tc.body)
			wantProblem(t, resp, b, tc.status, tc.code, tc.field)
		})
	}
	// The applicant sees its reconciliation; agents and admins list what
	// is theirs.
	var a reconciliationAnswer
	e.asOK(applicant, "GET", path, nil, 200, &a)
	if a.Reconciliation == nil || a.Reconciliation.Status != cases.RecOfferPending {
		t.Fatalf("applicant's view %+v", a)
	}
	var list struct{ Items []cases.Enterprise }
	e.asOK(e.tokens["agentF"], "GET", "/api/v1/odr/enterprises", nil, 200, &list)
	if len(list.Items) != 1 || list.Items[0].CreditCode != otherCreditCode {
		t.Fatalf("agent F sees %+v", list.Items)
	}
	e.asOK(e.tokens["adminB"], "GET", "/api/v1/odr/enterprises?status=enrolled", nil, 200, &list)
	if len(list.Items) != 1 || list.Items[0].CreditCode != otherCreditCode {
		t.Fatalf("admin B sees %+v", list.Items)
	}
	e.asOK(testAdminToken, "GET", "/api/v1/odr/enterprises", nil, 200, &list)
	if len(list.Items) != 2 {
		t.Fatalf("the platform sees %+v", list.Items)
	}
	// Suspending the enrolment sends the open complaint to mediation.
	e.asOK(e.tokens["adminA"], "POST", "/api/v1/odr/enterprises/"+testCreditCode+"/review", map[string]any{"action": "suspend", "reason": "ignores its inbox"}, 200, nil)
	e.asOK(applicant, "GET", path, nil, 200, &a)
	if a.State != cases.StateDispatched || a.Reconciliation.Result != cases.ReasonEnterpriseSuspended {
		t.Fatalf("after suspension %+v", a)
	}
	// Routes.
	var routes struct{ Items []cases.DispatchRoute }
	e.asOK(e.tokens["adminB"], "GET", "/api/v1/odr/routes", nil, 200, &routes)
	if len(routes.Items) != 2 {
		t.Fatalf("routes %+v", routes.Items)
	}
	resp, b := e.as(e.tokens["adminB"], "DELETE", "/api/v1/odr/routes/a-any", nil)
	wantProblem(t, resp, b, 403, cases.EFORBIDDEN, "")
	if resp, _ := e.as(e.tokens["adminA"], "DELETE", "/api/v1/odr/routes/a-any", nil); resp.StatusCode != 204 {
		t.Fatalf("delete route: %d", resp.StatusCode)
	}
	resp, b = e.as(e.tokens["adminA"], "DELETE", "/api/v1/odr/routes/a-any", nil)
	wantProblem(t, resp, b, 404, cases.ENOTFOUND, "")
}

// TestStatisticsOverHTTP seeds cases with personal data through the
// API, exports the statistics as JSON and CSV, and checks that none of
// it appears, that small cells are suppressed, and who may see what.
func TestStatisticsOverHTTP(t *testing.T) {
	e := newODREnv(t)
	var secrets []string
	for i := range 17 {
		name := fmt.Sprintf("王小明%02d", i)
		phone := fmt.Sprintf("+86 137 5555 %04d", 2000+i)
		idNo := fmt.Sprintf("31010419850612%04d", 3000+i)
		body := caseBody(e.distA, false)
		inst := e.distA
		if i >= 13 {
			inst = e.distB
		}
		body["institutionId"] = inst
		body["applicant"] = map[string]any{"name": name, "kind": "person", "phone": phone}
		body["respondent"] = map[string]any{"name": "店铺" + idNo, "kind": "organisation"}
		body["claims"] = "身份证号 " + idNo + "，电话 " + phone
		secrets = append(secrets, name, phone, idNo)
		e.asOK("", "POST", "/api/v1/intake", body, 201, nil)
	}
	var rep struct {
		MinCell int `json:"minCell"`
		Tables  []struct {
			Name string
			Rows []struct {
				Keys       map[string]string
				Values     map[string]*float64
				Suppressed []string
			}
		}
	}
	resp, body := e.as(testAdminToken, "GET", "/api/v1/stats?from=2026-01&to=2026-12", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("stats: %d %s", resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, &rep); err != nil || rep.MinCell != 5 {
		t.Fatalf("decode: %v", err)
	}
	respCSV, csvBody := e.as(testAdminToken, "GET", "/api/v1/stats?format=csv", nil)
	if respCSV.StatusCode != 200 || !strings.HasPrefix(respCSV.Header.Get("Content-Type"), "text/csv") {
		t.Fatalf("csv: %d %s", respCSV.StatusCode, respCSV.Header.Get("Content-Type"))
	}
	for _, out := range [][]byte{body, csvBody} {
		for _, s := range secrets {
			if strings.Contains(string(out), s) {
				t.Fatalf("the export holds %q", s)
			}
		}
	}
	// 13 cases at A, 4 at B: B is suppressed, and so is A (or the total
	// would give B away).
	byInst := map[string]*float64{}
	for _, tb := range rep.Tables {
		if tb.Name == "by_institution" {
			for _, r := range tb.Rows {
				byInst[r.Keys["institution"]] = r.Values["cases"]
			}
		}
	}
	if byInst["District B (0320)"] != nil || byInst["District A (0310)"] != nil || byInst["(total)"] == nil || *byInst["(total)"] != 17 {
		t.Fatalf("by institution %v", byInst)
	}
	lines, err := csv.NewReader(strings.NewReader(string(csvBody))).ReadAll()
	if err != nil || len(lines) < 20 {
		t.Fatalf("csv: %v", err)
	}
	// Admin B sees its 4 cases only, all suppressed.
	e.asOK(e.tokens["adminB"], "GET", "/api/v1/stats", nil, 200, &rep)
	for _, tb := range rep.Tables {
		if tb.Name == "by_month" {
			for _, r := range tb.Rows {
				if r.Values["cases"] != nil {
					t.Fatalf("admin B sees %v", r)
				}
			}
		}
	}
	for _, tc := range []struct {
		token, path string
		status      int
		code, field string
	}{
		{e.tokens["medA"], "/api/v1/stats", 403, cases.EFORBIDDEN, ""},
		{e.tokens["agentE"], "/api/v1/stats/warnings", 403, cases.EFORBIDDEN, ""},
		{e.tokens["adminB"], "/api/v1/stats?institutionId=" + e.distA, 403, cases.EFORBIDDEN, ""},
		{testAdminToken, "/api/v1/stats?from=March", 422, cases.EINVALID, "from"},
		{testAdminToken, "/api/v1/stats?format=xml", 400, codeBadRequest, "format"},
		{testAdminToken, "/api/v1/stats/warnings?weeks=0", 400, codeBadRequest, "weeks"},
	} {
		resp, b := e.as(tc.token, "GET", tc.path, nil)
		wantProblem(t, resp, b, tc.status, tc.code, tc.field)
	}
	var warn struct {
		Items         []map[string]any
		BaselineWeeks int
	}
	e.asOK(e.tokens["adminA"], "GET", "/api/v1/stats/warnings?institutionId="+e.distA, nil, 200, &warn)
	// 13 complaints this week in e-commerce from nothing before: flagged.
	if warn.BaselineWeeks != 8 || len(warn.Items) == 0 || warn.Items[0]["key"] != "e-commerce" {
		t.Fatalf("warnings %+v", warn)
	}
}

package web

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/concord-odr/concord/cases"
	"github.com/concord-odr/concord/cases/joinlink"
	"github.com/concord-odr/concord/cases/sqlite"
)

const (
	testAdminToken   = "test-operator-token-0123456789"
	testImportSecret = "test-import-secret"
	testCreditCode   = "91310000MA1FL0AB2C"
)

// testClock is a settable time source.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(time.Millisecond)
	return c.now
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// apiEnv is the HTTP API on an embedded store, served by httptest.
type apiEnv struct {
	t       testing.TB
	url     string
	handler *Handler
	svc     *cases.Service
	store   cases.Store
	clock   *testClock
	signer  *joinlink.Signer
}

func newAPIEnv(t testing.TB, p Params) *apiEnv {
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
	signer, err := joinlink.NewSigner(joinlink.Key{ID: "k1", Secret: bytes.Repeat([]byte("s"), 32)}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.Cases = svc
	p.Tokens = signer
	h := NewHandler(p)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &apiEnv{t: t, url: srv.URL, handler: h, svc: svc, store: store, clock: clock, signer: signer}
}

func newStaffAPI(t *testing.T) *apiEnv {
	return newAPIEnv(t, Params{AdminToken: testAdminToken, ImportSecret: testImportSecret})
}

// request sends a request; body is a string sent as is, or a value sent
// as JSON. headers are name, value pairs.
func (e *apiEnv) request(method, path string, body any, headers ...string) (*http.Response, []byte) {
	e.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	case []byte:
		r = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.url+path, r)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp, b
}

// staff sends a request as the operator and wants the given status,
// decoding the answer into out.
func (e *apiEnv) staff(method, path string, body any, status int, out any, headers ...string) {
	e.t.Helper()
	resp, b := e.request(method, path, body, append([]string{"Authorization", "Bearer " + testAdminToken}, headers...)...)
	if resp.StatusCode != status {
		e.t.Fatalf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			e.t.Fatalf("%s %s: decode %s: %v", method, path, b, err)
		}
	}
}

// problem decodes a problem answer and checks its status, code and field.
func wantProblem(t *testing.T, resp *http.Response, b []byte, status int, code, field string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d: %s", resp.StatusCode, status, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("content type %q: %s", ct, b)
	}
	var p fieldProblem
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	if p.Code != code || p.Field != field || p.Status != status {
		t.Fatalf("problem %+v, want code %q field %q", p, code, field)
	}
}

// directory creates, through the API, a province, a district under it, a
// community station under that, a mediator of the district and an ODR
// enterprise.
type directory struct {
	province, district, community cases.Institution
	mediator                      cases.Mediator
}

func (e *apiEnv) directory() directory {
	e.t.Helper()
	var d directory
	e.staff("POST", "/api/v1/institutions", map[string]any{"code": "31", "name": "Shanghai Centre", "level": "province"}, 201, &d.province)
	e.staff("POST", "/api/v1/institutions", map[string]any{"code": "0310", "name": "Xuhui Committee", "level": "district", "parentId": d.province.ID}, 201, &d.district)
	e.staff("PUT", "/api/v1/institutions/inst_tianping", map[string]any{"code": "031001", "name": "Tianping Station", "level": "community", "parentId": d.district.ID}, 200, &d.community)
	e.staff("POST", "/api/v1/institutions/"+d.district.ID+"/mediators", map[string]any{"name": "王调解员"}, 201, &d.mediator)
	var ent cases.Enterprise
	e.staff("PUT", "/api/v1/enterprises/"+testCreditCode, map[string]any{"name": "Shop Ltd"}, 200, &ent)
	if ent.Status != cases.EnterpriseEnrolled || d.community.ID != "inst_tianping" || d.mediator.Status != cases.MediatorActive {
		e.t.Fatalf("directory: %+v %+v %+v", ent, d.community, d.mediator)
	}
	return d
}

func caseBody(instID string, odr bool) map[string]any {
	resp := map[string]any{"name": "Bright Home Ltd", "kind": "organisation"}
	if odr {
		resp["creditCode"] = testCreditCode
	}
	return map[string]any{
		"institutionId": instID,
		"category":      "e-commerce",
		"applicant":     map[string]any{"name": "李华", "kind": "person", "phone": "+86 138 0000 0000"},
		"respondent":    resp,
		"claims":        "Refund of 1,299.00 yuan for a rice cooker.",
		"amountCents":   129900,
		"incidentDate":  "2026-02-20",
	}
}

func (e *apiEnv) sign(b []byte) string {
	mac := hmac.New(sha256.New, []byte(testImportSecret))
	mac.Write(b)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// TestLifecycleOverHTTP walks cases through every path of the lifecycle
// diagram through the HTTP API alone: intake by each channel, each
// transition, a session ended by its mediator, and the history.
func TestLifecycleOverHTTP(t *testing.T) {
	e := newStaffAPI(t)
	d := e.directory()

	// Intake: staff at a window, the applicant's form, an import.
	open := func(how string, odr bool) string {
		t.Helper()
		body := caseBody(d.district.ID, odr)
		switch how {
		case "window", "phone", "kiosk":
			body["channel"] = how
			var c cases.Case
			e.staff("POST", "/api/v1/cases", body, 201, &c)
			if c.State != cases.StateSubmitted || c.Respondent.ODREnterprise != odr || c.RuleSetID == "" || !strings.HasPrefix(c.Number, "2026-0310-") {
				t.Fatalf("opened %+v", c)
			}
			return c.ID
		case "online":
			var a intakeAnswer
			resp, b := e.request("POST", "/api/v1/intake", body)
			if resp.StatusCode != 201 || json.Unmarshal(b, &a) != nil || a.ID == "" || a.State != cases.StateSubmitted {
				t.Fatalf("intake: %d %s", resp.StatusCode, b)
			}
			return a.ID
		default:
			body["source"] = "12315"
			body["externalNumber"] = "12315-2026-" + how
			raw, _ := json.Marshal(body)
			resp, b := e.request("POST", "/api/v1/imports/cases", raw, signatureHeader, e.sign(raw))
			var a importAnswer
			if resp.StatusCode != 201 || json.Unmarshal(b, &a) != nil || !a.Created {
				t.Fatalf("import: %d %s", resp.StatusCode, b)
			}
			return a.ID
		}
	}
	step := func(id string, body map[string]any) cases.Case {
		t.Helper()
		var c cases.Case
		e.staff("POST", "/api/v1/cases/"+id+"/transitions", body, 200, &c)
		if string(c.State) != body["to"] {
			t.Fatalf("state %s after %v", c.State, body)
		}
		return c
	}
	var (
		toReconciliation = map[string]any{"to": "reconciliation"}
		dispatch         = map[string]any{"to": "dispatched"}
		declined         = map[string]any{"to": "dispatched", "reasonCode": "declined", "reason": "no refund"}
		passed           = map[string]any{"to": "dispatched", "reasonCode": "deadline_passed"}
		toCommunity      = map[string]any{"to": "dispatched", "institutionId": d.community.ID}
		contacted        = map[string]any{"to": "respondent_contacted", "note": "phoned"}
		accepted         = map[string]any{"to": "accepted", "mediatorId": d.mediator.ID}
		rejected         = map[string]any{"to": "rejected", "reasonCode": "respondent_refused", "reason": "the shop will not take part"}
		mediating        = map[string]any{"to": "mediating"}
		reconciled       = map[string]any{"to": "closed", "outcome": map[string]any{"result": "reconciled", "terms": "full refund"}}
		partially        = map[string]any{"to": "closed", "outcome": map[string]any{"result": "partially_settled", "terms": "half refunded"}}
		notSettled       = map[string]any{"to": "closed", "outcome": map[string]any{"result": "not_settled", "remedies": []string{"arbitration", "online litigation"}}}
		withdrawn        = map[string]any{"to": "closed", "outcome": map[string]any{"result": "withdrawn"}}
		toCourt          = map[string]any{"to": "confirmation_requested", "by": "court", "body": "Xuhui District People's Court"}
		toArbCf          = map[string]any{"to": "confirmation_requested", "by": "arbitration"}
		confirmed        = map[string]any{"to": "confirmed"}
		refused          = map[string]any{"to": "confirmation_refused", "reason": "terms unclear"}
		toArbitration    = map[string]any{"to": "referred", "by": "arbitration", "arbitrationAgreement": true}
		toLitigation     = map[string]any{"to": "referred", "by": "litigation"}
	)
	// session schedules a session, joins its mediator's token and ends it
	// with a settlement: mediating -> closed through the session.
	session := func(id string) {
		t.Helper()
		var sess cases.Session
		e.staff("POST", "/api/v1/cases/"+id+"/sessions", map[string]any{"participants": []map[string]any{
			{"name": "王调解员", "role": "mediator", "side": "neutral"},
			{"name": "李华", "role": "party", "side": "applicant"},
		}}, 201, &sess)
		med := sess.Participants[0]
		tok, err := e.signer.Issue(joinlink.Claims{CaseID: id, SessionID: sess.ID, Role: med.Role, Side: med.Side,
			RegisteredClaims: jwt.RegisteredClaims{Subject: med.ID}}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		resp, b := e.request("POST", "/api/v1/sessions/"+sess.ID+"/end", map[string]any{"result": "settled", "terms": "refund in 7 days"}, "Authorization", "Bearer "+tok)
		if resp.StatusCode != 200 {
			t.Fatalf("end session: %d %s", resp.StatusCode, b)
		}
		// The participant's token also reads the history.
		resp, b = e.request("GET", "/api/v1/cases/"+id+"/events", nil, "Authorization", "Bearer "+tok)
		if resp.StatusCode != 200 {
			t.Fatalf("events by join token: %d %s", resp.StatusCode, b)
		}
	}
	type walk struct {
		name  string
		how   string
		odr   bool
		steps []any // a transition body, a time.Duration to wait, or "session"
		final cases.State
		types []string
	}
	for _, w := range []walk{
		{"reconciled", "window", true, []any{toReconciliation, reconciled}, cases.StateClosed,
			[]string{"case.submitted", "case.reconciliation", "case.closed"}},
		{"declined, session settled, confirmed by a court", "online", true,
			[]any{toReconciliation, declined, contacted, accepted, "session", toCourt, confirmed}, cases.StateConfirmed,
			[]string{"case.submitted", "case.reconciliation", "case.dispatched", "case.respondent_contacted", "case.accepted",
				"case.mediating", "session.scheduled", "session.ended", "case.closed", "case.confirmation_requested", "case.confirmed"}},
		{"reconciliation deadline passed", "1", true, []any{toReconciliation, 21 * 24 * time.Hour, passed, contacted}, cases.StateRespondentContacted,
			[]string{"case.submitted", "case.reconciliation", "case.dispatched", "case.respondent_contacted"}},
		{"dispatched to a station, rejected", "phone", false, []any{toCommunity, contacted, rejected}, cases.StateRejected,
			[]string{"case.submitted", "case.dispatched", "case.respondent_contacted", "case.rejected"}},
		{"partially settled, confirmation refused", "kiosk", false,
			[]any{dispatch, contacted, accepted, mediating, partially, toArbCf, refused}, cases.StateConfirmationRefused,
			[]string{"case.submitted", "case.dispatched", "case.respondent_contacted", "case.accepted", "case.mediating",
				"case.closed", "case.confirmation_requested", "case.confirmation_refused"}},
		{"not settled, referred to arbitration", "2", false, []any{dispatch, contacted, accepted, mediating, notSettled, toArbitration}, cases.StateReferred,
			[]string{"case.submitted", "case.dispatched", "case.respondent_contacted", "case.accepted", "case.mediating", "case.closed", "case.referred"}},
		{"not settled, referred to litigation", "window", false, []any{dispatch, contacted, accepted, mediating, notSettled, toLitigation}, cases.StateReferred,
			[]string{"case.submitted", "case.dispatched", "case.respondent_contacted", "case.accepted", "case.mediating", "case.closed", "case.referred"}},
		{"withdrawn", "online", false, []any{dispatch, contacted, accepted, mediating, withdrawn}, cases.StateClosed,
			[]string{"case.submitted", "case.dispatched", "case.respondent_contacted", "case.accepted", "case.mediating", "case.closed"}},
	} {
		t.Run(w.name, func(t *testing.T) {
			id := open(w.how, w.odr)
			for _, s := range w.steps {
				switch s := s.(type) {
				case time.Duration:
					e.clock.Add(s)
				case string:
					session(id)
				case map[string]any:
					step(id, s)
				}
			}
			var ev eventsAnswer
			e.staff("GET", "/api/v1/cases/"+id+"/events", nil, 200, &ev)
			var types []string
			for _, x := range ev.Items {
				types = append(types, x.Type)
			}
			if !slices.Equal(types, w.types) {
				t.Fatalf("events:\n got %v\nwant %v", types, w.types)
			}
			var page cases.CasePage
			e.staff("GET", "/api/v1/cases?state="+string(w.final), nil, 200, &page)
			if !slices.ContainsFunc(page.Items, func(c cases.Case) bool { return c.ID == id }) {
				t.Fatalf("case %s not listed in state %s", id, w.final)
			}
		})
	}

	// A step the table does not allow names the current state; a stale
	// version is refused.
	id := open("window", false)
	resp, b := e.request("POST", "/api/v1/cases/"+id+"/transitions", map[string]any{"to": "accepted"}, "Authorization", "Bearer "+testAdminToken)
	wantProblem(t, resp, b, 409, cases.ETRANSITION, "")
	if !strings.Contains(string(b), "submitted") {
		t.Fatalf("refusal does not name the current state: %s", b)
	}
	resp, b = e.request("POST", "/api/v1/cases/"+id+"/transitions", map[string]any{"to": "dispatched"}, "Authorization", "Bearer "+testAdminToken, "If-Match", `"5"`)
	wantProblem(t, resp, b, 409, cases.ECONFLICT, "")
	resp, b = e.request("POST", "/api/v1/cases/"+id+"/transitions", map[string]any{"to": "dispatched"}, "Authorization", "Bearer "+testAdminToken, "If-Match", `"1"`)
	if resp.StatusCode != 200 || resp.Header.Get("ETag") != `"2"` {
		t.Fatalf("transition with If-Match: %d %s %s", resp.StatusCode, resp.Header.Get("ETag"), b)
	}
	resp, b = e.request("POST", "/api/v1/cases/case_none/transitions", map[string]any{"to": "dispatched"}, "Authorization", "Bearer "+testAdminToken)
	wantProblem(t, resp, b, 404, cases.ENOTFOUND, "")

	// Overdue: the respondent of that case must be contacted by the end of
	// the third working day.
	var overdue cases.CasePage
	e.staff("GET", "/api/v1/cases?overdue=true", nil, 200, &overdue)
	if slices.ContainsFunc(overdue.Items, func(c cases.Case) bool { return c.ID == id }) {
		t.Fatal("a case dispatched just now is overdue")
	}
	e.clock.Add(6 * 24 * time.Hour)
	e.staff("GET", "/api/v1/cases?overdue=true", nil, 200, &overdue)
	if !slices.ContainsFunc(overdue.Items, func(c cases.Case) bool { return c.ID == id }) {
		t.Fatal("a case dispatched 6 days ago and never contacted is not overdue")
	}
}

// TestBadInput sends malformed requests: each gets a 4xx problem naming
// the field, and nothing is written.
func TestBadInput(t *testing.T) {
	e := newStaffAPI(t)
	d := e.directory()
	auth := []string{"Authorization", "Bearer " + testAdminToken}
	valid := func() map[string]any {
		b := caseBody(d.district.ID, false)
		b["channel"] = "window"
		return b
	}
	with := func(change func(map[string]any)) map[string]any {
		b := valid()
		change(b)
		return b
	}
	var c cases.Case
	e.staff("POST", "/api/v1/cases", valid(), 201, &c)
	count := func() int {
		var page cases.CasePage
		e.staff("GET", "/api/v1/cases", nil, 200, &page)
		return len(page.Items)
	}
	before := count()
	beforeEvents := func() int {
		var ev eventsAnswer
		e.staff("GET", "/api/v1/cases/"+c.ID+"/events", nil, 200, &ev)
		return len(ev.Items)
	}()
	big := strings.Repeat("x", maxCaseBody)
	for _, tt := range []struct {
		name    string
		method  string
		path    string
		body    any
		headers []string
		status  int
		code    string
		field   string
	}{
		{"unknown field", "POST", "/api/v1/cases", with(func(b map[string]any) { b["nickname"] = "x" }), nil, 400, codeBadRequest, "nickname"},
		{"unknown nested field", "POST", "/api/v1/cases", with(func(b map[string]any) { b["applicant"].(map[string]any)["age"] = 3 }), nil, 400, codeBadRequest, "age"},
		{"wrong type", "POST", "/api/v1/cases", with(func(b map[string]any) { b["amountCents"] = "12" }), nil, 400, codeBadRequest, "amountCents"},
		{"wrong nested type", "POST", "/api/v1/cases", with(func(b map[string]any) { b["applicant"].(map[string]any)["name"] = 5 }), nil, 400, codeBadRequest, "applicant.name"},
		{"fraction", "POST", "/api/v1/cases", with(func(b map[string]any) { b["amountCents"] = 1.5 }), nil, 400, codeBadRequest, "amountCents"},
		{"oversized", "POST", "/api/v1/cases", with(func(b map[string]any) { b["claims"] = big }), nil, 413, codeTooLarge, ""},
		{"not JSON", "POST", "/api/v1/cases", "{institutionId:", nil, 400, codeBadRequest, ""},
		{"empty", "POST", "/api/v1/cases", "", nil, 400, codeBadRequest, ""},
		{"an array", "POST", "/api/v1/cases", "[]", nil, 400, codeBadRequest, ""},
		{"two objects", "POST", "/api/v1/cases", `{"channel":"window"} {}`, nil, 400, codeBadRequest, ""},
		{"impossible date", "POST", "/api/v1/cases", with(func(b map[string]any) { b["incidentDate"] = "2026-02-30" }), nil, 422, cases.EINVALID, "incidentDate"},
		{"date and time", "POST", "/api/v1/cases", with(func(b map[string]any) { b["incidentDate"] = "2026-02-01T10:00:00Z" }), nil, 422, cases.EINVALID, "incidentDate"},
		{"future date", "POST", "/api/v1/cases", with(func(b map[string]any) { b["incidentDate"] = "2027-01-01" }), nil, 422, cases.EINVALID, "incidentDate"},
		{"no applicant name", "POST", "/api/v1/cases", with(func(b map[string]any) { b["applicant"].(map[string]any)["name"] = " " }), nil, 422, cases.EINVALID, "applicant.name"},
		{"bad credit code", "POST", "/api/v1/cases", with(func(b map[string]any) { b["respondent"].(map[string]any)["creditCode"] = "123" }), nil, 422, cases.EINVALID, "respondent.creditCode"},
		{"no kind", "POST", "/api/v1/cases", with(func(b map[string]any) { delete(b["respondent"].(map[string]any), "kind") }), nil, 422, cases.EINVALID, "respondent.kind"},
		{"bad category", "POST", "/api/v1/cases", with(func(b map[string]any) { b["category"] = "gossip" }), nil, 422, cases.EINVALID, "category"},
		{"bad channel", "POST", "/api/v1/cases", with(func(b map[string]any) { b["channel"] = "12315" }), nil, 422, cases.EINVALID, "channel"},
		{"negative amount", "POST", "/api/v1/cases", with(func(b map[string]any) { b["amountCents"] = -1 }), nil, 422, cases.EINVALID, "amountCents"},
		{"unknown institution", "POST", "/api/v1/cases", with(func(b map[string]any) { b["institutionId"] = "inst_none" }), nil, 422, cases.EINVALID, "institutionId"},
		{"bad idempotency key", "POST", "/api/v1/cases", valid(), []string{"Idempotency-Key", strings.Repeat("k", 256)}, 422, cases.EINVALID, "Idempotency-Key"},
		{"form without phone", "POST", "/api/v1/intake", func() any {
			b := caseBody(d.district.ID, false)
			delete(b["applicant"].(map[string]any), "phone")
			return b
		}(), nil, 422, cases.EINVALID, "applicant.phone"},
		{"form with a channel", "POST", "/api/v1/intake", valid(), nil, 400, codeBadRequest, "channel"},
		{"form with a bad phone", "POST", "/api/v1/intake", func() any {
			b := caseBody(d.district.ID, false)
			b["applicant"].(map[string]any)["phone"] = "call me"
			return b
		}(), nil, 422, cases.EINVALID, "applicant.phone"},
		{"no target state", "POST", "/api/v1/cases/" + c.ID + "/transitions", map[string]any{"note": "x"}, nil, 422, cases.EINVALID, "to"},
		{"unknown state", "POST", "/api/v1/cases/" + c.ID + "/transitions", map[string]any{"to": "archived"}, nil, 422, cases.EINVALID, "to"},
		{"outcome of wrong type", "POST", "/api/v1/cases/" + c.ID + "/transitions", map[string]any{"to": "closed", "outcome": map[string]any{"result": 3}}, nil, 400, codeBadRequest, "outcome.result"},
		{"field of another step", "POST", "/api/v1/cases/" + c.ID + "/transitions", map[string]any{"to": "dispatched", "mediatorId": "m"}, nil, 422, cases.EINVALID, "mediatorId"},
		{"bad If-Match", "POST", "/api/v1/cases/" + c.ID + "/transitions", map[string]any{"to": "dispatched"}, []string{"If-Match", "soon"}, 400, codeBadRequest, "If-Match"},
		{"list: bad date", "GET", "/api/v1/cases?createdFrom=2026-13-01", nil, nil, 422, cases.EINVALID, "createdFrom"},
		{"list: unknown parameter", "GET", "/api/v1/cases?sort=desc", nil, nil, 400, codeBadRequest, "sort"},
		{"list: bad limit", "GET", "/api/v1/cases?limit=ten", nil, nil, 422, cases.EINVALID, "limit"},
		{"list: limit 0", "GET", "/api/v1/cases?limit=0", nil, nil, 422, cases.EINVALID, "limit"},
		{"list: bad overdue", "GET", "/api/v1/cases?overdue=yes", nil, nil, 422, cases.EINVALID, "overdue"},
		{"list: bad cursor", "GET", "/api/v1/cases?cursor=abc", nil, nil, 422, cases.EINVALID, "cursor"},
		{"list: bad state", "GET", "/api/v1/cases?state=lost", nil, nil, 422, cases.EINVALID, "state"},
		{"institution: bad level", "POST", "/api/v1/institutions", map[string]any{"code": "9", "name": "X", "level": "village"}, nil, 422, cases.EINVALID, "level"},
		{"mediator of no institution", "POST", "/api/v1/institutions/inst_none/mediators", map[string]any{"name": "X"}, nil, 404, cases.ENOTFOUND, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := e.request(tt.method, tt.path, tt.body, append(slices.Clone(auth), tt.headers...)...)
			wantProblem(t, resp, b, tt.status, tt.code, tt.field)
		})
	}
	resp, b := e.request("POST", "/api/v1/cases", "{}", append(auth, "Content-Type", "text/plain")...)
	wantProblem(t, resp, b, 415, codeUnsupported, "")

	if n := count(); n != before {
		t.Fatalf("bad requests created %d cases", n-before)
	}
	var ev eventsAnswer
	e.staff("GET", "/api/v1/cases/"+c.ID+"/events", nil, 200, &ev)
	if len(ev.Items) != beforeEvents {
		t.Fatalf("bad transitions appended %d events", len(ev.Items)-beforeEvents)
	}
	var institutions struct{ Items []cases.Institution }
	resp, b = e.request("GET", "/api/v1/institutions", nil)
	if resp.StatusCode != 200 || json.Unmarshal(b, &institutions) != nil || len(institutions.Items) != 3 {
		t.Fatalf("institutions after bad requests: %d %s", resp.StatusCode, b)
	}
}

// TestIdempotencyKey checks that a repeated create returns the first
// answer and creates nothing, and that a reused key is refused.
func TestIdempotencyKey(t *testing.T) {
	e := newStaffAPI(t)
	d := e.directory()
	body := caseBody(d.district.ID, false)
	body["channel"] = "window"
	auth := []string{"Authorization", "Bearer " + testAdminToken}
	first, b1 := e.request("POST", "/api/v1/cases", body, append(auth, "Idempotency-Key", "key-1")...)
	if first.StatusCode != 201 || first.Header.Get("Location") == "" {
		t.Fatalf("first: %d %s", first.StatusCode, b1)
	}
	// The same request, spelt differently, gets the same answer.
	raw, _ := json.MarshalIndent(body, "", "    ")
	again, b2 := e.request("POST", "/api/v1/cases", raw, append(auth, "Idempotency-Key", "key-1")...)
	if again.StatusCode != 201 || !bytes.Equal(b1, b2) || again.Header.Get("Idempotency-Replayed") != "true" {
		t.Fatalf("repeat: %d %s\nfirst: %s", again.StatusCode, b2, b1)
	}
	body["claims"] = "something else"
	resp, b := e.request("POST", "/api/v1/cases", body, append(auth, "Idempotency-Key", "key-1")...)
	wantProblem(t, resp, b, 422, cases.EIDEMPOTENCY, "Idempotency-Key")

	// The public form has its own key space.
	form := caseBody(d.district.ID, false)
	f1, fb1 := e.request("POST", "/api/v1/intake", form, "Idempotency-Key", "key-1")
	f2, fb2 := e.request("POST", "/api/v1/intake", form, "Idempotency-Key", "key-1")
	if f1.StatusCode != 201 || f2.StatusCode != 201 || !bytes.Equal(fb1, fb2) || bytes.Equal(fb1, b1) {
		t.Fatalf("form: %d %s / %d %s", f1.StatusCode, fb1, f2.StatusCode, fb2)
	}
	var page cases.CasePage
	e.staff("GET", "/api/v1/cases", nil, 200, &page)
	if len(page.Items) != 2 {
		t.Fatalf("%d cases, want 2", len(page.Items))
	}
}

// TestImport checks the signed webhook and its idempotency by external
// number.
func TestImport(t *testing.T) {
	e := newStaffAPI(t)
	d := e.directory()
	body := caseBody(d.district.ID, true)
	body["source"] = "12315"
	body["externalNumber"] = "12315-0042"
	raw, _ := json.Marshal(body)
	for _, sig := range []string{"", "sha256=00", "sha1=" + strings.TrimPrefix(e.sign(raw), "sha256="), e.sign(append(raw, ' '))} {
		resp, b := e.request("POST", "/api/v1/imports/cases", raw, signatureHeader, sig)
		wantProblem(t, resp, b, 401, codeBadSignature, "")
	}
	var first, again importAnswer
	resp, b := e.request("POST", "/api/v1/imports/cases", raw, signatureHeader, e.sign(raw))
	if resp.StatusCode != 201 || json.Unmarshal(b, &first) != nil || !first.Created || first.ExternalNumber != "12315-0042" {
		t.Fatalf("import: %d %s", resp.StatusCode, b)
	}
	resp, b = e.request("POST", "/api/v1/imports/cases", raw, signatureHeader, e.sign(raw))
	if resp.StatusCode != 200 || json.Unmarshal(b, &again) != nil || again.Created || again.ID != first.ID || again.Number != first.Number {
		t.Fatalf("import again: %d %s", resp.StatusCode, b)
	}
	body["source"] = "weibo"
	raw, _ = json.Marshal(body)
	resp, b = e.request("POST", "/api/v1/imports/cases", raw, signatureHeader, e.sign(raw))
	wantProblem(t, resp, b, 422, cases.EINVALID, "source")

	// With no secret configured every import is refused.
	off := newAPIEnv(t, Params{AdminToken: testAdminToken})
	resp, b = off.request("POST", "/api/v1/imports/cases", raw, signatureHeader, e.sign(raw))
	wantProblem(t, resp, b, 401, codeBadSignature, "")
}

// TestStaffAuth checks that staff routes need the operator's token and
// that the events of a case are hidden from others.
func TestStaffAuth(t *testing.T) {
	e := newStaffAPI(t)
	d := e.directory()
	body := caseBody(d.district.ID, false)
	body["channel"] = "window"
	var c cases.Case
	e.staff("POST", "/api/v1/cases", body, 201, &c)
	staffRoutes := [][2]string{
		{"POST", "/api/v1/cases"}, {"GET", "/api/v1/cases"}, {"POST", "/api/v1/cases/" + c.ID + "/transitions"},
		{"POST", "/api/v1/cases/" + c.ID + "/sessions"}, {"POST", "/api/v1/institutions"},
		{"PUT", "/api/v1/institutions/x"}, {"GET", "/api/v1/institutions/x/mediators"},
		{"POST", "/api/v1/institutions/x/mediators"}, {"PUT", "/api/v1/enterprises/" + testCreditCode},
		{"GET", "/api/v1/cases/" + c.ID + "/events"},
	}
	for _, token := range []string{"", "wrong", testAdminToken + "x"} {
		for _, r := range staffRoutes {
			var h []string
			if token != "" {
				h = []string{"Authorization", "Bearer " + token}
			}
			resp, b := e.request(r[0], r[1], "{}", h...)
			wantProblem(t, resp, b, 401, codeUnauthorized, "")
		}
	}
	// With no admin token configured, nothing gets through.
	off := newAPIEnv(t, Params{})
	for _, r := range staffRoutes {
		resp, b := off.request(r[0], r[1], "{}", "Authorization", "Bearer ")
		wantProblem(t, resp, b, 401, codeUnauthorized, "")
	}

	// A join token of another case is told the case does not exist.
	tok, err := e.signer.Issue(joinlink.Claims{CaseID: "case_other", SessionID: "s_other", Role: "party", Side: "applicant",
		RegisteredClaims: jwt.RegisteredClaims{Subject: "p_1"}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	resp, b := e.request("GET", "/api/v1/cases/"+c.ID+"/events", nil, "Authorization", "Bearer "+tok)
	wantProblem(t, resp, b, 404, cases.ENOTFOUND, "")
	resp, b = e.request("GET", "/api/v1/cases/case_none/events", nil, "Authorization", "Bearer "+testAdminToken)
	wantProblem(t, resp, b, 404, cases.ENOTFOUND, "")

	// Public routes need nothing.
	for _, path := range []string{"/api/v1/rulesets", "/api/v1/institutions", "/api/v1/openapi.json"} {
		if resp, b := e.request("GET", path, nil); resp.StatusCode != 200 {
			t.Errorf("GET %s: %d %s", path, resp.StatusCode, b)
		}
	}
	var rs struct{ Items []map[string]any }
	if resp, b := e.request("GET", "/api/v1/rulesets", nil); json.Unmarshal(b, &rs) != nil || len(rs.Items) < 2 || resp.StatusCode != 200 {
		t.Fatalf("rulesets: %s", b)
	}
}

// TestListPagination pages through cases over HTTP.
func TestListPagination(t *testing.T) {
	e := newStaffAPI(t)
	d := e.directory()
	var want []string
	for range 5 {
		body := caseBody(d.district.ID, false)
		body["channel"] = "phone"
		var c cases.Case
		e.staff("POST", "/api/v1/cases", body, 201, &c)
		want = append(want, c.ID)
	}
	var got []string
	path := "/api/v1/cases?limit=2&category=e-commerce&createdFrom=2026-03-02&createdTo=2026-03-02"
	for next := path; ; {
		var page cases.CasePage
		e.staff("GET", next, nil, 200, &page)
		for _, c := range page.Items {
			got = append(got, c.ID)
		}
		if page.NextCursor == "" {
			break
		}
		next = path + "&cursor=" + page.NextCursor
	}
	if !slices.Equal(got, want) {
		t.Fatalf("paged: %v, want %v", got, want)
	}
	var page cases.CasePage
	e.staff("GET", "/api/v1/cases?limit=2", nil, 200, &page)
	resp, b := e.request("GET", "/api/v1/cases?state=submitted&cursor="+page.NextCursor, nil, "Authorization", "Bearer "+testAdminToken)
	wantProblem(t, resp, b, 422, cases.EINVALID, "cursor")
}

// FuzzCreateCase sends arbitrary bodies to staff intake: each gets a
// 201 or a 4xx problem, never a 5xx.
func FuzzCreateCase(f *testing.F) {
	valid, _ := json.Marshal(map[string]any{
		"channel": "window", "institutionId": "inst_f", "category": "e-commerce",
		"applicant":  map[string]any{"name": "A", "kind": "person"},
		"respondent": map[string]any{"name": "B", "kind": "organisation"},
	})
	f.Add(valid)
	f.Add([]byte(`{"channel":"window","incidentDate":"2026-02-30"}`))
	f.Add([]byte(`{"amountCents":1e99}`))
	f.Add([]byte(`{"applicant":{"name":"\u0000"}}`))
	f.Add([]byte(`[`))
	e := newAPIEnv(f, Params{AdminToken: testAdminToken})
	if err := e.svc.PutInstitution(f.Context(), &cases.Institution{ID: "inst_f", Code: "F1", Name: "F", Level: cases.LevelCity}); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req := httptest.NewRequest("POST", "/api/v1/cases", bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+testAdminToken)
		rec := httptest.NewRecorder()
		e.handler.ServeHTTP(rec, req)
		if rec.Code != 201 && (rec.Code < 400 || rec.Code >= 500) {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	})
}

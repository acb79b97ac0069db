package web

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/concord-odr/concord/cases"
	"github.com/concord-odr/concord/cases/joinlink"
	"github.com/concord-odr/concord/cases/sqlite"
)

// agreementEnv is a mediating case with a session of a mediator, the
// applicant and the respondent, and their join tokens.
type agreementEnv struct {
	*apiEnv
	caseID, sessionID string
	med, app, resp    string // bearer headers
}

func newAgreementEnv(t *testing.T) *agreementEnv {
	t.Helper()
	e := newStaffAPI(t)
	d := e.directory()
	body := caseBody(d.district.ID, false)
	body["channel"] = "window"
	var c cases.Case
	e.staff("POST", "/api/v1/cases", body, 201, &c)
	for _, to := range []string{"dispatched", "respondent_contacted", "accepted"} {
		e.staff("POST", "/api/v1/cases/"+c.ID+"/transitions", map[string]any{"to": to}, 200, nil)
	}
	var sess cases.Session
	e.staff("POST", "/api/v1/cases/"+c.ID+"/sessions", map[string]any{"participants": []map[string]any{
		{"name": "王调解员", "role": "mediator", "side": "neutral"},
		{"name": "李华", "role": "party", "side": "applicant"},
		{"name": "Bright Home agent", "role": "party", "side": "respondent"},
	}}, 201, &sess)
	ae := &agreementEnv{apiEnv: e, caseID: c.ID, sessionID: sess.ID}
	for i, p := range sess.Participants {
		tok, err := e.signer.Issue(joinlink.Claims{CaseID: c.ID, SessionID: sess.ID, Role: p.Role, Side: p.Side, Name: p.Name,
			RegisteredClaims: jwt.RegisteredClaims{Subject: p.ID}}, 24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		*[]*string{&ae.med, &ae.app, &ae.resp}[i] = "Bearer " + tok
	}
	return ae
}

// as sends a request with a bearer header and wants status, decoding the
// answer into out.
func (e *agreementEnv) as(auth, method, path string, body any, status int, out any) []byte {
	e.t.Helper()
	resp, b := e.request(method, path, body, "Authorization", auth)
	if resp.StatusCode != status {
		e.t.Fatalf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			e.t.Fatalf("%s %s: decode: %v", method, path, err)
		}
	}
	return b
}

func TestAgreementOverHTTP(t *testing.T) {
	e := newAgreementEnv(t)
	base := "/api/v1/cases/" + e.caseID + "/agreements"
	op := "Bearer " + testAdminToken

	// The mediator fills the template in; nobody else gets it.
	var tpl cases.AgreementContent
	e.as(e.med, "GET", base+"/template", nil, 200, &tpl)
	if len(tpl.Parties) != 2 || tpl.Mediator != "王调解员" || tpl.Institution != "Xuhui Committee" {
		t.Fatalf("template: %+v", tpl)
	}
	for _, auth := range []string{e.app, op} {
		e.as(auth, "GET", base+"/template", nil, 404, nil)
	}
	resp, b := e.request("GET", base+"/template", nil)
	wantProblem(t, resp, b, 401, codeUnauthorized, "")

	tpl.Facts = "申请人购买的电饭煲无法使用。"
	tpl.Terms = []cases.AgreementTerm{{Text: "被申请人退还货款", Obligor: "respondent", AmountCents: 129900, Method: "银行转账", Deadline: "2026-03-10"}}
	// Drafted in a caucus with the applicant: the respondent does not see it.
	var a cases.Agreement
	e.as(e.app, "PUT", base+"/draft", map[string]any{"content": tpl}, 404, nil)
	e.as(e.med, "PUT", base+"/draft", map[string]any{"content": tpl, "visibleTo": "applicant"}, 200, &a)
	var list agreementsAnswer
	e.as(e.resp, "GET", base, nil, 200, &list)
	if len(list.Items) != 0 {
		t.Fatalf("the respondent sees a caucus draft: %+v", list.Items)
	}
	e.as(e.resp, "GET", base+"/"+a.ID, nil, 404, nil)
	e.as(e.app, "GET", base, nil, 200, &list)
	if len(list.Items) != 1 {
		t.Fatalf("the applicant's list: %+v", list.Items)
	}
	// In joint session every party sees it, and confirms its exact text.
	e.as(e.med, "PUT", base+"/draft", map[string]any{"content": tpl, "revision": a.Revision}, 200, &a)
	e.as(e.med, "POST", base+"/"+a.ID+"/confirmations", map[string]any{"textHash": a.TextHash}, 404, nil)
	resp, b = e.request("POST", base+"/"+a.ID+"/confirmations", map[string]any{"textHash": "x"}, "Authorization", e.app)
	wantProblem(t, resp, b, 422, cases.EINVALID, "textHash")
	for _, auth := range []string{e.app, e.resp} {
		e.as(auth, "POST", base+"/"+a.ID+"/confirmations", map[string]any{"textHash": a.TextHash}, 200, &a)
	}
	e.as(e.app, "POST", base+"/"+a.ID+"/signature", map[string]any{"textHash": a.TextHash}, 404, nil)
	e.as(e.med, "POST", base+"/"+a.ID+"/signature", map[string]any{"textHash": a.TextHash}, 200, &a)
	if a.Status != cases.AgreementFinal || len(a.Confirmations) != 2 || a.EffectiveAt == nil {
		t.Fatalf("signed: %+v", a)
	}

	// Downloads: JSON and PDF.
	resp, b = e.request("GET", base+"/"+a.ID+"?download=1", nil, "Authorization", e.resp)
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Disposition"), "attachment") || !bytes.Contains(b, []byte(a.TextHash)) {
		t.Fatalf("JSON download: %d %v", resp.StatusCode, resp.Header)
	}
	resp, b = e.request("GET", base+"/"+a.ID+"/pdf", nil, "Authorization", e.app)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/pdf" || !bytes.HasPrefix(b, []byte("%PDF-")) {
		t.Fatalf("PDF: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}

	// Ending the session settled refers to the agreement; a retry is
	// answered the same, once.
	end := "/api/v1/sessions/" + e.sessionID + "/end"
	var rec struct {
		cases.Case
		Events []cases.Event `json:"events"`
	}
	e.as(e.med, "POST", end, map[string]any{"result": "settled"}, 200, &rec)
	if rec.State != cases.StateClosed || rec.Outcome.AgreementID != a.ID || rec.Agreement == nil {
		t.Fatalf("closed: %s %+v", rec.State, rec.Outcome)
	}
	n := len(rec.Events)
	resp, b = e.request("POST", end, map[string]any{"result": "settled"}, "Authorization", e.med)
	if resp.StatusCode != 200 || resp.Header.Get("Idempotency-Replayed") != "true" {
		t.Fatalf("retry: %d %s", resp.StatusCode, b)
	}
	_ = json.Unmarshal(b, &rec)
	if len(rec.Events) != n {
		t.Fatalf("retry added events: %d, want %d", len(rec.Events), n)
	}
	e.as(e.med, "POST", end, map[string]any{"result": "withdrawn"}, 409, nil)

	// Follow-ups: the applicant reports; overdue terms are listed.
	var fl followUpsAnswer
	e.as(e.app, "GET", "/api/v1/cases/"+e.caseID+"/followups", nil, 200, &fl)
	if len(fl.Items) != 1 || fl.Items[0].Status != cases.FollowUpPending {
		t.Fatalf("follow-ups: %+v", fl.Items)
	}
	e.clock.Add(10 * 24 * time.Hour)
	e.as(op, "GET", "/api/v1/followups?overdue=true", nil, 200, &fl)
	if len(fl.Items) != 1 || fl.Items[0].CaseID != e.caseID {
		t.Fatalf("overdue: %+v", fl.Items)
	}
	perf := base + "/" + a.ID + "/terms/1/performance"
	e.as(e.resp, "POST", perf, map[string]any{"performed": true}, 404, nil)
	resp, b = e.request("POST", perf, map[string]any{"note": "x"}, "Authorization", e.app)
	wantProblem(t, resp, b, 422, cases.EINVALID, "performed")
	var f cases.FollowUp
	e.as(e.app, "POST", perf, map[string]any{"performed": true, "note": "已收到退款"}, 200, &f)
	if f.Status != cases.FollowUpPerformed {
		t.Fatalf("performed: %+v", f)
	}
	e.as(op, "GET", "/api/v1/followups?overdue=true", nil, 200, &fl)
	if len(fl.Items) != 0 {
		t.Fatalf("overdue after performance: %+v", fl.Items)
	}
	e.as(op, "GET", "/api/v1/followups?bogus=1", nil, 400, nil)

	// The audit trail: heads and a case's chain, for the operator only.
	var heads cases.ChainHeads
	e.as(op, "GET", "/api/v1/audit/heads", nil, 200, &heads)
	if heads.Count != 1 || len(heads.Digest) != 64 {
		t.Fatalf("heads: %+v", heads)
	}
	var rep cases.ChainReport
	e.as(op, "GET", "/api/v1/cases/"+e.caseID+"/audit", nil, 200, &rep)
	if !rep.OK || rep.Head == nil || rep.Head.Hash != heads.Items[0].Hash {
		t.Fatalf("audit: %+v", rep)
	}
	if resp, _ := e.request("GET", "/api/v1/audit/heads", nil, "Authorization", e.app); resp.StatusCode < 400 {
		t.Fatalf("a party read the heads: %d", resp.StatusCode)
	}

	// The court's result arrives by the signed webhook.
	e.staff("POST", "/api/v1/cases/"+e.caseID+"/transitions", map[string]any{"to": "confirmation_requested", "by": "court"}, 200, nil)
	hook := "/api/v1/webhooks/confirmation-results"
	body, _ := json.Marshal(map[string]any{"caseId": e.caseID, "result": "confirmed", "source": "xuhui-court", "reference": "(2026)沪0104民特1号"})
	resp, b = e.request("POST", hook, body, signatureHeader, "sha256=00")
	wantProblem(t, resp, b, 401, codeBadSignature, "")
	for range 2 { // a repeat answers the same
		resp, b = e.request("POST", hook, body, signatureHeader, e.sign(body))
		var c cases.Case
		if resp.StatusCode != 200 || json.Unmarshal(b, &c) != nil || c.State != cases.StateConfirmed || c.Confirmation.AgreementID != a.ID {
			t.Fatalf("webhook: %d %s", resp.StatusCode, b)
		}
	}
}

// downStore is a store whose database can be made unreachable.
type downStore struct {
	cases.Store
	down atomic.Bool
}

func (s *downStore) Update(ctx context.Context, fn func(cases.Tx) error) error {
	if s.down.Load() {
		return cases.Errorf(cases.EUNAVAILABLE, "the case store cannot be reached")
	}
	return s.Store.Update(ctx, fn)
}

type endedRooms struct {
	mu    sync.Mutex
	ended []string
}

func (r *endedRooms) EndSession(sessionID, result string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ended = append(r.ended, sessionID+":"+result)
}

// TestEndSessionQueued ends a session while the store is unreachable:
// the outcome is accepted into the outbox (202) and the room closes.
func TestEndSessionQueued(t *testing.T) {
	ctx := t.Context()
	base, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "cases.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	if err := base.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	store := &downStore{Store: base}
	box, err := cases.OpenOutcomeOutbox(filepath.Join(t.TempDir(), "outbox"))
	if err != nil {
		t.Fatal(err)
	}
	svc := cases.NewService(cases.ServiceParams{Store: store, Outbox: box})
	inst := &cases.Institution{Code: "0310", Name: "Xuhui", Level: "district"}
	if err := svc.PutInstitution(ctx, inst); err != nil {
		t.Fatal(err)
	}
	c, _, err := svc.OpenCase(ctx, cases.NewCase{InstitutionID: inst.ID, Category: "e-commerce", Channel: "window",
		Applicant: cases.Party{Name: "李华", Kind: "person"}, Respondent: cases.Party{Name: "Shop", Kind: "organisation"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, to := range []cases.State{cases.StateDispatched, cases.StateRespondentContacted, cases.StateAccepted} {
		if _, err := svc.Transition(ctx, c.ID, to, "admin", nil); err != nil {
			t.Fatal(err)
		}
	}
	sess, err := svc.ScheduleSession(ctx, c.ID, "admin", []cases.Participant{{Name: "M", Role: cases.RoleMediator, Side: cases.SideNeutral}})
	if err != nil {
		t.Fatal(err)
	}
	signer, err := joinlink.NewSigner(joinlink.Key{ID: "k1", Secret: bytes.Repeat([]byte("s"), 32)}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := signer.Issue(joinlink.Claims{CaseID: c.ID, SessionID: sess.ID, Role: cases.RoleMediator, Side: cases.SideNeutral,
		RegisteredClaims: jwt.RegisteredClaims{Subject: sess.Participants[0].ID}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	rooms := &endedRooms{}
	h := NewHandler(Params{Cases: svc, Tokens: signer, Rooms: rooms})
	store.down.Store(true)
	req := httptest.NewRequest("POST", "/api/v1/sessions/"+sess.ID+"/end", strings.NewReader(`{"result":"withdrawn"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var ans struct {
		Queued   bool   `json:"queued"`
		OutboxID string `json:"outboxId"`
	}
	if rec.Code != 202 || json.Unmarshal(rec.Body.Bytes(), &ans) != nil || !ans.Queued || ans.OutboxID == "" {
		t.Fatalf("end while away: %d %s", rec.Code, rec.Body)
	}
	if len(rooms.ended) != 1 {
		t.Fatalf("room not closed: %v", rooms.ended)
	}
	store.down.Store(false)
	if st, err := box.Replay(ctx, svc, nil); err != nil || st.Written != 1 {
		t.Fatalf("replay: %+v %v", st, err)
	}
	got, err := svc.Case(ctx, c.ID)
	if err != nil || got.State != cases.StateClosed || got.Outcome.Result != cases.ResultWithdrawn {
		t.Fatalf("after replay: %v %+v", err, got)
	}
}

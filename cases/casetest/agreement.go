package casetest

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/concord-odr/concord/cases"
)

// agreementTests are the contract tests of agreements, outcomes, the
// hash chain and follow-ups; Run runs them with the others.
func agreementTests() []struct {
	name string
	fn   func(*testing.T, cases.Store)
} {
	return []struct {
		name string
		fn   func(*testing.T, cases.Store)
	}{
		{"AgreementLifecycle", testAgreementLifecycle},
		{"AgreementCaucus", testAgreementCaucus},
		{"AgreementFollowUps", testAgreementFollowUps},
		{"OutcomeIdempotent", testOutcomeIdempotent},
		{"JudicialConfirmation", testJudicialConfirmation},
		{"HashChain", testHashChain},
	}
}

// jumpClock is a clock a test moves forward by hand; every reading also
// advances it a little, so that events are ordered.
type jumpClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *jumpClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(time.Millisecond)
	return c.now
}

func (c *jumpClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// agreementCase returns a service with a jump clock and a mediating case
// with a session of a mediator, the applicant and the respondent.
func agreementCase(t *testing.T, s cases.Store) (*cases.Service, *jumpClock, *cases.Case, *cases.Session) {
	t.Helper()
	clk := &jumpClock{now: base}
	svc := cases.NewService(cases.ServiceParams{Store: s, Now: clk.Now})
	inst := &cases.Institution{Code: "0310", Name: "徐汇区人民调解委员会", Level: "district"}
	if err := svc.PutInstitution(t.Context(), inst); err != nil {
		t.Fatalf("PutInstitution: %v", err)
	}
	c, sess := mediatingCase(t, svc, inst.ID, "")
	return svc, clk, c, sess
}

// actors returns the mediator, applicant and respondent of a session.
func actors(sess *cases.Session) (med, app, resp cases.AgreementActor) {
	for _, p := range sess.Participants {
		a := cases.AgreementActor{SessionID: sess.ID, ParticipantID: p.ID}
		switch {
		case p.Role == cases.RoleMediator:
			med = a
		case p.Side == cases.SideApplicant:
			app = a
		default:
			resp = a
		}
	}
	return
}

// draftContent completes a template into a draft the parties can confirm.
func draftContent(t *testing.T, svc *cases.Service, caseID string, med cases.AgreementActor) cases.AgreementContent {
	t.Helper()
	tpl, err := svc.AgreementTemplate(t.Context(), caseID, med)
	if err != nil {
		t.Fatalf("AgreementTemplate: %v", err)
	}
	if len(tpl.Parties) != 2 || tpl.Parties[0].Name != "李华" || tpl.Mediator != "王调解员" || tpl.Institution != "徐汇区人民调解委员会" ||
		tpl.DisputedMatters != "refund of a faulty kettle" {
		t.Fatalf("template: %+v", tpl)
	}
	c := *tpl
	c.Facts = "申请人于2025年3月1日在被申请人网店购买电热水壶一只，收货后无法加热。"
	c.Terms = []cases.AgreementTerm{
		{Text: "被申请人向申请人退还货款", Obligor: cases.SideRespondent, AmountCents: 12990, Method: "原支付渠道退款", Deadline: "2025-03-21"},
		{Text: "申请人将电热水壶退回被申请人，运费由被申请人承担", Obligor: cases.SideApplicant, Deadline: "2025-03-28"},
		{Text: "双方就本纠纷再无其他争议"},
	}
	return c
}

func testAgreementLifecycle(t *testing.T, s cases.Store) {
	ctx := t.Context()
	svc, _, c, sess := agreementCase(t, s)
	med, app, resp := actors(sess)
	content := draftContent(t, svc, c.ID, med)

	// Only the session's mediator drafts; a party is told nothing exists.
	_, err := svc.DraftAgreement(ctx, cases.DraftRequest{CaseID: c.ID, Actor: app, Content: content})
	wantCode(t, err, cases.ENOTFOUND)
	a, err := svc.DraftAgreement(ctx, cases.DraftRequest{CaseID: c.ID, Actor: med, Content: content})
	if err != nil {
		t.Fatalf("DraftAgreement: %v", err)
	}
	if a.Status != cases.AgreementDraft || a.Number != 1 || a.Revision != 1 || a.VisibleTo != cases.VisibleToAll ||
		a.TextHash != cases.TextHash(a.Text) || !strings.Contains(a.Text, "人民调解协议书") || !strings.Contains(a.Text, "人民币129.90元") ||
		!strings.Contains(a.Text, "履行期限：2025-03-21前") || a.Content.Terms[2].No != 3 {
		t.Fatalf("draft: %+v\n%s", a, a.Text)
	}
	// A stale revision is a conflict; a second draft is the same one.
	_, err = svc.DraftAgreement(ctx, cases.DraftRequest{CaseID: c.ID, Actor: med, Content: content})
	wantCode(t, err, cases.ECONFLICT)

	// The applicant confirms the text it read.
	_, err = svc.ConfirmAgreement(ctx, cases.ConfirmRequest{CaseID: c.ID, AgreementID: a.ID, Actor: app, TextHash: "0bad"})
	wantCode(t, err, cases.ECONFLICT)
	_, err = svc.ConfirmAgreement(ctx, cases.ConfirmRequest{CaseID: c.ID, AgreementID: a.ID, Actor: med, TextHash: a.TextHash})
	wantCode(t, err, cases.ENOTFOUND)
	a, err = svc.ConfirmAgreement(ctx, cases.ConfirmRequest{CaseID: c.ID, AgreementID: a.ID, Actor: app, TextHash: a.TextHash})
	if err != nil || len(a.Confirmations) != 1 || a.Confirmations[0].Side != cases.SideApplicant ||
		a.Confirmations[0].SessionID != sess.ID || a.Confirmations[0].TextHash != a.TextHash || a.Confirmations[0].Name != "李华" {
		t.Fatalf("ConfirmAgreement: %v %+v", err, a)
	}
	// Confirming again changes nothing.
	again, err := svc.ConfirmAgreement(ctx, cases.ConfirmRequest{CaseID: c.ID, AgreementID: a.ID, Actor: app, TextHash: a.TextHash})
	if err != nil || len(again.Confirmations) != 1 || again.Version != a.Version {
		t.Fatalf("confirming twice: %v %+v", err, again)
	}

	// A text change voids the confirmation.
	content.Terms[0].AmountCents = 10000
	a, err = svc.DraftAgreement(ctx, cases.DraftRequest{CaseID: c.ID, Actor: med, Content: content, Revision: 1})
	if err != nil || a.Revision != 2 || len(a.Confirmations) != 0 || !strings.Contains(a.Text, "人民币100.00元") {
		t.Fatalf("edited draft: %v %+v", err, a)
	}
	// The mediator signs last.
	_, err = svc.SignAgreement(ctx, cases.SignRequest{CaseID: c.ID, AgreementID: a.ID, Actor: med, TextHash: a.TextHash})
	wantCode(t, err, cases.ETRANSITION)
	for _, p := range []cases.AgreementActor{app, resp} {
		if a, err = svc.ConfirmAgreement(ctx, cases.ConfirmRequest{CaseID: c.ID, AgreementID: a.ID, Actor: p, TextHash: a.TextHash}); err != nil {
			t.Fatalf("ConfirmAgreement: %v", err)
		}
	}
	_, err = svc.SignAgreement(ctx, cases.SignRequest{CaseID: c.ID, AgreementID: a.ID, Actor: app, TextHash: a.TextHash})
	wantCode(t, err, cases.ENOTFOUND)
	final, err := svc.SignAgreement(ctx, cases.SignRequest{CaseID: c.ID, AgreementID: a.ID, Actor: med, TextHash: a.TextHash})
	if err != nil || final.Status != cases.AgreementFinal || final.Signature == nil || final.EffectiveAt == nil ||
		!final.EffectiveAt.Equal(final.Signature.At) || final.Signature.Name != "王调解员" {
		t.Fatalf("SignAgreement: %v %+v", err, final)
	}
	// Signing again is a retry.
	if again, err := svc.SignAgreement(ctx, cases.SignRequest{CaseID: c.ID, AgreementID: a.ID, Actor: med, TextHash: a.TextHash}); err != nil || again.Version != final.Version {
		t.Fatalf("signing twice: %v", err)
	}
	got, err := svc.Case(ctx, c.ID)
	if err != nil || got.Agreement == nil || got.Agreement.ID != final.ID || got.Agreement.TextHash != final.TextHash ||
		!got.Agreement.EffectiveAt.Equal(*final.EffectiveAt) {
		t.Fatalf("case after signing: %v %+v", err, got.Agreement)
	}

	// A final agreement is immutable: no new draft, no confirmation.
	_, err = svc.DraftAgreement(ctx, cases.DraftRequest{CaseID: c.ID, Actor: med, Content: content})
	wantCode(t, err, cases.ETRANSITION)
	_, err = svc.ConfirmAgreement(ctx, cases.ConfirmRequest{CaseID: c.ID, AgreementID: a.ID, Actor: app, TextHash: a.TextHash})
	wantCode(t, err, cases.ETRANSITION)

	// A correction is a new version that refers to the old one.
	_, err = svc.CorrectAgreement(ctx, cases.CorrectRequest{CaseID: c.ID, AgreementID: final.ID, Actor: med})
	wantCode(t, err, cases.EINVALID)
	fix, err := svc.CorrectAgreement(ctx, cases.CorrectRequest{CaseID: c.ID, AgreementID: final.ID, Actor: med, Reason: "金额笔误"})
	if err != nil || fix.Number != 2 || fix.Supersedes != final.ID || fix.Status != cases.AgreementDraft ||
		!strings.Contains(fix.Text, "更正第1版") {
		t.Fatalf("CorrectAgreement: %v %+v", err, fix)
	}
	_, err = svc.CorrectAgreement(ctx, cases.CorrectRequest{CaseID: c.ID, AgreementID: final.ID, Actor: med, Reason: "again"})
	wantCode(t, err, cases.ETRANSITION)
	content.Terms[0].AmountCents = 12990
	fix, err = svc.DraftAgreement(ctx, cases.DraftRequest{CaseID: c.ID, Actor: med, Content: content, Revision: fix.Revision})
	if err != nil {
		t.Fatalf("editing the correction: %v", err)
	}
	for _, p := range []cases.AgreementActor{app, resp} {
		if fix, err = svc.ConfirmAgreement(ctx, cases.ConfirmRequest{CaseID: c.ID, AgreementID: fix.ID, Actor: p, TextHash: fix.TextHash}); err != nil {
			t.Fatalf("confirming the correction: %v", err)
		}
	}
	fix, err = svc.SignAgreement(ctx, cases.SignRequest{CaseID: c.ID, AgreementID: fix.ID, Actor: med, TextHash: fix.TextHash})
	if err != nil || fix.Status != cases.AgreementFinal {
		t.Fatalf("signing the correction: %v", err)
	}
	list, err := svc.Agreements(ctx, c.ID)
	if err != nil || len(list) != 2 {
		t.Fatalf("Agreements: %v %d", err, len(list))
	}
	old := list[0]
	if old.Status != cases.AgreementSuperseded || old.SupersededBy != fix.ID || old.TextHash != final.TextHash ||
		old.Text != final.Text || old.Signature == nil || len(old.Confirmations) != 2 {
		t.Fatalf("corrected agreement changed: %+v", old)
	}
	got, _ = svc.Case(ctx, c.ID)
	if got.Agreement.ID != fix.ID || got.Agreement.Number != 2 {
		t.Fatalf("case agreement after correction: %+v", got.Agreement)
	}
	// An agreement of another case is not found.
	_, err = svc.Agreement(ctx, "case_other", fix.ID)
	wantCode(t, err, cases.ENOTFOUND)

	var types []string
	for _, e := range getEvents(t, s, c.ID) {
		if strings.HasPrefix(e.Type, "agreement.") {
			types = append(types, e.Type)
		}
	}
	want := []string{
		"agreement.drafted", "agreement.confirmed", "agreement.drafted", "agreement.confirmed", "agreement.confirmed", "agreement.signed",
		"agreement.correction_started", "agreement.drafted", "agreement.confirmed", "agreement.confirmed", "agreement.signed",
	}
	if !slices.Equal(types, want) {
		t.Fatalf("agreement events:\n got %v\nwant %v", types, want)
	}
}

func testAgreementCaucus(t *testing.T, s cases.Store) {
	ctx := t.Context()
	svc, _, c, sess := agreementCase(t, s)
	med, app, resp := actors(sess)
	content := draftContent(t, svc, c.ID, med)

	// Prepared in a caucus with the applicant, the draft is the
	// applicant's only, and nobody confirms it there.
	a, err := svc.DraftAgreement(ctx, cases.DraftRequest{CaseID: c.ID, Actor: med, Content: content, VisibleTo: cases.SideApplicant})
	if err != nil {
		t.Fatalf("DraftAgreement: %v", err)
	}
	if !a.VisibleToSide(cases.SideApplicant) || a.VisibleToSide(cases.SideRespondent) {
		t.Fatalf("caucus draft visibility: %s", a.VisibleTo)
	}
	_, err = svc.ConfirmAgreement(ctx, cases.ConfirmRequest{CaseID: c.ID, AgreementID: a.ID, Actor: resp, TextHash: a.TextHash})
	wantCode(t, err, cases.ENOTFOUND)
	_, err = svc.ConfirmAgreement(ctx, cases.ConfirmRequest{CaseID: c.ID, AgreementID: a.ID, Actor: app, TextHash: a.TextHash})
	wantCode(t, err, cases.ETRANSITION)
	// Back in joint session it is everyone's, with the same text.
	b, err := svc.DraftAgreement(ctx, cases.DraftRequest{CaseID: c.ID, Actor: med, Content: content, Revision: a.Revision})
	if err != nil || b.Revision != a.Revision || b.TextHash != a.TextHash || !b.VisibleToSide(cases.SideRespondent) {
		t.Fatalf("joint draft: %v %+v", err, b)
	}
	// An incomplete draft cannot be confirmed.
	content.Facts = ""
	b, err = svc.DraftAgreement(ctx, cases.DraftRequest{CaseID: c.ID, Actor: med, Content: content, Revision: b.Revision})
	if err != nil {
		t.Fatal(err)
	}
	_, err = svc.ConfirmAgreement(ctx, cases.ConfirmRequest{CaseID: c.ID, AgreementID: b.ID, Actor: app, TextHash: b.TextHash})
	wantCode(t, err, cases.EINVALID)
	// Invalid content is refused with the field at fault.
	content.Terms = append(content.Terms, cases.AgreementTerm{Text: "x", Deadline: "2025-02-30"})
	_, err = svc.DraftAgreement(ctx, cases.DraftRequest{CaseID: c.ID, Actor: med, Content: content, Revision: b.Revision})
	wantCode(t, err, cases.EINVALID)
	if f := cases.ErrorField(err); f != "content.terms.deadline" {
		t.Fatalf("field = %q", f)
	}
}

// signedAgreement drafts, confirms and signs an agreement.
func signedAgreement(t *testing.T, svc *cases.Service, c *cases.Case, sess *cases.Session) *cases.Agreement {
	t.Helper()
	ctx := t.Context()
	med, app, resp := actors(sess)
	a, err := svc.DraftAgreement(ctx, cases.DraftRequest{CaseID: c.ID, Actor: med, Content: draftContent(t, svc, c.ID, med)})
	if err != nil {
		t.Fatalf("DraftAgreement: %v", err)
	}
	for _, p := range []cases.AgreementActor{app, resp} {
		if a, err = svc.ConfirmAgreement(ctx, cases.ConfirmRequest{CaseID: c.ID, AgreementID: a.ID, Actor: p, TextHash: a.TextHash}); err != nil {
			t.Fatalf("ConfirmAgreement: %v", err)
		}
	}
	a, err = svc.SignAgreement(ctx, cases.SignRequest{CaseID: c.ID, AgreementID: a.ID, Actor: med, TextHash: a.TextHash})
	if err != nil {
		t.Fatalf("SignAgreement: %v", err)
	}
	return a
}

func testAgreementFollowUps(t *testing.T, s cases.Store) {
	ctx := t.Context()
	svc, clk, c, sess := agreementCase(t, s)
	_, app, resp := actors(sess)
	a := signedAgreement(t, svc, c, sess)

	list, err := svc.FollowUps(ctx, cases.FollowUpFilter{CaseID: c.ID}, false)
	if err != nil || len(list) != 2 {
		t.Fatalf("FollowUps: %v %+v", err, list)
	}
	first := list[0]
	if first.TermNo != 1 || first.Deadline != "2025-03-21" || first.Status != cases.FollowUpPending || first.AmountCents != 12990 ||
		!first.DueAt.Equal(time.Date(2025, 3, 22, 0, 0, 0, 0, time.FixedZone("CST", 8*3600))) {
		t.Fatalf("first follow-up: %+v", first)
	}
	overdue, err := svc.FollowUps(ctx, cases.FollowUpFilter{}, true)
	if err != nil || len(overdue) != 0 {
		t.Fatalf("overdue before the deadlines: %v %+v", err, overdue)
	}

	// Past the first deadline, the unperformed term is on the list.
	clk.Advance(9 * 24 * time.Hour)
	overdue, err = svc.FollowUps(ctx, cases.FollowUpFilter{InstitutionID: c.InstitutionID}, true)
	if err != nil || len(overdue) != 1 || overdue[0].TermNo != 1 {
		t.Fatalf("overdue after the first deadline: %v %+v", err, overdue)
	}
	// The respondent does not report; the applicant does.
	_, err = svc.ReportPerformance(ctx, cases.PerformanceRequest{CaseID: c.ID, AgreementID: a.ID, TermNo: 1, Performed: true, Actor: resp})
	wantCode(t, err, cases.ENOTFOUND)
	_, err = svc.ReportPerformance(ctx, cases.PerformanceRequest{CaseID: c.ID, AgreementID: a.ID, TermNo: 9, Performed: true, Actor: app})
	wantCode(t, err, cases.ENOTFOUND)
	f, err := svc.ReportPerformance(ctx, cases.PerformanceRequest{CaseID: c.ID, AgreementID: a.ID, TermNo: 1, Performed: false, Actor: app, Note: "未收到退款"})
	if err != nil || f.Status != cases.FollowUpNotPerformed || len(f.Reports) != 1 {
		t.Fatalf("ReportPerformance: %v %+v", err, f)
	}
	overdue, _ = svc.FollowUps(ctx, cases.FollowUpFilter{}, true)
	if len(overdue) != 1 {
		t.Fatalf("a term reported not performed left the list: %+v", overdue)
	}
	f, err = svc.ReportPerformance(ctx, cases.PerformanceRequest{CaseID: c.ID, AgreementID: a.ID, TermNo: 1, Performed: true, Staff: "operator"})
	if err != nil || f.Status != cases.FollowUpPerformed || len(f.Reports) != 2 || f.Reports[1].By != "operator" {
		t.Fatalf("staff report: %v %+v", err, f)
	}
	overdue, _ = svc.FollowUps(ctx, cases.FollowUpFilter{}, true)
	if len(overdue) != 0 {
		t.Fatalf("a performed term is still overdue: %+v", overdue)
	}
	clk.Advance(8 * 24 * time.Hour)
	overdue, _ = svc.FollowUps(ctx, cases.FollowUpFilter{CaseID: c.ID}, true)
	if len(overdue) != 1 || overdue[0].TermNo != 2 {
		t.Fatalf("second term overdue: %+v", overdue)
	}
}

func testOutcomeIdempotent(t *testing.T, s cases.Store) {
	ctx := t.Context()
	svc, _, c, sess := agreementCase(t, s)
	med, _, _ := actors(sess)
	a := signedAgreement(t, svc, c, sess)
	before := len(getEvents(t, s, c.ID))

	// A settled outcome without terms refers to the signed agreement.
	req := cases.EndRequest{SessionID: sess.ID, ActorID: med.ParticipantID, Outcome: cases.Outcome{Result: cases.ResultSettled}}
	res, err := svc.RecordOutcome(ctx, req)
	if err != nil || res.Replayed || res.Case.State != cases.StateClosed || res.Case.Outcome.AgreementID != a.ID ||
		!strings.Contains(res.Case.Outcome.Terms, a.ID) {
		t.Fatalf("RecordOutcome: %v %+v", err, res)
	}
	after := len(getEvents(t, s, c.ID))
	if after != before+2 {
		t.Fatalf("ending added %d events, want 2", after-before)
	}
	// The same request again, concurrently too, records nothing more.
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			r, err := svc.RecordOutcome(ctx, req)
			if err == nil && (!r.Replayed || r.Case.Version != res.Case.Version) {
				t.Errorf("retry %d: %+v", i, r)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil && cases.ErrorCode(err) != cases.ECONFLICT {
			t.Fatalf("retry %d: %v", i, err)
		}
	}
	if n := len(getEvents(t, s, c.ID)); n != after {
		t.Fatalf("retries added %d events", n-after)
	}
	// Another outcome for the ended session is refused.
	req.Outcome.Terms = "something else"
	_, err = svc.RecordOutcome(ctx, req)
	wantCode(t, err, cases.ETRANSITION)

	// An agreement that is not the case's is refused.
	_, sess2 := mediatingCase(t, svc, c.InstitutionID, "")
	med2, _, _ := actors(sess2)
	_, err = svc.RecordOutcome(ctx, cases.EndRequest{SessionID: sess2.ID, ActorID: med2.ParticipantID,
		Outcome: cases.Outcome{Result: cases.ResultSettled, Terms: "t", AgreementID: a.ID}})
	wantCode(t, err, cases.EINVALID)
	// An adjourned session records when the next one meets.
	next := base.Add(72 * time.Hour)
	res, err = svc.RecordOutcome(ctx, cases.EndRequest{SessionID: sess2.ID, ActorID: med2.ParticipantID,
		Outcome: cases.Outcome{Result: cases.ResultAdjourned, NextSessionAt: &next}})
	if err != nil || res.Case.State != cases.StateMediating {
		t.Fatalf("adjourned: %v %+v", err, res)
	}
}

func testJudicialConfirmation(t *testing.T, s cases.Store) {
	ctx := t.Context()
	svc, clk, c, sess := agreementCase(t, s)
	med, _, _ := actors(sess)
	a := signedAgreement(t, svc, c, sess)
	if _, err := svc.RecordOutcome(ctx, cases.EndRequest{SessionID: sess.ID, ActorID: med.ParticipantID,
		Outcome: cases.Outcome{Result: cases.ResultSettled}}); err != nil {
		t.Fatal(err)
	}
	// Within 30 days of the signature the parties may ask a court.
	clk.Advance(29 * 24 * time.Hour)
	got, err := svc.Apply(ctx, c.ID, cases.TransitionRequest{To: cases.StateConfirmationRequested, Actor: "operator", By: cases.ByCourt})
	if err != nil {
		t.Fatalf("confirmation requested: %v", err)
	}
	wantDeadline := a.EffectiveAt.In(time.FixedZone("CST", 8*3600)).AddDate(0, 0, 30).Format("2006-01-02")
	if got.Confirmation == nil || got.Confirmation.AgreementID != a.ID || got.Confirmation.Deadline != wantDeadline {
		t.Fatalf("confirmation: %+v, want deadline %s", got.Confirmation, wantDeadline)
	}
	events := getEvents(t, s, c.ID)
	last := events[len(events)-1]
	if last.Type != "case.confirmation_requested" || !strings.Contains(string(last.Payload), a.ID) || !strings.Contains(string(last.Payload), wantDeadline) {
		t.Fatalf("confirmation event: %s %s", last.Type, last.Payload)
	}

	// Another case settled with an agreement signed 31 days ago is too
	// late.
	c2, sess2 := mediatingCase(t, svc, c.InstitutionID, "")
	med2, _, _ := actors(sess2)
	signedAgreement(t, svc, c2, sess2)
	if _, err := svc.RecordOutcome(ctx, cases.EndRequest{SessionID: sess2.ID, ActorID: med2.ParticipantID,
		Outcome: cases.Outcome{Result: cases.ResultSettled}}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(31 * 24 * time.Hour)
	_, err = svc.Apply(ctx, c2.ID, cases.TransitionRequest{To: cases.StateConfirmationRequested, Actor: "operator", By: cases.ByArbitration})
	wantCode(t, err, cases.ETRANSITION)
}

func testHashChain(t *testing.T, s cases.Store) {
	ctx := t.Context()
	svc, _, c, sess := agreementCase(t, s)
	signedAgreement(t, svc, c, sess)
	events := getEvents(t, s, c.ID)
	if len(events) < 5 || events[0].PrevHash != "" || events[0].Hash == "" {
		t.Fatalf("first event: %+v", events[0])
	}
	for i := 1; i < len(events); i++ {
		if events[i].PrevHash != events[i-1].Hash || len(events[i].Hash) != 64 {
			t.Fatalf("event %d not chained: %+v", i, events[i])
		}
	}
	rep, err := svc.VerifyCase(ctx, c.ID)
	if err != nil || !rep.OK || rep.Events != len(events) || rep.Head.Hash != events[len(events)-1].Hash {
		t.Fatalf("VerifyCase: %v %+v", err, rep)
	}
	_, err = svc.VerifyCase(ctx, "case_nope")
	wantCode(t, err, cases.ENOTFOUND)

	// The heads name each case's last event.
	c2, _ := mediatingCase(t, svc, c.InstitutionID, "")
	heads, err := svc.Heads(ctx)
	if err != nil || heads.Count != 2 || len(heads.Digest) != 64 {
		t.Fatalf("Heads: %v %+v", err, heads)
	}
	for _, h := range heads.Items {
		evs := getEvents(t, s, h.CaseID)
		last := evs[len(evs)-1]
		if (h.CaseID != c.ID && h.CaseID != c2.ID) || h.Seq != last.Seq || h.Hash != last.Hash || !h.At.Equal(last.At) {
			t.Fatalf("head %+v, last event %+v", h, last)
		}
	}
	// Appending moves the head and the digest.
	if err := svc.RecordRoomEvent(ctx, cases.RoomConsent, "p", cases.RoomEvent{SessionID: sess.ID}); err != nil {
		t.Fatal(err)
	}
	heads2, _ := svc.Heads(ctx)
	if heads2.Digest == heads.Digest {
		t.Fatal("the digest did not change with a new event")
	}
}

package casetest

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/concord-odr/concord/cases"
)

// odrTests are the contract tests of ODR reconciliation, dispatch routes,
// shifts and reminders (cases/odr.go, shift.go, schedule.go).
func odrTests() []struct {
	name string
	fn   func(*testing.T, cases.Store)
} {
	return []struct {
		name string
		fn   func(*testing.T, cases.Store)
	}{
		{"ODRStore", testODRStore},
		{"ShiftAndReminderStore", testShiftAndReminderStore},
		{"ODREnrolment", testODREnrolment},
		{"ODRPaths", testODRPaths},
		{"ODRRouting", testODRRouting},
		{"ODRSuspension", testODRSuspension},
		{"ODRGuards", testODRGuards},
		{"ODRDashboard", testODRDashboard},
		{"ODRWorker", testODRWorker},
		{"Shifts", testShifts},
		{"Queue", testQueue},
		{"QueueFairness", testQueueFairness},
		{"QueueEscalation", testQueueEscalation},
		{"QueueMoves", testQueueMoves},
		{"Schedule", testSchedule},
		{"ReminderWorker", testReminderWorker},
	}
}

func testODRStore(t *testing.T, s cases.Store) {
	ctx := t.Context()
	putCase(t, s, newCase("case_1", "N-1", "online", ""))
	putCase(t, s, newCase("case_2", "N-2", "online", ""))
	putCase(t, s, newCase("case_3", "N-3", "online", ""))
	r1 := &cases.Reconciliation{CaseID: "case_1", EnterpriseCode: enterpriseCode, Category: "e-commerce",
		Status: cases.RecAwaitingMerchant, StartedAt: base, DueAt: base.Add(240 * time.Hour), DueDate: "2025-03-28",
		ResponseDays: 10, Offers: []cases.Offer{{ID: "off_1", Kind: cases.ActCounter, Terms: "refund 50", At: base, Status: cases.OfferPending}}}
	r2 := &cases.Reconciliation{CaseID: "case_2", EnterpriseCode: enterpriseCode, Status: cases.RecAwaitingMerchant,
		StartedAt: base.Add(time.Hour), DueAt: base.Add(241 * time.Hour), Offers: []cases.Offer{}}
	r3 := &cases.Reconciliation{CaseID: "case_3", EnterpriseCode: "91310000MA1FL0XX2C", Status: cases.RecAwaitingMerchant,
		StartedAt: base.Add(2 * time.Hour), DueAt: base.Add(242 * time.Hour), Offers: []cases.Offer{}}
	update(t, s, func(tx cases.Tx) error {
		return errors.Join(tx.PutReconciliation(ctx, r1), tx.PutReconciliation(ctx, r2), tx.PutReconciliation(ctx, r3))
	})
	if r1.Version != 1 || !r1.StartedAt.Equal(micro(base)) || r1.StartedAt.Location() != time.UTC || r1.Offers[0].At.Location() != time.UTC {
		t.Fatalf("after insert: %+v", r1)
	}
	// Versioned: a stale write conflicts, a second insert too.
	stale := *r1
	r1.Status = cases.RecOfferPending
	update(t, s, func(tx cases.Tx) error { return tx.PutReconciliation(ctx, r1) })
	wantCode(t, s.Update(ctx, func(tx cases.Tx) error { return tx.PutReconciliation(ctx, &stale) }), cases.ECONFLICT)
	dup := *r2
	dup.Version = 0
	wantCode(t, s.Update(ctx, func(tx cases.Tx) error { return tx.PutReconciliation(ctx, &dup) }), cases.ECONFLICT)
	orphan := &cases.Reconciliation{CaseID: "case_none", Status: cases.RecAwaitingMerchant, StartedAt: base, Offers: []cases.Offer{}}
	wantCode(t, s.Update(ctx, func(tx cases.Tx) error { return tx.PutReconciliation(ctx, orphan) }), cases.ENOTFOUND)

	// Ending one takes it out of the open ones.
	end := micro(base.Add(5 * time.Hour))
	r2.EndedAt, r2.Status, r2.Result = &end, cases.RecSettled, cases.RecSettled
	update(t, s, func(tx cases.Tx) error { return tx.PutReconciliation(ctx, r2) })

	view(t, s, func(tx cases.Tx) error {
		got, err := tx.Reconciliation(ctx, "case_1")
		if err != nil {
			return err
		}
		sameJSON(t, "reconciliation", got, r1)
		_, err = tx.Reconciliation(ctx, "case_none")
		wantCode(t, err, cases.ENOTFOUND)
		for _, tc := range []struct {
			f    cases.ReconciliationFilter
			want []string
		}{
			{cases.ReconciliationFilter{}, []string{"case_1", "case_2", "case_3"}},
			{cases.ReconciliationFilter{EnterpriseCode: enterpriseCode}, []string{"case_1", "case_2"}},
			{cases.ReconciliationFilter{Open: true}, []string{"case_1", "case_3"}},
			{cases.ReconciliationFilter{StartedFrom: base.Add(time.Hour), StartedBefore: base.Add(2 * time.Hour)}, []string{"case_2"}},
			{cases.ReconciliationFilter{AfterStartedAt: r1.StartedAt, AfterCaseID: "case_1", Limit: 1}, []string{"case_2"}},
		} {
			list, err := tx.Reconciliations(ctx, tc.f)
			if err != nil {
				return err
			}
			var ids []string
			for _, r := range list {
				ids = append(ids, r.CaseID)
			}
			if !slices.Equal(ids, tc.want) {
				t.Errorf("Reconciliations(%+v) = %v, want %v", tc.f, ids, tc.want)
			}
		}
		return nil
	})

	// Routes: replaced in place, listed by id, deleted once; their
	// institution must exist.
	update(t, s, func(tx cases.Tx) error { return tx.PutInstitution(ctx, newInstitution("inst_a")) })
	ra := &cases.DispatchRoute{ID: "route_b", Category: "e-commerce", District: "310104", InstitutionID: "inst_a", CreatedAt: base}
	rb := &cases.DispatchRoute{ID: "route_a", InstitutionID: "inst_a", CreatedAt: base}
	update(t, s, func(tx cases.Tx) error {
		return errors.Join(tx.PutDispatchRoute(ctx, ra), tx.PutDispatchRoute(ctx, rb))
	})
	ra.District = "310105"
	update(t, s, func(tx cases.Tx) error { return tx.PutDispatchRoute(ctx, ra) })
	view(t, s, func(tx cases.Tx) error {
		list, err := tx.DispatchRoutes(ctx)
		if err != nil {
			return err
		}
		sameJSON(t, "routes", list, []*cases.DispatchRoute{rb, ra})
		return nil
	})
	bad := &cases.DispatchRoute{ID: "route_x", InstitutionID: "inst_none", CreatedAt: base}
	wantCode(t, s.Update(ctx, func(tx cases.Tx) error { return tx.PutDispatchRoute(ctx, bad) }), cases.ENOTFOUND)
	update(t, s, func(tx cases.Tx) error { return tx.DeleteDispatchRoute(ctx, "route_a") })
	wantCode(t, s.Update(ctx, func(tx cases.Tx) error { return tx.DeleteDispatchRoute(ctx, "route_a") }), cases.ENOTFOUND)

	// Enterprises keep their enrolment fields and list by credit code.
	reviewed := micro(base)
	e2 := &cases.Enterprise{CreditCode: "91310000MA1FL0ZZ2C", Name: "B", Status: cases.EnterpriseSuspended,
		InstitutionID: "inst_a", Categories: []string{"e-commerce"}, Stores: []string{"Tmall: B flagship"}, District: "310104",
		ResponseDays: 5, StatusReason: "ignored complaints", ReviewedBy: "staff:1", ReviewedAt: &reviewed, CreatedAt: base, UpdatedAt: base}
	e1 := &cases.Enterprise{CreditCode: "91310000MA1FL0AA2C", Name: "A", Status: cases.EnterprisePending, CreatedAt: base, UpdatedAt: base}
	update(t, s, func(tx cases.Tx) error { return errors.Join(tx.PutEnterprise(ctx, e2), tx.PutEnterprise(ctx, e1)) })
	view(t, s, func(tx cases.Tx) error {
		list, err := tx.Enterprises(ctx)
		if err != nil {
			return err
		}
		sameJSON(t, "enterprises", list, []*cases.Enterprise{e1, e2})
		return nil
	})
	wantCode(t, s.View(ctx, func(tx cases.Tx) error { return tx.PutReconciliation(ctx, r1) }), cases.EINTERNAL)
}

// odrWorld is a world with dispatch routes and an enrolment committing
// to 5 working days.
type odrWorld struct {
	*world
	city      *cases.Institution // the mediation centre of the city
	ecommerce *cases.Institution // receives e-commerce cases of district 310104
}

func newODRWorld(t *testing.T, s cases.Store) *odrWorld {
	t.Helper()
	ctx := t.Context()
	w := &odrWorld{world: newWorld(t, s, time.Date(2026, 3, 2, 10, 0, 0, 0, cst))}
	w.city = &cases.Institution{Code: "3101", Name: "City Consumer Mediation Centre", Level: cases.LevelCity, ParentID: w.province.ID}
	if err := w.svc.PutInstitution(ctx, w.city); err != nil {
		t.Fatal(err)
	}
	w.ecommerce = &cases.Institution{Code: "0311", Name: "Xuhui E-commerce Mediation Committee", Level: cases.LevelDistrict, ParentID: w.city.ID}
	if err := w.svc.PutInstitution(ctx, w.ecommerce); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*cases.DispatchRoute{
		{ID: "route_any", InstitutionID: w.city.ID},
		{ID: "route_xuhui", District: "310104", InstitutionID: w.district.ID},
		{ID: "route_xuhui_ecommerce", District: "310104", Category: "e-commerce", InstitutionID: w.ecommerce.ID},
	} {
		if err := w.svc.PutDispatchRoute(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.svc.ApplyEnrolment(ctx, cases.Enrolment{CreditCode: enterpriseCode, Name: "Shop Ltd",
		InstitutionID: w.district.ID, Categories: []string{"e-commerce", "product-quality"},
		Stores: []string{"Tmall: Shop Ltd flagship store"}, District: "310104", ResponseDays: 5, Actor: "staff"}); err != nil {
		t.Fatal(err)
	}
	return w
}

// complaint opens an ODR case of the given category and lets the worker
// move it to reconciliation.
func (w *odrWorld) complaint(t *testing.T, category string) *cases.Case {
	t.Helper()
	n := newCaseInput(w.community.ID, "")
	n.Channel = cases.ChannelOnline
	n.Category = category
	n.Respondent.CreditCode = enterpriseCode
	c, _, err := w.svc.OpenCase(t.Context(), n)
	if err != nil {
		t.Fatal(err)
	}
	res, err := w.svc.SweepReconciliation(t.Context())
	if err != nil || res.Routed < 1 {
		t.Fatalf("SweepReconciliation = %+v, %v", res, err)
	}
	c, err = w.svc.Case(t.Context(), c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if c.State != cases.StateReconciliation {
		t.Fatalf("complaint is %s, want reconciliation", c.State)
	}
	return c
}

func testODREnrolment(t *testing.T, s cases.Store) {
	ctx := t.Context()
	w := newODRWorld(t, s)
	e, err := w.svc.Enterprise(ctx, enterpriseCode)
	if err != nil {
		t.Fatal(err)
	}
	// newWorld enrolled it; applying again updates its details and keeps
	// it enrolled.
	if e.Status != cases.EnterpriseEnrolled || e.ResponseDays != 5 || e.District != "310104" || len(e.Categories) != 2 {
		t.Fatalf("enterprise %+v", e)
	}
	other := "91310000MA1FL0CD3E"
	e, err = w.svc.ApplyEnrolment(ctx, cases.Enrolment{CreditCode: other, Name: "Other Shop", InstitutionID: w.district.ID, Actor: "x"})
	if err != nil || e.Status != cases.EnterprisePending {
		t.Fatalf("ApplyEnrolment = %+v, %v", e, err)
	}
	// A complaint against a pending enterprise is not routed to it.
	n := newCaseInput(w.community.ID, "")
	n.Respondent.CreditCode = other
	c, _, err := w.svc.OpenCase(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.svc.SweepReconciliation(ctx); err != nil {
		t.Fatal(err)
	}
	if c, _ = w.svc.Case(ctx, c.ID); c.State != cases.StateSubmitted {
		t.Fatalf("complaint against a pending enterprise is %s", c.State)
	}
	for _, tc := range []struct {
		action, reason, want, code string
	}{
		{cases.EnrolSuspend, "x", "", cases.ETRANSITION},
		{cases.EnrolApprove, "", cases.EnterpriseEnrolled, ""},
		{cases.EnrolApprove, "", "", cases.ETRANSITION},
		{cases.EnrolSuspend, "", "", cases.EINVALID},
		{cases.EnrolSuspend, "ignores complaints", cases.EnterpriseSuspended, ""},
		{cases.EnrolReinstate, "", cases.EnterpriseEnrolled, ""},
		{"promote", "", "", cases.EINVALID},
		{cases.EnrolRemove, "left the platform", cases.EnterpriseWithdrawn, ""},
		{cases.EnrolRemove, "again", "", cases.ETRANSITION},
	} {
		got, err := w.svc.ReviewEnrolment(ctx, other, tc.action, tc.reason, "staff:admin")
		if tc.code != "" {
			wantCode(t, err, tc.code)
			continue
		}
		if err != nil || got.Status != tc.want || got.ReviewedBy != "staff:admin" || got.ReviewedAt == nil {
			t.Fatalf("%s: %+v, %v", tc.action, got, err)
		}
	}
	_, err = w.svc.ReviewEnrolment(ctx, "91310000MA1FL0NO3E", cases.EnrolApprove, "", "x")
	wantCode(t, err, cases.ENOTFOUND)
	// A withdrawn enterprise applies again and is pending.
	if e, err = w.svc.ApplyEnrolment(ctx, cases.Enrolment{CreditCode: other, Name: "Other Shop", InstitutionID: w.district.ID}); err != nil || e.Status != cases.EnterprisePending {
		t.Fatalf("reapply = %+v, %v", e, err)
	}
	for _, bad := range []cases.Enrolment{
		{CreditCode: "123", Name: "x", InstitutionID: w.district.ID},
		{CreditCode: other, Name: "", InstitutionID: w.district.ID},
		{CreditCode: other, Name: "x"},
		{CreditCode: other, Name: "x", InstitutionID: "inst_none"},
		{CreditCode: other, Name: "x", InstitutionID: w.district.ID, Categories: []string{"weapons"}},
		{CreditCode: other, Name: "x", InstitutionID: w.district.ID, District: "Xuhui"},
		{CreditCode: other, Name: "x", InstitutionID: w.district.ID, ResponseDays: 31},
	} {
		if _, err := w.svc.ApplyEnrolment(ctx, bad); cases.ErrorCode(err) != cases.EINVALID {
			t.Errorf("ApplyEnrolment(%+v) = %v, want invalid", bad, err)
		}
	}
	list, err := w.svc.ListEnterprises(ctx, cases.EnterpriseQuery{Status: cases.EnterprisePending})
	if err != nil || len(list) != 1 || list[0].CreditCode != other {
		t.Fatalf("pending enterprises = %+v, %v", list, err)
	}
	list, err = w.svc.ListEnterprises(ctx, cases.EnterpriseQuery{InstitutionIDs: []string{w.community.ID}})
	if err != nil || len(list) != 0 {
		t.Fatalf("enterprises of the community = %+v, %v", list, err)
	}
	// The platform admin's PUT keeps the enrolment details.
	if err := w.svc.PutEnterprise(ctx, &cases.Enterprise{CreditCode: enterpriseCode, Name: "Shop Ltd (renamed)"}); err != nil {
		t.Fatal(err)
	}
	if e, _ = w.svc.Enterprise(ctx, enterpriseCode); e.ResponseDays != 5 || e.District != "310104" || e.Name != "Shop Ltd (renamed)" {
		t.Fatalf("after PUT: %+v", e)
	}
}

// outboxTo returns the pending messages to a recipient.
func outboxTo(t *testing.T, s cases.Store, to string) []cases.OutboxMessage {
	t.Helper()
	var out []cases.OutboxMessage
	update(t, s, func(tx cases.Tx) error {
		far := time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
		list, err := tx.ClaimOutbox(t.Context(), far, far.Add(time.Hour), 1000)
		for _, m := range list {
			if m.To == to {
				out = append(out, m)
			}
		}
		return err
	})
	return out
}

func eventTypes(t *testing.T, s cases.Store, caseID string) []string {
	t.Helper()
	var types []string
	for _, e := range getEvents(t, s, caseID) {
		types = append(types, e.Type)
	}
	return types
}

// testODRPaths walks a complaint through every path of reconciliation,
// with a fake clock.
func testODRPaths(t *testing.T, s cases.Store) {
	ctx := t.Context()
	w := newODRWorld(t, s)
	merchant := func(kind string) cases.MerchantAction {
		a := cases.MerchantAction{Kind: kind, EnterpriseCode: enterpriseCode, Actor: "staff:merchant"}
		switch kind {
		case cases.ActCounter:
			a.Terms, a.AmountCents, a.PerformBy = "refund 100 yuan within 3 days", 10000, "2026-03-10"
		case cases.ActDecline:
			a.Reason = "the kettle was damaged by misuse"
		case cases.ActAcceptClaim:
			a.Terms = "refund within 3 days to the original account"
		}
		return a
	}
	type step func(c *cases.Case) (*cases.ReconciliationResult, error)
	act := func(kind string) step {
		return func(c *cases.Case) (*cases.ReconciliationResult, error) {
			return w.svc.MerchantAct(ctx, c.ID, merchant(kind))
		}
	}
	answer := func(accept bool) step {
		return func(c *cases.Case) (*cases.ReconciliationResult, error) {
			return w.svc.AnswerOffer(ctx, c.ID, cases.ApplicantAnswer{Accept: accept, Note: "too little", Actor: "p_applicant"})
		}
	}
	lapse := func(c *cases.Case) (*cases.ReconciliationResult, error) {
		r, _ := w.svc.Reconciliation(ctx, c.ID)
		// Just before the deadline nothing happens; at it, the worker
		// escalates.
		w.clock.Set(r.DueAt.Add(-time.Minute))
		if res, err := w.svc.SweepReconciliation(ctx); err != nil || res.Escalated != 0 {
			t.Fatalf("sweep before the deadline = %+v, %v", res, err)
		}
		w.clock.Set(r.DueAt)
		if res, err := w.svc.SweepReconciliation(ctx); err != nil || res.Escalated != 1 {
			t.Fatalf("sweep at the deadline = %+v, %v", res, err)
		}
		got, err := w.svc.Case(ctx, c.ID)
		if err != nil {
			return nil, err
		}
		rec, err := w.svc.Reconciliation(ctx, c.ID)
		return &cases.ReconciliationResult{Case: got, Reconciliation: rec}, err
	}
	for _, tt := range []struct {
		name     string
		category string
		steps    []step
		state    cases.State
		result   string // the record's result
		terms    string // in the outcome's terms
		inst     func() string
		events   []string
	}{
		{"accept the claim", "e-commerce", []step{act(cases.ActAcceptClaim)}, cases.StateClosed, cases.RecSettled,
			"refund of a faulty kettle", nil, []string{"case.submitted", "case.reconciliation", "reconciliation.offer", "case.closed"}},
		{"counter-offer accepted", "e-commerce", []step{act(cases.ActCounter), answer(true)}, cases.StateClosed, cases.RecSettled,
			"refund 100 yuan within 3 days", nil,
			[]string{"case.submitted", "case.reconciliation", "reconciliation.offer", "reconciliation.answer", "case.closed"}},
		{"counter-offer refused", "e-commerce", []step{act(cases.ActCounter), answer(false)}, cases.StateDispatched, cases.ReasonRefused,
			"", func() string { return w.ecommerce.ID },
			[]string{"case.submitted", "case.reconciliation", "reconciliation.offer", "reconciliation.answer", "case.dispatched"}},
		{"declined", "product-quality", []step{act(cases.ActDecline)}, cases.StateDispatched, cases.ReasonDeclined,
			"", func() string { return w.district.ID },
			[]string{"case.submitted", "case.reconciliation", "case.dispatched"}},
		{"deadline passes", "e-commerce", []step{lapse}, cases.StateDispatched, cases.ReasonDeadlinePassed,
			"", func() string { return w.ecommerce.ID },
			[]string{"case.submitted", "case.reconciliation", "case.dispatched"}},
		{"counter-offer unanswered by the deadline", "e-commerce", []step{act(cases.ActCounter), lapse}, cases.StateDispatched,
			cases.ReasonDeadlinePassed, "", func() string { return w.ecommerce.ID },
			[]string{"case.submitted", "case.reconciliation", "reconciliation.offer", "case.dispatched"}},
		{"video, then a counter-offer accepted", "e-commerce", []step{act(cases.ActVideo), act(cases.ActCounter), answer(true)},
			cases.StateClosed, cases.RecSettled, "refund 100 yuan",
			nil, []string{"case.submitted", "case.reconciliation", "reconciliation.video", "reconciliation.offer", "reconciliation.answer", "case.closed"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w.clock.Set(time.Date(2026, 3, 2, 10, 0, 0, 0, cst))
			c := w.complaint(t, tt.category)
			r, err := w.svc.Reconciliation(ctx, c.ID)
			if err != nil {
				t.Fatal(err)
			}
			// 5 working days from Monday 2 March: due at the end of Monday 9.
			if r.Status != cases.RecAwaitingMerchant || r.ResponseDays != 5 || r.DueDate != "2026-03-09" || r.SessionID == "" {
				t.Fatalf("reconciliation %+v", r)
			}
			if d := c.PendingDeadline(); d == nil || d.Kind != cases.DeadlineReconciliation || d.WorkingDays != 5 || !d.DueAt.Equal(r.DueAt) {
				t.Fatalf("deadline %+v", d)
			}
			var res *cases.ReconciliationResult
			for i, st := range tt.steps {
				w.clock.Add(time.Hour)
				if res, err = st(c); err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
			}
			if res.Case.State != tt.state || res.Reconciliation.Result != tt.result || res.Reconciliation.Open() {
				t.Fatalf("case %s, reconciliation %+v", res.Case.State, res.Reconciliation)
			}
			if tt.terms != "" && (res.Case.Outcome == nil || res.Case.Outcome.Result != cases.ResultReconciled ||
				!strings.Contains(res.Case.Outcome.Terms, tt.terms) || res.Reconciliation.Terms != res.Case.Outcome.Terms) {
				t.Fatalf("outcome %+v, terms %q", res.Case.Outcome, res.Reconciliation.Terms)
			}
			if tt.inst != nil {
				if res.Case.InstitutionID != tt.inst() || res.Reconciliation.EscalatedTo != tt.inst() {
					t.Fatalf("escalated to %s (record %s), want %s", res.Case.InstitutionID, res.Reconciliation.EscalatedTo, tt.inst())
				}
				if d := res.Case.PendingDeadline(); d == nil || d.Kind != cases.DeadlineRespondentContact {
					t.Fatalf("after escalation, deadline %+v", d)
				}
			}
			for _, o := range res.Reconciliation.Offers {
				if o.Status == cases.OfferPending {
					t.Fatalf("offer still pending after the stage ended: %+v", o)
				}
			}
			if got := eventTypes(t, s, c.ID); !slices.Equal(got, tt.events) {
				t.Fatalf("events:\n got %v\nwant %v", got, tt.events)
			}
			// The reconciliation room ended with the stage.
			sess, err := w.svc.Session(ctx, res.Reconciliation.SessionID)
			if err != nil || sess.Status != cases.SessionEnded || sess.Mode != cases.ModeReconciliation || len(sess.Participants) != 2 {
				t.Fatalf("room %+v, %v", sess, err)
			}
			for _, p := range sess.Participants {
				if p.Role != cases.RoleParty {
					t.Fatalf("a reconciliation room has no mediator: %+v", sess.Participants)
				}
			}
		})
	}

	// The applicant heard of each step by SMS.
	msgs := outboxTo(t, s, "+86 138 0000 0000")
	if len(msgs) < 10 {
		t.Fatalf("%d messages to the applicant", len(msgs))
	}
}

func testODRRouting(t *testing.T, s cases.Store) {
	ctx := t.Context()
	w := newODRWorld(t, s)
	decline := cases.MerchantAction{Kind: cases.ActDecline, Reason: "no", Actor: "m"}
	escalate := func(category string) *cases.Case {
		t.Helper()
		c := w.complaint(t, category)
		res, err := w.svc.MerchantAct(ctx, c.ID, decline)
		if err != nil {
			t.Fatal(err)
		}
		return res.Case
	}
	// The most specific route wins.
	if c := escalate("e-commerce"); c.InstitutionID != w.ecommerce.ID {
		t.Fatalf("e-commerce of 310104 went to %s", c.InstitutionID)
	}
	if c := escalate("product-quality"); c.InstitutionID != w.district.ID {
		t.Fatalf("product quality of 310104 went to %s", c.InstitutionID)
	}
	// A suspended institution's cases go to the nearest active one above.
	w.ecommerce.Status = cases.InstitutionSuspended
	if err := w.svc.PutInstitution(ctx, w.ecommerce); err != nil {
		t.Fatal(err)
	}
	if c := escalate("e-commerce"); c.InstitutionID != w.city.ID {
		t.Fatalf("with its committee suspended, e-commerce went to %s", c.InstitutionID)
	}
	// Another district: the catch-all route.
	e, _ := w.svc.Enterprise(ctx, enterpriseCode)
	e.District = "310115"
	if err := w.svc.PutEnterprise(ctx, e); err != nil {
		t.Fatal(err)
	}
	if c := escalate("product-quality"); c.InstitutionID != w.city.ID {
		t.Fatalf("another district went to %s", c.InstitutionID)
	}
	// No route at all: the case's own institution.
	for _, id := range []string{"route_any", "route_xuhui", "route_xuhui_ecommerce"} {
		if err := w.svc.DeleteDispatchRoute(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if c := escalate("product-quality"); c.InstitutionID != w.community.ID {
		t.Fatalf("with no route, went to %s", c.InstitutionID)
	}
	wantCode(t, w.svc.DeleteDispatchRoute(ctx, "route_any"), cases.ENOTFOUND)
	// Route validation.
	for _, r := range []*cases.DispatchRoute{
		{Category: "weapons", InstitutionID: w.city.ID},
		{District: "31", InstitutionID: w.city.ID},
		{InstitutionID: "inst_none"},
	} {
		wantCode(t, w.svc.PutDispatchRoute(ctx, r), cases.EINVALID)
	}
	r := &cases.DispatchRoute{Category: "e-commerce", InstitutionID: w.city.ID}
	if err := w.svc.PutDispatchRoute(ctx, r); err != nil {
		t.Fatal(err)
	}
	wantCode(t, w.svc.PutDispatchRoute(ctx, &cases.DispatchRoute{Category: "e-commerce", InstitutionID: w.district.ID}), cases.ECONFLICT)
	if got, err := w.svc.DispatchRoute(ctx, r.ID); err != nil || got.InstitutionID != w.city.ID {
		t.Fatalf("DispatchRoute = %+v, %v", got, err)
	}
}

func testODRSuspension(t *testing.T, s cases.Store) {
	ctx := t.Context()
	w := newODRWorld(t, s)
	a := w.complaint(t, "e-commerce")
	b := w.complaint(t, "product-quality")
	if _, err := w.svc.MerchantAct(ctx, b.ID, cases.MerchantAction{Kind: cases.ActCounter, Terms: "50%", Actor: "m"}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.svc.ReviewEnrolment(ctx, enterpriseCode, cases.EnrolSuspend, "ignores its inbox", "staff:admin"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*cases.Case{a, b} {
		got, _ := w.svc.Case(ctx, c.ID)
		r, _ := w.svc.Reconciliation(ctx, c.ID)
		if got.State != cases.StateDispatched || r.Result != cases.ReasonEnterpriseSuspended {
			t.Fatalf("after suspension: %s, %+v", got.State, r)
		}
	}
	// A complaint against the suspended enterprise is not routed to it,
	// and the answer of the applicant to a lapsed offer is refused.
	n := newCaseInput(w.community.ID, "")
	n.Respondent.CreditCode = enterpriseCode
	c, _, err := w.svc.OpenCase(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.svc.SweepReconciliation(ctx); err != nil {
		t.Fatal(err)
	}
	if c, _ = w.svc.Case(ctx, c.ID); c.State != cases.StateSubmitted {
		t.Fatalf("complaint against a suspended enterprise is %s", c.State)
	}
	_, err = w.svc.AnswerOffer(ctx, b.ID, cases.ApplicantAnswer{Accept: true, Actor: "p"})
	wantCode(t, err, cases.ETRANSITION)

	// Suspended by the platform admin's PUT instead: the worker escalates.
	if _, err := w.svc.ReviewEnrolment(ctx, enterpriseCode, cases.EnrolReinstate, "", "staff:admin"); err != nil {
		t.Fatal(err)
	}
	d := w.complaint(t, "e-commerce")
	if err := w.svc.PutEnterprise(ctx, &cases.Enterprise{CreditCode: enterpriseCode, Name: "Shop Ltd", Status: cases.EnterpriseWithdrawn}); err != nil {
		t.Fatal(err)
	}
	res, err := w.svc.SweepReconciliation(ctx)
	if err != nil || res.Escalated != 1 {
		t.Fatalf("sweep = %+v, %v", res, err)
	}
	if got, _ := w.svc.Case(ctx, d.ID); got.State != cases.StateDispatched {
		t.Fatalf("complaint of a withdrawn enterprise is %s", got.State)
	}
}

func testODRGuards(t *testing.T, s cases.Store) {
	ctx := t.Context()
	w := newODRWorld(t, s)
	c := w.complaint(t, "e-commerce")
	for _, tc := range []struct {
		name  string
		a     cases.MerchantAction
		code  string
		field string
	}{
		{"unknown action", cases.MerchantAction{Kind: "ignore"}, cases.EINVALID, "action"},
		{"counter without terms", cases.MerchantAction{Kind: cases.ActCounter}, cases.EINVALID, "terms"},
		{"decline without a reason", cases.MerchantAction{Kind: cases.ActDecline}, cases.EINVALID, "reason"},
		{"negative amount", cases.MerchantAction{Kind: cases.ActCounter, Terms: "x", AmountCents: -1}, cases.EINVALID, "amountCents"},
		{"bad date", cases.MerchantAction{Kind: cases.ActCounter, Terms: "x", PerformBy: "soon"}, cases.EINVALID, "performBy"},
		{"another enterprise's case", cases.MerchantAction{Kind: cases.ActAcceptClaim, EnterpriseCode: "91310000MA1FL0CD3E"}, cases.ENOTFOUND, ""},
		{"video after the deadline", cases.MerchantAction{Kind: cases.ActVideo, ScheduledAt: ptr(time.Date(2026, 3, 20, 10, 0, 0, 0, cst))}, cases.EINVALID, "scheduledAt"},
		{"video in the past", cases.MerchantAction{Kind: cases.ActVideo, ScheduledAt: ptr(time.Date(2026, 3, 1, 10, 0, 0, 0, cst))}, cases.EINVALID, "scheduledAt"},
	} {
		_, err := w.svc.MerchantAct(ctx, c.ID, tc.a)
		wantCode(t, err, tc.code)
		if cases.ErrorField(err) != tc.field {
			t.Errorf("%s: field %q, want %q", tc.name, cases.ErrorField(err), tc.field)
		}
	}
	// No offer to answer yet.
	_, err := w.svc.AnswerOffer(ctx, c.ID, cases.ApplicantAnswer{Accept: true})
	wantCode(t, err, cases.ETRANSITION)
	// A counter-offer supersedes the one before; only the latest is answered.
	first, err := w.svc.MerchantAct(ctx, c.ID, cases.MerchantAction{Kind: cases.ActCounter, Terms: "30 yuan"})
	if err != nil {
		t.Fatal(err)
	}
	second, err := w.svc.MerchantAct(ctx, c.ID, cases.MerchantAction{Kind: cases.ActCounter, Terms: "60 yuan"})
	if err != nil {
		t.Fatal(err)
	}
	if second.Reconciliation.Offers[0].Status != cases.OfferSuperseded || second.Reconciliation.Offers[1].Status != cases.OfferPending {
		t.Fatalf("offers %+v", second.Reconciliation.Offers)
	}
	_, err = w.svc.AnswerOffer(ctx, c.ID, cases.ApplicantAnswer{OfferID: first.Reconciliation.Offers[0].ID, Accept: true})
	wantCode(t, err, cases.ETRANSITION)
	// Video: scheduled in the room, before the deadline.
	at := time.Date(2026, 3, 4, 15, 0, 0, 0, cst)
	v, err := w.svc.MerchantAct(ctx, c.ID, cases.MerchantAction{Kind: cases.ActVideo, ScheduledAt: &at})
	if err != nil || v.Session == nil || v.Session.ScheduledAt == nil || !v.Session.ScheduledAt.Equal(at) || v.Reconciliation.VideoRequestedAt == nil {
		t.Fatalf("video = %+v, %v", v, err)
	}
	// The first answer is recorded and sets the response time.
	if v.Reconciliation.FirstResponseAt == nil || !v.Reconciliation.FirstResponseAt.Equal(first.Reconciliation.FirstResponseAt.UTC()) {
		t.Fatalf("first response %v", v.Reconciliation.FirstResponseAt)
	}
	// After the deadline, the merchant is too late even before the worker
	// runs.
	w.clock.Set(v.Reconciliation.DueAt.Add(time.Second))
	_, err = w.svc.MerchantAct(ctx, c.ID, cases.MerchantAction{Kind: cases.ActAcceptClaim})
	wantCode(t, err, cases.ETRANSITION)
	// A case not in reconciliation.
	other := w.open(t, false)
	_, err = w.svc.MerchantAct(ctx, other.ID, cases.MerchantAction{Kind: cases.ActAcceptClaim})
	wantCode(t, err, cases.ETRANSITION)
	_, err = w.svc.MerchantAct(ctx, "case_none", cases.MerchantAction{Kind: cases.ActAcceptClaim})
	wantCode(t, err, cases.ENOTFOUND)
	// The transition guard: an enrolment that does not cover the category.
	n := newCaseInput(w.community.ID, "")
	n.Category = "consumer-finance"
	n.Respondent.CreditCode = enterpriseCode
	fin, _, err := w.svc.OpenCase(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	_, err = w.svc.Apply(ctx, fin.ID, cases.TransitionRequest{To: cases.StateReconciliation})
	wantCode(t, err, cases.ETRANSITION)
}

func ptr[T any](v T) *T { return &v }

func testODRDashboard(t *testing.T, s cases.Store) {
	ctx := t.Context()
	w := newODRWorld(t, s)
	// Three settled e-commerce complaints, one declined product-quality
	// one, one left to lapse, one still open.
	for range 3 {
		c := w.complaint(t, "e-commerce")
		w.clock.Add(2 * time.Hour)
		if _, err := w.svc.MerchantAct(ctx, c.ID, cases.MerchantAction{Kind: cases.ActAcceptClaim}); err != nil {
			t.Fatal(err)
		}
	}
	c := w.complaint(t, "product-quality")
	w.clock.Add(26 * time.Hour)
	if _, err := w.svc.MerchantAct(ctx, c.ID, cases.MerchantAction{Kind: cases.ActDecline, Reason: "no"}); err != nil {
		t.Fatal(err)
	}
	lapsed := w.complaint(t, "product-quality")
	r, _ := w.svc.Reconciliation(ctx, lapsed.ID)
	w.clock.Set(r.DueAt)
	if _, err := w.svc.SweepReconciliation(ctx); err != nil {
		t.Fatal(err)
	}
	w.complaint(t, "e-commerce")
	// Another enterprise's complaints are not in it.
	other := "91310000MA1FL0CD3E"
	if _, err := w.svc.ApplyEnrolment(ctx, cases.Enrolment{CreditCode: other, Name: "Other", InstitutionID: w.district.ID}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.svc.ReviewEnrolment(ctx, other, cases.EnrolApprove, "", "x"); err != nil {
		t.Fatal(err)
	}
	n := newCaseInput(w.community.ID, "")
	n.Respondent.CreditCode = other
	if _, _, err := w.svc.OpenCase(ctx, n); err != nil {
		t.Fatal(err)
	}
	if _, err := w.svc.SweepReconciliation(ctx); err != nil {
		t.Fatal(err)
	}

	d, err := w.svc.Dashboard(ctx, enterpriseCode, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if d.Total != 6 || d.Open != 1 || d.Settled != 3 || d.Escalated != 2 || d.ReconciliationRate == nil || *d.ReconciliationRate != 0.6 {
		t.Fatalf("dashboard totals %+v", d)
	}
	counts := map[string]int{}
	for _, o := range d.ByOutcome {
		counts[o.Key] = o.Count
	}
	if counts[cases.RecSettled] != 3 || counts[cases.ReasonDeclined] != 1 || counts[cases.ReasonDeadlinePassed] != 1 || counts["open"] != 1 {
		t.Fatalf("by outcome %+v", d.ByOutcome)
	}
	if len(d.ByCategory) != 2 || d.ByCategory[0].Key != "e-commerce" || d.ByCategory[0].Total != 4 || d.ByCategory[0].Settled != 3 ||
		d.ByCategory[1].Key != "product-quality" || d.ByCategory[1].Escalated != 2 || *d.ByCategory[1].ReconciliationRate != 0 {
		t.Fatalf("by category %+v", d.ByCategory)
	}
	if d.Resolve.Count != 5 || d.FirstResponse.Count != 4 || d.Resolve.MedianHours == nil {
		t.Fatalf("durations %+v %+v", d.Resolve, d.FirstResponse)
	}
	hist := 0
	for _, b := range d.ResolveHistogram {
		hist += b.Count
	}
	if hist != 5 || d.ResolveHistogram[0].Count != 3 {
		t.Fatalf("histogram %+v", d.ResolveHistogram)
	}
	if b, _ := json.Marshal(d); strings.Contains(string(b), other) || strings.Contains(string(b), "李华") {
		t.Fatalf("dashboard holds another enterprise or a name: %s", b)
	}
	// A period before everything is empty; bad dates are refused.
	if d, err = w.svc.Dashboard(ctx, enterpriseCode, "2025-01-01", "2025-12-31"); err != nil || d.Total != 0 {
		t.Fatalf("empty period = %+v, %v", d, err)
	}
	_, err = w.svc.Dashboard(ctx, enterpriseCode, "2026-04-01", "2026-03-01")
	wantCode(t, err, cases.EINVALID)
	_, err = w.svc.Dashboard(ctx, "91310000MA1FL0NO3E", "", "")
	wantCode(t, err, cases.ENOTFOUND)

	// The inbox holds the open complaint only, with no phone.
	items, err := w.svc.Inbox(ctx, enterpriseCode)
	if err != nil || len(items) != 1 || items[0].Reconciliation == nil || items[0].ApplicantName == "" {
		t.Fatalf("inbox = %+v, %v", items, err)
	}
	if b, _ := json.Marshal(items); strings.Contains(string(b), "138 0000") {
		t.Fatalf("inbox shows the applicant's phone: %s", b)
	}
}

// testODRWorker checks that the worker's own loop routes and escalates.
func testODRWorker(t *testing.T, s cases.Store) {
	ctx := t.Context()
	w := newODRWorld(t, s)
	n := newCaseInput(w.community.ID, "")
	n.Respondent.CreditCode = enterpriseCode
	c, _, err := w.svc.OpenCase(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	wk := cases.NewODRWorker(cases.ODRWorkerParams{Service: w.svc, Interval: 10 * time.Millisecond})
	defer wk.Close()
	waitState := func(want cases.State) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if got, _ := w.svc.Case(ctx, c.ID); got != nil && got.State == want {
				return
			}
			wk.Kick()
			time.Sleep(5 * time.Millisecond)
		}
		t.Fatalf("case never reached %s", want)
	}
	waitState(cases.StateReconciliation)
	w.clock.Add(30 * 24 * time.Hour)
	waitState(cases.StateDispatched)
	if err := wk.Close(); err != nil {
		t.Fatal(err)
	}
	if err := wk.Close(); err != nil { // idempotent
		t.Fatal(err)
	}
}

func testShiftAndReminderStore(t *testing.T, s cases.Store) {
	ctx := t.Context()
	update(t, s, func(tx cases.Tx) error { return tx.PutInstitution(ctx, newInstitution("inst_a")) })
	m := &cases.Mediator{ID: "med_1", InstitutionID: "inst_a", Name: "Chen", Status: cases.MediatorActive, CreatedAt: base}
	update(t, s, func(tx cases.Tx) error { return tx.PutMediator(ctx, m) })
	sh1 := &cases.Shift{ID: "sh_1", MediatorID: "med_1", InstitutionID: "inst_a", StartsAt: base, EndsAt: base.Add(8 * time.Hour), CreatedAt: base}
	sh2 := &cases.Shift{ID: "sh_2", MediatorID: "med_1", InstitutionID: "inst_a", StartsAt: base.Add(16 * time.Hour), EndsAt: base.Add(24 * time.Hour), CreatedAt: base}
	update(t, s, func(tx cases.Tx) error { return errors.Join(tx.PutShift(ctx, sh2), tx.PutShift(ctx, sh1)) })
	if !sh1.StartsAt.Equal(micro(base)) || sh1.StartsAt.Location() != time.UTC {
		t.Fatalf("PutShift left StartsAt %v", sh1.StartsAt)
	}
	view(t, s, func(tx cases.Tx) error {
		for _, tc := range []struct {
			f    cases.ShiftFilter
			want []*cases.Shift
		}{
			{cases.ShiftFilter{}, []*cases.Shift{sh1, sh2}},
			{cases.ShiftFilter{InstitutionID: "inst_a", From: base.Add(time.Hour), To: base.Add(2 * time.Hour)}, []*cases.Shift{sh1}},
			{cases.ShiftFilter{MediatorID: "med_1", From: base.Add(8 * time.Hour), To: base.Add(16 * time.Hour)}, []*cases.Shift{}},
			{cases.ShiftFilter{InstitutionID: "inst_b"}, []*cases.Shift{}},
		} {
			got, err := tx.Shifts(ctx, tc.f)
			if err != nil {
				return err
			}
			sameJSON(t, "shifts", got, tc.want)
		}
		return nil
	})
	orphan := &cases.Shift{ID: "sh_x", MediatorID: "med_none", StartsAt: base, EndsAt: base.Add(time.Hour), CreatedAt: base}
	wantCode(t, s.Update(ctx, func(tx cases.Tx) error { return tx.PutShift(ctx, orphan) }), cases.ENOTFOUND)
	update(t, s, func(tx cases.Tx) error { return tx.DeleteShift(ctx, "sh_1") })
	wantCode(t, s.Update(ctx, func(tx cases.Tx) error { return tx.DeleteShift(ctx, "sh_1") }), cases.ENOTFOUND)

	putCase(t, s, newCase("case_1", "N-1", "online", ""))
	sess := &cases.Session{ID: "s_1", CaseID: "case_1", Mode: "joint", Status: cases.SessionScheduled,
		Participants: []cases.Participant{}, Attendance: []cases.Attendance{}, CreatedAt: base}
	update(t, s, func(tx cases.Tx) error { return tx.PutSession(ctx, sess) })
	day := &cases.Reminder{ID: "rem_1", SessionID: "s_1", CaseID: "case_1", Kind: cases.ReminderDay, SessionAt: base.Add(48 * time.Hour),
		DueAt: base.Add(24 * time.Hour), Status: cases.ReminderPending, CreatedAt: base}
	quarter := &cases.Reminder{ID: "rem_2", SessionID: "s_1", CaseID: "case_1", Kind: cases.ReminderQuarter, SessionAt: base.Add(48 * time.Hour),
		DueAt: base.Add(48*time.Hour - 15*time.Minute), Status: cases.ReminderPending, CreatedAt: base}
	update(t, s, func(tx cases.Tx) error { return errors.Join(tx.PutReminder(ctx, quarter), tx.PutReminder(ctx, day)) })
	sent := base.Add(24 * time.Hour)
	day.Status, day.SentAt, day.Messages = cases.ReminderSent, &sent, 2
	update(t, s, func(tx cases.Tx) error { return tx.PutReminder(ctx, day) })
	view(t, s, func(tx cases.Tx) error {
		for _, tc := range []struct {
			f    cases.ReminderFilter
			want []*cases.Reminder
		}{
			{cases.ReminderFilter{SessionID: "s_1"}, []*cases.Reminder{day, quarter}},
			{cases.ReminderFilter{Pending: true}, []*cases.Reminder{quarter}},
			{cases.ReminderFilter{Pending: true, DueBy: base.Add(47 * time.Hour)}, []*cases.Reminder{}},
			{cases.ReminderFilter{DueBy: base.Add(47 * time.Hour), Limit: 1}, []*cases.Reminder{day}},
		} {
			got, err := tx.Reminders(ctx, tc.f)
			if err != nil {
				return err
			}
			sameJSON(t, "reminders", got, tc.want)
		}
		return nil
	})
	bad := &cases.Reminder{ID: "rem_x", SessionID: "s_none", Status: cases.ReminderPending, DueAt: base, CreatedAt: base}
	wantCode(t, s.Update(ctx, func(tx cases.Tx) error { return tx.PutReminder(ctx, bad) }), cases.ENOTFOUND)
}

func testShifts(t *testing.T, s cases.Store) {
	ctx := t.Context()
	w := newWorld(t, s, time.Date(2026, 3, 2, 10, 0, 0, 0, cst))
	start := time.Date(2026, 3, 2, 8, 0, 0, 0, cst)
	sh := &cases.Shift{MediatorID: w.mediator.ID, StartsAt: start, EndsAt: start.Add(8 * time.Hour)}
	if err := w.svc.PutShift(ctx, sh); err != nil || sh.InstitutionID != w.district.ID || sh.ID == "" {
		t.Fatalf("PutShift = %v, %+v", err, sh)
	}
	for _, bad := range []struct {
		sh   cases.Shift
		code string
	}{
		{cases.Shift{MediatorID: w.mediator.ID, StartsAt: start, EndsAt: start}, cases.EINVALID},
		{cases.Shift{MediatorID: w.mediator.ID, StartsAt: start, EndsAt: start.Add(25 * time.Hour)}, cases.EINVALID},
		{cases.Shift{MediatorID: "med_none", StartsAt: start, EndsAt: start.Add(time.Hour)}, cases.EINVALID},
		{cases.Shift{MediatorID: w.mediator.ID, InstitutionID: w.community.ID, StartsAt: start, EndsAt: start.Add(time.Hour)}, cases.EINVALID},
		{cases.Shift{MediatorID: w.mediator.ID, StartsAt: start.Add(7 * time.Hour), EndsAt: start.Add(9 * time.Hour)}, cases.ECONFLICT},
	} {
		wantCode(t, w.svc.PutShift(ctx, &bad.sh), bad.code)
	}
	on, err := w.svc.OnShift(ctx, w.district.ID, start.Add(time.Hour))
	if err != nil || !slices.Equal(on, []string{w.mediator.ID}) {
		t.Fatalf("OnShift = %v, %v", on, err)
	}
	if on, _ = w.svc.OnShift(ctx, w.district.ID, start.Add(8*time.Hour)); len(on) != 0 {
		t.Fatalf("on shift at its end: %v", on)
	}
	if err := w.svc.DeleteShift(ctx, sh.ID); err != nil {
		t.Fatal(err)
	}
	if list, _ := w.svc.Shifts(ctx, cases.ShiftFilter{MediatorID: w.mediator.ID}); len(list) != 0 {
		t.Fatalf("after delete: %v", list)
	}
}

package casetest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/concord-odr/concord/cases"
)

// manualClock is a time source the test sets. Each reading moves it on by
// a millisecond, so that cases opened in a row keep their order.
type manualClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(time.Millisecond)
	return c.now
}

func (c *manualClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

func (c *manualClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// cst is China Standard Time, in which deadlines count days.
var cst = time.FixedZone("CST", 8*3600)

// enterpriseCode is the credit code of the world's ODR enterprise.
const enterpriseCode = "91310000MA1FL0AB2C"

// world is a service with a settable clock, institutions at each level,
// a mediator and an enrolled ODR enterprise.
type world struct {
	svc       *cases.Service
	clock     *manualClock
	province  *cases.Institution
	district  *cases.Institution
	community *cases.Institution
	mediator  *cases.Mediator
}

func newWorld(t *testing.T, s cases.Store, at time.Time) *world {
	t.Helper()
	ctx := t.Context()
	clock := &manualClock{now: at}
	w := &world{svc: cases.NewService(cases.ServiceParams{Store: s, Now: clock.Now}), clock: clock}
	w.province = &cases.Institution{Code: "31", Name: "Shanghai Consumer Dispute Mediation Centre", Level: cases.LevelProvince}
	if err := w.svc.PutInstitution(ctx, w.province); err != nil {
		t.Fatal(err)
	}
	w.district = &cases.Institution{Code: "0310", Name: "Xuhui Mediation Committee", Level: cases.LevelDistrict, ParentID: w.province.ID}
	if err := w.svc.PutInstitution(ctx, w.district); err != nil {
		t.Fatal(err)
	}
	w.community = &cases.Institution{Code: "031001", Name: "Tianping Community Station", Level: cases.LevelCommunity, ParentID: w.district.ID}
	if err := w.svc.PutInstitution(ctx, w.community); err != nil {
		t.Fatal(err)
	}
	w.mediator = &cases.Mediator{InstitutionID: w.district.ID, Name: "王调解员"}
	if err := w.svc.PutMediator(ctx, w.mediator); err != nil {
		t.Fatal(err)
	}
	if err := w.svc.PutEnterprise(ctx, &cases.Enterprise{CreditCode: enterpriseCode, Name: "Shop Ltd"}); err != nil {
		t.Fatal(err)
	}
	return w
}

// open opens a case at the district; with odr the respondent is the
// enrolled enterprise.
func (w *world) open(t *testing.T, odr bool) *cases.Case {
	t.Helper()
	n := newCaseInput(w.district.ID, "")
	n.Channel = cases.ChannelWindow
	if odr {
		n.Respondent.CreditCode = enterpriseCode
	}
	c, created, err := w.svc.OpenCase(t.Context(), n)
	if err != nil || !created {
		t.Fatalf("OpenCase = %v, created %v", err, created)
	}
	if c.Respondent.ODREnterprise != odr {
		t.Fatalf("respondent ODR enterprise = %v, want %v", c.Respondent.ODREnterprise, odr)
	}
	return c
}

// step is one lifecycle request, after the clock moved on by wait.
type step struct {
	wait time.Duration
	req  cases.TransitionRequest
}

func (w *world) walk(t *testing.T, c *cases.Case, steps []step) *cases.Case {
	t.Helper()
	for i, st := range steps {
		w.clock.Add(st.wait)
		got, err := w.svc.Apply(t.Context(), c.ID, st.req)
		if err != nil {
			t.Fatalf("step %d (to %s): %v", i, st.req.To, err)
		}
		if got.State != st.req.To {
			t.Fatalf("step %d: state %s, want %s", i, got.State, st.req.To)
		}
		c = got
	}
	return c
}

// Steps of the lifecycle with the inputs their guards need.
var (
	toReconciliation = step{req: cases.TransitionRequest{To: cases.StateReconciliation, Actor: "system"}}
	toDispatched     = step{req: cases.TransitionRequest{To: cases.StateDispatched, Actor: "staff"}}
	declined         = step{req: cases.TransitionRequest{To: cases.StateDispatched, ReasonCode: cases.ReasonDeclined, Reason: "the shop refuses a refund"}}
	contacted        = step{req: cases.TransitionRequest{To: cases.StateRespondentContacted, Actor: "staff", Note: "phoned the shop"}}
	rejected         = step{req: cases.TransitionRequest{To: cases.StateRejected, ReasonCode: "respondent_refused", Reason: "the shop will not take part"}}
	mediating        = step{req: cases.TransitionRequest{To: cases.StateMediating}}
	reconciled       = step{req: cases.TransitionRequest{To: cases.StateClosed, Outcome: &cases.Outcome{Result: cases.ResultReconciled, Terms: "refund of 129.90 yuan"}}}
	settled          = step{req: cases.TransitionRequest{To: cases.StateClosed, Outcome: &cases.Outcome{Result: cases.ResultSettled, Terms: "refund within 7 days"}}}
	partially        = step{req: cases.TransitionRequest{To: cases.StateClosed, Outcome: &cases.Outcome{Result: cases.ResultPartiallySettled, Terms: "half refunded"}}}
	notSettled       = step{req: cases.TransitionRequest{To: cases.StateClosed, Outcome: &cases.Outcome{Result: cases.ResultNotSettled, Remedies: []string{"arbitration", "online litigation", "complaint"}}}}
	withdrawn        = step{req: cases.TransitionRequest{To: cases.StateClosed, Outcome: &cases.Outcome{Result: cases.ResultWithdrawn}}}
	toCourt          = step{req: cases.TransitionRequest{To: cases.StateConfirmationRequested, By: cases.ByCourt, Body: "Xuhui District People's Court"}}
	toArbitrationCf  = step{req: cases.TransitionRequest{To: cases.StateConfirmationRequested, By: cases.ByArbitration}}
	confirmed        = step{req: cases.TransitionRequest{To: cases.StateConfirmed}}
	refused          = step{req: cases.TransitionRequest{To: cases.StateConfirmationRefused, Reason: "terms unclear"}}
	toArbitration    = step{req: cases.TransitionRequest{To: cases.StateReferred, By: cases.ToArbitration, ArbitrationAgreement: true}}
	toLitigation     = step{req: cases.TransitionRequest{To: cases.StateReferred, By: cases.ToLitigation}}
)

// accepted returns the accept step assigning w's mediator.
func (w *world) accepted() step {
	return step{req: cases.TransitionRequest{To: cases.StateAccepted, MediatorID: w.mediator.ID}}
}

// testServicePaths walks a case through every path of the lifecycle
// diagram.
func testServicePaths(t *testing.T, s cases.Store) {
	w := newWorld(t, s, time.Date(2026, 3, 2, 10, 0, 0, 0, cst))
	passed := step{wait: 30 * 24 * time.Hour, req: cases.TransitionRequest{To: cases.StateDispatched, ReasonCode: cases.ReasonDeadlinePassed}}
	toCommunity := step{req: cases.TransitionRequest{To: cases.StateDispatched, InstitutionID: w.community.ID}}
	accept := w.accepted()
	for _, tt := range []struct {
		name  string
		odr   bool
		steps []step
		check func(*cases.Case) error
	}{
		{"reconciled", true, []step{toReconciliation, reconciled}, func(c *cases.Case) error {
			if c.Outcome.Result != cases.ResultReconciled || c.PendingDeadline() != nil || len(c.Deadlines) != 1 {
				return fmt.Errorf("outcome %+v deadlines %+v", c.Outcome, c.Deadlines)
			}
			return nil
		}},
		{"declined, mediated, settled, confirmed", true, []step{toReconciliation, declined, contacted, accept, mediating, settled, toCourt, confirmed}, func(c *cases.Case) error {
			if c.Confirmation == nil || !c.Confirmation.Confirmed || c.Confirmation.By != cases.ByCourt || c.MediatorID != w.mediator.ID {
				return fmt.Errorf("confirmation %+v mediator %s", c.Confirmation, c.MediatorID)
			}
			return nil
		}},
		{"reconciliation deadline passed", true, []step{toReconciliation, passed, contacted}, func(c *cases.Case) error {
			if len(c.Deadlines) != 2 || !c.Deadlines[0].Late || c.Deadlines[1].Late || c.Deadlines[1].MetAt == nil {
				return fmt.Errorf("deadlines %+v", c.Deadlines)
			}
			return nil
		}},
		{"dispatched elsewhere, rejected", false, []step{toCommunity, contacted, rejected}, func(c *cases.Case) error {
			if c.InstitutionID != w.community.ID || c.Rejection == nil || c.Rejection.Code != "respondent_refused" || c.Rejection.Label == "" || c.Rejection.Text == "" {
				return fmt.Errorf("institution %s rejection %+v", c.InstitutionID, c.Rejection)
			}
			return nil
		}},
		{"partially settled, confirmation refused", false, []step{toDispatched, contacted, accept, mediating, partially, toArbitrationCf, refused}, func(c *cases.Case) error {
			if c.Confirmation == nil || c.Confirmation.Confirmed || c.Confirmation.DecidedAt == nil || c.Confirmation.Note != "terms unclear" {
				return fmt.Errorf("confirmation %+v", c.Confirmation)
			}
			return nil
		}},
		{"not settled, referred to arbitration", false, []step{toDispatched, contacted, accept, mediating, notSettled, toArbitration}, func(c *cases.Case) error {
			if c.Referral == nil || c.Referral.To != cases.ToArbitration || len(c.Outcome.Remedies) != 3 {
				return fmt.Errorf("referral %+v outcome %+v", c.Referral, c.Outcome)
			}
			return nil
		}},
		{"not settled, referred to litigation", false, []step{toDispatched, contacted, accept, mediating, notSettled, toLitigation}, nil},
		{"withdrawn", false, []step{toDispatched, contacted, accept, mediating, withdrawn}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := w.open(t, tt.odr)
			c = w.walk(t, c, tt.steps)
			if tt.check != nil {
				if err := tt.check(c); err != nil {
					t.Fatal(err)
				}
			}
			rec, err := w.svc.Record(t.Context(), c.ID)
			if err != nil {
				t.Fatal(err)
			}
			sameJSON(t, "stored case", rec.Case, c)
			want := []string{"case.submitted"}
			for _, st := range tt.steps {
				want = append(want, "case."+string(st.req.To))
			}
			var got []string
			for _, e := range rec.Events {
				got = append(got, e.Type)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("events:\n got %v\nwant %v", got, want)
			}
			wantSeqs(t, rec.Events, len(want))
			// Each event names the state it left.
			for i, e := range rec.Events[1:] {
				var p struct {
					From cases.State `json:"from"`
				}
				if err := json.Unmarshal(e.Payload, &p); err != nil || p.From == "" {
					t.Fatalf("event %d payload %s", i+1, e.Payload)
				}
			}
			if c.Version != int64(len(want)) {
				t.Fatalf("version %d after %d writes", c.Version, len(want))
			}
		})
	}
}

// testServiceGuards checks that each guard refuses its step with a clear
// code, and that a refused step writes nothing.
func testServiceGuards(t *testing.T, s cases.Store) {
	ctx := t.Context()
	w := newWorld(t, s, time.Date(2026, 3, 2, 10, 0, 0, 0, cst))
	suspended := &cases.Institution{Code: "0104", Name: "Jing'an Committee", Level: cases.LevelDistrict, Status: cases.InstitutionSuspended}
	closedInst := &cases.Institution{Code: "0105", Name: "Old Committee", Level: cases.LevelDistrict, Status: cases.InstitutionClosed}
	otherMed := &cases.Mediator{InstitutionID: w.community.ID, Name: "Other"}
	for _, err := range []error{w.svc.PutInstitution(ctx, suspended), w.svc.PutInstitution(ctx, closedInst), w.svc.PutMediator(ctx, otherMed)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	inactive := &cases.Mediator{InstitutionID: w.district.ID, Name: "Retired", Status: cases.MediatorInactive}
	if err := w.svc.PutMediator(ctx, inactive); err != nil {
		t.Fatal(err)
	}
	accept := w.accepted()
	for _, tt := range []struct {
		name       string
		odr        bool
		before     []step
		wait       time.Duration
		req        cases.TransitionRequest
		code       string
		field      string
		msgHasFrom bool
	}{
		{"skip a state", false, nil, 0, cases.TransitionRequest{To: cases.StateAccepted}, cases.ETRANSITION, "", true},
		{"unknown state", false, nil, 0, cases.TransitionRequest{To: "archived"}, cases.EINVALID, "to", false},
		{"back to submitted", false, []step{toDispatched}, 0, cases.TransitionRequest{To: cases.StateSubmitted}, cases.ETRANSITION, "", true},
		{"final state", false, []step{toDispatched, contacted, rejected}, 0, cases.TransitionRequest{To: cases.StateAccepted}, cases.ETRANSITION, "", true},
		{"reconciliation, not an enterprise", false, nil, 0, toReconciliation.req, cases.ETRANSITION, "", false},
		{"dispatch to a suspended institution", false, nil, 0, cases.TransitionRequest{To: cases.StateDispatched, InstitutionID: suspended.ID}, cases.EINVALID, "institutionId", false},
		{"dispatch to a closed institution", false, nil, 0, cases.TransitionRequest{To: cases.StateDispatched, InstitutionID: closedInst.ID}, cases.EINVALID, "institutionId", false},
		{"dispatch to no institution", false, nil, 0, cases.TransitionRequest{To: cases.StateDispatched, InstitutionID: "inst_none"}, cases.EINVALID, "institutionId", false},
		{"dispatch with a reason", false, nil, 0, cases.TransitionRequest{To: cases.StateDispatched, ReasonCode: cases.ReasonDeclined}, cases.EINVALID, "reasonCode", false},
		{"leave reconciliation without a reason", true, []step{toReconciliation}, 0, toDispatched.req, cases.EINVALID, "reasonCode", false},
		{"deadline not passed", true, []step{toReconciliation}, 24 * time.Hour, cases.TransitionRequest{To: cases.StateDispatched, ReasonCode: cases.ReasonDeadlinePassed}, cases.ETRANSITION, "", false},
		{"reconciliation closes as reconciled", true, []step{toReconciliation}, 0, settled.req, cases.EINVALID, "outcome.result", false},
		{"accept before contact", false, []step{toDispatched}, 0, accept.req, cases.ETRANSITION, "", true},
		{"mediator of another institution", false, []step{toDispatched, contacted}, 0, cases.TransitionRequest{To: cases.StateAccepted, MediatorID: otherMed.ID}, cases.EINVALID, "mediatorId", false},
		{"inactive mediator", false, []step{toDispatched, contacted}, 0, cases.TransitionRequest{To: cases.StateAccepted, MediatorID: inactive.ID}, cases.EINVALID, "mediatorId", false},
		{"field of another step", false, []step{toDispatched, contacted}, 0, cases.TransitionRequest{To: cases.StateAccepted, By: cases.ByCourt}, cases.EINVALID, "by", false},
		{"reject without a reason code", false, []step{toDispatched, contacted}, 0, cases.TransitionRequest{To: cases.StateRejected, Reason: "no"}, cases.EINVALID, "reasonCode", false},
		{"reject with an unknown code", false, []step{toDispatched, contacted}, 0, cases.TransitionRequest{To: cases.StateRejected, ReasonCode: "bored", Reason: "no"}, cases.EINVALID, "reasonCode", false},
		{"reject without free text", false, []step{toDispatched, contacted}, 0, cases.TransitionRequest{To: cases.StateRejected, ReasonCode: "other", Reason: "  "}, cases.EINVALID, "reason", false},
		{"code of later rules", false, []step{toDispatched, contacted}, 0, cases.TransitionRequest{To: cases.StateRejected, ReasonCode: "duplicate_application", Reason: "filed twice"}, cases.EINVALID, "reasonCode", false},
		{"close without an outcome", false, []step{toDispatched, contacted, accept, mediating}, 0, cases.TransitionRequest{To: cases.StateClosed}, cases.EINVALID, "outcome", false},
		{"not settled without remedies", false, []step{toDispatched, contacted, accept, mediating}, 0, cases.TransitionRequest{To: cases.StateClosed, Outcome: &cases.Outcome{Result: cases.ResultNotSettled}}, cases.EINVALID, "outcome.remedies", false},
		{"settled without terms", false, []step{toDispatched, contacted, accept, mediating}, 0, cases.TransitionRequest{To: cases.StateClosed, Outcome: &cases.Outcome{Result: cases.ResultSettled}}, cases.EINVALID, "outcome.terms", false},
		{"mediated case closes as reconciled", false, []step{toDispatched, contacted, accept, mediating}, 0, reconciled.req, cases.EINVALID, "outcome.result", false},
		{"confirm a not-settled case", false, []step{toDispatched, contacted, accept, mediating, notSettled}, 0, toCourt.req, cases.ETRANSITION, "", false},
		{"confirm a withdrawn case", false, []step{toDispatched, contacted, accept, mediating, withdrawn}, 0, toCourt.req, cases.ETRANSITION, "", false},
		{"confirmation by nobody", false, []step{toDispatched, contacted, accept, mediating, settled}, 0, cases.TransitionRequest{To: cases.StateConfirmationRequested, By: "police"}, cases.EINVALID, "by", false},
		{"confirmation after 30 days", false, []step{toDispatched, contacted, accept, mediating, settled}, 32 * 24 * time.Hour, toCourt.req, cases.ETRANSITION, "", false},
		{"refuse without a reason", false, []step{toDispatched, contacted, accept, mediating, settled, toCourt}, 0, cases.TransitionRequest{To: cases.StateConfirmationRefused}, cases.EINVALID, "reason", false},
		{"refer a settled case", false, []step{toDispatched, contacted, accept, mediating, settled}, 0, toLitigation.req, cases.ETRANSITION, "", false},
		{"arbitration without an agreement", false, []step{toDispatched, contacted, accept, mediating, notSettled}, 0, cases.TransitionRequest{To: cases.StateReferred, By: cases.ToArbitration}, cases.EINVALID, "arbitrationAgreement", false},
		{"refer nowhere", false, []step{toDispatched, contacted, accept, mediating, notSettled}, 0, cases.TransitionRequest{To: cases.StateReferred, By: "mayor"}, cases.EINVALID, "by", false},
		{"stale version", false, nil, 0, cases.TransitionRequest{To: cases.StateDispatched, Version: 7}, cases.ECONFLICT, "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := w.walk(t, w.open(t, tt.odr), tt.before)
			w.clock.Add(tt.wait)
			before, err := w.svc.Record(ctx, c.ID)
			if err != nil {
				t.Fatal(err)
			}
			_, err = w.svc.Apply(ctx, c.ID, tt.req)
			wantCode(t, err, tt.code)
			if got := cases.ErrorField(err); got != tt.field {
				t.Errorf("field = %q, want %q (%v)", got, tt.field, err)
			}
			if tt.msgHasFrom && !contains(cases.ErrorMessage(err), string(c.State)) {
				t.Errorf("refusal %q does not name the current state %s", cases.ErrorMessage(err), c.State)
			}
			after, err := w.svc.Record(ctx, c.ID)
			if err != nil {
				t.Fatal(err)
			}
			sameJSON(t, "case after a refused step", after.Case, before.Case)
			if len(after.Events) != len(before.Events) {
				t.Fatalf("a refused step appended %d events", len(after.Events)-len(before.Events))
			}
		})
	}
}

// testServiceDeadlines checks working-day deadlines, the overdue listing
// and the rule set a case keeps.
func testServiceDeadlines(t *testing.T, s cases.Store) {
	ctx := t.Context()
	// Tuesday 14 April 2026, the last day of the old rules.
	w := newWorld(t, s, time.Date(2026, 4, 14, 9, 0, 0, 0, cst))
	old := w.open(t, true)
	w.clock.Set(time.Date(2026, 4, 15, 9, 0, 0, 0, cst))
	cur := w.open(t, true)
	plain := w.open(t, false)
	if old.RuleSetID != "consumer-2024" || cur.RuleSetID != "consumer-2026-04" {
		t.Fatalf("rule sets: %s, %s", old.RuleSetID, cur.RuleSetID)
	}
	// Both go to reconciliation on 15 April: 10 working days under the old
	// rules, 7 under the new ones (1 to 5 May are holidays).
	for _, tt := range []struct {
		c   *cases.Case
		due string
	}{{old, "2026-04-29"}, {cur, "2026-04-24"}} {
		got := w.walk(t, tt.c, []step{toReconciliation})
		d := got.PendingDeadline()
		if d == nil || d.Kind != cases.DeadlineReconciliation || d.DueDate != tt.due || d.Approximate || d.RuleSetID != got.RuleSetID {
			t.Fatalf("%s: deadline %+v, want due %s", got.RuleSetID, d, tt.due)
		}
	}

	// Dispatched on Thursday 30 April 2026, the respondent must be
	// contacted within 3 working days: 6, 7 and 8 May (1 to 5 May are off;
	// the make-up Saturday 9 May comes after).
	w.clock.Set(time.Date(2026, 4, 30, 16, 0, 0, 0, cst))
	d := w.walk(t, plain, []step{toDispatched})
	dl := d.PendingDeadline()
	wantDue := time.Date(2026, 5, 9, 0, 0, 0, 0, cst)
	if dl == nil || dl.Kind != cases.DeadlineRespondentContact || dl.DueDate != "2026-05-08" || !dl.DueAt.Equal(wantDue) || dl.WorkingDays != 3 {
		t.Fatalf("respondent deadline %+v", dl)
	}
	overdue := func() []string {
		t.Helper()
		page, err := w.svc.ListCases(ctx, cases.CaseQuery{Overdue: true})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, c := range page.Items {
			ids = append(ids, c.ID)
		}
		slices.Sort(ids)
		return ids
	}
	// Just before the end of 8 May, the old case's reconciliation (due 29
	// April) is overdue, the dispatched one is not.
	w.clock.Set(wantDue.Add(-time.Minute))
	if got, want := overdue(), sortedIDs(old.ID, cur.ID); !slices.Equal(got, want) {
		t.Fatalf("overdue on 8 May: %v, want %v", got, want)
	}
	w.clock.Set(wantDue)
	if got, want := overdue(), sortedIDs(old.ID, cur.ID, plain.ID); !slices.Equal(got, want) {
		t.Fatalf("overdue on 9 May: %v, want %v", got, want)
	}
	// Contacting late meets the deadline, marked late.
	d = w.walk(t, d, []step{contacted})
	if len(d.Deadlines) != 1 || !d.Deadlines[0].Late || d.Deadlines[0].MetAt == nil || d.PendingDeadline() != nil || d.Overdue(w.clock.Now()) {
		t.Fatalf("deadline after a late contact: %+v", d.Deadlines)
	}
	if got, want := overdue(), sortedIDs(old.ID, cur.ID); !slices.Equal(got, want) {
		t.Fatalf("overdue after contact: %v, want %v", got, want)
	}
	// The reason codes of a case are those of its rule set.
	for _, tt := range []struct {
		c    *cases.Case
		code string
	}{{old, cases.EINVALID}, {cur, ""}} {
		c := w.walk(t, tt.c, []step{declined, contacted})
		_, err := w.svc.Apply(ctx, c.ID, cases.TransitionRequest{To: cases.StateRejected, ReasonCode: "duplicate_application", Reason: "filed twice"})
		wantCode(t, err, tt.code)
	}
}

func sortedIDs(ids ...string) []string {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	return ids
}

// testServiceRace runs the same transition from two goroutines at once,
// several times: exactly one wins each time.
func testServiceRace(t *testing.T, s cases.Store) {
	ctx := t.Context()
	w := newWorld(t, s, time.Date(2026, 3, 2, 10, 0, 0, 0, cst))
	for round := range 5 {
		c := w.open(t, false)
		start := make(chan struct{})
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for i := range errs {
			wg.Go(func() {
				<-start
				req := toDispatched.req
				if round%2 == 1 {
					req.Version = c.Version // both saw the same version
				}
				_, errs[i] = w.svc.Apply(ctx, c.ID, req)
			})
		}
		close(start)
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch cases.ErrorCode(err) {
			case "":
				won++
			case cases.ETRANSITION, cases.ECONFLICT:
			default:
				t.Fatalf("round %d: %v", round, err)
			}
		}
		if won != 1 {
			t.Fatalf("round %d: %d goroutines won (%v)", round, won, errs)
		}
		rec, err := w.svc.Record(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if rec.State != cases.StateDispatched || rec.Version != 2 || len(rec.Events) != 2 || len(rec.Deadlines) != 1 {
			t.Fatalf("round %d: case %s v%d, %d events, %d deadlines", round, rec.State, rec.Version, len(rec.Events), len(rec.Deadlines))
		}
	}
}

func hash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// testServiceIdempotentOpen checks OpenCaseOnce: a repeat returns the
// first answer and creates nothing; another body with the same key is
// refused; racing repeats create one case.
func testServiceIdempotentOpen(t *testing.T, s cases.Store) {
	ctx := t.Context()
	w := newWorld(t, s, time.Date(2026, 3, 2, 10, 0, 0, 0, cst))
	n := newCaseInput(w.district.ID, "")
	n.Channel = cases.ChannelWindow
	calls := 0
	respond := func(c *cases.Case, created bool) (int, []byte, error) {
		calls++
		b, err := json.Marshal(map[string]any{"id": c.ID, "number": c.Number, "created": created})
		return 201, b, err
	}
	key := cases.IdempotencyKey{Scope: "operator:POST /api/v1/cases", Key: "k-1", RequestHash: hash("body 1")}
	first, err := w.svc.OpenCaseOnce(ctx, n, key, respond)
	if err != nil || !first.Created || first.Replayed || first.Status != 201 {
		t.Fatalf("first = %+v, %v", first, err)
	}
	again, err := w.svc.OpenCaseOnce(ctx, n, key, respond)
	if err != nil || !again.Replayed || again.Created || again.CaseID != first.CaseID || string(again.Body) != string(first.Body) || again.Status != 201 {
		t.Fatalf("repeat = %+v, %v", again, err)
	}
	if calls != 1 {
		t.Fatalf("respond called %d times", calls)
	}
	other := key
	other.RequestHash = hash("body 2")
	_, err = w.svc.OpenCaseOnce(ctx, n, other, respond)
	wantCode(t, err, cases.EIDEMPOTENCY)
	bad := key
	bad.Key = "has space"
	_, err = w.svc.OpenCaseOnce(ctx, n, bad, respond)
	wantCode(t, err, cases.EINVALID)
	// An invalid request stores nothing under its key.
	invalid := n
	invalid.Applicant.Name = ""
	k2 := cases.IdempotencyKey{Scope: key.Scope, Key: "k-2", RequestHash: hash("invalid")}
	_, err = w.svc.OpenCaseOnce(ctx, invalid, k2, respond)
	wantCode(t, err, cases.EINVALID)
	k2.RequestHash = hash("valid")
	if a, err := w.svc.OpenCaseOnce(ctx, n, k2, respond); err != nil || !a.Created {
		t.Fatalf("key after an invalid request: %+v, %v", a, err)
	}

	// Racing requests with one key: one case, the same answer for all.
	k3 := cases.IdempotencyKey{Scope: key.Scope, Key: "k-3", RequestHash: hash("race")}
	answers := make([]*cases.Answer, 4)
	errs := make([]error, 4)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i := range answers {
		wg.Go(func() {
			answers[i], errs[i] = w.svc.OpenCaseOnce(ctx, n, k3, func(c *cases.Case, created bool) (int, []byte, error) {
				mu.Lock()
				defer mu.Unlock()
				return respond(c, created)
			})
		})
	}
	wg.Wait()
	created := 0
	for i, a := range answers {
		if errs[i] != nil {
			t.Fatalf("racing request %d: %v", i, errs[i])
		}
		if a.Created {
			created++
		}
		if a.CaseID != answers[0].CaseID || string(a.Body) != string(answers[0].Body) {
			t.Fatalf("racing answers differ: %+v / %+v", a, answers[0])
		}
	}
	if created != 1 {
		t.Fatalf("%d racing requests created a case", created)
	}
	page, err := w.svc.ListCases(ctx, cases.CaseQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 3 {
		t.Fatalf("%d cases exist, want 3", len(page.Items))
	}
}

// testServiceListing pages through a listing with cursors.
func testServiceListing(t *testing.T, s cases.Store) {
	ctx := t.Context()
	w := newWorld(t, s, time.Date(2026, 3, 2, 10, 0, 0, 0, cst))
	var ids []string
	for i := range 7 {
		if i == 4 {
			w.clock.Set(time.Date(2026, 3, 3, 23, 59, 0, 0, cst))
		}
		c := w.open(t, false)
		ids = append(ids, c.ID)
		if i%2 == 0 {
			w.walk(t, c, []step{toDispatched})
		}
	}
	all := func(q cases.CaseQuery) []string {
		t.Helper()
		var got []string
		for range 10 {
			page, err := w.svc.ListCases(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Items) > q.Limit && q.Limit != 0 {
				t.Fatalf("page of %d, limit %d", len(page.Items), q.Limit)
			}
			for _, c := range page.Items {
				got = append(got, c.ID)
			}
			if page.NextCursor == "" {
				return got
			}
			q.Cursor = page.NextCursor
		}
		t.Fatal("the listing does not end")
		return nil
	}
	if got := all(cases.CaseQuery{Limit: 2}); !slices.Equal(got, ids) {
		t.Fatalf("pages of 2: %v, want %v", got, ids)
	}
	if got := all(cases.CaseQuery{Limit: 3, State: cases.StateDispatched}); !slices.Equal(got, []string{ids[0], ids[2], ids[4], ids[6]}) {
		t.Fatalf("dispatched: %v", got)
	}
	if got := all(cases.CaseQuery{CreatedFrom: "2026-03-03", CreatedTo: "2026-03-03"}); !slices.Equal(got, ids[4:]) {
		t.Fatalf("created on 3 March (China time): %v, want %v", got, ids[4:])
	}
	if got := all(cases.CaseQuery{CreatedTo: "2026-03-02", InstitutionID: w.district.ID, Category: "e-commerce"}); !slices.Equal(got, ids[:4]) {
		t.Fatalf("created by 2 March: %v", got)
	}
	first, err := w.svc.ListCases(ctx, cases.CaseQuery{Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		q     cases.CaseQuery
		field string
	}{
		{cases.CaseQuery{Cursor: first.NextCursor, State: cases.StateDispatched}, "cursor"},
		{cases.CaseQuery{Cursor: "not-a-cursor"}, "cursor"},
		{cases.CaseQuery{State: "lost"}, "state"},
		{cases.CaseQuery{Limit: -1}, "limit"},
		{cases.CaseQuery{Limit: cases.MaxPageSize + 1}, "limit"},
		{cases.CaseQuery{CreatedFrom: "2026-02-30"}, "createdFrom"},
		{cases.CaseQuery{CreatedTo: "yesterday"}, "createdTo"},
		{cases.CaseQuery{CreatedFrom: "2026-03-04", CreatedTo: "2026-03-03"}, "createdTo"},
	} {
		_, err := w.svc.ListCases(ctx, tt.q)
		wantCode(t, err, cases.EINVALID)
		if f := cases.ErrorField(err); f != tt.field {
			t.Errorf("%+v: field %q, want %q", tt.q, f, tt.field)
		}
	}
}

// testServiceDirectory checks the rules of institutions, mediators and
// enterprises.
func testServiceDirectory(t *testing.T, s cases.Store) {
	ctx := t.Context()
	w := newWorld(t, s, time.Date(2026, 3, 2, 10, 0, 0, 0, cst))
	for _, tt := range []struct {
		name  string
		inst  cases.Institution
		field string
	}{
		{"no name", cases.Institution{Code: "1", Level: cases.LevelCity}, "name"},
		{"bad code", cases.Institution{Name: "X", Code: "03-10", Level: cases.LevelCity}, "code"},
		{"bad level", cases.Institution{Name: "X", Code: "1", Level: "village"}, "level"},
		{"bad status", cases.Institution{Name: "X", Code: "1", Level: cases.LevelCity, Status: "open"}, "status"},
		{"unknown parent", cases.Institution{Name: "X", Code: "1", Level: cases.LevelCity, ParentID: "inst_none"}, "parentId"},
		{"parent of a lower level", cases.Institution{Name: "X", Code: "1", Level: cases.LevelCity, ParentID: w.district.ID}, "parentId"},
		{"parent of the same level", cases.Institution{Name: "X", Code: "1", Level: cases.LevelDistrict, ParentID: w.district.ID}, "parentId"},
	} {
		inst := tt.inst
		err := w.svc.PutInstitution(ctx, &inst)
		wantCode(t, err, cases.EINVALID)
		if f := cases.ErrorField(err); f != tt.field {
			t.Errorf("%s: field %q, want %q", tt.name, f, tt.field)
		}
	}
	list, err := w.svc.Institutions(ctx)
	if err != nil || len(list) != 3 {
		t.Fatalf("institutions: %d, %v", len(list), err)
	}
	// A suspended institution takes no new case; a mediator stays with
	// its institution.
	w.district.Status = cases.InstitutionSuspended
	if err := w.svc.PutInstitution(ctx, w.district); err != nil {
		t.Fatal(err)
	}
	_, _, err = w.svc.OpenCase(ctx, newCaseInput(w.district.ID, ""))
	wantCode(t, err, cases.EINVALID)
	moved := *w.mediator
	moved.InstitutionID = w.community.ID
	wantCode(t, w.svc.PutMediator(ctx, &moved), cases.EINVALID)
	wantCode(t, w.svc.PutMediator(ctx, &cases.Mediator{InstitutionID: "inst_none", Name: "X"}), cases.EINVALID)
	meds, err := w.svc.Mediators(ctx, w.district.ID)
	if err != nil || len(meds) != 1 || meds[0].ID != w.mediator.ID {
		t.Fatalf("mediators: %+v, %v", meds, err)
	}
	_, err = w.svc.Mediators(ctx, "inst_none")
	wantCode(t, err, cases.ENOTFOUND)
	wantCode(t, w.svc.PutEnterprise(ctx, &cases.Enterprise{CreditCode: "123", Name: "X"}), cases.EINVALID)

	// A withdrawn enterprise's complaints are dispatched, not reconciled.
	w.district.Status = cases.InstitutionActive
	if err := w.svc.PutInstitution(ctx, w.district); err != nil {
		t.Fatal(err)
	}
	c := w.open(t, true)
	if err := w.svc.PutEnterprise(ctx, &cases.Enterprise{CreditCode: enterpriseCode, Name: "Shop Ltd", Status: cases.EnterpriseWithdrawn}); err != nil {
		t.Fatal(err)
	}
	_, err = w.svc.Apply(ctx, c.ID, toReconciliation.req)
	wantCode(t, err, cases.ETRANSITION)
}

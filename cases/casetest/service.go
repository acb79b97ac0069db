package casetest

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/concord-odr/concord/cases"
)

// clock is a fake time source that moves one second and one nanosecond
// on every reading.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(time.Second + time.Nanosecond)
	return c.now
}

// newService returns a Service on s with a fake clock and an active
// institution with code 0310.
func newService(t *testing.T, s cases.Store) (*cases.Service, *cases.Institution) {
	t.Helper()
	svc := cases.NewService(cases.ServiceParams{Store: s, Now: (&clock{now: base}).Now})
	inst := &cases.Institution{Code: "0310", Name: "Xuhui District People's Mediation Committee", Level: "district"}
	if err := svc.PutInstitution(t.Context(), inst); err != nil {
		t.Fatalf("PutInstitution: %v", err)
	}
	if inst.ID == "" || inst.Status != "active" {
		t.Fatalf("PutInstitution left id %q status %q", inst.ID, inst.Status)
	}
	return svc, inst
}

func newCaseInput(instID, ref string) cases.NewCase {
	return cases.NewCase{
		InstitutionID: instID,
		Category:      "e-commerce",
		Channel:       "12315",
		ExternalRef:   ref,
		Applicant:     cases.Party{Name: "李华", Kind: "person", Phone: "+86 138 0000 0000"},
		Respondent:    cases.Party{Name: "Shop Ltd", Kind: "organisation"},
		Claims:        "refund of a faulty kettle",
		AmountCents:   12990,
		Actor:         "intake",
	}
}

// mediatingCase opens a case, moves it to accepted and schedules a
// session with a mediator, the applicant and the respondent.
func mediatingCase(t *testing.T, svc *cases.Service, instID, ref string) (*cases.Case, *cases.Session) {
	t.Helper()
	ctx := t.Context()
	c, created, err := svc.OpenCase(ctx, newCaseInput(instID, ref))
	if err != nil || !created {
		t.Fatalf("OpenCase = %v, created %v", err, created)
	}
	for _, to := range []cases.State{cases.StateDispatched, cases.StateRespondentContacted, cases.StateAccepted} {
		if c, err = svc.Transition(ctx, c.ID, to, "admin", map[string]string{"note": "ok"}); err != nil {
			t.Fatalf("Transition to %s: %v", to, err)
		}
	}
	sess, err := svc.ScheduleSession(ctx, c.ID, "admin", []cases.Participant{
		{Name: "王调解员", Role: cases.RoleMediator, Side: cases.SideNeutral},
		{Name: "李华", Role: cases.RoleParty, Side: cases.SideApplicant},
		{Name: "Shop agent", Role: cases.RoleParty, Side: cases.SideRespondent},
	})
	if err != nil {
		t.Fatalf("ScheduleSession: %v", err)
	}
	return c, sess
}

func testServiceLifecycle(t *testing.T, s cases.Store) {
	ctx := t.Context()
	svc, inst := newService(t, s)

	// OpenCase is idempotent by (channel, external reference).
	c, created, err := svc.OpenCase(ctx, newCaseInput(inst.ID, "12315-2025-0001"))
	if err != nil || !created {
		t.Fatalf("OpenCase = %v, created %v", err, created)
	}
	if c.State != cases.StateSubmitted || c.Number != "2025-0310-000001" || c.Version != 1 {
		t.Fatalf("new case: state %s number %s v%d", c.State, c.Number, c.Version)
	}
	again, created, err := svc.OpenCase(ctx, newCaseInput(inst.ID, "12315-2025-0001"))
	if err != nil || created {
		t.Fatalf("second OpenCase = %v, created %v", err, created)
	}
	sameJSON(t, "case opened twice", again, c)
	other, _, err := svc.OpenCase(ctx, newCaseInput(inst.ID, ""))
	if err != nil || other.Number != "2025-0310-000002" {
		t.Fatalf("another case: %v, number %v", err, other)
	}
	_, _, err = svc.OpenCase(ctx, newCaseInput("inst_missing", ""))
	wantCode(t, err, cases.EINVALID)

	// The lifecycle table refuses a skipped state, naming the current one.
	_, err = svc.Transition(ctx, c.ID, cases.StateAccepted, "admin", nil)
	wantCode(t, err, cases.ETRANSITION)
	if msg := cases.ErrorMessage(err); !contains(msg, string(cases.StateSubmitted)) {
		t.Errorf("refusal %q does not name the current state", msg)
	}
	_, err = svc.Transition(ctx, "case_missing", cases.StateDispatched, "admin", nil)
	wantCode(t, err, cases.ENOTFOUND)

	for _, to := range []cases.State{cases.StateDispatched, cases.StateRespondentContacted, cases.StateAccepted} {
		if c, err = svc.Transition(ctx, c.ID, to, "admin", nil); err != nil {
			t.Fatalf("Transition to %s: %v", to, err)
		}
	}
	participants := []cases.Participant{
		{Name: "王调解员", Role: cases.RoleMediator, Side: cases.SideNeutral},
		{Name: "李华", Role: cases.RoleParty, Side: cases.SideApplicant},
		{Name: "Shop agent", Role: cases.RoleParty, Side: cases.SideRespondent},
	}
	sess, err := svc.ScheduleSession(ctx, c.ID, "admin", participants)
	if err != nil {
		t.Fatalf("ScheduleSession: %v", err)
	}
	if sess.Status != cases.SessionScheduled || sess.Version != 1 || len(sess.Participants) != 3 {
		t.Fatalf("scheduled session: %+v", sess)
	}
	med, app, resp := sess.Participants[0], sess.Participants[1], sess.Participants[2]

	at := base.Add(time.Hour + 42)
	for _, step := range []struct {
		join bool
		p    cases.Participant
		at   time.Time
	}{
		{true, app, at},
		{true, med, at.Add(time.Minute)},
		{false, app, at.Add(20 * time.Minute)},
	} {
		record := svc.RecordLeave
		if step.join {
			record = svc.RecordJoin
		}
		if err := record(ctx, sess.ID, step.p.ID, step.at); err != nil {
			t.Fatalf("record join=%v of %s: %v", step.join, step.p.Name, err)
		}
	}
	live, err := svc.Session(ctx, sess.ID)
	if err != nil {
		t.Fatal(err)
	}
	if live.Status != cases.SessionLive || live.StartedAt == nil || !live.StartedAt.Equal(micro(at)) {
		t.Fatalf("live session: status %s started %v", live.Status, live.StartedAt)
	}
	if len(live.Attendance) != 2 || live.Attendance[0].LeftAt == nil || !live.Attendance[0].LeftAt.Equal(micro(at.Add(20*time.Minute))) ||
		live.Attendance[1].LeftAt != nil {
		t.Fatalf("attendance: %+v", live.Attendance)
	}
	err = svc.RecordJoin(ctx, sess.ID, "p_stranger", at)
	wantCode(t, err, cases.ENOTFOUND)

	// Only the session's mediator may end it; anyone else is told it
	// does not exist.
	settled := cases.Outcome{Result: cases.ResultSettled, Terms: "The shop refunds 129.90 yuan within 7 days."}
	for _, actor := range []string{app.ID, resp.ID, "p_stranger"} {
		_, _, err := svc.EndSession(ctx, sess.ID, actor, settled)
		wantCode(t, err, cases.ENOTFOUND)
	}
	closed, ended, err := svc.EndSession(ctx, sess.ID, med.ID, settled)
	if err != nil {
		t.Fatalf("EndSession: %v", err)
	}
	if closed.State != cases.StateClosed || closed.Outcome == nil || closed.Outcome.Result != cases.ResultSettled ||
		closed.Outcome.SessionID != sess.ID || closed.Outcome.RecordedBy != med.ID || closed.Outcome.Terms != settled.Terms {
		t.Fatalf("closed case: %s %+v", closed.State, closed.Outcome)
	}
	if ended.Status != cases.SessionEnded || ended.EndedAt == nil {
		t.Fatalf("ended session: %+v", ended)
	}
	for _, a := range ended.Attendance {
		if a.LeftAt == nil {
			t.Fatalf("attendance of %s left open after the session ended", a.ParticipantID)
		}
	}

	rec, err := svc.Record(ctx, c.ID)
	if err != nil {
		t.Fatalf("Record: %v", err)
	}
	sameJSON(t, "recorded case", rec.Case, closed)
	sameJSON(t, "recorded sessions", rec.Sessions, []*cases.Session{ended})
	var types []string
	for _, e := range rec.Events {
		types = append(types, e.Type)
	}
	wantTypes := []string{
		"case.submitted", "case.dispatched", "case.respondent_contacted", "case.accepted", "case.mediating", "session.scheduled",
		"session.started", "session.joined", "session.joined", "session.left",
		"session.ended", "case.closed",
	}
	if !slices.Equal(types, wantTypes) {
		t.Fatalf("events:\n got %v\nwant %v", types, wantTypes)
	}
	wantSeqs(t, rec.Events, len(wantTypes))

	// A closed case and an ended session refuse further changes.
	_, err = svc.Transition(ctx, c.ID, cases.StateMediating, "admin", nil)
	wantCode(t, err, cases.ETRANSITION)
	wantCode(t, svc.RecordJoin(ctx, sess.ID, app.ID, at), cases.ETRANSITION)
	// Ending it again with the same outcome is a retry: the same answer,
	// nothing recorded; another outcome is refused.
	retried, _, err := svc.EndSession(ctx, sess.ID, med.ID, settled)
	if err != nil || retried.Version != closed.Version {
		t.Fatalf("EndSession retried: %v (case %+v, want v%d)", err, retried, closed.Version)
	}
	if n := len(getEvents(t, s, c.ID)); n != len(wantTypes) {
		t.Fatalf("a retried EndSession added events: %d, want %d", n, len(wantTypes))
	}
	_, _, err = svc.EndSession(ctx, sess.ID, med.ID, cases.Outcome{Result: cases.ResultSettled, Terms: "other terms"})
	wantCode(t, err, cases.ETRANSITION)
	_, err = svc.ScheduleSession(ctx, c.ID, "admin", participants)
	wantCode(t, err, cases.ETRANSITION)
}

func testServiceAdjourned(t *testing.T, s cases.Store) {
	ctx := t.Context()
	svc, inst := newService(t, s)
	c, sess := mediatingCase(t, svc, inst.ID, "")
	med := sess.Participants[0]

	// A not-settled outcome needs remedies; an adjourned one keeps the
	// case mediating.
	_, _, err := svc.EndSession(ctx, sess.ID, med.ID, cases.Outcome{Result: cases.ResultNotSettled})
	wantCode(t, err, cases.EINVALID)
	got, ended, err := svc.EndSession(ctx, sess.ID, med.ID, cases.Outcome{Result: cases.ResultAdjourned})
	if err != nil {
		t.Fatalf("EndSession adjourned: %v", err)
	}
	if got.State != cases.StateMediating || got.Outcome != nil || ended.Status != cases.SessionEnded {
		t.Fatalf("after adjournment: case %s outcome %+v, session %s", got.State, got.Outcome, ended.Status)
	}

	// The next session ends with a not-settled outcome and its remedies.
	next, err := svc.ScheduleSession(ctx, c.ID, "admin", []cases.Participant{
		{ID: med.ID, Name: med.Name, Role: cases.RoleMediator, Side: cases.SideNeutral},
	})
	if err != nil {
		t.Fatalf("second ScheduleSession: %v", err)
	}
	closed, _, err := svc.EndSession(ctx, next.ID, med.ID, cases.Outcome{
		Result: cases.ResultNotSettled, Remedies: []string{"arbitration", "online litigation"},
	})
	if err != nil {
		t.Fatalf("EndSession not settled: %v", err)
	}
	if closed.State != cases.StateClosed || closed.Outcome.Result != cases.ResultNotSettled || len(closed.Outcome.Remedies) != 2 {
		t.Fatalf("closed case: %s %+v", closed.State, closed.Outcome)
	}
	rec, err := svc.Record(ctx, c.ID)
	if err != nil {
		t.Fatalf("Record: %v", err)
	}
	if len(rec.Sessions) != 2 || rec.Sessions[0].ID != sess.ID || rec.Sessions[1].ID != next.ID {
		t.Fatalf("sessions not listed oldest first: %+v", rec.Sessions)
	}
	sameJSON(t, "recorded case", rec.Case, closed)
	var types []string
	for _, e := range rec.Events {
		types = append(types, e.Type)
	}
	wantTypes := []string{
		"case.submitted", "case.dispatched", "case.respondent_contacted", "case.accepted", "case.mediating",
		"session.scheduled", "session.ended", "case.adjourned",
		"session.scheduled", "session.ended", "case.closed",
	}
	if !slices.Equal(types, wantTypes) {
		t.Fatalf("events:\n got %v\nwant %v", types, wantTypes)
	}
	wantSeqs(t, rec.Events, len(rec.Events))
}

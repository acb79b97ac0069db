package cases_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/concord-odr/concord/cases"
	"github.com/concord-odr/concord/cases/sqlite"
)

func TestCanTransition(t *testing.T) {
	allowed := map[[2]cases.State]bool{
		{cases.StateSubmitted, cases.StateReconciliation}:                  true,
		{cases.StateSubmitted, cases.StateDispatched}:                      true,
		{cases.StateReconciliation, cases.StateClosed}:                     true,
		{cases.StateReconciliation, cases.StateDispatched}:                 true,
		{cases.StateDispatched, cases.StateRespondentContacted}:            true,
		{cases.StateRespondentContacted, cases.StateAccepted}:              true,
		{cases.StateRespondentContacted, cases.StateRejected}:              true,
		{cases.StateAccepted, cases.StateMediating}:                        true,
		{cases.StateMediating, cases.StateClosed}:                          true,
		{cases.StateClosed, cases.StateConfirmationRequested}:              true,
		{cases.StateClosed, cases.StateReferred}:                           true,
		{cases.StateConfirmationRequested, cases.StateConfirmed}:           true,
		{cases.StateConfirmationRequested, cases.StateConfirmationRefused}: true,
	}
	states := cases.States()
	for _, from := range states {
		for _, to := range states {
			want := allowed[[2]cases.State{from, to}]
			if got := cases.CanTransition(from, to); got != want {
				t.Errorf("CanTransition(%s, %s) = %v, want %v", from, to, got, want)
			}
		}
	}
	if cases.CanTransition("unknown", cases.StateDispatched) || cases.CanTransition(cases.StateSubmitted, "unknown") {
		t.Error("an unknown state may transition")
	}
}

func TestResult(t *testing.T) {
	for _, tt := range []struct {
		r            cases.Result
		valid, final bool
	}{
		{cases.ResultSettled, true, true},
		{cases.ResultPartiallySettled, true, true},
		{cases.ResultNotSettled, true, true},
		{cases.ResultWithdrawn, true, true},
		{cases.ResultAdjourned, true, false},
		{"", false, false},
		{"won", false, false},
	} {
		if tt.r.Valid() != tt.valid || tt.r.Final() != tt.final {
			t.Errorf("%q: Valid %v Final %v, want %v %v", tt.r, tt.r.Valid(), tt.r.Final(), tt.valid, tt.final)
		}
	}
}

// newService returns a Service on a new SQLite store and an institution.
func newService(t *testing.T) (*cases.Service, *cases.Institution) {
	t.Helper()
	ctx := t.Context()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "concord.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC)
	svc := cases.NewService(cases.ServiceParams{Store: store, Now: func() time.Time { return now }})
	inst := &cases.Institution{Code: "0101", Name: "Huangpu Mediation Centre", Level: "district"}
	if err := svc.PutInstitution(ctx, inst); err != nil {
		t.Fatal(err)
	}
	return svc, inst
}

func validCase(instID string) cases.NewCase {
	return cases.NewCase{
		InstitutionID: instID,
		Category:      "online-payment",
		Channel:       "online",
		Applicant:     cases.Party{Name: "Zhang San", Kind: "person"},
		Respondent:    cases.Party{Name: "Pay Co", Kind: "organisation"},
		AmountCents:   5000,
	}
}

func TestOpenCaseValidation(t *testing.T) {
	svc, inst := newService(t)
	for _, tt := range []struct {
		name   string
		change func(*cases.NewCase)
		code   string
	}{
		{"valid", func(*cases.NewCase) {}, ""},
		{"no applicant", func(n *cases.NewCase) { n.Applicant.Name = " " }, cases.EINVALID},
		{"no respondent", func(n *cases.NewCase) { n.Respondent.Name = "" }, cases.EINVALID},
		{"no category", func(n *cases.NewCase) { n.Category = "" }, cases.EINVALID},
		{"no channel", func(n *cases.NewCase) { n.Channel = "" }, cases.EINVALID},
		{"long reference", func(n *cases.NewCase) { n.ExternalRef = strings.Repeat("x", 129) }, cases.EINVALID},
		{"bad UTF-8", func(n *cases.NewCase) { n.Claims = "\xff" }, cases.EINVALID},
		{"negative amount", func(n *cases.NewCase) { n.AmountCents = -1 }, cases.EINVALID},
		{"unknown institution", func(n *cases.NewCase) { n.InstitutionID = "inst_nope" }, cases.EINVALID},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n := validCase(inst.ID)
			tt.change(&n)
			_, _, err := svc.OpenCase(t.Context(), n)
			if got := cases.ErrorCode(err); got != tt.code {
				t.Fatalf("OpenCase: %v, want code %q", err, tt.code)
			}
		})
	}
	if err := svc.PutInstitution(t.Context(), &cases.Institution{Name: " "}); cases.ErrorCode(err) != cases.EINVALID {
		t.Errorf("PutInstitution without a name: %v", err)
	}
}

func TestScheduleSessionValidation(t *testing.T) {
	svc, inst := newService(t)
	ctx := t.Context()
	c, _, err := svc.OpenCase(ctx, validCase(inst.ID))
	if err != nil {
		t.Fatal(err)
	}
	mediator := cases.Participant{Name: "Mediator", Role: cases.RoleMediator, Side: cases.SideNeutral}
	party := cases.Participant{Name: "Zhang San", Role: cases.RoleParty, Side: cases.SideApplicant}
	for _, tt := range []struct {
		name   string
		caseID string
		ps     []cases.Participant
		code   string
	}{
		{"no participants", c.ID, nil, cases.EINVALID},
		{"no mediator", c.ID, []cases.Participant{party}, cases.EINVALID},
		{"unknown role", c.ID, []cases.Participant{mediator, {Name: "X", Role: "judge", Side: cases.SideNeutral}}, cases.EINVALID},
		{"unknown side", c.ID, []cases.Participant{mediator, {Name: "X", Role: cases.RoleParty, Side: "left"}}, cases.EINVALID},
		{"no name", c.ID, []cases.Participant{mediator, {Role: cases.RoleParty, Side: cases.SideApplicant}}, cases.EINVALID},
		{"unknown case", "case_nope", []cases.Participant{mediator}, cases.ENOTFOUND},
		{"case not accepted", c.ID, []cases.Participant{mediator, party}, cases.ETRANSITION},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := svc.ScheduleSession(ctx, tt.caseID, "admin", tt.ps)
			if got := cases.ErrorCode(err); got != tt.code {
				t.Fatalf("ScheduleSession: %v, want code %q", err, tt.code)
			}
		})
	}
}

func TestEndSessionValidation(t *testing.T) {
	svc, inst := newService(t)
	ctx := t.Context()
	c, _, err := svc.OpenCase(ctx, validCase(inst.ID))
	if err != nil {
		t.Fatal(err)
	}
	for _, to := range []cases.State{cases.StateDispatched, cases.StateRespondentContacted, cases.StateAccepted} {
		if _, err := svc.Transition(ctx, c.ID, to, "admin", nil); err != nil {
			t.Fatal(err)
		}
	}
	sess, err := svc.ScheduleSession(ctx, c.ID, "admin", []cases.Participant{
		{Name: "Mediator", Role: cases.RoleMediator, Side: cases.SideNeutral},
		{Name: "Zhang San", Role: cases.RoleParty, Side: cases.SideApplicant},
	})
	if err != nil {
		t.Fatal(err)
	}
	med, party := sess.Participants[0].ID, sess.Participants[1].ID

	// Leaving without having joined changes nothing.
	before, err := svc.Record(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.RecordLeave(ctx, sess.ID, party, time.Now()); err != nil {
		t.Fatalf("RecordLeave without a join: %v", err)
	}
	after, err := svc.Record(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(after.Events) != len(before.Events) {
		t.Fatalf("RecordLeave without a join added events")
	}

	for _, tt := range []struct {
		name      string
		sessionID string
		actor     string
		o         cases.Outcome
		code      string
	}{
		{"unknown result", sess.ID, med, cases.Outcome{Result: "won"}, cases.EINVALID},
		{"settled without terms", sess.ID, med, cases.Outcome{Result: cases.ResultSettled}, cases.EINVALID},
		{"not settled without remedies", sess.ID, med, cases.Outcome{Result: cases.ResultNotSettled}, cases.EINVALID},
		{"unknown session", "s_nope", med, cases.Outcome{Result: cases.ResultWithdrawn}, cases.ENOTFOUND},
		{"party", sess.ID, party, cases.Outcome{Result: cases.ResultWithdrawn}, cases.ENOTFOUND},
		{"withdrawn", sess.ID, med, cases.Outcome{Result: cases.ResultWithdrawn}, ""},
		{"retried", sess.ID, med, cases.Outcome{Result: cases.ResultWithdrawn}, ""},
		{"twice", sess.ID, med, cases.Outcome{Result: cases.ResultNotSettled, Remedies: []string{"litigation"}}, cases.ETRANSITION},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := svc.EndSession(ctx, tt.sessionID, tt.actor, tt.o)
			if got := cases.ErrorCode(err); got != tt.code {
				t.Fatalf("EndSession: %v, want code %q", err, tt.code)
			}
		})
	}
}

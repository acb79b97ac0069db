package identity

import (
	"testing"

	"github.com/concord-odr/concord/cases"
)

func TestJoinable(t *testing.T) {
	med := &cases.Session{Mode: "joint"}
	rec := &cases.Session{Mode: cases.ModeReconciliation}
	for _, tt := range []struct {
		sess  *cases.Session
		state cases.State
		want  bool
	}{
		{med, cases.StateMediating, true},
		{med, cases.StateReconciliation, false},
		{med, cases.StateClosed, false},
		{rec, cases.StateReconciliation, true},
		{rec, cases.StateMediating, false},
		{rec, cases.StateDispatched, false},
		{rec, cases.StateClosed, false},
	} {
		if got := Joinable(&cases.Case{State: tt.state}, tt.sess); got != tt.want {
			t.Errorf("Joinable(%s session, case %s) = %v", tt.sess.Mode, tt.state, got)
		}
	}
}

// TestReconciliationLinks: the reconciliation room's links are issued
// and exchanged while the case is in reconciliation, for the applicant
// and the merchant alone, and refused once it has left it.
func TestReconciliationLinks(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	const code = "91310000MA1FL0AB2C"
	if err := e.cases.PutInstitution(ctx, &cases.Institution{ID: "inst_r", Code: "0401", Name: "R", Level: cases.LevelDistrict}); err != nil {
		t.Fatal(err)
	}
	if err := e.cases.PutEnterprise(ctx, &cases.Enterprise{CreditCode: code, Name: "Shop", Status: cases.EnterpriseEnrolled}); err != nil {
		t.Fatal(err)
	}
	c, _, err := e.cases.OpenCase(ctx, cases.NewCase{
		InstitutionID: "inst_r", Category: "e-commerce", Channel: cases.ChannelOnline,
		Applicant:  cases.Party{Name: "Li Wei", Kind: "person"},
		Respondent: cases.Party{Name: "Shop", Kind: "organisation", CreditCode: code},
		Actor:      "test",
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.cases.Transition(ctx, c.ID, cases.StateReconciliation, "test", nil); err != nil {
		t.Fatal(err)
	}
	rec, err := e.cases.Reconciliation(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	links, err := e.id.IssueLinks(ctx, rec.SessionID, "test", nil, nil)
	if err != nil || len(links) != 2 {
		t.Fatalf("links: %v %+v", err, links)
	}
	app := link(t, links, cases.SideApplicant)
	ex, err := e.id.Exchange(ctx, app.Code)
	if err != nil || ex.Claims.Side != cases.SideApplicant || ex.Claims.Role != cases.RoleParty {
		t.Fatalf("exchange: %v %+v", err, ex)
	}
	for _, mode := range []VerifyMode{ForSignaling, ForAPI, Strict} {
		if _, err := e.id.Verifier(mode).Verify(ex.Token); err != nil {
			t.Fatalf("verify mode %d: %v", mode, err)
		}
	}

	// The merchant declines: the case goes to mediation, the room ends.
	if _, err := e.cases.MerchantAct(ctx, c.ID, cases.MerchantAction{Kind: cases.ActDecline, Reason: "no", Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.id.IssueLinks(ctx, rec.SessionID, "test", nil, nil); cases.ErrorCode(err) != cases.ETRANSITION {
		t.Fatalf("links after the reconciliation: %v", err)
	}
	if _, err := e.id.Exchange(ctx, app.Code); cases.ErrorCode(err) != ESessionEnded {
		t.Fatalf("exchange after the reconciliation: %v", err)
	}
	if _, err := e.id.Verifier(Strict).Verify(ex.Token); err == nil {
		t.Fatal("a strict verifier accepts the token of an ended reconciliation")
	}
}

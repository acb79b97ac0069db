package identity

import (
	"testing"

	"github.com/concord-odr/concord/cases"
)

// TestAccountBindings covers the bindings of a kiosk (a community
// station's device) and of a mediator's account to its mediator record.
func TestAccountBindings(t *testing.T) {
	e := newEnv(t)
	e.staffFixture() // inst_a, a district institution
	ctx := t.Context()
	if err := e.cases.PutInstitution(ctx, &cases.Institution{ID: "inst_c", Code: "0311", Name: "Station C",
		Level: cases.LevelCommunity, ParentID: "inst_a"}); err != nil {
		t.Fatal(err)
	}
	medA := &cases.Mediator{InstitutionID: "inst_a", Name: "Zhang"}
	medC := &cases.Mediator{InstitutionID: "inst_c", Name: "Chen"}
	for _, m := range []*cases.Mediator{medA, medC} {
		if err := e.cases.PutMediator(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		name  string
		in    NewAccount
		field string // "" when it is created
	}{
		{"kiosk at a community station", NewAccount{Login: "kiosk.c", Role: cases.StaffKiosk, InstitutionID: "inst_c"}, ""},
		{"kiosk at a district", NewAccount{Login: "kiosk.a", Role: cases.StaffKiosk, InstitutionID: "inst_a"}, "institutionId"},
		{"kiosk bound to nothing", NewAccount{Login: "kiosk.x", Role: cases.StaffKiosk}, "institutionId"},
		{"kiosk of an enterprise", NewAccount{Login: "kiosk.e", Role: cases.StaffKiosk, InstitutionID: "inst_c", EnterpriseCode: "91310000MA1FL0AB2C"}, "enterpriseCode"},
		{"mediator linked to its record", NewAccount{Login: "zhang", Role: cases.StaffMediator, InstitutionID: "inst_a", MediatorID: medA.ID}, ""},
		{"mediator of another institution", NewAccount{Login: "chen", Role: cases.StaffMediator, InstitutionID: "inst_a", MediatorID: medC.ID}, "mediatorId"},
		{"unknown mediator", NewAccount{Login: "zhao", Role: cases.StaffMediator, InstitutionID: "inst_a", MediatorID: "med_nope"}, "mediatorId"},
		{"admin linked to a mediator", NewAccount{Login: "admin.x", Role: cases.StaffInstitutionAdmin, InstitutionID: "inst_a", MediatorID: medA.ID}, "mediatorId"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.in.Name, tt.in.Password = "Name", testPassword
			a, err := e.id.CreateAccount(ctx, "operator", tt.in)
			if tt.field != "" {
				if cases.ErrorCode(err) != cases.EINVALID || cases.ErrorField(err) != tt.field {
					t.Fatalf("%v (field %q), want invalid %s", err, cases.ErrorField(err), tt.field)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := e.id.Account(ctx, a.ID)
			if err != nil || got.Role != tt.in.Role || got.MediatorID != tt.in.MediatorID || got.InstitutionID != tt.in.InstitutionID {
				t.Fatalf("stored %+v, %v", got, err)
			}
		})
	}
}

package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/concord-odr/concord/cases"
	"github.com/concord-odr/concord/cases/identity"
	"github.com/concord-odr/concord/cases/joinlink"
)

// The demo's fixed identities make seeding idempotent.
const (
	demoInstitutionID = "inst_demo"
	demoChannel       = "demo"
	demoExternalRef   = "demo-case-1"
	demoActor         = "demo-seed"
	// The demo's staff: a mediator record with a shift, an ODR
	// enterprise with a complaint in its inbox, and a login for each
	// console.
	demoMediatorID   = "med_demo"
	demoShiftID      = "shift_demo"
	demoCreditCode   = "91310000MA1DEM000X"
	demoComplaintRef = "demo-complaint-1"
)

// Demo is the demo case and fresh join links for its open session.
type Demo struct {
	CaseID     string
	CaseNumber string
	CaseState  cases.State
	SessionID  string
	Links      []DemoLink // empty when the demo case is closed
	// Staff are the demo's console logins, all with StaffPassword.
	Staff         []DemoStaff
	StaffPassword string
	ComplaintID   string // the complaint in the demo merchant's inbox
}

// DemoStaff is one demo console login.
type DemoStaff struct {
	Login, Role string
}

// DemoLink is one participant's join link.
type DemoLink struct {
	Label string
	Role  string
	Token string
	// Short is the short link (/j/CODE) an SMS would carry.
	Short string
}

// Link returns the link of the participant with the given label.
func (d *Demo) Link(label string) (DemoLink, bool) {
	for _, l := range d.Links {
		if l.Label == label {
			return l, true
		}
	}
	return DemoLink{}, false
}

// seedDemo creates (or finds) the demo institution, case and session and
// issues join links. Running it again creates nothing new; it resumes a
// seeding that stopped halfway.
func (m *Main) seedDemo(ctx context.Context) (*Demo, error) {
	svc := m.cases
	inst := &cases.Institution{ID: demoInstitutionID, Code: "0000", Name: "Demo Community Mediation Centre", Level: "community", Status: "active"}
	var exists bool
	if err := m.store.View(ctx, func(tx cases.Tx) error {
		_, err := tx.Institution(ctx, inst.ID)
		if err == nil {
			exists = true
			return nil
		}
		if cases.ErrorCode(err) == cases.ENOTFOUND {
			return nil
		}
		return err
	}); err != nil {
		return nil, err
	}
	if !exists {
		if err := svc.PutInstitution(ctx, inst); err != nil {
			return nil, err
		}
	}
	c, _, err := svc.OpenCase(ctx, cases.NewCase{
		InstitutionID: inst.ID,
		Category:      "e-commerce",
		Channel:       demoChannel,
		ExternalRef:   demoExternalRef,
		Applicant:     cases.Party{Name: "Li Wei (consumer)", Kind: "person"},
		Respondent:    cases.Party{Name: "Bright Home Appliances Ltd (merchant)", Kind: "organisation"},
		Claims:        "Refund of 1,299.00 yuan for a rice cooker that stopped working after 10 days.",
		AmountCents:   129900,
		Actor:         demoActor,
	})
	if err != nil {
		return nil, err
	}
	if c, err = walkTo(ctx, svc, c, cases.StateAccepted, demoActor); err != nil {
		return nil, err
	}
	d := &Demo{CaseID: c.ID, CaseNumber: c.Number, CaseState: c.State}
	if err := m.seedDemoStaff(ctx, d); err != nil {
		return nil, fmt.Errorf("demo staff: %w", err)
	}
	if c.State == cases.StateClosed {
		return d, nil
	}
	rec, err := svc.Record(ctx, c.ID)
	if err != nil {
		return nil, err
	}
	var sess *cases.Session
	for i := len(rec.Sessions) - 1; i >= 0; i-- {
		if rec.Sessions[i].Status != cases.SessionEnded {
			sess = &rec.Sessions[i]
			break
		}
	}
	if sess == nil {
		sess, err = svc.ScheduleSession(ctx, c.ID, demoActor, []cases.Participant{
			{Name: "Mediator Zhang", Role: cases.RoleMediator, Side: cases.SideNeutral},
			{Name: "Li Wei", Role: cases.RoleParty, Side: cases.SideApplicant},
			{Name: "Bright Home (merchant)", Role: cases.RoleParty, Side: cases.SideRespondent},
		})
		if err != nil {
			return nil, err
		}
		c.State = cases.StateMediating
	}
	d.SessionID = sess.ID
	d.CaseState = c.State
	labels := map[string]string{cases.SideNeutral: "mediator", cases.SideApplicant: "consumer", cases.SideRespondent: "merchant"}
	for _, p := range sess.Participants {
		tok, err := m.signer.Issue(joinlink.Claims{
			CaseID: c.ID, SessionID: sess.ID, Role: p.Role, Side: p.Side, Name: p.Name,
			RegisteredClaims: jwt.RegisteredClaims{Subject: p.ID},
		}, m.Config.LinkTTL)
		if err != nil {
			return nil, err
		}
		link := DemoLink{Label: labels[p.Side], Role: p.Role, Token: tok}
		// The short link an SMS would carry; best effort, since a
		// participant removed in an earlier run gets none.
		if short, err := m.identity.IssueLinks(ctx, sess.ID, demoActor, []string{p.ID}, nil); err == nil && len(short) == 1 {
			link.Short = short[0].URL
		} else if err != nil {
			m.log.Info("demo: no short link", "participant", p.ID, "err", err)
		}
		d.Links = append(d.Links, link)
	}
	return d, nil
}

// print writes the demo's links for a newcomer.
func (d *Demo) print(w io.Writer, base, adminToken string) {
	fmt.Fprintf(w, "\nConcord is running at %s\n", base)
	fmt.Fprintf(w, "Demo case %s (%s), state %s\n", d.CaseNumber, d.CaseID, d.CaseState)
	if len(d.Links) == 0 {
		fmt.Fprintf(w, "The demo case is closed. Start with a fresh --data-dir for a new one.\n\n")
		return
	}
	fmt.Fprintf(w, "Open each link in its own browser tab or device:\n")
	for _, l := range d.Links {
		fmt.Fprintf(w, "  %-9s %s/join#%s\n", l.Label+":", base, l.Token)
	}
	if len(d.Links) > 0 && d.Links[0].Short != "" {
		fmt.Fprintf(w, "or the short links an SMS carries (each works until it expires):\n")
		for _, l := range d.Links {
			if l.Short != "" {
				fmt.Fprintf(w, "  %-9s %s\n", l.Label+":", l.Short)
			}
		}
	}
	if med, ok := d.Link("mediator"); ok {
		fmt.Fprintf(w, "The case record:\n  curl -H 'Authorization: Bearer %s' %s/api/v1/cases/%s\n", med.Token, base, d.CaseID)
	}
	if len(d.Staff) > 0 {
		fmt.Fprintf(w, "Staff console: %s/console (password %s for each):\n", base, d.StaffPassword)
		for _, s := range d.Staff {
			fmt.Fprintf(w, "  %-18s %s\n", s.Role+":", s.Login)
		}
	}
	if adminToken != "" {
		fmt.Fprintf(w, "Staff API (operator token, kept in the data folder):\n  curl -H 'Authorization: Bearer %s' %s/api/v1/cases\n", adminToken, base)
		fmt.Fprintf(w, "Create the first staff account (then log in at POST /api/v1/auth/login):\n  concord user add --data-dir DATA_DIR --login admin --role platform_admin\n")
	}
	fmt.Fprintln(w)
}

// demoAdminToken reads the demo's operator token from the data folder,
// creating a random one on first use.
func demoAdminToken(dir string) (string, error) {
	return loadOrCreateSecret(filepath.Join(dir, "admin.token"), 24, 24, base64.RawURLEncoding.EncodeToString)
}

// seedDemoStaff creates (or finds) the demo's mediator record and its
// shift around now, an ODR enterprise with a complaint in reconciliation,
// and a mediator, an institution admin and a merchant agent login sharing
// one password kept in the data folder.
func (m *Main) seedDemoStaff(ctx context.Context, d *Demo) error {
	svc := m.cases
	pw, err := loadOrCreateSecret(filepath.Join(m.Config.DataDir, "demo-staff.password"), 16, 12, base64.RawURLEncoding.EncodeToString)
	if err != nil {
		return err
	}
	d.StaffPassword = pw
	if err := svc.PutMediator(ctx, &cases.Mediator{ID: demoMediatorID, InstitutionID: demoInstitutionID, Name: "Mediator Zhang"}); err != nil {
		return err
	}
	now := svc.Now()
	if err := svc.PutShift(ctx, &cases.Shift{ID: demoShiftID, MediatorID: demoMediatorID, InstitutionID: demoInstitutionID,
		StartsAt: now.Add(-time.Hour), EndsAt: now.Add(23 * time.Hour), CreatedBy: demoActor}); err != nil {
		return err
	}
	e, err := svc.ApplyEnrolment(ctx, cases.Enrolment{CreditCode: demoCreditCode, Name: "Bright Home Appliances Ltd",
		InstitutionID: demoInstitutionID, Categories: []string{"e-commerce", "product-quality"}, ResponseDays: 5, Actor: demoActor})
	if err != nil {
		return err
	}
	if e.Status == cases.EnterprisePending {
		if _, err := svc.ReviewEnrolment(ctx, demoCreditCode, cases.EnrolApprove, "", demoActor); err != nil {
			return err
		}
	}
	c, _, err := svc.OpenCase(ctx, cases.NewCase{
		InstitutionID: demoInstitutionID, Category: "e-commerce", Channel: demoChannel, ExternalRef: demoComplaintRef,
		Applicant:  cases.Party{Name: "Wang Fang (consumer)", Kind: "person"},
		Respondent: cases.Party{Name: "Bright Home Appliances Ltd", Kind: "organisation", CreditCode: demoCreditCode},
		Claims:     "Refund of 399.00 yuan for a kettle delivered broken.", AmountCents: 39900, Actor: demoActor,
	})
	if err != nil {
		return err
	}
	d.ComplaintID = c.ID
	if c.State == cases.StateSubmitted {
		if _, err := svc.SweepReconciliation(ctx); err != nil {
			return err
		}
	}
	for _, a := range []identity.NewAccount{
		{Login: "demo-mediator", Name: "Mediator Zhang", Role: cases.StaffMediator, InstitutionID: demoInstitutionID},
		{Login: "demo-admin", Name: "Demo Institution Admin", Role: cases.StaffInstitutionAdmin, InstitutionID: demoInstitutionID},
		{Login: "demo-merchant", Name: "Bright Home Agent", Role: cases.StaffMerchantAgent, EnterpriseCode: demoCreditCode},
	} {
		d.Staff = append(d.Staff, DemoStaff{Login: a.Login, Role: string(a.Role)})
		err := m.store.View(ctx, func(tx cases.Tx) error {
			_, err := tx.AccountByLogin(ctx, a.Login)
			return err
		})
		if err == nil {
			continue
		}
		if cases.ErrorCode(err) != cases.ENOTFOUND {
			return err
		}
		a.Password = pw
		if _, err := m.identity.CreateAccount(ctx, demoActor, a); err != nil {
			return err
		}
	}
	return nil
}

package web

import (
	"context"

	"github.com/concord-odr/concord/cases"
)

// Who may do what in ODR reconciliation, the statistics and the
// instant-mediation queue. Every decision of odr_api.go, stats_api.go
// and queue_api.go is made here, on the principal authenticate
// establishes (authz.go), so that it can join authorize's table in one
// move.
//
//	                      platform  inst. admin (scope)   mediator      merchant agent   party (join token)
//	enrol (apply)         yes       its scope             -             -                -
//	read an enrolment     yes       its scope             -             its own          -
//	approve/suspend/...   yes       its scope             -             -                -
//	inbox, dashboard      yes       its scope (dashboard) -             its own          -
//	answer a complaint    yes       -                     -             its own          -
//	read a reconciliation yes       its cases             its cases     its complaints   its own case
//	answer an offer       -         -                     -             -                the applicant
//	dispatch routes       yes       targets in its scope  -             -                -
//	statistics, warnings  yes       its scope             -             -                -
//
// "Its scope" is the institution admin's institution and those below it.
// A principal that may not know of an enterprise or a case is answered
// not found.

// enterpriseVisible returns nil when p may know of e.
func (h *Handler) enterpriseVisible(ctx context.Context, p *principal, e *cases.Enterprise) error {
	switch p.role() {
	case cases.StaffPlatformAdmin:
		return nil
	case cases.StaffMerchantAgent:
		if p.account.EnterpriseCode == e.CreditCode {
			return nil
		}
	case cases.StaffInstitutionAdmin:
		if e.InstitutionID != "" && h.inScope(ctx, p, e.InstitutionID, "") == nil {
			return nil
		}
	}
	return notFound("enterprise")
}

// mayReviewEnterprise returns nil when p may approve, suspend, reinstate
// or remove e's enrolment.
func (h *Handler) mayReviewEnterprise(ctx context.Context, p *principal, e *cases.Enterprise) error {
	if err := h.enterpriseVisible(ctx, p, e); err != nil {
		return err
	}
	if p.role() == cases.StaffMerchantAgent {
		return forbidden("an enterprise does not review its own enrolment")
	}
	return nil
}

// mayEnrolAt returns nil when p may file an enrolment supervised by the
// institution.
func (h *Handler) mayEnrolAt(ctx context.Context, p *principal, institutionID string) error {
	switch p.role() {
	case cases.StaffPlatformAdmin:
		return nil
	case cases.StaffInstitutionAdmin:
		return h.inScope(ctx, p, institutionID, "you may enrol enterprises only under your institution and those below it")
	}
	return forbidden("a %s does not enrol ODR enterprises", roleName(p))
}

// mayReadMerchant returns nil when p may read an enterprise's inbox
// (inbox true) or dashboard.
func (h *Handler) mayReadMerchant(ctx context.Context, p *principal, e *cases.Enterprise, inbox bool) error {
	if err := h.enterpriseVisible(ctx, p, e); err != nil {
		return err
	}
	if inbox && p.role() == cases.StaffInstitutionAdmin {
		return forbidden("the inbox is the merchant's; see the cases in reconciliation instead")
	}
	return nil
}

// merchantActor returns the enterprise p answers c for: its own for a
// merchant agent, "" for a platform admin acting for it. Anyone else
// may not answer a complaint.
func (h *Handler) merchantActor(ctx context.Context, p *principal, c *cases.Case) (string, error) {
	if err := h.caseVisible(ctx, p, c); err != nil {
		return "", err
	}
	switch p.role() {
	case cases.StaffMerchantAgent:
		return p.account.EnterpriseCode, nil
	case cases.StaffPlatformAdmin:
		return "", nil
	}
	return "", forbidden("the merchant answers its complaints; a %s does not", roleName(p))
}

// applicantOf returns nil when p is the applicant of c, by its join
// token.
func (h *Handler) applicantOf(p *principal, c *cases.Case) error {
	if p.kind != partyKind || p.claims.CaseID != c.ID {
		return notFound("case")
	}
	if p.claims.Side != cases.SideApplicant || p.claims.Role != cases.RoleParty {
		return forbidden("only the applicant answers the merchant's offer")
	}
	return nil
}

// mayRoute returns nil when p may send cases to the institution with a
// dispatch route.
func (h *Handler) mayRoute(ctx context.Context, p *principal, institutionID string) error {
	switch p.role() {
	case cases.StaffPlatformAdmin:
		return nil
	case cases.StaffInstitutionAdmin:
		return h.inScope(ctx, p, institutionID, "a route may send cases only to your institution and those below it")
	}
	return forbidden("a %s does not manage dispatch routes", roleName(p))
}

// statsScope returns the institutions whose cases p's statistics cover
// (nil: all), optionally narrowed to the subtree of one institution.
func (h *Handler) statsScope(ctx context.Context, p *principal, institutionID string) ([]string, error) {
	switch p.role() {
	case cases.StaffPlatformAdmin, cases.StaffInstitutionAdmin:
	default:
		return nil, forbidden("statistics are for platform and institution admins")
	}
	if institutionID == "" {
		all, ids, err := h.scope(ctx, p)
		if err != nil || all {
			return nil, err
		}
		return ids, nil
	}
	if err := h.inScope(ctx, p, institutionID, "not your institution"); err != nil {
		return nil, err
	}
	return h.p.Cases.InstitutionSubtree(ctx, institutionID)
}

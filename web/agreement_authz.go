package web

import (
	"net/http"

	"github.com/concord-odr/concord/cases"
)

// Who may do what with a case's agreement and the follow-ups of its
// terms. Every decision of the agreement API is made in may and
// agreementCaller, on the principal authenticate establishes (authz.go),
// so that it can join authorize's table in one move.
//
//	action        operator/staff    mediator (join token)  party (join token)
//	read          yes (in scope)    yes                    yes (a draft prepared in a caucus: its side only)
//	template      -                 yes                    -
//	draft         -                 yes                    -
//	sign          -                 yes                    -
//	correct       -                 yes                    -
//	confirm       -                 -                      yes, for itself
//	performance   yes, not agents   -                      the applicant
//
// The mediator and the parties act through their join tokens, because
// the agreement is drafted, confirmed and signed in the session's room,
// and the domain checks the participant again against that session. A
// join token counts only for its own case; staff see the cases in their
// scope (caseVisible). A caller refused an action is answered "not
// found", like one with no access to the case. The audit routes are for
// platform admins (operator).

// Agreement API actions.
const (
	agrRead        = "read"
	agrTemplate    = "template"
	agrDraft       = "draft"
	agrSign        = "sign"
	agrCorrect     = "correct"
	agrConfirm     = "confirm"
	agrPerformance = "performance"
)

// agrCaller is who calls an agreement route.
type agrCaller struct {
	p *principal
	// From a join token: the participant and its session, role and side.
	actor cases.AgreementActor
	role  string
	side  string
}

// staff reports whether the caller is the operator or a staff member.
func (c *agrCaller) staff() bool { return c.p.kind == operatorKind || c.p.kind == staffKind }

// may reports whether c may take action.
func (c *agrCaller) may(action string) bool {
	switch action {
	case agrRead:
		return true
	case agrTemplate, agrDraft, agrSign, agrCorrect:
		return !c.staff() && c.role == cases.RoleMediator
	case agrConfirm:
		return !c.staff() && c.role == cases.RoleParty
	case agrPerformance:
		if c.staff() {
			return c.p.role() != cases.StaffMerchantAgent
		}
		return c.role == cases.RoleParty && c.side == cases.SideApplicant
	}
	return false
}

// seesAgreement reports whether c may see a: a party does not see a draft
// prepared in a caucus with the other side.
func (c *agrCaller) seesAgreement(a *cases.Agreement) bool {
	return c.staff() || c.role == cases.RoleMediator || a.VisibleToSide(c.side)
}

// agreementCaller authenticates the request for an action on case
// caseID and answers a refusal itself: 401 without valid credentials, 404
// when the caller may not take the action on this case.
func (h *Handler) agreementCaller(w http.ResponseWriter, r *http.Request, caseID, action string) (*agrCaller, bool) {
	p, err := h.authenticate(r)
	if err != nil {
		if cases.ErrorCode(err) == cases.EUNAUTHORIZED {
			w.Header().Set("WWW-Authenticate", `Bearer realm="concord", error="invalid_token"`)
		}
		writeError(w, r, h.log, err)
		return nil, false
	}
	c := &agrCaller{p: p}
	switch p.kind {
	case anonymous:
		w.Header().Set("WWW-Authenticate", `Bearer realm="concord"`)
		writeProblem(w, codeUnauthorized, "a bearer token is required")
		return nil, false
	case partyKind:
		if p.claims.CaseID != caseID {
			writeProblem(w, cases.ENOTFOUND, "case not found")
			return nil, false
		}
		c.actor = cases.AgreementActor{SessionID: p.claims.SessionID, ParticipantID: p.claims.ParticipantID()}
		c.role, c.side = p.claims.Role, p.claims.Side
	default:
		cs, err := h.p.Cases.Case(r.Context(), caseID)
		if err == nil {
			err = h.caseVisible(r.Context(), p, cs)
		}
		if err != nil {
			h.writeCaseError(w, r, err)
			return nil, false
		}
	}
	if !c.may(action) {
		writeProblem(w, cases.ENOTFOUND, "case not found")
		return nil, false
	}
	return c, true
}

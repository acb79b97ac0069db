package web

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strings"

	"github.com/concord-odr/concord/cases"
	"github.com/concord-odr/concord/cases/identity"
	"github.com/concord-odr/concord/cases/joinlink"
)

// Authorisation. Every decision about who may do what to which case,
// session, institution or account is made here, in authorize, from a
// principal that authenticate establishes from the request:
//
//   - the platform operator, by the static bearer token
//     Params.AdminToken: a bootstrap credential that may do everything a
//     platform admin may, and create the first platform admin;
//   - a staff member, by a staff access token (identity.StaffAudience):
//     a platform admin (everything), an institution admin (the cases,
//     mediators and staff of its institution and the institutions below
//     it), a mediator (the cases of its institution), a merchant agent
//     (the complaints against its ODR enterprise);
//   - a kiosk, by the staff access token of a kiosk device account: the
//     kiosk routes (kioskOnly) and nothing else, every other route
//     refusing it with forbidden;
//   - a party, by a join token: its own case and session, nothing else.
//
// A request for something the principal may not even know of is
// answered not_found, as if it did not exist; a request the principal
// may know of but not do is forbidden. A credential of the wrong kind
// for a route (a join token on a staff route) is unauthorized.

// principalKind is how a request authenticated.
type principalKind int

const (
	anonymous principalKind = iota
	operatorKind
	staffKind
	partyKind
	// kioskKind marks, in a route's list of accepted kinds, that a kiosk
	// device (a staffKind principal whose role is kiosk) may call it. A
	// kiosk's principal itself stays staffKind.
	kioskKind
)

// principal is who is calling.
type principal struct {
	kind    principalKind
	account *cases.Account   // staffKind
	session string           // staffKind: the login session
	claims  *joinlink.Claims // partyKind

	// institutions is the staff member's institution scope, computed on
	// first use: nil until then.
	institutions []string
	allScope     bool
	scoped       bool
}

// actor is how the principal is recorded in case events.
func (p *principal) actor() string {
	switch p.kind {
	case operatorKind:
		return operatorActor
	case staffKind:
		return "staff:" + p.account.ID
	case partyKind:
		return p.claims.ParticipantID()
	}
	return "anonymous"
}

// role is the staff role the principal acts with; the operator acts as a
// platform admin.
func (p *principal) role() cases.StaffRole {
	switch p.kind {
	case operatorKind:
		return cases.StaffPlatformAdmin
	case staffKind:
		return p.account.Role
	}
	return ""
}

// kioskPatterns are the routes a kiosk's token is accepted on: the kiosk
// API (kiosk_api.go), who am I, and signing out. Every other route
// refuses it, whatever it does with a credential.
var kioskPatterns = map[string]bool{
	"GET /api/v1/kiosk/sessions":            true,
	"POST /api/v1/kiosk/sessions":           true,
	"POST /api/v1/kiosk/sessions/{id}/join": true,
	"GET /api/v1/auth/me":                   true,
	"POST /api/v1/auth/logout":              true,
}

// kiosk reports whether the principal is a community station's kiosk
// device.
func (p *principal) kiosk() bool { return p.kind == staffKind && p.account.Role == cases.StaffKiosk }

// platform reports whether the principal may act on the whole platform.
func (p *principal) platform() bool { return p.role() == cases.StaffPlatformAdmin }

type principalKey struct{}

// principalOf returns the principal guard stored in the request.
func principalOf(r *http.Request) *principal {
	if p, ok := r.Context().Value(principalKey{}).(*principal); ok {
		return p
	}
	return &principal{kind: anonymous}
}

// joinContextVerifier is a TokenVerifier that also takes a context.
type joinContextVerifier interface {
	VerifyContext(ctx context.Context, token string) (*joinlink.Claims, error)
}

// The join verifier that checks revocation serves as Params.Tokens.
var _ joinContextVerifier = (*identity.Verifier)(nil)
var _ TokenVerifier = (*identity.Verifier)(nil)

// authenticate establishes the principal of a request from its bearer
// credential. No credential is the anonymous principal; a credential
// that does not verify is an EUNAUTHORIZED error.
func (h *Handler) authenticate(r *http.Request) (*principal, error) {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return &principal{kind: anonymous}, nil
	}
	token, ok := strings.CutPrefix(auth, "Bearer ")
	token = strings.TrimSpace(token)
	if !ok || token == "" {
		return nil, cases.Errorf(cases.EUNAUTHORIZED, "the Authorization header must be Bearer and a token")
	}
	if h.p.AdminToken != "" && subtle.ConstantTimeCompare([]byte(token), []byte(h.p.AdminToken)) == 1 {
		return &principal{kind: operatorKind}, nil
	}
	if audience(token) == identity.StaffAudience {
		if h.p.Identity == nil {
			return nil, cases.Errorf(cases.EUNAUTHORIZED, "staff accounts are not enabled")
		}
		st, err := h.p.Identity.Authenticate(r.Context(), token)
		if err != nil {
			return nil, err
		}
		p := &principal{kind: staffKind, account: st.Account, session: st.Claims.SessionID}
		if p.kiosk() && !kioskPatterns[r.Pattern] {
			return nil, forbidden("a kiosk may only start walk-in sessions and join them")
		}
		return p, nil
	}
	if h.p.Tokens == nil {
		return nil, cases.Errorf(cases.EUNAUTHORIZED, "the token is not valid")
	}
	var c *joinlink.Claims
	var err error
	if v, ok := h.p.Tokens.(joinContextVerifier); ok {
		c, err = v.VerifyContext(r.Context(), token)
	} else {
		c, err = h.p.Tokens.Verify(token)
	}
	if err != nil {
		if cases.ErrorCode(err) == cases.EINTERNAL && !isJoinError(err) {
			return nil, err
		}
		return nil, cases.Errorf(cases.EUNAUTHORIZED, "%s", err.Error())
	}
	return &principal{kind: partyKind, claims: c}, nil
}

// isJoinError reports whether err is one of joinlink's refusals (safe to
// show), rather than a failure of the store.
func isJoinError(err error) bool {
	for _, e := range []error{joinlink.ErrExpired, joinlink.ErrNotYet, joinlink.ErrAudience, joinlink.ErrInvalid,
		joinlink.ErrRevoked, joinlink.ErrRemoved, joinlink.ErrSessionEnded} {
		if err == e {
			return true
		}
	}
	return false
}

// audience reads the aud claim of a JWT without verifying anything, to
// choose which verifier checks it. Verification itself checks aud again.
func audience(token string) string {
	parts := strings.Split(token, ".")
	if len(parts) != 3 || len(parts[1]) > 4096 {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var c struct {
		Aud any `json:"aud"`
	}
	if json.Unmarshal(b, &c) != nil {
		return ""
	}
	switch a := c.Aud.(type) {
	case string:
		return a
	case []any:
		if len(a) == 1 {
			s, _ := a[0].(string)
			return s
		}
	}
	return ""
}

// Which principals a route accepts.
var (
	staffOnly    = []principalKind{operatorKind, staffKind}
	staffOrParty = []principalKind{operatorKind, staffKind, partyKind}
	partyOnly    = []principalKind{partyKind}
	anyone       = []principalKind{operatorKind, staffKind, partyKind, kioskKind}
	kioskOnly    = []principalKind{kioskKind}
)

// guard authenticates the request and lets through to next only the
// kinds of principal the route accepts, with the principal in the
// request's context. Which resource the principal may touch is decided
// by authorize, called by next once it knows the resource.
func (h *Handler) guard(kinds []principalKind, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := h.authenticate(r)
		if err != nil {
			if cases.ErrorCode(err) == cases.EUNAUTHORIZED {
				w.Header().Set("WWW-Authenticate", `Bearer realm="concord", error="invalid_token"`)
			}
			writeError(w, r, h.log, err)
			return
		}
		if (p.kind == staffKind && !p.kiosk() || p.kind == operatorKind) && slices.Equal(kinds, kioskOnly) {
			writeProblem(w, cases.EFORBIDDEN, "this endpoint is for kiosk devices")
			return
		}
		if !slices.Contains(kinds, p.kind) && !(p.kiosk() && slices.Contains(kinds, kioskKind)) {
			realm := "concord"
			detail := "a bearer token is required"
			switch {
			case slices.Equal(kinds, staffOnly):
				realm, detail = "concord-staff", "this endpoint needs a staff access token"
			case slices.Equal(kinds, partyOnly):
				detail = "this endpoint needs a participant's join token"
			}
			if p.kind != anonymous {
				detail = "this credential is not accepted here: " + detail
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+realm+`"`)
			writeProblem(w, codeUnauthorized, detail)
			return
		}
		next(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	}
}

// operator lets only the platform operator and platform admins through
// to next. Routes that concern one case or institution use guard and
// authorize instead.
func (h *Handler) operator(next http.HandlerFunc) http.HandlerFunc {
	return h.guard(staffOnly, func(w http.ResponseWriter, r *http.Request) {
		if !principalOf(r).platform() {
			writeProblem(w, cases.EFORBIDDEN, "this endpoint is for platform admins")
			return
		}
		next(w, r)
	})
}

// action is what a principal asks to do.
type action string

const (
	actReadCase         action = "case.read"
	actCreateCase       action = "case.create"
	actTransition       action = "case.transition"
	actScheduleSession  action = "session.schedule"
	actManageLinks      action = "links.manage"
	actEndSession       action = "session.end"
	actWriteInstitution action = "institution.write"
	actReadMediators    action = "mediators.read"
	actWriteMediators   action = "mediators.write"
	actWriteEnterprise  action = "enterprise.write"
	actCreateAccount    action = "account.create"
	actListAccounts     action = "account.list"
	actReadAccount      action = "account.read"
	actManageAccount    action = "account.manage"
)

// target is what an action is done to; each action reads the fields it
// needs.
type target struct {
	Case      *cases.Case
	SessionID string
	// To is the state a transition moves the case to.
	To cases.State
	// InstitutionID: where a case is opened; the institution written or
	// whose mediators are read or written; the account's institution.
	InstitutionID string
	// ParentID is the parent an institution is written with.
	ParentID string
	// Account is the account read or managed; Role, InstitutionID and
	// EnterpriseCode describe an account to create.
	Account        *cases.Account
	Role           cases.StaffRole
	EnterpriseCode string
}

// Refusals. notFound hides what the principal may not know of.
func notFound(what string) error { return cases.Errorf(cases.ENOTFOUND, "%s not found", what) }

func forbidden(format string, args ...any) error {
	return cases.Errorf(cases.EFORBIDDEN, format, args...)
}

// mediatorTransitions are the steps a mediator takes on its
// institution's cases; dispatching and reconciliation are the
// platform's and the institution admins'.
var mediatorTransitions = []cases.State{
	cases.StateRespondentContacted, cases.StateAccepted, cases.StateRejected, cases.StateClosed,
	cases.StateConfirmationRequested, cases.StateConfirmed, cases.StateConfirmationRefused, cases.StateReferred,
}

// authorize decides whether p may do act to t. It returns nil, or an
// ENOTFOUND error when p may not know of t, or EFORBIDDEN when p may
// know of it but not do this.
func (h *Handler) authorize(ctx context.Context, p *principal, act action, t target) error {
	switch act {
	case actReadCase:
		return h.caseVisible(ctx, p, t.Case)

	case actEndSession:
		if p.kind == partyKind && p.claims.SessionID == t.SessionID {
			return nil // the case rules check the participant is its mediator
		}
		return notFound("session")

	case actCreateCase:
		if p.kind == partyKind || p.role() == cases.StaffMerchantAgent {
			return forbidden("a %s does not open cases", roleName(p))
		}
		return h.inScope(ctx, p, t.InstitutionID, "you may open cases only at your institution")

	case actTransition:
		if err := h.caseVisible(ctx, p, t.Case); err != nil {
			return err
		}
		switch p.role() {
		case cases.StaffPlatformAdmin, cases.StaffInstitutionAdmin:
			return nil
		case cases.StaffMediator:
			if slices.Contains(mediatorTransitions, t.To) {
				return nil
			}
			return forbidden("a mediator does not move a case to %s; ask an institution admin", t.To)
		case cases.StaffMerchantAgent:
			if t.Case.State == cases.StateReconciliation && (t.To == cases.StateClosed || t.To == cases.StateDispatched) {
				return nil
			}
			return forbidden("a merchant agent settles or declines a complaint in reconciliation, nothing more")
		}
		return forbidden("a party does not move its case")

	case actScheduleSession, actManageLinks:
		if err := h.caseVisible(ctx, p, t.Case); err != nil {
			return err
		}
		switch p.role() {
		case cases.StaffPlatformAdmin, cases.StaffInstitutionAdmin, cases.StaffMediator:
			return nil
		}
		return forbidden("a %s does not schedule sessions or send join links", roleName(p))

	case actWriteInstitution:
		switch p.role() {
		case cases.StaffPlatformAdmin:
			return nil
		case cases.StaffInstitutionAdmin:
			// Below its own institution only: not its own record, nor
			// moving anything out of its tree.
			if t.InstitutionID == p.account.InstitutionID {
				return forbidden("an institution admin does not change its own institution; ask a platform admin")
			}
			if t.InstitutionID != "" {
				if err := h.inScope(ctx, p, t.InstitutionID, ""); err != nil {
					if cases.ErrorCode(err) == cases.EFORBIDDEN {
						return forbidden("you may change only the institutions below yours")
					}
					return err
				}
			}
			if t.ParentID == "" {
				return forbidden("an institution admin creates institutions below its own")
			}
			return h.inScope(ctx, p, t.ParentID, "you may create institutions only below yours")
		}
		return forbidden("a %s does not change institutions", roleName(p))

	case actReadMediators, actWriteMediators:
		switch p.role() {
		case cases.StaffPlatformAdmin:
			return nil
		case cases.StaffInstitutionAdmin:
			return h.inScope(ctx, p, t.InstitutionID, "not your institution")
		case cases.StaffMediator:
			if act == actReadMediators && t.InstitutionID == p.account.InstitutionID {
				return nil
			}
			if act == actWriteMediators && t.InstitutionID == p.account.InstitutionID {
				return forbidden("a mediator does not manage mediators")
			}
		}
		return forbidden("not your institution")

	case actWriteEnterprise:
		if p.platform() {
			return nil
		}
		return forbidden("ODR enterprises are enrolled by platform admins")

	case actCreateAccount:
		switch p.role() {
		case cases.StaffPlatformAdmin:
			return nil
		case cases.StaffInstitutionAdmin:
			if t.Role != cases.StaffInstitutionAdmin && t.Role != cases.StaffMediator && t.Role != cases.StaffKiosk {
				return forbidden("an institution admin creates institution admins, mediators and kiosks only")
			}
			return h.inScope(ctx, p, t.InstitutionID, "you may create staff only at your institution and those below it")
		}
		return forbidden("a %s does not create accounts", roleName(p))

	case actListAccounts:
		switch p.role() {
		case cases.StaffPlatformAdmin, cases.StaffInstitutionAdmin:
			return nil
		}
		return forbidden("a %s does not list accounts", roleName(p))

	case actReadAccount, actManageAccount:
		a := t.Account
		self := p.kind == staffKind && p.account.ID == a.ID
		visible := self || p.platform()
		if !visible && p.role() == cases.StaffInstitutionAdmin && a.InstitutionID != "" {
			visible = h.inScope(ctx, p, a.InstitutionID, "") == nil
		}
		if !visible {
			return notFound("account")
		}
		if act == actReadAccount {
			return nil
		}
		switch {
		case self:
			return forbidden("you do not disable your own account or reset your own password here; use /api/v1/auth/password")
		case p.platform():
			return nil
		case p.role() == cases.StaffInstitutionAdmin && (a.Role == cases.StaffMediator || a.Role == cases.StaffInstitutionAdmin || a.Role == cases.StaffKiosk):
			return nil
		}
		return forbidden("a %s does not manage this account", roleName(p))
	}
	h.log.Error("authorize: unknown action", "action", act)
	return forbidden("refused")
}

func roleName(p *principal) string {
	switch p.kind {
	case partyKind:
		return "party"
	case anonymous:
		return "visitor"
	}
	return strings.ReplaceAll(string(p.role()), "_", " ")
}

// scope returns the institutions whose cases the principal sees: all of
// them (all true), or a list, empty for merchant agents and parties.
func (h *Handler) scope(ctx context.Context, p *principal) (all bool, ids []string, err error) {
	if p.scoped {
		return p.allScope, p.institutions, nil
	}
	switch p.role() {
	case cases.StaffPlatformAdmin:
		all = true
	case cases.StaffInstitutionAdmin:
		ids, err = h.p.Cases.InstitutionSubtree(ctx, p.account.InstitutionID)
		if cases.ErrorCode(err) == cases.ENOTFOUND {
			ids, err = []string{}, nil
		}
		if err != nil {
			return false, nil, err
		}
	case cases.StaffMediator:
		ids = []string{p.account.InstitutionID}
	default:
		ids = []string{}
	}
	p.allScope, p.institutions, p.scoped = all, ids, true
	return all, ids, nil
}

// inScope reports, as an EFORBIDDEN error with msg, whether an
// institution is outside the principal's scope.
func (h *Handler) inScope(ctx context.Context, p *principal, institutionID, msg string) error {
	all, ids, err := h.scope(ctx, p)
	if err != nil {
		return err
	}
	if all || slices.Contains(ids, institutionID) {
		return nil
	}
	if msg == "" {
		msg = "outside your institution"
	}
	return forbidden("%s", msg)
}

// caseVisible returns nil when p may know of c, and an ENOTFOUND error
// otherwise.
func (h *Handler) caseVisible(ctx context.Context, p *principal, c *cases.Case) error {
	if c == nil {
		return notFound("case")
	}
	switch p.kind {
	case partyKind:
		if p.claims.CaseID == c.ID {
			return nil
		}
		return notFound("case")
	case operatorKind, staffKind:
		if p.role() == cases.StaffMerchantAgent {
			if c.Respondent.CreditCode != "" && c.Respondent.CreditCode == p.account.EnterpriseCode {
				return nil
			}
			return notFound("case")
		}
		all, ids, err := h.scope(ctx, p)
		if err != nil {
			return err
		}
		if all || slices.Contains(ids, c.InstitutionID) {
			return nil
		}
	}
	return notFound("case")
}

// caseQueryScope confines a staff listing of cases to the principal's
// scope.
func (h *Handler) caseQueryScope(ctx context.Context, p *principal, q *cases.CaseQuery) error {
	if p.role() == cases.StaffMerchantAgent {
		q.RespondentCreditCode = p.account.EnterpriseCode
		return nil
	}
	all, ids, err := h.scope(ctx, p)
	if err != nil {
		return err
	}
	if !all {
		q.InstitutionIDs = ids
	}
	return nil
}

// accountScope confines a listing of accounts to the principal's scope.
func (h *Handler) accountScope(ctx context.Context, p *principal, f *cases.AccountFilter) error {
	all, ids, err := h.scope(ctx, p)
	if err != nil {
		return err
	}
	if !all {
		f.InstitutionIDs = ids
	}
	return nil
}

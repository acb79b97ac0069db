package web

import (
	"math"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/concord-odr/concord/cases"
	"github.com/concord-odr/concord/cases/identity"
	"github.com/concord-odr/concord/web/ratelimit"
)

// The identity API: staff logins, staff accounts, and the join links of
// parties.
//
//	POST /api/v1/auth/login          login and password -> access token + refresh cookie
//	POST /api/v1/auth/refresh        refresh cookie -> new access token + next refresh cookie
//	POST /api/v1/auth/logout         ends the login of the refresh cookie (and of the bearer token)
//	POST /api/v1/auth/password       changes one's password; every login of the account ends
//	GET  /api/v1/auth/me             who the bearer is
//	POST /api/v1/accounts            creates a staff account (the operator token creates the first platform admin)
//	GET  /api/v1/accounts            lists the staff accounts in the caller's scope
//	GET  /api/v1/accounts/{id}       one account
//	PUT  /api/v1/accounts/{id}/status     active or disabled
//	POST /api/v1/accounts/{id}/password   an admin sets a new password
//	POST /api/v1/sessions/{id}/links      new short links for a session's participants, sent on
//	POST /api/v1/sessions/{id}/revocations  revokes a link, a participant's links or the session's
//	POST /api/v1/join/exchange       a short link's code -> the participant's join token
//	GET  /j/{code}                   the short link itself: redirects to /join#code=CODE

// refreshCookie holds the refresh token. It is sent only to the auth
// endpoints, never readable by scripts, never cross-site.
const (
	refreshCookie     = "concord_refresh"
	refreshCookiePath = "/api/v1/auth"
)

// Limits are the rate limits of the endpoints that check a secret.
type Limits struct {
	LoginPerIP       ratelimit.Rule
	LoginPerAccount  ratelimit.Rule
	RefreshPerIP     ratelimit.Rule
	PasswordPerAcct  ratelimit.Rule
	ExchangePerIP    ratelimit.Rule
	ExchangePerCode  ratelimit.Rule
	ExchangeBurstAll ratelimit.Rule
}

// DefaultLimits are the limits used for the zero fields of Params.Limits.
var DefaultLimits = Limits{
	LoginPerIP:      ratelimit.Rule{Name: "login-ip", Limit: 20, Window: 5 * time.Minute},
	LoginPerAccount: ratelimit.Rule{Name: "login-account", Limit: 10, Window: 15 * time.Minute},
	RefreshPerIP:    ratelimit.Rule{Name: "refresh-ip", Limit: 60, Window: time.Minute},
	PasswordPerAcct: ratelimit.Rule{Name: "password-account", Limit: 10, Window: 15 * time.Minute},
	ExchangePerIP:   ratelimit.Rule{Name: "exchange-ip", Limit: 30, Window: time.Minute},
	ExchangePerCode: ratelimit.Rule{Name: "exchange-code", Limit: 20, Window: 10 * time.Minute},
	// Across all clients: a ceiling on guessing codes from many addresses.
	ExchangeBurstAll: ratelimit.Rule{Name: "exchange-all", Limit: 3000, Window: time.Minute},
}

func (l Limits) withDefaults() Limits {
	fill := func(r *ratelimit.Rule, def ratelimit.Rule) {
		if r.Limit <= 0 || r.Window <= 0 {
			*r = def
		}
		if r.Name == "" {
			r.Name = def.Name
		}
	}
	d := DefaultLimits
	fill(&l.LoginPerIP, d.LoginPerIP)
	fill(&l.LoginPerAccount, d.LoginPerAccount)
	fill(&l.RefreshPerIP, d.RefreshPerIP)
	fill(&l.PasswordPerAcct, d.PasswordPerAcct)
	fill(&l.ExchangePerIP, d.ExchangePerIP)
	fill(&l.ExchangePerCode, d.ExchangePerCode)
	fill(&l.ExchangeBurstAll, d.ExchangeBurstAll)
	return l
}

// registerIdentityAPI adds the identity routes to the mux.
func (h *Handler) registerIdentityAPI() {
	h.p.Limits = h.p.Limits.withDefaults()
	if h.p.Limiter == nil {
		h.p.Limiter = ratelimit.NewMemory(nil)
	}
	h.mux.HandleFunc("POST /api/v1/auth/login", h.login)
	h.mux.HandleFunc("POST /api/v1/auth/refresh", h.refresh)
	h.mux.HandleFunc("POST /api/v1/auth/logout", h.logout)
	h.mux.HandleFunc("POST /api/v1/auth/password", h.guard(staffOnly, h.changePassword))
	h.mux.HandleFunc("GET /api/v1/auth/me", h.guard(anyone, h.me))
	h.mux.HandleFunc("POST /api/v1/accounts", h.guard(staffOnly, h.createAccount))
	h.mux.HandleFunc("GET /api/v1/accounts", h.guard(staffOnly, h.listAccounts))
	h.mux.HandleFunc("GET /api/v1/accounts/{id}", h.guard(staffOnly, h.getAccount))
	h.mux.HandleFunc("PUT /api/v1/accounts/{id}/status", h.guard(staffOnly, h.setAccountStatus))
	h.mux.HandleFunc("POST /api/v1/accounts/{id}/password", h.guard(staffOnly, h.resetPassword))
	h.mux.HandleFunc("POST /api/v1/sessions/{id}/links", h.guard(staffOnly, h.issueLinks))
	h.mux.HandleFunc("POST /api/v1/sessions/{id}/revocations", h.guard(staffOnly, h.revokeLinks))
	h.mux.HandleFunc("POST /api/v1/join/exchange", h.exchange)
	h.mux.HandleFunc("GET /j/{code}", h.shortLink)
}

// identityOff answers when no identity service is configured.
func (h *Handler) identityOff(w http.ResponseWriter) bool {
	if h.p.Identity != nil {
		return false
	}
	writeProblem(w, codeNoRoute, "staff accounts and join links are not enabled on this server")
	return true
}

// clientIP is the address the rate limits count a request under: the
// peer, or, behind a trusted proxy, the nearest untrusted address of
// X-Forwarded-For. IPv6 clients count by their /64, which one household
// or phone usually has to itself.
func (h *Handler) clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	trusted := func(a netip.Addr) bool {
		for _, p := range h.p.TrustedProxies {
			if p.Contains(a.Unmap()) {
				return true
			}
		}
		return false
	}
	if trusted(addr) {
		hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
		for i := len(hops) - 1; i >= 0; i-- {
			a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
			if err != nil {
				break
			}
			addr = a
			if !trusted(a) {
				break
			}
		}
	}
	addr = addr.Unmap()
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		return p.String()
	}
	return addr.String()
}

// allow counts an attempt under rule and answers 429 when it is over.
func (h *Handler) allow(w http.ResponseWriter, r *http.Request, rule ratelimit.Rule, key string) bool {
	d, err := h.p.Limiter.Allow(r.Context(), rule, key)
	if err != nil {
		h.log.Warn("rate limiter failed", "rule", rule.Name, "err", err)
		writeProblem(w, cases.EUNAVAILABLE, "try again in a moment")
		return false
	}
	if d.Allowed {
		return true
	}
	secs := int(math.Ceil(d.RetryAfter.Seconds()))
	if secs < 1 {
		secs = 1
	}
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	h.log.Info("rate limited", "rule", rule.Name, "ip", h.clientIP(r))
	writeProblem(w, codeRateLimited, "too many attempts; try again in "+strconv.Itoa(secs)+" seconds")
	return false
}

// sameOrigin refuses cookie-authenticated requests from other sites. The
// cookie is SameSite=Strict already; this also covers old browsers.
func sameOrigin(w http.ResponseWriter, r *http.Request) bool {
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		writeProblem(w, cases.EFORBIDDEN, "cross-site request refused")
		return false
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || !strings.EqualFold(u.Host, r.Host) {
			writeProblem(w, cases.EFORBIDDEN, "cross-site request refused")
			return false
		}
	}
	return true
}

func setRefreshCookie(w http.ResponseWriter, token string, expires time.Time, ttl time.Duration) {
	http.SetCookie(w, &http.Cookie{
		Name: refreshCookie, Value: token, Path: refreshCookiePath,
		Expires: expires, MaxAge: max(1, int(ttl.Seconds())),
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode,
	})
}

func clearRefreshCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{
		Name: refreshCookie, Value: "", Path: refreshCookiePath, MaxAge: -1,
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode,
	})
}

// loginAnswer is the body of a login, a refresh and a password change.
type loginAnswer struct {
	AccessToken string         `json:"accessToken"`
	TokenType   string         `json:"tokenType"`
	ExpiresIn   int            `json:"expiresIn"`
	ExpiresAt   time.Time      `json:"expiresAt"`
	Account     *cases.Account `json:"account"`
}

func writeLogin(w http.ResponseWriter, l *identity.Login) {
	setRefreshCookie(w, l.RefreshToken, l.RefreshExpiresAt, l.RefreshExpiresAt.Sub(l.IssuedAt))
	writeJSON(w, http.StatusOK, loginAnswer{
		AccessToken: l.AccessToken, TokenType: "Bearer",
		ExpiresIn: int(l.AccessExpiresAt.Sub(l.IssuedAt).Seconds()), ExpiresAt: l.AccessExpiresAt.UTC(),
		Account: l.Account,
	})
}

// loginRequest is the body of POST /api/v1/auth/login.
type loginRequest struct {
	Login    string `json:"login"`
	Password string `json:"password"`
}

func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	if h.identityOff(w) || !h.allow(w, r, h.p.Limits.LoginPerIP, h.clientIP(r)) {
		return
	}
	var req loginRequest
	if !h.decode(w, r, &req) {
		return
	}
	if !h.allow(w, r, h.p.Limits.LoginPerAccount, identity.NormalizeLogin(req.Login)) {
		return
	}
	l, err := h.p.Identity.Login(r.Context(), req.Login, req.Password)
	if err != nil {
		if cases.ErrorCode(err) == cases.EUNAUTHORIZED {
			w.Header().Set("WWW-Authenticate", `Bearer realm="concord-staff"`)
		}
		writeError(w, r, h.log, err)
		return
	}
	writeLogin(w, l)
}

func (h *Handler) refresh(w http.ResponseWriter, r *http.Request) {
	if h.identityOff(w) || !sameOrigin(w, r) || !h.allow(w, r, h.p.Limits.RefreshPerIP, h.clientIP(r)) {
		return
	}
	c, err := r.Cookie(refreshCookie)
	if err != nil || c.Value == "" {
		writeProblem(w, codeUnauthorized, "no refresh cookie; log in")
		return
	}
	l, err := h.p.Identity.Refresh(r.Context(), c.Value)
	if err != nil {
		if cases.ErrorCode(err) == cases.EUNAUTHORIZED {
			clearRefreshCookie(w)
		}
		writeError(w, r, h.log, err)
		return
	}
	writeLogin(w, l)
}

// logout ends the login of the refresh cookie and of the bearer access
// token, whichever are given, and clears the cookie.
func (h *Handler) logout(w http.ResponseWriter, r *http.Request) {
	if h.identityOff(w) || !sameOrigin(w, r) {
		return
	}
	refresh := ""
	if c, err := r.Cookie(refreshCookie); err == nil {
		refresh = c.Value
	}
	session := ""
	if p, err := h.authenticate(r); err == nil && p.kind == staffKind {
		session = p.session
	}
	if err := h.p.Identity.Logout(r.Context(), refresh, session); err != nil {
		writeError(w, r, h.log, err)
		return
	}
	clearRefreshCookie(w)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

// passwordRequest is the body of POST /api/v1/auth/password.
type passwordRequest struct {
	CurrentPassword string `json:"currentPassword"`
	NewPassword     string `json:"newPassword"`
}

func (h *Handler) changePassword(w http.ResponseWriter, r *http.Request) {
	p := principalOf(r)
	if p.kind != staffKind {
		writeProblem(w, cases.EFORBIDDEN, "the operator token has no password; this is for staff accounts")
		return
	}
	if !h.allow(w, r, h.p.Limits.PasswordPerAcct, p.account.ID) {
		return
	}
	var req passwordRequest
	if !h.decode(w, r, &req) {
		return
	}
	l, err := h.p.Identity.ChangePassword(r.Context(), p.account.ID, req.CurrentPassword, req.NewPassword)
	if err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	writeLogin(w, l)
}

// meAnswer is the body of GET /api/v1/auth/me.
type meAnswer struct {
	Kind    string         `json:"kind"` // operator, staff, party
	Account *cases.Account `json:"account,omitempty"`
	Party   *meParty       `json:"party,omitempty"`
}

type meParty struct {
	CaseID        string `json:"caseId"`
	SessionID     string `json:"sessionId"`
	ParticipantID string `json:"participantId"`
	Role          string `json:"role"`
	Side          string `json:"side"`
	Name          string `json:"name,omitempty"`
}

func (h *Handler) me(w http.ResponseWriter, r *http.Request) {
	p := principalOf(r)
	switch p.kind {
	case operatorKind:
		writeJSON(w, http.StatusOK, meAnswer{Kind: "operator"})
	case staffKind:
		writeJSON(w, http.StatusOK, meAnswer{Kind: "staff", Account: p.account})
	default:
		c := p.claims
		writeJSON(w, http.StatusOK, meAnswer{Kind: "party", Party: &meParty{CaseID: c.CaseID, SessionID: c.SessionID,
			ParticipantID: c.ParticipantID(), Role: c.Role, Side: c.Side, Name: c.Name}})
	}
}

// accountRequest is the body of POST /api/v1/accounts.
type accountRequest struct {
	Login          string          `json:"login"`
	Name           string          `json:"name"`
	Role           cases.StaffRole `json:"role"`
	InstitutionID  string          `json:"institutionId,omitempty"`
	EnterpriseCode string          `json:"enterpriseCode,omitempty"`
	MediatorID     string          `json:"mediatorId,omitempty"`
	Password       string          `json:"password"`
}

func (h *Handler) createAccount(w http.ResponseWriter, r *http.Request) {
	if h.identityOff(w) {
		return
	}
	var req accountRequest
	if !h.decode(w, r, &req) {
		return
	}
	p := principalOf(r)
	if err := h.authorize(r.Context(), p, actCreateAccount, target{Role: req.Role, InstitutionID: req.InstitutionID,
		EnterpriseCode: req.EnterpriseCode}); err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	a, err := h.p.Identity.CreateAccount(r.Context(), p.actor(), identity.NewAccount{
		Login: req.Login, Name: req.Name, Role: req.Role, InstitutionID: req.InstitutionID,
		EnterpriseCode: req.EnterpriseCode, MediatorID: req.MediatorID, Password: req.Password,
	})
	if err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/v1/accounts/"+a.ID)
	writeJSON(w, http.StatusCreated, a)
}

// accountsQuery names the query parameters of GET /api/v1/accounts.
var accountsQuery = []string{"institutionId", "role", "enterpriseCode"}

func (h *Handler) listAccounts(w http.ResponseWriter, r *http.Request) {
	if h.identityOff(w) {
		return
	}
	q := r.URL.Query()
	for name := range q {
		if !slices.Contains(accountsQuery, name) {
			writeFieldProblem(w, codeBadRequest, name, "unknown query parameter "+strconv.Quote(name)+"; known: "+strings.Join(accountsQuery, ", "))
			return
		}
	}
	p := principalOf(r)
	if err := h.authorize(r.Context(), p, actListAccounts, target{}); err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	f := cases.AccountFilter{Role: cases.StaffRole(q.Get("role")), EnterpriseCode: q.Get("enterpriseCode")}
	if err := h.accountScope(r.Context(), p, &f); err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	if inst := q.Get("institutionId"); inst != "" {
		if f.InstitutionIDs == nil || slices.Contains(f.InstitutionIDs, inst) {
			f.InstitutionIDs = []string{inst}
		} else {
			f.InstitutionIDs = []string{}
		}
	}
	list, err := h.p.Identity.Accounts(r.Context(), f)
	if err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": list})
}

// account reads the account of the path and authorises act on it.
func (h *Handler) account(w http.ResponseWriter, r *http.Request, act action) (*cases.Account, bool) {
	if h.identityOff(w) {
		return nil, false
	}
	a, err := h.p.Identity.Account(r.Context(), r.PathValue("id"))
	if err == nil {
		err = h.authorize(r.Context(), principalOf(r), act, target{Account: a})
	}
	if err != nil {
		h.writeCaseError(w, r, err)
		return nil, false
	}
	return a, true
}

func (h *Handler) getAccount(w http.ResponseWriter, r *http.Request) {
	if a, ok := h.account(w, r, actReadAccount); ok {
		writeJSON(w, http.StatusOK, a)
	}
}

// statusRequest is the body of PUT /api/v1/accounts/{id}/status.
type statusRequest struct {
	Status string `json:"status"`
}

func (h *Handler) setAccountStatus(w http.ResponseWriter, r *http.Request) {
	a, ok := h.account(w, r, actManageAccount)
	if !ok {
		return
	}
	var req statusRequest
	if !h.decode(w, r, &req) {
		return
	}
	a, err := h.p.Identity.SetStatus(r.Context(), principalOf(r).actor(), a.ID, req.Status)
	if err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, a)
}

// resetRequest is the body of POST /api/v1/accounts/{id}/password.
type resetRequest struct {
	Password string `json:"password"`
}

func (h *Handler) resetPassword(w http.ResponseWriter, r *http.Request) {
	a, ok := h.account(w, r, actManageAccount)
	if !ok {
		return
	}
	var req resetRequest
	if !h.decode(w, r, &req) {
		return
	}
	if err := h.p.Identity.ResetPassword(r.Context(), principalOf(r).actor(), a.ID, req.Password); err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

// sessionCase reads the session of the path and its case, and authorises
// act on them.
func (h *Handler) sessionCase(w http.ResponseWriter, r *http.Request, act action) (*cases.Session, bool) {
	if h.identityOff(w) {
		return nil, false
	}
	sess, err := h.p.Cases.Session(r.Context(), r.PathValue("id"))
	var c *cases.Case
	if err == nil {
		c, err = h.p.Cases.Case(r.Context(), sess.CaseID)
	}
	if err == nil {
		err = h.authorize(r.Context(), principalOf(r), act, target{Case: c, SessionID: sess.ID})
	}
	if err != nil {
		if cases.ErrorCode(err) == cases.ENOTFOUND {
			err = notFound("session")
		}
		h.writeCaseError(w, r, err)
		return nil, false
	}
	return sess, true
}

// recipientInput is where one participant's new link is sent.
type recipientInput struct {
	ParticipantID string `json:"participantId"`
	Phone         string `json:"phone"`
	Channel       string `json:"channel,omitempty"` // sms (default), wechat
}

// linksRequest is the body of POST /api/v1/sessions/{id}/links.
type linksRequest struct {
	// ParticipantIDs, when given, limits the new links to them.
	ParticipantIDs []string         `json:"participantIds,omitempty"`
	Recipients     []recipientInput `json:"recipients,omitempty"`
}

func (h *Handler) issueLinks(w http.ResponseWriter, r *http.Request) {
	sess, ok := h.sessionCase(w, r, actManageLinks)
	if !ok {
		return
	}
	var req linksRequest
	if !h.decode(w, r, &req) {
		return
	}
	to := map[string]identity.Recipient{}
	for _, rc := range req.Recipients {
		ch := rc.Channel
		if ch == "" {
			ch = cases.NotifySMS
		}
		to[rc.ParticipantID] = identity.Recipient{Channel: ch, To: strings.TrimSpace(rc.Phone)}
	}
	links, err := h.p.Identity.IssueLinks(r.Context(), sess.ID, principalOf(r).actor(), req.ParticipantIDs, to)
	if err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"items": links})
}

// LinkRevoker is what the room server does when the links of a
// participant (or of a whole session, participantID empty) are revoked:
// drop the connections they opened. Params.Rooms may implement it.
type LinkRevoker interface {
	RevokeLinks(sessionID, participantID string)
}

// revokeRequest is the body of POST /api/v1/sessions/{id}/revocations:
// a jti revokes one link (or a token); a participantId every link of the
// participant; neither, every link of the session.
type revokeRequest struct {
	ParticipantID string `json:"participantId,omitempty"`
	JTI           string `json:"jti,omitempty"`
	Reason        string `json:"reason,omitempty"`
}

func (h *Handler) revokeLinks(w http.ResponseWriter, r *http.Request) {
	sess, ok := h.sessionCase(w, r, actManageLinks)
	if !ok {
		return
	}
	var req revokeRequest
	if !h.decode(w, r, &req) {
		return
	}
	rev, err := h.p.Identity.Revoke(r.Context(), principalOf(r).actor(), identity.RevokeRequest{
		SessionID: sess.ID, ParticipantID: req.ParticipantID, JTI: req.JTI, Reason: req.Reason,
	})
	if err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	// Whoever is in the room by a revoked link leaves it now. (One
	// revoked short link does not say who holds it: revoke the
	// participant to remove someone.)
	if rv, ok := h.p.Rooms.(LinkRevoker); ok && rev.Kind != cases.RevokeToken {
		rv.RevokeLinks(rev.SessionID, rev.ParticipantID)
	}
	writeJSON(w, http.StatusCreated, rev)
}

// exchangeRequest is the body of POST /api/v1/join/exchange.
type exchangeRequest struct {
	Code string `json:"code"`
}

// exchange trades a short link's code for its participant's join token.
// It needs no credential: the code is one. Attempts are limited per
// address, per code and overall, so that codes cannot be guessed.
func (h *Handler) exchange(w http.ResponseWriter, r *http.Request) {
	if h.identityOff(w) || !h.allow(w, r, h.p.Limits.ExchangePerIP, h.clientIP(r)) ||
		!h.allow(w, r, h.p.Limits.ExchangeBurstAll, "all") {
		return
	}
	var req exchangeRequest
	if !h.decode(w, r, &req) {
		return
	}
	key := req.Code
	if n, ok := identity.NormalizeCode(req.Code); ok {
		key = n
	}
	if !h.allow(w, r, h.p.Limits.ExchangePerCode, key) {
		return
	}
	ex, err := h.p.Identity.Exchange(r.Context(), req.Code)
	if err != nil {
		if code := cases.ErrorCode(err); code == identity.ELinkNotFound {
			h.log.Info("join link exchange refused", "ip", h.clientIP(r), "code", code)
		}
		writeError(w, r, h.log, err)
		return
	}
	writeJSON(w, http.StatusOK, ex)
}

// shortLink serves /j/{code}, the link in an SMS: it redirects to the
// join page with the code in the fragment, which the page exchanges for
// the token. The fragment never reaches a server's logs or a Referer.
// Nothing is looked up here: a preview fetch by a messaging app spends
// nothing and learns nothing.
func (h *Handler) shortLink(w http.ResponseWriter, r *http.Request) {
	code, ok := identity.NormalizeCode(r.PathValue("code"))
	if !ok {
		code = "invalid"
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Location", "/join#code="+code)
	w.WriteHeader(http.StatusFound)
}

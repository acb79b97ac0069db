package web

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/concord-odr/concord/cases"
	"github.com/concord-odr/concord/cases/calendar"
)

// The kiosk API: a community station's remote mediation room. The kiosk
// is a device account (role kiosk) of the station; the station's staff
// start, on it, a session for an elderly walk-in visitor, who then joins
// on the kiosk itself. A kiosk may call these routes and nothing else
// (authz.go); no one else may call them.
//
//	GET  /api/v1/kiosk/sessions            the walk-in sessions started on this kiosk today, with their queue tickets
//	POST /api/v1/kiosk/sessions            starts one: a case (channel kiosk) at the station, queued for an instant mediator
//	POST /api/v1/kiosk/sessions/{id}/join  the visitor's join token, once a mediator took the session ({id}: the case)

func (h *Handler) registerKioskAPI() {
	h.mux.HandleFunc("GET /kiosk", h.page("kiosk.html"))
	h.mux.HandleFunc("GET /api/v1/kiosk/sessions", h.guard(kioskOnly, h.kioskSessions))
	h.mux.HandleFunc("POST /api/v1/kiosk/sessions", h.guard(kioskOnly, h.kioskStart))
	h.mux.HandleFunc("POST /api/v1/kiosk/sessions/{id}/join", h.guard(kioskOnly, h.kioskJoin))
}

// kioskRespondentPending names the other party of a walk-in whose
// respondent the visitor could not name; the mediator completes it.
const kioskRespondentPending = "（待核实）"

// kioskSession is one walk-in session as the kiosk shows it: no more of
// the case than the station's staff typed in.
type kioskSession struct {
	CaseID     string        `json:"caseId"`
	CaseNumber string        `json:"caseNumber"`
	Visitor    string        `json:"visitor"`
	Category   string        `json:"category"`
	State      cases.State   `json:"state"`
	CreatedAt  time.Time     `json:"createdAt"`
	Ticket     *cases.Ticket `json:"ticket,omitempty"`
}

// kioskRef is the external reference prefix of the cases a kiosk starts:
// it says which device started them.
func kioskRef(p *principal) string { return "kiosk/" + p.account.ID + "/" }

func (h *Handler) kioskSessionOf(c *cases.Case) kioskSession {
	ks := kioskSession{CaseID: c.ID, CaseNumber: c.Number, Visitor: c.Applicant.Name, Category: c.Category,
		State: c.State, CreatedAt: c.CreatedAt}
	if t, err := h.p.Queue.TicketOfCase(c.ID); err == nil {
		ks.Ticket = t
	}
	return ks
}

// kioskCase reads a case this kiosk started, hiding any other.
func (h *Handler) kioskCase(ctx context.Context, p *principal, id string) (*cases.Case, error) {
	c, err := h.p.Cases.Case(ctx, id)
	if err != nil || c.Channel != cases.ChannelKiosk || !strings.HasPrefix(c.ExternalRef, kioskRef(p)) ||
		c.InstitutionID != p.account.InstitutionID {
		return nil, notFound("session")
	}
	return c, nil
}

func (h *Handler) kioskSessions(w http.ResponseWriter, r *http.Request) {
	if !knownQuery(w, r) {
		return
	}
	p := principalOf(r)
	h.p.Queue.Tick(r.Context())
	today := calendar.DateOf(h.p.Cases.Now()).String()
	page, err := h.p.Cases.ListCases(r.Context(), cases.CaseQuery{InstitutionIDs: []string{p.account.InstitutionID},
		CreatedFrom: today, CreatedTo: today, Limit: cases.MaxPageSize})
	if err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	items := []kioskSession{}
	for i := range page.Items {
		c := &page.Items[i]
		if c.Channel == cases.ChannelKiosk && strings.HasPrefix(c.ExternalRef, kioskRef(p)) {
			items = append(items, h.kioskSessionOf(c))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items})
}

// kioskStartBody is what the station's staff enter for a walk-in.
type kioskStartBody struct {
	Name        string `json:"name"`
	Phone       string `json:"phone,omitempty"`
	Category    string `json:"category"`
	Description string `json:"description"`
	// RespondentName is the other party, if the visitor can name it.
	RespondentName string `json:"respondentName,omitempty"`
}

// kioskStart opens the walk-in's case at the station through intake,
// takes it to accepted (the station's staff received the visitor in
// person) and asks the queue for an instant mediator.
func (h *Handler) kioskStart(w http.ResponseWriter, r *http.Request) {
	b, ok := readBody(w, r)
	if !ok {
		return
	}
	var req kioskStartBody
	if !decodeStrict(w, b, &req) {
		return
	}
	if strings.TrimSpace(req.Description) == "" {
		writeFieldProblem(w, cases.EINVALID, "description", "description is required: a few words on the dispute")
		return
	}
	if !slices.Contains(cases.Categories(), req.Category) {
		writeFieldProblem(w, cases.EINVALID, "category", "category must be one of "+strings.Join(cases.Categories(), ", "))
		return
	}
	p := principalOf(r)
	ctx := r.Context()
	respondent := strings.TrimSpace(req.RespondentName)
	if respondent == "" {
		respondent = kioskRespondentPending
	}
	c, _, err := h.p.Cases.OpenCase(ctx, cases.NewCase{
		InstitutionID: p.account.InstitutionID, Category: req.Category, Channel: cases.ChannelKiosk,
		ExternalRef: kioskRef(p) + cases.NewID(""),
		Applicant:   cases.Party{Name: strings.TrimSpace(req.Name), Kind: "person", Phone: strings.TrimSpace(req.Phone)},
		Respondent:  cases.Party{Name: respondent},
		Claims:      strings.TrimSpace(req.Description), Actor: p.actor(),
	})
	if err == nil {
		c, err = h.p.Cases.Apply(ctx, c.ID, cases.TransitionRequest{To: cases.StateDispatched, Actor: p.actor(),
			InstitutionID: p.account.InstitutionID})
	}
	for _, to := range []cases.State{cases.StateRespondentContacted, cases.StateAccepted} {
		if err == nil {
			c, err = h.p.Cases.Transition(ctx, c.ID, to, p.actor(), map[string]any{"walkIn": true})
		}
	}
	if err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	if _, err := h.queue(ctx).Request(ctx, c.ID, p.actor()); err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/v1/kiosk/sessions/"+c.ID)
	writeJSON(w, http.StatusCreated, h.kioskSessionOf(c))
}

// kioskJoinAnswer is the visitor's way into the room, on the kiosk.
type kioskJoinAnswer struct {
	SessionID string    `json:"sessionId"`
	Token     string    `json:"token"`
	URL       string    `json:"url"` // the room page, token in the fragment
	ExpiresAt time.Time `json:"expiresAt"`
}

// kioskJoin issues the visitor's link of the session a mediator took and
// exchanges it: the kiosk joins as the applicant's device.
func (h *Handler) kioskJoin(w http.ResponseWriter, r *http.Request) {
	if h.identityOff(w) {
		return
	}
	p := principalOf(r)
	ctx := r.Context()
	c, err := h.kioskCase(ctx, p, r.PathValue("id"))
	if err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	t, err := h.queue(ctx).TicketOfCase(c.ID)
	if err != nil || t.SessionID == "" {
		h.writeCaseError(w, r, cases.Errorf(cases.ETRANSITION, "no mediator has taken the session yet; please wait"))
		return
	}
	sess, err := h.p.Cases.Session(ctx, t.SessionID)
	if err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	visitor := ""
	for _, pt := range sess.Participants {
		if pt.Role == cases.RoleParty && pt.Side == cases.SideApplicant {
			visitor = pt.ID
			break
		}
	}
	if visitor == "" {
		h.writeCaseError(w, r, cases.Errorf(cases.ETRANSITION, "the session has no place for the visitor"))
		return
	}
	links, err := h.p.Identity.IssueLinks(ctx, sess.ID, p.actor(), []string{visitor}, nil)
	if err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	ex, err := h.p.Identity.Exchange(ctx, links[0].Code)
	if err != nil {
		writeError(w, r, h.log, err)
		return
	}
	writeJSON(w, http.StatusOK, kioskJoinAnswer{SessionID: sess.ID, Token: ex.Token, URL: "/join#" + ex.Token, ExpiresAt: ex.ExpiresAt})
}

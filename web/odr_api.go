package web

import (
	"net/http"
	"strings"
	"time"

	"github.com/concord-odr/concord/cases"
)

// The ODR reconciliation API: the merchants' green channel (cases/odr.go;
// who may call what is decided in odr_authz.go).
//
//	POST /api/v1/odr/enterprises                        files an enrolment, pending approval
//	GET  /api/v1/odr/enterprises                        lists the enrolments in the caller's scope
//	GET  /api/v1/odr/enterprises/{creditCode}           one enrolment
//	POST /api/v1/odr/enterprises/{creditCode}/review    approve, suspend, reinstate or remove
//	GET  /api/v1/odr/enterprises/{creditCode}/inbox     the complaints waiting for the merchant
//	GET  /api/v1/odr/enterprises/{creditCode}/dashboard the merchant's own figures
//	GET  /api/v1/odr/cases/{id}                         a case's reconciliation
//	POST /api/v1/odr/cases/{id}/actions                 the merchant accepts, counter-offers, asks for video, declines
//	POST /api/v1/odr/cases/{id}/answer                  the applicant accepts or refuses the offer
//	GET  /api/v1/odr/routes                             the dispatch routes
//	PUT  /api/v1/odr/routes/{id}                        creates or replaces a route
//	DELETE /api/v1/odr/routes/{id}                      removes a route
//	POST /api/v1/odr/sweep                              runs the deadline worker's round now

// registerODRAPI adds the reconciliation routes to the mux.
func (h *Handler) registerODRAPI() {
	h.mux.HandleFunc("POST /api/v1/odr/enterprises", h.guard(staffOnly, h.applyEnrolment))
	h.mux.HandleFunc("GET /api/v1/odr/enterprises", h.guard(staffOnly, h.listEnrolments))
	h.mux.HandleFunc("GET /api/v1/odr/enterprises/{creditCode}", h.guard(staffOnly, h.getEnrolment))
	h.mux.HandleFunc("POST /api/v1/odr/enterprises/{creditCode}/review", h.guard(staffOnly, h.reviewEnrolment))
	h.mux.HandleFunc("GET /api/v1/odr/enterprises/{creditCode}/inbox", h.guard(staffOnly, h.merchantInbox))
	h.mux.HandleFunc("GET /api/v1/odr/enterprises/{creditCode}/dashboard", h.guard(staffOnly, h.merchantDashboard))
	h.mux.HandleFunc("GET /api/v1/odr/cases/{id}", h.guard(staffOrParty, h.getReconciliation))
	h.mux.HandleFunc("POST /api/v1/odr/cases/{id}/actions", h.guard(staffOnly, h.merchantAction))
	h.mux.HandleFunc("POST /api/v1/odr/cases/{id}/answer", h.guard(partyOnly, h.answerOffer))
	h.mux.HandleFunc("GET /api/v1/odr/routes", h.guard(staffOnly, h.listRoutes))
	h.mux.HandleFunc("PUT /api/v1/odr/routes/{id}", h.guard(staffOnly, h.putRoute))
	h.mux.HandleFunc("DELETE /api/v1/odr/routes/{id}", h.guard(staffOnly, h.deleteRoute))
	h.mux.HandleFunc("POST /api/v1/odr/sweep", h.operator(h.sweepODR))
}

// enrolmentRequest is the body of POST /api/v1/odr/enterprises.
type enrolmentRequest struct {
	CreditCode    string   `json:"creditCode"`
	Name          string   `json:"name"`
	InstitutionID string   `json:"institutionId"`
	Categories    []string `json:"categories"`
	Stores        []string `json:"stores"`
	District      string   `json:"district"`
	ResponseDays  int      `json:"responseDays"`
}

func (h *Handler) applyEnrolment(w http.ResponseWriter, r *http.Request) {
	b, ok := readBody(w, r)
	if !ok {
		return
	}
	var req enrolmentRequest
	if !decodeStrict(w, b, &req) {
		return
	}
	p := principalOf(r)
	if err := h.mayEnrolAt(r.Context(), p, req.InstitutionID); err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	e, err := h.p.Cases.ApplyEnrolment(r.Context(), cases.Enrolment{
		CreditCode: req.CreditCode, Name: req.Name, InstitutionID: req.InstitutionID, Categories: req.Categories,
		Stores: req.Stores, District: req.District, ResponseDays: req.ResponseDays, Actor: p.actor(),
	})
	if err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/v1/odr/enterprises/"+e.CreditCode)
	writeJSON(w, http.StatusCreated, e)
}

func (h *Handler) listEnrolments(w http.ResponseWriter, r *http.Request) {
	if !knownQuery(w, r, "status") {
		return
	}
	p := principalOf(r)
	q := cases.EnterpriseQuery{Status: r.URL.Query().Get("status")}
	list, err := h.p.Cases.ListEnterprises(r.Context(), q)
	if err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	items := []cases.Enterprise{}
	for i := range list {
		if h.enterpriseVisible(r.Context(), p, &list[i]) == nil {
			items = append(items, list[i])
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items})
}

// enterprise reads the path's enterprise and checks that the caller
// may know of it.
func (h *Handler) enterprise(w http.ResponseWriter, r *http.Request) (*cases.Enterprise, bool) {
	e, err := h.p.Cases.Enterprise(r.Context(), r.PathValue("creditCode"))
	if err == nil {
		err = h.enterpriseVisible(r.Context(), principalOf(r), e)
	}
	if err != nil {
		h.writeCaseError(w, r, err)
		return nil, false
	}
	return e, true
}

func (h *Handler) getEnrolment(w http.ResponseWriter, r *http.Request) {
	if e, ok := h.enterprise(w, r); ok {
		writeJSON(w, http.StatusOK, e)
	}
}

// reviewRequest is the body of POST .../review.
type reviewRequest struct {
	Action string `json:"action"`
	Reason string `json:"reason"`
}

func (h *Handler) reviewEnrolment(w http.ResponseWriter, r *http.Request) {
	b, ok := readBody(w, r)
	if !ok {
		return
	}
	var req reviewRequest
	if !decodeStrict(w, b, &req) {
		return
	}
	e, ok := h.enterprise(w, r)
	if !ok {
		return
	}
	p := principalOf(r)
	if err := h.mayReviewEnterprise(r.Context(), p, e); err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	e, err := h.p.Cases.ReviewEnrolment(r.Context(), e.CreditCode, req.Action, req.Reason, p.actor())
	if err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, e)
}

func (h *Handler) merchantInbox(w http.ResponseWriter, r *http.Request) {
	e, ok := h.enterprise(w, r)
	if !ok {
		return
	}
	if err := h.mayReadMerchant(r.Context(), principalOf(r), e, true); err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	items, err := h.p.Cases.Inbox(r.Context(), e.CreditCode)
	if err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items})
}

func (h *Handler) merchantDashboard(w http.ResponseWriter, r *http.Request) {
	if !knownQuery(w, r, "from", "to") {
		return
	}
	e, ok := h.enterprise(w, r)
	if !ok {
		return
	}
	if err := h.mayReadMerchant(r.Context(), principalOf(r), e, false); err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	q := r.URL.Query()
	d, err := h.p.Cases.Dashboard(r.Context(), e.CreditCode, q.Get("from"), q.Get("to"))
	if err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

// reconciliationCase reads the path's case and checks that the caller
// may know of it.
func (h *Handler) reconciliationCase(w http.ResponseWriter, r *http.Request) (*cases.Case, bool) {
	c, err := h.p.Cases.Case(r.Context(), r.PathValue("id"))
	if err == nil {
		err = h.caseVisible(r.Context(), principalOf(r), c)
	}
	if err != nil {
		h.writeCaseError(w, r, err)
		return nil, false
	}
	return c, true
}

// reconciliationAnswer is a case's reconciliation with the case's state.
type reconciliationAnswer struct {
	CaseID         string                `json:"caseId"`
	Number         string                `json:"number"`
	State          cases.State           `json:"state"`
	Reconciliation *cases.Reconciliation `json:"reconciliation"`
	Session        *cases.Session        `json:"session,omitempty"`
}

func (h *Handler) getReconciliation(w http.ResponseWriter, r *http.Request) {
	c, ok := h.reconciliationCase(w, r)
	if !ok {
		return
	}
	rec, err := h.p.Cases.Reconciliation(r.Context(), c.ID)
	if err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, reconciliationAnswer{CaseID: c.ID, Number: c.Number, State: c.State, Reconciliation: rec})
}

// merchantActionRequest is the body of POST /api/v1/odr/cases/{id}/actions.
type merchantActionRequest struct {
	Action      string     `json:"action"`
	Terms       string     `json:"terms,omitempty"`
	AmountCents int64      `json:"amountCents,omitempty"`
	PerformBy   string     `json:"performBy,omitempty"`
	Reason      string     `json:"reason,omitempty"`
	ScheduledAt *time.Time `json:"scheduledAt,omitempty"`
}

func (h *Handler) merchantAction(w http.ResponseWriter, r *http.Request) {
	b, ok := readBody(w, r)
	if !ok {
		return
	}
	var req merchantActionRequest
	if !decodeStrict(w, b, &req) {
		return
	}
	c, ok := h.reconciliationCase(w, r)
	if !ok {
		return
	}
	p := principalOf(r)
	code, err := h.merchantActor(r.Context(), p, c)
	if err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	res, err := h.p.Cases.MerchantAct(r.Context(), c.ID, cases.MerchantAction{
		Kind: req.Action, EnterpriseCode: code, Actor: p.actor(), Terms: strings.TrimSpace(req.Terms),
		AmountCents: req.AmountCents, PerformBy: req.PerformBy, Reason: req.Reason, ScheduledAt: req.ScheduledAt,
	})
	if err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, reconciliationAnswer{CaseID: res.Case.ID, Number: res.Case.Number, State: res.Case.State,
		Reconciliation: res.Reconciliation, Session: res.Session})
}

// answerRequest is the body of POST /api/v1/odr/cases/{id}/answer.
type answerRequest struct {
	OfferID string `json:"offerId"`
	Accept  *bool  `json:"accept"`
	Note    string `json:"note,omitempty"`
}

func (h *Handler) answerOffer(w http.ResponseWriter, r *http.Request) {
	b, ok := readBody(w, r)
	if !ok {
		return
	}
	var req answerRequest
	if !decodeStrict(w, b, &req) {
		return
	}
	c, ok := h.reconciliationCase(w, r)
	if !ok {
		return
	}
	p := principalOf(r)
	if err := h.applicantOf(p, c); err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	if req.Accept == nil {
		writeFieldProblem(w, cases.EINVALID, "accept", "accept is required: true to accept the offer, false to refuse it")
		return
	}
	res, err := h.p.Cases.AnswerOffer(r.Context(), c.ID, cases.ApplicantAnswer{
		OfferID: req.OfferID, Accept: *req.Accept, Note: req.Note, Actor: p.actor(),
	})
	if err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, reconciliationAnswer{CaseID: res.Case.ID, Number: res.Case.Number, State: res.Case.State,
		Reconciliation: res.Reconciliation})
}

func (h *Handler) listRoutes(w http.ResponseWriter, r *http.Request) {
	p := principalOf(r)
	if p.role() != cases.StaffPlatformAdmin && p.role() != cases.StaffInstitutionAdmin {
		h.writeCaseError(w, r, forbidden("a %s does not manage dispatch routes", roleName(p)))
		return
	}
	list, err := h.p.Cases.DispatchRoutes(r.Context())
	if err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": list})
}

// routeRequest is the body of PUT /api/v1/odr/routes/{id}.
type routeRequest struct {
	Category      string `json:"category"`
	District      string `json:"district"`
	InstitutionID string `json:"institutionId"`
}

func (h *Handler) putRoute(w http.ResponseWriter, r *http.Request) {
	b, ok := readBody(w, r)
	if !ok {
		return
	}
	var req routeRequest
	if !decodeStrict(w, b, &req) {
		return
	}
	p := principalOf(r)
	id := r.PathValue("id")
	err := h.mayRoute(r.Context(), p, req.InstitutionID)
	if err == nil {
		// Replacing a route is also taking it from where it sent cases.
		if old, gerr := h.p.Cases.DispatchRoute(r.Context(), id); gerr == nil {
			err = h.mayRoute(r.Context(), p, old.InstitutionID)
		}
	}
	if err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	route := &cases.DispatchRoute{ID: id, Category: req.Category, District: req.District, InstitutionID: req.InstitutionID}
	if err := h.p.Cases.PutDispatchRoute(r.Context(), route); err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, route)
}

func (h *Handler) deleteRoute(w http.ResponseWriter, r *http.Request) {
	route, err := h.p.Cases.DispatchRoute(r.Context(), r.PathValue("id"))
	if err == nil {
		err = h.mayRoute(r.Context(), principalOf(r), route.InstitutionID)
	}
	if err == nil {
		err = h.p.Cases.DeleteDispatchRoute(r.Context(), route.ID)
	}
	if err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// sweepODR runs one round of the reconciliation worker: complaints to
// the merchants' inboxes, overdue ones to mediation.
func (h *Handler) sweepODR(w http.ResponseWriter, r *http.Request) {
	res, err := h.p.Cases.SweepReconciliation(r.Context())
	if err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// knownQuery refuses query parameters other than the given ones, and
// any given twice.
func knownQuery(w http.ResponseWriter, r *http.Request, names ...string) bool {
	for name, vs := range r.URL.Query() {
		known := false
		for _, n := range names {
			known = known || n == name
		}
		if !known {
			writeFieldProblem(w, codeBadRequest, name, "unknown query parameter "+name+"; known: "+strings.Join(names, ", "))
			return false
		}
		if len(vs) > 1 {
			writeFieldProblem(w, codeBadRequest, name, "query parameter "+name+" given more than once")
			return false
		}
	}
	return true
}

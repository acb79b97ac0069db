package web

import (
	"context"
	"net/http"
	"slices"
	"time"

	"github.com/concord-odr/concord/cases"
)

// The instant-mediation queue API (cases/queue.go) and the mediators'
// shifts:
//
//	POST   /api/v1/queue/requests               a party (or staff for it) asks to mediate now -> ticket
//	GET    /api/v1/queue/requests               the open requests in the staff member's scope
//	GET    /api/v1/queue/requests/{id}          the ticket: status, place, expected wait
//	DELETE /api/v1/queue/requests/{id}          withdraws the request
//	POST   /api/v1/queue/requests/{id}/accept   the mediator offered it takes it -> session
//	POST   /api/v1/queue/requests/{id}/pass     the mediator offered it passes
//	PUT    /api/v1/queue/mediators/{id}/presence  heartbeat: present, available or not
//	GET    /api/v1/queue/mediators/{id}         the mediator's standing and offer
//	GET    /api/v1/institutions/{id}/shifts     the shifts of an institution
//	POST   /api/v1/institutions/{id}/shifts     adds a shift
//	DELETE /api/v1/shifts/{id}                  removes a shift
//
// A mediator's account linked to its mediator record (Account.MediatorID)
// acts for that mediator alone, and may name it "me" (the path's {id},
// or an empty mediatorId in accept and pass); acting for another
// mediator of its institution is forbidden. An account not linked acts
// for the mediators of its institution. Institution admins act for the
// mediators in their scope.

func (h *Handler) registerQueueAPI() {
	if h.p.Queue == nil && h.p.Cases != nil {
		h.p.Queue = cases.NewQueue(cases.QueueParams{Service: h.p.Cases, Logger: h.log}, false)
	}
	h.mux.HandleFunc("POST /api/v1/queue/requests", h.guard(staffOrParty, h.queueRequest))
	h.mux.HandleFunc("GET /api/v1/queue/requests", h.guard(staffOnly, h.queueList))
	h.mux.HandleFunc("GET /api/v1/queue/requests/{id}", h.guard(staffOrParty, h.queueTicket))
	h.mux.HandleFunc("DELETE /api/v1/queue/requests/{id}", h.guard(staffOrParty, h.queueCancel))
	h.mux.HandleFunc("POST /api/v1/queue/requests/{id}/accept", h.guard(staffOnly, h.queueAnswer(true)))
	h.mux.HandleFunc("POST /api/v1/queue/requests/{id}/pass", h.guard(staffOnly, h.queueAnswer(false)))
	h.mux.HandleFunc("PUT /api/v1/queue/mediators/{id}/presence", h.guard(staffOnly, h.queuePresence))
	h.mux.HandleFunc("GET /api/v1/queue/mediators/{id}", h.guard(staffOnly, h.queueMediator))
	h.mux.HandleFunc("GET /api/v1/institutions/{id}/shifts", h.guard(staffOnly, h.listShifts))
	h.mux.HandleFunc("POST /api/v1/institutions/{id}/shifts", h.guard(staffOnly, h.createShift))
	h.mux.HandleFunc("DELETE /api/v1/shifts/{id}", h.guard(staffOnly, h.deleteShift))
}

// queue returns the queue after applying its clock.
func (h *Handler) queue(ctx context.Context) *cases.Queue {
	h.p.Queue.Tick(ctx)
	return h.p.Queue
}

// queueCaseAllowed returns nil when p may queue, watch or withdraw the
// requests of c: its parties, and staff who may schedule its sessions.
func (h *Handler) queueCaseAllowed(ctx context.Context, p *principal, c *cases.Case) error {
	if p.kind == partyKind {
		return h.caseVisible(ctx, p, c)
	}
	return h.authorize(ctx, p, actScheduleSession, target{Case: c})
}

type queueRequestBody struct {
	CaseID string `json:"caseId"`
}

func (h *Handler) queueRequest(w http.ResponseWriter, r *http.Request) {
	b, ok := readBody(w, r)
	if !ok {
		return
	}
	var req queueRequestBody
	if !decodeStrict(w, b, &req) {
		return
	}
	p := principalOf(r)
	c, err := h.p.Cases.Case(r.Context(), req.CaseID)
	if err == nil {
		err = h.queueCaseAllowed(r.Context(), p, c)
	}
	if err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	t, err := h.queue(r.Context()).Request(r.Context(), c.ID, p.actor())
	if err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/v1/queue/requests/"+t.ID)
	writeJSON(w, http.StatusCreated, t)
}

// queueTicketOf reads the path's ticket and checks the caller may know
// of it.
func (h *Handler) queueTicketOf(w http.ResponseWriter, r *http.Request) (*cases.Ticket, bool) {
	t, err := h.queue(r.Context()).Ticket(r.PathValue("id"))
	if err == nil {
		var c *cases.Case
		if c, err = h.p.Cases.Case(r.Context(), t.CaseID); err == nil {
			err = h.queueCaseAllowed(r.Context(), principalOf(r), c)
		}
	}
	if cases.ErrorCode(err) == cases.EFORBIDDEN || cases.ErrorCode(err) == cases.ENOTFOUND {
		err = notFound("queue request")
	}
	if err != nil {
		h.writeCaseError(w, r, err)
		return nil, false
	}
	return t, true
}

func (h *Handler) queueTicket(w http.ResponseWriter, r *http.Request) {
	if t, ok := h.queueTicketOf(w, r); ok {
		writeJSON(w, http.StatusOK, t)
	}
}

func (h *Handler) queueCancel(w http.ResponseWriter, r *http.Request) {
	t, ok := h.queueTicketOf(w, r)
	if !ok {
		return
	}
	if err := h.p.Queue.Cancel(r.Context(), t.ID, principalOf(r).actor()); err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *Handler) queueList(w http.ResponseWriter, r *http.Request) {
	p := principalOf(r)
	if p.role() == cases.StaffMerchantAgent {
		h.writeCaseError(w, r, forbidden("a merchant agent does not see the mediation queue"))
		return
	}
	all, ids, err := h.scope(r.Context(), p)
	if err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	items := []cases.QueueRequest{}
	for _, q := range h.queue(r.Context()).Requests() {
		if all || slices.Contains(ids, q.InstitutionID) || slices.Contains(ids, q.Origin) {
			items = append(items, q)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items})
}

// mediatorMe is how a mediator's account names its own mediator record.
const mediatorMe = "me"

// mediatorFor reads a mediator the caller acts for: a linked mediator
// account acts for its own record ("me") only, one not linked for the
// mediators of its institution, an institution admin for those in its
// scope.
func (h *Handler) mediatorFor(ctx context.Context, p *principal, id string) (*cases.Mediator, error) {
	if id == mediatorMe || id == "" {
		if p.role() != cases.StaffMediator || p.account.MediatorID == "" {
			return nil, cases.Errorf(cases.ENOTFOUND, "your account is not linked to a mediator record; name the mediator")
		}
		id = p.account.MediatorID
	}
	var m *cases.Mediator
	err := h.p.Cases.Store().View(ctx, func(tx cases.Tx) error {
		var err error
		m, err = tx.Mediator(ctx, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	switch p.role() {
	case cases.StaffPlatformAdmin:
		return m, nil
	case cases.StaffMediator:
		own := p.account.MediatorID
		switch {
		case own != "" && m.ID == own:
			return m, nil
		case own != "" && p.account.InstitutionID == m.InstitutionID:
			return nil, forbidden("a mediator acts on the queue for itself only")
		case own == "" && p.account.InstitutionID == m.InstitutionID:
			return m, nil
		}
	case cases.StaffInstitutionAdmin:
		if h.inScope(ctx, p, m.InstitutionID, "") == nil {
			return m, nil
		}
	}
	return nil, notFound("mediator")
}

type presenceBody struct {
	Available bool `json:"available"`
}

func (h *Handler) queuePresence(w http.ResponseWriter, r *http.Request) {
	b, ok := readBody(w, r)
	if !ok {
		return
	}
	var req presenceBody
	if !decodeStrict(w, b, &req) {
		return
	}
	m, err := h.mediatorFor(r.Context(), principalOf(r), r.PathValue("id"))
	if err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	st, err := h.queue(r.Context()).Heartbeat(r.Context(), m.ID, req.Available)
	if err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (h *Handler) queueMediator(w http.ResponseWriter, r *http.Request) {
	m, err := h.mediatorFor(r.Context(), principalOf(r), r.PathValue("id"))
	if err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	st, err := h.queue(r.Context()).Status(m.ID)
	if err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

type queueAnswerBody struct {
	// MediatorID is who answers; empty means the caller's own record.
	MediatorID string `json:"mediatorId"`
}

// queueAnswer accepts (take true) or passes the request offered to the
// body's mediator.
func (h *Handler) queueAnswer(take bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, ok := readBody(w, r)
		if !ok {
			return
		}
		var req queueAnswerBody
		if !decodeStrict(w, b, &req) {
			return
		}
		m, err := h.mediatorFor(r.Context(), principalOf(r), req.MediatorID)
		if err != nil {
			h.writeCaseError(w, r, err)
			return
		}
		q := h.queue(r.Context())
		if !take {
			if err := q.Pass(r.Context(), m.ID, r.PathValue("id")); err != nil {
				h.writeCaseError(w, r, err)
				return
			}
			w.WriteHeader(http.StatusNoContent)
			return
		}
		sess, err := q.Accept(r.Context(), m.ID, r.PathValue("id"))
		if err != nil {
			h.writeCaseError(w, r, err)
			return
		}
		writeJSON(w, http.StatusCreated, sess)
	}
}

func (h *Handler) listShifts(w http.ResponseWriter, r *http.Request) {
	if !knownQuery(w, r, "from", "to", "mediatorId") {
		return
	}
	inst := r.PathValue("id")
	if err := h.authorize(r.Context(), principalOf(r), actReadMediators, target{InstitutionID: inst}); err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	q := r.URL.Query()
	f := cases.ShiftFilter{InstitutionID: inst, MediatorID: q.Get("mediatorId")}
	for _, tp := range []struct {
		name string
		t    *time.Time
	}{{"from", &f.From}, {"to", &f.To}} {
		if s := q.Get(tp.name); s != "" {
			t, err := time.Parse(time.RFC3339, s)
			if err != nil {
				writeFieldProblem(w, codeBadRequest, tp.name, tp.name+" must be an RFC 3339 time")
				return
			}
			*tp.t = t
		}
	}
	list, err := h.p.Cases.Shifts(r.Context(), f)
	if err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": list})
}

type shiftBody struct {
	MediatorID string    `json:"mediatorId"`
	StartsAt   time.Time `json:"startsAt"`
	EndsAt     time.Time `json:"endsAt"`
}

func (h *Handler) createShift(w http.ResponseWriter, r *http.Request) {
	b, ok := readBody(w, r)
	if !ok {
		return
	}
	var req shiftBody
	if !decodeStrict(w, b, &req) {
		return
	}
	inst := r.PathValue("id")
	p := principalOf(r)
	if err := h.authorize(r.Context(), p, actWriteMediators, target{InstitutionID: inst}); err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	sh := &cases.Shift{MediatorID: req.MediatorID, InstitutionID: inst, StartsAt: req.StartsAt, EndsAt: req.EndsAt, CreatedBy: p.actor()}
	if err := h.p.Cases.PutShift(r.Context(), sh); err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, sh)
}

func (h *Handler) deleteShift(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var sh *cases.Shift
	list, err := h.p.Cases.Shifts(r.Context(), cases.ShiftFilter{})
	if err == nil {
		for i := range list {
			if list[i].ID == id {
				sh = &list[i]
			}
		}
		if sh == nil {
			err = notFound("shift")
		}
	}
	if err == nil {
		err = h.authorize(r.Context(), principalOf(r), actWriteMediators, target{InstitutionID: sh.InstitutionID})
		if cases.ErrorCode(err) == cases.EFORBIDDEN && h.authorize(r.Context(), principalOf(r), actReadMediators, target{InstitutionID: sh.InstitutionID}) != nil {
			err = notFound("shift")
		}
	}
	if err == nil {
		err = h.p.Cases.DeleteShift(r.Context(), id)
	}
	if err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

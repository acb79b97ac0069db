package web

import (
	"net/http"
	"time"

	"github.com/concord-odr/concord/cases"
)

// Scheduled sessions (cases/schedule.go), for staff who may schedule the
// case's sessions:
//
//	PUT  /api/v1/sessions/{id}/schedule   sets or changes the start time; reminders a day and 15 minutes before
//	POST /api/v1/sessions/{id}/cancel     cancels a session that has not started, with notice
//	GET  /api/v1/sessions/{id}/reminders  its reminders, recipients masked

func (h *Handler) registerScheduleAPI() {
	h.mux.HandleFunc("PUT /api/v1/sessions/{id}/schedule", h.guard(staffOnly, h.scheduleAt))
	h.mux.HandleFunc("POST /api/v1/sessions/{id}/cancel", h.guard(staffOnly, h.cancelSession))
	h.mux.HandleFunc("GET /api/v1/sessions/{id}/reminders", h.guard(staffOnly, h.sessionReminders))
}

// scheduledSession reads the path's session and checks the caller may
// schedule its case's sessions.
func (h *Handler) scheduledSession(w http.ResponseWriter, r *http.Request) (*cases.Session, bool) {
	sess, err := h.p.Cases.Session(r.Context(), r.PathValue("id"))
	var c *cases.Case
	if err == nil {
		c, err = h.p.Cases.Case(r.Context(), sess.CaseID)
	}
	if cases.ErrorCode(err) == cases.ENOTFOUND {
		err = notFound("session")
	}
	if err == nil {
		err = h.authorize(r.Context(), principalOf(r), actScheduleSession, target{Case: c})
	}
	if err != nil {
		h.writeCaseError(w, r, err)
		return nil, false
	}
	return sess, true
}

type recipientBody struct {
	ParticipantID string `json:"participantId"`
	Phone         string `json:"phone"`
	Channel       string `json:"channel,omitempty"`
}

type scheduleAtBody struct {
	ScheduledAt *time.Time      `json:"scheduledAt"`
	Recipients  []recipientBody `json:"recipients,omitempty"`
}

func (h *Handler) scheduleAt(w http.ResponseWriter, r *http.Request) {
	b, ok := readBody(w, r)
	if !ok {
		return
	}
	var req scheduleAtBody
	if !decodeStrict(w, b, &req) {
		return
	}
	sess, ok := h.scheduledSession(w, r)
	if !ok {
		return
	}
	if req.ScheduledAt == nil {
		writeFieldProblem(w, cases.EINVALID, "scheduledAt", "scheduledAt is required")
		return
	}
	to := make([]cases.ReminderRecipient, len(req.Recipients))
	for i, rc := range req.Recipients {
		to[i] = cases.ReminderRecipient{ParticipantID: rc.ParticipantID, Channel: rc.Channel, To: rc.Phone}
	}
	sess, err := h.p.Cases.ScheduleSessionAt(r.Context(), cases.ScheduleRequest{
		SessionID: sess.ID, At: *req.ScheduledAt, Actor: principalOf(r).actor(), Recipients: to})
	if err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, sess)
}

type cancelBody struct {
	Reason string `json:"reason"`
}

func (h *Handler) cancelSession(w http.ResponseWriter, r *http.Request) {
	b, ok := readBody(w, r)
	if !ok {
		return
	}
	var req cancelBody
	if !decodeStrict(w, b, &req) {
		return
	}
	sess, ok := h.scheduledSession(w, r)
	if !ok {
		return
	}
	sess, err := h.p.Cases.CancelSession(r.Context(), sess.ID, req.Reason, principalOf(r).actor())
	if err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	if h.p.Rooms != nil {
		h.p.Rooms.EndSession(sess.ID, cases.SessionCancelled)
	}
	writeJSON(w, http.StatusOK, sess)
}

func (h *Handler) sessionReminders(w http.ResponseWriter, r *http.Request) {
	sess, ok := h.scheduledSession(w, r)
	if !ok {
		return
	}
	list, err := h.p.Cases.SessionReminders(r.Context(), sess.ID)
	if err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": list})
}

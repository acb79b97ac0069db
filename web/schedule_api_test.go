package web

import (
	"strings"
	"testing"
	"time"

	"github.com/concord-odr/concord/cases"
)

// TestScheduleOverHTTP: a start time with reminders, a reschedule, a
// cancellation that ends the session's links, and who may do it.
func TestScheduleOverHTTP(t *testing.T) {
	w := newWorld(t)
	adminA := w.tokens["adminA"]
	path := "/api/v1/sessions/" + w.sessA.ID
	at := w.clock.Now().Add(48 * time.Hour)
	var sess cases.Session
	w.asOK(adminA, "PUT", path+"/schedule", map[string]any{"scheduledAt": at,
		"recipients": []map[string]any{{"participantId": w.sessA.link(t, cases.SideNeutral).ParticipantID, "phone": "+86 136 1111 2222"}}}, 200, &sess)
	if sess.ScheduledAt == nil || !sess.ScheduledAt.Equal(at) {
		t.Fatalf("session %+v", sess)
	}
	var rems struct{ Items []cases.Reminder }
	w.asOK(w.tokens["medA"], "GET", path+"/reminders", nil, 200, &rems)
	if len(rems.Items) != 2 || strings.Contains(rems.Items[0].To[0].To, "1111") {
		t.Fatalf("reminders %+v", rems.Items)
	}
	for _, tc := range []struct {
		token, method, path string
		body                any
		status              int
		code, field         string
	}{
		{w.tokens["medB"], "PUT", path + "/schedule", map[string]any{"scheduledAt": at}, 404, cases.ENOTFOUND, ""},
		{w.tokens["agentE"], "POST", path + "/cancel", map[string]any{"reason": "x"}, 403, cases.EFORBIDDEN, ""},
		{w.tokens["partyA"], "GET", path + "/reminders", nil, 401, codeUnauthorized, ""},
		{adminA, "PUT", path + "/schedule", map[string]any{}, 422, cases.EINVALID, "scheduledAt"},
		{adminA, "PUT", path + "/schedule", map[string]any{"scheduledAt": w.clock.Now().Add(-time.Hour)}, 422, cases.EINVALID, "scheduledAt"},
		{adminA, "POST", path + "/cancel", map[string]any{}, 422, cases.EINVALID, "reason"},
	} {
		resp, b := w.as(tc.token, tc.method, tc.path, tc.body)
		wantProblem(t, resp, b, tc.status, tc.code, tc.field)
	}
	w.asOK(adminA, "PUT", path+"/schedule", map[string]any{"scheduledAt": at.Add(time.Hour)}, 200, &sess)
	w.asOK(adminA, "GET", path+"/reminders", nil, 200, &rems)
	if len(rems.Items) != 4 {
		t.Fatalf("after reschedule %+v", rems.Items)
	}
	w.asOK(adminA, "POST", path+"/cancel", map[string]any{"reason": "the mediator is ill"}, 200, &sess)
	if sess.Status != cases.SessionEnded {
		t.Fatalf("cancelled %+v", sess)
	}
	// The parties' links of the cancelled session no longer work.
	resp, b := w.as(w.tokens["partyA"], "GET", "/api/v1/cases/"+w.caseA.ID, nil)
	wantProblem(t, resp, b, 401, codeUnauthorized, "")
}

package web

import (
	"testing"
	"time"

	"github.com/concord-odr/concord/cases"
)

// TestQueueOverHTTP: shifts, presence, a party asking to mediate now, an
// offer passed and escalated, accepted with a session, and who may do
// what.
func TestQueueOverHTTP(t *testing.T) {
	w := newWorld(t)
	adminA, medA := w.tokens["adminA"], w.tokens["medA"]
	var m1, m2, mp cases.Mediator
	w.asOK(adminA, "POST", "/api/v1/institutions/"+w.instA+"/mediators", map[string]any{"name": "Chen"}, 201, &m1)
	w.asOK(adminA, "POST", "/api/v1/institutions/"+w.instA+"/mediators", map[string]any{"name": "Zhou"}, 201, &m2)
	w.asOK(testAdminToken, "POST", "/api/v1/institutions/"+w.instP+"/mediators", map[string]any{"name": "Night duty"}, 201, &mp)
	now := w.clock.Now()
	for _, m := range []cases.Mediator{m1, m2, mp} {
		w.asOK(testAdminToken, "POST", "/api/v1/institutions/"+m.InstitutionID+"/shifts", map[string]any{
			"mediatorId": m.ID, "startsAt": now.Add(-time.Hour), "endsAt": now.Add(8 * time.Hour)}, 201, nil)
	}
	var shifts struct{ Items []cases.Shift }
	w.asOK(medA, "GET", "/api/v1/institutions/"+w.instA+"/shifts", nil, 200, &shifts)
	if len(shifts.Items) != 2 {
		t.Fatalf("shifts %+v", shifts.Items)
	}
	// A mediator does not set shifts; another district's admin does not
	// see ours.
	resp, b := w.as(medA, "POST", "/api/v1/institutions/"+w.instA+"/shifts", map[string]any{
		"mediatorId": m1.ID, "startsAt": now.Add(9 * time.Hour), "endsAt": now.Add(10 * time.Hour)})
	wantProblem(t, resp, b, 403, cases.EFORBIDDEN, "")
	resp, b = w.as(w.tokens["adminB"], "PUT", "/api/v1/queue/mediators/"+m1.ID+"/presence", map[string]any{"available": true})
	wantProblem(t, resp, b, 404, cases.ENOTFOUND, "")

	var st cases.DutyStatus
	for _, m := range []cases.Mediator{m1, m2} {
		w.asOK(medA, "PUT", "/api/v1/queue/mediators/"+m.ID+"/presence", map[string]any{"available": true}, 200, &st)
		if !st.OnDuty {
			t.Fatalf("presence %+v", st)
		}
	}
	w.asOK(testAdminToken, "PUT", "/api/v1/queue/mediators/"+mp.ID+"/presence", map[string]any{"available": true}, 200, nil)

	// The party of case A asks to mediate now, by its join token.
	party := w.tokens["partyA"]
	var tk cases.Ticket
	w.asOK(party, "POST", "/api/v1/queue/requests", map[string]any{"caseId": w.caseA.ID}, 201, &tk)
	if tk.Status != cases.QueueOffered || tk.Position != 1 || tk.OnDuty != 2 {
		t.Fatalf("ticket %+v", tk)
	}
	// Another case's party may not watch it, nor queue case A.
	resp, b = w.as(w.tokens["partyB"], "GET", "/api/v1/queue/requests/"+tk.ID, nil)
	wantProblem(t, resp, b, 404, cases.ENOTFOUND, "")
	resp, b = w.as(w.tokens["partyB"], "POST", "/api/v1/queue/requests", map[string]any{"caseId": w.caseA.ID})
	wantProblem(t, resp, b, 404, cases.ENOTFOUND, "")

	// Both of A's mediators pass: it goes up to the province.
	for range 2 {
		holder := ""
		for _, m := range []cases.Mediator{m1, m2} {
			st = cases.DutyStatus{}
			w.asOK(medA, "GET", "/api/v1/queue/mediators/"+m.ID, nil, 200, &st)
			if st.Offer != nil && st.Offer.RequestID == tk.ID {
				holder = m.ID
			}
		}
		if holder == "" {
			t.Fatal("nobody holds the offer")
		}
		if resp, b := w.as(medA, "POST", "/api/v1/queue/requests/"+tk.ID+"/pass", map[string]any{"mediatorId": holder}); resp.StatusCode != 204 {
			t.Fatalf("pass: %d %s", resp.StatusCode, b)
		}
	}
	w.asOK(party, "GET", "/api/v1/queue/requests/"+tk.ID, nil, 200, &tk)
	if tk.InstitutionID != w.instP || tk.Escalations != 1 || tk.Status != cases.QueueOffered {
		t.Fatalf("after both passed: %+v", tk)
	}
	var list struct{ Items []cases.QueueRequest }
	w.asOK(adminA, "GET", "/api/v1/queue/requests", nil, 200, &list)
	if len(list.Items) != 1 {
		t.Fatalf("admin A's queue %+v", list.Items)
	}
	w.asOK(w.tokens["adminB"], "GET", "/api/v1/queue/requests", nil, 200, &list)
	if len(list.Items) != 0 {
		t.Fatalf("admin B's queue %+v", list.Items)
	}
	// A mediator of A cannot take the province's offer.
	resp, b = w.as(medA, "POST", "/api/v1/queue/requests/"+tk.ID+"/accept", map[string]any{"mediatorId": mp.ID})
	wantProblem(t, resp, b, 404, cases.ENOTFOUND, "")
	var sess cases.Session
	w.asOK(w.tokens["platform"], "POST", "/api/v1/queue/requests/"+tk.ID+"/accept", map[string]any{"mediatorId": mp.ID}, 201, &sess)
	w.asOK(party, "GET", "/api/v1/queue/requests/"+tk.ID, nil, 200, &tk)
	if tk.Status != cases.QueueAccepted || tk.SessionID != sess.ID || tk.MediatorID != mp.ID {
		t.Fatalf("after accept: %+v", tk)
	}
	var c cases.Case
	w.asOK(testAdminToken, "GET", "/api/v1/cases/"+w.caseA.ID, nil, 200, &c)
	if c.InstitutionID != w.instP || c.MediatorID != mp.ID {
		t.Fatalf("case after the province took it: %s %s", c.InstitutionID, c.MediatorID)
	}
	// Withdrawing: staff queue case B for its party, then withdraw it.
	w.asOK(w.tokens["adminB"], "POST", "/api/v1/queue/requests", map[string]any{"caseId": w.caseB.ID}, 201, &tk)
	if resp, b := w.as(w.tokens["partyB"], "DELETE", "/api/v1/queue/requests/"+tk.ID, nil); resp.StatusCode != 204 {
		t.Fatalf("cancel: %d %s", resp.StatusCode, b)
	}
	w.asOK(w.tokens["partyB"], "GET", "/api/v1/queue/requests/"+tk.ID, nil, 200, &tk)
	if tk.Status != cases.QueueCancelled {
		t.Fatalf("after cancel %+v", tk)
	}
	// Shifts are removed by their institution's admin only.
	resp, b = w.as(w.tokens["adminB"], "DELETE", "/api/v1/shifts/"+shifts.Items[0].ID, nil)
	wantProblem(t, resp, b, 404, cases.ENOTFOUND, "")
	if resp, b := w.as(adminA, "DELETE", "/api/v1/shifts/"+shifts.Items[0].ID, nil); resp.StatusCode != 204 {
		t.Fatalf("delete shift: %d %s", resp.StatusCode, b)
	}
}

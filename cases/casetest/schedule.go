package casetest

import (
	"strings"
	"testing"
	"time"

	"github.com/concord-odr/concord/cases"
)

// pendingTexts claims the pending messages and returns their texts by
// recipient.
func pendingTexts(t *testing.T, s cases.Store) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	update(t, s, func(tx cases.Tx) error {
		far := time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
		list, err := tx.ClaimOutbox(t.Context(), far, far.Add(time.Hour), 1000)
		for _, m := range list {
			out[m.To] = append(out[m.To], m.Text)
		}
		return err
	})
	return out
}

// testSchedule: a session time, reminders a day and 15 minutes before,
// reschedule and cancel with notice, with a fake clock.
func testSchedule(t *testing.T, s cases.Store) {
	ctx := t.Context()
	w := newWorld(t, s, time.Date(2026, 3, 2, 10, 0, 0, 0, cst))
	c, sess := mediatingCase(t, w.svc, w.district.ID, "")
	const applicant, mediatorPhone = "+86 138 0000 0000", "+86 136 1111 2222"
	var med cases.Participant
	for _, p := range sess.Participants {
		if p.Role == cases.RoleMediator {
			med = p
		}
	}
	pendingTexts(t, s) // the links of mediatingCase, if any
	at := time.Date(2026, 3, 4, 14, 0, 0, 0, cst)
	got, err := w.svc.ScheduleSessionAt(ctx, cases.ScheduleRequest{SessionID: sess.ID, At: at, Actor: "staff",
		Recipients: []cases.ReminderRecipient{{ParticipantID: med.ID, To: mediatorPhone}}})
	if err != nil || got.ScheduledAt == nil || !got.ScheduledAt.Equal(at) {
		t.Fatalf("ScheduleSessionAt = %+v, %v", got, err)
	}
	rems, err := w.svc.SessionReminders(ctx, sess.ID)
	if err != nil || len(rems) != 2 || rems[0].Kind != cases.ReminderDay || rems[1].Kind != cases.ReminderQuarter ||
		!rems[0].DueAt.Equal(at.Add(-24*time.Hour)) || len(rems[0].To) != 2 || strings.Contains(rems[0].To[0].To, "1111") {
		t.Fatalf("reminders %+v, %v", rems, err)
	}
	// Nothing is due until a day before.
	w.clock.Set(at.Add(-24*time.Hour - time.Minute))
	if n, err := w.svc.SendDueReminders(ctx); err != nil || n != 0 {
		t.Fatalf("early: %d, %v", n, err)
	}
	w.clock.Set(at.Add(-24 * time.Hour))
	if n, err := w.svc.SendDueReminders(ctx); err != nil || n != 1 {
		t.Fatalf("a day before: %d, %v", n, err)
	}
	msgs := pendingTexts(t, s)
	for _, to := range []string{applicant, mediatorPhone} {
		if texts := msgs[to]; len(texts) != 1 || !strings.Contains(texts[0], "明天") || !strings.Contains(texts[0], c.Number) {
			t.Fatalf("day reminder to %s: %q", to, texts)
		}
	}
	if n, _ := w.svc.SendDueReminders(ctx); n != 0 {
		t.Fatalf("sent twice: %d", n)
	}
	// Rescheduled to 30 minutes from now: everyone is told; the 15-minute
	// reminder of the old time is cancelled, one for the new time made.
	newAt := w.clock.Now().Add(30 * time.Minute)
	if _, err := w.svc.ScheduleSessionAt(ctx, cases.ScheduleRequest{SessionID: sess.ID, At: newAt, Actor: "staff",
		Recipients: []cases.ReminderRecipient{{ParticipantID: med.ID, To: mediatorPhone}}}); err != nil {
		t.Fatal(err)
	}
	if texts := pendingTexts(t, s)[applicant]; len(texts) != 1 || !strings.Contains(texts[0], "改为") {
		t.Fatalf("reschedule notice: %q", texts)
	}
	rems, _ = w.svc.SessionReminders(ctx, sess.ID)
	status := map[string]int{}
	for _, r := range rems {
		status[r.Status]++
		if r.Status != cases.ReminderPending && len(r.To) != 0 {
			t.Fatalf("a %s reminder keeps its recipients: %+v", r.Status, r)
		}
	}
	if status[cases.ReminderSent] != 1 || status[cases.ReminderCancelled] != 1 || status[cases.ReminderPending] != 1 {
		t.Fatalf("reminders after reschedule %+v", rems)
	}
	w.clock.Set(newAt.Add(-15 * time.Minute))
	if n, _ := w.svc.SendDueReminders(ctx); n != 1 {
		t.Fatalf("15 minutes before: %d", n)
	}
	if texts := pendingTexts(t, s)[mediatorPhone]; len(texts) != 1 || !strings.Contains(texts[0], "15分钟后") {
		t.Fatalf("quarter reminder: %q", texts)
	}
	// A session that started is not rescheduled nor cancelled.
	if err := w.svc.RecordJoin(ctx, sess.ID, med.ID, w.clock.Now()); err != nil {
		t.Fatal(err)
	}
	_, err = w.svc.ScheduleSessionAt(ctx, cases.ScheduleRequest{SessionID: sess.ID, At: newAt.Add(time.Hour)})
	wantCode(t, err, cases.ETRANSITION)
	_, err = w.svc.CancelSession(ctx, sess.ID, "x", "staff")
	wantCode(t, err, cases.ETRANSITION)

	// Another session: cancelled with notice, its links revoked, its
	// reminders cancelled.
	sess2, err := w.svc.ScheduleSession(ctx, c.ID, "staff", sess.Participants)
	if err != nil {
		t.Fatal(err)
	}
	at2 := w.clock.Now().Add(48 * time.Hour)
	if _, err := w.svc.ScheduleSessionAt(ctx, cases.ScheduleRequest{SessionID: sess2.ID, At: at2}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []cases.ScheduleRequest{
		{SessionID: sess2.ID, At: w.clock.Now().Add(-time.Minute)},
		{SessionID: sess2.ID, At: at2, Recipients: []cases.ReminderRecipient{{ParticipantID: "p_none", To: applicant}}},
		{SessionID: sess2.ID, At: at2, Recipients: []cases.ReminderRecipient{{ParticipantID: med.ID, To: "call me"}}},
		{SessionID: sess2.ID, At: at2, Recipients: []cases.ReminderRecipient{{ParticipantID: med.ID, To: applicant, Channel: "fax"}}},
	} {
		_, err := w.svc.ScheduleSessionAt(ctx, bad)
		wantCode(t, err, cases.EINVALID)
	}
	_, err = w.svc.CancelSession(ctx, sess2.ID, "", "staff")
	wantCode(t, err, cases.EINVALID)
	got, err = w.svc.CancelSession(ctx, sess2.ID, "the mediator is ill", "staff")
	if err != nil || got.Status != cases.SessionEnded {
		t.Fatalf("CancelSession = %+v, %v", got, err)
	}
	if texts := pendingTexts(t, s)[applicant]; len(texts) != 1 || !strings.Contains(texts[0], "已取消") {
		t.Fatalf("cancel notice: %q", texts)
	}
	view(t, s, func(tx cases.Tx) error {
		_, err := tx.Revocation(ctx, "any", sess2.ID, "any")
		return err
	})
	w.clock.Set(at2)
	if n, _ := w.svc.SendDueReminders(ctx); n != 0 {
		t.Fatalf("reminders of a cancelled session sent: %d", n)
	}
	types := eventTypes(t, s, c.ID)
	for _, want := range []string{"session.time_set", "session.reminded", "session.rescheduled", "session.cancelled"} {
		if !strings.Contains(strings.Join(types, " "), want) {
			t.Fatalf("events %v lack %s", types, want)
		}
	}
	_, err = w.svc.SessionReminders(ctx, "s_none")
	wantCode(t, err, cases.ENOTFOUND)
}

// testReminderWorker checks that the worker's own loop sends reminders.
func testReminderWorker(t *testing.T, s cases.Store) {
	ctx := t.Context()
	w := newWorld(t, s, time.Date(2026, 3, 2, 10, 0, 0, 0, cst))
	_, sess := mediatingCase(t, w.svc, w.district.ID, "")
	at := w.clock.Now().Add(20 * time.Minute)
	if _, err := w.svc.ScheduleSessionAt(ctx, cases.ScheduleRequest{SessionID: sess.ID, At: at}); err != nil {
		t.Fatal(err)
	}
	w.clock.Set(at.Add(-10 * time.Minute))
	wk := cases.NewReminderWorker(cases.ReminderWorkerParams{Service: w.svc, Interval: 10 * time.Millisecond})
	defer wk.Close()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		rems, err := w.svc.SessionReminders(ctx, sess.ID)
		if err == nil && len(rems) == 1 && rems[0].Status == cases.ReminderSent {
			return
		}
		wk.Kick()
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("the worker did not send the reminder")
}

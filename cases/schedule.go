package cases

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/concord-odr/concord/cases/calendar"
)

// Scheduled sessions: a start time, reminders to every participant a day
// and a quarter of an hour before it (queued in the outbox, which the
// notifier delivers), and rescheduling or cancelling with notice.

// Reminder kinds: a day and a quarter of an hour before a session.
const (
	ReminderDay     = "day"
	ReminderQuarter = "15min"
)

// Reminder statuses.
const (
	ReminderPending   = "pending"
	ReminderSent      = "sent"
	ReminderCancelled = "cancelled" // rescheduled or cancelled before it was due
)

// Reminder is a notice due before a scheduled session.
type Reminder struct {
	ID        string `json:"id"`
	SessionID string `json:"sessionId"`
	CaseID    string `json:"caseId"`
	Kind      string `json:"kind"`
	// SessionAt is the session time the reminder was made for.
	SessionAt time.Time  `json:"sessionAt"`
	DueAt     time.Time  `json:"dueAt"`
	Status    string     `json:"status"`
	SentAt    *time.Time `json:"sentAt,omitempty"`
	// Messages is how many messages it queued.
	Messages int `json:"messages,omitempty"`
	// To is where it goes; forgotten once it is sent or cancelled.
	To        []ReminderRecipient `json:"to,omitempty"`
	CreatedAt time.Time           `json:"createdAt"`
}

// ReminderFilter selects reminders for Tx.Reminders. Zero fields select
// everything.
type ReminderFilter struct {
	SessionID string
	// Pending selects the reminders not sent nor cancelled.
	Pending bool
	// DueBy selects the reminders due at or before it.
	DueBy time.Time
	// Limit is the most returned; 0 or less means 100.
	Limit int
}

// ReminderRecipient is where a participant's reminders go.
type ReminderRecipient struct {
	ParticipantID string `json:"participantId"`
	Channel       string `json:"channel"` // sms, wechat
	To            string `json:"to"`
}

// Reminder lead times.
var reminderLeads = []struct {
	kind string
	lead time.Duration
}{
	{ReminderDay, 24 * time.Hour},
	{ReminderQuarter, 15 * time.Minute},
}

// SessionCancelled is recorded as a cancelled session's result.
const SessionCancelled = "cancelled"

// ScheduleRequest sets or changes when a session is held.
type ScheduleRequest struct {
	SessionID string
	At        time.Time
	Actor     string
	// Recipients are where each participant's reminders and notices go;
	// a party with none gets them at the phone of the case's applicant or
	// respondent when it is the only party of its side.
	Recipients []ReminderRecipient
}

// recipientsOf resolves where the participants of sess are reached.
func recipientsOf(c *Case, sess *Session, given []ReminderRecipient) ([]ReminderRecipient, error) {
	out := []ReminderRecipient{}
	has := map[string]bool{}
	for _, r := range given {
		if _, ok := sess.Participant(r.ParticipantID); !ok {
			return nil, FieldErrorf("recipients.participantId", "the session has no participant %q", r.ParticipantID)
		}
		if r.Channel == "" {
			r.Channel = NotifySMS
		}
		switch r.Channel {
		case NotifySMS:
			if !phonePattern.MatchString(strings.TrimSpace(r.To)) {
				return nil, FieldErrorf("recipients.phone", "recipients.phone is not a phone number")
			}
		case NotifyWeChat:
			if err := validText("recipients.phone", r.To, 64, true); err != nil {
				return nil, err
			}
		default:
			return nil, FieldErrorf("recipients.channel", "recipients.channel must be sms or wechat")
		}
		r.To = strings.TrimSpace(r.To)
		has[r.ParticipantID] = true
		out = append(out, r)
	}
	perSide := map[string]int{}
	for _, p := range sess.Participants {
		if p.Role == RoleParty {
			perSide[p.Side]++
		}
	}
	for _, p := range sess.Participants {
		if has[p.ID] || p.Role != RoleParty || perSide[p.Side] != 1 {
			continue
		}
		phone := ""
		switch p.Side {
		case SideApplicant:
			phone = c.Applicant.Phone
		case SideRespondent:
			phone = c.Respondent.Phone
		}
		if phone = strings.TrimSpace(phone); phone != "" && phonePattern.MatchString(phone) {
			out = append(out, ReminderRecipient{ParticipantID: p.ID, Channel: NotifySMS, To: phone})
		}
	}
	return out, nil
}

// sessionTime formats a session time for a message, in China time.
func sessionTime(t time.Time) string { return t.In(calendar.Zone()).Format("1月2日15:04") }

// queueNotices queues one message per recipient.
func (s *Service) queueNotices(ctx context.Context, tx Tx, caseID string, to []ReminderRecipient, text string, now time.Time) (int, error) {
	for _, r := range to {
		m := &OutboxMessage{ID: NewID("msg_"), Channel: r.Channel, To: r.To, Text: text, CaseID: caseID,
			Status: OutboxPending, NextAttemptAt: now, CreatedAt: now}
		if err := tx.PutOutbox(ctx, m); err != nil {
			return 0, err
		}
	}
	return len(to), nil
}

// cancelRemindersLocked cancels the pending reminders of a session and
// returns the recipients they would have gone to.
func (s *Service) cancelRemindersLocked(ctx context.Context, tx Tx, sessionID string) ([]ReminderRecipient, error) {
	list, err := tx.Reminders(ctx, ReminderFilter{SessionID: sessionID, Pending: true, Limit: 100})
	if err != nil {
		return nil, err
	}
	var to []ReminderRecipient
	for i := range list {
		r := &list[i]
		if to == nil {
			to = r.To
		}
		r.Status, r.To = ReminderCancelled, nil
		if err := tx.PutReminder(ctx, r); err != nil {
			return nil, err
		}
	}
	return to, nil
}

// ScheduleSessionAt sets when a session that has not started is held,
// and the reminders a day and a quarter of an hour before it. Changing
// the time of a session that had one is a reschedule: every participant
// is told at once, and the earlier reminders are cancelled.
func (s *Service) ScheduleSessionAt(ctx context.Context, req ScheduleRequest) (*Session, error) {
	now := s.now().UTC()
	at := req.At.UTC().Truncate(time.Microsecond)
	if !at.After(now) {
		return nil, FieldErrorf("scheduledAt", "scheduledAt must be in the future")
	}
	if at.After(now.AddDate(1, 0, 0)) {
		return nil, FieldErrorf("scheduledAt", "scheduledAt is more than a year away")
	}
	var sess *Session
	err := s.store.Update(ctx, func(tx Tx) error {
		var err error
		if sess, err = tx.Session(ctx, req.SessionID); err != nil {
			return err
		}
		if sess.Status != SessionScheduled {
			return Errorf(ETRANSITION, "a session that is %s cannot be scheduled", sess.Status)
		}
		c, err := tx.Case(ctx, sess.CaseID)
		if err != nil {
			return err
		}
		to, err := recipientsOf(c, sess, req.Recipients)
		if err != nil {
			return err
		}
		if _, err := s.cancelRemindersLocked(ctx, tx, sess.ID); err != nil {
			return err
		}
		prev := sess.ScheduledAt
		sess.ScheduledAt = &at
		if err := tx.PutSession(ctx, sess); err != nil {
			return err
		}
		for _, l := range reminderLeads {
			due := at.Add(-l.lead)
			if !due.After(now) {
				continue // too late for this one
			}
			r := &Reminder{ID: NewID("rem_"), SessionID: sess.ID, CaseID: c.ID, Kind: l.kind, SessionAt: at,
				DueAt: due, Status: ReminderPending, To: to, CreatedAt: now}
			if err := tx.PutReminder(ctx, r); err != nil {
				return err
			}
		}
		payload := map[string]any{"sessionId": sess.ID, "scheduledAt": at}
		typ := "session.time_set"
		if prev != nil && !prev.Equal(at) {
			typ = "session.rescheduled"
			payload["previous"] = *prev
			n, err := s.queueNotices(ctx, tx, c.ID, to, fmt.Sprintf(
				"【Concord在线调解】案件%s的视频调解时间已由%s改为%s，请届时通过调解链接进入。",
				c.Number, sessionTime(*prev), sessionTime(at)), now)
			if err != nil {
				return err
			}
			payload["notices"] = n
		}
		return s.appendEvent(ctx, tx, c.ID, typ, req.Actor, payload)
	})
	if err != nil {
		return nil, err
	}
	return sess, nil
}

// CancelSession cancels a session that has not started: it ends with no
// attendance, its join links stop working, its reminders are cancelled
// and every participant is told.
func (s *Service) CancelSession(ctx context.Context, sessionID, reason, actor string) (*Session, error) {
	if err := validText("reason", reason, 500, true); err != nil {
		return nil, err
	}
	now := s.now().UTC()
	var sess *Session
	err := s.store.Update(ctx, func(tx Tx) error {
		var err error
		if sess, err = tx.Session(ctx, sessionID); err != nil {
			return err
		}
		if sess.Status != SessionScheduled {
			return Errorf(ETRANSITION, "a session that is %s cannot be cancelled", sess.Status)
		}
		c, err := tx.Case(ctx, sess.CaseID)
		if err != nil {
			return err
		}
		to, err := s.cancelRemindersLocked(ctx, tx, sess.ID)
		if err != nil {
			return err
		}
		if to == nil {
			if to, err = recipientsOf(c, sess, nil); err != nil {
				return err
			}
		}
		sess.Status, sess.EndedAt = SessionEnded, &now
		if err := tx.PutSession(ctx, sess); err != nil {
			return err
		}
		if err := tx.PutRevocation(ctx, &Revocation{Key: RevocationKey(RevokeSession, "", sess.ID, ""), Kind: RevokeSession,
			CaseID: c.ID, SessionID: sess.ID, Reason: "session cancelled: " + reason, Actor: actor, RevokedAt: now}); err != nil {
			return err
		}
		when := "原定时间"
		if sess.ScheduledAt != nil {
			when = sessionTime(*sess.ScheduledAt)
		}
		n, err := s.queueNotices(ctx, tx, c.ID, to, fmt.Sprintf(
			"【Concord在线调解】案件%s原定于%s的视频调解已取消：%s。调解机构将另行通知。", c.Number, when, reason), now)
		if err != nil {
			return err
		}
		return s.appendEvent(ctx, tx, c.ID, "session.cancelled", actor, map[string]any{
			"sessionId": sess.ID, "reason": reason, "notices": n, "result": SessionCancelled})
	})
	if err != nil {
		return nil, err
	}
	return sess, nil
}

// SessionReminders lists a session's reminders, recipients masked.
func (s *Service) SessionReminders(ctx context.Context, sessionID string) ([]Reminder, error) {
	var list []Reminder
	err := s.store.View(ctx, func(tx Tx) error {
		if _, err := tx.Session(ctx, sessionID); err != nil {
			return err
		}
		var err error
		list, err = tx.Reminders(ctx, ReminderFilter{SessionID: sessionID, Limit: 100})
		return err
	})
	for i := range list {
		for j := range list[i].To {
			list[i].To[j].To = maskRecipient(list[i].To[j].To)
		}
	}
	return list, err
}

func maskRecipient(to string) string {
	r := []rune(to)
	if len(r) <= 4 {
		return strings.Repeat("*", len(r))
	}
	return strings.Repeat("*", len(r)-4) + string(r[len(r)-4:])
}

// SendDueReminders queues the messages of the reminders due at the
// service's current time, each in its own transaction, and returns how
// many reminders it sent. A reminder whose session was moved, started or
// ended meanwhile is cancelled instead. A sent reminder forgets its
// recipients.
func (s *Service) SendDueReminders(ctx context.Context) (int, error) {
	now := s.now().UTC()
	var due []Reminder
	if err := s.store.View(ctx, func(tx Tx) error {
		var err error
		due, err = tx.Reminders(ctx, ReminderFilter{Pending: true, DueBy: now, Limit: 500})
		return err
	}); err != nil {
		return 0, err
	}
	sent := 0
	for _, r := range due {
		err := s.store.Update(ctx, func(tx Tx) error {
			list, err := tx.Reminders(ctx, ReminderFilter{SessionID: r.SessionID, Pending: true, Limit: 100})
			if err != nil {
				return err
			}
			var cur *Reminder
			for i := range list {
				if list[i].ID == r.ID {
					cur = &list[i]
				}
			}
			if cur == nil {
				return nil // sent or cancelled meanwhile
			}
			sess, err := tx.Session(ctx, cur.SessionID)
			if err != nil {
				return err
			}
			to := cur.To
			cur.To = nil
			if sess.Status != SessionScheduled || sess.ScheduledAt == nil || !sess.ScheduledAt.Equal(cur.SessionAt) {
				cur.Status = ReminderCancelled
				return tx.PutReminder(ctx, cur)
			}
			c, err := tx.Case(ctx, cur.CaseID)
			if err != nil {
				return err
			}
			lead := "明天"
			if cur.Kind == ReminderQuarter {
				lead = "15分钟后"
			}
			n, err := s.queueNotices(ctx, tx, c.ID, to, fmt.Sprintf(
				"【Concord在线调解】提醒：案件%s的视频调解将于%s（%s）开始，请准时通过调解链接进入。",
				c.Number, lead, sessionTime(cur.SessionAt)), now)
			if err != nil {
				return err
			}
			at := now
			cur.Status, cur.SentAt, cur.Messages = ReminderSent, &at, n
			if err := tx.PutReminder(ctx, cur); err != nil {
				return err
			}
			sent++
			return s.appendEvent(ctx, tx, c.ID, "session.reminded", "system:reminders", map[string]any{
				"sessionId": sess.ID, "kind": cur.Kind, "messages": n})
		})
		if err != nil {
			s.log.Warn("reminder not sent; tried again next round", "reminder", r.ID, "err", err)
		}
	}
	return sent, nil
}

package cases

import (
	"context"
	"encoding/json"
	"strings"
	"time"
)

// Room event types: a session's timeline, with no content (who was let
// in, who checked whose identity, who consented, which mode when).
const (
	RoomConsent         = "room.consent"
	RoomAdmitted        = "room.admitted"
	RoomRemoved         = "room.removed"
	RoomIdentityChecked = "room.identity_checked"
	RoomMode            = "room.mode"
	RoomLocked          = "room.locked"
	RoomMuted           = "room.muted"
)

// RoomEvent is the payload of a room.* event.
type RoomEvent struct {
	SessionID     string `json:"sessionId"`
	ParticipantID string `json:"participantId,omitempty"`
	Mode          string `json:"mode,omitempty"` // joint or caucus
	Side          string `json:"side,omitempty"` // the side in caucus
	Locked        *bool  `json:"locked,omitempty"`
}

// RecordRoomEvent appends one timeline event of a live session to its
// case's log.
func (s *Service) RecordRoomEvent(ctx context.Context, typ, actor string, e RoomEvent) error {
	if !strings.HasPrefix(typ, "room.") {
		return Errorf(EINVALID, "not a room event: %q", typ)
	}
	return s.store.Update(ctx, func(tx Tx) error {
		sess, err := tx.Session(ctx, e.SessionID)
		if err != nil {
			return err
		}
		if sess.Status == SessionEnded {
			return Errorf(ETRANSITION, "the session has ended")
		}
		return s.appendEvent(ctx, tx, sess.CaseID, typ, actor, e)
	})
}

// Removed reports whether a participant was removed from a session, so
// that its join link no longer lets it in.
func (s *Service) Removed(ctx context.Context, sessionID, participantID string) (bool, error) {
	var removed bool
	err := s.store.View(ctx, func(tx Tx) error {
		sess, err := tx.Session(ctx, sessionID)
		if err != nil {
			return err
		}
		events, err := tx.Events(ctx, sess.CaseID)
		if err != nil {
			return err
		}
		removed = RemovedIn(events, sessionID, participantID)
		return nil
	})
	return removed, err
}

// RemovedIn reports whether a case's events record the removal of a
// participant from a session.
func RemovedIn(events []Event, sessionID, participantID string) bool {
	for _, ev := range events {
		if ev.Type != RoomRemoved {
			continue
		}
		var re RoomEvent
		if json.Unmarshal(ev.Payload, &re) == nil && re.SessionID == sessionID && re.ParticipantID == participantID {
			return true
		}
	}
	return false
}

// ModeDurations adds up, from a case's events, how long one session spent
// in joint session and in caucus with each side, until end (or the
// session's end event).
func ModeDurations(events []Event, sessionID string, end time.Time) map[string]time.Duration {
	out := map[string]time.Duration{}
	current, since := "", time.Time{}
	stop := func(at time.Time) {
		if current != "" && at.After(since) {
			out[current] += at.Sub(since)
		}
	}
	for _, ev := range events {
		var p struct {
			SessionID string `json:"sessionId"`
			Mode      string `json:"mode"`
			Side      string `json:"side"`
		}
		if json.Unmarshal(ev.Payload, &p) != nil || p.SessionID != sessionID {
			continue
		}
		switch ev.Type {
		case "session.started":
			current, since = "joint", ev.At
		case RoomMode:
			stop(ev.At)
			current, since = "joint", ev.At
			if p.Mode == "caucus" {
				current = "caucus:" + p.Side
			}
		case "session.ended":
			stop(ev.At)
			return out
		}
	}
	stop(end)
	return out
}

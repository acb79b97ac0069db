package cases

import (
	"encoding/json"
	"testing"
	"time"
)

func TestModeDurations(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	ev := func(typ string, min int, payload map[string]string) Event {
		b, _ := json.Marshal(payload)
		return Event{Type: typ, At: t0.Add(time.Duration(min) * time.Minute), Payload: b}
	}
	s := map[string]string{"sessionId": "s1"}
	events := []Event{
		ev("session.started", 0, s),
		ev(RoomMode, 10, map[string]string{"sessionId": "s1", "mode": "caucus", "side": "applicant"}),
		ev(RoomMode, 25, map[string]string{"sessionId": "other", "mode": "caucus", "side": "respondent"}),
		ev(RoomMode, 30, map[string]string{"sessionId": "s1", "mode": "caucus", "side": "respondent"}),
		ev(RoomMode, 35, map[string]string{"sessionId": "s1", "mode": "joint"}),
		ev("session.ended", 50, s),
	}
	got := ModeDurations(events, "s1", t0.Add(time.Hour))
	want := map[string]time.Duration{"joint": 25 * time.Minute, "caucus:applicant": 20 * time.Minute, "caucus:respondent": 5 * time.Minute}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("%s = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
	// A live session counts up to now.
	live := ModeDurations(events[:3], "s1", t0.Add(40*time.Minute))
	if live["caucus:applicant"] != 30*time.Minute {
		t.Fatalf("live: %v", live)
	}
}

package signaling

import (
	"fmt"
	"log/slog"
	"testing"

	"github.com/concord-odr/concord/cases"
	"github.com/concord-odr/concord/rooms"
)

// BenchmarkBroadcastState74 measures how long a change holds a 74-person
// room's lock to send everyone its view of the room (the largest
// workload's room, everyone admitted); the sockets' writers, which send
// the messages, are not counted.
func BenchmarkBroadcastState74(b *testing.B) {
	s := &Server{log: slog.New(slog.DiscardHandler)}
	r := &room{s: s, id: "s_bench", log: s.log, policy: rooms.New(), conns: map[string]*conn{}}
	for i := range 74 {
		p := rooms.Participant{ID: fmt.Sprint("p", i), Name: fmt.Sprint("Participant ", i), Role: rooms.Party, Side: rooms.Applicant}
		if i == 0 {
			p.Role, p.Side = rooms.Mediator, rooms.Neutral
		} else if i%2 == 0 {
			p.Side = rooms.Respondent
		}
		if _, err := r.policy.Join(p); err != nil {
			b.Fatal(err)
		}
		if _, err := r.policy.Consent(p.ID); err != nil {
			b.Fatal(err)
		}
		if i > 0 {
			if _, err := r.policy.Admit("p0", p.ID); err != nil {
				b.Fatal(err)
			}
		}
		r.conns[p.ID] = &conn{s: s, log: s.log, queue: make(chan frame, sendQueue), done: make(chan struct{}),
			participant: cases.Participant{ID: p.ID}}
	}
	drain := func() (n int) {
		for _, c := range r.conns {
			for len(c.queue) > 0 {
				<-c.queue
				n++
			}
		}
		return n
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		r.mu.Lock()
		r.broadcastStateLocked()
		r.mu.Unlock()
		b.StopTimer()
		if n := drain(); n != 74 {
			b.Fatalf("%d views queued, want 74", n)
		}
		b.StartTimer()
	}
}

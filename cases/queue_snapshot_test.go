package cases

import (
	"bytes"
	"testing"
	"time"
)

// FuzzQueueRestore: whatever it reads, Restore does not panic, leaves a
// queue whose invariants hold, and what it accepts encodes to a snapshot
// it accepts again unchanged.
func FuzzQueueRestore(f *testing.F) {
	f.Add([]byte(`{"requests":[{"id":"qr_1","caseId":"c1","status":"offered","offeredTo":"m1","passed":["m2"]}],` +
		`"duties":[{"mediator":{"id":"m1"},"offer":"qr_1","sessions":["s1"]},{"mediator":{"id":"m2"}}],` +
		`"sessions":{"s1":"m1"},"ended":[{"id":"qr_0","caseId":"c0","status":"accepted"}],"avgWait":60000000000}`))
	f.Add([]byte(`{}`))
	now := func() time.Time { return time.Date(2026, 3, 2, 22, 0, 0, 0, time.UTC) }
	f.Fuzz(func(t *testing.T, data []byte) {
		q := NewQueue(QueueParams{Now: now}, false)
		if err := q.Restore(data); err != nil {
			if ErrorCode(err) != EINVALID {
				t.Fatalf("a bad snapshot gave %v, want %s", err, EINVALID)
			}
			return
		}
		if err := q.CheckInvariants(); err != nil {
			t.Fatalf("a restored queue breaks its invariants: %v", err)
		}
		snap := q.Snapshot()
		again := NewQueue(QueueParams{Now: now}, false)
		if err := again.Restore(snap); err != nil {
			t.Fatalf("a restored queue's snapshot is refused: %v\n%s", err, snap)
		}
		if b := again.Snapshot(); !bytes.Equal(b, snap) {
			t.Fatalf("snapshots differ after a second restore:\n%s\n%s", snap, b)
		}
	})
}

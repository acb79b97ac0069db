package casetest

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/concord-odr/concord/cases"
)

// BenchmarkTransitionWrite measures the store's side of one lifecycle
// step, as cases.Service.Apply performs it: in one read-write
// transaction, read the case, write it back with its version checked and
// incremented, and append the event that records the step (hash-chained
// to the case's log). s must be empty.
func BenchmarkTransitionWrite(b *testing.B, s cases.Store) {
	ctx := context.Background()
	if err := s.Update(ctx, func(tx cases.Tx) error {
		if err := tx.PutInstitution(ctx, newInstitution("inst_a")); err != nil {
			return err
		}
		return tx.PutCase(ctx, newCase("case_bench", "2026-0001", "online", ""))
	}); err != nil {
		b.Fatal(err)
	}
	states := []cases.State{cases.StateAccepted, cases.StateSubmitted}
	payload := json.RawMessage(`{"note":"benchmark step"}`)
	at := base
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		at = at.Add(time.Second)
		err := s.Update(ctx, func(tx cases.Tx) error {
			c, err := tx.Case(ctx, "case_bench")
			if err != nil {
				return err
			}
			c.State = states[i%len(states)]
			c.UpdatedAt = at
			if err := tx.PutCase(ctx, c); err != nil {
				return err
			}
			return tx.AppendEvent(ctx, &cases.Event{CaseID: c.ID, Type: "case." + string(c.State), Actor: "bench", At: at, Payload: payload})
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	var events []cases.Event
	if err := s.View(ctx, func(tx cases.Tx) error {
		var err error
		events, err = tx.Events(ctx, "case_bench")
		return err
	}); err != nil {
		b.Fatal(err)
	}
	if len(events) != b.N {
		b.Fatal(fmt.Sprintf("%d events after %d steps", len(events), b.N))
	}
}

package cases_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/concord-odr/concord/cases"
	"github.com/concord-odr/concord/cases/sqlite"
)

func TestObservedStoreReportsEachTransaction(t *testing.T) {
	ctx := context.Background()
	raw, err := sqlite.Open(ctx, t.TempDir()+"/cases.db")
	if err != nil {
		t.Fatal(err)
	}
	if err := raw.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	type obs struct {
		op  string
		err error
	}
	var seen []obs
	s := cases.ObservedStore(raw, func(op string, took time.Duration, err error) {
		if took < 0 {
			t.Errorf("negative duration %v", took)
		}
		seen = append(seen, obs{op, err})
	})
	defer s.Close()

	inst := &cases.Institution{ID: "inst_obs", Name: "Observed", Code: "OBS", Level: cases.LevelCity, Status: cases.InstitutionActive}
	if err := s.Update(ctx, func(tx cases.Tx) error { return tx.PutInstitution(ctx, inst) }); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	if err := s.Update(ctx, func(tx cases.Tx) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("update error = %v, want boom unchanged", err)
	}
	var got *cases.Institution
	if err := s.View(ctx, func(tx cases.Tx) (err error) { got, err = tx.Institution(ctx, "inst_obs"); return err }); err != nil {
		t.Fatal(err)
	}
	if got.Name != "Observed" {
		t.Fatalf("read back %q", got.Name)
	}
	want := []obs{{"update", nil}, {"update", boom}, {"view", nil}}
	if len(seen) != len(want) {
		t.Fatalf("observed %v, want %v", seen, want)
	}
	for i := range want {
		if seen[i].op != want[i].op || !errors.Is(seen[i].err, want[i].err) {
			t.Fatalf("observation %d = %v, want %v", i, seen[i], want[i])
		}
	}
	if cases.ObservedStore(raw, nil) != cases.Store(raw) {
		t.Fatal("a nil observer should return the store itself")
	}
}

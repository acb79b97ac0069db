package sqlite_test

import (
	"path/filepath"
	"sync"
	"testing"

	"github.com/concord-odr/concord/cases"
	"github.com/concord-odr/concord/cases/casetest"
	"github.com/concord-odr/concord/cases/sqlite"
)

// open returns a migrated store in a file of a new temporary folder.
func open(t testing.TB) cases.Store {
	t.Helper()
	return openPath(t, filepath.Join(t.TempDir(), "data", "concord.db"))
}

func openPath(t testing.TB, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return s
}

func TestStore(t *testing.T) {
	casetest.Run(t, func(t *testing.T) cases.Store { return open(t) })
}

// TestMigrateTwice checks that migrating again, from the same store, from
// another one at the same time, or after reopening, changes nothing.
func TestMigrateTwice(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "concord.db")
	s := openPath(t, path)
	inst := &cases.Institution{ID: "inst_a", Name: "A", Status: "active"}
	if err := s.Update(ctx, func(tx cases.Tx) error { return tx.PutInstitution(ctx, inst) }); err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}

	var wg sync.WaitGroup
	for range 3 {
		other, err := sqlite.Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		wg.Go(func() {
			if err := other.Migrate(ctx); err != nil {
				t.Errorf("concurrent Migrate: %v", err)
			}
		})
	}
	wg.Wait()

	if err := s.View(ctx, func(tx cases.Tx) error {
		_, err := tx.Institution(ctx, "inst_a")
		return err
	}); err != nil {
		t.Fatalf("data lost after migrating again: %v", err)
	}
}

func TestMemory(t *testing.T) {
	ctx := t.Context()
	s := openPath(t, ":memory:")
	c := &cases.Case{ID: "case_1", Number: "N-1", Channel: "online", State: cases.StateSubmitted}
	if err := s.Update(ctx, func(tx cases.Tx) error { return tx.PutCase(ctx, c) }); err != nil {
		t.Fatal(err)
	}
	if err := s.View(ctx, func(tx cases.Tx) error {
		got, err := tx.Case(ctx, "case_1")
		if err == nil && got.Version != 1 {
			t.Errorf("Version = %d, want 1", got.Version)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
}

func TestOpenRejectsURIs(t *testing.T) {
	dir := t.TempDir()
	for _, path := range []string{"file:" + filepath.Join(dir, "x.db"), filepath.Join(dir, "x.db?mode=ro"), filepath.Join(dir, "x#y")} {
		if s, err := sqlite.Open(t.Context(), path); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", path)
		}
	}
}

// BenchmarkTransitionWrite: one lifecycle step's transaction on the
// embedded store (a file in a temporary folder).
func BenchmarkTransitionWrite(b *testing.B) { casetest.BenchmarkTransitionWrite(b, open(b)) }

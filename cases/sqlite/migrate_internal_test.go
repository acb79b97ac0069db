package sqlite

import (
	"path/filepath"
	"testing"

	"github.com/concord-odr/concord/cases"
)

// TestMigrateUpgrade applies 0001 alone, writes a case as the first
// schema stored it, and checks that the later migrations backfill the
// columns the listing uses.
func TestMigrateUpgrade(t *testing.T) {
	ctx := t.Context()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "old.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ms, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) < 2 || ms[0].version != "0001_init" {
		t.Fatalf("migrations: %v", ms)
	}
	if err := s.apply(ctx, ms[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := s.write.ExecContext(ctx, `INSERT INTO cases
		(id, number, institution_id, state, channel, external_ref, version, created_at, updated_at, doc)
		VALUES ('case_old', 'N-1', 'inst_a', 'submitted', 'online', '', 1, 1, 1,
		'{"id":"case_old","number":"N-1","institutionId":"inst_a","state":"submitted","category":"e-commerce","channel":"online"}')`); err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	err = s.View(ctx, func(tx cases.Tx) error {
		list, err := tx.ListCases(ctx, cases.CaseFilter{Category: "e-commerce"})
		if err == nil && (len(list) != 1 || list[0].ID != "case_old") {
			t.Errorf("listing by category after the upgrade: %+v", list)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

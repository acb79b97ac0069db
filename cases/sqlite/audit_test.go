package sqlite_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/concord-odr/concord/cases/casetest"
)

// rawDB opens the store's file directly, as someone with access to the
// database would.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func exec(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.ExecContext(context.Background(), q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// TestAuditTamper edits, deletes and un-hashes rows of the event log
// behind the store's back: the verifier finds the first broken link, and
// migrating chains a log written before hashing.
func TestAuditTamper(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "concord.db")
	s := openPath(t, path)
	svc, caseID := casetest.AuditCase(t, s)
	db := rawDB(t, path)

	casetest.TamperSuite(t, svc, caseID, casetest.Tamperer{
		EditPayload: func(seq int64) {
			exec(t, db, `UPDATE case_events SET payload = '{"result":"settled"}' WHERE case_id = ? AND seq = ?`, caseID, seq)
		},
		EditActor: func(seq int64, actor string) {
			exec(t, db, `UPDATE case_events SET actor = ? WHERE case_id = ? AND seq = ?`, actor, caseID, seq)
		},
		Delete: func(seq int64) {
			exec(t, db, `DELETE FROM case_events WHERE case_id = ? AND seq = ?`, caseID, seq)
		},
		Unhash: func() {
			exec(t, db, `UPDATE case_events SET prev_hash = '', hash = '' WHERE case_id = ?`, caseID)
		},
		Rehash: func(seq int64, prev, hash string) {
			exec(t, db, `UPDATE case_events SET prev_hash = ?, hash = ? WHERE case_id = ? AND seq = ?`, prev, hash, caseID, seq)
		},
		Migrate: func() {
			if err := s.Migrate(ctx); err != nil {
				t.Fatalf("Migrate: %v", err)
			}
		},
	})
}

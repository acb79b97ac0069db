package postgres_test

import (
	"context"
	"testing"

	"github.com/concord-odr/concord/cases/casetest"
	"github.com/jackc/pgx/v5"
)

// TestAuditTamper edits, deletes and un-hashes rows of the event log
// directly in the database: the verifier finds the first broken link, and
// migrating chains a log written before hashing.
func TestAuditTamper(t *testing.T) {
	ctx := t.Context()
	schema, dbURL := newSchema(t)
	s := openURL(t, dbURL)
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	svc, caseID := casetest.AuditCase(t, s)
	conn := connect(t)
	defer conn.Close(context.Background())
	table := pgx.Identifier{schema, "case_events"}.Sanitize()
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := conn.Exec(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	casetest.TamperSuite(t, svc, caseID, casetest.Tamperer{
		EditPayload: func(seq int64) {
			exec(`UPDATE `+table+` SET payload = '{"result": "settled"}' WHERE case_id = $1 AND seq = $2`, caseID, seq)
		},
		EditActor: func(seq int64, actor string) {
			exec(`UPDATE `+table+` SET actor = $1 WHERE case_id = $2 AND seq = $3`, actor, caseID, seq)
		},
		Delete: func(seq int64) {
			exec(`DELETE FROM `+table+` WHERE case_id = $1 AND seq = $2`, caseID, seq)
		},
		Unhash: func() {
			exec(`UPDATE `+table+` SET prev_hash = '', hash = '' WHERE case_id = $1`, caseID)
		},
		Rehash: func(seq int64, prev, hash string) {
			exec(`UPDATE `+table+` SET prev_hash = $1, hash = $2 WHERE case_id = $3 AND seq = $4`, prev, hash, caseID, seq)
		},
		Migrate: func() {
			if err := s.Migrate(ctx); err != nil {
				t.Fatalf("Migrate: %v", err)
			}
		},
	})
}

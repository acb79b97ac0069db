package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/concord-odr/concord/cases"
	"github.com/concord-odr/concord/cases/casetest"
	"github.com/concord-odr/concord/cases/postgres"
	"github.com/concord-odr/concord/cases/sqlite"
)

// auditRun runs "concord audit" and returns its exit code and output.
func auditRun(args ...string) (int, string) {
	var out, errOut bytes.Buffer
	code := run(append([]string{"audit"}, args...), nil, &out, &errOut)
	return code, out.String() + errOut.String()
}

// checkAudit runs the verifier on an intact log, then has tamper edit the
// stored event 3, and checks that the verifier reports it.
func checkAudit(t *testing.T, storeFlags []string, caseID, head string, tamper func()) {
	t.Helper()
	code, out := auditRun(append([]string{"verify", caseID}, storeFlags...)...)
	if code != 0 || !strings.Contains(out, "chain intact") {
		t.Fatalf("verify intact log: %d\n%s", code, out)
	}
	code, out = auditRun(append(append([]string{"verify"}, storeFlags...), "--head", head, caseID)...)
	if code != 0 || !strings.Contains(out, "exported head") {
		t.Fatalf("verify with the head: %d\n%s", code, out)
	}
	code, out = auditRun(append([]string{"heads"}, storeFlags...)...)
	if code != 0 || !strings.Contains(out, caseID) || !strings.Contains(out, `"digest"`) {
		t.Fatalf("heads: %d\n%s", code, out)
	}
	tamper()
	code, out = auditRun(append([]string{"verify", caseID}, storeFlags...)...)
	if code != 1 || !strings.Contains(out, "BROKEN at event 3") {
		t.Fatalf("verify tampered log: %d\n%s", code, out)
	}
	code, out = auditRun(append([]string{"verify", caseID, "--json"}, storeFlags...)...)
	if code != 1 || !strings.Contains(out, `"seq": 3`) {
		t.Fatalf("verify --json: %d\n%s", code, out)
	}
}

func headOf(t *testing.T, svc *cases.Service, caseID string) string {
	t.Helper()
	rep, err := svc.VerifyCase(t.Context(), caseID)
	if err != nil || !rep.OK {
		t.Fatalf("VerifyCase: %v %+v", err, rep)
	}
	return fmt.Sprintf("%d:%s", rep.Head.Seq, rep.Head.Hash)
}

func TestAuditVerifyEmbedded(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cases.db")
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	svc, caseID := casetest.AuditCase(t, s)
	head := headOf(t, svc, caseID)
	checkAudit(t, []string{"--data-dir", dir}, caseID, head, func() {
		db, err := sql.Open("sqlite", path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.Exec(`UPDATE case_events SET actor = 'mallory' WHERE case_id = ? AND seq = 3`, caseID); err != nil {
			t.Fatal(err)
		}
	})
	// A rewritten chain verifies on its own; the exported head catches it.
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	evs, err := svc.Events(t.Context(), caseID)
	if err != nil {
		t.Fatal(err)
	}
	for i := 2; i < len(evs); i++ {
		evs[i].Hash = ""
	}
	if _, err := cases.ChainEvents(evs); err != nil {
		t.Fatal(err)
	}
	for _, e := range evs[2:] {
		if _, err := db.Exec(`UPDATE case_events SET prev_hash = ?, hash = ? WHERE case_id = ? AND seq = ?`, e.PrevHash, e.Hash, caseID, e.Seq); err != nil {
			t.Fatal(err)
		}
	}
	if code, out := auditRun("verify", caseID, "--data-dir", dir); code != 0 {
		t.Fatalf("rewritten chain alone: %d\n%s", code, out)
	}
	if code, out := auditRun("verify", caseID, "--data-dir", dir, "--head", head); code != 1 || !strings.Contains(out, "rewritten") {
		t.Fatalf("rewritten chain against its exported head: %d\n%s", code, out)
	}

	// Usage errors and a missing store.
	for _, args := range [][]string{{"verify"}, {"verify", "a", "b"}, {"nope"}, {"verify", "x", "--head", "3"}} {
		if code, out := auditRun(args...); code != 2 {
			t.Errorf("audit %v: %d\n%s", args, code, out)
		}
	}
	if code, out := auditRun("verify", caseID, "--data-dir", t.TempDir()); code != 1 || !strings.Contains(out, "no embedded store") {
		t.Fatalf("missing store: %d\n%s", code, out)
	}
	if code, out := auditRun("verify", "case_nope", "--data-dir", dir); code != 1 || !strings.Contains(out, "no events") {
		t.Fatalf("unknown case: %d\n%s", code, out)
	}
}

func TestAuditVerifyPostgres(t *testing.T) {
	dbURL := testPostgresURL(t)
	s, err := postgres.Open(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	svc, caseID := casetest.AuditCase(t, s)
	checkAudit(t, []string{"--database-url", dbURL}, caseID, headOf(t, svc, caseID), func() {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, dbURL)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `UPDATE case_events SET payload = '{"forged": true}' WHERE case_id = $1 AND seq = 3`, caseID); err != nil {
			t.Fatal(err)
		}
	})
}

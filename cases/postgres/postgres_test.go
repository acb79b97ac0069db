package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/concord-odr/concord/cases"
	"github.com/concord-odr/concord/cases/casetest"
	"github.com/concord-odr/concord/cases/postgres"
	"github.com/jackc/pgx/v5"
)

// defaultURL is the test database when CONCORD_TEST_DATABASE_URL is unset.
const defaultURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

func databaseURL() string {
	if u := os.Getenv("CONCORD_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return defaultURL
}

// connect opens an administrative connection to the test database. When
// the database cannot be reached the test is skipped, except in CI, where
// it fails.
func connect(t testing.TB) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, databaseURL())
	if err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("PostgreSQL unreachable (set CONCORD_TEST_DATABASE_URL): %v", err)
		}
		t.Fatalf("PostgreSQL unreachable in CI: %v", err)
	}
	return conn
}

// newSchema creates an empty schema that is dropped when t ends, and
// returns the database URL with that schema as its search path.
func newSchema(t testing.TB) (schema, dbURL string) {
	t.Helper()
	var b [8]byte
	_, _ = rand.Read(b[:])
	schema = "t_" + hex.EncodeToString(b[:])
	conn := connect(t)
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, databaseURL())
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return schema, withSearchPath(t, databaseURL(), schema)
}

// withSearchPath adds a search_path run-time parameter to a URL or a
// key=value connection string.
func withSearchPath(t testing.TB, dbURL, schema string) string {
	t.Helper()
	if !strings.HasPrefix(dbURL, "postgres://") && !strings.HasPrefix(dbURL, "postgresql://") {
		return dbURL + " search_path=" + schema
	}
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatalf("CONCORD_TEST_DATABASE_URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// openURL opens a store on dbURL that is closed when t ends.
func openURL(t testing.TB, dbURL string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(t.Context(), dbURL)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// open returns a migrated store in a new schema.
func open(t testing.TB) cases.Store {
	t.Helper()
	_, dbURL := newSchema(t)
	s := openURL(t, dbURL)
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return s
}

func TestStore(t *testing.T) {
	connect(t).Close(context.Background())
	casetest.Run(t, func(t *testing.T) cases.Store { return open(t) })
}

// TestMigrateConcurrently migrates one schema from several nodes at once
// and again afterwards: each migration is applied exactly once.
func TestMigrateConcurrently(t *testing.T) {
	ctx := t.Context()
	schema, dbURL := newSchema(t)
	var wg sync.WaitGroup
	for range 4 {
		s := openURL(t, dbURL)
		wg.Go(func() {
			if err := s.Migrate(ctx); err != nil {
				t.Errorf("concurrent Migrate: %v", err)
			}
		})
	}
	wg.Wait()
	s := openURL(t, dbURL)
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate again: %v", err)
	}

	conn := connect(t)
	defer conn.Close(context.Background())
	var versions []string
	rows, err := conn.Query(ctx, "SELECT version FROM "+schema+".schema_migrations ORDER BY version")
	if err != nil {
		t.Fatal(err)
	}
	versions, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(versions) == 0 || versions[0] != "0001_init" {
		t.Fatalf("schema_migrations = %v", versions)
	}
	var dup int
	if err := conn.QueryRow(ctx, "SELECT count(*) - count(DISTINCT version) FROM "+schema+".schema_migrations").Scan(&dup); err != nil || dup != 0 {
		t.Fatalf("duplicate migrations: %d, %v", dup, err)
	}
}

// TestUnstorableText checks that text PostgreSQL cannot store is an
// invalid request, not an internal error.
func TestUnstorableText(t *testing.T) {
	ctx := t.Context()
	s := open(t)
	c := &cases.Case{ID: "case_1", Number: "N-1", Channel: "online", State: cases.StateSubmitted, Claims: "a\x00b"}
	err := s.Update(ctx, func(tx cases.Tx) error { return tx.PutCase(ctx, c) })
	if cases.ErrorCode(err) != cases.EINVALID {
		t.Fatalf("PutCase with a NUL = %v, want invalid", err)
	}
}

func TestOpenBadURL(t *testing.T) {
	_, err := postgres.Open(t.Context(), "postgres://user:secret@[::1")
	if err == nil || strings.Contains(err.Error(), "secret") {
		t.Fatalf("Open with a bad URL = %v", err)
	}
}

// BenchmarkTransitionWrite: one lifecycle step's transaction on
// PostgreSQL (CONCORD_TEST_DATABASE_URL, a fresh schema).
func BenchmarkTransitionWrite(b *testing.B) { casetest.BenchmarkTransitionWrite(b, open(b)) }

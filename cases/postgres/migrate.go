package postgres

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strings"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrateLockClass is the first key of the advisory lock held while
// migrating; the second is a hash of the schema being migrated.
const migrateLockClass = 0x434f4e43 // "CONC"

// migration is one schema change, named by its file.
type migration struct {
	version string // file name without ".sql", e.g. "0001_init"
	sql     string
}

// loadMigrations returns the embedded migrations in file-name order.
func loadMigrations() ([]migration, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, fmt.Errorf("postgres: migrations: %w", err)
	}
	sort.Strings(names)
	ms := make([]migration, 0, len(names))
	for _, name := range names {
		b, err := migrationFiles.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("postgres: migrations: %w", err)
		}
		version := strings.TrimSuffix(strings.TrimPrefix(name, "migrations/"), ".sql")
		ms = append(ms, migration{version: version, sql: string(b)})
	}
	return ms, nil
}

// Migrate applies the embedded migrations that the database has not
// recorded in schema_migrations, each in its own transaction, in file-name
// order, into the first schema of the search path. Each transaction holds
// an advisory lock on that schema, so nodes migrating at the same time
// take turns and each migration runs once.
func (s *Store) Migrate(ctx context.Context) error {
	ms, err := loadMigrations()
	if err != nil {
		return err
	}
	for _, m := range ms {
		if err := s.apply(ctx, m); err != nil {
			return err
		}
	}
	// Events written before the log was hash-chained are chained now.
	return s.chainUnhashed(ctx)
}

// apply runs one migration unless it is already recorded.
func (s *Store) apply(ctx context.Context, m migration) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return dbError("migrate "+m.version, err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))`, int32(migrateLockClass)); err != nil {
		return dbError("migrate: lock", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    text PRIMARY KEY,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return dbError("migrate: create schema_migrations", err)
	}
	var applied bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)`,
		m.version).Scan(&applied); err != nil {
		return dbError("migrate "+m.version, err)
	}
	if applied {
		return nil
	}
	// Without arguments Exec uses the simple protocol, which runs a
	// script of several statements.
	if _, err := tx.Exec(ctx, m.sql); err != nil {
		return dbError("migrate "+m.version, err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version) VALUES ($1)`, m.version); err != nil {
		return dbError("migrate "+m.version, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return dbError("migrate "+m.version, err)
	}
	return nil
}

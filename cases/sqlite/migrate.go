package sqlite

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"time"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migration is one schema change, named by its file.
type migration struct {
	version string // file name without ".sql", e.g. "0001_init"
	sql     string
}

// loadMigrations returns the embedded migrations in file-name order.
func loadMigrations() ([]migration, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, fmt.Errorf("sqlite: migrations: %w", err)
	}
	sort.Strings(names)
	ms := make([]migration, 0, len(names))
	for _, name := range names {
		b, err := migrationFiles.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("sqlite: migrations: %w", err)
		}
		version := strings.TrimSuffix(strings.TrimPrefix(name, "migrations/"), ".sql")
		ms = append(ms, migration{version: version, sql: string(b)})
	}
	return ms, nil
}

// Migrate applies the embedded migrations that the database has not
// recorded in schema_migrations, each in its own transaction, in file-name
// order. Running it again, or from two processes at once, is safe: each
// migration is checked and applied under the write lock.
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
	tx, err := s.write.BeginTx(ctx, nil) // BEGIN IMMEDIATE: holds the write lock
	if err != nil {
		return dbError("migrate "+m.version, err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    TEXT PRIMARY KEY,
		applied_at INTEGER NOT NULL
	) STRICT`); err != nil {
		return dbError("migrate: create schema_migrations", err)
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, m.version).Scan(&n); err != nil {
		return dbError("migrate "+m.version, err)
	}
	if n > 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return dbError("migrate "+m.version, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`,
		m.version, time.Now().UnixMicro()); err != nil {
		return dbError("migrate "+m.version, err)
	}
	if err := tx.Commit(); err != nil {
		return dbError("migrate "+m.version, err)
	}
	return nil
}

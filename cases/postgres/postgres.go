// Package postgres implements cases.Store on PostgreSQL through pgx v5 and
// its connection pool. It is the production store; several server nodes
// may share one database.
//
// Update runs in a READ COMMITTED transaction. Inside it, Case, Session
// and CaseByExternalRef lock the row they read (SELECT ... FOR UPDATE), so
// Updates that read and then write the same case or session run one after
// the other; Put methods also check the version they were given, so a
// write based on a stale read is a cases.ECONFLICT rather than a lost
// update. View runs in a READ ONLY, REPEATABLE READ transaction: all its
// reads see one snapshot.
//
// Times are stored in UTC with microsecond precision, the precision of
// timestamptz; see the Put methods of the transaction.
package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/concord-odr/concord/cases"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Store is a cases.Store on PostgreSQL. Its methods are safe for
// concurrent use.
type Store struct {
	pool *pgxpool.Pool
}

var _ cases.Store = (*Store)(nil)

// Open connects to the database at url, a postgres:// URL or a key=value
// connection string as pgx accepts them (pool settings such as
// pool_max_conns, and run-time parameters such as search_path, included).
// It checks the connection but does not create the schema: call Migrate.
func Open(ctx context.Context, url string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// The parse error may quote the URL, password included.
		return nil, errors.New("postgres: open: invalid connection string")
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	return &Store{pool: pool}, nil
}

// Close closes the pool's connections.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// Update runs fn in a read-write transaction. An error from fn rolls back
// everything fn wrote and is returned unchanged.
func (s *Store) Update(ctx context.Context, fn func(cases.Tx) error) error {
	pgTx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return dbError("begin", err)
	}
	defer func() { _ = pgTx.Rollback(ctx) }()
	if err := fn(&tx{tx: pgTx}); err != nil {
		return err
	}
	if err := pgTx.Commit(ctx); err != nil {
		return dbError("commit", err)
	}
	return nil
}

// View runs fn in a read-only transaction that sees one snapshot. Put
// methods called inside it fail.
func (s *Store) View(ctx context.Context, fn func(cases.Tx) error) error {
	pgTx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return dbError("begin", err)
	}
	defer func() { _ = pgTx.Rollback(ctx) }()
	return fn(&tx{tx: pgTx, readOnly: true})
}

// PostgreSQL error codes the store maps to domain errors.
const (
	codeUniqueViolation      = "23505"
	codeForeignKeyViolation  = "23503"
	codeSerializationFailure = "40001"
	codeDeadlockDetected     = "40P01"
	codeLockNotAvailable     = "55P03"
	codeUntranslatableChar   = "22P05" // e.g. \u0000 in jsonb
	codeCharNotInRepertoire  = "22021" // e.g. a NUL byte in text
)

// pgCode returns the SQLSTATE of a server error, or "".
func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// dbError wraps a driver error, mapping the codes that mean "try again"
// to cases.ECONFLICT and unstorable text to cases.EINVALID.
func dbError(op string, err error) error {
	switch pgCode(err) {
	case codeSerializationFailure, codeDeadlockDetected, codeLockNotAvailable:
		return domainError(op, cases.ECONFLICT, "a concurrent change got in the way; try again", err)
	case codeUntranslatableChar, codeCharNotInRepertoire:
		return domainError(op, cases.EINVALID, "the text contains characters that cannot be stored", err)
	}
	if unreachable(err) {
		return domainError(op, cases.EUNAVAILABLE, "the case store cannot be reached; try again later", err)
	}
	return fmt.Errorf("postgres: %s: %w", op, err)
}

// domainError returns an error that carries a domain code and safe
// message for the caller and the driver error for the log.
func domainError(op, code, msg string, err error) error {
	return fmt.Errorf("postgres: %s: %w: %w", op, cases.Errorf(code, "%s", msg), err)
}

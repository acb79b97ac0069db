// Package sqlite implements cases.Store on an embedded SQLite database
// (modernc.org/sqlite, pure Go, no cgo). It is the default store: one file
// in the server's data folder.
//
// Writes are serialised. Update runs on the single connection of a writer
// pool, in a BEGIN IMMEDIATE transaction, so concurrent Updates in one
// process queue for that connection instead of failing with SQLITE_BUSY,
// and another process holding the write lock is waited for up to the busy
// timeout. View runs on a pool of query-only connections; in WAL mode each
// View reads one consistent snapshot and never blocks the writer.
//
// Update must not be called from inside another Update's function: the
// inner call would wait for the connection the outer one holds.
//
// Times are stored in UTC with microsecond precision; see the Put methods
// of the transaction.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/concord-odr/concord/cases"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// busyTimeout is how long a statement waits for a lock held by another
// connection or process before it fails with SQLITE_BUSY.
const busyTimeout = 10 * time.Second

// Store is a cases.Store on SQLite. Its methods are safe for concurrent
// use.
type Store struct {
	write *sql.DB // exactly one connection: every Update queues for it
	read  *sql.DB // query-only connections for View; write itself in memory
}

var _ cases.Store = (*Store)(nil)

// Open opens the database at path, creating the file and its folder if
// needed. A path of "" or ":memory:" opens a private in-memory database
// that lives until Close; it has a single connection, so Views and
// Updates take turns. Open does not create the schema: call Migrate.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" || path == ":memory:" {
		return openMemory(ctx)
	}
	if strings.ContainsAny(path, "?#") || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("sqlite: open %q: the path must be a plain file name", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	write, err := openDB(ctx, path, dsnParams(true), 1)
	if err != nil {
		return nil, err
	}
	// The writer has switched the file to WAL before any reader opens it.
	read, err := openDB(ctx, path, dsnParams(false), max(2, runtime.NumCPU()))
	if err != nil {
		_ = write.Close()
		return nil, err
	}
	return &Store{write: write, read: read}, nil
}

func openMemory(ctx context.Context) (*Store, error) {
	db, err := openDB(ctx, ":memory:", dsnParams(true), 1)
	if err != nil {
		return nil, err
	}
	// An in-memory database exists only as long as its one connection.
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	return &Store{write: db, read: db}, nil
}

// dsnParams returns the connection parameters of the writer or of a
// reader.
func dsnParams(writer bool) url.Values {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	if writer {
		q.Add("_pragma", "foreign_keys(1)")
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(FULL)")
		q.Set("_txlock", "immediate")
	} else {
		q.Add("_pragma", "query_only(1)")
	}
	return q
}

func openDB(ctx context.Context, path string, q url.Values, conns int) (*sql.DB, error) {
	db, err := sql.Open("sqlite", path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	return db, nil
}

// Close closes the database.
func (s *Store) Close() error {
	err := s.write.Close()
	if s.read != s.write {
		err = errors.Join(err, s.read.Close())
	}
	return err
}

// Update runs fn in a write transaction. Updates are serialised; an error
// from fn rolls back everything fn wrote and is returned unchanged.
func (s *Store) Update(ctx context.Context, fn func(cases.Tx) error) error {
	sqlTx, err := s.write.BeginTx(ctx, nil) // BEGIN IMMEDIATE, see dsnParams
	if err != nil {
		return dbError("begin", err)
	}
	defer func() { _ = sqlTx.Rollback() }()
	if err := fn(&tx{tx: sqlTx}); err != nil {
		return err
	}
	if err := sqlTx.Commit(); err != nil {
		return dbError("commit", err)
	}
	return nil
}

// View runs fn in a read-only transaction that sees one snapshot. Put
// methods called inside it fail.
func (s *Store) View(ctx context.Context, fn func(cases.Tx) error) error {
	sqlTx, err := s.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return dbError("begin", err)
	}
	defer func() { _ = sqlTx.Rollback() }()
	return fn(&tx{tx: sqlTx, readOnly: true})
}

// dbError wraps a driver error. A lock that could not be taken within the
// busy timeout is a cases.ECONFLICT: the caller may try again.
func dbError(op string, err error) error {
	if code, ok := sqliteCode(err); ok && (code&0xff == sqlite3.SQLITE_BUSY || code&0xff == sqlite3.SQLITE_LOCKED) {
		return fmt.Errorf("sqlite: %s: %w: %w", op, cases.Errorf(cases.ECONFLICT, "the store is busy, try again"), err)
	}
	return fmt.Errorf("sqlite: %s: %w", op, err)
}

// sqliteCode returns the extended result code of a driver error.
func sqliteCode(err error) (int, bool) {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code(), true
	}
	return 0, false
}

// isUnique reports whether err is a UNIQUE or PRIMARY KEY violation.
func isUnique(err error) bool {
	code, ok := sqliteCode(err)
	return ok && (code == sqlite3.SQLITE_CONSTRAINT_UNIQUE || code == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY)
}

// isForeignKey reports whether err is a FOREIGN KEY violation.
func isForeignKey(err error) bool {
	code, ok := sqliteCode(err)
	return ok && code == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
}

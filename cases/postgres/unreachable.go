package postgres

import (
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"
)

// unreachable reports whether err means the database could not be
// reached or the connection was lost: the request may succeed later, and
// whether a write that failed this way was committed is unknown (callers
// retry idempotently).
func unreachable(err error) bool {
	if err == nil {
		return false
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	switch {
	case errors.As(err, &ce), errors.As(err, &ne):
		return true
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, puddle.ErrClosedPool):
		return true
	case pgconn.Timeout(err), pgconn.SafeToRetry(err):
		return true
	}
	// Class 08: connection exception; 57P01-03: the server is shutting
	// down or starting.
	code := pgCode(err)
	if strings.HasPrefix(code, "08") || code == "57P01" || code == "57P02" || code == "57P03" {
		return true
	}
	// pgx reports a connection it closed after a failure as "conn closed".
	return strings.Contains(err.Error(), "conn closed")
}

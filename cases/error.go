package cases

import (
	"errors"
	"fmt"
)

// Error codes. They are stable: clients and the web layer's status table
// depend on them.
const (
	EINVALID    = "invalid"            // the request breaks a validation rule
	ENOTFOUND   = "not_found"          // no such thing, or the caller may not know of it
	ECONFLICT   = "conflict"           // a concurrent change or a duplicate
	ETRANSITION = "invalid_transition" // the case is not in a state that allows this
	// EIDEMPOTENCY: an idempotency key was used again with another request.
	EIDEMPOTENCY = "idempotency_key_reused"
	EINTERNAL    = "internal" // anything else; its detail is logged, never shown
	// EUNAUTHORIZED: no credential, or one that is not valid (wrong
	// password, expired or revoked token).
	EUNAUTHORIZED = "unauthorized"
	// EFORBIDDEN: a valid credential whose role may not do this. Where the
	// caller may not even know of the thing, ENOTFOUND is used instead.
	EFORBIDDEN = "forbidden"
)

// Error is a domain error: a stable code and a message safe to show a user.
type Error struct {
	Code    string
	Message string
	// Field names the input at fault, as the API spells it ("reasonCode",
	// "applicant.name"), when there is one.
	Field string
}

// FieldErrorf returns an EINVALID *Error naming the field at fault.
func FieldErrorf(field, format string, args ...any) *Error {
	return &Error{Code: EINVALID, Field: field, Message: fmt.Sprintf(format, args...)}
}

// ErrorField returns the field named by err, or "".
func ErrorField(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Field
	}
	return ""
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf returns an *Error with the given code and a formatted safe message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of err, or EINTERNAL when err carries none.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	if err == nil {
		return ""
	}
	return EINTERNAL
}

// ErrorMessage returns the safe message of err; internal errors get a
// generic text so that their detail never leaves the server.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}

package web

import (
	"encoding/json"
	"log/slog"
	"net/http"

	"github.com/concord-odr/concord/cases"
	"github.com/concord-odr/concord/cases/identity"
)

// Problem codes of the HTTP layer, beside the cases error codes.
const (
	codeUnauthorized = "unauthorized"
	codeBadRequest   = "bad_request"
	codeTooLarge     = "too_large"
	codeUnsupported  = "unsupported_media_type"
	codeNoRoute      = "no_route"
	codeMethod       = "method_not_allowed"
	codeRateLimited  = "rate_limited"
)

// statusByCode is the one table from error codes to HTTP statuses.
var statusByCode = map[string]int{
	cases.EINVALID:    http.StatusUnprocessableEntity,
	cases.ENOTFOUND:   http.StatusNotFound,
	cases.ECONFLICT:   http.StatusConflict,
	cases.ETRANSITION: http.StatusConflict,
	cases.EINTERNAL:   http.StatusInternalServerError,
	// The case store is unreachable: try again later.
	cases.EUNAVAILABLE: http.StatusServiceUnavailable,
	codeUnauthorized:   http.StatusUnauthorized,
	codeBadRequest:     http.StatusBadRequest,
	codeTooLarge:       http.StatusRequestEntityTooLarge,
	codeUnsupported:    http.StatusUnsupportedMediaType,
	codeNoRoute:        http.StatusNotFound,
	codeMethod:         http.StatusMethodNotAllowed,

	cases.EIDEMPOTENCY: http.StatusUnprocessableEntity,
	codeBadSignature:   http.StatusUnauthorized,

	cases.EFORBIDDEN:       http.StatusForbidden,
	codeRateLimited:        http.StatusTooManyRequests,
	identity.ELinkNotFound: http.StatusNotFound,
	identity.ELinkExpired:  http.StatusGone,
	identity.ELinkRevoked:  http.StatusGone,
	identity.ESessionEnded: http.StatusGone,
	identity.ERemoved:      http.StatusGone,
}

// Problem is an RFC 9457 problem document with Concord's stable code.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Code   string `json:"code"`
	Detail string `json:"detail,omitempty"`
}

// writeProblem answers with a problem document for code.
func writeProblem(w http.ResponseWriter, code, detail string) {
	status, ok := statusByCode[code]
	if !ok {
		status = http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(Problem{
		Type:   "urn:concord:problem:" + code,
		Title:  http.StatusText(status),
		Status: status,
		Code:   code,
		Detail: detail,
	})
}

// writeError answers with the problem for a domain error, logging the
// internal detail of unexpected ones.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	code := cases.ErrorCode(err)
	if code == cases.EINTERNAL {
		log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeProblem(w, code, cases.ErrorMessage(err))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

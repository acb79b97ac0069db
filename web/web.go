// Package web serves Concord's HTTP API (/api/v1), its health checks and
// the embedded browser client. It decides no case rule itself: it
// authenticates, decodes, and calls cases.
package web

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/concord-odr/concord/cases"
	"github.com/concord-odr/concord/cases/joinlink"
)

//go:embed static
var staticFiles embed.FS

// TokenVerifier checks a join token.
type TokenVerifier interface {
	Verify(token string) (*joinlink.Claims, error)
}

// SessionEnder closes a session's live room.
type SessionEnder interface {
	EndSession(sessionID, result string)
}

// Params configures the handler.
type Params struct {
	Logger    *slog.Logger
	Cases     *cases.Service
	Tokens    TokenVerifier
	Signaling http.Handler // the WebSocket endpoint, mounted at /ws
	Rooms     SessionEnder
	// AdminToken is the operator's bearer token for the staff case API;
	// empty refuses every staff request. ImportSecret is the HMAC key of
	// the case import webhook; empty refuses every import.
	AdminToken   string
	ImportSecret string
}

// Handler is Concord's HTTP handler.
type Handler struct {
	p      Params
	log    *slog.Logger
	mux    *http.ServeMux
	static fs.FS
}

// NewHandler returns the HTTP handler.
func NewHandler(p Params) *Handler {
	if p.Logger == nil {
		p.Logger = slog.New(slog.DiscardHandler)
	}
	static, _ := fs.Sub(staticFiles, "static")
	h := &Handler{p: p, log: p.Logger, mux: http.NewServeMux(), static: static}
	h.mux.HandleFunc("GET /healthz", h.healthz)
	h.mux.HandleFunc("GET /readyz", h.readyz)
	h.mux.HandleFunc("GET /{$}", h.page("index.html"))
	h.mux.HandleFunc("GET /join", h.page("join.html"))
	h.mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	if p.Signaling != nil {
		h.mux.Handle("GET /ws", p.Signaling)
	}
	h.mux.HandleFunc("GET /api/v1/cases/{id}", h.getCase)
	h.mux.HandleFunc("POST /api/v1/sessions/{id}/end", h.endSession)
	h.registerCaseAPI()
	h.mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, codeNoRoute, "no such endpoint")
	})
	return h
}

// ServeHTTP adds the security headers and routes the request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data: blob:; media-src 'self' blob:; style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Permissions-Policy", "camera=(self), microphone=(self), display-capture=(self), geolocation=()")
	// Mux's own 404/405 answers for API paths become problems.
	if strings.HasPrefix(r.URL.Path, "/api/") {
		if _, pattern := h.mux.Handler(r); pattern == "" {
			writeProblem(w, codeMethod, "method not allowed")
			return
		}
	}
	h.mux.ServeHTTP(w, r)
}

func (h *Handler) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz checks that the case store answers.
func (h *Handler) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	err := h.p.Cases.Store().View(ctx, func(tx cases.Tx) error {
		_, err := tx.Institution(ctx, "readiness-probe")
		if cases.ErrorCode(err) == cases.ENOTFOUND {
			return nil
		}
		return err
	})
	if err != nil {
		h.log.Warn("not ready", "err", err)
		writeProblem(w, cases.EINTERNAL, "the case store is not reachable")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (h *Handler) page(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, err := fs.ReadFile(h.static, name)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		_, _ = w.Write(b)
	}
}

// claims authenticates the request's bearer join token.
func (h *Handler) claims(w http.ResponseWriter, r *http.Request) (*joinlink.Claims, bool) {
	auth := r.Header.Get("Authorization")
	token, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok || token == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="concord"`)
		writeProblem(w, codeUnauthorized, "a bearer token is required")
		return nil, false
	}
	c, err := h.p.Tokens.Verify(strings.TrimSpace(token))
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="concord", error="invalid_token"`)
		writeProblem(w, codeUnauthorized, err.Error())
		return nil, false
	}
	return c, true
}

// getCase returns a case with its sessions and events to the operator or
// a participant of that case. Anyone else is told it does not exist.
func (h *Handler) getCase(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !h.isOperator(r) {
		c, ok := h.claims(w, r)
		if !ok {
			return
		}
		if c.CaseID != id {
			writeProblem(w, cases.ENOTFOUND, "case not found")
			return
		}
	}
	rec, err := h.p.Cases.Record(r.Context(), id)
	if err != nil {
		writeError(w, r, h.log, err)
		return
	}
	writeJSON(w, http.StatusOK, rec)
}

// endSessionRequest is the body of POST /api/v1/sessions/{id}/end.
type endSessionRequest struct {
	Result   cases.Result `json:"result"`
	Terms    string       `json:"terms"`
	Remedies []string     `json:"remedies"`
}

// endSession records the outcome and closes the room; only the session's
// mediator may call it.
func (h *Handler) endSession(w http.ResponseWriter, r *http.Request) {
	c, ok := h.claims(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	if c.SessionID != id {
		writeProblem(w, cases.ENOTFOUND, "session not found")
		return
	}
	var req endSessionRequest
	if !h.decode(w, r, &req) {
		return
	}
	_, _, err := h.p.Cases.EndSession(r.Context(), id, c.ParticipantID(), cases.Outcome{
		Result: req.Result, Terms: req.Terms, Remedies: req.Remedies,
	})
	if err != nil {
		writeError(w, r, h.log, err)
		return
	}
	if h.p.Rooms != nil {
		h.p.Rooms.EndSession(id, string(req.Result))
	}
	rec, err := h.p.Cases.Record(r.Context(), c.CaseID)
	if err != nil {
		writeError(w, r, h.log, err)
		return
	}
	writeJSON(w, http.StatusOK, rec)
}

// decode reads one JSON object of at most 64 KiB with no unknown fields.
func (h *Handler) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		writeProblem(w, codeUnsupported, "the body must be application/json")
		return false
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeProblem(w, codeTooLarge, "the body is larger than 64 KiB")
			return false
		}
		writeProblem(w, codeBadRequest, "the body is not a valid JSON object for this endpoint: "+safeJSONError(err))
		return false
	}
	if dec.Decode(&struct{}{}) != io.EOF {
		writeProblem(w, codeBadRequest, "the body must hold a single JSON object")
		return false
	}
	return true
}

// safeJSONError describes a decoding error without echoing the input.
func safeJSONError(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return "syntax error"
	case errors.As(err, &te):
		return "field " + te.Field + " has the wrong type"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	case errors.Is(err, io.EOF):
		return "empty body"
	}
	return "malformed"
}

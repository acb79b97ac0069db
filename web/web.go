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
	"net/netip"
	"strings"
	"time"

	"github.com/concord-odr/concord/cases"
	"github.com/concord-odr/concord/cases/identity"
	"github.com/concord-odr/concord/cases/joinlink"
	"github.com/concord-odr/concord/web/ratelimit"
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
	// Identity holds staff accounts and join links; nil disables staff
	// logins, short links and the sending of links.
	Identity *identity.Service
	// Queue is the instant-mediation queue (cases/queue.go); nil makes
	// one in the handler that the queue API's own calls drive.
	Queue *cases.Queue
	// QueueNode, with several nodes, says which runs the queue; the queue
	// and kiosk requests reaching another node are relayed to it.
	QueueNode QueueNode
	// Limiter counts attempts at logins and join link exchanges; nil
	// counts in process. Limits are its rules; zero fields take the
	// defaults of DefaultLimits.
	Limiter ratelimit.Limiter
	Limits  Limits
	// TrustedProxies are the addresses of reverse proxies whose
	// X-Forwarded-For header names the client; empty trusts none.
	TrustedProxies []netip.Prefix
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
	h.mux.HandleFunc("GET /console", h.page("console.html"))
	h.mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	if p.Signaling != nil {
		h.mux.Handle("GET /ws", p.Signaling)
	}
	h.mux.HandleFunc("GET /api/v1/cases/{id}", h.guard(staffOrParty, h.getCase))
	h.mux.HandleFunc("POST /api/v1/sessions/{id}/end", h.guard(partyOnly, h.endSession))
	h.registerCaseAPI()
	h.registerIdentityAPI()
	h.registerAgreementAPI()
	h.registerODRAPI()
	h.registerStatsAPI()
	h.registerQueueAPI()
	h.registerScheduleAPI()
	h.registerKioskAPI() // the kiosk API and its page, GET /kiosk
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
	if h.routeQueue(w, r) {
		return
	}
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

// getCase returns a case with its sessions and events to staff who may
// see it or a participant of that case. Anyone else is told it does not
// exist.
func (h *Handler) getCase(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	c, err := h.p.Cases.Case(r.Context(), id)
	if err == nil {
		err = h.authorize(r.Context(), principalOf(r), actReadCase, target{Case: c})
	}
	if err != nil {
		writeError(w, r, h.log, err)
		return
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
	// NextSessionAt is when an adjourned case meets again.
	NextSessionAt *time.Time `json:"nextSessionAt,omitempty"`
	// AgreementID names the signed agreement of a settled outcome; it
	// defaults to the case's.
	AgreementID string `json:"agreementId,omitempty"`
}

// endSession records the outcome and closes the room; only the session's
// mediator may call it.
func (h *Handler) endSession(w http.ResponseWriter, r *http.Request) {
	p := principalOf(r)
	c := p.claims
	id := r.PathValue("id")
	if err := h.authorize(r.Context(), p, actEndSession, target{SessionID: id}); err != nil {
		writeError(w, r, h.log, err)
		return
	}
	var req endSessionRequest
	if !h.decode(w, r, &req) {
		return
	}
	// Idempotent by the session: a retry of the same request answers the
	// same; with the store unreachable the outcome waits in the outbox
	// (202 Accepted). See cases/outcome.go.
	res, err := h.p.Cases.EndSessionDurably(r.Context(), cases.EndRequest{
		SessionID: id, ActorID: c.ParticipantID(),
		Outcome: cases.Outcome{Result: req.Result, Terms: req.Terms, Remedies: req.Remedies,
			NextSessionAt: req.NextSessionAt, AgreementID: req.AgreementID},
	})
	if err != nil {
		writeError(w, r, h.log, err)
		return
	}
	if h.p.Rooms != nil {
		h.p.Rooms.EndSession(id, string(req.Result))
	}
	if res.Queued {
		writeJSON(w, http.StatusAccepted, map[string]any{
			"queued": true, "outboxId": res.OutboxID, "sessionId": id, "result": req.Result,
		})
		return
	}
	if res.Replayed {
		w.Header().Set("Idempotency-Replayed", "true")
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

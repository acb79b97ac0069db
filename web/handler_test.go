package web

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestPagesAndHeaders(t *testing.T) {
	h := NewHandler(Params{})
	for _, tc := range []struct {
		path, ctype string
		status      int
	}{
		{"/", "text/html", 200},
		{"/join", "text/html", 200},
		{"/static/app.js", "javascript", 200},
		{"/static/style.css", "text/css", 200},
		{"/static/missing.js", "", 404},
		{"/healthz", "application/json", 200},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", tc.path, nil))
		if rec.Code != tc.status {
			t.Errorf("%s: status %d, want %d", tc.path, rec.Code, tc.status)
		}
		if !strings.Contains(rec.Header().Get("Content-Type"), tc.ctype) {
			t.Errorf("%s: content type %q", tc.path, rec.Header().Get("Content-Type"))
		}
		csp := rec.Header().Get("Content-Security-Policy")
		if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("%s: weak CSP %q", tc.path, csp)
		}
		if rec.Header().Get("X-Content-Type-Options") != "nosniff" || rec.Header().Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("%s: missing security headers", tc.path)
		}
	}
}

func TestUnknownAPIRouteIsProblem(t *testing.T) {
	h := NewHandler(Params{})
	for _, path := range []string{"/api/v1/nothing", "/api/v2/cases/x"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != http.StatusNotFound || rec.Header().Get("Content-Type") != "application/problem+json" {
			t.Fatalf("%s: %d %s", path, rec.Code, rec.Header().Get("Content-Type"))
		}
		var p Problem
		if err := json.NewDecoder(rec.Body).Decode(&p); err != nil || p.Code != codeNoRoute || p.Status != 404 {
			t.Fatalf("%s: problem %+v %v", path, p, err)
		}
	}
}

func TestEveryCodeHasAStatus(t *testing.T) {
	for code, status := range statusByCode {
		if status < 400 || status > 599 {
			t.Errorf("%s maps to %d", code, status)
		}
	}
	rec := httptest.NewRecorder()
	writeProblem(rec, "no-such-code", "x")
	if rec.Code != 500 {
		t.Fatalf("unknown code answered %d", rec.Code)
	}
}

package web

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/concord-odr/concord/cases"
)

// TestQueueRouted: with several nodes, queue and kiosk requests go to the
// node running the queue, path, query, method, body and credentials
// intact; a relayed request is served where it lands; an unknown or
// unreachable queue node is a 503 problem.
func TestQueueRouted(t *testing.T) {
	type seen struct{ method, uri, auth, relay, body string }
	got := make(chan seen, 1)
	leader := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b [64]byte
		n, _ := r.Body.Read(b[:])
		got <- seen{r.Method, r.URL.RequestURI(), r.Header.Get("Authorization"), r.Header.Get(relayHeader), string(b[:n])}
		writeJSON(w, http.StatusCreated, map[string]string{"served": "leader"})
	}))
	defer leader.Close()
	target, _ := url.Parse(leader.URL)
	var route func() (*url.URL, error)
	h := NewHandler(Params{QueueNode: func(context.Context) (*url.URL, error) { return route() }})

	do := func(method, path, body string, hdr map[string]string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer tok")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}

	route = func() (*url.URL, error) { return target, nil }
	for _, path := range []string{"/api/v1/queue/requests?x=1", "/api/v1/kiosk/sessions"} {
		rec := do("POST", path, `{"caseId":"c1"}`, nil)
		if rec.Code != http.StatusCreated {
			t.Fatalf("%s relayed: %d %s", path, rec.Code, rec.Body)
		}
		s := <-got
		if s.method != "POST" || s.uri != path || s.auth != "Bearer tok" || s.relay == "" || s.body != `{"caseId":"c1"}` {
			t.Fatalf("%s reached the queue's node as %+v", path, s)
		}
	}
	// Not the queue's: served here (no route here without a store).
	if rec := do("GET", "/api/v1/cases", "", nil); rec.Code == http.StatusCreated {
		t.Fatal("a case request was relayed to the queue's node")
	}
	// Relayed already: served here, never relayed twice.
	if rec := do("GET", "/api/v1/queue/requests", "", map[string]string{relayHeader: "1"}); rec.Code == http.StatusCreated {
		t.Fatal("a relayed request was relayed again")
	}
	select {
	case s := <-got:
		t.Fatalf("the queue's node received %+v", s)
	default:
	}

	for name, r := range map[string]func() (*url.URL, error){
		"Redis down":       func() (*url.URL, error) { return nil, errors.New("redis: connection refused") },
		"node unreachable": func() (*url.URL, error) { return &url.URL{Scheme: "http", Host: "127.0.0.1:1"}, nil },
	} {
		route = r
		rec := do("GET", "/api/v1/queue/requests", "", nil)
		var p Problem
		_ = json.Unmarshal(rec.Body.Bytes(), &p)
		if rec.Code != http.StatusServiceUnavailable || p.Code != cases.EUNAVAILABLE || rec.Header().Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: %d %s, want a 503 problem %s", name, rec.Code, rec.Body, cases.EUNAVAILABLE)
		}
	}
}

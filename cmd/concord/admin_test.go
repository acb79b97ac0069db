package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func adminGet(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code, rec.Body.String()
}

func TestAdminMetricsAndPprof(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "concord_test_total", Help: "a test counter"})
	reg.MustRegister(c)
	c.Add(3)
	h := newAdminHandler(reg, nil)

	code, body := adminGet(t, h, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{"go_goroutines ", "process_cpu_seconds_total ", "process_resident_memory_bytes ", "concord_test_total 3"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	code, body = adminGet(t, h, "/debug/pprof/")
	if code != http.StatusOK || !strings.Contains(body, "goroutine") {
		t.Errorf("/debug/pprof/: %d %.200s", code, body)
	}
	if code, _ := adminGet(t, h, "/debug/pprof/goroutine?debug=1"); code != http.StatusOK {
		t.Errorf("/debug/pprof/goroutine: %d", code)
	}
	if code, _ := adminGet(t, h, "/debug/pprof/cmdline"); code != http.StatusOK {
		t.Errorf("/debug/pprof/cmdline: %d", code)
	}
	if code, _ := adminGet(t, h, "/"); code != http.StatusOK {
		t.Errorf("/: %d", code)
	}
	if code, _ := adminGet(t, h, "/nothing"); code != http.StatusNotFound {
		t.Errorf("/nothing: %d, want 404", code)
	}
	// A second handler on the same registry reuses its collectors.
	if code, _ := adminGet(t, newAdminHandler(reg, nil), "/metrics"); code != http.StatusOK {
		t.Errorf("second handler /metrics: %d", code)
	}
	// And one with no registry has the runtime metrics alone.
	if _, body := adminGet(t, newAdminHandler(nil, nil), "/metrics"); !strings.Contains(body, "go_goroutines") {
		t.Error("a handler without a registry lacks go_goroutines")
	}
}

func TestAdminServer(t *testing.T) {
	a, err := startAdmin("127.0.0.1:0", newAdminHandler(nil, nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + a.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "go_goroutines") {
		t.Fatalf("admin /metrics: %d", resp.StatusCode)
	}
	s, err := scrapeMetrics(t.Context(), http.DefaultClient, "http://"+a.Addr().String()+"/metrics")
	if err != nil || s.CPUSeconds <= 0 || s.RSSBytes <= 0 || s.Goroutines <= 0 {
		t.Fatalf("scrape: %+v %v", s, err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

// TestScrapeUncompressed: the load test's scrapes must not make the server
// compress (a gzip writer held in its pool between scrapes counted as
// memory its participants used).
func TestScrapeUncompressed(t *testing.T) {
	h := newAdminHandler(nil, nil)
	var encodings []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		encodings = append(encodings, r.Header.Get("Accept-Encoding"))
		h.ServeHTTP(w, r)
		if ce := w.Header().Get("Content-Encoding"); ce != "" {
			t.Errorf("response Content-Encoding %q", ce)
		}
	}))
	defer srv.Close()
	s, err := scrapeMetrics(t.Context(), srv.Client(), srv.URL+"/metrics")
	if err != nil || s.RSSBytes <= 0 {
		t.Fatalf("scrape: %+v %v", s, err)
	}
	if len(encodings) != 1 || encodings[0] != "identity" {
		t.Fatalf("Accept-Encoding sent: %q", encodings)
	}
}

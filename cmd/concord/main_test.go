package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestConfigStrict(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     []string
		wantErr string
	}{
		{"defaults", nil, nil, ""},
		{"env sets addr", nil, []string{"CONCORD_ADDR=0.0.0.0:9000"}, ""},
		{"unknown env", nil, []string{"CONCORD_ADRR=x"}, "unknown environment variables: CONCORD_ADRR"},
		{"test env ignored", nil, []string{"CONCORD_TEST_ANYTHING=1"}, ""},
		{"unknown flag", []string{"--adr", "x"}, nil, "flag provided but not defined"},
		{"bad addr", []string{"--addr", "nope"}, nil, "addr"},
		{"bad database url", []string{"--database-url", "mysql://x"}, nil, "database-url"},
		{"bad redis url", []string{"--redis-url", "http://x"}, nil, "redis-url"},
		{"bad public ip", []string{"--public-ip", "1.2.3"}, nil, "public-ip"},
		{"bad ttl", []string{"--link-ttl", "-1h"}, nil, "link-ttl"},
		{"bad level", []string{"--log-level", "loud"}, nil, "log-level"},
		{"stray argument", []string{"extra"}, nil, "unexpected arguments"},
		{"bad env value", nil, []string{"CONCORD_LINK_TTL=soon"}, "CONCORD_LINK_TTL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfig("serve", tt.args, tt.env, io.Discard)
			if tt.wantErr == "" && err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
	cfg, err := parseConfig("serve", []string{"--addr", "127.0.0.1:1"}, []string{"CONCORD_ADDR=127.0.0.1:2"}, io.Discard)
	if err != nil || cfg.Addr != "127.0.0.1:1" {
		t.Fatalf("flag should win over env: %v %v", cfg.Addr, err)
	}
}

func TestCommandLine(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"--help"}, nil, &out, &errb); code != 0 || !strings.Contains(out.String(), "concord serve") {
		t.Fatalf("--help: %d %q", code, out.String())
	}
	errb.Reset()
	if code := run([]string{"serve", "--help"}, nil, &out, &errb); code != 0 || !strings.Contains(errb.String(), "CONCORD_DATABASE_URL") {
		t.Fatalf("serve --help: %d %q", code, errb.String())
	}
	if code := run([]string{"dance"}, nil, &out, &errb); code != 2 {
		t.Fatalf("unknown command exit %d", code)
	}
	out.Reset()
	dir := t.TempDir()
	if code := run([]string{"migrate", "--data-dir", dir}, nil, &out, io.Discard); code != 0 || !strings.Contains(out.String(), "migrations applied") {
		t.Fatalf("migrate: %d %q", code, out.String())
	}
	if _, err := os.Stat(dir + "/cases.db"); err != nil {
		t.Fatalf("migrate made no store: %v", err)
	}
	if code := run([]string{"migrate", "--data-dir", dir}, nil, io.Discard, io.Discard); code != 0 {
		t.Fatalf("second migrate: %d", code)
	}
}

// testPostgresURL returns a URL for a fresh schema in the test database,
// dropped when the test ends. Without PostgreSQL the test is skipped,
// unless CI is set, where that is a failure.
func testPostgresURL(t *testing.T) string {
	t.Helper()
	base := os.Getenv("CONCORD_TEST_DATABASE_URL")
	if base == "" {
		base = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("PostgreSQL unreachable in CI: %v", err)
		}
		t.Skipf("PostgreSQL unreachable: %v", err)
	}
	schema := fmt.Sprintf("t_main_%x", rand.Uint64())
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if c, err := pgx.Connect(ctx, base); err == nil {
			_, _ = c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE")
			c.Close(ctx)
		}
	})
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + "search_path=" + schema
}

// TestServeOnPostgres runs the whole server on PostgreSQL: migrate, the
// demo, a join and an outcome.
func TestServeOnPostgres(t *testing.T) {
	url := testPostgresURL(t)
	if code := run([]string{"migrate"}, []string{"CONCORD_DATABASE_URL=" + url, "CONCORD_DATA_DIR=" + t.TempDir()}, io.Discard, io.Discard); code != 0 {
		t.Fatalf("migrate on PostgreSQL exited %d", code)
	}
	cfg := testConfig(t)
	cfg.DatabaseURL = url
	ts := startTestServerWith(t, cfg)
	ws, m := dialSignaling(t, ts.BaseURL, tokenFromURL(ts.Demo.Consumer))
	defer ws.Close()
	if m["type"] != "joined" {
		t.Fatalf("join: %v", m)
	}
	code, body := post(t, ts.BaseURL+"/api/v1/sessions/"+ts.Demo.SessionID+"/end", ts.MediatorToken, "application/json",
		`{"result":"settled","terms":"Refund in full."}`)
	if code != 200 || body["state"] != "closed" {
		t.Fatalf("end on PostgreSQL: %d %v", code, body)
	}
	var rec map[string]any
	getJSON(t, ts.BaseURL+"/api/v1/cases/"+ts.Demo.CaseID, ts.MediatorToken, &rec)
	if rec["state"] != "closed" {
		t.Fatalf("read back: %v", rec["state"])
	}
}

// TestDemoOperatorToken: --demo generates an operator token, kept in the
// data folder, that opens the staff API and any case record.
func TestDemoOperatorToken(t *testing.T) {
	cfg := testConfig(t)
	ts := startTestServerWith(t, cfg)
	tok := ts.Config.AdminToken
	if len(tok) < 24 {
		t.Fatalf("demo operator token %q", tok)
	}
	var list struct {
		Cases []struct {
			ID string `json:"id"`
		} `json:"items"`
	}
	if code := getJSON(t, ts.BaseURL+"/api/v1/cases", tok, &list); code != 200 {
		t.Fatalf("list with operator token: %d", code)
	}
	found := false
	for _, c := range list.Cases {
		found = found || c.ID == ts.Demo.CaseID
	}
	if !found {
		t.Fatalf("demo case not listed: %+v", list)
	}
	var rec map[string]any
	if code := getJSON(t, ts.BaseURL+"/api/v1/cases/"+ts.Demo.CaseID, tok, &rec); code != 200 || rec["id"] != ts.Demo.CaseID {
		t.Fatalf("operator reads the case: %d %v", code, rec["id"])
	}
	if code := getJSON(t, ts.BaseURL+"/api/v1/cases", tokenFromURL(ts.Demo.Consumer), nil); code != 401 {
		t.Fatalf("a party's token lists cases: %d", code)
	}
	b, err := os.ReadFile(cfg.DataDir + "/admin.token")
	if err != nil || strings.TrimSpace(string(b)) != tok {
		t.Fatalf("token not kept: %v", err)
	}
}

// TestTURNCredentialsAtJoin: with the embedded TURN server on, a
// participant's joined message carries time-limited TURN credentials
// naming that participant.
func TestTURNCredentialsAtJoin(t *testing.T) {
	cfg := testConfig(t)
	cfg.TURNUDP = "127.0.0.1:0"
	cfg.TURNTCP = "127.0.0.1:0"
	ts := startTestServerWith(t, cfg)
	ws, m := dialSignaling(t, ts.BaseURL, tokenFromURL(ts.Demo.Consumer))
	defer ws.Close()
	servers, _ := m["iceServers"].([]any)
	found := false
	for _, s := range servers {
		sm, _ := s.(map[string]any)
		urls := fmt.Sprint(sm["urls"])
		user, _ := sm["username"].(string)
		if strings.Contains(urls, "turn:") && strings.Contains(user, ":") && sm["credential"] != "" {
			found = true
		}
	}
	if !found {
		t.Fatalf("no TURN credentials at join: %v", m["iceServers"])
	}
}

// TestAdminMetrics: the admin address serves Prometheus metrics that
// follow the signaling activity, and pprof.
func TestAdminMetrics(t *testing.T) {
	ts := startTestServer(t)
	base := "http://" + ts.admin.Addr().String()
	ws, m := dialSignaling(t, ts.BaseURL, tokenFromURL(ts.Demo.Consumer))
	defer ws.Close()
	if m["type"] != "joined" {
		t.Fatal(m)
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"concord_rooms 1", "concord_participants 1", `concord_signaling_messages_total{type="join"} 1`, "go_goroutines",
		`concord_case_store_transaction_seconds_count{op="update",result="ok"}`, `concord_case_store_transaction_seconds_count{op="view",result="ok"}`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if resp, err := http.Get(base + "/debug/pprof/"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("pprof: %v %v", err, resp)
	}
	// The public address serves neither.
	if code := getJSON(t, ts.BaseURL+"/metrics", "", nil); code == 200 {
		t.Fatal("metrics on the public address")
	}
}

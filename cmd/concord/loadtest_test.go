package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/concord-odr/concord/cases/joinlink"
)

// The load test runs its server as a child: "concord loadtest
// --internal-child". In a test the executable is the test binary, which
// runs the child here instead of the tests.
func init() {
	if os.Getenv(ltChildEnv) == "1" && len(os.Args) > 2 && os.Args[1] == "loadtest" {
		os.Exit(runLoadtest(os.Args[2:], nil, os.Stdout, os.Stderr))
	}
}

// runLoadtestJSON runs "concord loadtest ARGS --json --quiet" and
// decodes its results.
func runLoadtestJSON(t *testing.T, args ...string) *ltResult {
	t.Helper()
	var out, errb bytes.Buffer
	code := runLoadtest(append(args, "--json", "--quiet"), nil, &out, &errb)
	if code != 0 {
		t.Fatalf("loadtest exited %d: %s\n%s", code, errb.String(), out.String())
	}
	var res ltResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("decode results: %v\n%s", err, out.String())
	}
	if len(res.Steps) == 0 {
		t.Fatal("no step measured")
	}
	return &res
}

// checkStep asserts the figures of a healthy small run.
func checkStep(t *testing.T, s ltStep, participants int) {
	t.Helper()
	if s.Participants != participants {
		t.Errorf("participants %d, want %d", s.Participants, participants)
	}
	if s.Video.Received == 0 || s.Audio.Received == 0 {
		t.Errorf("received audio %d, video %d packets; want both > 0", s.Audio.Received, s.Video.Received)
	}
	if s.Video.Sent == 0 || s.Audio.Sent == 0 {
		t.Errorf("sent audio %d, video %d packets; want both > 0", s.Audio.Sent, s.Video.Sent)
	}
	// Each of the K publishers' tracks reaches the K-1 others.
	perRoom := participants / max(1, s.Rooms)
	if want := s.Rooms * perRoom * (perRoom - 1); s.Video.Streams != want || s.Audio.Streams != want {
		t.Errorf("streams: audio %d, video %d; want %d each", s.Audio.Streams, s.Video.Streams, want)
	}
	if s.LossPct >= 5 {
		t.Errorf("loss %.2f%%, want < 5%%", s.LossPct)
	}
	if s.Join.Count != participants || s.Join.Failed != 0 {
		t.Errorf("join times measured for %d (failed %d), want %d", s.Join.Count, s.Join.Failed, participants)
	}
	if p50 := float64(s.Join.P50); !(p50 > 0 && p50 < 10000) {
		t.Errorf("join p50 %v ms", p50)
	}
	if p50 := float64(s.Latency.P50); !(p50 > 0 && p50 < 1000) {
		t.Errorf("latency p50 %v ms", p50)
	}
	if s.ForwardedMbps <= 0 || s.PacketsOutPerSec <= 0 {
		t.Errorf("forwarded %.2f Mbit/s, %.0f packets/s", s.ForwardedMbps, s.PacketsOutPerSec)
	}
	if !s.Server.Measured || s.Server.CPUSeconds <= 0 || s.Server.RSSBytes <= 0 {
		t.Errorf("server figures %+v", s.Server)
	}
}

// TestLoadtestInProcess runs 2 rooms of 3 participants for 3 s against a
// server in the test's process.
func TestLoadtestInProcess(t *testing.T) {
	res := runLoadtestJSON(t, "--server", "inprocess", "--rooms", "2", "--participants", "3",
		"--duration", "3s", "--warmup", "500ms", "--join-rate", "50")
	s := res.Steps[0]
	checkStep(t, s, 6)
	if !s.Server.Shared || res.Server.Mode != "inprocess" {
		t.Errorf("server %+v, figures %+v: want shared in-process", res.Server, s.Server)
	}
	if len(res.Streams) != 24 {
		t.Errorf("%d streams listed, want 24", len(res.Streams))
	}
}

// TestLoadtestChildProcess runs one room against a server child process
// whose CPU and memory come from its admin /metrics, with a report.
func TestLoadtestChildProcess(t *testing.T) {
	dir := t.TempDir()
	res := runLoadtestJSON(t, "--rooms", "1", "--participants", "3", "--duration", "2s", "--warmup", "500ms",
		"--report", dir)
	s := res.Steps[0]
	checkStep(t, s, 3)
	if res.Server.Mode != "child" || res.Server.Shared || res.Server.PID == os.Getpid() {
		t.Errorf("server %+v: want a child process", res.Server)
	}
	if res.IdleRSSBytes <= 0 || s.Server.RSSPerParticipant == 0 || !s.Generator.Measured {
		t.Errorf("idle RSS %v, per participant %v, generator %+v", res.IdleRSSBytes, s.Server.RSSPerParticipant, s.Generator)
	}
	for _, name := range []string{"results.json", "results.txt", "cpu.svg", "loss.svg", "latency.svg"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(name, ".svg") {
			if err := xml.Unmarshal(b, new(struct{})); err != nil {
				t.Errorf("%s is not well-formed: %v", name, err)
			}
		}
	}
}

func TestLoadtestFlags(t *testing.T) {
	for _, bad := range [][]string{
		{"--rooms", "0"},
		{"--participants", "1"},
		{"--url", "http://x"},
		{"--caucus-every", "1s"},
		{"--audio=false", "--video-kbps", "0"},
		{"--ramp", "--ramp-steps", "1,x"},
		{"--rooms", "1000", "--participants", "3"},
		{"--server", "elsewhere"},
	} {
		if _, err := parseLoadtestFlags(bad, &bytes.Buffer{}); err == nil {
			t.Errorf("%v: accepted", bad)
		}
	}
	c, err := parseLoadtestFlags([]string{"--pubs", "4", "--subs", "20", "--ramp", "--ramp-steps", "5,1,5"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if c.perRoom() != 24 || c.pubsPerRoom() != 4 || len(c.RampSteps) != 2 || c.RampSteps[0] != 1 {
		t.Errorf("config %+v", c)
	}
	seats := seatsFor(c.perRoom(), c.pubsPerRoom())
	if seats[0].Role != "mediator" || !seats[3].Publish || seats[4].Publish || seats[1].Side == seats[2].Side {
		t.Errorf("seats %+v", seats[:5])
	}
	var out bytes.Buffer
	if code := runLoadtest([]string{"--help"}, nil, &out, &out); code != 0 || !strings.Contains(out.String(), "--pubs") {
		t.Errorf("--help: %d %s", code, out.String())
	}
}

// TestLoadtestStreamLoss checks loss counting on the publisher's counter:
// gaps, reordering, duplicates and pauses.
func TestLoadtestStreamLoss(t *testing.T) {
	ms := int64(time.Millisecond)
	s := &ltStream{}
	at := int64(1e12)
	for _, c := range []uint32{1, 2, 3, 5, 6, 4, 4, 10} { // 7, 8, 9 lost; 4 late; one dup
		at += 20 * ms
		s.add(c, at, at+ms, 100)
	}
	c, _ := s.snapshot()
	if c.Expected != 10 || c.Unique != 7 || c.Dups != 1 || c.Received != 8 {
		t.Fatalf("counts %+v", c)
	}
	// With pauses allowed, a long silence with a counter jump is no loss.
	p := &ltStream{pauseGap: int64(time.Second)}
	p.add(1, at, at, 100)
	p.add(2, at+20*ms, at+20*ms, 100)
	p.add(200, at+4000*ms, at+4000*ms, 100)
	p.add(201, at+4020*ms, at+4020*ms, 100)
	c, _ = p.snapshot()
	if c.Expected != c.Unique || c.Pauses != 1 {
		t.Fatalf("paused stream counts %+v", c)
	}
	// Counter wrap-around.
	w := &ltStream{}
	w.add(math.MaxUint32, at, at, 1)
	w.add(0, at, at, 1)
	w.add(2, at, at, 1)
	if c, _ := w.snapshot(); c.Expected != 4 || c.Unique != 3 {
		t.Fatalf("wrapped counts %+v", c)
	}
}

func TestLoadtestHistogram(t *testing.T) {
	var h ltHist
	for i := range 1000 {
		h.add(int64(i) * int64(time.Millisecond) / 10) // 0 .. 99.9 ms
	}
	h.add(int64(5 * time.Second))
	snap := h.snapshot()
	if p50 := histQuantile(snap, 0.5); math.Abs(p50-50) > 0.5 {
		t.Errorf("p50 %v", p50)
	}
	if p99 := histQuantile(snap, 0.99); math.Abs(p99-99) > 0.5 {
		t.Errorf("p99 %v", p99)
	}
	if mx := histMax(snap); mx != 2000 {
		t.Errorf("max %v", mx)
	}
	if q := histQuantile(make([]uint64, histBuckets), 0.5); !math.IsNaN(q) {
		t.Errorf("empty quantile %v", q)
	}
	for _, ns := range []int64{0, 19_999, 20_000, 9_999_999, 10_000_000, 99_999_999, 100_000_000, 1_999_999_999} {
		b := histBucket(ns)
		if up := histUpperMs(b); float64(ns)/1e6 >= up || (b > 0 && float64(ns)/1e6 < histUpperMs(b-1)) {
			t.Errorf("%d ns in bucket %d up to %v ms", ns, b, up)
		}
	}
}

func TestLoadtestMetricsAndTokens(t *testing.T) {
	for line, want := range map[string]float64{
		"process_cpu_seconds_total 12.5":                        12.5,
		`concord_forwarded_packets_total{kind="video"} 3 17000`: 3,
		"go_goroutines 1e+02":                                   100,
	} {
		if _, v, ok := parseMetricLine(line); !ok || v != want {
			t.Errorf("%q: %v %v", line, v, ok)
		}
	}
	if _, _, ok := parseMetricLine("# TYPE x counter"); ok {
		t.Error("a comment parsed")
	}

	key := joinlink.Key{ID: "k", Secret: bytes.Repeat([]byte{7}, 32)}
	sg, err := joinlink.NewSigner(key, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	tok := func(ses, role, side string) string {
		s, err := sg.Issue(joinlink.Claims{SessionID: ses, Role: role, Side: side, RegisteredClaims: jwt.RegisteredClaims{Subject: role + side}}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	file := filepath.Join(t.TempDir(), "tokens.txt")
	lines := []string{
		"# two sessions, interleaved",
		tok("s1", "party", "applicant"),
		"http://node/join#" + tok("s2", "mediator", "neutral"),
		tok("s1", "mediator", "neutral"),
		tok("s2", "party", "respondent"),
	}
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	groups, err := readTokenFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) != 2 || len(groups[0]) != 2 || groups[0][0].Role != "mediator" || groups[1][0].Session != "s2" {
		t.Fatalf("groups %+v", groups)
	}
	rt := &remoteTarget{groups: groups}
	got, err := rt.Sessions(t.Context(), [][]ltSeat{seatsFor(2, 1)})
	if err != nil || !got[0][0].Publish || got[0][1].Publish {
		t.Fatalf("sessions %+v %v", got, err)
	}
	if _, err := rt.Sessions(t.Context(), [][]ltSeat{seatsFor(2, 2), seatsFor(2, 2)}); err == nil {
		t.Error("more sessions than the file holds")
	}
}

// TestLoadtestRemote mints tokens in a running server's data folder and
// joins it as a remote node.
func TestLoadtestRemote(t *testing.T) {
	ts := startTestServer(t)
	file := filepath.Join(t.TempDir(), "tokens.txt")
	var out, errb bytes.Buffer
	if code := runLoadtest([]string{"--mint-tokens", file, "--data-dir", ts.Config.DataDir, "--rooms", "1", "--participants", "3"}, nil, &out, &errb); code != 0 {
		t.Fatalf("mint: %d %s", code, errb.String())
	}
	res := runLoadtestJSON(t, "--url", ts.BaseURL, "--tokens", file, "--duration", "2s", "--warmup", "500ms")
	s := res.Steps[0]
	if res.Server.Mode != "remote" || s.Server.Measured {
		t.Errorf("server %+v %+v: want remote, unmeasured", res.Server, s.Server)
	}
	if s.Video.Received == 0 || s.Join.Count != 3 || s.LossPct >= 5 {
		t.Errorf("received %d video packets, %d joins, loss %.2f%%", s.Video.Received, s.Join.Count, s.LossPct)
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"encoding/xml"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"

	"github.com/concord-odr/concord/cases/joinlink"
	"github.com/concord-odr/concord/media/h264"
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

// TestLoadtestServerBinary runs the child server from another executable
// (--server-binary, here a script that records its arguments and runs
// this test binary), passing it only the settings that differ from the
// child's defaults, which an older build may not know.
func TestLoadtestServerBinary(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the stand-in server binary is a shell script")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	argsFile := filepath.Join(dir, "args")
	script := filepath.Join(dir, "concord-other")
	body := "#!/bin/sh\necho \"$@\" > '" + argsFile + "'\nexec '" + self + "' \"$@\"\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	res := runLoadtestJSON(t, "--rooms", "1", "--participants", "2", "--duration", "1s", "--warmup", "200ms",
		"--server-binary", script, "--server-adaptive-procs=false")
	checkStep(t, res.Steps[0], 2)
	b, err := os.ReadFile(argsFile)
	if err != nil {
		t.Fatalf("the server binary was not run: %v", err)
	}
	if got, want := strings.TrimSpace(string(b)), "loadtest --internal-child --log-level error --adaptive-procs=false"; got != want {
		t.Errorf("server binary arguments %q, want %q", got, want)
	}
	if res.Config.ServerBinary != script {
		t.Errorf("config records server binary %q", res.Config.ServerBinary)
	}
	var out, errb bytes.Buffer
	if code := runLoadtest([]string{"--server", "inprocess", "--server-binary", script}, nil, &out, &errb); code == 0 ||
		!strings.Contains(errb.String(), "--server-binary needs the child server") {
		t.Errorf("--server-binary with an in-process server: exit %d, %s", code, errb.String())
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
	if sv := s.Server; runtime.GOOS == "linux" && (sv.IdlePrivateBytes <= 0 || sv.PrivateBytes <= sv.IdlePrivateBytes ||
		sv.PrivateBytes >= sv.RSSBytes || sv.PrivatePerParticipant <= 0) {
		t.Errorf("private memory: idle %v, now %v (RSS %v), per participant %v", sv.IdlePrivateBytes, sv.PrivateBytes, sv.RSSBytes, sv.PrivatePerParticipant)
	}
	// The server's own share of the latency, from its histogram: every
	// packet it forwarded counted, under what the clients measured.
	if d := s.Server.ForwardDelay; runtime.GOOS == "linux" && (d == nil || d.Datagrams < float64(s.Video.Received)/2 ||
		!(d.P50Ms > 0 && d.P50Ms <= d.P99Ms && d.P99Ms <= 250)) {
		t.Errorf("server's forwarding delay %+v, with %d video packets received", d, s.Video.Received)
	}
	for _, name := range []string{"results.json", "results.txt", "cpu.svg", "loss.svg", "latency.svg"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if name == "results.txt" && runtime.GOOS == "linux" && !strings.Contains(string(b), "server forwarding delay") {
			t.Errorf("results.txt does not give the server's forwarding delay:\n%s", b)
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
		{"--codec", "vp9"},
		{"--simulcast", "--video-kbps", "0"},
		{"--floor", "--ramp"},
		{"--floor", "--server", "inprocess"},
		{"--floor", "--url", "http://x", "--tokens", "t"},
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
	// Simulcast sends three layers: 1, 1 and 2 packets a frame at 500
	// kbit/s (VP8); H.264 cuts a 2083-byte frame into 2 FU-A fragments.
	for args, want := range map[string]float64{
		"":                              50 + 30*2,
		"--simulcast":                   50 + 30*(1+1+2),
		"--codec h264":                  50 + 30*2,
		"--codec H264 --simulcast":      50 + 30*(1+1+2),
		"--simulcast --video-kbps 3000": 50 + 30*(3+6+12),
	} {
		c, err := parseLoadtestFlags(strings.Fields(args), &bytes.Buffer{})
		if err != nil {
			t.Fatalf("%s: %v", args, err)
		}
		if got := c.nominalPacketsPerSec(); got != want {
			t.Errorf("%s: nominal %v packets/s, want %v", args, got, want)
		}
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

// TestScrapeMetrics reads a server's exposition as the load test does:
// the process figures, every concord_* series summed over its labels,
// and the forwarding delay's buckets, +Inf included.
func TestScrapeMetrics(t *testing.T) {
	const exposition = `# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 12.5
# TYPE go_goroutines gauge
go_goroutines 1e+02
# TYPE concord_media_packets_total counter
concord_media_packets_total{direction="in"} 3 17000
concord_media_packets_total{direction="out"} 6
# TYPE concord_media_forward_delay_seconds histogram
concord_media_forward_delay_seconds_bucket{le="0.0001"} 2
concord_media_forward_delay_seconds_bucket{le="0.00025"} 7
concord_media_forward_delay_seconds_bucket{le="+Inf"} 9
concord_media_forward_delay_seconds_sum 0.004
concord_media_forward_delay_seconds_count 9
`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = io.WriteString(w, exposition)
	}))
	defer srv.Close()
	s, err := scrapeMetrics(context.Background(), srv.Client(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if s.CPUSeconds != 12.5 || s.Goroutines != 100 {
		t.Errorf("CPU %v s, %v goroutines", s.CPUSeconds, s.Goroutines)
	}
	for name, want := range map[string]float64{
		"concord_media_packets_total":               9,
		"concord_media_forward_delay_seconds_count": 9,
		"concord_media_forward_delay_seconds_sum":   0.004,
	} {
		if got := s.Concord[name]; got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	for le, want := range map[float64]float64{0.0001: 2, 0.00025: 7, math.Inf(1): 9} {
		if got := s.Delay[le]; got != want {
			t.Errorf("bucket le=%v: %v, want %v (all: %v)", le, got, want, s.Delay)
		}
	}
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "concord_x{oops 1\n")
	}))
	defer bad.Close()
	if _, err := scrapeMetrics(context.Background(), bad.Client(), bad.URL); err == nil {
		t.Error("a broken exposition scraped without an error")
	}
}

func TestLoadtestMetricsAndTokens(t *testing.T) {

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

// checkSimulcastStep asserts the figures of a healthy simulcast run of
// pubs publishers and subs subscribe-only participants in one room:
// video arrived without loss, and each layer's figures add up.
func checkSimulcastStep(t *testing.T, s ltStep, pubs, subs int) {
	t.Helper()
	if want := pubs * (pubs - 1 + subs); s.Video.Streams != want {
		t.Errorf("video streams %d, want %d (a stream per subscriber and publisher, whatever its layers)", s.Video.Streams, want)
	}
	if s.Video.Received == 0 {
		t.Fatal("no video received")
	}
	if s.Video.Lost != 0 || s.Video.LossPct != 0 {
		t.Errorf("video: %d packets lost of %d expected (%.2f%%), want none", s.Video.Lost, s.Video.Expected, s.Video.LossPct)
	}
	if len(s.Layers) != 3 {
		t.Fatalf("layers %+v, want q, h, f", s.Layers)
	}
	var sent, received, lost uint64
	var pct float64
	for i, l := range s.Layers {
		if want := ltSimulcastLayers[i].rid; l.RID != want {
			t.Errorf("layer %d is %q, want %q", i, l.RID, want)
		}
		if want := float64(500 / ltSimulcastLayers[i].div); l.Kbps != want {
			t.Errorf("layer %s: %v kbit/s, want %v", l.RID, l.Kbps, want)
		}
		if l.Sent == 0 {
			t.Errorf("layer %s: nothing sent", l.RID)
		}
		sent, received, lost, pct = sent+l.Sent, received+l.Received, lost+l.Lost, pct+l.ReceivedPct
	}
	// The layers are all the video there is: three packet counters per
	// publisher, and the higher layers send more.
	if sent != s.Video.Sent || received != s.Video.Received || lost != s.Video.Lost || math.Abs(pct-100) > 0.01 {
		t.Errorf("layers sent %d, received %d (%.2f%%), lost %d; video sent %d, received %d, lost %d", sent, received, pct, lost, s.Video.Sent, s.Video.Received, s.Video.Lost)
	}
	if q, f := s.Layers[0].Sent, s.Layers[2].Sent; f <= q {
		t.Errorf("layer f sent %d packets, q %d: want more", f, q)
	}
	if s.PacketsInPerSec < 0.9*s.NominalInPerSec {
		t.Errorf("publishers sent %.0f packets/s, nominal %.0f", s.PacketsInPerSec, s.NominalInPerSec)
	}
}

// TestLoadtestSimulcast publishes three-layer video from 2 publishers to
// 2 more subscribers for 3 s: subscribers receive it without loss (the
// SFU's switches between layers as its estimate grows are not loss), and
// the per-layer figures are filled, in the JSON and in the table.
func TestLoadtestSimulcast(t *testing.T) {
	res := runLoadtestJSON(t, "--server", "inprocess", "--pubs", "2", "--subs", "2", "--simulcast",
		"--duration", "3s", "--warmup", "1s", "--join-rate", "50")
	if !res.Config.Simulcast || res.Config.Codec != "vp8" {
		t.Errorf("config: simulcast %v, codec %q", res.Config.Simulcast, res.Config.Codec)
	}
	s := res.Steps[0]
	checkSimulcastStep(t, s, 2, 2)
	if s.Join.Count != 4 || s.Join.Failed != 0 || s.NotReady != 0 {
		t.Errorf("joins: %d measured, %d failed, %d not ready", s.Join.Count, s.Join.Failed, s.NotReady)
	}
	if n := res.VideoCodecs["video/VP8"]; n == 0 || len(res.VideoCodecs) != 1 {
		t.Errorf("video tracks received by codec: %v", res.VideoCodecs)
	}
	// Every stream listed is one layer of a publisher's video.
	layers := map[string]bool{}
	for _, st := range res.Streams {
		if st.Kind == "video" {
			if simulcastLayerIndex(st.Layer) < 0 {
				t.Errorf("video stream of layer %q", st.Layer)
			}
			layers[st.Layer] = true
		} else if st.Layer != "" {
			t.Errorf("%s stream of layer %q", st.Kind, st.Layer)
		}
	}
	if len(layers) == 0 {
		t.Error("no video stream listed")
	}
	var out bytes.Buffer
	writeTable(&out, res, true)
	for _, want := range []string{"VP8 simulcast q/h/f at 125/250/500 kbit/s, 30 fps", "simulcast layers received (packets)", "video f"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the table has no %q:\n%s", want, out.String())
		}
	}
}

// TestLoadtestSimulcastSwitches has every subscriber cap each publisher's
// video at layer q, f, h, f in turn every 600 ms, so that the SFU switches
// it back and forth: each layer is received, subscribers return to layers
// they left (a gap in the layer's counter that is not loss), and no loss
// is counted.
func TestLoadtestSimulcastSwitches(t *testing.T) {
	cfg, err := parseLoadtestFlags([]string{"--server", "inprocess", "--pubs", "2", "--subs", "1", "--simulcast",
		"--duration", "3s", "--warmup", "1s", "--join-rate", "50", "--quiet"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	cfg.layerCycle = 600 * time.Millisecond
	var errb bytes.Buffer
	res, err := loadtest(t.Context(), cfg, &errb)
	if err != nil {
		t.Fatalf("loadtest: %v\n%s", err, errb.String())
	}
	s := res.Steps[0]
	t.Logf("layers %+v", s.Layers)
	checkSimulcastStep(t, s, 2, 1)
	for _, l := range s.Layers {
		if l.Received == 0 || l.Streams == 0 || l.Switches == 0 {
			t.Errorf("layer %s: %d packets received on %d streams, %d switches to it; want all > 0", l.RID, l.Received, l.Streams, l.Switches)
		}
	}
	// A stream switched to more than once was left and resumed.
	resumed := 0
	for _, st := range res.Streams {
		if st.Switches >= 2 {
			resumed++
		}
		if st.Lost != 0 {
			t.Errorf("stream %d -> %d %s %s: %d lost", st.Publisher, st.Subscriber, st.Kind, st.Layer, st.Lost)
		}
	}
	if resumed == 0 {
		t.Errorf("no layer was returned to: streams %+v", res.Streams)
	}
}

// TestLoadtestSimulcastReceiver feeds a subscriber's receiver the packets
// of a simulcast video the SFU switches from layer q to f and back, and
// checks the counting: a return to a layer is not loss, a late packet of
// the old layer switches nothing, and real gaps are loss.
func TestLoadtestSimulcastReceiver(t *testing.T) {
	r := &loadRun{cfg: &ltConfig{VideoKbps: 500, FPS: 30, Simulcast: true}, streams: map[[2]uint32]*ltStream{}, errs: map[string]int{}}
	pub, sub := &ltClient{r: r, idx: 0}, &ltClient{r: r, idx: 1, start: time.Now()}
	var layers []*ltPubTrack
	for i, l := range ltSimulcastLayers {
		local, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000},
			"video", "lt0", webrtc.WithRTPStreamID(l.rid))
		if err != nil {
			t.Fatal(err)
		}
		var group uint32
		if i > 0 {
			group = layers[0].id
		}
		layers = append(layers, r.newPubTrack(pub, true, local, i, group))
	}
	q, f := layers[0], layers[2]
	rx := &ltReceiver{c: sub, video: true}
	seq := uint16(65530) // the subscriber's sequence numbers wrap around too
	at := time.Now().UnixNano()
	send := func(l *ltPubTrack, counter uint32, sn uint16) {
		payload := make([]byte, 60)
		putTrailer(payload, l.id, counter, at)
		b, err := (&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: sn}, Payload: payload}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		rx.packet(b, at+int64(time.Millisecond))
	}
	run := func(l *ltPubTrack, from, to, skip uint32) {
		for c := from; c <= to; c++ {
			seq++
			if c != skip { // lost on the way: a hole in the sequence too
				send(l, c, seq)
			}
		}
	}
	run(q, 1, 10, 10)     // q 10 lost
	lateSeq := seq        // its sequence number
	run(f, 100, 110, 105) // switched to f; f 105 lost
	send(q, 10, lateSeq)  // q 10 retransmitted, late: no switch back
	run(f, 111, 112, 0)   // still f
	run(q, 50, 60, 55)    // back to q at its counter 50; q 55 lost
	if got := r.foreign.Load(); got != 0 {
		t.Fatalf("%d packets not recognised", got)
	}
	counts := func(l *ltPubTrack) ltStreamCounts {
		t.Helper()
		st := r.streams[[2]uint32{uint32(sub.idx), l.id}]
		if st == nil {
			t.Fatalf("no stream of layer %s", l.rid)
		}
		c, _ := st.snapshot()
		return c
	}
	// q: 1..10, then from 50 on: 10 and 10 more expected.
	if c := counts(q); c.Expected != 21 || c.Unique != 20 || c.Switches != 1 || c.Received != 20 {
		t.Errorf("layer q counts %+v; want 21 expected, 20 unique (55 lost), 1 switch to it", c)
	}
	if c := counts(f); c.Expected != 13 || c.Unique != 12 || c.Switches != 1 {
		t.Errorf("layer f counts %+v; want 13 expected, 12 unique (105 lost), 1 switch to it", c)
	}
	if rx.cur != r.streams[[2]uint32{uint32(sub.idx), q.id}] {
		t.Error("the receiver is not on layer q at the end")
	}
}

// h264Units splits the NAL units of an access unit out of payloads with
// pion's depacketizer (AVC form: each unit after its 32-bit size).
func h264Units(t *testing.T, payloads [][]byte) [][]byte {
	t.Helper()
	var d codecs.H264Packet
	d.IsAVC = true
	var units [][]byte
	for i, p := range payloads {
		b, err := d.Unmarshal(p)
		if err != nil {
			t.Fatalf("payload %d: %v", i, err)
		}
		for len(b) > 0 {
			if len(b) < 4 || int(binary.BigEndian.Uint32(b)) > len(b)-4 {
				t.Fatalf("payload %d: bad AVC unit sizes", i)
			}
			n := int(binary.BigEndian.Uint32(b))
			units = append(units, b[4:4+n])
			b = b[4+n:]
		}
	}
	return units
}

// TestLoadtestH264FUA: a NAL unit larger than a packet is cut into FU-A
// fragments that fit, mark their start and end, carry its type and NRI,
// none shorter than a trailer; reassembled (by hand and by pion), they
// give the unit back.
func TestLoadtestH264FUA(t *testing.T) {
	for _, size := range []int{1101, 2083, 5000, 12345} {
		nal := h264NAL(0x60|h264.NALIDR, []byte{0x88, 0x84}, size)
		payloads, err := h264.Packetize([][]byte{nal}, maxVideoPayload)
		if err != nil {
			t.Fatal(err)
		}
		if len(payloads) != h264.Packets(size, maxVideoPayload) || len(payloads) < 2 {
			t.Errorf("%d bytes: %d fragments, want %d", size, len(payloads), h264.Packets(size, maxVideoPayload))
		}
		whole := []byte{0}
		for i, p := range payloads {
			if len(p) > maxVideoPayload || len(p) < 2+trailerLen {
				t.Errorf("%d bytes: fragment %d is %d bytes", size, i, len(p))
			}
			if p[0] != 0x60|h264.FUA {
				t.Errorf("%d bytes: fragment %d indicator %#x", size, i, p[0])
			}
			start, end := p[1]&0x80 != 0, p[1]&0x40 != 0
			if start != (i == 0) || end != (i == len(payloads)-1) || p[1]&0x20 != 0 || p[1]&0x1f != h264.NALIDR {
				t.Errorf("%d bytes: fragment %d of %d header %#x", size, i, len(payloads), p[1])
			}
			if start {
				whole[0] = p[0]&0xe0 | p[1]&0x1f
			}
			whole = append(whole, p[2:]...)
		}
		if !bytes.Equal(whole, nal) {
			t.Errorf("%d bytes: reassembled %d bytes differ", size, len(whole))
		}
		if units := h264Units(t, payloads); len(units) != 1 || !bytes.Equal(units[0], nal) {
			t.Errorf("%d bytes: pion reassembled %d units", size, len(units))
		}
	}
	// A unit that fits goes alone, as it is.
	nal := h264NAL(0x40|h264.NALSlice, nil, 500)
	if p, err := h264.Packetize([][]byte{nal}, maxVideoPayload); err != nil || len(p) != 1 || !bytes.Equal(p[0], nal) {
		t.Errorf("a 500-byte unit: %d payloads, %v", len(p), err)
	}
}

// TestLoadtestH264STAPA: NAL units that fit in one packet go in a STAP-A:
// its header (type 24, the highest NRI), then each unit after its size,
// filling the payload exactly; one too many starts the next packet.
func TestLoadtestH264STAPA(t *testing.T) {
	nals := [][]byte{
		h264NAL(0x60|h264.NALSPS, []byte{0x42, 0xe0, 0x1f}, 30),
		h264NAL(0x60|h264.NALPPS, nil, 25),
		h264NAL(0x40|h264.NALSlice, nil, 600),
		h264NAL(0x40|h264.NALSlice, nil, 600), // does not fit with the others
	}
	payloads, err := h264.Packetize(nals, maxVideoPayload)
	if err != nil {
		t.Fatal(err)
	}
	if len(payloads) != 2 {
		t.Fatalf("%d payloads, want a STAP-A and a single unit", len(payloads))
	}
	p := payloads[0]
	if p[0] != 0x60|h264.STAPA {
		t.Errorf("STAP-A header %#x, want %#x", p[0], 0x60|h264.STAPA)
	}
	off := 1
	for i, nal := range nals[:3] {
		if off+2 > len(p) {
			t.Fatalf("the STAP-A ends before unit %d", i)
		}
		n := int(binary.BigEndian.Uint16(p[off:]))
		if n != len(nal) || off+2+n > len(p) || !bytes.Equal(p[off+2:off+2+n], nal) {
			t.Fatalf("unit %d: size %d at %d, want %d bytes equal to the NAL unit", i, n, off, len(nal))
		}
		off += 2 + n
	}
	if off != len(p) {
		t.Errorf("the STAP-A is %d bytes, its units end at %d", len(p), off)
	}
	if !bytes.Equal(payloads[1], nals[3]) {
		t.Error("the last unit is not a single NAL unit packet")
	}
	if units := h264Units(t, payloads); len(units) != 4 {
		t.Errorf("pion found %d units, want 4", len(units))
	}
}

// TestLoadtestH264Keyframe: the generator's H.264 keyframe is SPS, PPS
// and an IDR slice, the parameter sets together in a STAP-A first, and
// other frames one non-IDR slice; with the measurement trailer written
// over the end of every packet, the payloads still parse to the same NAL
// units and types, and the trailer reads back.
func TestLoadtestH264Keyframe(t *testing.T) {
	for _, kbps := range []int{125, 500, 2500} {
		cfg := &ltConfig{Codec: "h264", FPS: 30, VideoKbps: kbps}
		frameBytes, packets := cfg.videoFrame(kbps * 1000)
		key, delta, err := cfg.videoPayloads(kbps * 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(delta) != packets {
			t.Errorf("%d kbit/s: a frame of %d bytes is %d packets, want %d", kbps, frameBytes, len(delta), packets)
		}
		if first := key[0]; first[0]&0x1f != h264.STAPA || first[3]&0x1f != h264.NALSPS {
			t.Errorf("%d kbit/s: the keyframe starts %x, want a STAP-A with the SPS", kbps, first[:4])
		}
		for name, frame := range map[string][][]byte{"keyframe": key, "frame": delta} {
			for i, p := range frame {
				if len(p) > maxVideoPayload {
					t.Errorf("%d kbit/s %s: payload %d is %d bytes", kbps, name, i, len(p))
				}
				putTrailer(p, 7, uint32(i+1), 42)
				if id, counter, sent, ok := readTrailer(p); !ok || id != 7 || counter != uint32(i+1) || sent != 42 {
					t.Errorf("%d kbit/s %s: payload %d trailer %d %d %d %v", kbps, name, i, id, counter, sent, ok)
				}
			}
		}
		var types []byte
		units := h264Units(t, key)
		for _, u := range units {
			types = append(types, u[0]&0x1f)
		}
		if !bytes.Equal(types, []byte{h264.NALSPS, h264.NALPPS, h264.NALIDR}) {
			t.Errorf("%d kbit/s: keyframe units of types %v, want SPS, PPS, IDR", kbps, types)
		}
		if len(units) == 3 && len(units[2]) != frameBytes {
			t.Errorf("%d kbit/s: IDR slice of %d bytes, want %d", kbps, len(units[2]), frameBytes)
		}
		if units := h264Units(t, delta); len(units) != 1 || units[0][0] != 0x40|h264.NALSlice || len(units[0]) != frameBytes {
			t.Errorf("%d kbit/s: frame of %d units, want one non-IDR slice of %d bytes", kbps, len(units), frameBytes)
		}
	}
}

// TestLoadtestH264 runs one room of 3 publishers sending H.264 for 3 s:
// the SFU forwards it as H.264, without loss.
func TestLoadtestH264(t *testing.T) {
	res := runLoadtestJSON(t, "--server", "inprocess", "--rooms", "1", "--participants", "3", "--codec", "h264",
		"--duration", "3s", "--warmup", "500ms", "--join-rate", "50", "--join-timeout", "15s")
	if res.Config.Codec != "h264" || res.Config.Simulcast {
		t.Errorf("config: codec %q, simulcast %v", res.Config.Codec, res.Config.Simulcast)
	}
	if len(res.Errors) > 0 {
		t.Errorf("errors: %v", res.Errors)
	}
	checkStep(t, res.Steps[0], 3)
	if n := res.VideoCodecs["video/H264"]; n < 6 || len(res.VideoCodecs) != 1 {
		t.Errorf("video tracks received by codec: %v, want 6 (or more) video/H264 only", res.VideoCodecs)
	}
	var out bytes.Buffer
	writeTable(&out, res, false)
	if want := "H.264 500 kbit/s at 30 fps, no simulcast"; !strings.Contains(out.String(), want) {
		t.Errorf("the table has no %q:\n%s", want, out.String())
	}
}

// TestLoopbackCost: the calibration every report carries measures the
// machine's CPU time per loopback datagram, sent and received, where the
// process's CPU time is known.
func TestLoopbackCost(t *testing.T) {
	if _, ok := selfCPUSeconds(); !ok {
		t.Skip("no process CPU time on", runtime.GOOS)
	}
	us, ok := loopbackCost()
	if !ok {
		t.Fatal("no figure")
	}
	// A datagram's two system calls and network stack take a
	// microsecond or more on any machine, and less than a millisecond.
	if us < 0.5 || us > 1000 {
		t.Errorf("%.2f µs of CPU per loopback datagram", us)
	}
	t.Logf("%.2f µs of CPU per loopback datagram", us)
}

// TestDelayQuantiles: quantiles of what a histogram counted between two
// scrapes, interpolated within a bucket; the unbounded bucket gives its
// lower bound; nothing counted gives nothing.
func TestDelayQuantiles(t *testing.T) {
	inf := math.Inf(1)
	before := map[float64]float64{0.001: 10, 0.002: 10, 0.004: 10, inf: 10}
	// Over the window: 50 within 1 ms, 40 in (1, 2] ms, 8 in (2, 4] ms,
	// 2 above.
	after := map[float64]float64{0.001: 60, 0.002: 100, 0.004: 108, inf: 110}
	q, n := delayQuantiles(before, after, 0.5, 0.9, 0.99, 1)
	if n != 100 {
		t.Fatalf("counted %v, want 100", n)
	}
	want := []float64{1, 2, 4, 4} // p50 at the top of the first bucket; p99 and p100 in the unbounded one
	for i := range want {
		if math.Abs(q[i]-want[i]) > 1e-9 {
			t.Errorf("quantiles %v ms, want %v", q, want)
			break
		}
	}
	if q, _ := delayQuantiles(before, after, 0.25); math.Abs(q[0]-0.5) > 1e-9 {
		t.Errorf("p25 %v ms, want 0.5 (halfway into the first bucket)", q[0])
	}
	if _, n := delayQuantiles(after, after, 0.5); n != 0 {
		t.Errorf("nothing counted, but n = %v", n)
	}
}

package main

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/concord-odr/concord/media"
)

// TestMediaCollector: each media.Stats field lands in its series, with
// the documented names, labels and types, from one Stats call per
// scrape; a pedantic registry checks that what Collect sends matches
// what Describe announced.
func TestMediaCollector(t *testing.T) {
	calls := 0
	c := newMediaCollector(func() media.Stats {
		calls++
		return media.Stats{
			Rooms: 2, Peers: 5, PublishedTracks: 6, ForwardedTracks: 9,
			PacketsIn: 100, BytesIn: 1000, PacketsOut: 300, BytesOut: 3000,
			Retransmitted: 7, NACKsIn: 8, NACKsOut: 4, PLIsIn: 3, KeyframeRequests: 1,
			BandwidthPaused: 2, BandwidthPauses: 17,
			Dropped:        media.Drops{QueueFull: 11, KeyframeWait: 12, TooLate: 13, NotCached: 14},
			ReceiveDropped: media.ReceiveDrops{Behind: 15, NotAuthentic: 16},
			// 2 within 100 µs, 3 within 1 ms, 1 above 250 ms.
			ForwardDelay: media.DelayHistogram{Counts: [len(media.DelayBounds) + 1]uint64{0: 2, 3: 3, len(media.DelayBounds): 1}, Sum: 300 * time.Millisecond},
		}
	})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError}))
	defer srv.Close()
	samples, types := scrape(t, srv.URL)
	if calls != 1 {
		t.Fatalf("one scrape called Stats %d times, want 1", calls)
	}
	want := map[string]float64{
		"concord_media_rooms":                                                  2,
		"concord_media_peers":                                                  5,
		`concord_media_tracks{direction="published"}`:                          6,
		`concord_media_tracks{direction="forwarded"}`:                          9,
		`concord_media_packets_total{direction="in"}`:                          100,
		`concord_media_packets_total{direction="out"}`:                         300,
		`concord_media_bytes_total{direction="in"}`:                            1000,
		`concord_media_bytes_total{direction="out"}`:                           3000,
		"concord_media_retransmitted_packets_total":                            7,
		`concord_media_nacks_total{direction="from_subscribers"}`:              8,
		`concord_media_nacks_total{direction="to_publishers"}`:                 4,
		`concord_media_plis_total{direction="from_subscribers"}`:               3,
		`concord_media_plis_total{direction="to_publishers"}`:                  1,
		`concord_media_dropped_packets_total{reason="queue_full"}`:             11,
		`concord_media_dropped_packets_total{reason="keyframe_wait"}`:          12,
		`concord_media_dropped_packets_total{reason="too_late"}`:               13,
		`concord_media_dropped_packets_total{reason="not_cached"}`:             14,
		`concord_media_received_dropped_packets_total{reason="behind"}`:        15,
		`concord_media_received_dropped_packets_total{reason="not_authentic"}`: 16,
		"concord_media_bandwidth_paused_tracks":                                2,
		"concord_media_bandwidth_pauses_total":                                 17,
		"concord_media_forward_delay_seconds_sum":                              0.3,
		"concord_media_forward_delay_seconds_count":                            6,
	}
	for le, n := range map[string]float64{"0.0001": 2, "0.00025": 2, "0.0005": 2, "0.001": 5, "0.0025": 5, "0.005": 5,
		"0.01": 5, "0.025": 5, "0.05": 5, "0.1": 5, "0.25": 5, "+Inf": 6} {
		want[`concord_media_forward_delay_seconds_bucket{le="`+le+`"}`] = n
	}
	for k, v := range want {
		if got, ok := samples[k]; !ok || got != v {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, v)
		}
	}
	if len(samples) != len(want) {
		t.Errorf("%d series, want %d: %v", len(samples), len(want), samples)
	}
	for name, typ := range types {
		wantType := "counter"
		switch name {
		case "concord_media_rooms", "concord_media_peers", "concord_media_tracks", "concord_media_bandwidth_paused_tracks":
			wantType = "gauge"
		case "concord_media_forward_delay_seconds":
			wantType = "histogram"
		}
		if typ != wantType {
			t.Errorf("%s is a %s, want a %s", name, typ, wantType)
		}
	}
	if len(types) != 13 {
		t.Errorf("%d metric families, want 13: %v", len(types), types)
	}
}

// TestAdminMediaMetrics: after real media flowed through the server
// between two pion clients, the admin /metrics shows it: packets and
// bytes out above zero, the published and forwarded tracks, and every
// other concord_media_* series, beside the Go runtime's.
func TestAdminMediaMetrics(t *testing.T) {
	ts := startTestServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	med := newPionClient(ctx, t, "mediator", ts.BaseURL, tokenFromURL(ts.Demo.Mediator))
	con := newPionClient(ctx, t, "consumer", ts.BaseURL, tokenFromURL(ts.Demo.Consumer))
	admitAll(t, med, con)
	deadline := time.Now().Add(10 * time.Second)
	for {
		a, v := con.from(med.selfID())
		if a >= 10 && v >= 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the consumer received %d audio and %d video packets from the mediator within 10s", a, v)
		}
		time.Sleep(50 * time.Millisecond)
	}

	m, _ := scrape(t, "http://"+ts.admin.Addr().String()+"/metrics")
	for _, s := range []string{
		`concord_media_packets_total{direction="out"}`, `concord_media_packets_total{direction="in"}`,
		`concord_media_bytes_total{direction="out"}`, `concord_media_bytes_total{direction="in"}`,
	} {
		if m[s] <= 0 {
			t.Errorf("%s = %v after media flowed, want > 0", s, m[s])
		}
	}
	// Two participants, each publishing audio and video to the other.
	if v := m[`concord_media_tracks{direction="published"}`]; v != 4 {
		t.Errorf("published tracks %v, want 4", v)
	}
	if v := m[`concord_media_tracks{direction="forwarded"}`]; v < 2 {
		t.Errorf("forwarded tracks %v, want at least 2", v)
	}
	if v := m["concord_media_rooms"]; v != 1 {
		t.Errorf("media rooms %v, want 1", v)
	}
	if v := m["concord_media_peers"]; v != 2 {
		t.Errorf("media peers %v, want 2", v)
	}
	// On Linux the media sockets stamp each datagram's arrival: the
	// SFU's own share of the latency, a few milliseconds at most here.
	if runtime.GOOS == "linux" {
		n, sum := m["concord_media_forward_delay_seconds_count"], m["concord_media_forward_delay_seconds_sum"]
		if n < 10 || !(sum > 0 && sum/n < 0.05) {
			t.Errorf("forward delay: %v datagrams, %v s in all; want media counted, a mean under 50 ms", n, sum)
		}
	}
	for _, s := range []string{
		"concord_media_retransmitted_packets_total",
		`concord_media_nacks_total{direction="from_subscribers"}`, `concord_media_nacks_total{direction="to_publishers"}`,
		`concord_media_plis_total{direction="from_subscribers"}`, `concord_media_plis_total{direction="to_publishers"}`,
		`concord_media_dropped_packets_total{reason="queue_full"}`, `concord_media_dropped_packets_total{reason="keyframe_wait"}`,
		`concord_media_dropped_packets_total{reason="too_late"}`, `concord_media_dropped_packets_total{reason="not_cached"}`,
		`concord_media_received_dropped_packets_total{reason="behind"}`, `concord_media_received_dropped_packets_total{reason="not_authentic"}`,
		"go_goroutines", "process_resident_memory_bytes",
	} {
		if _, ok := m[s]; !ok {
			t.Errorf("metrics lack %s", s)
		}
	}
	// The clients' video starts with a keyframe request from the SFU
	// (each new subscriber asks for one).
	if v := m[`concord_media_plis_total{direction="to_publishers"}`]; v <= 0 {
		t.Errorf("no PLI sent to publishers counted: %v", v)
	}
}

// scrape fetches a Prometheus text exposition and returns each sample's
// value by its series, as written ("name{labels}"), and each metric
// family's type by name.
func scrape(t *testing.T, url string) (samples map[string]float64, types map[string]string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %s", url, resp.Status)
	}
	samples, types = map[string]float64{}, map[string]string{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, typ, _ := strings.Cut(rest, " ")
			types[name] = typ
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		samples[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return samples, types
}

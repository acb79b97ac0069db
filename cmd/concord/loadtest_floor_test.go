package main

import (
	"bytes"
	"encoding/json"
	"math"
	"runtime"
	"strings"
	"testing"
)

// runFloor runs "concord loadtest --floor ARGS --json --quiet" and
// returns its result.
func runFloor(t *testing.T, args ...string) *ltResult {
	t.Helper()
	var out, errb bytes.Buffer
	code := runLoadtest(append([]string{"--floor", "--json", "--quiet"}, args...), nil, &out, &errb)
	if code != 0 {
		t.Fatalf("loadtest --floor exited %d: %s\n%s", code, errb.String(), out.String())
	}
	var res ltResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("decode results: %v\n%s", err, out.String())
	}
	if res.Floor == nil {
		t.Fatalf("no floor in %s", out.String())
	}
	return &res
}

// TestLoadtestFloor relays one room's packets through the floor's relay
// child and checks that it forwarded what the workload sends, at its
// pace, to every other participant, and measured its own CPU.
func TestLoadtestFloor(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the floor's relay runs on Linux only")
	}
	t.Run("rooms", func(t *testing.T) {
		res := runFloor(t, "--rooms", "2", "--participants", "3", "--duration", "2s", "--warmup", "0s")
		f := res.Floor
		if f.Rooms != 2 || f.Participants != 6 || f.Publishers != 6 {
			t.Errorf("floor %+v", f)
		}
		// 6 publishers, each 50 audio packets and 30 frames of 2
		// packets a second; each copied to the 2 others of its room.
		checkRate(t, "in", f.Relay.PacketsInPerSec, 6*(50+60))
		checkRate(t, "out", f.Relay.PacketsOutPerSec, 2*6*(50+60))
		checkFloorRun(t, f)
		if res.Server.Mode != "floor" || res.Server.PID == 0 {
			t.Errorf("server %+v", res.Server)
		}
	})
	t.Run("simulcast to subscribers", func(t *testing.T) {
		// One publisher's three layers reach the relay; only the top
		// one (2 packets a frame) and the audio go to the 2 others.
		res := runFloor(t, "--pubs", "1", "--subs", "2", "--simulcast", "--duration", "2s", "--warmup", "0s")
		f := res.Floor
		checkRate(t, "in", f.Relay.PacketsInPerSec, 50+30*(1+1+2))
		checkRate(t, "out", f.Relay.PacketsOutPerSec, 2*(50+30*2))
		checkFloorRun(t, f)
	})
	t.Run("table", func(t *testing.T) {
		var out, errb bytes.Buffer
		if code := runLoadtest([]string{"--floor", "--quiet", "--duration", "1s", "--warmup", "0s", "--video-kbps", "0"}, nil, &out, &errb); code != 0 {
			t.Fatalf("exited %d: %s", code, errb.String())
		}
		for _, want := range []string{"server: none: the floor's relay at udp://127.0.0.1:", "relay CPU", "µs per packet", "latency (send to read)", "loss"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("table lacks %q:\n%s", want, out.String())
			}
		}
	})
}

// checkRate wants a rate within a fifth of what the workload sends.
func checkRate(t *testing.T, what string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > want/5 {
		t.Errorf("relay packets %s %.0f a second, want about %.0f", what, got, want)
	}
}

func checkFloorRun(t *testing.T, f *ltFloor) {
	t.Helper()
	if f.Expected == 0 || f.Received != f.Expected {
		t.Errorf("received %d of %d copies (sent %d)", f.Received, f.Expected, f.Sent)
	}
	if !f.Relay.Measured || f.Relay.CPUSeconds <= 0 || f.Relay.CPUMicrosPerPacket <= 0 || !f.Generator.Measured {
		t.Errorf("relay %+v, generator %+v: CPU not measured", f.Relay, f.Generator)
	}
	if l := f.Latency; !(l.P50 > 0 && l.P99 >= l.P50 && l.P99 < 1000) {
		t.Errorf("latency %+v ms: want the send times read back, within a second on loopback", l)
	}
	if f.Relay.DatagramsPerRead < 1 || f.Relay.DatagramsPerRead > relayReadBatch {
		t.Errorf("%.2f datagrams a read", f.Relay.DatagramsPerRead)
	}
}

package media

import (
	"testing"
	"time"
)

func TestChooseLayers(t *testing.T) {
	q, h, f := 100_000.0, 300_000.0, 1_000_000.0
	three := [maxLayers]float64{q, h, f}
	tests := []struct {
		name   string
		budget float64
		tracks []layerChoice
		want   []int
	}{
		{"plenty", 5e6, []layerChoice{{rates: three, maxLayer: 2}}, []int{2}},
		{"middle", 600_000, []layerChoice{{rates: three, maxLayer: 2}}, []int{1}},
		{"too little still gets the lowest", 50_000, []layerChoice{{rates: three, maxLayer: 2}}, []int{0}},
		{"thumbnail capped", 5e6, []layerChoice{{rates: three, maxLayer: 0}}, []int{0}},
		{"two share, leftover upgrades one", 1_600_000, []layerChoice{{rates: three, maxLayer: 2}, {rates: three, maxLayer: 2}}, []int{2, 1}},
		{"a dropped top layer", 5e6, []layerChoice{{rates: [maxLayers]float64{q, h, 0}, maxLayer: 2}}, []int{1}},
		{"nothing published yet", 5e6, []layerChoice{{maxLayer: 2}}, []int{-1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			chooseLayers(tt.budget, tt.tracks)
			for i, w := range tt.want {
				if tt.tracks[i].pick != w {
					t.Fatalf("track %d: layer %d, want %d", i, tt.tracks[i].pick, w)
				}
			}
		})
	}
}

// TestBandwidth drives the estimator with a fake clock.
func TestBandwidth(t *testing.T) {
	now := time.Unix(1000, 0)
	moved := 0
	b := newBandwidth(func() { moved++ })
	b.now = func() time.Time { return now }
	step := func(d time.Duration, sendBps float64, loss float64) {
		now = now.Add(d)
		b.bytes.Add(uint64(sendBps / 8 * d.Seconds()))
		b.onLoss(loss)
	}

	// No loss: grows by 25% per report, at most every 250 ms.
	step(time.Second, 500_000, 0)
	step(time.Second, 500_000, 0)
	if e := b.current(); e != startEstimate*increaseFactor*increaseFactor {
		t.Fatalf("after two clean reports: %.0f", e)
	}
	step(100*time.Millisecond, 500_000, 0)
	if e := b.current(); e != startEstimate*increaseFactor*increaseFactor {
		t.Fatalf("grew again within %v: %.0f", increaseInterval, e)
	}

	// Heavy loss: cut below the rate actually sent, then hold.
	step(time.Second, 500_000, 0.4)
	cut := b.current()
	if cut > 500_000*0.8+1 || cut < minEstimate {
		t.Fatalf("after 40%% loss at 500 kbit/s: %.0f", cut)
	}
	// The estimate had grown since the last cut: that growth failed, so
	// the hold doubled.
	if b.hold != 2*holdStart {
		t.Fatalf("hold %v after a failed growth", b.hold)
	}
	step(time.Second, 300_000, 0)
	if b.current() != cut {
		t.Fatalf("grew during the hold: %.0f", b.current())
	}
	step(2*holdStart, 300_000, 0)
	if b.current() <= cut {
		t.Fatal("did not grow after the hold")
	}
	// That probe fails too: the next hold is twice as long again.
	step(time.Second, 300_000, 0.3)
	if b.hold != 4*holdStart {
		t.Fatalf("hold %v after a second failed probe", b.hold)
	}
	// Repeated loss in one episode does not lengthen it further.
	step(time.Second, 300_000, 0.3)
	if b.hold != 4*holdStart {
		t.Fatalf("hold %v after a cut without growth", b.hold)
	}

	// Moderate loss holds the estimate.
	e := b.current()
	step(10*time.Second, 300_000, 0.05)
	if b.current() != e {
		t.Fatalf("5%% loss moved the estimate to %.0f", b.current())
	}

	// REMB well below what is sent cuts; above, it is ignored.
	step(time.Second, 300_000, 0.05)
	b.onREMB(1e7)
	if b.current() != e {
		t.Fatal("a high REMB moved the estimate")
	}
	now = now.Add(time.Second)
	b.bytes.Add(300_000 / 8)
	b.onREMB(150_000)
	if got := b.current(); got != 150_000 {
		t.Fatalf("REMB 150 kbit/s under 300 sent: %.0f", got)
	}
	if moved == 0 {
		t.Fatal("changes were not signaled")
	}
}

package media

import (
	"math"
	"testing"
	"time"
)

// TestAllocateBudget: audio first, then video by priority; simulcast at
// the best layer that fits, other video paused when it does not fit; caps
// respected; nothing but audio spends past the budget.
func TestAllocateBudget(t *testing.T) {
	q, h, f := 100_000.0, 300_000.0, 1_000_000.0
	three := [maxLayers]float64{q, h, f}
	audio := trackDemand{audio: true, rate: 40_000}
	sim := func(prio, maxLayer int) trackDemand {
		return trackDemand{simulcast: true, rates: three, maxLayer: maxLayer, priority: prio}
	}
	plain := func(prio int, rate float64) trackDemand {
		return trackDemand{rate: rate, priority: prio}
	}
	flowing := func(t trackDemand) trackDemand { t.flowing = true; return t }
	const paused = -2 // in want: the track is paused
	cost := func(bps float64) float64 { return bps * layerHeadroom }
	a := audioNeed(40_000)
	tests := []struct {
		name   string
		budget float64
		tracks []trackDemand
		want   []int // layer picked (0 for non-simulcast video), or paused
		next   float64
	}{
		{"plenty", 5e6, []trackDemand{audio, sim(priorityOther, 2)}, []int{-1, 2}, 0},
		{"middle", a + 600_000, []trackDemand{audio, sim(priorityOther, 2)}, []int{-1, 1}, a + cost(f)},
		{"audio first: the lowest layer no longer fits", a + 100_000, []trackDemand{audio, sim(priorityOther, 2)}, []int{-1, paused}, a + cost(q)},
		{"audio even past the budget", 10_000, []trackDemand{audio, audio}, []int{-1, -1}, 0},
		{"thumbnail capped", 5e6, []trackDemand{sim(priorityOther, 0)}, []int{0}, 0},
		{"a dropped top layer", 5e6, []trackDemand{{simulcast: true, rates: [maxLayers]float64{q, h, 0}, maxLayer: 2}}, []int{1}, 0},
		{"nothing published yet", 5e6, []trackDemand{{simulcast: true, maxLayer: 2}}, []int{-1}, 0},
		{"not measured yet: the lowest, free", 5e6, []trackDemand{{simulcast: true, rates: [maxLayers]float64{-1, -1, -1}, maxLayer: 2}}, []int{0}, 0},
		{"screen share before the others", a + cost(f) + cost(q) + 1000,
			[]trackDemand{audio, sim(priorityOther, 2), sim(priorityScreen, 2)}, []int{-1, 0, 2}, a + cost(f) + cost(h)},
		{"active speaker before the others", a + cost(q) + cost(f) + 1000,
			[]trackDemand{audio, sim(priorityOther, 2), sim(prioritySpeaker, 2)}, []int{-1, 0, 2}, a + cost(f) + cost(h)},
		{"others take turns", 2*cost(h) + 1000, []trackDemand{sim(priorityOther, 2), sim(priorityOther, 2)}, []int{1, 1}, 2*cost(h) + cost(f) - cost(h)},
		{"video that does not fit is paused, audio kept", a + 500_000,
			[]trackDemand{audio, plain(priorityOther, 800_000), sim(priorityOther, 2)}, []int{-1, paused, 1}, a + cost(f)},
		{"it resumes when it fits", a + cost(800_000) + cost(q) + 1000,
			[]trackDemand{audio, plain(priorityOther, 800_000), sim(priorityOther, 2)}, []int{-1, 0, 0}, a + cost(800_000) + cost(h)},
		{"the speaker's plain video before a simulcast other", a + cost(800_000) + 1000,
			[]trackDemand{audio, sim(priorityOther, 2), plain(prioritySpeaker, 800_000)}, []int{-1, paused, 0}, a + cost(800_000) + cost(q)},
		{"a flowing video is kept a little below its rate", a + 0.9*cost(800_000),
			[]trackDemand{audio, flowing(plain(priorityOther, 800_000))}, []int{-1, 0}, 0},
		{"a paused one is not resumed there", a + 0.9*cost(800_000),
			[]trackDemand{audio, plain(priorityOther, 800_000)}, []int{-1, paused}, a + cost(800_000)},
		{"a flowing video is paused well below its rate", a + 0.7*cost(800_000),
			[]trackDemand{audio, flowing(plain(priorityOther, 800_000))}, []int{-1, paused}, a + cost(800_000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spent, next := allocateBudget(tt.budget, tt.tracks)
			var audioSpent, sum float64
			for i, w := range tt.want {
				tr := tt.tracks[i]
				got := tr.pick
				switch {
				case tr.paused:
					got = paused
				case !tr.simulcast && !tr.audio:
					got = 0
				}
				if got != w {
					t.Fatalf("track %d: %d, want %d (-2 paused)", i, got, w)
				}
				if tr.simulcast && tr.pick > tr.maxLayer && tr.rates[tr.maxLayer] != 0 {
					t.Fatalf("track %d: layer %d above its cap %d", i, tr.pick, tr.maxLayer)
				}
				if tr.audio {
					audioSpent += tr.cost
				}
				sum += tr.cost
			}
			if math.Abs(sum-spent) > 1 {
				t.Fatalf("spent %.0f, the tracks' costs add up to %.0f", spent, sum)
			}
			allowed := tt.budget
			for _, tr := range tt.tracks {
				if tr.flowing && !tr.paused {
					allowed = tt.budget / keepShare // kept by hysteresis
				}
			}
			if sum > max(allowed, audioSpent)+1 {
				t.Fatalf("spent %.0f of a %.0f budget (audio %.0f)", sum, tt.budget, audioSpent)
			}
			if math.Abs(next-tt.next) > 1 {
				t.Fatalf("budget for more %.0f, want %.0f", next, tt.next)
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

// TestPauseNeedsLossEvidence: only a loss-based cut in the last
// pauseEvidence lets the allocator pause video; the start-up guess and
// a delay-based estimate alone do not.
func TestPauseNeedsLossEvidence(t *testing.T) {
	now := time.Unix(1000, 0)
	b := newBandwidth(nil)
	b.now = func() time.Time { return now }
	if b.congested() {
		t.Fatal("congested before any feedback")
	}
	b.mu.Lock()
	b.delay = newDelayEstimator(startEstimate)
	b.delay.estimate = 200_000 // the delay-based half saw a queue
	b.delay.lastOveruse = now.UnixNano()
	b.mu.Unlock()
	if b.congested() {
		t.Fatal("a delay-based cut alone counts as congestion")
	}
	now = now.Add(time.Second)
	b.bytes.Add(500_000 / 8)
	b.onLoss(0.4)
	if !b.congested() {
		t.Fatal("heavy loss is not congestion")
	}
	now = now.Add(pauseEvidence + time.Second)
	if b.congested() {
		t.Fatalf("a loss cut %v ago still pauses video", pauseEvidence+time.Second)
	}
}

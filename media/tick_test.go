package media

import (
	"testing"
	"time"
)

func TestGridPhase(t *testing.T) {
	// Tickers of one period take the phases in turn.
	seen := map[time.Duration]int{}
	for range 40 {
		g := newGridPhase(time.Second)
		if g.period != time.Second || g.phase%tickGrid != 0 || g.phase < 0 || g.phase >= time.Second {
			t.Fatalf("phase %v of period %v", g.phase, g.period)
		}
		seen[g.phase]++
	}
	if len(seen) != 20 {
		t.Errorf("40 tickers of 1 s took %d phases, want all 20", len(seen))
	}
	if g := newGridPhase(70 * time.Millisecond); g.period != tickGrid {
		t.Errorf("period 70 ms became %v, want %v", g.period, tickGrid)
	}

	g := gridPhase{period: 500 * time.Millisecond, phase: 150 * time.Millisecond}
	base := time.Unix(1_800_000_000, 0)
	for _, c := range []struct {
		now  time.Duration // after base
		want time.Duration
	}{
		{0, 150 * time.Millisecond},
		{150 * time.Millisecond, 500 * time.Millisecond}, // on an instant: the next
		{151 * time.Millisecond, 499 * time.Millisecond},
		{149 * time.Millisecond, 501 * time.Millisecond}, // 1 ms early: this instant's tick
		{140 * time.Millisecond, 10 * time.Millisecond},
		{600 * time.Millisecond, 50 * time.Millisecond},
	} {
		got := g.until(base.Add(c.now))
		if got != c.want {
			t.Errorf("until at +%v = %v, want %v", c.now, got, c.want)
		}
		if at := base.Add(c.now + got).UnixNano(); (at-int64(g.phase))%int64(g.period) != 0 {
			t.Errorf("until at +%v lands off the grid", c.now)
		}
	}
}

func TestGridTicker(t *testing.T) {
	start := time.Now()
	g := newGridTicker(100 * time.Millisecond)
	defer g.Stop()
	want := start.Add(g.until(start))
	for i := range 3 {
		select {
		case now := <-g.C:
			// A tick comes at its instant on the grid or after it
			// (however late a loaded machine makes it), never before.
			if now.Before(want.Add(-time.Millisecond)) {
				t.Errorf("tick %d at %v, %v before its instant", i, now, want.Sub(now))
			}
			want = now.Add(g.until(now))
			g.next(now)
		case <-time.After(5 * time.Second):
			t.Fatalf("tick %d never came", i)
		}
	}
}

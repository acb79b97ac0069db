package media

import (
	"sync/atomic"
	"time"
)

// The periodic work of the media path (each subscriber's allocation and
// sender reports, each video layer's rate, each room's active speaker,
// the feedback to publishers) runs on gridTickers: every tick falls on a
// multiple of tickGrid of the wall clock, at a phase handed out in turn
// so that the work of many tickers of one period spreads over the
// period. Tickers started at random instants each woke the process on
// their own: in 35 three-person rooms, about 600 wake-ups a second, each
// a thread leaving epoll_wait (a context switch, and in a virtual
// machine an expensive one). On the grid they share at most
// 1s/tickGrid wake-ups a second, however many rooms there are.
const tickGrid = 50 * time.Millisecond

// tickSlots hands out the tickers' phases.
var tickSlots atomic.Uint32

// A gridPhase is a period (a multiple of tickGrid) and the phase of its
// instants: k*period + phase of Unix time.
type gridPhase struct {
	period, phase time.Duration
}

// newGridPhase hands out the next phase for period (rounded down to a
// multiple of tickGrid, at least tickGrid).
func newGridPhase(period time.Duration) gridPhase {
	period = max(period.Truncate(tickGrid), tickGrid)
	slots := uint32(period / tickGrid)
	return gridPhase{period: period, phase: time.Duration(tickSlots.Add(1)%slots) * tickGrid}
}

// until is how long from now to the next instant.
func (g gridPhase) until(now time.Time) time.Duration {
	ns := now.UnixNano() - int64(g.phase)
	p := int64(g.period)
	d := time.Duration(p - ns%p)
	if d < tickGrid/5 {
		// A tick a little early (timers run on the monotonic clock,
		// the grid on the wall clock) is this instant's tick.
		d += g.period
	}
	return d
}

// A gridTicker fires every period, on the grid. Unlike a time.Ticker it
// is re-armed by its owner (next) after each tick, so a tick that was
// late never queues another behind it.
type gridTicker struct {
	gridPhase
	timer *time.Timer
	C     <-chan time.Time
}

// newGridTicker starts a ticker of period (see newGridPhase), whose
// first tick is within one period.
func newGridTicker(period time.Duration) *gridTicker {
	g := &gridTicker{gridPhase: newGridPhase(period)}
	g.timer = time.NewTimer(g.until(time.Now()))
	g.C = g.timer.C
	return g
}

// next arms the ticker for its next instant after now.
func (g *gridTicker) next(now time.Time) { g.timer.Reset(g.until(now)) }

// Stop stops the ticker.
func (g *gridTicker) Stop() { g.timer.Stop() }

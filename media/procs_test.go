package media

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestProcsPolicy(t *testing.T) {
	tick := procsTick
	p := procsPolicy{full: 4, cur: 4, shrinkAfter: procsShrinkAfter}
	steps := int(procsShrinkAfter / tick)
	for i := range steps - 1 {
		if n := p.next(0.1, tick); n != 4 {
			t.Fatalf("idle tick %d: %d processors, want 4 until %v idle", i, n, procsShrinkAfter)
		}
	}
	if n := p.next(0.1, tick); n != 1 {
		t.Fatalf("after %v idle: %d processors, want 1", procsShrinkAfter, n)
	}
	between := (shrinkBelow + growAbove) / 2
	if n := p.next(between, tick); n != 1 {
		t.Errorf("between the marks: %d processors, want 1 still", n)
	}
	if n := p.next(growAbove+0.05, tick); n != 4 {
		t.Errorf("busy: %d processors, want all 4 back at once", n)
	}
	// A busier tick in the middle starts the idle count again.
	for range steps - 1 {
		p.next(0.1, tick)
	}
	p.next(between, tick)
	for i := range steps - 1 {
		if n := p.next(0.1, tick); n != 4 {
			t.Fatalf("idle tick %d after a busier one: %d processors, want 4", i, n)
		}
	}
	one := procsPolicy{full: 1, cur: 1, shrinkAfter: procsShrinkAfter}
	if n := one.next(5, tick); n != 1 {
		t.Errorf("one core, busy: %d processors", n)
	}
}

// TestAdaptProcs runs the controller on a made-up CPU clock: idle, it
// goes down to one processor; busy, back to all; closed, all again.
func TestAdaptProcs(t *testing.T) {
	var cpu atomic.Int64 // nanoseconds used
	var busy atomic.Bool
	var mu sync.Mutex
	var set []int
	done := make(chan struct{})
	ended := make(chan struct{})
	last := time.Now()
	clock := func() time.Duration {
		mu.Lock()
		defer mu.Unlock()
		now := time.Now()
		if busy.Load() { // a core and a half
			cpu.Add(int64(now.Sub(last)) * 3 / 2)
		}
		last = now
		return time.Duration(cpu.Load())
	}
	record := func(n int) {
		mu.Lock()
		set = append(set, n)
		mu.Unlock()
	}
	sets := func() []int {
		mu.Lock()
		defer mu.Unlock()
		return append([]int(nil), set...)
	}
	go func() {
		adaptProcs(done, testLogger(), procsPolicy{full: 2, shrinkAfter: 200 * time.Millisecond}, tickGrid, clock, record)
		close(ended)
	}()
	waitFor(t, 5*time.Second, "one processor while idle", func() bool { s := sets(); return len(s) == 1 && s[0] == 1 })
	busy.Store(true)
	waitFor(t, 5*time.Second, "two processors when busy", func() bool { s := sets(); return len(s) == 2 && s[1] == 2 })
	busy.Store(false)
	waitFor(t, 5*time.Second, "one processor idle again", func() bool { s := sets(); return len(s) == 3 && s[2] == 1 })
	close(done)
	<-ended
	if s := sets(); len(s) != 4 || s[3] != 2 {
		t.Errorf("processors set %v, want [1 2 1 2]: all back when the SFU closes", s)
	}
}

// TestProcsSetterHandsBack: going back to all processors hands
// GOMAXPROCS back to the runtime's default, which follows the
// container's CPU limit (and may have moved since the count at start),
// unless the environment fixed it; one processor is set as asked.
func TestProcsSetterHandsBack(t *testing.T) {
	was := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(was)
	runtime.SetDefaultGOMAXPROCS()
	def := runtime.GOMAXPROCS(0)
	start := def + 2 // the count at start, before the limit moved
	set := procsSetter(start, false)
	set(1)
	if n := runtime.GOMAXPROCS(0); n != 1 {
		t.Fatalf("shrunk: %d processors, want 1", n)
	}
	set(start)
	if n := runtime.GOMAXPROCS(0); n != def {
		t.Fatalf("back to all: %d processors, want the runtime's default now, %d", n, def)
	}
	fixed := procsSetter(start, true)
	fixed(1)
	fixed(start)
	if n := runtime.GOMAXPROCS(0); n != start {
		t.Fatalf("fixed by the environment: %d processors, want %d as set", n, start)
	}
}

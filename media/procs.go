package media

import (
	"log/slog"
	"runtime"
	"time"
)

// The Go scheduler's processors (GOMAXPROCS) follow the server's load.
//
// With two or more processors and little to do, every goroutine made
// ready (a socket's reader woken by a datagram, a timer, pion's STUN
// handling) makes the scheduler wake a second thread to look for work
// on the idle processor, which finds none and sleeps again: in the
// 4 + 70 load test, about 40 % of the server's context switches (each a
// few microseconds of kernel time, more in a virtual machine), for
// nothing. One processor has no idle one to wake. So while the process
// uses less than shrinkBelow of a core for procsShrinkAfter, it runs on
// one; as soon as it uses more than growAbove in a procsTick, it gets
// all of them back (a busy single processor would queue packets). A
// node that is not busy spends less of its CPU on scheduling; a busy one
// is as before.
//
// The marks: at 45 three-person rooms (the server at 0.36–0.43 cores,
// the load generator starving the rest of the machine), one processor
// took 13–15 % less CPU per packet than two, and the generator measured
// a lower forwarding latency p99 (58–65 ms against 93–105), so one
// processor serves up to half a core. Above three quarters of one, the
// queue behind a single processor would start to show in latency.

const (
	procsTick        = 250 * time.Millisecond
	procsShrinkAfter = 5 * time.Second
	shrinkBelow      = 0.5  // cores
	growAbove        = 0.75 // cores
)

// procsPolicy decides the processor count from the CPU the process used.
type procsPolicy struct {
	full        int           // all of them: GOMAXPROCS at start
	cur         int           // now
	shrinkAfter time.Duration // procsShrinkAfter but in tests
	low         time.Duration // how long usage has been below shrinkBelow
}

// next returns the processor count after a tick of dt in which the
// process used cores of CPU.
func (p *procsPolicy) next(cores float64, dt time.Duration) int {
	switch {
	case p.full <= 1:
		return p.cur
	case cores > growAbove:
		p.low = 0
		p.cur = p.full
	case cores < shrinkBelow:
		p.low += dt
		if p.low >= p.shrinkAfter {
			p.cur = 1
		}
	default:
		p.low = 0
	}
	return p.cur
}

// adaptProcs runs pol every tick until done closes, setting GOMAXPROCS
// through set (runtime.GOMAXPROCS but in tests), reading the CPU used
// through cpu, and putting all processors back at the end.
func adaptProcs(done <-chan struct{}, log *slog.Logger, pol procsPolicy, tick time.Duration, cpu func() time.Duration, set func(int)) {
	full := pol.full
	pol.cur = full
	if full <= 1 {
		return
	}
	t := newGridTicker(tick)
	defer t.Stop()
	lastAt, lastCPU := time.Now(), cpu()
	for {
		select {
		case <-done:
			if pol.cur != full {
				set(full)
			}
			return
		case now := <-t.C:
			t.next(now)
			used := cpu()
			dt := now.Sub(lastAt)
			if dt <= 0 {
				continue
			}
			cores := float64(used-lastCPU) / float64(dt)
			lastAt, lastCPU = now, used
			was := pol.cur
			if n := pol.next(cores, dt); n != was {
				set(n)
				log.Debug("media: scheduler processors", "procs", n, "cores", cores)
			}
		}
	}
}

// procsSetter is adaptProcs' setter outside tests. Setting GOMAXPROCS
// turns off the runtime's own updates of it, which follow the
// container's CPU limit (a limit raised or lowered while the server
// runs); so going back to all the processors, full, hands the setting
// back to the runtime instead (SetDefaultGOMAXPROCS), unless the
// operator fixed GOMAXPROCS in the environment (fixed), which the
// runtime's default would ignore.
func procsSetter(full int, fixed bool) func(int) {
	return func(n int) {
		if n >= full && !fixed {
			runtime.SetDefaultGOMAXPROCS()
			return
		}
		runtime.GOMAXPROCS(n)
	}
}

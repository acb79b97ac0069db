package media

import (
	"math/rand/v2"
	"testing"
	"time"
	"unsafe"

	"github.com/pion/interceptor/pkg/twcc"
	"github.com/pion/rtcp"
)

// linkSim is a bottleneck link with a queue, on a fake clock: the SFU's
// bandwidth estimator stamps packets (sentPacket) as the interceptor
// would, and gets transport-wide feedback (onTWCC) every 100 ms for what
// arrived, as a browser sends it. Nothing is ever lost: the queue only
// grows.
type linkSim struct {
	t        *testing.T
	b        *bandwidth
	now      time.Time
	capacity float64       // bit/s
	base     time.Duration // propagation
	jitter   time.Duration // added to each arrival, uniformly up to
	rnd      *rand.Rand
	free     time.Time // when the link has sent what is queued
	credit   float64   // bits the sender may send
	pending  []simArrival
	sinceFB  time.Duration
	maxQueue time.Duration // the longest queueing delay seen
}

type simArrival struct {
	seq uint16
	at  time.Time
}

func newLinkSim(t *testing.T, capacity float64, start float64) *linkSim {
	s := &linkSim{t: t, now: time.Unix(1000, 0), capacity: capacity, base: 30 * time.Millisecond, rnd: rand.New(rand.NewPCG(1, 2))}
	s.free = s.now
	s.b = newBandwidth(nil)
	s.b.now = func() time.Time { return s.now }
	s.b.estimate = start
	return s
}

// run sends 1200-byte packets at rate for d, in 1 ms steps.
func (s *linkSim) run(d time.Duration, rate float64) {
	const size = 1200
	for end := s.now.Add(d); s.now.Before(end); {
		s.now = s.now.Add(time.Millisecond)
		s.credit += rate / 1000
		for s.credit >= size*8 {
			s.credit -= size * 8
			seq := s.b.sentPacket(size)
			start := s.now
			if s.free.After(start) {
				start = s.free
			}
			s.free = start.Add(time.Duration(size * 8 / s.capacity * float64(time.Second)))
			s.maxQueue = max(s.maxQueue, s.free.Sub(s.now))
			at := s.free.Add(s.base)
			if s.jitter > 0 {
				at = at.Add(time.Duration(s.rnd.Int64N(int64(s.jitter))))
			}
			s.pending = append(s.pending, simArrival{seq: seq, at: at})
		}
		if s.sinceFB += time.Millisecond; s.sinceFB >= 100*time.Millisecond {
			s.sinceFB = 0
			s.feedback()
		}
	}
}

// feedback reports the packets arrived by now (the receiver's clock is
// offset from the sender's: only differences matter).
func (s *linkSim) feedback() {
	n := 0
	for n < len(s.pending) && !s.pending[n].at.After(s.now) {
		n++
	}
	if n == 0 {
		return
	}
	arrived := s.pending[:n]
	const offset = 7 * time.Hour
	ref := (arrived[0].at.Add(offset).UnixNano() / int64(64*time.Millisecond))
	fb := &rtcp.TransportLayerCC{BaseSequenceNumber: arrived[0].seq, PacketStatusCount: uint16(n), ReferenceTime: uint32(ref)}
	prev := ref * int64(64*time.Millisecond)
	for _, a := range arrived {
		at := a.at.Add(offset).UnixNano()
		delta := (at - prev) / 250_000 * 250 // microseconds, 250 us steps
		prev += delta * 1000
		symbol := rtcp.TypeTCCPacketReceivedSmallDelta
		if delta > 63_750 || delta < 0 {
			symbol = rtcp.TypeTCCPacketReceivedLargeDelta
		}
		fb.PacketChunks = append(fb.PacketChunks, &rtcp.RunLengthChunk{PacketStatusSymbol: symbol, RunLength: 1})
		fb.RecvDeltas = append(fb.RecvDeltas, &rtcp.RecvDelta{Type: symbol, Delta: delta})
	}
	s.pending = append(s.pending[:0], s.pending[n:]...)
	raw, err := fb.Marshal()
	if err != nil {
		s.t.Fatal(err)
	}
	s.b.onTWCC(raw)
}

func (s *linkSim) delayEstimate() float64 {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	if s.b.delay == nil {
		s.t.Fatal("no feedback was taken")
	}
	return s.b.delay.estimate
}

// TestDelayEstimateFallsWithQueue: sending 800 kbit/s into a 500 kbit/s
// link builds a queue; the estimate falls below the link's rate while
// the queue is still short, long before a buffer would overflow, and the
// loss-based estimate never moved.
func TestDelayEstimateFallsWithQueue(t *testing.T) {
	s := newLinkSim(t, 500_000, 1_000_000)
	var fellAfter time.Duration
	var queueThen time.Duration
	for step := range 40 {
		s.run(100*time.Millisecond, 800_000)
		if s.b.current() < 500_000 {
			fellAfter = time.Duration(step+1) * 100 * time.Millisecond
			queueThen = s.maxQueue
			break
		}
	}
	if fellAfter == 0 {
		t.Fatalf("estimate %.0f after 4 s into a 500 kbit/s link", s.b.current())
	}
	t.Logf("estimate %.0f kbit/s after %v, queue at most %v", s.b.current()/1000, fellAfter, queueThen.Round(time.Millisecond))
	if queueThen > 400*time.Millisecond {
		t.Fatalf("the queue reached %v before the estimate fell", queueThen)
	}
	if e := s.delayEstimate(); e < 300_000 {
		t.Fatalf("cut too deep: %.0f (the link takes 500 kbit/s)", e)
	}
	if s.b.estimate != 1_000_000 {
		t.Fatalf("the loss-based estimate moved to %.0f without loss", s.b.estimate)
	}
}

// TestDelayEstimateGrowsWhenSteady: with a constant delay (and jitter) the
// estimate grows, up to 1.5 times what is received.
func TestDelayEstimateGrowsWhenSteady(t *testing.T) {
	s := newLinkSim(t, 5_000_000, 500_000)
	s.jitter = 2 * time.Millisecond
	s.run(6*time.Second, 600_000)
	e := s.delayEstimate()
	t.Logf("estimate %.0f kbit/s after 6 s at 600 kbit/s on a 5 Mbit/s link", e/1000)
	if e < 650_000 {
		t.Fatalf("did not grow: %.0f", e)
	}
	if e > 1.5*600_000+10_000+1 {
		t.Fatalf("grew past 1.5 times the rate received: %.0f", e)
	}
	if s.b.delay.lastOveruse != 0 {
		t.Fatal("a steady delay was taken for overuse")
	}
}

// TestDelayProbe: the allocator wanting more raises the estimate once
// the link looked clear; a probe the link takes sticks, one it does not
// take fails on the queue it builds and makes the next wait longer.
func TestDelayProbe(t *testing.T) {
	s := newLinkSim(t, 2_000_000, 400_000)
	s.run(2*time.Second, 300_000)
	before := s.delayEstimate()
	if before >= 1_200_000 {
		t.Fatalf("estimate %.0f before the probe", before)
	}
	s.b.setWant(1_200_000)
	if e := s.delayEstimate(); e != 1_200_000 {
		t.Fatalf("no probe: estimate %.0f", e)
	}
	// The allocator switches up: the link takes it.
	s.run(2*time.Second, 1_100_000)
	if s.b.delay.probeAt != 0 || s.b.delay.probeWait != probeWaitStart {
		t.Fatal("the probe did not succeed")
	}
	if e := s.delayEstimate(); e < 1_100_000 {
		t.Fatalf("estimate %.0f after a successful probe", e)
	}

	// Too far: 3 Mbit/s into 2.
	s.b.setWant(3_000_000)
	if e := s.delayEstimate(); e != 3_000_000 {
		t.Fatalf("no second probe: estimate %.0f", e)
	}
	s.run(2*time.Second, 2_900_000)
	if e := s.delayEstimate(); e > 2_000_000 {
		t.Fatalf("estimate %.0f after overrunning a 2 Mbit/s link", e)
	}
	if s.b.delay.probeWait != 2*probeWaitStart {
		t.Fatalf("wait %v after a failed probe", s.b.delay.probeWait)
	}
	// Right after the failure, no new probe.
	s.run(500*time.Millisecond, 1_500_000)
	s.b.setWant(3_000_000)
	if e := s.delayEstimate(); e >= 3_000_000 {
		t.Fatal("probed again right after a failure")
	}
}

// TestTWCCSentTime: a sent packet's time, kept in 32 bits of
// microseconds, comes back as the Unix nanoseconds it was sent at,
// truncated to the microsecond, across the 32 bits' wrap, and when the
// wall clock stepped back after it was sent.
func TestTWCCSentTime(t *testing.T) {
	for _, at := range []int64{
		1_700_000_000_123_456_789,
		(1<<32)*1000*400_000 - 5_000, // 5 µs before a wrap of the microseconds' low 32 bits
	} {
		s := twccSent{seq: 1, size: 1200, at: uint32(at / 1000)}
		for _, later := range []int64{0, 999, 250_000_000, 10 * 60 * 1e9, -1e9, -20 * 60 * 1e9} {
			if got, want := s.sentAt(at+later), at/1000*1000; got != want {
				t.Errorf("sent at %d, asked %d ns later: %d, want %d", at, later, got, want)
			}
		}
	}
	if size := unsafe.Sizeof(twccSent{}); size != 8 {
		t.Errorf("twccSent is %d bytes, want 8: 8 a cache line", size)
	}
}

// TestAckedCountsLateReports: a receiver that records each stream's
// packets as its reader for that stream gets to them (pion's read path:
// here the second camera's reader lags the first's by up to 100 ms)
// reports older sequence numbers after newer ones, and pion's recorder
// reports a range again when a late packet comes. Every packet must
// count once toward the rate received: counting only reports newer than
// the newest seen, the estimator took such a receiver's rate for a half
// to two thirds of what it got, and the queue evidence paused its video.
func TestAckedCountsLateReports(t *testing.T) {
	now := time.Unix(2000, 0)
	b := newBandwidth(nil)
	b.now = func() time.Time { return now }
	rec := twcc.NewRecorder(1)
	type pkt struct {
		seq uint16
		at  int64 // µs, when the stream's reader records it
	}
	var lagging []pkt
	var sentBits float64
	const steps = 150 // 20 ms each: 3 s
	for i := 1; i <= steps; i++ {
		now = now.Add(20 * time.Millisecond)
		arrive := now.Add(30*time.Millisecond).UnixNano() / 1000
		a1 := b.sentPacket(1200)
		b1 := b.sentPacket(1200)
		a2 := b.sentPacket(1200)
		b2 := b.sentPacket(1200)
		if i > steps-50 {
			sentBits += 4 * 8 * 1200
		}
		rec.Record(1, a1, arrive)
		rec.Record(1, a2, arrive+200)
		lagging = append(lagging, pkt{b1, arrive + 100}, pkt{b2, arrive + 300})
		if i%5 == 2 { // the second reader catches up, every 100 ms
			for _, p := range lagging {
				rec.Record(1, p.seq, p.at)
			}
			lagging = lagging[:0]
		}
		if i%5 == 0 { // feedback every 100 ms, 60 ms after that
			for _, fb := range rec.BuildFeedbackPacket() {
				raw, err := fb.Marshal()
				if err != nil {
					t.Fatal(err)
				}
				b.onTWCC(raw)
			}
		}
	}
	b.mu.Lock()
	acked := b.delay.acked()
	b.mu.Unlock()
	if acked < 0.9*sentBits || acked > 1.1*sentBits {
		t.Fatalf("rate received from the feedback %.0f bit/s, sent %.0f: every packet reported must count once", acked, sentBits)
	}
}

package media

import (
	"github.com/pion/interceptor/pkg/twcc"
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
	pausedSince := func(at int64, t trackDemand) trackDemand { t.pausedAt = at; return t }
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
		{"a paused video does not resume in place of a flowing one", a + cost(800_000) + 1000,
			[]trackDemand{audio, plain(priorityOther, 800_000), flowing(plain(priorityOther, 800_000))}, []int{-1, paused, 0}, a + 2*cost(800_000)},
		{"the longest paused is next in line, dearer or not", a + cost(800_000) + 1000,
			[]trackDemand{audio, pausedSince(2, plain(priorityOther, 500_000)), pausedSince(1, plain(priorityOther, 800_000))},
			[]int{-1, paused, 0}, a + cost(800_000) + cost(500_000)},
		{"next in line: resuming it, not a cheaper one behind", a + 1000,
			[]trackDemand{audio, pausedSince(2, plain(priorityOther, 500_000)), pausedSince(1, plain(priorityOther, 800_000))},
			[]int{-1, paused, paused}, a + cost(800_000)},
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
// pauseEvidence lets the allocator pause video, or a delay-based one
// while the subscriber received far less than was sent
// (TestPauseOnQueueEvidence); the start-up guess and a delay-based
// estimate alone do not.
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

// TestPauseOnQueueEvidence: a delay-based cut made while the subscriber
// received (by transport-wide feedback) under queueEvidence of the rate
// sent lets the allocator pause video; the same cut with the receiver
// getting about what was sent (a busy host's jitter) does not, nor does
// a feedback without a cut.
func TestPauseOnQueueEvidence(t *testing.T) {
	for _, tc := range []struct {
		name      string
		stretch   float64 // arrival span over send span, the first second
		after     float64 // and the next half second
		cut       bool
		congested bool
	}{
		{"a queue: sent in a second, arrived in two, and on", 2, 2, true, true},
		{"sent in a second, arrived in 1.5, and on", 1.5, 1.5, true, true},
		{"sent in a second, arrived in 1.2", 1.2, 1.2, true, false},
		{"sent in a second, arrived in two, no cut", 2, 2, false, false},
		// A receiver that stopped reading, then read what waited.
		{"a stall: arrived in two, then the backlog at once", 2, 0.3, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Unix(1000, 0)
			b := newBandwidth(nil)
			b.now = func() time.Time { return now }
			e := newDelayEstimator(startEstimate)
			b.delay = e
			// A feedback every 100 ms of the receiver's clock, its newest
			// packet sent 100 ms / stretch after the last one's.
			send, recv := now.UnixNano(), int64(5e9)
			feedback := func(stretch float64, n int) {
				for range n {
					send += int64(100e6 / stretch)
					recv += 100e6
					now = now.Add(100 * time.Millisecond)
					b.arrivals.note(send, recv)
					b.arrivals.done()
					b.mu.Lock()
					b.noteQueueLocked(e, now)
					b.mu.Unlock()
				}
			}
			feedback(tc.stretch, 10)
			if tc.cut {
				e.lastDecrease = now.UnixNano()
			}
			b.mu.Lock()
			b.noteQueueLocked(e, now)
			b.mu.Unlock()
			if b.congested() {
				t.Fatal("congested at the cut: the stretch needs confirming")
			}
			feedback(tc.after, 6)
			if got := b.congested(); got != tc.congested {
				t.Errorf("congested %v, want %v", got, tc.congested)
			}
		})
	}
}

// TestQueueEvidenceFromFeedback: through transport-wide feedback built
// by pion's recorder. Packets that arrive stretched by a queue are
// evidence; a receiver that reports only one of its two streams (a
// stream pion's read path does not read yet records nothing) reports
// half of what was sent, and is not.
func TestQueueEvidenceFromFeedback(t *testing.T) {
	for _, tc := range []struct {
		name      string
		stretch   float64 // arrival spacing over send spacing
		reportAll bool
		queued    bool
	}{
		{"a queue: arrivals stretched 1.6 times", 1.6, true, true},
		{"no queue", 1, true, false},
		{"no queue, half the packets left out", 1, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Unix(3000, 0)
			b := newBandwidth(nil)
			b.now = func() time.Time { return now }
			rec := twcc.NewRecorder(1)
			start := now
			run := func(steps int) {
				for i := 1; i <= steps; i++ { // two packets every 20 ms
					now = now.Add(20 * time.Millisecond)
					arrive := start.Add(time.Duration(float64(now.Sub(start))*tc.stretch)).Add(30*time.Millisecond).UnixNano() / 1000
					first, second := b.sentPacket(1200), b.sentPacket(1200)
					b.bytes.Add(2 * 1200)
					rec.Record(1, first, arrive)
					if tc.reportAll {
						rec.Record(1, second, arrive+100)
					}
					if i%5 == 0 {
						for _, fb := range rec.BuildFeedbackPacket() {
							raw, err := fb.Marshal()
							if err != nil {
								t.Fatal(err)
							}
							b.onTWCC(raw)
						}
					}
				}
			}
			run(100) // 2 s
			b.mu.Lock()
			b.delay.lastDecrease = now.UnixNano() // a delay-based cut now
			b.noteQueueLocked(b.delay, now)
			b.mu.Unlock()
			run(30) // 600 ms more: confirmed, or not
			b.mu.Lock()
			queued := !b.queuedAt.IsZero()
			b.mu.Unlock()
			if queued != tc.queued {
				t.Errorf("queue evidence %v, want %v", queued, tc.queued)
			}
		})
	}
}

// allocSim runs a subscriber's allocator (bandwidth.share) against a
// link of some capacity on a fake clock: every tick it allocates and
// sends what is not paused, and every second the subscriber reports the
// fraction the link could not carry, as receiver reports do. No
// transport-wide feedback: the loss-based half alone.
type allocSim struct {
	t        *testing.T
	b        *bandwidth
	start    time.Time
	now      time.Time
	capacity float64 // bit/s
	tracks   []trackDemand
	pauses   []int             // per track: times paused for bandwidth
	resumes  [][]time.Duration // per track: when it resumed, since start
	pausedAt []time.Duration   // per track: time spent paused
	sent     float64           // bits since the last report
	reported time.Time
	lossy    int // reports with loss
}

const simTick = 100 * time.Millisecond

func newAllocSim(t *testing.T, capacity float64, tracks ...trackDemand) *allocSim {
	s := &allocSim{t: t, start: time.Unix(1000, 0), capacity: capacity}
	s.now, s.reported = s.start, s.start
	s.b = newBandwidth(nil)
	s.b.now = func() time.Time { return s.now }
	for _, tr := range tracks {
		s.add(tr)
	}
	return s
}

// add subscribes a track; like a new downTrack, it is not paused.
func (s *allocSim) add(tr trackDemand) int {
	tr.flowing = !tr.audio
	s.tracks = append(s.tracks, tr)
	s.pauses = append(s.pauses, 0)
	s.resumes = append(s.resumes, nil)
	s.pausedAt = append(s.pausedAt, 0)
	return len(s.tracks) - 1
}

func (s *allocSim) paused(i int) bool { return !s.tracks[i].audio && !s.tracks[i].flowing }

// run simulates d.
func (s *allocSim) run(d time.Duration) {
	for end := s.now.Add(d); s.now.Before(end); {
		s.step()
	}
}

// runUntil simulates until cond holds, at most d; it returns how long
// that took, or -1.
func (s *allocSim) runUntil(d time.Duration, cond func() bool) time.Duration {
	from := s.now
	for end := s.now.Add(d); s.now.Before(end); {
		s.step()
		if cond() {
			return s.now.Sub(from)
		}
	}
	return -1
}

func (s *allocSim) step() {
	s.now = s.now.Add(simTick)
	s.b.share(s.tracks)
	rate := 0.0
	for i := range s.tracks {
		tr := &s.tracks[i]
		if tr.audio {
			if tr.paused {
				s.t.Fatalf("%v: audio paused", s.now.Sub(s.start))
			}
			rate += tr.rate
			continue
		}
		switch {
		case tr.flowing && tr.paused:
			s.pauses[i]++
		case !tr.flowing && !tr.paused:
			s.resumes[i] = append(s.resumes[i], s.now.Sub(s.start))
		}
		if tr.paused && tr.flowing {
			tr.pausedAt = s.now.UnixNano()
		}
		tr.flowing = !tr.paused // what the next allocation sees
		if tr.paused {
			s.pausedAt[i] += simTick
		} else {
			rate += tr.rate
		}
	}
	bits := rate * simTick.Seconds()
	s.b.bytes.Add(uint64(bits / 8))
	s.sent += bits
	if s.now.Sub(s.reported) >= time.Second {
		carried := s.capacity * s.now.Sub(s.reported).Seconds()
		loss := 0.0
		if s.sent > carried {
			loss = 1 - carried/s.sent
			s.lossy++
		}
		s.b.onLoss(loss)
		s.sent, s.reported = 0, s.now
	}
}

// TestResumeAfterCut: a camera paused by a loss-based cut, and one
// subscribed during it (born paused), both resume soon after the link
// recovers: a resume probe at most once per hold, not growth by 25% a
// report up to a camera's whole rate (which took over ten seconds here).
// Each resumes once and stays.
func TestResumeAfterCut(t *testing.T) {
	audio := trackDemand{audio: true, rate: 40_000}
	camera := trackDemand{rate: 2_500_000, priority: priorityOther}
	s := newAllocSim(t, 20_000_000, audio, camera)
	s.run(3 * time.Second)
	if s.paused(1) || s.b.congested() {
		t.Fatal("the camera was paused on a clear link")
	}

	// The link falls to 300 kbit/s: room for audio only.
	s.capacity = 300_000
	if s.runUntil(5*time.Second, func() bool { return s.paused(1) }) < 0 {
		t.Fatalf("the camera was not paused on a 300 kbit/s link (estimate %.0f)", s.b.current())
	}
	late := s.add(camera)
	if s.runUntil(4*time.Second, func() bool { return s.paused(1) && s.paused(late) }) < 0 {
		t.Fatalf("on a 300 kbit/s link: camera paused %v, the one subscribed meanwhile %v", s.paused(1), s.paused(late))
	}

	// The link recovers. The next probe comes once the hold after the
	// last failed one is over, and the one after a hold later.
	s.capacity = 20_000_000
	hold := s.b.hold
	recovered := s.now.Sub(s.start)
	first := s.runUntil(30*time.Second, func() bool { return !s.paused(1) || !s.paused(late) })
	if first < 0 || first > hold+2*time.Second {
		t.Fatalf("first camera resumed after %v (hold %v); estimate %.0f", first, hold, s.b.current())
	}
	both := s.runUntil(30*time.Second, func() bool { return !s.paused(1) && !s.paused(late) })
	if both < 0 || first+both > 2*hold+4*time.Second {
		t.Fatalf("second camera resumed %v after the first (hold %v); estimate %.0f", both, hold, s.b.current())
	}
	t.Logf("hold %v: resumed after %v and %v", hold, first, first+both)
	pauses := []int{s.pauses[1], s.pauses[late]}
	s.run(20 * time.Second)
	for _, i := range []int{1, late} {
		if s.pauses[i] != pauses[i/late] {
			t.Errorf("camera %d paused again on a clear link", i)
		}
		var after []time.Duration
		for _, r := range s.resumes[i] {
			if r >= recovered {
				after = append(after, r)
			}
		}
		if len(after) != 1 {
			t.Errorf("camera %d resumed %d times after the link recovered: %v", i, len(after), after)
		}
	}
}

// TestPausedStaysPausedOnLowLink: on a link that cannot carry the
// camera, it stays paused but for resume probes, at most one per hold and
// each failure waiting longer (up to holdMax); audio keeps flowing.
func TestPausedStaysPausedOnLowLink(t *testing.T) {
	audio := trackDemand{audio: true, rate: 40_000}
	camera := trackDemand{rate: 1_500_000, priority: priorityOther}
	s := newAllocSim(t, 500_000, audio, camera)
	const d = 120 * time.Second
	s.run(d)
	resumes := s.resumes[1]
	t.Logf("resumed at %v; paused %v of %v; %d lossy reports", resumes, s.pausedAt[1], d, s.lossy)
	if len(resumes) == 0 {
		t.Fatal("never probed: the camera would stay paused for good")
	}
	for i := 1; i < len(resumes); i++ {
		gap := resumes[i] - resumes[i-1]
		if gap < holdStart {
			t.Fatalf("resumed %v after the previous time: %v", gap, resumes)
		}
		if prev := resumes[i-1] - max(resumes[max(i-2, 0)], 0); i >= 2 && gap < min(prev, holdMax) {
			t.Fatalf("no backoff: %v", resumes)
		}
	}
	if len(resumes) > 8 {
		t.Fatalf("%d resumes in %v: %v", len(resumes), d, resumes)
	}
	if s.pausedAt[1] < d*9/10 {
		t.Fatalf("the camera was forwarded %v of %v on a link that cannot carry it", d-s.pausedAt[1], d)
	}
	if s.pauses[1] != len(resumes)+1 {
		t.Fatalf("paused %d times, resumed %d", s.pauses[1], len(resumes))
	}
}

// TestFirstCutFromRateSent: before any loss-based cut the allocator
// pauses nothing, so a subscriber may be sent far more than the start-up
// guess (1 Mbit/s). A first lossy report cuts from what was sent, not
// from the guess: on an 8 Mbit/s link, four 2.5 Mbit/s cameras become
// two or three, not none.
func TestFirstCutFromRateSent(t *testing.T) {
	camera := trackDemand{rate: 2_500_000, priority: priorityOther}
	s := newAllocSim(t, 8_000_000, trackDemand{audio: true, rate: 40_000}, camera, camera, camera, camera)
	if s.runUntil(3*time.Second, s.b.congested) < 0 {
		t.Fatal("no cut on a link carrying 80% of what is sent")
	}
	s.step()
	flowing := 0
	for i := 1; i < len(s.tracks); i++ {
		if !s.paused(i) {
			flowing++
		}
	}
	t.Logf("estimate %.0f kbit/s after the first cut: %d cameras of 4", s.b.current()/1000, flowing)
	if flowing < 2 {
		t.Fatalf("%d cameras of 4 left on an 8 Mbit/s link (estimate %.0f)", flowing, s.b.current())
	}
	if e := s.b.current(); e >= 10_000_000 {
		t.Fatalf("estimate %.0f after a cut, not below the 10 Mbit/s sent", e)
	}
}

// TestBandwidthTellsAllocator: the allocator is woken when the
// estimate moves by a twentieth or more since it was last woken, not
// for every small step of the delay-based estimate.
func TestBandwidthTellsAllocator(t *testing.T) {
	b := newBandwidth(nil)
	b.mu.Lock()
	defer b.mu.Unlock()
	steps := []struct {
		estimate float64
		want     bool
	}{
		{2_000_000, true},  // the first move
		{2_020_000, false}, // +1 %
		{2_080_000, false}, // +4 % of what the allocator saw
		{2_100_000, true},  // +5 %
		{2_040_000, false}, // -3 %
		{1_980_000, true},  // -5.7 %
		{1_980_000, false}, // no move
		{1_200_000, true},  // a cut
	}
	old := b.currentLocked()
	for _, s := range steps {
		b.estimate = s.estimate
		if got := b.tellLocked(old); got != s.want {
			t.Fatalf("estimate %.0f (last told %.0f): tell = %v, want %v", s.estimate, b.told, got, s.want)
		}
		old = s.estimate
	}
}

// TestBandwidthLinkChanged: a receiver report counting the packets lost
// while the link was away (an ICE restart) cuts nothing; once the link
// has settled, loss cuts again.
func TestBandwidthLinkChanged(t *testing.T) {
	now := time.Unix(1000, 0)
	b := newBandwidth(nil)
	b.now = func() time.Time { return now }
	b.bytes.Add(62_500) // 500 kbit/s over the first second
	now = now.Add(time.Second)
	b.onLoss(0)
	before := b.current()
	b.linkChanged()
	now = now.Add(time.Second)
	b.onLoss(0.6)
	if e := b.current(); e < before {
		t.Fatalf("a report spanning the outage cut the estimate from %.0f to %.0f", before, e)
	}
	if b.congested() {
		t.Fatal("congested after a report spanning the outage")
	}
	now = now.Add(linkSettle)
	b.onLoss(0.6)
	if e := b.current(); e >= before {
		t.Fatalf("60 %% loss after the link settled left the estimate at %.0f", e)
	}
}

package media

import (
	"math"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"
)

// Bandwidth allocation. Each subscriber has a bandwidth estimate
// (bandwidth: loss and REMB here, delay from transport-wide feedback in
// bwe.go), and every track it receives shares it (allocate): audio first,
// then video in priority order (screen share, the active speaker, the
// others), simulcast tracks at the best layer that fits, video that does
// not fit at all paused. A subscriber may cap the layer it wants of a
// publisher (SetMaxVideoLayer: a thumbnail needs the lowest).

const (
	startEstimate = 1_000_000  // bit/s, before any feedback
	minEstimate   = 100_000    // bit/s
	maxEstimate   = 20_000_000 // bit/s
	// An audio track gets its measured rate with headroom, plus
	// audioOverhead for its packets' headers (50 a second of about 50
	// bytes: RTP, SRTP, UDP, IP), and at least audioFloor.
	audioOverhead = 20_000 // bit/s
	audioFloor    = 32_000 // bit/s
	// A layer needs its measured rate plus this headroom.
	layerHeadroom = 1.15
	// A video already flowing is paused for bandwidth only when less than
	// keepShare of what it needs is left (see allocateBudget).
	keepShare = 0.8
	// Loss above lossHigh cuts the estimate, at most every
	// decreaseInterval (reports lag); below lossLow it grows by
	// increaseFactor, at most every increaseInterval, unless a cut is
	// recent: growth waits holdStart after a cut, doubling up to holdMax
	// each time growing failed again, back to holdStart once holdReset
	// passed after the hold without a cut (a long hold, during which
	// nothing was tried, is no sign that the link recovered). A resume
	// probe (probeLocked) raises it at most once per hold, and not within
	// lossQuiet of a report that showed loss (lossLow or more).
	lossHigh         = 0.10
	lossLow          = 0.02
	increaseFactor   = 1.25
	increaseInterval = 250 * time.Millisecond
	decreaseInterval = 500 * time.Millisecond
	holdStart        = 2 * time.Second
	holdMax          = 30 * time.Second
	holdReset        = 20 * time.Second
	lossQuiet        = time.Second
	// A layer that sent nothing for layerTimeout is not available (the
	// publisher's own bandwidth made it drop the layer).
	layerTimeout = 1500 * time.Millisecond
	// allocateInterval re-allocates even without feedback, to follow the
	// publisher's layers coming and going.
	allocateInterval = time.Second
)

// bandwidth estimates what a subscriber's connection takes, from the loss
// its receiver reports show (the loss-based controller of Google
// congestion control) and the REMB it may send. It probes by switching
// up a layer or resuming a paused video once loss has stayed low, not
// with padding, and backs off for longer each time such a probe fails.
//
// Until a loss-based cut (congested), the allocator pauses nothing, so
// what is sent is not bounded by the estimate, which may still be the
// start-up guess: the loss-based estimate then follows the rate actually
// sent (a clean report lifts it to that rate, a lossy one cuts from it).
// Cutting the guess instead, the first lossy report paused every camera
// of a subscriber receiving far more than the guess.
type bandwidth struct {
	bytes   atomic.Uint64 // payload bytes sent to the subscriber, all tracks
	changed func()        // called, without locks held, when the estimate moved
	now     func() time.Time
	// What was sent, for transport-wide feedback (bwe.go); beside bytes,
	// in the one cache line each packet sent touches.
	smu     sync.Mutex
	twccSeq uint16
	sent    []twccSent

	mu           sync.Mutex
	estimate     float64
	sendRate     float64
	rateBytes    uint64
	rateAt       time.Time
	lastIncrease time.Time
	lastDecrease time.Time
	holdUntil    time.Time
	hold         time.Duration
	probing      bool      // the estimate grew since the last cut
	lastProbe    time.Time // the last resume probe (probeLocked)
	lossyAt      time.Time // the last report with loss of lossLow or more
	// The delay-based estimator (bwe.go), from the first transport-wide
	// feedback on; the estimate is the lower of the two.
	delay    *delayEstimator
	arrivals arrivalSpans // the newest packet of each feedback (noteQueueLocked)
	told     float64      // the estimate changed was last called for (tellLocked)
	// settleUntil: loss reports until then span a change of the link
	// (linkChanged) and are not taken as congestion.
	settleUntil time.Time
	// queuedAt: the last delay-based cut with the receiver getting less
	// than queueEvidence of the rate sent, confirmed (congestedLocked);
	// suspectAt: such a cut waiting for its confirmation.
	queuedAt, suspectAt time.Time
}

func newBandwidth(changed func()) *bandwidth {
	return &bandwidth{changed: changed, now: time.Now, estimate: startEstimate, hold: holdStart, sent: make([]twccSent, twccHistory)}
}

// tellLocked reports whether the estimate, which moved from old, moved
// far enough from what the allocator was last woken for to wake it
// again: by a twentieth either way. The delay-based estimate moves a
// little at every transport-wide feedback packet, ten times a second
// per subscriber, and the allocator, which chooses in steps of whole
// layers and runs every allocateInterval anyway, was woken for each:
// 3 % of the server's CPU with 70 subscribers. Every cut by a
// controller is larger than a twentieth. mu must be held.
func (b *bandwidth) tellLocked(old float64) bool {
	cur := b.currentLocked()
	if cur == old || (b.told > 0 && math.Abs(cur-b.told) < b.told/20) {
		return false
	}
	b.told = cur
	return true
}

// current returns the estimate, bit/s: the lower of the loss-based and
// the delay-based ones.
func (b *bandwidth) current() float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.currentLocked()
}

// congested reports whether the loss-based controller (or REMB) cut the
// estimate within the last pauseEvidence, or the delay-based one did
// while the subscriber received less than queueEvidence of what was
// sent. Only then does the allocator pause video that does not fit;
// otherwise it still chooses simulcast layers by the estimate but
// pauses nothing. Neither the start-up guess nor the delay-based
// estimate alone may black out a camera: on a busy host, scheduling
// jitter looks like a growing queue, and pausing video the link could
// carry is worse for a mediation than a lower layer. But waiting for
// loss reports when a queue grows and the receiver gets half of what is
// sent let a camera that did not fit fill a deep buffer for two seconds
// and more, until the buffer dropped the audio as well.
func (b *bandwidth) congested() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.congestedLocked(b.now())
}

func (b *bandwidth) congestedLocked(now time.Time) bool {
	return (!b.lastDecrease.IsZero() && now.Sub(b.lastDecrease) < pauseEvidence) ||
		(!b.queuedAt.IsZero() && now.Sub(b.queuedAt) < pauseEvidence)
}

// pauseEvidence is how long a loss-based cut, or a delay-based one with
// queueEvidence, lets the allocator pause video.
const pauseEvidence = 30 * time.Second

// queueEvidence: a delay-based cut while the link carried (over the last
// half second to second, by transport-wide feedback) less than this
// share of the rate sent is congestion (noteQueueLocked). Jitter delays
// packets but does not stretch a second of them into a second and a
// half.
const queueEvidence = 0.7

func (b *bandwidth) currentLocked() float64 {
	if b.delay != nil {
		return min(b.estimate, b.delay.estimate)
	}
	return b.estimate
}

// linkSettle is how long after the subscriber's link changed (linkChanged)
// its receiver reports are not taken as congestion: a browser reports
// every second, on the packets since its previous report.
const linkSettle = 2 * time.Second

// linkChanged says the subscriber's connection came back or moved to
// another candidate pair (an ICE restart, a network change). The packets
// lost while it was away were lost to the outage, not to congestion:
// the receiver reports that count them must not cut the estimate and
// pause video for seconds after the link is back.
func (b *bandwidth) linkChanged() {
	b.mu.Lock()
	b.settleUntil = b.now().Add(linkSettle)
	b.mu.Unlock()
}

// onLoss takes the fraction of packets a receiver report says were lost.
func (b *bandwidth) onLoss(frac float64) {
	b.mu.Lock()
	now := b.now()
	if now.Before(b.settleUntil) && frac > lossHigh {
		b.mu.Unlock()
		return // lost to the outage the link came back from
	}
	b.measureLocked(now)
	old := b.currentLocked()
	// enforced: the allocator kept what it sends within the estimate
	// (it pauses video only then); otherwise the rate sent is what the
	// loss is about, whatever the estimate says.
	enforced := b.congestedLocked(now)
	if frac >= lossLow {
		b.lossyAt = now
	}
	switch {
	case frac > lossHigh:
		if now.Sub(b.lastDecrease) >= decreaseInterval {
			base := b.estimate
			if b.sendRate > 0 && (!enforced || b.sendRate < base) {
				base = b.sendRate
			}
			if e := min(max(base*(1-0.5*frac), minEstimate), maxEstimate); e < b.estimate || !enforced {
				b.estimate = e
				b.lastDecrease = now
				if b.probing {
					// Growing failed: wait longer before the next try.
					b.hold = min(2*b.hold, holdMax)
					b.probing = false
				}
				b.holdUntil = now.Add(b.hold)
			}
		}
	case frac < lossLow:
		if !enforced && b.sendRate > b.estimate {
			// Carried without loss: the link takes at least that.
			b.estimate = min(b.sendRate, maxEstimate)
		}
		if now.After(b.holdUntil) && now.Sub(b.lastIncrease) >= increaseInterval {
			b.estimate = min(b.estimate*increaseFactor, maxEstimate)
			b.lastIncrease = now
			b.probing = true
		}
		if now.Sub(b.holdUntil) > holdReset {
			b.hold = holdStart
		}
	}
	moved := b.tellLocked(old)
	b.mu.Unlock()
	if moved && b.changed != nil {
		b.changed()
	}
}

// onREMB takes a receiver's own estimate (REMB). A receiver estimates
// from what it receives, so REMB cannot tell that more would fit; below
// what the SFU sends, it says the link is congested, and cuts the
// estimate like loss does.
func (b *bandwidth) onREMB(bps float64) {
	b.mu.Lock()
	now := b.now()
	b.measureLocked(now)
	old := b.currentLocked()
	if b.sendRate > 0 && bps < 0.85*b.sendRate && now.Sub(b.lastDecrease) >= decreaseInterval {
		e := bps
		if b.congestedLocked(now) {
			e = min(e, b.estimate) // else the estimate may be a guess below what the link took
		}
		b.estimate = min(max(e, minEstimate), maxEstimate)
		b.lastDecrease = now
		if b.probing {
			b.hold = min(2*b.hold, holdMax)
			b.probing = false
		}
		b.holdUntil = now.Add(b.hold)
	}
	moved := b.tellLocked(old)
	b.mu.Unlock()
	if moved && b.changed != nil {
		b.changed()
	}
}

// probeLocked is the resume probe: the allocator would use want, more
// than the loss-based estimate allows (a paused video at its lowest
// layer or its rate, or a simulcast layer up), and the estimate is
// raised to it in one step. Growing by increaseFactor per receiver
// report instead, a camera paused by a deep cut needed ten seconds and
// more to fit whole again, and a receiver may stop reporting on streams
// that receive nothing. It probes at most once per hold, once the hold
// after the last cut is over, no report showed loss for lossQuiet, and
// the delay-based half allows as much (setWant lets it probe first);
// loss that follows cuts the estimate again (onLoss), the allocator
// pauses the video again, and the next probe waits twice as long.
func (b *bandwidth) probeLocked(now time.Time, want float64) {
	want = min(want, maxEstimate)
	if want <= b.estimate || now.Before(b.holdUntil) || now.Sub(b.lastProbe) < b.hold || now.Sub(b.lossyAt) < lossQuiet {
		return
	}
	if b.delay != nil && b.delay.estimate < want {
		return
	}
	b.estimate = want
	b.lastProbe, b.lastIncrease = now, now
	b.probing = true
}

// measureLocked updates the rate actually sent.
func (b *bandwidth) measureLocked(now time.Time) {
	if b.rateAt.IsZero() {
		b.rateAt, b.rateBytes = now, b.bytes.Load()
		return
	}
	dt := now.Sub(b.rateAt)
	if dt < 500*time.Millisecond {
		return
	}
	total := b.bytes.Load()
	rate := float64(total-b.rateBytes) * 8 / dt.Seconds()
	if b.sendRate == 0 {
		b.sendRate = rate
	} else {
		b.sendRate = 0.5*b.sendRate + 0.5*rate
	}
	b.rateAt, b.rateBytes = now, total
}

// trackDemand is one track a subscriber receives, as the allocator sees
// it.
type trackDemand struct {
	audio bool
	// rate is an audio or non-simulcast video track's measured bit/s (0
	// not yet measured).
	rate      float64
	simulcast bool
	// rates are a simulcast track's layers, bit/s: 0 not available,
	// negative available but not yet measured.
	rates    [maxLayers]float64
	maxLayer int
	priority int // priorityScreen, prioritySpeaker or priorityOther

	// Results.
	pick   int  // simulcast layer; -1 keeps the current target
	paused bool // video that does not fit: nothing is forwarded
	// flowing (input): the video is forwarded now, not paused for
	// bandwidth; else pausedAt is since when (unix nanoseconds).
	flowing  bool
	pausedAt int64
	cost     float64
}

const (
	priorityScreen = iota
	prioritySpeaker
	priorityOther
)

// audioNeed is what an audio track is given: its measured rate with
// headroom and packet overhead, at least audioFloor.
func audioNeed(rate float64) float64 {
	return max(rate*layerHeadroom+audioOverhead, audioFloor)
}

// lowestLayer is the layer a simulcast track starts from: its lowest
// measured one within the cap, else the lowest available within the cap,
// else (the capped layers are gone) the lowest available at all.
func (t *trackDemand) lowestLayer() int {
	for _, capped := range []bool{true, false} {
		unmeasured := -1
		for l := range maxLayers {
			if capped && l > t.maxLayer {
				break
			}
			switch {
			case t.rates[l] > 0:
				return l
			case t.rates[l] < 0 && unmeasured < 0:
				unmeasured = l
			}
		}
		if unmeasured >= 0 {
			return unmeasured
		}
	}
	return -1
}

// layerCost is what layer l of a simulcast track takes.
func (t *trackDemand) layerCost(l int) float64 {
	return max(t.rates[l], 0) * layerHeadroom
}

// nextLayer is the next measured layer above the pick, within the cap, -1
// if none.
func (t *trackDemand) nextLayer() int {
	for l := t.pick + 1; l <= t.maxLayer && l < maxLayers; l++ {
		if t.rates[l] > 0 {
			return l
		}
	}
	return -1
}

// allocateBudget shares budget (bit/s) among the tracks a subscriber
// receives: audio first, whatever the budget (the only thing allowed past
// it); then every video in priority order gets its lowest layer (its only
// one without simulcast) if that fits, else it is paused; then screen
// shares and the active speaker are upgraded as far as what is left
// allows, in that order, and the other videos take turns a layer at a
// time. Within a priority, video flowing now comes first, so that a
// paused one resumes into what is left, never in place of one flowing;
// then the paused ones, longest paused first, so that each gets its turn
// (one subscribed during congestion too). It returns what the choice spends, and the budget that would let
// it forward more (0 if it forwards all it may): the cheaper of resuming
// the first paused video in that order and the cheapest layer up.
func allocateBudget(budget float64, tracks []trackDemand) (spent, want float64) {
	order := make([]int, 0, len(tracks))
	for i := range tracks {
		t := &tracks[i]
		t.pick, t.paused, t.cost = -1, false, 0
		if t.audio {
			t.cost = audioNeed(t.rate)
			spent += t.cost
			continue
		}
		order = append(order, i)
	}
	sort.SliceStable(order, func(a, b int) bool {
		ta, tb := &tracks[order[a]], &tracks[order[b]]
		if ta.priority != tb.priority {
			return ta.priority < tb.priority
		}
		if ta.flowing != tb.flowing {
			return ta.flowing
		}
		return !ta.flowing && ta.pausedAt < tb.pausedAt
	})
	left := budget - spent
	for _, i := range order {
		t := &tracks[i]
		need := t.rate * layerHeadroom
		if t.simulcast {
			if t.pick = t.lowestLayer(); t.pick < 0 {
				continue // nothing published yet
			}
			need = t.layerCost(t.pick)
		}
		// Hysteresis: a video flowing now keeps flowing while the budget
		// left covers keepShare of it; one paused resumes only once it fits
		// whole. Without it, an estimate hovering at a camera's rate paused
		// and resumed it every few hundred milliseconds, each resume
		// waiting for a keyframe.
		if need > left && (!t.flowing || need*keepShare > left) {
			t.paused, t.pick = true, -1
			continue
		}
		t.cost = need
		left -= need
	}
	upgrade := func(t *trackDemand) bool {
		if !t.simulcast || t.paused || t.pick < 0 {
			return false
		}
		l := t.nextLayer()
		if l < 0 {
			return false
		}
		extra := t.layerCost(l) - t.cost
		if extra > left {
			return false
		}
		left -= extra
		t.pick, t.cost = l, t.layerCost(l)
		return true
	}
	for _, i := range order {
		if tracks[i].priority < priorityOther {
			for upgrade(&tracks[i]) {
			}
		}
	}
	for upgraded := true; upgraded; {
		upgraded = false
		for _, i := range order {
			if tracks[i].priority == priorityOther && upgrade(&tracks[i]) {
				upgraded = true
			}
		}
	}
	// The next step up from here: resuming the first paused video in
	// line (not the cheapest, which would leave a dearer one paused for
	// good), or the cheapest layer up.
	step := math.Inf(1)
	resume := false
	for _, i := range order {
		t := &tracks[i]
		switch {
		case t.paused && resume:
		case t.paused && t.simulcast:
			if l := t.lowestLayer(); l >= 0 {
				step = min(step, t.layerCost(l))
				resume = true
			}
		case t.paused:
			step = min(step, t.rate*layerHeadroom)
			resume = true
		case t.simulcast && t.pick >= 0:
			if l := t.nextLayer(); l >= 0 {
				step = min(step, t.layerCost(l)-t.cost)
			}
		}
	}
	spent = budget - left
	if !math.IsInf(step, 1) {
		want = spent + step
	}
	return spent, want
}

// layerRates returns the rates of up's available layers, negative for
// one not measured yet.
func layerRates(up *upTrack, now int64) [maxLayers]float64 {
	var rates [maxLayers]float64
	for i := range maxLayers {
		l := up.layer(i)
		if l == nil || now-l.lastAt.Load() > int64(layerTimeout) {
			continue
		}
		rates[i] = l.bitrate()
		if rates[i] <= 0 {
			rates[i] = -1
		}
	}
	return rates
}

// share shares the estimate among tracks (allocateBudget) under the
// pause policy: video that does not fit is paused only while the
// estimate is congested (a loss-based cut is recent); otherwise it keeps
// flowing, at its lowest layer. It then tells the estimator what more it
// would use (setWant), which may probe for it. It returns the budget.
func (b *bandwidth) share(tracks []trackDemand) float64 {
	budget := b.current()
	_, want := allocateBudget(budget, tracks)
	if !b.congested() {
		for i := range tracks {
			t := &tracks[i]
			if t.paused {
				t.paused = false
				if t.simulcast {
					t.pick = t.lowestLayer()
				}
			}
		}
	}
	b.setWant(want)
	return budget
}

// allocate shares the peer's estimate among the tracks it receives
// (share): it picks simulcast layers, and pauses or resumes video for
// bandwidth. It runs on allocateLoop, never on the packet path.
func (p *Peer) allocate() {
	now := time.Now().UnixNano()
	speaker := ""
	if s := p.speaker.Load(); s != nil {
		speaker = *s
	}
	p.mu.Lock()
	ups := make([]*upTrack, 0, len(p.subs))
	for up := range p.subs {
		ups = append(ups, up)
	}
	sort.Slice(ups, func(i, j int) bool { return ups[i].id < ups[j].id })
	downs := make([]*downTrack, len(ups))
	tracks := make([]trackDemand, len(ups))
	for i, up := range ups {
		d := p.subs[up].down
		downs[i] = d
		t := &tracks[i]
		t.flowing = !d.bandwidthPaused.Load()
		if !t.flowing {
			t.pausedAt = p.bwPausedAt[d]
		}
		t.priority = priorityOther
		switch {
		case strings.HasSuffix(up.streamID, ScreenStreamSuffix):
			t.priority = priorityScreen
		case up.publisher == speaker:
			t.priority = prioritySpeaker
		}
		switch {
		case up.kind == webrtc.RTPCodecTypeAudio:
			t.audio = true
			if l := up.layer(0); l != nil {
				t.rate = l.bitrate()
			}
		case !up.simulcast:
			if l := up.layer(0); l != nil {
				t.rate = l.bitrate()
			}
		default:
			t.simulcast = true
			t.rates = layerRates(up, now)
			t.maxLayer = maxLayers - 1
			if m, ok := p.maxLayer[up.publisher]; ok {
				t.maxLayer = m
			}
		}
	}
	p.mu.Unlock()
	budget := p.bw.share(tracks)
	pausedAt := make(map[*downTrack]int64, len(downs))
	for i, d := range downs {
		t := &tracks[i]
		if t.audio {
			continue
		}
		if t.paused {
			pausedAt[d] = t.pausedAt
			if t.flowing || t.pausedAt == 0 {
				pausedAt[d] = now
			}
		}
		if t.pick >= 0 {
			d.setTarget(t.pick)
		}
		if d.setBandwidthPaused(t.paused) {
			p.log.Debug("video paused for bandwidth", "track", d.up.id, "paused", t.paused, "estimate", int(budget))
		}
	}
	p.bwPausedAt = pausedAt
}

// noteSpeakers records each subscriber's active speaker, whose video the
// allocator favours.
func (r *Room) noteSpeakers(events []speakerEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range events {
		if p := r.peers[e.subscriber]; p != nil {
			speaker := e.speaker
			p.speaker.Store(&speaker)
			p.reallocate()
		}
	}
}

// allocateLoop re-allocates when the estimate moves, and every
// allocateInterval sends the sender reports and re-allocates, until the
// peer closes.
func (p *Peer) allocateLoop() {
	t := newGridTicker(min(allocateInterval, reportInterval))
	defer t.Stop()
	for {
		select {
		case <-p.done:
			return
		case now := <-t.C:
			t.next(now)
			p.sendReports()
		case <-p.realloc:
		}
		p.allocate()
	}
}

// reallocate asks allocateLoop to run soon. It never blocks.
func (p *Peer) reallocate() {
	select {
	case p.realloc <- struct{}{}:
	default:
	}
}

// SetMaxVideoLayer caps the simulcast layer this participant receives of
// publisher's video (0 the lowest, 2 the highest), for instance when it
// shows that video small. Bandwidth may hold it lower.
func (p *Peer) SetMaxVideoLayer(publisher string, layer int) {
	layer = min(max(layer, 0), maxLayers-1)
	p.mu.Lock()
	p.maxLayer[publisher] = layer
	p.mu.Unlock()
	p.reallocate()
}

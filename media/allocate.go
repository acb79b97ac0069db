package media

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"
)

// Simulcast layer allocation. Each subscriber has a bandwidth estimate
// (bandwidth), and its video tracks published in several layers share it
// (allocate): audio first, then an equal share per video track, then
// what is left upgrades tracks one layer at a time. A subscriber may cap
// the layer it wants of a publisher (SetMaxVideoLayer: a thumbnail needs
// the lowest).

const (
	startEstimate = 1_000_000  // bit/s, before any feedback
	minEstimate   = 100_000    // bit/s
	maxEstimate   = 20_000_000 // bit/s
	audioRate     = 64_000     // bit/s reserved per audio track
	// A layer needs its measured rate plus this headroom.
	layerHeadroom = 1.15
	// Loss above lossHigh cuts the estimate, at most every
	// decreaseInterval (reports lag); below lossLow it grows by
	// increaseFactor, at most every increaseInterval, unless a cut is
	// recent: growth waits holdStart after a cut, doubling up to holdMax
	// each time growing failed again, back to holdStart after holdReset
	// without a cut.
	lossHigh         = 0.10
	lossLow          = 0.02
	increaseFactor   = 1.25
	increaseInterval = 250 * time.Millisecond
	decreaseInterval = 500 * time.Millisecond
	holdStart        = 2 * time.Second
	holdMax          = 30 * time.Second
	holdReset        = 20 * time.Second
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
// up a layer once loss has stayed low, not with padding, and backs off
// for longer each time such a probe fails.
type bandwidth struct {
	bytes   atomic.Uint64 // payload bytes sent to the subscriber, all tracks
	changed func()        // called, without locks held, when the estimate moved
	now     func() time.Time

	mu           sync.Mutex
	estimate     float64
	sendRate     float64
	rateBytes    uint64
	rateAt       time.Time
	lastIncrease time.Time
	lastDecrease time.Time
	holdUntil    time.Time
	hold         time.Duration
	probing      bool // the estimate grew since the last cut
}

func newBandwidth(changed func()) *bandwidth {
	return &bandwidth{changed: changed, now: time.Now, estimate: startEstimate, hold: holdStart}
}

// current returns the estimate, bit/s.
func (b *bandwidth) current() float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.estimate
}

// onLoss takes the fraction of packets a receiver report says were lost.
func (b *bandwidth) onLoss(frac float64) {
	b.mu.Lock()
	now := b.now()
	b.measureLocked(now)
	old := b.estimate
	switch {
	case frac > lossHigh:
		if now.Sub(b.lastDecrease) >= decreaseInterval {
			base := b.estimate
			if b.sendRate > 0 {
				base = min(base, b.sendRate)
			}
			if e := max(base*(1-0.5*frac), minEstimate); e < b.estimate {
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
		if now.After(b.holdUntil) && now.Sub(b.lastIncrease) >= increaseInterval {
			b.estimate = min(b.estimate*increaseFactor, maxEstimate)
			b.lastIncrease = now
			b.probing = true
		}
		if now.Sub(b.lastDecrease) > holdReset {
			b.hold = holdStart
		}
	}
	moved := b.estimate != old
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
	old := b.estimate
	if b.sendRate > 0 && bps < 0.85*b.sendRate && now.Sub(b.lastDecrease) >= decreaseInterval {
		b.estimate = max(min(b.estimate, bps), minEstimate)
		b.lastDecrease = now
		if b.probing {
			b.hold = min(2*b.hold, holdMax)
			b.probing = false
		}
		b.holdUntil = now.Add(b.hold)
	}
	moved := b.estimate != old
	b.mu.Unlock()
	if moved && b.changed != nil {
		b.changed()
	}
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

// layerChoice is one simulcast track to allocate a layer to.
type layerChoice struct {
	rates    [maxLayers]float64 // bit/s of each available layer, 0 if not available
	maxLayer int
	pick     int // result; -1 keeps the current target
}

// chooseLayers shares budget (bit/s) among tracks: each gets the highest
// layer that fits an equal share, else its lowest available one; then
// what is left upgrades tracks in turn, a layer at a time.
func chooseLayers(budget float64, tracks []layerChoice) {
	if len(tracks) == 0 {
		return
	}
	share := budget / float64(len(tracks))
	spent := 0.0
	for i := range tracks {
		t := &tracks[i]
		t.pick = -1
		lowest := -1
		for l := 0; l <= t.maxLayer && l < maxLayers; l++ {
			if t.rates[l] <= 0 {
				continue
			}
			if lowest < 0 {
				lowest = l
			}
			if t.rates[l]*layerHeadroom <= share {
				t.pick = l
			}
		}
		if t.pick < 0 {
			t.pick = lowest
		}
		if t.pick >= 0 {
			spent += t.rates[t.pick] * layerHeadroom
		}
	}
	left := budget - spent
	for upgraded := true; upgraded; {
		upgraded = false
		for i := range tracks {
			t := &tracks[i]
			if t.pick < 0 {
				continue
			}
			for l := t.pick + 1; l <= t.maxLayer && l < maxLayers; l++ {
				if t.rates[l] <= 0 {
					continue
				}
				extra := (t.rates[l] - t.rates[t.pick]) * layerHeadroom
				if extra <= left {
					left -= extra
					t.pick = l
					upgraded = true
				}
				break
			}
		}
	}
}

// layerRates returns the rates of up's available layers.
func layerRates(up *upTrack, now int64) [maxLayers]float64 {
	var rates [maxLayers]float64
	for i := range maxLayers {
		l := up.layer(i)
		if l == nil || now-l.lastAt.Load() > int64(layerTimeout) {
			continue
		}
		rates[i] = l.bitrate()
		if rates[i] <= 0 {
			// Not measured yet: only as a last resort.
			rates[i] = maxEstimate
		}
	}
	return rates
}

// allocate chooses the layer of every simulcast track the peer receives.
func (p *Peer) allocate() {
	budget := p.bw.current()
	now := time.Now().UnixNano()
	p.mu.Lock()
	var downs []*downTrack
	var tracks []layerChoice
	for up, s := range p.subs {
		switch {
		case up.kind == webrtc.RTPCodecTypeAudio:
			budget -= audioRate
		case !up.simulcast:
			if l := up.layer(0); l != nil {
				budget -= l.bitrate()
			}
		default:
			maxLayer := maxLayers - 1
			if m, ok := p.maxLayer[up.publisher]; ok {
				maxLayer = m
			}
			downs = append(downs, s.down)
			tracks = append(tracks, layerChoice{rates: layerRates(up, now), maxLayer: maxLayer})
		}
	}
	p.mu.Unlock()
	chooseLayers(max(budget, 0), tracks)
	for i, d := range downs {
		if tracks[i].pick >= 0 {
			d.setTarget(tracks[i].pick)
		}
	}
}

// allocateLoop re-allocates when the estimate moves and every
// allocateInterval, until the peer closes.
func (p *Peer) allocateLoop() {
	t := time.NewTicker(allocateInterval)
	defer t.Stop()
	for {
		select {
		case <-p.done:
			return
		case <-p.realloc:
		case <-t.C:
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

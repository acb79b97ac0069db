package main

import (
	"math"
	"sync"
	"sync/atomic"
)

// Latency histogram: 20 µs buckets up to 10 ms, 200 µs buckets up to
// 100 ms, 5 ms buckets up to 2 s, and one bucket beyond.
const (
	histFine    = 500 // [0, 10 ms)
	histMid     = 450 // [10 ms, 100 ms)
	histCoarse  = 380 // [100 ms, 2 s)
	histBuckets = histFine + histMid + histCoarse + 1
)

func histBucket(ns int64) int {
	us := ns / 1000
	switch {
	case us < 0:
		return 0
	case us < 10_000:
		return int(us / 20)
	case us < 100_000:
		return histFine + int((us-10_000)/200)
	case us < 2_000_000:
		return histFine + histMid + int((us-100_000)/5000)
	default:
		return histBuckets - 1
	}
}

// histUpperMs is the upper bound of bucket i, in milliseconds.
func histUpperMs(i int) float64 {
	switch {
	case i < histFine:
		return float64(i+1) * 0.02
	case i < histFine+histMid:
		return 10 + float64(i-histFine+1)*0.2
	case i < histBuckets-1:
		return 100 + float64(i-histFine-histMid+1)*5
	default:
		return math.Inf(1)
	}
}

// ltHist counts forwarding latencies; any goroutine may add.
type ltHist struct {
	b [histBuckets]atomic.Uint64
}

func (h *ltHist) add(ns int64) { h.b[histBucket(ns)].Add(1) }

func (h *ltHist) snapshot() []uint64 {
	out := make([]uint64, histBuckets)
	for i := range h.b {
		out[i] = h.b[i].Load()
	}
	return out
}

func histDiff(a, b []uint64) []uint64 {
	out := make([]uint64, len(b))
	for i := range b {
		out[i] = b[i] - a[i]
	}
	return out
}

// histQuantile returns the q quantile (0..1) of counts in milliseconds,
// as the upper bound of its bucket; NaN when empty. Beyond 2 s it
// answers 2000.
func histQuantile(counts []uint64, q float64) float64 {
	var total uint64
	for _, c := range counts {
		total += c
	}
	if total == 0 {
		return math.NaN()
	}
	rank := uint64(math.Ceil(q * float64(total)))
	if rank == 0 {
		rank = 1
	}
	var cum uint64
	for i, c := range counts {
		cum += c
		if cum >= rank {
			if i == histBuckets-1 {
				return 2000
			}
			return histUpperMs(i)
		}
	}
	return 2000
}

// histLatency is the latency figures a report gives of counts.
func histLatency(counts []uint64) ltLatency {
	return ltLatency{P50: nfloat(histQuantile(counts, 0.5)), P90: nfloat(histQuantile(counts, 0.9)),
		P99: nfloat(histQuantile(counts, 0.99)), Max: nfloat(histMax(counts))}
}

// histMax is the upper bound of the highest non-empty bucket.
func histMax(counts []uint64) float64 {
	for i := len(counts) - 1; i >= 0; i-- {
		if counts[i] > 0 {
			if i == histBuckets-1 {
				return 2000
			}
			return histUpperMs(i)
		}
	}
	return math.NaN()
}

// ltStream is what one participant received of one published track (of
// one simulcast layer of it, each layer counting its own packets). Loss
// is counted on the publisher's own packet counter: expected is how far
// the newest counter advanced, unique how many distinct counters arrived.
// A subscriber switched to this layer from another resumes the count
// (resume): the counters the layer advanced by while another was
// forwarded are not expected.
type ltStream struct {
	sub *ltClient
	pub *ltPubTrack

	mu       sync.Mutex
	counts   ltStreamCounts
	started  bool
	highest  uint32
	mask     uint64 // bit i: highest-i arrived
	lastSend int64
	lastTr   int64   // transit time of the previous packet
	jitter   float64 // RFC 3550 interarrival jitter, ns
	pauseGap int64   // a send-time gap beyond this (with a counter gap) is a pause, not loss
	resumed  bool    // switched to: the next counter ahead restarts the count
}

type ltStreamCounts struct {
	Received, Unique, Expected, Bytes, Dups, Late, Pauses uint64
	// Switches is how many times the subscriber was switched to this
	// simulcast layer from another.
	Switches uint64
}

// resume notes that the subscriber was switched to this stream's layer
// from another one: the next packet ahead of the newest counter so far
// counts as one expected packet, whatever the gap. So a layer forwarded
// again after a while is not charged with what it sent meanwhile, and
// neither with what it lost at the end of its previous run, nor a
// packet lost right at the switch (which a receiver cannot tell from
// one not forwarded).
func (s *ltStream) resume() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts.Switches++
	s.resumed = s.started
}

func (s *ltStream) add(counter uint32, sent, now int64, n int) {
	transit := now - sent
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts.Received++
	s.counts.Bytes += uint64(n)
	if !s.started {
		s.started = true
		s.highest, s.mask = counter, 1
		s.counts.Expected++
		s.counts.Unique++
		s.lastSend, s.lastTr = sent, transit
		return
	}
	d := transit - s.lastTr
	if d < 0 {
		d = -d
	}
	s.jitter += (float64(d) - s.jitter) / 16
	s.lastTr = transit
	if ahead := int32(counter - s.highest); ahead > 0 {
		gap := uint32(ahead)
		resumed := s.resumed
		s.resumed = false
		switch {
		case resumed:
			// Switched to this layer: a new run of it starts here.
			s.counts.Expected++
		case gap > 1 && s.pauseGap > 0 && sent-s.lastSend > s.pauseGap:
			// Forwarding was paused (a caucus): what was not sent to us
			// is not lost.
			s.counts.Pauses++
			s.counts.Expected++
		default:
			s.counts.Expected += uint64(gap)
		}
		switch {
		case resumed:
			// Older counters were not expected in the new run: one that
			// arrives late counts as a duplicate.
			s.mask = ^uint64(0)
		case gap >= 64:
			s.mask = 1
		default:
			s.mask = s.mask<<gap | 1
		}
		s.highest, s.lastSend = counter, sent
		s.counts.Unique++
		return
	}
	back := s.highest - counter
	switch {
	case back >= 64:
		s.counts.Late++
	case s.mask&(1<<back) != 0:
		s.counts.Dups++
	default:
		s.mask |= 1 << back
		s.counts.Unique++
	}
}

func (s *ltStream) snapshot() (ltStreamCounts, float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts, s.jitter
}

package media

import (
	"sync"
	"sync/atomic"
	"time"
)

// Stats is a snapshot of what the SFU forwards, for monitoring (the
// concord_media_* metrics). The gauges (Rooms to ForwardedTracks) are the
// current numbers; the counters (PacketsIn on) are totals since the SFU
// started and never decrease: a track that ends adds its counts to
// totals the SFU keeps, so a scrape after a participant left never sees
// a counter go backwards, which Prometheus would take for a restart.
//
// The counters are kept per track and summed by SFU.Stats, so the
// forwarding path never touches a counter another core also writes.
// Packets counted in the last moments of a closing track (a write
// already under way when it stopped, a late RTCP packet) may be missed;
// nothing is ever counted twice.
type Stats struct {
	Rooms int // media rooms open
	Peers int // participants connected to a room (each has two connections)
	// PublishedTracks are tracks participants send the SFU (a simulcast
	// track counts once); ForwardedTracks are subscribers' copies of
	// them that are not paused by a permission or a mute.
	PublishedTracks int
	ForwardedTracks int

	// PacketsIn and BytesIn are the media packets received from
	// publishers, all simulcast layers included, and their payload bytes
	// (RTP headers and padding-only probes are not counted).
	PacketsIn, BytesIn uint64
	// PacketsOut and BytesOut are the packets written to subscribers,
	// retransmissions excluded, and their payload bytes.
	PacketsOut, BytesOut uint64
	// Retransmitted are the packets sent to subscribers again, answering
	// their NACKs.
	Retransmitted uint64
	// NACKsIn are the sequence numbers subscribers reported lost;
	// NACKsOut the ones the SFU reported lost to publishers.
	NACKsIn, NACKsOut uint64
	// PLIsIn are the keyframe requests (PLI or FIR) subscribers sent;
	// KeyframeRequests the PLIs the SFU sent publishers (throttled, so
	// many requests from subscribers may make one).
	PLIsIn, KeyframeRequests uint64
	// BandwidthPaused are the subscribers' video tracks held back now
	// because the subscriber's estimated bandwidth cannot carry them
	// (its audio and its other tracks go on); BandwidthPauses counts the
	// times a track was paused so. Under load, a node whose media is
	// delayed makes its subscribers' estimates fall: these rise then.
	BandwidthPaused int
	BandwidthPauses uint64
	// Dropped are the packets not forwarded, by reason.
	Dropped Drops
	// ReceiveDropped are packets received over a direct UDP pair and
	// dropped before any track saw them, by reason.
	ReceiveDropped ReceiveDrops
	// ForwardDelay is the time from a datagram's arrival at the media
	// socket (the kernel's receive timestamp) until the reader that took
	// it had handled it and sent what it forwards: the SFU's own share of
	// the forwarding latency, its time queued in the socket included.
	// Linux only; empty elsewhere.
	ForwardDelay DelayHistogram
}

// DelayBounds are the upper bounds of a DelayHistogram's buckets.
var DelayBounds = [...]time.Duration{
	100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond,
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond,
}

// DelayHistogram counts delays: Counts[i] those at most DelayBounds[i]
// (and above the bound before), the last those above every bound.
type DelayHistogram struct {
	Counts [len(DelayBounds) + 1]uint64
	Sum    time.Duration
}

// Count is the number of delays counted.
func (h DelayHistogram) Count() uint64 {
	var n uint64
	for _, c := range h.Counts {
		n += c
	}
	return n
}

// delayCounter is a DelayHistogram that readers add to.
type delayCounter struct {
	counts [len(DelayBounds) + 1]atomic.Uint64
	sum    atomic.Int64
}

func (d *delayCounter) observe(delay time.Duration) {
	delay = max(delay, 0) // the wall clock stepped back
	i := 0
	for i < len(DelayBounds) && delay > DelayBounds[i] {
		i++
	}
	d.counts[i].Add(1)
	d.sum.Add(int64(delay))
}

// addTo adds the counts to h.
func (d *delayCounter) addTo(h *DelayHistogram) {
	for i := range d.counts {
		h.Counts[i] += d.counts[i].Load()
	}
	h.Sum += time.Duration(d.sum.Load())
}

// ReceiveDrops counts received packets dropped on the direct read path
// (directin.go) before reaching a track.
type ReceiveDrops struct {
	// Behind: the node is not keeping up with what it receives: the
	// kernel dropped datagrams because a media socket's queue was full
	// (its reader held up), or a connection's SRTP or SRTCP session
	// buffer was full (the packets pion's session still reads).
	Behind uint64
	// NotAuthentic: the packet failed SRTP or SRTCP authentication, or
	// was a replay (also a publisher's retransmission of a packet that
	// had arrived after all).
	NotAuthentic uint64
}

// Each calls f for every reason, with its metric label ("behind",
// "not_authentic"), at zero too.
func (d ReceiveDrops) Each(f func(reason string, n uint64)) {
	f("behind", d.Behind)
	f("not_authentic", d.NotAuthentic)
}

// Drops counts packets the SFU did not forward to a subscriber, or could
// not retransmit, by reason. Packets a subscriber was never meant to get
// (another simulcast layer, a paused track) are not drops.
type Drops struct {
	// QueueFull: the subscriber's queue was full (its connection is
	// slower than the media).
	QueueFull uint64
	// KeyframeWait: video held back until a keyframe, after a loss or a
	// resume, so that the subscriber's decoder restarts on a clean picture.
	KeyframeWait uint64
	// TooLate: a packet arriving too far behind the newest one forwarded
	// (a late retransmission or heavy reordering upstream).
	TooLate uint64
	// NotCached: a NACKed packet no longer in the retransmission cache.
	NotCached uint64
}

// Each calls f for every reason, with the reason's metric label
// ("queue_full", "keyframe_wait", "too_late", "not_cached"); every reason
// is listed, at zero too, so that a dashboard's series exist from the
// start.
func (d Drops) Each(f func(reason string, n uint64)) {
	f("queue_full", d.QueueFull)
	f("keyframe_wait", d.KeyframeWait)
	f("too_late", d.TooLate)
	f("not_cached", d.NotCached)
}

func (d *Drops) add(o Drops) {
	d.QueueFull += o.QueueFull
	d.KeyframeWait += o.KeyframeWait
	d.TooLate += o.TooLate
	d.NotCached += o.NotCached
}

// dropCounters are one downTrack's drops. queueFull and keyframeWait are
// written by the publisher's read loop, tooLate by the downTrack's writer.
type dropCounters struct {
	queueFull    atomic.Uint64
	keyframeWait atomic.Uint64
	tooLate      atomic.Uint64
}

// total is every packet handed to the downTrack and not written.
func (c *dropCounters) total() uint64 {
	return c.queueFull.Load() + c.keyframeWait.Load() + c.tooLate.Load()
}

// Stats returns the SFU's current numbers. It takes one short lock,
// which only adding and removing tracks also take, and reads each live
// track's counters: call it once per scrape, not per packet.
func (s *SFU) Stats() Stats {
	st := s.stats.snapshot()
	if s.direct != nil {
		st.ReceiveDropped = s.direct.receiveDrops()
	}
	if s.batch != nil {
		st.ForwardDelay = s.batch.forwardDelays()
	}
	return st
}

// statsRegistry lists the live tracks and keeps the totals of those that
// ended. A nil registry (benchmarks building tracks without an SFU) does
// nothing.
type statsRegistry struct {
	rooms, peers atomic.Int64

	mu      sync.Mutex // guards the fields below; never held while taking room or peer locks
	ups     map[*upTrack]struct{}
	downs   map[*downTrack]struct{}
	retired Stats // counters of ended tracks; its gauges are unused
}

func newStatsRegistry() *statsRegistry {
	return &statsRegistry{ups: map[*upTrack]struct{}{}, downs: map[*downTrack]struct{}{}}
}

func (r *statsRegistry) roomOpened() {
	if r != nil {
		r.rooms.Add(1)
	}
}

func (r *statsRegistry) roomClosed() {
	if r != nil {
		r.rooms.Add(-1)
	}
}

func (r *statsRegistry) peerAdded() {
	if r != nil {
		r.peers.Add(1)
	}
}

func (r *statsRegistry) peerRemoved() {
	if r != nil {
		r.peers.Add(-1)
	}
}

func (r *statsRegistry) addUp(u *upTrack) {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.ups[u] = struct{}{}
	r.mu.Unlock()
}

// retireUp moves u's counts into the totals, once, in the same critical
// section that unlists it, so that a snapshot counts them exactly once.
func (r *statsRegistry) retireUp(u *upTrack) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.ups[u]; !ok {
		return
	}
	delete(r.ups, u)
	addUpCounters(&r.retired, u)
}

func (r *statsRegistry) addDown(d *downTrack) {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.downs[d] = struct{}{}
	r.mu.Unlock()
}

// retireDown is retireUp for a subscriber's track.
func (r *statsRegistry) retireDown(d *downTrack) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.downs[d]; !ok {
		return
	}
	delete(r.downs, d)
	addDownCounters(&r.retired, d)
}

func (r *statsRegistry) snapshot() Stats {
	if r == nil {
		return Stats{}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.retired
	st.Rooms = int(max(r.rooms.Load(), 0))
	st.Peers = int(max(r.peers.Load(), 0))
	st.PublishedTracks = len(r.ups)
	for u := range r.ups {
		addUpCounters(&st, u)
	}
	for d := range r.downs {
		addDownCounters(&st, d)
		// isPaused takes the downTrack's queue lock, never held while
		// taking r.mu.
		if !d.isPaused() {
			st.ForwardedTracks++
		}
		if d.bandwidthPaused.Load() {
			st.BandwidthPaused++
		}
	}
	return st
}

func addUpCounters(st *Stats, u *upTrack) {
	for i := range maxLayers {
		if l := u.layer(i); l != nil {
			st.PacketsIn += l.packetsIn.Load()
			st.BytesIn += l.bytesIn.Load()
		}
	}
	st.NACKsOut += u.nacksOut.Load()
	st.KeyframeRequests += u.plisOut.Load()
}

func addDownCounters(st *Stats, d *downTrack) {
	st.PacketsOut += d.sent.Load()
	st.BytesOut += d.sentBytes.Load()
	st.Retransmitted += d.resent.Load()
	st.NACKsIn += d.nacksIn.Load()
	st.PLIsIn += d.plisIn.Load()
	st.BandwidthPauses += d.bwPauses.Load()
	st.Dropped.add(Drops{
		QueueFull:    d.dropped.queueFull.Load(),
		KeyframeWait: d.dropped.keyframeWait.Load(),
		TooLate:      d.dropped.tooLate.Load(),
		NotCached:    d.nackMissed.Load(),
	})
}

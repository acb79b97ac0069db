package media

import (
	"encoding/binary"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
)

// Delay-based bandwidth estimation from transport-wide congestion control
// feedback (TWCC, draft-holmer-rmcat-transport-wide-cc-extensions), the
// delay-based half of Google congestion control. The SFU stamps a
// transport-wide sequence number on every packet it sends a subscriber
// (twccConn, the interceptor closest to SRTP, so retransmissions are
// stamped too) and remembers when it sent it; the subscriber's feedback
// says when each arrived. A growing one-way delay gradient over packet
// groups (trendline) means a queue is building: the estimate falls before
// any packet is lost.
//
// pion's own implementation (interceptor/pkg/gcc with pkg/cc) is not used:
// it allocates per packet (an attributes map, the marshalled extension,
// the feedback adapter's history) and serialises every stream of a
// connection through its pacer's lock. Here the per-packet work is a short
// critical section and a few stores into a fixed ring.

const (
	// twccHistory is how many sent packets are remembered for feedback:
	// seconds at a few hundred packets a second. A power of two.
	twccHistory = 4096
	// burstTime groups packets sent this close into one packet group.
	burstTime = 5 * time.Millisecond
	// Trendline filter (libwebrtc's defaults).
	trendWindow    = 20
	trendSmoothing = 0.9
	trendGain      = 4.0
	// Overuse detector: adaptive threshold, ms.
	thresholdStart = 12.5
	thresholdMin   = 6.0
	thresholdMax   = 600.0
	thresholdUp    = 0.0087
	thresholdDown  = 0.039
	overuseTime    = 10.0 // ms the trend must stay above the threshold
	// AIMD rate control: a cut to delayBeta of the rate received, at most
	// every delayDecrease; multiplicative growth far from the last
	// congestion point, additive (about a packet per round trip) near it;
	// never grown beyond 1.5 times what is received.
	delayBeta      = 0.85
	delayDecrease  = 300 * time.Millisecond
	growthPerSec   = 0.08
	additivePerSec = 50_000.0 // bit/s per second
	// ackedWindow is over what the received rate is measured, in
	// ackedBucket slices.
	ackedBucket  = 50 * time.Millisecond
	ackedBuckets = 20
	// Probing: when the allocator wants more than the estimate allows and
	// no overuse was seen for probeQuiet, the estimate is raised to what it
	// wants (it then switches a layer up or resumes a video). The probe
	// succeeds once the rate received reached probeReach of it without
	// overuse; an overuse before fails it, and the next probe waits twice
	// as long (probeWaitStart up to probeWaitMax). Neither within
	// probeTimeout: the probe ends and the estimate is capped as usual.
	probeQuiet     = time.Second
	probeReach     = 0.75
	probeTimeout   = 4 * time.Second
	probeWaitStart = time.Second
	probeWaitMax   = 8 * time.Second
	// liftQuiet: with no overuse for that long, the estimate is never
	// below the rate received (libwebrtc starts from the throughput after
	// 5 s likewise).
	liftQuiet = 5 * time.Second
)

type usage uint8

const (
	usageNormal usage = iota
	usageOver
	usageUnder
)

// twccSent is one stamped packet, in 8 bytes: the ring's slot for each
// packet sent is a cache miss (a subscriber's ring is not in cache
// when its next packet comes), and 8 slots share a line.
type twccSent struct {
	seq  uint16
	size uint16 // bytes; 0: an empty slot, or one already reported received
	at   uint32 // Unix microseconds, modulo 2^32 (sentAt)
}

// sentAt is when s was sent, in Unix nanoseconds truncated to the
// microsecond, given now (Unix nanoseconds) within 2^31 microseconds
// (35 minutes; the ring holds seconds) of it, either way: the wall
// clock may have stepped back since.
func (s *twccSent) sentAt(now int64) int64 {
	nowUs := now / 1000
	return (nowUs - int64(int32(uint32(nowUs)-s.at))) * 1000
}

// packetGroup is packets sent within burstTime of the first.
type packetGroup struct {
	valid                         bool
	firstSend, lastSend, lastRecv int64 // nanoseconds; send and arrival clocks differ
}

// delayEstimator turns (send time, arrival time, size) of each packet
// acknowledged, in sequence order, into an estimate. It holds no clock:
// every call says when it is, so tests drive it with synthetic time.
type delayEstimator struct {
	cur, prev packetGroup

	// Trendline of the smoothed accumulated delay over arrival time.
	firstRecv   int64
	acc         float64 // ms
	smoothed    float64 // ms
	xs, ys      [trendWindow]float64
	n, head     int
	deltas      int
	trend       float64
	prevTrend   float64
	threshold   float64
	lastThresh  int64 // arrival time of the last threshold update
	overTime    float64
	overCount   int
	usage       usage
	lastOveruse int64 // local time

	// Received rate, from arrival times.
	buckets  [ackedBuckets]struct{ slot, bytes int64 }
	lastSlot int64
	slots    int64 // slots seen since the first, capped at ackedBuckets

	// Rate control.
	estimate     float64
	capacity     float64 // received rate at the last overuse, 0 unknown
	lastChange   int64
	lastDecrease int64
	want         float64 // what the allocator would use, 0 nothing more
	probeAt      int64   // a probe is running since, 0 none
	probeTarget  float64
	probeWait    time.Duration
	nextProbe    int64
}

func newDelayEstimator(start float64) *delayEstimator {
	return &delayEstimator{estimate: start, threshold: thresholdStart, overTime: -1, probeWait: probeWaitStart}
}

// packet takes one acknowledged packet: sent at send, arrived at recv
// (the receiver's clock), size bytes.
func (e *delayEstimator) packet(send, recv int64, size int) {
	e.addAcked(recv, size)
	switch {
	case !e.cur.valid:
		e.cur = packetGroup{valid: true, firstSend: send, lastSend: send, lastRecv: recv}
		return
	case send < e.cur.firstSend:
		return // reordered across groups
	case send-e.cur.firstSend <= int64(burstTime):
		e.cur.lastSend = max(e.cur.lastSend, send)
		e.cur.lastRecv = max(e.cur.lastRecv, recv)
		return
	}
	if e.prev.valid {
		sendDelta := e.cur.lastSend - e.prev.lastSend
		recvDelta := e.cur.lastRecv - e.prev.lastRecv
		if recvDelta >= 0 && sendDelta > 0 {
			e.updateTrend(float64(recvDelta-sendDelta)/1e6, float64(sendDelta)/1e6, e.cur.lastRecv)
		}
	}
	e.prev = e.cur
	e.cur = packetGroup{valid: true, firstSend: send, lastSend: send, lastRecv: recv}
}

// updateTrend adds one group's delay variation d (ms) and runs the
// overuse detector.
func (e *delayEstimator) updateTrend(d, sendDelta float64, recv int64) {
	if e.deltas == 0 {
		e.firstRecv = recv
	}
	e.deltas = min(e.deltas+1, 1000)
	e.acc += d
	e.smoothed = trendSmoothing*e.smoothed + (1-trendSmoothing)*e.acc
	i := (e.head + e.n) % trendWindow
	if e.n == trendWindow {
		i = e.head
		e.head = (e.head + 1) % trendWindow
	} else {
		e.n++
	}
	e.xs[i], e.ys[i] = float64(recv-e.firstRecv)/1e6, e.smoothed
	if e.n == trendWindow {
		e.trend = e.slope()
	}
	e.detect(sendDelta, recv)
}

// slope fits a line through the window (least squares).
func (e *delayEstimator) slope() float64 {
	var mx, my float64
	for i := range e.n {
		mx += e.xs[i]
		my += e.ys[i]
	}
	mx /= float64(e.n)
	my /= float64(e.n)
	var num, den float64
	for i := range e.n {
		dx := e.xs[i] - mx
		num += dx * (e.ys[i] - my)
		den += dx * dx
	}
	if den == 0 {
		return e.trend
	}
	return num / den
}

// detect classifies the trend against the adaptive threshold.
func (e *delayEstimator) detect(sendDelta float64, recv int64) {
	modified := float64(min(e.deltas, 60)) * e.trend * trendGain
	switch {
	case modified > e.threshold:
		if e.overTime < 0 {
			e.overTime = sendDelta / 2
		} else {
			e.overTime += sendDelta
		}
		e.overCount++
		if e.overTime > overuseTime && e.overCount > 1 && e.trend >= e.prevTrend {
			e.overTime, e.overCount = 0, 0
			e.usage = usageOver
		}
	case modified < -e.threshold:
		e.overTime, e.overCount = -1, 0
		e.usage = usageUnder
	default:
		e.overTime, e.overCount = -1, 0
		e.usage = usageNormal
	}
	e.prevTrend = e.trend
	// Adapt the threshold, slowly up and faster down, ignoring spikes.
	if e.lastThresh == 0 {
		e.lastThresh = recv
	}
	abs := math.Abs(modified)
	if abs <= e.threshold+15 {
		k := thresholdUp
		if abs < e.threshold {
			k = thresholdDown
		}
		dt := min(float64(recv-e.lastThresh)/1e6, 100)
		e.threshold = min(max(e.threshold+k*(abs-e.threshold)*dt, thresholdMin), thresholdMax)
	}
	e.lastThresh = recv
}

func (e *delayEstimator) addAcked(recv int64, size int) {
	slot := recv / int64(ackedBucket)
	if e.slots == 0 {
		e.lastSlot, e.slots = slot, 1
	}
	if slot > e.lastSlot {
		e.slots = min(e.slots+slot-e.lastSlot, ackedBuckets)
		e.lastSlot = slot
	}
	if e.lastSlot-slot >= ackedBuckets {
		return
	}
	b := &e.buckets[slot%ackedBuckets]
	if b.slot != slot {
		b.slot, b.bytes = slot, 0
	}
	b.bytes += int64(size)
}

// acked is the rate received over the last second, bit/s; 0 before
// any feedback.
func (e *delayEstimator) acked() float64 {
	if e.slots == 0 {
		return 0
	}
	var bytes int64
	for _, b := range e.buckets {
		if e.lastSlot-b.slot < ackedBuckets && b.slot <= e.lastSlot {
			bytes += b.bytes
		}
	}
	return float64(bytes) * 8 / (float64(e.slots) * ackedBucket.Seconds())
}

// update runs the rate controller after a feedback, at local time now.
func (e *delayEstimator) update(now int64) {
	acked := e.acked()
	switch e.usage {
	case usageOver:
		e.lastOveruse = now
		if now-e.lastDecrease >= int64(delayDecrease) {
			base := e.estimate
			if acked > 0 {
				base = acked
			}
			e.estimate = max(min(delayBeta*base, e.estimate), minEstimate)
			e.capacity = base
			e.lastDecrease = now
			if e.probeAt != 0 {
				e.probeWait = min(2*e.probeWait, probeWaitMax)
				e.probeAt = 0
			}
			e.nextProbe = now + int64(e.probeWait)
		}
		e.lastChange = now
	case usageUnder:
		e.lastChange = now // a queue drains: hold
	default:
		if e.lastChange == 0 {
			e.lastChange = now
		}
		dt := min(float64(now-e.lastChange)/1e9, 1)
		e.lastChange = now
		grown := e.estimate * (1 + growthPerSec*dt)
		if e.capacity > 0 && e.estimate > 0.9*e.capacity && e.estimate < 1.5*e.capacity {
			grown = e.estimate + additivePerSec*dt
		} else if e.capacity > 0 && e.estimate >= 1.5*e.capacity {
			e.capacity = 0 // the link changed
		}
		if acked > 0 && e.probeAt == 0 {
			// Never grow past what the link showed it takes.
			grown = min(grown, max(e.estimate, 1.5*acked+10_000))
		}
		if e.slots >= ackedBuckets/2 && now-e.lastOveruse >= int64(liftQuiet) {
			// What arrived (over half a second at least) without a queue
			// building for liftQuiet, the link takes: the estimate is not
			// left below it (the start-up guess, while the allocator
			// forwards more than it).
			grown = max(grown, acked)
		}
		e.estimate = min(max(e.estimate, grown), maxEstimate)
	}
	e.checkProbe(now, acked)
}

// checkProbe ends a probe or starts one.
func (e *delayEstimator) checkProbe(now int64, acked float64) {
	if e.probeAt != 0 {
		switch {
		case acked >= probeReach*e.probeTarget:
			e.probeAt = 0
			e.probeWait = probeWaitStart
			e.nextProbe = now
		case now-e.probeAt >= int64(probeTimeout):
			e.probeAt = 0
			e.nextProbe = now + int64(e.probeWait)
		}
		return
	}
	if e.want > e.estimate && now >= e.nextProbe && e.usage != usageOver && now-e.lastOveruse >= int64(probeQuiet) {
		e.probeAt = now
		e.probeTarget = min(e.want, maxEstimate)
		e.estimate = e.probeTarget
	}
}

// noteQueueLocked takes e's update at at: a cut then, made while the
// packets the subscriber reported over the last half second to second
// arrived over a span longer than 1/queueEvidence of the span they were
// sent over (the link carried less than queueEvidence of the rate sent:
// stretched), is congestion (congestedLocked). A queue that grows while
// the receiver gets far less than is sent is the link, not a busy
// host's jitter. Span against span, of the newest packet each feedback
// reported: a receiver that leaves packets out of its feedback (pion's
// read path records each stream as its reader gets to it, and a stream
// not read yet, at a connection's start, not at all) reports less than
// it got, which a rate received against the rate sent took for a queue.
// And the stretch must still be there queueConfirm later: a receiver
// that stops reading for a few hundred milliseconds (a phone, or the
// load generator, short of CPU) stretches its arrivals too, then reads
// what waited in a burst, and a link's queue does not. mu must be held.
func (b *bandwidth) noteQueueLocked(e *delayEstimator, at time.Time) {
	switch {
	case b.suspectAt.IsZero():
		if e.lastDecrease == at.UnixNano() && b.arrivals.stretched() {
			b.suspectAt = at
		}
	case at.Sub(b.suspectAt) >= queueConfirm || at.Before(b.suspectAt):
		if b.arrivals.stretched() {
			b.queuedAt = at
		}
		b.suspectAt = time.Time{}
	}
}

// queueConfirm: see noteQueueLocked.
const queueConfirm = 500 * time.Millisecond

// arrivalSpans keeps, for the last feedback packets, the newest packet
// each reported: when it was sent (the SFU's clock) and when it arrived
// (the receiver's).
type arrivalSpans struct {
	ring [32]sentArrived // about three seconds of feedback
	n    int             // samples kept, up to len(ring)
	next int
	// The newest packet of the feedback being read (ackLocked).
	cur sentArrived
}

type sentArrived struct{ send, recv int64 }

// note takes one packet of the feedback being read.
func (a *arrivalSpans) note(send, recv int64) {
	if send > a.cur.send {
		a.cur = sentArrived{send, recv}
	}
}

// done ends a feedback packet: its newest packet becomes a sample.
func (a *arrivalSpans) done() {
	if a.cur.send == 0 {
		return
	}
	if a.n > 0 {
		last := a.ring[(a.next+len(a.ring)-1)%len(a.ring)]
		if a.cur.send <= last.send {
			a.cur = sentArrived{}
			return // nothing newer than the last feedback's newest
		}
	}
	a.ring[a.next] = a.cur
	a.next = (a.next + 1) % len(a.ring)
	a.n = min(a.n+1, len(a.ring))
	a.cur = sentArrived{}
}

// stretched reports whether what arrived over the last half second to
// second (the receiver's clock) had been sent over less than
// queueEvidence of that time.
func (a *arrivalSpans) stretched() bool {
	if a.n < 2 {
		return false
	}
	newest := a.ring[(a.next+len(a.ring)-1)%len(a.ring)]
	var from sentArrived
	for i := 2; i <= a.n; i++ {
		s := a.ring[(a.next+len(a.ring)-i)%len(a.ring)]
		if newest.recv-s.recv > int64(time.Second) {
			break
		}
		from = s
	}
	sendSpan, recvSpan := newest.send-from.send, newest.recv-from.recv
	return from.send != 0 && recvSpan >= int64(500*time.Millisecond) && float64(sendSpan) < queueEvidence*float64(recvSpan)
}

// sentPacket stamps the next transport-wide sequence number: it records
// a packet of size bytes sent now. It allocates nothing.
func (b *bandwidth) sentPacket(size int) uint16 {
	at := b.now().UnixNano()
	b.smu.Lock()
	seq := b.twccSeq
	b.twccSeq++
	b.sent[seq%twccHistory] = twccSent{seq: seq, size: uint16(min(size, math.MaxUint16)), at: uint32(at / 1000)}
	b.smu.Unlock()
	return seq
}

// onTWCC takes a transport-wide feedback packet from the subscriber,
// as its bytes (twccStatus).
func (b *bandwidth) onTWCC(p []byte) {
	b.mu.Lock()
	if b.delay == nil {
		b.delay = newDelayEstimator(b.estimate)
	}
	e := b.delay
	old := b.currentLocked()
	at := b.now()
	now := at.UnixNano()
	b.smu.Lock()
	twccStatus(p, func(seq uint16, at int64) { b.ackLocked(e, seq, at, now) })
	b.smu.Unlock()
	b.arrivals.done()
	e.update(now)
	b.noteQueueLocked(e, at)
	moved := b.tellLocked(old)
	b.mu.Unlock()
	if moved && b.changed != nil {
		b.changed()
	}
}

// onCompound passes the transport-wide feedback packets of a compound
// RTCP packet from the subscriber to onTWCC.
func (b *bandwidth) onCompound(compound []byte) {
	it := rtcpIter{compound}
	for {
		pt, format, p, ok := it.next()
		if !ok {
			return
		}
		if pt == rtcpRTPFB && format == fmtTWCC {
			b.onTWCC(p)
		}
	}
}

// ackLocked feeds the arrival of packet seq at time recv (the
// receiver's clock) to e; now is the sender's clock, Unix nanoseconds.
// Each packet counts once, the first time a feedback reports it
// received: its slot is emptied then. A packet reported after newer
// ones (reordered on the way, or recorded late by a receiver that takes
// each stream's packets in its own time, as pion's read path does) still
// counts toward the rate received; the delay detector skips it as
// reordered. Counting only reports newer than the newest seen, the
// estimator saw a pion-based receiver get half to two thirds of what it
// did, and the queue evidence paused its video. smu and mu must be held.
func (b *bandwidth) ackLocked(e *delayEstimator, seq uint16, recv, now int64) {
	s := &b.sent[seq%twccHistory]
	if s.size != 0 && s.seq == seq {
		send := s.sentAt(now)
		e.packet(send, recv, int(s.size))
		b.arrivals.note(send, recv)
		s.size = 0
	}
}

// setWant tells the estimator what the allocator would use if it could
// (0: nothing more), and probes toward it when the link looks clear:
// the delay-based half first, then the loss-based one (probeLocked),
// which probes only as far as the delay-based half allows. It also
// measures the rate sent, so that the first receiver report finds it
// measured. The allocator calls it every allocateInterval at least.
func (b *bandwidth) setWant(want float64) {
	b.mu.Lock()
	now := b.now()
	b.measureLocked(now)
	old := b.currentLocked()
	if b.delay != nil {
		b.delay.want = want
		b.delay.checkProbe(now.UnixNano(), b.delay.acked())
	}
	b.probeLocked(now, want)
	moved := b.tellLocked(old)
	b.mu.Unlock()
	if moved && b.changed != nil {
		b.changed()
	}
}

// twccFactory builds one twccConn per PeerConnection. The SFU attaches a
// subscriber's bandwidth estimator to its sub connection's (attach);
// other connections pass packets through untouched.
type twccFactory struct {
	mu    sync.Mutex
	conns map[string]*twccConn // PeerConnection id ->
}

func newTWCCFactory() *twccFactory { return &twccFactory{conns: map[string]*twccConn{}} }

func (f *twccFactory) NewInterceptor(id string) (interceptor.Interceptor, error) {
	c := &twccConn{factory: f, id: id}
	f.mu.Lock()
	f.conns[id] = c
	f.mu.Unlock()
	return c, nil
}

// attach makes PeerConnection id stamp what it sends and feed b.
func (f *twccFactory) attach(id string, b *bandwidth) {
	f.mu.Lock()
	c := f.conns[id]
	f.mu.Unlock()
	if c != nil {
		c.bw.Store(b)
	}
}

// twccConn is one PeerConnection's interceptor.
type twccConn struct {
	interceptor.NoOp
	factory *twccFactory
	id      string
	bw      atomic.Pointer[bandwidth]
}

// BindLocalStream stamps the stream's packets when the subscriber
// negotiated the transport-wide sequence number extension.
func (c *twccConn) BindLocalStream(info *interceptor.StreamInfo, w interceptor.RTPWriter) interceptor.RTPWriter {
	for _, e := range info.RTPHeaderExtensions {
		if e.URI == sdp.TransportCCURI && e.ID > 0 && e.ID < 256 {
			return &twccWriter{conn: c, id: uint8(e.ID), next: w}
		}
	}
	return w
}

// BindRTCPReader passes the transport-wide feedback read to the
// estimator, read in place (rtcpraw.go).
func (c *twccConn) BindRTCPReader(r interceptor.RTCPReader) interceptor.RTCPReader {
	return interceptor.RTCPReaderFunc(func(buf []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n, a, err := r.Read(buf, a)
		bw := c.bw.Load()
		if err != nil || bw == nil {
			return n, a, err
		}
		bw.onCompound(buf[:n])
		return n, a, nil
	})
}

func (c *twccConn) Close() error {
	c.factory.mu.Lock()
	delete(c.factory.conns, c.id)
	c.factory.mu.Unlock()
	return nil
}

// twccWriter stamps one local stream. Its writes are serialised by the
// downTrack's wmu (new packets and retransmissions alike), which buf
// relies on: the header keeps a reference to it until SRTP marshals it.
type twccWriter struct {
	conn *twccConn
	id   uint8
	next interceptor.RTPWriter
	buf  [2]byte
}

func (w *twccWriter) Write(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
	if b := w.conn.bw.Load(); b != nil {
		seq := b.sentPacket(h.MarshalSize() + 4 + len(payload))
		binary.BigEndian.PutUint16(w.buf[:], seq)
		if err := h.SetExtension(w.id, w.buf[:]); err != nil {
			return 0, err
		}
	}
	return w.next.Write(h, payload, a)
}

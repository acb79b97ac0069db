package media

import (
	"encoding/binary"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

const (
	// packetSize bounds an RTP packet's payload; the receive MTU is
	// smaller.
	packetSize = 1500
	// Queue depths per subscriber and track: about half a second of
	// media at the rates Concord's clients send. A subscriber that falls
	// further behind loses packets rather than delaying the others.
	videoQueue = 128
	audioQueue = 32
	// keyframeWait is how long a video subscriber that lost packets to a
	// full queue waits for a keyframe before forwarding resumes anyway.
	keyframeWait = time.Second
	// stopWait bounds how long stopping a subscription waits for a write
	// already in progress on the subscriber's connection.
	stopWait = 250 * time.Millisecond
	// maxReorder is how far behind the newest packet a late one (a
	// retransmission, or reordered upstream) may be and still be
	// forwarded; maxJump is a sequence jump taken as a restart of the
	// publisher's stream.
	maxReorder = 1024
	maxJump    = 4096
)

// packetMeta is what the read loop parsed from one packet, shared by all
// of the track's subscribers.
type packetMeta struct {
	seq      uint16
	ts       uint32
	at       int64 // arrival, unix nanoseconds
	marker   bool
	layer    uint8 // simulcast layer, 0 the lowest
	keyframe bool  // the first packet of a VP8 keyframe
	hasLevel bool  // level carries an RFC 6464 audio level byte
	level    uint8 // V bit and level, as on the wire
}

// slot is one queued packet; its payload buffer is reused.
type slot struct {
	meta      packetMeta
	resync    bool   // packets were dropped just before this one
	newSource bool   // the first packet of another layer
	epoch     uint32 // the downTrack's epoch when queued
	payload   []byte
}

// downTrack is one subscriber's copy of an upTrack. It implements
// webrtc.TrackLocal. Packets reach it through a bounded queue that the
// publisher's read loop fills without waiting; a goroutine of its own
// rewrites each packet (SSRC, payload type, sequence number, timestamp,
// header extensions) and writes it to the subscriber's connection. A
// subscriber whose connection is slow only loses its own packets.
type downTrack struct {
	// The fields every forwarded packet touches come first, together:
	// with tens of subscribers a downTrack is never in cache when its
	// next packet arrives, and each cache line it spans is a miss.
	// Spread over the struct (between the retransmission buffer and the
	// counters) they cost twelve lines a packet; here six.

	bound atomic.Bool
	// bandwidthPaused: the subscriber's bandwidth does not fit this video
	// (allocate.go); nothing is queued until it is resumed.
	bandwidthPaused atomic.Bool
	// inline: the subscriber's connection runs over UDP, so push may
	// write itself (see push); set by the Peer from the selected ICE pair.
	inline  atomic.Bool
	stopped atomic.Bool

	// The queue; the publisher's read loop pushes, run pops.
	qmu          sync.Mutex
	closed       bool
	gap          bool // packets were dropped since the last queued one
	waitKeyframe bool // video: dropping until the next keyframe
	// strictKeyframe: waitKeyframe has no keyframeWait fallback (after a
	// pause the subscriber's decoder has nothing to build on).
	strictKeyframe bool
	// paused: forwarding nothing, the track still negotiated (pause).
	// epoch counts pauses; run drops what was queued before the latest.
	paused      bool
	switched    bool // the next queued packet starts the current layer
	epoch       uint32
	head, count int
	// Simulcast: the layer forwarded (-1 before the first), the one to
	// switch to at its next keyframe (and askedAt, below, when that
	// keyframe was last asked for).
	current, target int
	up              *upTrack

	// The writer; run holds wmu while it writes one packet.
	wmu        sync.Mutex
	writer     webrtc.TrackLocalWriter
	ssrc       uint32
	pt         uint8
	levelExtID uint8
	twccID     uint8
	twccBuf    [2]byte
	levelBuf   [1]byte
	// conn is the subscriber connection's direct path (direct.go); nil
	// in benchmarks. A packet a socket reader forwards to a connection
	// that writes directly skips pion's writer and the interceptors
	// (writeInto), stamped here with the transport-wide sequence number
	// (extension twccID) as the twcc interceptor would have.
	conn *directConn
	bw   *bandwidth // the subscriber's, nil in benchmarks
	// roc follows the stream's SRTP rollover counter, for packets
	// sealed without pion (seal.go); handed is the direct output that
	// last sealed one, whose context must learn the counter before
	// pion's path encrypts the stream again (handBack).
	handed *directOut
	roc    rollover
	rw     rewriter
	// Counters, read by SFU.Stats (stats.go). Each is written by this
	// downTrack's own goroutines or its publisher's read loop, never by
	// every subscriber's at once, so they cost no shared cache line.
	sent      atomic.Uint64 // packets written
	sentBytes atomic.Uint64 // payload bytes written
	// For sender reports (report.go): the newest packet's timestamp and
	// arrival, in microseconds since d was created.
	clock   atomic.Uint64
	created int64        // unix nanoseconds
	cache   []sentPacket // retransmission (nack.go); nil for audio
	// direct is the slot push writes from without queueing (the
	// publisher's buffer as its payload), under wmu.
	direct slot
	hdr    rtp.Header
	exts   [4]rtp.Extension // backing array for hdr.Extensions

	// The rest.
	subscriber string
	streamID   string
	log        *slog.Logger
	ring       []slot
	waitSince  int64 // when waitKeyframe began, unix nanoseconds
	askedAt    int64
	wake       chan struct{}
	done       chan struct{}
	stopOnce   sync.Once

	// Retransmission (nack.go).
	raws     *rawWriters
	senderID string
	raw      interceptor.RTPWriter
	rtxSSRC  uint32
	rtxPT    uint8
	rtxSeq   uint16
	rtxHdr   rtp.Header
	rtxBuf   [packetSize + 2]byte
	nacks    [maxPendingNacks]uint16 // guarded by qmu
	nnacks   int                     // guarded by qmu

	ssrcA atomic.Uint32 // ssrc, for the RTCP reader

	dropped    dropCounters  // packets not forwarded, by reason
	resent     atomic.Uint64 // retransmissions written
	nackMissed atomic.Uint64 // NACKed packets no longer cached
	nacksIn    atomic.Uint64 // sequence numbers the subscriber NACKed
	plisIn     atomic.Uint64 // PLIs and FIRs from the subscriber
	bwPauses   atomic.Uint64 // times forwarding paused for bandwidth

	// stats, when set, is the SFU's registry this downTrack's counters
	// are retired into when it stops; nil in benchmarks.
	stats *statsRegistry
}

var _ webrtc.TrackLocal = (*downTrack)(nil)

func newDownTrack(up *upTrack, subscriber string, raws *rawWriters, log *slog.Logger) *downTrack {
	n := audioQueue
	if up.kind == webrtc.RTPCodecTypeVideo {
		n = videoQueue
	}
	d := &downTrack{
		up:         up,
		subscriber: subscriber,
		streamID:   up.streamID,
		log:        log,
		ring:       make([]slot, n),
		wake:       make(chan struct{}, 1),
		done:       make(chan struct{}),
		rw:         rewriter{clockRate: up.codec.ClockRate},
		created:    time.Now().UnixNano(),
		raws:       raws,
	}
	if up.simulcast {
		d.current, d.target = -1, 0
	}
	if up.kind == webrtc.RTPCodecTypeVideo {
		d.cache = make([]sentPacket, sentCacheSize)
		d.rtxSeq = uint16(rand.Uint32())
	}
	go d.run()
	return d
}

// Bind is called by pion when the subscriber's connection negotiated the
// track; it picks the subscriber's payload type and header extension ids.
func (d *downTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	for _, c := range ctx.CodecParameters() {
		if !strings.EqualFold(c.MimeType, d.up.codec.MimeType) {
			continue
		}
		d.wmu.Lock()
		d.ssrc = uint32(ctx.SSRC())
		d.pt = uint8(c.PayloadType)
		d.writer = ctx.WriteStream()
		d.senderID = ctx.ID()
		d.raw = nil
		d.rtxSSRC = uint32(ctx.SSRCRetransmission())
		d.rtxPT = rtxPayloadType(ctx.CodecParameters(), c.PayloadType)
		d.levelExtID, d.twccID = 0, 0
		for _, e := range ctx.HeaderExtensions() {
			if e.URI == sdp.AudioLevelURI && e.ID > 0 && e.ID < 15 {
				d.levelExtID = uint8(e.ID)
			}
			if e.URI == sdp.TransportCCURI && e.ID > 0 && e.ID < 256 {
				d.twccID = uint8(e.ID)
			}
		}
		d.wmu.Unlock()
		d.ssrcA.Store(uint32(ctx.SSRC()))
		d.bound.Store(true)
		d.up.requestKeyframe(d.wantedLayer())
		return c, nil
	}
	return webrtc.RTPCodecParameters{}, webrtc.ErrUnsupportedCodec
}

// Unbind is called by pion when the track is removed. It must not wait
// for a write in progress.
func (d *downTrack) Unbind(webrtc.TrackLocalContext) error {
	d.bound.Store(false)
	return nil
}

func (d *downTrack) ID() string                { return d.up.id }
func (d *downTrack) RID() string               { return "" }
func (d *downTrack) StreamID() string          { return d.streamID }
func (d *downTrack) Kind() webrtc.RTPCodecType { return d.up.kind }

// push queues one packet for this subscriber. It is called by the
// publisher's read loop, never blocks and allocates nothing; the payload
// is copied. A full queue drops the packet; video then waits for the
// next keyframe, so the subscriber's decoder resumes on a clean picture.
func (d *downTrack) push(m *packetMeta, payload []byte, out *outbox) {
	if !d.bound.Load() || d.bandwidthPaused.Load() {
		return
	}
	d.qmu.Lock()
	if d.closed || d.paused {
		d.qmu.Unlock()
		return
	}
	if d.up.simulcast && int(m.layer) != d.current {
		// Another layer: switch to it at its keyframe if it is the target.
		if int(m.layer) != d.target {
			d.qmu.Unlock()
			return
		}
		if !m.keyframe {
			ask := m.at-d.askedAt >= int64(keyframeInterval)
			if ask {
				d.askedAt = m.at
			}
			target := d.target
			d.qmu.Unlock()
			if ask {
				d.up.requestKeyframe(target)
			}
			return
		}
		d.switched = d.current >= 0
		d.current = int(m.layer)
		d.waitKeyframe, d.strictKeyframe = false, false
	}
	if d.waitKeyframe {
		if !m.keyframe && (d.strictKeyframe || m.at-d.waitSince < int64(keyframeWait)) {
			// Ask again in case the request or its answer was lost.
			ask := m.at-d.askedAt >= int64(keyframeInterval)
			if ask {
				d.askedAt = m.at
			}
			layer := d.wantedLayerLocked()
			d.qmu.Unlock()
			d.dropped.keyframeWait.Add(1)
			if ask {
				d.up.requestKeyframe(layer)
			}
			return
		}
		d.waitKeyframe, d.strictKeyframe = false, false
	}
	// Over UDP with nothing queued and no write in progress, write the
	// packet straight from the publisher's buffer: no copy into the
	// queue. TryLock under qmu cannot deadlock (it never waits), and a
	// pause, which takes wmu, waits for this write.
	if d.count == 0 && d.inline.Load() && d.wmu.TryLock() {
		s := &d.direct
		d.fillLocked(s, m)
		s.payload = payload
		d.qmu.Unlock()
		d.writeLocked(s, out)
		s.payload = nil    // the publisher's buffer is reused
		d.drainLocked(out) // what another layer queued meanwhile
		d.wmu.Unlock()
		return
	}
	if d.count == len(d.ring) {
		d.gap = true
		video := d.up.kind == webrtc.RTPCodecTypeVideo
		if video && !d.waitKeyframe {
			d.waitKeyframe, d.waitSince = true, m.at
		}
		layer := d.current
		d.qmu.Unlock()
		d.dropped.queueFull.Add(1)
		if video {
			d.up.requestKeyframe(max(layer, 0))
		}
		return
	}
	s := &d.ring[(d.head+d.count)%len(d.ring)]
	if s.payload == nil {
		s.payload = make([]byte, 0, packetSize) // this slot's first packet
	}
	d.fillLocked(s, m)
	s.payload = append(s.payload[:0], payload...)
	d.count++
	d.qmu.Unlock()
	// Over UDP a write does not wait for the subscriber (the kernel drops
	// rather than blocks), so the publisher's read loop writes the packet
	// itself unless a write is in progress: no goroutine hand-off per
	// packet, which cost more than the write. Over TCP, or while the
	// writer goroutine is busy, the writer goroutine takes it.
	if d.inline.Load() && d.wmu.TryLock() {
		d.drainLocked(out)
		d.wmu.Unlock()
		return
	}
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// fillLocked gives s the packet m with the stream state it starts from
// (a gap or a source switch just before it, the current epoch), which
// it consumes; qmu must be held.
func (d *downTrack) fillLocked(s *slot, m *packetMeta) {
	s.meta = *m
	s.resync = d.gap
	s.newSource = d.switched
	s.epoch = d.epoch
	d.gap, d.switched = false, false
}

// wantedLayer is the layer this subscriber needs keyframes of.
func (d *downTrack) wantedLayer() int {
	if !d.up.simulcast {
		return 0
	}
	d.qmu.Lock()
	defer d.qmu.Unlock()
	return d.wantedLayerLocked()
}

func (d *downTrack) wantedLayerLocked() int {
	if !d.up.simulcast {
		return 0
	}
	if d.current < 0 || d.target != d.current {
		return d.target
	}
	return d.current
}

// pause stops forwarding to this subscriber while its connection keeps
// the track negotiated: nothing queued before, and nothing retransmitted,
// is written from the time it returns (with stop's stopWait exception)
// until resume. The caller detaches d from its upTrack first.
func (d *downTrack) pause() {
	d.qmu.Lock()
	d.paused = true
	d.epoch++
	d.gap = true // the next packet continues the sequence without a hole
	d.nnacks = 0
	d.waitKeyframe, d.strictKeyframe = false, false
	d.qmu.Unlock()
	d.waitWrite()
}

// resume forwards again after pause, without renegotiation. The outgoing
// sequence continues where it stopped and the timestamp by the source's
// elapsed time (rewriter, resync); video waits for a keyframe, asked for
// at once, so the subscriber's decoder never gets a broken reference.
func (d *downTrack) resume() {
	now := time.Now().UnixNano()
	video := d.up.kind == webrtc.RTPCodecTypeVideo
	d.qmu.Lock()
	d.paused = false
	d.gap = true
	if video && d.up.keyframe != nil {
		d.waitKeyframe, d.strictKeyframe, d.waitSince, d.askedAt = true, true, now, now
	}
	layer := d.wantedLayerLocked()
	d.qmu.Unlock()
	if video {
		d.up.requestKeyframe(layer)
	}
}

// isPaused reports whether d is paused.
func (d *downTrack) isPaused() bool {
	d.qmu.Lock()
	defer d.qmu.Unlock()
	return d.paused
}

// setTarget chooses the simulcast layer this subscriber should receive;
// the switch happens at that layer's next keyframe, which it asks for.
func (d *downTrack) setTarget(layer int) {
	if !d.up.simulcast {
		return
	}
	d.qmu.Lock()
	changed := d.target != layer
	d.target = layer
	if changed {
		d.askedAt = time.Now().UnixNano()
	}
	d.qmu.Unlock()
	if changed {
		d.up.requestKeyframe(layer)
	}
}

// layers returns the layer forwarded and the one wanted.
func (d *downTrack) layers() (current, target int) {
	d.qmu.Lock()
	defer d.qmu.Unlock()
	return d.current, d.target
}

// run writes queued packets to the subscriber until stop.
func (d *downTrack) run() {
	for {
		select {
		case <-d.wake:
		case <-d.done:
			return
		}
		d.resendPending()
		d.wmu.Lock()
		d.drainLocked(nil)
		d.wmu.Unlock()
	}
}

// drainLocked writes the queued packets, into out when not nil. Only a
// holder of wmu takes packets off the queue, so the writer goroutine
// and an inline write from push never write the same packet. wmu must
// be held.
func (d *downTrack) drainLocked(out *outbox) {
	for !d.stopped.Load() {
		d.qmu.Lock()
		if d.count == 0 {
			d.qmu.Unlock()
			return
		}
		s := &d.ring[d.head] // push never touches the head slot while count > 0
		// Checked under wmu, which pause waits for.
		live := !d.paused && s.epoch == d.epoch
		d.qmu.Unlock()
		if live {
			d.writeLocked(s, out)
		}
		d.qmu.Lock()
		d.head = (d.head + 1) % len(d.ring)
		d.count--
		if d.count == 0 {
			// Empty: start again at the first slot, so that a queue that
			// rarely holds more than a packet or two (writes inline, over
			// UDP) only ever grows the payload buffers of its first slots,
			// not of all videoQueue of them.
			d.head = 0
		}
		d.qmu.Unlock()
	}
}

// writeLocked rewrites one packet for this subscriber and writes it:
// into out, the send batch of the socket reader running the fan-out,
// when the connection writes directly, else through pion. wmu must be
// held.
func (d *downTrack) writeLocked(s *slot, out *outbox) {
	if d.writer == nil || !d.bound.Load() {
		return
	}
	seq, ts, ok := d.rw.rewrite(&s.meta, s.resync, s.newSource)
	if !ok {
		d.dropped.tooLate.Add(1)
		return
	}
	h := &d.hdr
	h.Version = 2
	h.Padding = false
	h.Marker = s.meta.marker
	h.PayloadType = d.pt
	h.SequenceNumber = seq
	h.Timestamp = ts
	h.SSRC = d.ssrc
	h.CSRC = h.CSRC[:0]
	h.Extension = false
	h.ExtensionProfile = 0
	h.Extensions = d.exts[:0]
	if d.levelExtID != 0 && s.meta.hasLevel {
		d.levelBuf[0] = s.meta.level
		_ = h.SetExtension(d.levelExtID, d.levelBuf[:])
	}
	roc := d.roc.sent(seq)
	var err error
	if o := d.directOut(out); o != nil && fitsSlot(h, len(s.payload)+8) {
		err = d.writeInto(o, out, h, s.payload, roc)
	} else {
		d.handBack()
		_, err = d.writer.WriteRTP(h, s.payload)
	}
	if err == nil {
		d.sent.Add(1)
		d.sentBytes.Add(uint64(len(s.payload)))
		d.noteClock()
		if d.bw != nil {
			d.bw.bytes.Add(uint64(len(s.payload)))
		}
		if d.cache != nil {
			d.rememberLocked(seq, ts, s.meta.marker, &s.meta)
		}
	}
}

// directOut returns the subscriber connection's direct path when the
// downTrack writes to it itself (writeInto): the connection writes
// directly, and either out, the send batch of the socket reader running
// the fan-out, belongs to its socket group, or (out nil) the packet can
// be sealed without pion. Nil: pion's writer, through the interceptors.
func (d *downTrack) directOut(out *outbox) *directOut {
	if d.conn == nil {
		return nil
	}
	o := d.conn.out.Load()
	if o == nil || (out != nil && o.conn != out.c) || (out == nil && o.seal == nil) {
		return nil
	}
	return o
}

// writeInto stamps the transport-wide sequence number, as the twcc
// interceptor does on pion's path (the +4 is the extension's room), and
// writes the packet, its rollover counter roc, directly: into the
// reader's send batch out, or through the shared batch when out is nil.
func (d *downTrack) writeInto(o *directOut, out *outbox, h *rtp.Header, payload []byte, roc uint32) error {
	if d.twccID != 0 && d.bw != nil {
		seq := d.bw.sentPacket(h.MarshalSize() + 4 + len(payload))
		binary.BigEndian.PutUint16(d.twccBuf[:], seq)
		if err := h.SetExtension(d.twccID, d.twccBuf[:]); err != nil {
			return err
		}
	}
	if o.seal != nil {
		d.handed = o // pion's context does not see the counter move
	}
	if err := o.writeStream(out, h, payload, roc); err != nil {
		return err
	}
	d.conn.written.Add(1)
	return nil
}

// handBack tells pion's SRTP context the stream's rollover counter
// before pion's path encrypts the stream again, after packets sealed
// without it: pion's own state has not seen them. wmu must be held.
func (d *downTrack) handBack() {
	if o := d.handed; o != nil {
		d.handed = nil
		o.ctxMu.Lock()
		o.ctx.SetROC(d.ssrc, d.roc.current())
		o.ctxMu.Unlock()
	}
}

// stop ends forwarding to this subscriber: nothing is queued or written
// afterwards. With wait, it first waits for a write already in progress,
// so that once it returns no packet of the track is handed to the
// subscriber's connection any more. A connection blocked for longer than
// stopWait (TCP back-pressure) is not waited for: its write began before
// stop was called, and nothing newer follows it.
func (d *downTrack) stop(wait bool) {
	d.stopOnce.Do(func() {
		d.stopped.Store(true)
		d.qmu.Lock()
		d.closed = true
		d.qmu.Unlock()
		close(d.done)
		if wait {
			d.waitWrite()
		}
		// After the wait, so that the write it waited for is counted.
		d.stats.retireDown(d)
	})
}

// waitWrite waits for a write in progress, at most stopWait.
func (d *downTrack) waitWrite() {
	deadline := time.Now().Add(stopWait)
	for !d.wmu.TryLock() {
		if time.Now().After(deadline) {
			d.log.Warn("subscriber connection blocked; stopped without waiting for its write")
			return
		}
		time.Sleep(time.Millisecond)
	}
	d.wmu.Unlock()
}

// readRTCP drains the subscriber's RTCP for this track and passes keyframe
// requests to the publisher. It returns when the sender is stopped.
func (d *downTrack) readRTCP(sender *webrtc.RTPSender) {
	buf := make([]byte, rtcpReadSize)
	for {
		n, _, err := sender.Read(buf)
		if err != nil {
			return
		}
		d.onRTCP(buf[:n])
	}
}

// rtcpReadSize is the largest RTCP packet read.
const rtcpReadSize = 1500

// onRTCP acts on a compound RTCP packet from the subscriber (read in
// place: rtcpraw.go). pion gives the whole compound to every stream it
// names, so feedback about another of the subscriber's streams is
// skipped: a NACK for the video's sequence numbers must not make the
// audio retransmit.
func (d *downTrack) onRTCP(b []byte) {
	ssrc := d.ssrcA.Load()
	it := rtcpIter{b}
	for {
		pt, format, p, ok := it.next()
		if !ok {
			return
		}
		switch {
		case pt == rtcpPSFB && (format == fmtPLI && mediaIs(p, ssrc) || format == fmtFIR && firNames(p, ssrc)):
			d.plisIn.Add(1)
			if !d.isPaused() {
				d.up.requestKeyframe(d.wantedLayer())
			}
		case pt == rtcpRTPFB && format == fmtNACK && mediaIs(p, ssrc):
			var n rtcp.TransportLayerNack
			if n.Unmarshal(p) == nil {
				d.nack(&n)
			}
		case pt == rtcpRR && d.bw != nil && d.up.kind == webrtc.RTPCodecTypeVideo:
			reportBlocks(p, format, func(of uint32, fractionLost uint8) {
				if of == ssrc {
					d.bw.onLoss(float64(fractionLost) / 256)
				}
			})
		case pt == rtcpPSFB && format == fmtAFB && d.bw != nil:
			var r rtcp.ReceiverEstimatedMaximumBitrate
			if r.Unmarshal(p) == nil {
				d.bw.onREMB(float64(r.Bitrate))
			}
		}
	}
}

// rewriter maps a source's sequence numbers and timestamps onto one
// subscriber's continuous outgoing stream. The outgoing stream starts at
// random values, stays gapless across packets the SFU chose not to
// forward, and continues smoothly when the source changes.
type rewriter struct {
	clockRate uint32

	started    bool
	seqOffset  uint16 // in - out
	tsOffset   uint32 // in - out
	hi         uint16 // newest incoming sequence number since the last resync
	floor      uint16 // incoming sequence numbers older than this are dropped
	lastOutSeq uint16
	lastOutTS  uint32
	lastAt     int64
}

// rewrite returns the outgoing sequence number and timestamp of a packet,
// or ok false to drop it. resync says the SFU dropped packets just before
// this one (the outgoing sequence continues without a gap); newSource says
// the packet comes from a different stream than the previous one (the
// timestamp is also re-based, on the time elapsed).
func (r *rewriter) rewrite(m *packetMeta, resync, newSource bool) (seq uint16, ts uint32, ok bool) {
	switch {
	case !r.started:
		r.started = true
		r.seqOffset = m.seq - uint16(rand.Uint32())
		r.tsOffset = m.ts - rand.Uint32()
		r.restartAt(m)
	case newSource:
		r.seqOffset = m.seq - (r.lastOutSeq + 1)
		r.tsOffset = m.ts - (r.lastOutTS + r.elapsedTicks(m.at))
		r.restartAt(m)
	case resync:
		r.seqOffset = m.seq - (r.lastOutSeq + 1)
		r.restartAt(m)
	default:
		ahead := m.seq - r.hi
		back := r.hi - m.seq
		switch {
		case ahead < 0x8000 && ahead >= maxJump, ahead >= 0x8000 && back >= maxJump:
			// The source restarted its numbering: continue after what the
			// subscriber has, as after a switch.
			return r.rewrite(m, false, true)
		case ahead >= 0x8000 && (back > r.hi-r.floor || back > maxReorder):
			return 0, 0, false // older than what may still be forwarded
		}
	}
	seq, ts = m.seq-r.seqOffset, m.ts-r.tsOffset
	if seqNewer(m.seq, r.hi) {
		r.hi = m.seq
		r.lastOutSeq, r.lastOutTS, r.lastAt = seq, ts, m.at
		if r.hi-r.floor > maxReorder {
			r.floor = r.hi - maxReorder
		}
	}
	return seq, ts, true
}

func (r *rewriter) restartAt(m *packetMeta) {
	r.hi, r.floor = m.seq, m.seq
	r.lastOutSeq = m.seq - r.seqOffset
	r.lastOutTS = m.ts - r.tsOffset
	r.lastAt = m.at
}

// elapsedTicks is the time since the last packet written, in clock ticks,
// at least one.
func (r *rewriter) elapsedTicks(at int64) uint32 {
	if r.lastAt == 0 || at <= r.lastAt || r.clockRate == 0 {
		return 1
	}
	ticks := uint64(at-r.lastAt) * uint64(r.clockRate) / uint64(time.Second)
	if ticks == 0 {
		return 1
	}
	return uint32(ticks)
}

// setBandwidthPaused pauses or resumes forwarding for bandwidth, and
// reports whether that changed anything. Resumed video waits for a
// keyframe, which it asks for, and continues the subscriber's sequence
// numbers without a gap.
func (d *downTrack) setBandwidthPaused(paused bool) bool {
	if d.bandwidthPaused.Swap(paused) == paused {
		return false
	}
	if paused {
		d.bwPauses.Add(1)
		return true
	}
	d.qmu.Lock()
	d.gap = true
	if d.up.kind == webrtc.RTPCodecTypeVideo {
		d.waitKeyframe, d.waitSince = true, time.Now().UnixNano()
	}
	d.qmu.Unlock()
	d.up.requestKeyframe(d.wantedLayer())
	return true
}

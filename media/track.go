package media

import (
	"errors"
	"io"
	"log/slog"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/concord-odr/concord/media/h264"
)

// rtpReader is where a layer's packets come from: a *webrtc.TrackRemote
// in production.
type rtpReader interface {
	Read(b []byte) (int, interceptor.Attributes, error)
}

const (
	// keyframeInterval is the shortest time between two keyframe requests
	// the SFU sends a publisher for one layer.
	keyframeInterval = 500 * time.Millisecond
	// maxLayers is the most simulcast encodings a track may have.
	maxLayers = 3
	// rateInterval is how often layer bit rates are measured.
	rateInterval = 500 * time.Millisecond
)

// layer is one RTP stream of a track: the track itself, or one of its
// simulcast encodings (0 the lowest).
type layer struct {
	index int
	rid   string
	src   rtpReader
	ssrc  uint32
	nacks *nackGenerator // video only
	cache *packetCache   // video only: recent packets, for retransmission
	pkt   rtp.Packet     // handle's, under hmu
	hmu   sync.Mutex     // held by handle's callers: the read loop, the direct read path
	// unbind, when set, returns the layer's stream from the direct read
	// path (directin.go) to pion's when its read loop ends.
	unbind func()

	bytes      atomic.Uint64 // payload bytes since the last rate measurement
	packetsIn  atomic.Uint64 // media packets received, for SFU.Stats
	bytesIn    atomic.Uint64 // their payload bytes, for SFU.Stats
	lastAt     atomic.Int64  // last arrival, unix nanoseconds
	keyframeAt atomic.Int64  // arrival of the latest keyframe, unix nanoseconds
	rate       atomic.Uint64 // bit/s, float64 bits

	lastKeyframeReq int64 // rtcpLoop only
	keyframeWanted  int64 // rtcpLoop only: when a pending request was made, 0 if none
}

func (l *layer) bitrate() float64 { return math.Float64frombits(l.rate.Load()) }

// upTrack is one track a participant publishes, in one layer or in up to
// three simulcast layers. Each layer's read loop parses each packet once
// and hands it to the downTracks of the subscribers currently allowed to
// receive the track; each downTrack keeps the layer it forwards. Handing
// over is a copy into the downTrack's own queue: it never waits for a
// subscriber's connection.
type upTrack struct {
	id        string // track id, unique within the room
	publisher string // participant id
	// streamID is the MediaStream id subscribers get: the publisher's id,
	// with ScreenStreamSuffix for a screen share.
	streamID string
	kind     webrtc.RTPCodecType
	codec    webrtc.RTPCodecCapability
	// keyframe recognises the first packet of a keyframe in the codec's
	// payload; nil for audio.
	keyframe  func([]byte) bool
	simulcast bool // published in several layers
	// levelExtID is the publisher's id of the RFC 6464 audio level header
	// extension, 0 when it did not negotiate one.
	levelExtID uint8
	writeRTCP  func([]rtcp.Packet) error // to the publisher
	log        *slog.Logger

	layers [maxLayers]atomic.Pointer[layer]

	lmu     sync.Mutex // guards running and ended
	running int        // layer read loops
	ended   bool       // the last read loop ended

	mu    sync.RWMutex
	downs []*downTrack // copy-on-write; the read loops fan out under RLock

	// level accumulates audio levels between two reads by the room's
	// active speaker detector.
	level levelMeter

	// Counters for SFU.Stats, written by rtcpLoop only.
	nacksOut atomic.Uint64 // sequence numbers NACKed to the publisher
	plisOut  atomic.Uint64 // PLIs sent to the publisher
	// stats, when set, is the SFU's registry this track is listed in
	// while a layer is read, and its counters retired into after; nil in
	// benchmarks.
	stats *statsRegistry
	// out, when set, is the SFU's UDP socket, held open around a fan-out
	// so that its writes leave in one system call.
	out *batchConn

	keyframeWant atomic.Uint32 // layers to send a PLI for, a bit each
	keyframeReq  chan struct{}
	nackKick     chan struct{} // a read loop saw a gap: NACKs are due soon
	rtcpWakes    atomic.Uint64 // rtcpLoop's timer wake-ups, for tests
	done         chan struct{} // closed when the last read loop ends
}

func newUpTrack(id, publisher string, kind webrtc.RTPCodecType, codec webrtc.RTPCodecCapability, log *slog.Logger) *upTrack {
	return &upTrack{
		id:          id,
		publisher:   publisher,
		streamID:    publisher,
		kind:        kind,
		codec:       codec,
		keyframe:    keyframeDetector(codec.MimeType),
		log:         log,
		keyframeReq: make(chan struct{}, 1),
		nackKick:    make(chan struct{}, 1),
		done:        make(chan struct{}),
	}
}

// keyframeDetector returns the keyframe test for a video codec, nil for
// one the SFU does not forward.
func keyframeDetector(mime string) func([]byte) bool {
	switch {
	case strings.EqualFold(mime, webrtc.MimeTypeVP8):
		return vp8Keyframe
	case strings.EqualFold(mime, webrtc.MimeTypeH264):
		return h264.Keyframe
	}
	return nil
}

// newLayer returns layer index of u, to be read from src.
func (u *upTrack) newLayer(index int, rid string, src rtpReader, ssrc uint32) *layer {
	l := &layer{index: index, rid: rid, src: src, ssrc: ssrc}
	if u.kind == webrtc.RTPCodecTypeVideo {
		l.nacks = &nackGenerator{}
		l.cache = &packetCache{}
	}
	return l
}

// layer returns layer i, nil if it is not (yet) published.
func (u *upTrack) layer(i int) *layer {
	if i < 0 || i >= maxLayers {
		return nil
	}
	return u.layers[i].Load()
}

// start reads l until it ends, on a goroutine of its own; the first
// layer also starts the track's RTCP loop. onDone runs when the last
// layer's read loop ended. It reports false if the track already ended.
func (u *upTrack) start(l *layer, onDone func()) bool {
	u.lmu.Lock()
	if u.ended {
		u.lmu.Unlock()
		return false
	}
	u.layers[l.index].Store(l)
	u.running++
	first := u.running == 1
	u.lmu.Unlock()
	if first {
		u.stats.addUp(u)
		go u.rtcpLoop()
	}
	go func() {
		u.forward(l)
		if l.unbind != nil {
			l.unbind()
		}
		u.lmu.Lock()
		u.running--
		last := u.running == 0
		u.ended = u.ended || last
		u.lmu.Unlock()
		if last {
			close(u.done)
			u.stats.retireUp(u)
			onDone()
		}
	}()
	return true
}

// addDown starts forwarding to d.
func (u *upTrack) addDown(d *downTrack) {
	u.mu.Lock()
	defer u.mu.Unlock()
	downs := make([]*downTrack, 0, len(u.downs)+1)
	downs = append(downs, u.downs...)
	u.downs = append(downs, d)
}

// removeDown stops forwarding to d. Once it returns nothing more of this
// track is written to d's connection (see downTrack.stop for the one
// bounded exception).
func (u *upTrack) removeDown(d *downTrack, wait bool) {
	u.detachDown(d)
	d.stop(wait)
}

// detachDown stops handing packets to d: once it returns, no fan-out
// pushes to d any more.
func (u *upTrack) detachDown(d *downTrack) {
	u.mu.Lock()
	downs := make([]*downTrack, 0, len(u.downs))
	for _, x := range u.downs {
		if x != d {
			downs = append(downs, x)
		}
	}
	u.downs = downs
	u.mu.Unlock()
	// No fan-out is running for d any more: it took RLock, which Lock
	// waited for.
}

// forward reads one layer until it ends and fans its packets out. It
// ends at the first read error.
func (u *upTrack) forward(l *layer) {
	buf := make([]byte, packetSize)
	for {
		n, _, err := l.src.Read(buf)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				u.log.Debug("track read ended", "rid", l.rid, "err", err)
			}
			return
		}
		u.receive(l, buf[:n], time.Now(), nil)
	}
}

// receive hands one packet of layer l to handle. The layer's read loop
// and the direct read path, with its reader's send batch, may both call
// it.
func (u *upTrack) receive(l *layer, raw []byte, now time.Time, out *outbox) {
	l.hmu.Lock()
	u.handle(l, raw, now, out)
	l.hmu.Unlock()
}

// handle is the per-packet hot path: parse once, note the audio level,
// and queue the packet for every allowed subscriber. It allocates
// nothing. out, when not nil, is the send batch of the socket reader
// running it.
func (u *upTrack) handle(l *layer, raw []byte, now time.Time, out *outbox) {
	pkt := &l.pkt
	if err := pkt.Unmarshal(raw); err != nil {
		return
	}
	payload := pkt.Payload
	if len(payload) == 0 || len(payload) > packetSize {
		return // padding-only probe
	}
	at := now.UnixNano()
	l.bytes.Add(uint64(len(payload)))
	l.packetsIn.Add(1)
	l.bytesIn.Add(uint64(len(payload)))
	l.lastAt.Store(at)
	if l.cache != nil {
		l.cache.put(pkt.SequenceNumber, payload)
	}
	if l.nacks != nil && l.nacks.observe(pkt.SequenceNumber) {
		select {
		case u.nackKick <- struct{}{}:
		default:
		}
	}
	m := packetMeta{
		seq:    pkt.SequenceNumber,
		ts:     pkt.Timestamp,
		marker: pkt.Marker,
		at:     at,
		layer:  uint8(l.index),
	}
	if u.levelExtID != 0 {
		if ext := pkt.GetExtension(u.levelExtID); len(ext) > 0 {
			m.level, m.hasLevel = ext[0], true
			u.level.add(ext[0] & 0x7f)
		}
	}
	if u.keyframe != nil {
		m.keyframe = u.keyframe(payload)
		if m.keyframe {
			l.keyframeAt.Store(at)
		}
	}
	u.out.hold()
	u.mu.RLock()
	for _, d := range u.downs {
		d.push(&m, payload, out)
	}
	u.mu.RUnlock()
	u.out.release()
}

// requestKeyframe asks the publisher for a keyframe of a layer, at most
// every keyframeInterval: a request within the interval waits for its
// end, unless a keyframe of the layer arrives meanwhile. It never blocks
// and allocates nothing.
func (u *upTrack) requestKeyframe(layer int) {
	if u.kind != webrtc.RTPCodecTypeVideo || layer < 0 || layer >= maxLayers {
		return
	}
	u.keyframeWant.Or(1 << layer)
	select {
	case u.keyframeReq <- struct{}{}:
	default:
	}
}

// rtcpLoop sends the publisher the PLIs requestKeyframe asks for,
// throttled, and NACKs for what did not arrive, and measures the layers'
// bit rates. Neither the read loops nor a subscriber's RTCP loop ever
// write to the publisher's connection.
//
// For video it wakes every nackTick only while there is something to
// follow (packets missing, a keyframe request waiting for its interval),
// and otherwise once per rateInterval, on the grid (tick.go): a ticker
// every nackTick woke every published video track 50 times a second,
// loss or not.
func (u *upTrack) rtcpLoop() {
	var timer *time.Timer
	var fire <-chan time.Time
	var next time.Time // when timer fires
	rate := newGridPhase(rateInterval)
	lastRate := time.Now()
	nextRate := lastRate.Add(rate.until(lastRate))
	if u.kind == webrtc.RTPCodecTypeVideo {
		timer = time.NewTimer(time.Until(nextRate))
		defer timer.Stop()
		fire, next = timer.C, nextRate
	}
	// soon makes the timer fire within d.
	soon := func(now time.Time, d time.Duration) {
		if timer != nil && next.Sub(now) > d {
			timer.Reset(d)
			next = now.Add(d)
		}
	}
	var seqs []uint16
	for {
		select {
		case <-u.done:
			return
		case now := <-fire:
			u.rtcpWakes.Add(1)
			u.serveKeyframes(now.UnixNano())
			for i := range maxLayers {
				l := u.layer(i)
				if l == nil {
					continue
				}
				seqs = l.nacks.due(now.UnixNano(), seqs[:0])
				if len(seqs) > 0 && u.writeRTCP != nil {
					if err := u.writeRTCP([]rtcp.Packet{&rtcp.TransportLayerNack{
						MediaSSRC: l.ssrc,
						Nacks:     rtcp.NackPairsFromSequenceNumbers(seqs),
					}}); err == nil {
						u.nacksOut.Add(uint64(len(seqs)))
					}
				}
			}
			if !now.Before(nextRate) {
				nextRate = now.Add(rate.until(now))
				// The first window, up to the first instant on the
				// grid, may be short: it is measured with the next.
				if dt := now.Sub(lastRate); dt >= rateInterval/2 {
					lastRate = now
					u.measureRates(dt)
				}
			}
			wait := max(nextRate.Sub(now), time.Millisecond)
			if u.following() {
				wait = min(wait, nackTick)
			}
			timer.Reset(wait)
			next = now.Add(wait)
		case <-u.nackKick:
			// As soon after the gap as a ticker's random phase made it
			// on average, leaving reordered packets time to arrive.
			soon(time.Now(), nackTick/2)
		case <-u.keyframeReq:
			now := time.Now()
			u.serveKeyframes(now.UnixNano())
			if u.following() {
				soon(now, nackTick)
			}
		}
	}
}

// measureRates updates the layers' bit rates with what they received in
// the dt since the last measurement. rtcpLoop only.
func (u *upTrack) measureRates(dt time.Duration) {
	for i := range maxLayers {
		if l := u.layer(i); l != nil {
			measured := float64(l.bytes.Swap(0)) * 8 / dt.Seconds()
			prev := l.bitrate()
			if prev > 0 {
				measured = 0.5*prev + 0.5*measured
			}
			l.rate.Store(math.Float64bits(measured))
		}
	}
}

// following reports whether a layer has packets missing or a keyframe
// request waiting: then rtcpLoop wakes every nackTick. rtcpLoop only.
func (u *upTrack) following() bool {
	for i := range maxLayers {
		l := u.layer(i)
		if l == nil {
			continue
		}
		if l.keyframeWanted != 0 || l.nacks != nil && l.nacks.pending() {
			return true
		}
	}
	return false
}

// serveKeyframes sends the PLIs requestKeyframe asked for, each as soon
// as its layer's interval allows; a keyframe that arrived after the
// request answers it. rtcpLoop only.
func (u *upTrack) serveKeyframes(now int64) {
	want := u.keyframeWant.Swap(0)
	for i := range maxLayers {
		l := u.layer(i)
		if l == nil {
			continue
		}
		if want&(1<<i) != 0 && l.keyframeWanted == 0 {
			l.keyframeWanted = now
		}
		switch {
		case l.keyframeWanted == 0:
		case l.keyframeAt.Load() >= l.keyframeWanted:
			l.keyframeWanted = 0 // answered
		case now-l.lastKeyframeReq >= int64(keyframeInterval):
			l.lastKeyframeReq, l.keyframeWanted = now, 0
			if u.writeRTCP != nil {
				if err := u.writeRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: l.ssrc}}); err == nil {
					u.plisOut.Add(1)
				}
			}
		}
	}
}

// levelMeter sums RFC 6464 audio levels (0 is loudest, 127 silence)
// between two reads, without locks: the read loop adds, the room's
// speaker detector takes.
type levelMeter struct {
	packets atomic.Uint64
	voiced  atomic.Uint64 // packets louder than activeLevel
	loud    atomic.Uint64 // sum of (127 - level) over voiced packets
}

func (m *levelMeter) add(level uint8) {
	m.packets.Add(1)
	if level <= activeLevel {
		m.voiced.Add(1)
		m.loud.Add(uint64(127 - level))
	}
}

// take returns and resets the counts.
func (m *levelMeter) take() (packets, voiced, loud uint64) {
	return m.packets.Swap(0), m.voiced.Swap(0), m.loud.Swap(0)
}

// seqNewer reports whether a comes after b in RTP sequence order.
func seqNewer(a, b uint16) bool { return a != b && a-b < 0x8000 }

package media

import (
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// rtpReader is where an upTrack's packets come from: a
// *webrtc.TrackRemote in production.
type rtpReader interface {
	Read(b []byte) (int, interceptor.Attributes, error)
}

// keyframeInterval is the shortest time between two keyframe requests
// the SFU sends a publisher for one track.
const keyframeInterval = 500 * time.Millisecond

// upTrack is one track a participant publishes. Its read loop parses each
// packet once and hands it to the downTracks of the subscribers currently
// allowed to receive it. Handing over is a copy into the downTrack's own
// queue: it never waits for a subscriber's connection.
type upTrack struct {
	id        string // track id, unique within the room
	publisher string // participant id
	kind      webrtc.RTPCodecType
	codec     webrtc.RTPCodecCapability
	vp8       bool
	// levelExtID is the publisher's id of the RFC 6464 audio level header
	// extension, 0 when it did not negotiate one.
	levelExtID uint8
	src        rtpReader
	ssrc       uint32
	writeRTCP  func([]rtcp.Packet) error // to the publisher
	log        *slog.Logger

	mu    sync.RWMutex
	downs []*downTrack // copy-on-write; the read loop fans out under RLock

	// level accumulates audio levels between two reads by the room's
	// active speaker detector.
	level levelMeter

	// nacks tracks arrivals for NACKs to the publisher (video).
	nacks *nackGenerator

	lastKeyframeReq atomic.Int64 // unix nanoseconds
	keyframeReq     chan struct{}
	done            chan struct{} // closed when the read loop ends

	pkt rtp.Packet // owned by the read loop
}

func newUpTrack(id, publisher string, kind webrtc.RTPCodecType, codec webrtc.RTPCodecCapability, log *slog.Logger) *upTrack {
	u := &upTrack{
		id:          id,
		publisher:   publisher,
		kind:        kind,
		codec:       codec,
		vp8:         strings.EqualFold(codec.MimeType, webrtc.MimeTypeVP8),
		log:         log,
		keyframeReq: make(chan struct{}, 1),
		done:        make(chan struct{}),
	}
	if kind == webrtc.RTPCodecTypeVideo {
		u.nacks = &nackGenerator{}
	}
	return u
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
	// waited for. Stop its writer.
	d.stop(wait)
}

// forward reads the publisher's RTP until the track ends and fans it out.
// It ends at the first read error; onDone runs last.
func (u *upTrack) forward(onDone func()) {
	defer onDone()
	defer close(u.done)
	go u.rtcpLoop()
	buf := make([]byte, packetSize)
	for {
		n, _, err := u.src.Read(buf)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				u.log.Debug("track read ended", "err", err)
			}
			return
		}
		u.handle(buf[:n], time.Now())
	}
}

// handle is the per-packet hot path: parse once, note the audio level,
// and queue the packet for every allowed subscriber. It allocates
// nothing.
func (u *upTrack) handle(raw []byte, now time.Time) {
	if err := u.pkt.Unmarshal(raw); err != nil {
		return
	}
	payload := u.pkt.Payload
	if len(payload) == 0 || len(payload) > packetSize {
		return // padding-only probe
	}
	if u.nacks != nil {
		u.nacks.observe(u.pkt.SequenceNumber)
	}
	m := packetMeta{
		seq:    u.pkt.SequenceNumber,
		ts:     u.pkt.Timestamp,
		marker: u.pkt.Marker,
		at:     now.UnixNano(),
	}
	if u.levelExtID != 0 {
		if ext := u.pkt.GetExtension(u.levelExtID); len(ext) > 0 {
			m.level, m.hasLevel = ext[0], true
			u.level.add(ext[0] & 0x7f)
		}
	}
	if u.vp8 {
		m.keyframe = vp8Keyframe(payload)
	}
	u.mu.RLock()
	for _, d := range u.downs {
		d.push(&m, payload)
	}
	u.mu.RUnlock()
}

// requestKeyframe asks the publisher for a keyframe, at most every
// keyframeInterval. It never blocks.
func (u *upTrack) requestKeyframe() {
	if u.kind != webrtc.RTPCodecTypeVideo {
		return
	}
	select {
	case u.keyframeReq <- struct{}{}:
	default:
	}
}

// rtcpLoop sends the publisher the PLIs requestKeyframe asks for,
// throttled, and NACKs for what did not arrive, so that neither the read
// loop nor a subscriber's RTCP loop ever writes to the publisher's
// connection.
func (u *upTrack) rtcpLoop() {
	var tick <-chan time.Time
	if u.nacks != nil {
		t := time.NewTicker(nackTick)
		defer t.Stop()
		tick = t.C
	}
	var seqs []uint16
	for {
		select {
		case <-u.done:
			return
		case <-tick:
			seqs = u.nacks.due(time.Now().UnixNano(), seqs[:0])
			if len(seqs) > 0 && u.writeRTCP != nil {
				_ = u.writeRTCP([]rtcp.Packet{&rtcp.TransportLayerNack{
					MediaSSRC: u.ssrc,
					Nacks:     rtcp.NackPairsFromSequenceNumbers(seqs),
				}})
			}
		case <-u.keyframeReq:
			now := time.Now().UnixNano()
			if now-u.lastKeyframeReq.Load() < int64(keyframeInterval) {
				continue
			}
			u.lastKeyframeReq.Store(now)
			if u.writeRTCP != nil {
				_ = u.writeRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: u.ssrc}})
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

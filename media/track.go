package media

import (
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// upTrack is one track a participant publishes. It reads RTP from the
// publisher and writes each packet to the downTracks of the subscribers
// currently allowed to receive it.
type upTrack struct {
	id        string // track id, unique within the publisher
	publisher string // participant id
	kind      webrtc.RTPCodecType
	codec     webrtc.RTPCodecCapability
	remote    *webrtc.TrackRemote
	pc        *webrtc.PeerConnection // the publisher's connection, for RTCP
	log       *slog.Logger

	mu    sync.RWMutex
	downs []*downTrack // copy-on-write: the read loop takes the slice under RLock

	lastKeyframeReq atomic.Int64 // unix nanoseconds
}

// addDown starts forwarding to d.
func (u *upTrack) addDown(d *downTrack) {
	u.mu.Lock()
	defer u.mu.Unlock()
	downs := make([]*downTrack, 0, len(u.downs)+1)
	downs = append(downs, u.downs...)
	u.downs = append(downs, d)
}

// removeDown stops forwarding to d; no packet is written to d after it
// returns.
func (u *upTrack) removeDown(d *downTrack) {
	u.mu.Lock()
	defer u.mu.Unlock()
	downs := make([]*downTrack, 0, len(u.downs))
	for _, x := range u.downs {
		if x != d {
			downs = append(downs, x)
		}
	}
	u.downs = downs
}

// forward reads the publisher's RTP until the track ends and fans it out.
// It holds the read lock while writing, so removeDown waits for an
// in-flight packet and nothing reaches a removed subscriber afterwards.
func (u *upTrack) forward(onDone func()) {
	defer onDone()
	buf := make([]byte, 1500)
	var pkt rtp.Packet
	for {
		n, _, err := u.remote.Read(buf)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				u.log.Debug("track read ended", "err", err)
			}
			return
		}
		if err := pkt.Unmarshal(buf[:n]); err != nil {
			continue
		}
		if len(pkt.Payload) == 0 {
			continue // padding-only probe
		}
		u.mu.RLock()
		for _, d := range u.downs {
			d.writeRTP(&pkt)
		}
		u.mu.RUnlock()
	}
}

// requestKeyframe asks the publisher for a keyframe, at most every 500 ms.
func (u *upTrack) requestKeyframe() {
	if u.kind != webrtc.RTPCodecTypeVideo {
		return
	}
	now := time.Now().UnixNano()
	last := u.lastKeyframeReq.Load()
	if now-last < int64(500*time.Millisecond) || !u.lastKeyframeReq.CompareAndSwap(last, now) {
		return
	}
	_ = u.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: uint32(u.remote.SSRC())}})
}

// downTrack is one subscriber's copy of an upTrack. It implements
// webrtc.TrackLocal, and rewrites SSRC, payload type and sequence numbers
// so that pauses never look like loss to the subscriber's decoder.
type downTrack struct {
	up         *upTrack
	subscriber string
	streamID   string

	mu          sync.Mutex
	bound       bool
	ssrc        uint32
	payloadType uint8
	writer      webrtc.TrackLocalWriter

	started    bool
	lastInSeq  uint16
	lastOutSeq uint16
	seqOffset  uint16
	resync     bool // the next packet continues the sequence after a gap
}

var _ webrtc.TrackLocal = (*downTrack)(nil)

func newDownTrack(up *upTrack, subscriber string) *downTrack {
	return &downTrack{up: up, subscriber: subscriber, streamID: up.publisher}
}

// Bind is called by pion when the subscriber's connection negotiated the
// track; it picks the subscriber's payload type for our codec.
func (d *downTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	for _, c := range ctx.CodecParameters() {
		if strings.EqualFold(c.MimeType, d.up.codec.MimeType) {
			d.mu.Lock()
			d.bound = true
			d.ssrc = uint32(ctx.SSRC())
			d.payloadType = uint8(c.PayloadType)
			d.writer = ctx.WriteStream()
			d.mu.Unlock()
			d.up.requestKeyframe()
			return c, nil
		}
	}
	return webrtc.RTPCodecParameters{}, webrtc.ErrUnsupportedCodec
}

// Unbind is called by pion when the track is removed.
func (d *downTrack) Unbind(webrtc.TrackLocalContext) error {
	d.mu.Lock()
	d.bound = false
	d.writer = nil
	d.mu.Unlock()
	return nil
}

func (d *downTrack) ID() string                { return d.up.id }
func (d *downTrack) RID() string               { return "" }
func (d *downTrack) StreamID() string          { return d.streamID }
func (d *downTrack) Kind() webrtc.RTPCodecType { return d.up.kind }

// writeRTP forwards one packet. The packet is shared with other
// subscribers and must not be modified; the header is copied.
func (d *downTrack) writeRTP(p *rtp.Packet) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.bound || d.writer == nil {
		d.resync = d.started
		return
	}
	if !d.started {
		d.started = true
		d.seqOffset = p.SequenceNumber - uint16(time.Now().UnixNano())
	} else if d.resync {
		d.seqOffset = p.SequenceNumber - (d.lastOutSeq + 1)
		d.resync = false
	}
	h := p.Header
	h.SSRC = d.ssrc
	h.PayloadType = d.payloadType
	h.SequenceNumber = p.SequenceNumber - d.seqOffset
	// Header extension ids are negotiated per connection; the subscriber's
	// interceptors add the ones its connection uses.
	h.Extension = false
	h.Extensions = nil
	h.Padding = false
	// An older packet (reordered upstream) keeps its own place in the
	// sequence and does not move the high-water mark.
	if seqNewer(p.SequenceNumber, d.lastInSeq) || d.lastInSeq == 0 {
		d.lastInSeq = p.SequenceNumber
		d.lastOutSeq = h.SequenceNumber
	}
	_, _ = d.writer.WriteRTP(&h, p.Payload)
}

// seqNewer reports whether a comes after b in RTP sequence order.
func seqNewer(a, b uint16) bool { return a != b && a-b < 0x8000 }

// readRTCP drains the subscriber's RTCP for this track and passes keyframe
// requests to the publisher. It returns when the sender is stopped.
func (d *downTrack) readRTCP(sender *webrtc.RTPSender) {
	for {
		pkts, _, err := sender.ReadRTCP()
		if err != nil {
			return
		}
		for _, p := range pkts {
			switch p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				d.up.requestKeyframe()
			}
		}
	}
}

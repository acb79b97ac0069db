package media

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
)

// What the SFU tells a publisher's browser about the packets it
// receives: transport-wide congestion control feedback every
// feedbackInterval, from which the browser's send-side bandwidth
// estimator (and its probing) works, and an RFC 3550 receiver report per
// stream every reportInterval, for its loss and jitter statistics.
//
// pion's interceptors for these (twcc.SenderInterceptor and
// report.ReceiverInterceptor) cost, for every packet received, a map
// and a parsed header in the interceptor attributes, two locks, and a
// hand-off over a channel to a goroutine. Here the stream's read loop
// parses the header into memory of its own and records both under one
// lock; one goroutine sends every connection's feedback.

// feedbackInterval is how often transport-wide feedback is sent, as
// browsers do (libwebrtc: 50-250 ms).
const feedbackInterval = 100 * time.Millisecond

// feedbackFactory builds one feedbackConn per PeerConnection, and sends
// all their feedback from one goroutine: every feedbackInterval it holds
// the SFU's UDP socket (out) open and writes every connection's
// feedback, so that it leaves in one sendmmsg rather than a sendto and a
// timer wake-up per publisher.
//
// Only connections whose selected ICE pair is UDP (setUDP) are written
// from that goroutine, with the socket held: a UDP write never waits. A
// connection over TCP, whose write can wait for the publisher's phone,
// is written on a goroutine of its own, one write at a time, so that it
// holds up neither the others' feedback nor the socket.
type feedbackFactory struct {
	out *batchConn // nil on a virtual network

	mu      sync.Mutex
	conns   map[*feedbackConn]struct{} // with streams to report on
	byID    map[string]*feedbackConn   // PeerConnection id ->
	running bool
}

func newFeedbackFactory(out *batchConn) *feedbackFactory {
	return &feedbackFactory{out: out, conns: map[*feedbackConn]struct{}{}, byID: map[string]*feedbackConn{}}
}

func (f *feedbackFactory) NewInterceptor(id string) (interceptor.Interceptor, error) {
	c := &feedbackConn{
		factory: f,
		id:      id,
		fb:      NewReceiverFeedback(rand.Uint32()),
		start:   time.Now(),
	}
	f.mu.Lock()
	f.byID[id] = c
	f.mu.Unlock()
	return c, nil
}

// setUDP says whether PeerConnection id's selected pair is UDP.
func (f *feedbackFactory) setUDP(id string, udp bool) {
	f.mu.Lock()
	c := f.byID[id]
	f.mu.Unlock()
	if c != nil {
		c.udp.Store(udp)
	}
}

// recorder returns what records the packets of stream ssrc received on
// PeerConnection id for its feedback when they do not come through the
// interceptor (the direct read path, directin.go); nil if the stream is
// not bound.
func (f *feedbackFactory) recorder(id string, ssrc uint32) func(h *rtp.Header, now time.Time) {
	f.mu.Lock()
	c := f.byID[id]
	f.mu.Unlock()
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.streams {
		if s.ssrc == ssrc {
			return func(h *rtp.Header, now time.Time) { c.record(s, h, now) }
		}
	}
	return nil
}

// add starts sending c's feedback.
func (f *feedbackFactory) add(c *feedbackConn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.conns[c] = struct{}{}
	if !f.running {
		f.running = true
		go f.loop()
	}
}

func (f *feedbackFactory) remove(c *feedbackConn) {
	f.mu.Lock()
	delete(f.conns, c)
	if f.byID[c.id] == c {
		delete(f.byID, c.id)
	}
	f.mu.Unlock()
}

// loop sends the feedback of every connection until none is left.
func (f *feedbackFactory) loop() {
	t := newGridTicker(feedbackInterval)
	defer t.Stop()
	var conns []*feedbackConn
	for now := range t.C {
		t.next(now)
		f.mu.Lock()
		if len(f.conns) == 0 {
			f.running = false
			f.mu.Unlock()
			return
		}
		conns = conns[:0]
		for c := range f.conns {
			conns = append(conns, c)
		}
		f.mu.Unlock()
		f.out.hold()
		for _, c := range conns {
			pkts, w := c.collect(now)
			switch {
			case w == nil || len(pkts) == 0:
			case c.udp.Load():
				_, _ = w.Write(pkts, nil)
			case c.busy.CompareAndSwap(false, true):
				go func() {
					defer c.busy.Store(false)
					_, _ = w.Write(pkts, nil)
				}()
			}
		}
		f.out.release()
	}
}

// feedbackConn is one PeerConnection's receive-side feedback.
type feedbackConn struct {
	interceptor.NoOp
	factory *feedbackFactory
	id      string    // the PeerConnection's
	start   time.Time // arrival times are microseconds since
	udp     atomic.Bool
	busy    atomic.Bool // a write of its own is in progress (not UDP)

	mu      sync.Mutex
	writer  interceptor.RTCPWriter // nil until bound
	fb      *ReceiverFeedback
	streams []*rxStream
	closed  bool
}

// rxStream is one received stream's reception statistics, guarded by
// the feedbackConn's mu.
type rxStream struct {
	ssrc   uint32
	twccID uint8      // 0: the stream carries no transport-wide number
	hdr    rtp.Header // the read loop's, outside mu
	stats  ReceptionStats
}

func (c *feedbackConn) BindRTCPWriter(w interceptor.RTCPWriter) interceptor.RTCPWriter {
	c.mu.Lock()
	c.writer = w
	c.mu.Unlock()
	return w
}

// BindRemoteStream records what the stream receives; it runs in the
// stream's read loop and allocates nothing per packet.
func (c *feedbackConn) BindRemoteStream(info *interceptor.StreamInfo, r interceptor.RTPReader) interceptor.RTPReader {
	s := &rxStream{ssrc: info.SSRC, stats: ReceptionStats{ClockRate: float64(info.ClockRate)}}
	for _, e := range info.RTPHeaderExtensions {
		if e.URI == sdp.TransportCCURI && e.ID > 0 && e.ID < 256 {
			s.twccID = uint8(e.ID)
		}
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return r
	}
	c.streams = append(c.streams, s)
	// Under c.mu, so that a Close cannot come between the check above and
	// this, and leave c listed for ever (f.mu is never held while c.mu is
	// taken).
	c.factory.add(c)
	c.mu.Unlock()
	return interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n, a, err := r.Read(b, a)
		if err != nil {
			return n, a, err
		}
		if _, perr := s.hdr.Unmarshal(b[:n]); perr == nil {
			c.record(s, &s.hdr, time.Now())
		}
		return n, a, nil
	})
}

// UnbindRemoteStream stops reporting on the stream.
func (c *feedbackConn) UnbindRemoteStream(info *interceptor.StreamInfo) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, s := range c.streams {
		if s.ssrc == info.SSRC {
			c.streams = append(c.streams[:i], c.streams[i+1:]...)
			return
		}
	}
}

func (c *feedbackConn) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.factory.remove(c)
	return nil
}

// record notes one packet of s, with header h, arrived at now.
func (c *feedbackConn) record(s *rxStream, h *rtp.Header, now time.Time) {
	arrival := now.Sub(c.start)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fb.Record(&s.stats, h, s.twccID, arrival)
}

// collect returns the transport-wide feedback gathered since the last
// call and, every reportInterval, the receiver reports, with the writer
// to send them on.
func (c *feedbackConn) collect(now time.Time) ([]rtcp.Packet, interceptor.RTCPWriter) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, nil
	}
	return c.fb.Collect(nil, now, c.reported), c.writer
}

// reported yields the streams to report on, with their statistics.
// c.mu must be held.
func (c *feedbackConn) reported(yield func(uint32, *ReceptionStats) bool) {
	for _, s := range c.streams {
		if !yield(s.ssrc, &s.stats) {
			return
		}
	}
}

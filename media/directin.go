package media

import (
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"reflect"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/pion/transport/v5/packetio"
	"github.com/pion/webrtc/v4"
)

// The direct read path: SRTP and SRTCP that a connection receives over
// a direct UDP pair go from the SFU socket's reader (pion's UDP mux
// calls batchConn.ReadFromAddrPort) straight into the buffer its SRTP
// or SRTCP session reads from. On pion's path each datagram went
// through the mux's buffer for its remote address, the ICE candidate's
// read loop, the ICE agent's buffer and pion's packet mux: three more
// hand-offs between goroutines, each a wake-up, which with the
// scheduler's work around them cost more than decrypting the packet.
// What the session does with a packet (decryption, replay checks, its
// streams, the interceptors and our read loops) is unchanged, and so
// is every other packet (STUN, DTLS, anything from an address that is
// not a direct pair's).
//
// The buffers are pion's own (DTLSTransport.srtpEndpoint and
// srtcpEndpoint, internal mux.Endpoints, each around a packetio.Buffer),
// reached by reflection like the write path's SRTP context. If their
// shape changes, srtpBuffersOf fails, every packet takes pion's path,
// and TestDirectReads says so.
//
// Pion's ICE agent no longer sees media arrive on the pair. It does not
// need to: it sends a binding request on the selected pair every
// keepalive interval (two seconds) whatever else is received, and the
// answers keep the pair alive, as they do for the direct write path.

// A published layer's RTP skips pion's SRTP session too. Once the
// layer's read loop runs (bindRTP), the socket's reader queues the
// layer's packets for the connection's own worker goroutine
// (rtpWorker), which decrypts them with the session's remote context,
// under the session's own mutex (so that the rollover counter and the
// replay window stay one, whichever path a packet takes), records them
// for the feedback to the publisher, and hands them to the layer: one
// hand-off instead of two, and none of pion's stream and interceptor
// machinery. A layer's retransmissions on its RTX stream are bound with
// it and repaired here (unwrapRTX): pion repairs them only inside a
// read of the layer's own stream, which, once bound, never returns.
// Packets of streams not bound (a new SSRC pion must announce) take the
// session's path.

// rtpQueueBytes bounds a connection's queue of bound RTP: about 100
// full packets, a few frames of one publisher's video.
const rtpQueueBytes = 128 << 10

// receiveMTU is the largest datagram the worker reads, as pion's UDP
// mux.
const receiveMTU = 8192

// rtpTable is a connection's bound streams and the worker's queue;
// replaced whole, never changed.
type rtpTable struct {
	q      *packetio.Buffer
	routes map[uint32]rtpHandler // SSRC ->
}

// rtpHandler takes one decrypted packet of a bound stream: raw is the
// whole packet, h its parsed header. Both are the worker's, reused for
// the next packet.
type rtpHandler func(raw []byte, h *rtp.Header, now time.Time)

// bindRTP sends the packets of stream ssrc that PeerConnection id
// receives over its direct pair to handle, decrypted. It reports false
// when it cannot (the connection has no direct path, its SRTP session
// is not as expected); the stream's packets then take pion's path.
func (f *directFactory) bindRTP(id string, ssrc uint32, handle rtpHandler) bool {
	c := f.get(id)
	if c == nil || f.out == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.inFailed {
		return false
	}
	old := c.rtp.Load()
	tab := &rtpTable{routes: map[uint32]rtpHandler{}}
	if old != nil {
		tab.q = old.q
		for k, v := range old.routes {
			tab.routes[k] = v
		}
	} else {
		t := c.transport.Load()
		if t == nil {
			return false
		}
		ctx, mu, err := srtpSessionContext(t, "remote")
		if err != nil {
			if !errors.Is(err, errSRTPNotStarted) {
				c.inFailed = true
				c.factory.log.Warn("direct UDP reads disabled: pion's SRTP session is not as expected; reading through pion", "err", err)
			}
			return false
		}
		tab.q = packetio.NewBuffer()
		tab.q.SetLimitSize(rtpQueueBytes)
		go c.rtpWorker(tab.q, ctx, mu)
	}
	tab.routes[ssrc] = handle
	c.rtp.Store(tab)

	return true
}

// unbindRTP returns stream ssrc of PeerConnection id to pion's path.
func (f *directFactory) unbindRTP(id string, ssrc uint32) {
	c := f.get(id)
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.rtp.Load()
	if old == nil || old.routes[ssrc] == nil {
		return
	}
	tab := &rtpTable{q: old.q, routes: make(map[uint32]rtpHandler, len(old.routes))}
	for k, v := range old.routes {
		if k != ssrc {
			tab.routes[k] = v
		}
	}
	c.rtp.Store(tab)
}

// rtpWorker decrypts the queued packets of bound streams and hands each
// to its stream's handler, until the queue is closed. A packet that
// does not authenticate, or is a replay, is dropped, as pion drops it.
func (c *directConn) rtpWorker(q *packetio.Buffer, ctx *srtp.Context, mu *sync.Mutex) {
	enc := make([]byte, receiveMTU)
	plain := make([]byte, 0, receiveMTU)
	var h rtp.Header
	for {
		n, _, err := q.Read(enc, nil)
		if err != nil {
			if errors.Is(err, io.ErrShortBuffer) {
				continue
			}
			return
		}
		c.rtpPacket(enc[:n], plain, &h, ctx, mu)
	}
}

// rtpPacket decrypts one packet of a bound stream into plain, parsing
// its header into h, and hands it to the stream's handler.
func (c *directConn) rtpPacket(enc, plain []byte, h *rtp.Header, ctx *srtp.Context, mu *sync.Mutex) {
	mu.Lock()
	out, err := ctx.DecryptRTP(plain[:0], enc, h)
	mu.Unlock()
	if err != nil {
		c.inBad.Add(1)
		return
	}
	if handle := c.rtp.Load().routes[h.SSRC]; handle != nil { // looked up once authentic
		c.bound.Add(1)
		handle(out, h, time.Now())
	}
}

// directIn is where a connection's received SRTP and SRTCP go.
type directIn struct {
	srtp, srtcp *packetio.Buffer
}

// deliver takes one datagram the SFU's socket received from "from", and
// reports whether it went to a connection's SRTP session; false leaves
// it to pion's mux. It runs on the socket's one reader goroutine.
func (f *directFactory) deliver(p []byte, from netip.AddrPort) bool {
	if len(p) < 4 || p[0] < 128 || p[0] > 191 { // RFC 7983: not RTP or RTCP
		return false
	}
	m := f.byAddr.Load()
	if m == nil {
		return false
	}
	c := (*m)[from]
	if c == nil {
		return false
	}
	in := c.in.Load()
	if in == nil {
		if !c.inPending.Load() {
			return false
		}
		if in = c.resolveIn(); in == nil {
			return false
		}
	}
	buf := in.srtp
	if p[1] >= 192 && p[1] <= 223 { // RTCP's packet types (RFC 5761)
		buf = in.srtcp
	} else if tab := c.rtp.Load(); tab != nil && len(p) >= 12 && tab.routes[binary.BigEndian.Uint32(p[8:12])] != nil {
		if drop := f.dropForTest.Load(); drop != nil && (*drop)(p) {
			return true
		}
		buf = tab.q // a bound stream (rtpWorker)
	}
	if _, err := buf.Write(p, nil); err != nil {
		if errors.Is(err, packetio.ErrFull) {
			c.inDropped.Add(1) // the session is behind: dropped, as pion's mux does
			return true
		}
		return false // closed: pion's path, which drops it too
	}
	c.received.Add(1)
	return true
}

// route records where connection id's direct pair receives from (ok
// false: it has none), and republishes the address table deliver
// reads. An address two connections claim is left to pion's mux.
func (f *directFactory) route(id string, from netip.AddrPort, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if ok {
		f.addrs[id] = from
	} else {
		delete(f.addrs, id)
	}
	m := make(map[netip.AddrPort]*directConn, len(f.addrs))
	var shared []netip.AddrPort
	for id, a := range f.addrs {
		c := f.conns[id]
		if c == nil {
			continue
		}
		if _, dup := m[a]; dup {
			shared = append(shared, a)
		}
		m[a] = c
	}
	for _, a := range shared {
		delete(m, a)
	}
	f.byAddr.Store(&m)
}

// resolveIn finds the connection's session buffers once its SRTP
// session has started; nil while packets must take pion's path.
func (c *directConn) resolveIn() *directIn {
	c.mu.Lock()
	defer c.mu.Unlock()
	if in := c.in.Load(); in != nil || c.inFailed || c.closed {
		return in
	}
	t := c.transport.Load()
	if t == nil {
		return nil
	}
	rtpBuf, rtcpBuf, err := srtpBuffersOf(t)
	if errors.Is(err, errSRTPNotStarted) {
		return nil
	}
	c.inPending.Store(false)
	if err != nil {
		c.inFailed = true
		c.factory.log.Warn("direct UDP reads disabled: pion's DTLS transport is not as expected; reading through pion", "err", err)
		return nil
	}
	in := &directIn{srtp: rtpBuf, srtcp: rtcpBuf}
	c.in.Store(in)
	return in
}

// srtpBuffersOf returns the buffers a DTLS transport's SRTP and SRTCP
// sessions read from, once the sessions have started. pion does not
// export them (webrtc.DTLSTransport.srtpEndpoint and srtcpEndpoint, then
// mux.Endpoint's buffer); each field's type is checked before it is
// used. The endpoints are set before the sessions are stored, so a
// session seen through its atomic.Value makes them safe to read.
func srtpBuffersOf(t *webrtc.DTLSTransport) (rtpBuf, rtcpBuf *packetio.Buffer, err error) {
	tv := reflect.ValueOf(t).Elem()
	s := tv.FieldByName("srtcpSession")
	if !s.IsValid() || s.Type() != reflect.TypeOf(atomic.Value{}) {
		return nil, nil, errSRTPInternals
	}
	if (*atomic.Value)(unsafe.Pointer(s.UnsafeAddr())).Load() == nil {
		return nil, nil, errSRTPNotStarted
	}
	bufferOf := func(field string) *packetio.Buffer {
		e := tv.FieldByName(field)
		if !e.IsValid() || e.Kind() != reflect.Pointer || e.Type().Elem().Kind() != reflect.Struct || e.IsNil() {
			return nil
		}
		b := e.Elem().FieldByName("buffer")
		if !b.IsValid() || b.Type() != reflect.TypeOf((*packetio.Buffer)(nil)) {
			return nil
		}
		return *(**packetio.Buffer)(unsafe.Pointer(b.UnsafeAddr()))
	}
	rtpBuf, rtcpBuf = bufferOf("srtpEndpoint"), bufferOf("srtcpEndpoint")
	if rtpBuf == nil || rtcpBuf == nil {
		return nil, nil, errSRTPInternals
	}
	return rtpBuf, rtcpBuf, nil
}

// unwrapRTX turns a decrypted RTX packet (RFC 4588) into the packet it
// repairs, in place, as pion's receiver does: the original sequence
// number, the payload's first two bytes, goes back into the header,
// with the repaired stream's SSRC and payload type. It returns false
// for a packet with nothing to repair (padding only, a probe).
func unwrapRTX(raw []byte, ssrc uint32, pt uint8) ([]byte, bool) {
	if len(raw) < 12 {
		return nil, false
	}
	hl := 12 + 4*int(raw[0]&0x0f)
	if raw[0]&0x10 != 0 { // header extension
		if len(raw) < hl+4 {
			return nil, false
		}
		hl += 4 + 4*int(binary.BigEndian.Uint16(raw[hl+2:]))
	}
	end := len(raw)
	if raw[0]&0x20 != 0 { // padding: its length is the last byte
		end -= int(raw[len(raw)-1])
	}
	if end < hl+2 {
		return nil, false
	}
	osn := binary.BigEndian.Uint16(raw[hl:])
	copy(raw[2:hl+2], raw[:hl])
	out := raw[2:]
	out[1] = out[1]&0x80 | pt&0x7f
	binary.BigEndian.PutUint16(out[2:], osn)
	binary.BigEndian.PutUint32(out[8:], ssrc)
	return out, true
}

package media

import (
	"errors"
	"net/netip"
	"reflect"
	"sync/atomic"
	"unsafe"

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

package media

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"reflect"
	"sync"
	"time"

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
// Pion's ICE agent no longer sees media arrive on the pair; deliver
// tells it the remote was heard (heard.go), as its own path does.

// A published layer's RTP skips pion's SRTP session too. Once the
// layer's read loop runs (bindRTP), the socket's reader itself decrypts
// the layer's packets with the session's remote context, under the
// session's own mutex (so that the rollover counter and the replay
// window stay one, whichever path a packet takes), records them for the
// feedback to the publisher, and hands them to the layer, whose fan-out
// writes them to the subscribers: from the kernel's datagram to the
// subscribers' sendmmsg on one goroutine. A hand-off to a worker
// goroutine per connection, as at first, cost a wake-up per packet:
// with the scheduler's work around it, a fifth of the server's CPU in
// the load test. A layer's retransmissions on its RTX stream are bound
// with it and repaired here (unwrapRTX): pion repairs them only inside a
// read of the layer's own stream, which, once bound, never returns.
// Packets of streams not bound (a new SSRC pion must announce) take the
// session's path.

// A subscriber's RTCP takes the same path: pion's SRTCP session wrote
// each compound packet into the stream buffer of every SSRC it names (a
// receiver report names all of a subscriber's tracks), and each track's
// sender read it through the interceptors; here it is decrypted once
// and handed to the connection's one handler (bindRTCP), which passes
// transport-wide feedback to the estimator and the rest to every track.

// receiveMTU is the largest datagram the socket's reader reads, as
// pion's UDP mux.
const receiveMTU = 8192

// inTable is how a connection's reads are handled; replaced whole,
// never changed.
type inTable struct {
	s      *inSession
	routes map[uint32]rtpHandler // bound RTP streams by SSRC
	rtcp   func(compound []byte) // nil: RTCP takes the session's path
}

// rtpHandler takes one decrypted packet of a bound stream: raw is the
// whole packet, h its parsed header. Both are the reader's, reused for
// the next packet. out is the reader's send batch, for the fan-out.
type rtpHandler func(raw []byte, h *rtp.Header, now time.Time, out *outbox)

// inSession is what decrypts a connection's direct reads: its SRTP and
// SRTCP sessions' remote contexts and the mutexes pion guards them
// with. mu lets one packet of the connection through at a time, as a
// read loop would: the socket's readers are sharded by remote address,
// so it is only ever contended while a connection moves to another
// address.
type inSession struct {
	mu              sync.Mutex
	rtpCtx, rtcpCtx *srtp.Context
	rtpMu, rtcpMu   *sync.Mutex
}

// inScratch is one socket reader's memory for the packets it decrypts.
type inScratch struct {
	plain, rtcp []byte
	h           rtp.Header
	// out is the reader's own send batch, which the fan-outs of the
	// packets it reads write into; nil in some tests.
	out *outbox
	// now is when the datagrams being delivered were read (zero in
	// some tests), for the pairs' last hearing (heard.go); nowNs is its
	// Unix nanoseconds.
	now   time.Time
	nowNs int64
}

// setNow records when the datagrams about to be delivered were read.
func (sc *inScratch) setNow(now time.Time) {
	sc.now, sc.nowNs = now, now.UnixNano()
}

func newInScratch() *inScratch {
	return &inScratch{plain: make([]byte, 0, receiveMTU), rtcp: make([]byte, 0, receiveMTU)}
}

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
	tab := c.tableLocked()
	if tab == nil {
		return false
	}
	tab.routes[ssrc] = handle
	c.table.Store(tab)
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
	if old := c.table.Load(); old != nil && old.routes[ssrc] != nil {
		tab := old.clone()
		delete(tab.routes, ssrc)
		c.table.Store(tab)
	}
}

// bindRTCP sends the RTCP PeerConnection id receives over its direct
// pair to handle, decrypted, one compound packet at a time, from as
// soon as its SRTP session runs (resolveIn installs it then).
func (f *directFactory) bindRTCP(id string, handle func(compound []byte)) {
	c := f.get(id)
	if c == nil || f.out == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rtcpWant = handle
	c.resolveRTCPLocked()
}

// resolveRTCPLocked installs the RTCP handler bindRTCP was given, once
// the connection's SRTP session runs. mu must be held.
func (c *directConn) resolveRTCPLocked() {
	if c.rtcpWant == nil {
		return
	}
	if tab := c.tableLocked(); tab != nil {
		tab.rtcp = c.rtcpWant
		c.table.Store(tab)
	}
}

// tableLocked returns a copy of the connection's table to change and
// store, finding its sessions' contexts first if need be; nil when
// there can be none (yet). mu must be held.
func (c *directConn) tableLocked() *inTable {
	if c.closed || c.inFailed {
		return nil
	}
	if old := c.table.Load(); old != nil {
		return old.clone()
	}
	t := c.transport.Load()
	if t == nil {
		return nil
	}
	s := &inSession{}
	var err error
	if s.rtpCtx, s.rtpMu, err = srtpSessionContext(t, "srtpSession", "remote"); err == nil {
		s.rtcpCtx, s.rtcpMu, err = srtpSessionContext(t, "srtcpSession", "remote")
	}
	if err != nil {
		if !errors.Is(err, ErrSRTPNotStarted) {
			c.inFailed = true
			c.factory.log.Warn("direct UDP reads disabled: pion's SRTP session is not as expected; reading through pion", "err", err)
		}
		return nil
	}
	return &inTable{s: s, routes: map[uint32]rtpHandler{}}
}

func (t *inTable) clone() *inTable {
	n := &inTable{s: t.s, rtcp: t.rtcp, routes: make(map[uint32]rtpHandler, len(t.routes)+1)}
	for k, v := range t.routes {
		n.routes[k] = v
	}
	return n
}

// rtcpPacket decrypts one compound RTCP packet and hands it to the
// connection's RTCP handler. One that does not authenticate, or is a
// replay, is dropped, as pion drops it.
func (c *directConn) rtcpPacket(s *inSession, enc []byte, sc *inScratch) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rtcpMu.Lock()
	out, err := s.rtcpCtx.DecryptRTCP(sc.rtcp[:0], enc, nil)
	s.rtcpMu.Unlock()
	if err != nil {
		c.inBad.Add(1)
		return
	}
	if tab := c.table.Load(); tab != nil && tab.rtcp != nil {
		c.rtcpIn.Add(1)
		tab.rtcp(out)
	}
}

// rtpPacket decrypts one packet of a bound stream into sc, and hands it
// to the stream's handler. A packet that does not authenticate, or is a
// replay, is dropped, as pion drops it.
func (c *directConn) rtpPacket(s *inSession, enc []byte, sc *inScratch) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rtpMu.Lock()
	out, err := s.rtpCtx.DecryptRTP(sc.plain[:0], enc, &sc.h)
	s.rtpMu.Unlock()
	if err != nil {
		c.inBad.Add(1)
		return
	}
	if tab := c.table.Load(); tab != nil { // looked up once authentic
		if handle := tab.routes[sc.h.SSRC]; handle != nil {
			c.bound.Add(1)
			handle(out, &sc.h, time.Now(), sc.out)
		}
	}
}

// isRTCP reports whether an RTP-range datagram is RTCP: its second
// byte is one of RTCP's packet types (RFC 5761).
func isRTCP(p []byte) bool { return len(p) >= 2 && p[1] >= 192 && p[1] <= 223 }

// directIn is where a connection's received SRTP and SRTCP go.
type directIn struct {
	srtp, srtcp *packetio.Buffer
}

// deliver takes one datagram the SFU's socket received from "from", and
// reports whether it took it; false leaves it to pion's mux. A bound
// stream's RTP, and a subscriber's RTCP once its handler is installed,
// are decrypted and handled here, on the socket's reader, with the
// reader's scratch memory sc: no hand-off to another goroutine. The
// rest of a direct pair's SRTP and SRTCP goes into its session's
// buffers.
func (f *directFactory) deliver(p []byte, from netip.AddrPort, sc *inScratch) bool {
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
	// Throttled on the connection's own cache line: the candidate's
	// memory, pion's, is a cache miss of its own.
	if ns := sc.nowNs; ns != 0 && ns-c.heardAt.Load() >= int64(heardEvery) {
		c.heardAt.Store(ns)
		if h := c.heard.Load(); h != nil {
			h.heard(sc.now)
		}
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
	tab := c.table.Load()
	if isRTCP(p) {
		if tab != nil && tab.rtcp != nil {
			c.received.Add(1)
			c.rtcpPacket(tab.s, p, sc)
			return true
		}
		buf = in.srtcp
	} else if tab != nil && len(p) >= 12 && tab.routes[binary.BigEndian.Uint32(p[8:12])] != nil {
		if drop := f.dropForTest.Load(); drop != nil && (*drop)(p) {
			return true
		}
		c.received.Add(1)
		c.rtpPacket(tab.s, p, sc)
		return true
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
	if errors.Is(err, ErrSRTPNotStarted) {
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
	c.resolveRTCPLocked() // the sessions run: so can the RTCP handler
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
	if _, err := loadedSession(tv, "srtcpSession"); err != nil {
		return nil, nil, err
	}
	bufferOf := func(field string) *packetio.Buffer {
		e := tv.FieldByName(field)
		if !e.IsValid() || e.Kind() != reflect.Pointer || e.Type().Elem().Kind() != reflect.Struct || e.IsNil() {
			return nil
		}
		b := fieldOf[*packetio.Buffer](e.Elem(), "buffer")
		if b == nil {
			return nil
		}
		return *b
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

// receiveDrops sums the connections' drops on the direct read path,
// those of closed connections included, and the datagrams the kernel
// dropped on the sockets that read.
func (f *directFactory) receiveDrops() ReceiveDrops {
	f.mu.Lock()
	d := f.retired
	for _, c := range f.conns {
		d.Behind += c.inDropped.Load()
		d.NotAuthentic += c.inBad.Load()
	}
	f.mu.Unlock()
	if f.out != nil {
		d.Behind += f.out.socketDrops()
	}
	return d
}

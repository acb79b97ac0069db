package main

import (
	"encoding/binary"
	"maps"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/srtp/v3"
	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
	"github.com/pion/webrtc/v4"

	"github.com/concord-odr/concord/media"
)

// The subscribers' own receive path. Through pion, every packet a
// synthetic subscriber received was read alone from its socket by the
// ICE candidate's read loop, handed to the packet mux, to the SRTP
// session's read loop and buffer, to the track's buffer and reader, and
// through the interceptors that record it for feedback: three goroutine
// hand-offs and a few allocations a packet, which made the generator,
// sharing the machine with the server, cost three times the server's
// CPU per packet and set the capacity the ramp found.
//
// Here the subscriber's socket is wrapped (ltConn): once a track's first
// packet has come through pion (OnTrack), the candidate's read loop
// hands that SSRC's SRTP straight to the client (ltDirect), which
// decrypts it with the SRTP session's own context (pion's state, under
// pion's lock: media.RemoteSRTPContext), measures it and records it for
// feedback; everything else (STUN, DTLS, RTCP, new SSRCs) goes on to
// pion. Without pion's receive-side interceptors, the client sends the
// feedback a browser sends itself (ltFeedback): transport-wide feedback
// every 100 ms and receiver reports every second, for every packet
// received by either path. It sends no NACKs (nor did the loopback lose
// any packet in the runs measured); --pion-receive restores pion's path.

// ltNet is the network the subscribers' connections gather on: the
// host's, with each UDP socket an ltConn, found by its local port.
type ltNet struct {
	*stdnet.Net
	mu    sync.Mutex
	conns map[int]*ltConn
}

func newLtNet() (*ltNet, error) {
	n, err := stdnet.NewNet()
	if err != nil {
		return nil, err
	}
	return &ltNet{Net: n, conns: map[int]*ltConn{}}, nil
}

func (n *ltNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := n.Net.ListenUDP(network, laddr)
	if err != nil {
		return nil, err
	}
	u, ok := c.(*net.UDPConn)
	if !ok {
		return c, nil
	}
	lc := &ltConn{UDPConn: u, net: n}
	lc.port = u.LocalAddr().(*net.UDPAddr).Port
	lc.rd = newLtReader(lc)
	n.mu.Lock()
	n.conns[lc.port] = lc
	n.mu.Unlock()
	return lc, nil
}

// conn returns the socket bound to local port port.
func (n *ltNet) conn(port int) *ltConn {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.conns[port]
}

// ltConn is a subscriber connection's UDP socket.
type ltConn struct {
	*net.UDPConn
	net    *ltNet
	port   int
	direct atomic.Pointer[ltDirect]
	rd     *ltReader // batched reads (Linux); nil: through Go's poller
}

// ReadFromAddrPort reads the next datagram for pion, after handing the
// SRTP of the streams the client takes to it.
func (c *ltConn) ReadFromAddrPort(b []byte) (int, netip.AddrPort, error) {
	if c.rd != nil {
		return c.rd.readFrom(b)
	}
	for {
		n, addr, err := c.UDPConn.ReadFromUDPAddrPort(b)
		if err != nil {
			return n, addr, err
		}
		if d := c.direct.Load(); d != nil && d.take(b[:n]) {
			continue
		}
		return n, addr, nil
	}
}

// ReadFrom is ReadFromAddrPort for readers of net.PacketConn.
func (c *ltConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, addr, err := c.ReadFromAddrPort(b)
	if err != nil {
		return n, nil, err
	}
	return n, net.UDPAddrFromAddrPort(addr), nil
}

func (c *ltConn) WriteToAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	return c.UDPConn.WriteToUDPAddrPort(b, addr)
}

func (c *ltConn) Close() error {
	c.net.mu.Lock()
	if c.net.conns[c.port] == c {
		delete(c.net.conns, c.port)
	}
	c.net.mu.Unlock()
	return c.UDPConn.Close()
}

// ltDirect is one subscriber's own receive path: the streams it takes
// from the socket, and the SRTP context it decrypts them with.
type ltDirect struct {
	ctx    *srtp.Context
	ctxMu  *sync.Mutex
	h      rtp.Header // DecryptRTP's, under ctxMu
	byssrc atomic.Pointer[map[uint32]*ltReceiver]
	addMu  sync.Mutex
}

// take handles datagram b if it is RTP of a stream the client took; it
// reports whether it did (a datagram it cannot decrypt is dropped, as
// pion would).
func (d *ltDirect) take(b []byte) bool {
	if len(b) < 12 || b[0]>>6 != 2 {
		return false
	}
	if pt := b[1] & 0x7f; pt >= 64 && pt <= 95 {
		return false // RTCP
	}
	rx := (*d.byssrc.Load())[binary.BigEndian.Uint32(b[8:12])]
	if rx == nil {
		return false
	}
	d.ctxMu.Lock()
	out, err := d.ctx.DecryptRTP(b[:0], b, &d.h)
	d.ctxMu.Unlock()
	if err != nil {
		return true
	}
	rx.locked(out, time.Now().UnixNano())
	rx.c.r.ownPackets.Add(1)
	return true
}

// add takes the stream ssrc from now on.
func (d *ltDirect) add(ssrc uint32, rx *ltReceiver) {
	d.addMu.Lock()
	defer d.addMu.Unlock()
	old := *d.byssrc.Load()
	m := make(map[uint32]*ltReceiver, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	m[ssrc] = rx
	d.byssrc.Store(&m)
}

// takeTrack starts the client's own path for track tr once its first
// packet came through pion: the first track finds the socket and the
// SRTP context; every track adds its SSRC. Until this succeeds (and if
// it cannot), pion's path carries the track.
func (c *ltClient) takeTrack(tr *webrtc.TrackRemote, recv *webrtc.RTPReceiver, rx *ltReceiver) {
	c.mu.Lock()
	d := c.direct
	if d == nil {
		d = c.openDirect(recv)
		c.direct = d
	}
	c.mu.Unlock()
	if d != nil {
		d.add(uint32(tr.SSRC()), rx)
	}
}

// openDirect finds the subscriber connection's socket and SRTP context;
// nil if either is not there.
func (c *ltClient) openDirect(recv *webrtc.RTPReceiver) *ltDirect {
	n := c.r.ownNet
	t := recv.Transport()
	if n == nil || t == nil {
		return nil
	}
	pair, err := t.ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil || pair.Local == nil {
		return nil
	}
	conn := n.conn(int(pair.Local.Port))
	if conn == nil {
		return nil
	}
	ctx, mu, err := media.RemoteSRTPContext(t)
	if err != nil {
		return nil
	}
	d := &ltDirect{ctx: ctx, ctxMu: mu}
	empty := map[uint32]*ltReceiver{}
	d.byssrc.Store(&empty)
	conn.direct.Store(d)
	return d
}

// ltFeedback is what a subscriber reports of what it receives, as a
// browser does, and as the SFU does to its publishers
// (media.ReceiverFeedback): transport-wide feedback every
// media.FeedbackInterval, and a receiver report on each stream every
// second.
type ltFeedback struct {
	mu      sync.Mutex
	start   time.Time
	fb      *media.ReceiverFeedback
	twccID  uint8 // the header extension's ID; 0 until known
	streams map[uint32]*media.ReceptionStats
	sent    func([]rtcp.Packet) // counts what was sent, or nil
}

func newLtFeedback() *ltFeedback {
	return &ltFeedback{start: time.Now(), fb: media.NewReceiverFeedback(rand.Uint32()), streams: map[uint32]*media.ReceptionStats{}}
}

// setTrack learns the transport-wide extension's ID and the stream's
// clock rate from a track's receiver.
func (f *ltFeedback) setTrack(tr *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, e := range recv.GetParameters().HeaderExtensions {
		if e.URI == sdp.TransportCCURI {
			f.twccID = uint8(e.ID)
		}
	}
	f.stream(uint32(tr.SSRC())).ClockRate = float64(tr.Codec().ClockRate)
}

// stream returns stream ssrc's statistics, new if none yet. f.mu must
// be held.
func (f *ltFeedback) stream(ssrc uint32) *media.ReceptionStats {
	s := f.streams[ssrc]
	if s == nil {
		s = &media.ReceptionStats{}
		f.streams[ssrc] = s
	}
	return s
}

// record counts packet h, which arrived at now (Unix nanoseconds).
func (f *ltFeedback) record(h *rtp.Header, now int64) {
	arrival := time.Duration(now - f.start.UnixNano())
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fb.Record(f.stream(h.SSRC), h, f.twccID, arrival)
}

// collect returns the feedback due at now.
func (f *ltFeedback) collect(now time.Time) []rtcp.Packet {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fb.Collect(nil, now, maps.All(f.streams))
}

// loop sends the feedback on w until done closes.
func (f *ltFeedback) loop(done <-chan struct{}, w func([]rtcp.Packet) error) {
	t := time.NewTicker(media.FeedbackInterval)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case now := <-t.C:
			if pkts := f.collect(now); len(pkts) > 0 && w(pkts) == nil && f.sent != nil {
				f.sent(pkts)
			}
		}
	}
}

// newOwnAPI builds the pion API of the own receive and send paths
// (loadtest_send.go): the codecs, header extensions and feedback a
// browser negotiates (as newClientAPI), none of pion's interceptors but
// a counter, and the sockets of n.
func newOwnAPI(r *loadRun, n *ltNet, loopbackOnly bool) (*webrtc.API, error) {
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		return nil, err
	}
	for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		me.RegisterFeedback(webrtc.RTCPFeedback{Type: webrtc.TypeRTCPFBTransportCC}, kind)
		if err := me.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.TransportCCURI}, kind); err != nil {
			return nil, err
		}
	}
	me.RegisterFeedback(webrtc.RTCPFeedback{Type: "nack"}, webrtc.RTPCodecTypeVideo)
	me.RegisterFeedback(webrtc.RTCPFeedback{Type: "nack", Parameter: "pli"}, webrtc.RTPCodecTypeVideo)
	if err := webrtc.ConfigureSimulcastExtensionHeaders(me); err != nil {
		return nil, err
	}
	ir := &interceptor.Registry{}
	ir.Add(&rtcpCounterFactory{r: r})
	se := clientSettings(loopbackOnly)
	se.SetNet(n)
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
}

// countFeedback counts the subscribers' own feedback packets.
func (r *loadRun) countFeedback(pkts []rtcp.Packet) {
	for _, p := range pkts {
		switch p.(type) {
		case *rtcp.TransportLayerCC:
			r.feedbackSent.Add(1)
		case *rtcp.ReceiverReport:
			r.reportsSent.Add(1)
		}
	}
}

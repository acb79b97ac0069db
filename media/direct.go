package media

import (
	"errors"
	"log/slog"
	"net/netip"
	"reflect"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/pion/webrtc/v4"
)

// The direct write path: RTP to a subscriber whose connection runs over
// UDP is encrypted and handed to the SFU's UDP socket (batchConn) here,
// at the bottom of the interceptor chain, instead of going down pion's
// layers (the SRTP session's buffer pool, its packet mux endpoint, the
// ICE connection, the candidate pair, the UDP mux), which cost more
// than the encryption itself in the load test's profile.
//
// The SRTP context is pion's own: the connection's SRTP session's local
// context and the mutex that guards it, which pion does not export and
// which directConn reaches by reflection (srtpContextOf). Sharing it
// keeps one rollover counter per SSRC whichever path a packet takes, so
// a connection may move between this path and pion's (its ICE pair
// moving between UDP and TCP after an ICE restart) at any time without
// the subscriber's decryption losing step. If pion's fields ever change
// shape, srtpContextOf fails, every write takes pion's path, and
// TestSRTPContextOf says so.

// directFactory builds one directConn per PeerConnection.
type directFactory struct {
	out *batchConn // nil on a virtual network: never direct
	log *slog.Logger

	mu    sync.Mutex
	conns map[string]*directConn    // PeerConnection id ->
	addrs map[string]netip.AddrPort // PeerConnection id -> its direct pair's remote address
	// byAddr is the table the read path looks connections up in
	// (directin.go), rebuilt from addrs by route.
	byAddr atomic.Pointer[map[netip.AddrPort]*directConn]
	// retired are the read path's drops of closed connections.
	retired ReceiveDrops
	// dropForTest, in tests, loses the bound packets it returns true
	// for, as a network would.
	dropForTest atomic.Pointer[func([]byte) bool]
}

func newDirectFactory(out *batchConn, log *slog.Logger) *directFactory {
	return &directFactory{out: out, log: log, conns: map[string]*directConn{}, addrs: map[string]netip.AddrPort{}}
}

func (f *directFactory) NewInterceptor(id string) (interceptor.Interceptor, error) {
	c := &directConn{factory: f, id: id}
	f.mu.Lock()
	f.conns[id] = c
	f.mu.Unlock()
	return c, nil
}

func (f *directFactory) get(id string) *directConn {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.conns[id]
}

// attach lets PeerConnection pc write and read directly once its SRTP
// session runs and its selected pair is UDP (setPair).
func (f *directFactory) attach(pc *webrtc.PeerConnection) {
	if c := f.get(pc.ID()); c != nil && f.out != nil {
		c.transport.Store(pc.SCTP().Transport())
		c.findHeard()
	}
}

// setPair follows PeerConnection id's selected ICE pair: a UDP pair
// from the SFU's own socket to an IPv4 address is written to directly.
func (f *directFactory) setPair(id string, pair *webrtc.ICECandidatePair) {
	c := f.get(id)
	if c == nil {
		return
	}
	to, ok := directAddr(pair)
	c.mu.Lock()
	c.to, c.toOK = to, ok
	c.updateLocked()
	c.mu.Unlock()
	f.route(id, to, ok && f.out != nil)
	c.findHeard()
}

// directAddr is where a selected pair sends, when it can be written to
// directly: UDP, the local candidate on the SFU's socket (not a relay),
// the remote a literal IPv4 address (batchConn sends IPv4).
func directAddr(pair *webrtc.ICECandidatePair) (netip.AddrPort, bool) {
	if !pairIsUDP(pair) || pair.Remote == nil || pair.Local.Typ == webrtc.ICECandidateTypeRelay {
		return netip.AddrPort{}, false
	}
	ip, err := netip.ParseAddr(pair.Remote.Address)
	if err != nil || !ip.Unmap().Is4() || pair.Remote.Port == 0 {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(ip.Unmap(), pair.Remote.Port), true
}

// directConn is one PeerConnection's interceptor. out is what its
// writers use; nil sends through pion.
type directConn struct {
	interceptor.NoOp
	factory   *directFactory
	id        string
	transport atomic.Pointer[webrtc.DTLSTransport]
	heard     atomic.Pointer[heardMark] // the direct pair's remote candidate (heard.go)
	out       atomic.Pointer[directOut]
	written   atomic.Uint64 // packets written directly, for tests (beside out: one cache line)
	// pending: the pair is direct but the SRTP context is not known
	// yet; writers call resolve.
	pending atomic.Bool
	viaPion atomic.Uint64 // packets written through pion, for tests

	// The read path (directin.go): in is set once the SRTP session's
	// buffers are known; inPending says deliver should look for them.
	in        atomic.Pointer[directIn]
	inPending atomic.Bool
	received  atomic.Uint64 // packets delivered directly
	heardAt   atomic.Int64  // when deliver last told heard, unix nanoseconds (beside received: one cache line)
	inDropped atomic.Uint64 // packets dropped because a session's buffer was full
	inBad     atomic.Uint64 // packets the read path could not decrypt
	bound     atomic.Uint64 // bound RTP packets handed to their layer
	rtcpIn    atomic.Uint64 // RTCP packets handed to the connection's handler
	table     atomic.Pointer[inTable]

	mu       sync.Mutex // guards the fields below and changes of out
	to       netip.AddrPort
	toOK     bool
	ctx      *srtp.Context
	ctxMu    *sync.Mutex
	seal     *rtpSealer   // nil: pion's EncryptRTP
	buf      *directBuf   // written under ctxMu
	failed   bool         // srtpContextOf failed: pion's path for good
	inFailed bool         // srtpBuffersOf failed: pion's read path for good
	rtcpWant func([]byte) // bindRTCP's handler
	closed   bool
}

// directOut is an immutable description of where and how to write.
type directOut struct {
	conn  *batchConn
	to    netip.AddrPort
	ctx   *srtp.Context
	ctxMu *sync.Mutex // pion's lock for ctx; also guards buf
	// seal encrypts with ctx's key without pion's bookkeeping (seal.go);
	// nil when ctx is not one it can stand in for. It points to sealer,
	// a copy in this struct's own cache lines, which a packet's write
	// has loaded already.
	seal   *rtpSealer
	buf    *directBuf
	sealer rtpSealer
}

// directBuf is the memory a connection's direct writes marshal and
// encrypt into, one at a time under the context's lock.
type directBuf struct {
	cryptScratch
	exts [4]rtp.Extension // backing array for hdr.Extensions
	// pkt holds the packet as marshalled, then as encrypted in place:
	// one buffer per subscriber instead of two, half the memory a
	// fan-out walks through (70 subscribers' buffers do not stay in
	// cache).
	pkt [packetSize + 200]byte
}

// sent is the number of packets written directly.
func (c *directConn) sent() uint64 { return c.written.Load() }

// updateLocked recomputes out; mu must be held.
func (c *directConn) updateLocked() {
	c.pending.Store(!c.closed && c.toOK && c.ctx == nil && !c.failed)
	c.inPending.Store(!c.closed && c.toOK && c.in.Load() == nil && !c.inFailed)
	if c.closed || !c.toOK || c.ctx == nil {
		c.out.Store(nil) // for ctx, resolve tries again once SRTP runs
		return
	}
	o := &directOut{conn: c.factory.out, to: c.to, ctx: c.ctx, ctxMu: c.ctxMu, buf: c.buf}
	if c.seal != nil {
		o.sealer = *c.seal
		o.seal = &o.sealer
	}
	c.out.Store(o)
}

// resolve finds pion's SRTP context for the connection once its SRTP
// session has started, and returns what to write with, or nil while
// the packet must take pion's path.
func (c *directConn) resolve() *directOut {
	c.mu.Lock()
	defer c.mu.Unlock()
	if o := c.out.Load(); o != nil || c.failed || c.closed || !c.toOK || c.ctx != nil {
		return o
	}
	t := c.transport.Load()
	if t == nil || c.factory.out == nil {
		return nil
	}
	ctx, mu, err := srtpContextOf(t)
	if errors.Is(err, ErrSRTPNotStarted) {
		return nil
	}
	if err != nil {
		c.failed = true
		c.updateLocked()
		c.factory.log.Warn("direct UDP writes disabled: pion's SRTP session is not as expected; writing through pion", "err", err)
		return nil
	}
	c.ctx, c.ctxMu = ctx, mu
	if c.seal, err = sealerOf(ctx); err != nil {
		c.factory.log.Debug("subscriber packets encrypted by pion's SRTP context", "err", err)
	}
	c.buf = &directBuf{}
	c.buf.hdr.Extensions = c.buf.exts[:0]
	c.updateLocked()
	return c.out.Load()
}

// BindLocalStream puts the direct path under every stream the
// connection sends.
func (c *directConn) BindLocalStream(_ *interceptor.StreamInfo, next interceptor.RTPWriter) interceptor.RTPWriter {
	return &directWriter{c: c, next: next}
}

func (c *directConn) Close() error {
	c.mu.Lock()
	c.closed = true
	c.out.Store(nil)
	c.in.Store(nil)
	c.inPending.Store(false)
	c.table.Store(nil)
	c.mu.Unlock()
	c.factory.mu.Lock()
	if c.factory.conns[c.id] == c {
		delete(c.factory.conns, c.id)
		c.factory.retired.Behind += c.inDropped.Load()
		c.factory.retired.NotAuthentic += c.inBad.Load()
	}
	c.factory.mu.Unlock()
	c.factory.route(c.id, netip.AddrPort{}, false)
	return nil
}

// directWriter is one stream's writer: direct when the connection's out
// is set, else pion's.
type directWriter struct {
	c    *directConn
	next interceptor.RTPWriter
}

func (w *directWriter) Write(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
	o := w.c.out.Load()
	if o == nil && w.c.pending.Load() {
		o = w.c.resolve()
	}
	if o == nil {
		w.c.viaPion.Add(1)
		return w.next.Write(h, payload, a)
	}
	n, err := o.write(h, payload)
	if err == nil {
		w.c.written.Add(1)
	}
	return n, err
}

// write marshals, encrypts and sends one packet written through the
// interceptors, with pion's context (such a write does not know the
// stream's rollover counter). A UDP write never waits for the
// subscriber: batchConn copies it into the pending batch or sends it at
// once.
func (o *directOut) write(h *rtp.Header, payload []byte) (int, error) {
	b := o.buf
	o.ctxMu.Lock()
	defer o.ctxMu.Unlock()
	enc, err := o.encrypt(b.pkt[:], h, payload, false, 0, &b.cryptScratch)
	if err != nil {
		return 0, err
	}
	if _, err := o.conn.WriteToAddrPort(enc, o.to); err != nil {
		return 0, err
	}
	return len(payload), nil
}

// writeStream writes one packet of a downTrack, whose rollover counter
// is roc: sealed when the output has a sealer, else with pion's
// context. With out, the send batch of the socket reader running the
// fan-out, it is marshalled and encrypted straight into the batch's
// next slot (it must fit: fitsSlot), never passing through the
// connection's own buffer nor copied again, and a sealed one takes no
// lock (the sealer has no per-packet state). Without, it goes through
// the connection's buffer to the shared send batch.
func (o *directOut) writeStream(out *outbox, h *rtp.Header, payload []byte, roc uint32) error {
	sealed := o.seal != nil
	if out == nil {
		b := o.buf
		o.ctxMu.Lock() // guards buf
		defer o.ctxMu.Unlock()
		enc, err := o.encrypt(b.pkt[:], h, payload, sealed, roc, &b.cryptScratch)
		if err != nil {
			return err
		}
		_, err = o.conn.WriteToAddrPort(enc, o.to)
		return err
	}
	if !sealed {
		o.ctxMu.Lock() // pion's lock for its context
		defer o.ctxMu.Unlock()
	}
	enc, err := o.encrypt(out.slot(), h, payload, sealed, roc, &out.cryptScratch)
	if err != nil {
		return err
	}
	out.commit(len(enc), o.to)
	return nil
}

// encrypt marshals a packet into pkt and encrypts it there, in place:
// sealed, with its rollover counter roc, or with pion's context, whose
// lock the caller holds. sc is the caller's scratch memory.
func (o *directOut) encrypt(pkt []byte, h *rtp.Header, payload []byte, sealed bool, roc uint32, sc *cryptScratch) ([]byte, error) {
	hl, err := h.MarshalTo(pkt)
	if err != nil {
		return nil, err
	}
	if hl+len(payload)+srtpRoom > len(pkt) {
		return nil, errDirectTooLarge
	}
	n := hl + copy(pkt[hl:], payload)
	if sealed {
		enc := o.seal.seal(pkt, h, hl, n, roc, &sc.iv)
		if enc == nil {
			return nil, errNotSealed
		}
		return enc, nil
	}
	enc, err := o.ctx.EncryptRTP(pkt[:0], pkt[:n], &sc.hdr)
	if err != nil {
		return nil, err
	}
	if &enc[0] != &pkt[0] {
		return nil, errDirectTooLarge // encryption moved it
	}
	return enc, nil
}

// cryptScratch is a writer's memory for encrypt: the header pion's
// EncryptRTP parses a packet into, a sealed packet's nonce.
type cryptScratch struct {
	hdr rtp.Header
	iv  [12]byte
}

// fitsSlot reports whether a packet of this header and payload size,
// encrypted, fits in a send batch's slot.
func fitsSlot(h *rtp.Header, payload int) bool {
	return h.MarshalSize()+payload+srtpRoom <= batchMTU
}

// srtpRoom is what encryption may add to a packet: the authentication
// tag, a ROC and a master key identifier.
const srtpRoom = 32

var (
	errDirectTooLarge = errors.New("media: packet too large for the direct path")
	errNotSealed      = errors.New("media: a cryptex packet with CSRCs is not sealed without pion")
	errSRTPInternals  = errors.New("media: pion's SRTP session has an unexpected shape")
)

// ErrSRTPNotStarted is what LocalSRTPContext and RemoteSRTPContext
// return until pion has started the transport's SRTP session.
var ErrSRTPNotStarted = errors.New("media: SRTP session not started")

// srtpContextOf returns the local (encrypting) SRTP context of a DTLS
// transport's SRTP session, with the mutex pion guards it with. Both
// are unexported in pion (webrtc.DTLSTransport.srtpSession, then
// srtp.SessionSRTP's session.localContext and localContextMutex, or
// remoteContext and remoteContextMutex); each field's type is checked
// before it is used.
func srtpContextOf(t *webrtc.DTLSTransport) (*srtp.Context, *sync.Mutex, error) {
	return srtpSessionContext(t, "srtpSession", "local")
}

// LocalSRTPContext returns the context that encrypts what a DTLS
// transport's SRTP session sends, with the mutex pion guards it with
// (srtpContextOf); ErrSRTPNotStarted until pion has started the session.
// The load generator's publishers encrypt with it on their own send
// path; pion's own writes share its state.
func LocalSRTPContext(t *webrtc.DTLSTransport) (*srtp.Context, *sync.Mutex, error) {
	return srtpContextOf(t)
}

// RemoteSRTPContext returns the context that decrypts what a DTLS
// transport's SRTP session receives, with the mutex pion guards it
// with, reached as srtpContextOf reaches the local one; an error until
// pion has started the session (after the DTLS handshake) or if pion's
// internals changed shape. The load generator's subscribers decrypt with
// it on their own receive path; pion's own reads share its state.
func RemoteSRTPContext(t *webrtc.DTLSTransport) (*srtp.Context, *sync.Mutex, error) {
	return srtpSessionContext(t, "srtpSession", "remote")
}

// loadedSession returns the session a DTLS transport (tv, its struct)
// keeps in the atomic.Value field named session ("srtpSession",
// "srtcpSession"); ErrSRTPNotStarted until pion stores it.
func loadedSession(tv reflect.Value, session string) (any, error) {
	f := fieldOf[atomic.Value](tv, session)
	if f == nil {
		return nil, errSRTPInternals
	}
	v := f.Load()
	if v == nil {
		return nil, ErrSRTPNotStarted
	}
	return v, nil
}

// srtpSessionContext returns the local or the remote (decrypting)
// context of a DTLS transport's SRTP or SRTCP session ("srtpSession",
// "srtcpSession"), with its mutex.
func srtpSessionContext(t *webrtc.DTLSTransport, session, side string) (*srtp.Context, *sync.Mutex, error) {
	v, err := loadedSession(reflect.ValueOf(t).Elem(), session)
	if err != nil {
		return nil, nil, err
	}
	switch sess := v.(type) {
	case *srtp.SessionSRTP:
		if sess == nil || session != "srtpSession" {
			return nil, nil, errSRTPInternals
		}
	case *srtp.SessionSRTCP:
		if sess == nil || session != "srtcpSession" {
			return nil, nil, errSRTPInternals
		}
	default:
		return nil, nil, errSRTPInternals
	}
	sv := reflect.ValueOf(v).Elem().FieldByName("session")
	if !sv.IsValid() || sv.Kind() != reflect.Struct {
		return nil, nil, errSRTPInternals
	}
	cf := fieldOf[*srtp.Context](sv, side+"Context")
	mu := fieldOf[sync.Mutex](sv, side+"ContextMutex")
	if cf == nil || mu == nil || *cf == nil {
		return nil, nil, errSRTPInternals
	}
	return *cf, mu, nil
}

// fieldOf returns a pointer to the (unexported) field name of struct v,
// which must be addressable, or nil unless the field is a T.
func fieldOf[T any](v reflect.Value, name string) *T {
	f := v.FieldByName(name)
	if !f.IsValid() || f.Type() != reflect.TypeFor[T]() {
		return nil
	}
	return (*T)(unsafe.Pointer(f.UnsafeAddr()))
}

package main

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/srtp/v3"
	"github.com/pion/webrtc/v4"
	"golang.org/x/net/ipv4"

	"github.com/concord-odr/concord/media"
)

// The publishers' own send path. Through pion, every packet a synthetic
// publisher wrote went down its track, the report, NACK and
// transport-wide interceptors (the NACK responder copying each packet
// into an allocation of its own), the SRTP session, the packet mux, the
// ICE connection and one sendto: at 50 three-person rooms a third of
// the generator's CPU, which shares the machine with the server and,
// costing twice the server's, set the capacity the ramp found.
//
// Here a publisher does itself what those interceptors did, as a
// browser's RTP stack does: transport-wide sequence numbers on every
// packet, a sender report on every stream each second, and the server's
// NACKs answered on the layer's RTX stream from a ring of its recent
// packets. Once the publish connection's ICE pair (over UDP) and SRTP
// session are up, its packets are encrypted with the session's own
// context (pion's state, under pion's lock: media.LocalSRTPContext) and
// a frame's packets leave in one sendmmsg from the pair's socket; before
// that, and for good on a pair it cannot write to itself (a relay, TCP),
// they go down pion's write stream (SRTP, ICE) with no interceptor.
// --pion-send restores pion's whole path.

// ringSlots is how many recent packets of a video layer the publisher
// keeps for retransmission: four seconds at 500 kbit/s.
const ringSlots = 256

// ownTrack is a published track, or simulcast layer, on the own send
// path. pion binds it as the TrackLocalStaticRTP it embeds, which finds
// the negotiated codec; it keeps what the binding says.
type ownTrack struct {
	*webrtc.TrackLocalStaticRTP
	bound atomic.Pointer[ownBinding]
}

// ownBinding is what pion negotiated for a track.
type ownBinding struct {
	ssrc, rtxSSRC uint32
	pt, rtxPT     uint8 // rtxPT 0: no RTX, retransmissions go on ssrc
	clock         uint32
	twccID        uint8 // the transport-wide sequence number's extension ID; 0: none
	ws            webrtc.TrackLocalWriter
}

func (t *ownTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	codec, err := t.TrackLocalStaticRTP.Bind(ctx)
	if err != nil {
		return codec, err
	}
	b := &ownBinding{ssrc: uint32(ctx.SSRC()), rtxSSRC: uint32(ctx.SSRCRetransmission()), pt: uint8(codec.PayloadType),
		clock: codec.ClockRate, ws: ctx.WriteStream()}
	for _, c := range ctx.CodecParameters() {
		if strings.EqualFold(c.MimeType, webrtc.MimeTypeRTX) && rtxFor(c.SDPFmtpLine) == int(codec.PayloadType) {
			b.rtxPT = uint8(c.PayloadType)
		}
	}
	if b.rtxSSRC == 0 {
		b.rtxPT = 0
	}
	for _, e := range ctx.HeaderExtensions() {
		if e.URI == sdp.TransportCCURI {
			b.twccID = uint8(e.ID)
		}
	}
	t.bound.Store(b)
	return codec, nil
}

func (t *ownTrack) Unbind(ctx webrtc.TrackLocalContext) error {
	t.bound.Store(nil)
	return t.TrackLocalStaticRTP.Unbind(ctx)
}

// rtxFor returns the payload type an RTX format's "apt" names, or -1.
func rtxFor(fmtp string) int {
	for p := range strings.SplitSeq(fmtp, ";") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(p), "apt="); ok {
			if n, err := strconv.Atoi(v); err == nil {
				return n
			}
		}
	}
	return -1
}

// ownStream is a published track's sending state, under its sender's mu.
type ownStream struct {
	ring    *ownRing // video: recent packets for NACKs; nil for audio
	rtxSeq  uint16
	packets uint32 // for sender reports
	octets  uint32
	lastTS  uint32    // the newest packet's RTP timestamp
	lastAt  time.Time // when it was sent
	lastSR  time.Time
}

// ownRing keeps a layer's recent packets as marshalled (unencrypted).
type ownRing struct {
	seq  [ringSlots]uint16
	n    [ringSlots]int // 0: empty
	data []byte         // ringSlots slots of ringSlot bytes
}

// ringSlot is a ring slot's size: the largest payload the generator
// writes and a header with its extensions.
const ringSlot = maxVideoPayload + 128

func newOwnRing() *ownRing { return &ownRing{data: make([]byte, ringSlots*ringSlot)} }

// slot returns the buffer of sequence number seq's slot, emptied.
func (r *ownRing) slot(seq uint16) []byte {
	i := int(seq) % ringSlots
	r.n[i] = 0
	return r.data[i*ringSlot : (i+1)*ringSlot]
}

// keep records that seq's slot holds its n-byte packet.
func (r *ownRing) keep(seq uint16, n int) {
	i := int(seq) % ringSlots
	r.seq[i], r.n[i] = seq, n
}

// get returns packet seq, or nil when it is no longer kept.
func (r *ownRing) get(seq uint16) []byte {
	i := int(seq) % ringSlots
	if r.n[i] == 0 || r.seq[i] != seq {
		return nil
	}
	return r.data[i*ringSlot : i*ringSlot+r.n[i]]
}

// ownSender is a publish connection's own send path.
type ownSender struct {
	c    *ltClient
	net  *ltNet
	pair atomic.Pointer[webrtc.ICECandidatePair] // the connection's selected pair, as ICE says

	mu       sync.Mutex
	twseq    uint16
	twbuf    [2]byte
	out      *ownOut                  // the direct path, once resolved
	resolved *webrtc.ICECandidatePair // the pair out and viaPion are of
	viaPion  bool                     // the pair is not one to write to directly: pion's write stream
	nextTry  time.Time
	scratch  [ringSlot]byte // an audio packet or a retransmission, as marshalled
	rtxHdr   rtp.Header
	rtxBuf   [ringSlot + 2]byte
	// The batch being filled: encrypted packets, one sendmmsg.
	msgs  []ipv4.Message
	bufs  [ownBatch][ringSlot + 64]byte
	iovec [ownBatch][1][]byte // each message's one buffer
	// Counts for tests and the report.
	direct, pion, retransmitted, reports atomic.Uint64
	// dropForTest, in tests, loses the packets it returns true for
	// (marshalled, before encryption) as a network would.
	dropForTest func([]byte) bool
}

// ownOut is where the direct path writes.
type ownOut struct {
	pc    *ipv4.PacketConn
	to    *net.UDPAddr
	ctx   *srtp.Context
	ctxMu *sync.Mutex
}

// ownBatch is the most packets one sendmmsg carries.
const ownBatch = 16

// ownDropForTest, set by a test before a run, is every sender's
// dropForTest.
var ownDropForTest func([]byte) bool

// newOwnSender starts the own send path of c's publish connection.
func newOwnSender(c *ltClient, n *ltNet) *ownSender {
	s := &ownSender{c: c, net: n, msgs: make([]ipv4.Message, 0, ownBatch), dropForTest: ownDropForTest}
	// Told rather than asked: pion's GetSelectedCandidatePair reads
	// what starting the transport writes without a lock.
	c.pub.SCTP().Transport().ICETransport().OnSelectedCandidatePairChange(func(p *webrtc.ICECandidatePair) { s.pair.Store(p) })
	return s
}

// resolveLocked returns the direct path once the connection's pair and
// SRTP session are up; nil while packets go through pion. mu is held.
func (s *ownSender) resolveLocked(now time.Time) *ownOut {
	pair := s.pair.Load()
	if pair != s.resolved {
		// A new pair (ICE chose another): what was queued leaves by the
		// old one, and the new one is resolved afresh.
		s.flushLocked()
		s.out, s.viaPion, s.resolved, s.nextTry = nil, false, pair, time.Time{}
	}
	if s.out != nil || s.viaPion || now.Before(s.nextTry) {
		return s.out
	}
	s.nextTry = now.Add(20 * time.Millisecond)
	if pair == nil || pair.Local == nil || pair.Remote == nil {
		return nil
	}
	if pair.Local.Protocol != webrtc.ICEProtocolUDP || pair.Local.Typ == webrtc.ICECandidateTypeRelay {
		s.viaPion = true
		return nil
	}
	conn := s.net.conn(int(pair.Local.Port))
	ip, perr := netip.ParseAddr(pair.Remote.Address)
	if conn == nil || perr != nil {
		s.viaPion = true
		return nil
	}
	ctx, mu, err := media.LocalSRTPContext(s.c.pub.SCTP().Transport())
	if errors.Is(err, media.ErrSRTPNotStarted) {
		return nil
	}
	if err != nil {
		s.viaPion = true
		s.c.r.noteError("own send path: " + errText(err))
		return nil
	}
	s.out = &ownOut{pc: ipv4.NewPacketConn(conn.UDPConn), to: net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip.Unmap(), pair.Remote.Port)),
		ctx: ctx, ctxMu: mu}
	return s.out
}

// write sends one packet of t (its header's SSRC, payload type and
// transport-wide sequence number set here), or queues it in the batch
// flush sends; it reports whether the packet left or was queued.
func (s *ownSender) write(t *ltPubTrack, h *rtp.Header, payload []byte) bool {
	b := t.own.bound.Load()
	if b == nil {
		return false // not negotiated yet
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	h.SSRC, h.PayloadType = b.ssrc, b.pt
	st := &t.stream
	buf := s.scratch[:]
	if st.ring != nil {
		buf = st.ring.slot(h.SequenceNumber)
	}
	pkt, hl, ok := s.marshalLocked(b, h, payload, buf)
	if !ok {
		return false
	}
	if st.ring != nil {
		st.ring.keep(h.SequenceNumber, len(pkt))
	}
	st.packets++
	st.octets += uint32(len(payload))
	st.lastTS, st.lastAt = h.Timestamp, now
	return s.sendLocked(b, h, pkt, hl, now)
}

// marshalLocked gives h the connection's next transport-wide sequence
// number (when negotiated) and marshals it and payload into buf; it
// returns the packet and its header's length, or false when it does not
// fit.
func (s *ownSender) marshalLocked(b *ownBinding, h *rtp.Header, payload, buf []byte) ([]byte, int, bool) {
	if b.twccID != 0 {
		s.twseq++
		binary.BigEndian.PutUint16(s.twbuf[:], s.twseq)
		if err := h.SetExtension(b.twccID, s.twbuf[:]); err != nil {
			return nil, 0, false
		}
	}
	hl := h.MarshalSize()
	if hl+len(payload) > len(buf) {
		return nil, 0, false
	}
	if _, err := h.MarshalTo(buf); err != nil {
		return nil, 0, false
	}
	return buf[:hl+copy(buf[hl:], payload)], hl, true
}

// sendLocked encrypts marshalled packet pkt (header h, hl bytes of it)
// into the batch, or writes it through pion's write stream.
func (s *ownSender) sendLocked(b *ownBinding, h *rtp.Header, pkt []byte, hl int, now time.Time) bool {
	if s.dropForTest != nil && s.dropForTest(pkt) {
		return true
	}
	o := s.resolveLocked(now)
	if o == nil {
		s.pion.Add(1)
		_, err := b.ws.WriteRTP(h, pkt[hl:])
		return err == nil
	}
	if len(s.msgs) == ownBatch {
		s.flushLocked()
	}
	i := len(s.msgs)
	o.ctxMu.Lock()
	enc, err := o.ctx.EncryptRTP(s.bufs[i][:0], pkt, h)
	o.ctxMu.Unlock()
	if err != nil {
		return false
	}
	s.iovec[i][0] = enc
	s.msgs = append(s.msgs, ipv4.Message{Buffers: s.iovec[i][:], Addr: o.to})
	s.direct.Add(1)
	return true
}

// flush sends the batch.
func (s *ownSender) flush() {
	s.mu.Lock()
	s.flushLocked()
	s.mu.Unlock()
}

func (s *ownSender) flushLocked() {
	if len(s.msgs) == 0 || s.out == nil {
		return
	}
	for sent := 0; sent < len(s.msgs); {
		n, err := s.out.pc.WriteBatch(s.msgs[sent:], 0)
		if err != nil {
			if s.c.r.ctx.Err() == nil {
				s.c.r.noteError("own send path: " + errText(err))
			}
			break
		}
		sent += n
	}
	s.msgs = s.msgs[:0]
}

// nack answers the server's NACK for t's packets it still keeps, on the
// layer's RTX stream (RFC 4588) when one was negotiated, as pion's NACK
// responder did.
func (s *ownSender) nack(t *ltPubTrack, n *rtcp.TransportLayerNack) {
	b := t.own.bound.Load()
	if b == nil || t.stream.ring == nil || n.MediaSSRC != b.ssrc {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	for _, p := range n.Nacks {
		for _, seq := range p.PacketList() {
			if s.resendLocked(t, b, seq, now) {
				s.retransmitted.Add(1)
			}
		}
	}
	s.flushLocked()
}

// resendLocked sends packet seq of t again, with a transport-wide
// sequence number of its own.
func (s *ownSender) resendLocked(t *ltPubTrack, b *ownBinding, seq uint16, now time.Time) bool {
	kept := t.stream.ring.get(seq)
	if kept == nil {
		return false
	}
	h := &s.rtxHdr
	hl, err := h.Unmarshal(kept)
	if err != nil {
		return false
	}
	payload := kept[hl:]
	if b.rtxPT != 0 {
		t.stream.rtxSeq++
		h.SSRC, h.PayloadType, h.SequenceNumber = b.rtxSSRC, b.rtxPT, t.stream.rtxSeq
		binary.BigEndian.PutUint16(s.rtxBuf[:], seq)
		payload = s.rtxBuf[:2+copy(s.rtxBuf[2:], payload)]
	}
	pkt, hl, ok := s.marshalLocked(b, h, payload, s.scratch[:])
	if !ok {
		return false
	}
	return s.sendLocked(b, h, pkt, hl, now)
}

// report sends t's sender report when a second has passed since the
// last, as pion's report interceptor did: the RTP time of now, from the
// newest packet's timestamp and the time since it was sent.
func (s *ownSender) report(t *ltPubTrack, now time.Time) {
	b := t.own.bound.Load()
	if b == nil {
		return
	}
	s.mu.Lock()
	st := &t.stream
	if st.packets == 0 || now.Sub(st.lastSR) < time.Second {
		s.mu.Unlock()
		return
	}
	st.lastSR = now
	sr := st.senderReport(b, now)
	s.mu.Unlock()
	if s.c.pub.WriteRTCP([]rtcp.Packet{sr}) == nil {
		s.reports.Add(1)
	}
}

// senderReport is the stream's sender report at now.
func (st *ownStream) senderReport(b *ownBinding, now time.Time) *rtcp.SenderReport {
	return &rtcp.SenderReport{SSRC: b.ssrc, NTPTime: media.NTPTime(now.UnixNano()),
		RTPTime:     st.lastTS + uint32(now.Sub(st.lastAt).Seconds()*float64(b.clock)),
		PacketCount: st.packets, OctetCount: st.octets}
}

// sendPath sums what the publishers' own send paths sent.
func (r *loadRun) sendPath() *ltSendPath {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := &ltSendPath{}
	for _, c := range r.clients {
		if s := c.snd; s != nil {
			p.OwnPackets += s.direct.Load()
			p.PionPackets += s.pion.Load()
			p.Retransmitted += s.retransmitted.Load()
			p.SenderReports += s.reports.Load()
		}
	}
	return p
}

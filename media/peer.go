package media

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// CandidateInit is an ICE candidate as browsers exchange it.
type CandidateInit = webrtc.ICECandidateInit

type subscription struct {
	down   *downTrack
	sender *webrtc.RTPSender
}

// Peer is one participant's pair of connections to the SFU.
type Peer struct {
	id   string
	room *Room
	log  *slog.Logger
	send func(Signal)
	pub  *webrtc.PeerConnection
	sub  *webrtc.PeerConnection

	// ups is guarded by room.mu.
	ups map[string]*upTrack

	onState atomic.Pointer[func(pc, state string)]

	smu     sync.Mutex
	screens map[string]bool // track ids the client marked as screen shares

	// Local candidates wait while a description is being set and not
	// yet sent: a client drops a candidate that arrives before the
	// description it belongs to.
	cmu       sync.Mutex
	held      map[string]bool // pc -> candidates are held
	heldCands map[string][]Signal

	bw      *bandwidth    // the sub connection's estimate
	realloc chan struct{} // wakes allocateLoop
	// bwPausedAt is when each video now paused for bandwidth was paused
	// (unix nanoseconds), for allocate, on allocateLoop only.
	bwPausedAt map[*downTrack]int64
	// negotiate wakes negotiateLoop, which makes the sub offers outside
	// room.mu; nmu serialises the sub connection's offer and answer.
	negotiate chan struct{}
	nmu       sync.Mutex
	// offerHook, in tests, runs before each sub offer is made.
	offerHook atomic.Pointer[func()]
	done      chan struct{} // closed by closePCs
	doneOnce  sync.Once

	mu sync.Mutex // guards the fields below
	// subs are forwarded now.
	subs map[*upTrack]subscription
	// paused are negotiated on sub but forward nothing (Allow false, a
	// mute): resuming needs no renegotiation.
	paused         map[*upTrack]subscription
	awaitingAnswer bool // a sub offer is out
	renegotiate    bool // changes happened while an offer was out
	iceRestart     bool // the next sub offer restarts ICE
	pending        map[string][]CandidateInit
	maxLayer       map[string]int // publisher -> highest simulcast layer wanted
	closed         bool
	subUDP         bool // the sub connection's selected pair is UDP

	speaker atomic.Pointer[string] // its active speaker, favoured by allocate
	subUp   atomic.Bool            // the sub connection has been up (subLinkUp)
	// rtcpTracks are the tracks on the sub connection, paused ones
	// included, for onSubRTCP; replaced whole under mu when one is added
	// or removed (storeRTCPTracksLocked).
	rtcpTracks atomic.Pointer[[]*downTrack]
}

func newPeer(r *Room, id string, send func(Signal)) (*Peer, error) {
	p := &Peer{
		id:        id,
		room:      r,
		log:       r.log.With("participant", id),
		send:      send,
		ups:       map[string]*upTrack{},
		subs:      map[*upTrack]subscription{},
		paused:    map[*upTrack]subscription{},
		pending:   map[string][]CandidateInit{},
		maxLayer:  map[string]int{},
		held:      map[string]bool{PCPublish: true, PCSubscribe: true},
		heldCands: map[string][]Signal{},
		realloc:   make(chan struct{}, 1),
		negotiate: make(chan struct{}, 1),
		done:      make(chan struct{}),
	}
	p.bw = newBandwidth(p.reallocate)
	cfg := webrtc.Configuration{}
	var err error
	if p.pub, err = r.sfu.api.NewPeerConnection(cfg); err != nil {
		return nil, fmt.Errorf("media: publish connection: %w", err)
	}
	if p.sub, err = r.sfu.api.NewPeerConnection(cfg); err != nil {
		_ = p.pub.Close()
		return nil, fmt.Errorf("media: subscribe connection: %w", err)
	}
	r.sfu.twcc.attach(p.sub.ID(), p.bw)
	r.sfu.direct.attach(p.pub)
	r.sfu.direct.attach(p.sub)
	r.sfu.direct.bindRTCP(p.sub.ID(), p.onSubRTCP)
	for name, pc := range map[string]*webrtc.PeerConnection{PCPublish: p.pub, PCSubscribe: p.sub} {
		name := name
		pc.OnICECandidate(func(c *webrtc.ICECandidate) {
			if c == nil {
				return
			}
			init := c.ToJSON()
			p.sendCandidate(name, Signal{Type: "candidate", PC: name, Candidate: &init})
		})
		pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
			p.log.Debug("connection state", "pc", name, "state", s.String())
			if f := p.onState.Load(); f != nil {
				(*f)(name, s.String())
			}
		})
	}
	p.sub.SCTP().Transport().ICETransport().OnSelectedCandidatePairChange(p.subPairChanged)
	p.sub.OnICEConnectionStateChange(func(s webrtc.ICEConnectionState) {
		if s == webrtc.ICEConnectionStateConnected {
			p.subLinkUp() // back, perhaps on the same pair
		}
		if s != webrtc.ICEConnectionStateNew {
			p.kickNegotiation() // an offer may wait for subStarted
		}
	})
	pubID := p.pub.ID()
	p.pub.SCTP().Transport().ICETransport().OnSelectedCandidatePairChange(func(pair *webrtc.ICECandidatePair) {
		r.sfu.feedback.setUDP(pubID, pairIsUDP(pair))
		r.sfu.direct.setPair(pubID, pair)
	})
	p.pub.OnTrack(p.onTrack)
	go p.allocateLoop()
	go p.negotiateLoop()
	return p, nil
}

// pairIsUDP reports whether a selected candidate pair runs over UDP.
func pairIsUDP(pair *webrtc.ICECandidatePair) bool {
	return pair != nil && pair.Local != nil && pair.Local.Protocol == webrtc.ICEProtocolUDP
}

// subPairChanged follows the sub connection's transport: over UDP the
// publishers' read loops write to this subscriber themselves (see
// downTrack.push); over TCP, whose writes can wait for the subscriber,
// each track's writer goroutine does.
func (p *Peer) subPairChanged(pair *webrtc.ICECandidatePair) {
	if pair != nil {
		p.subLinkUp()
	}
	udp := pairIsUDP(pair)
	p.room.sfu.direct.setPair(p.sub.ID(), pair)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.subUDP = udp
	for _, s := range p.subs {
		s.down.inline.Store(udp)
	}
	for _, s := range p.paused {
		s.down.inline.Store(udp)
	}
}

// subLinkUp notes the sub connection up on a candidate pair: from the
// second time on, the link changed or came back (an ICE restart, a
// network change), which the estimator must know (linkChanged).
func (p *Peer) subLinkUp() {
	if !p.subUp.CompareAndSwap(false, true) {
		p.bw.linkChanged()
	}
}

// ID is the participant id.
func (p *Peer) ID() string { return p.id }

// OnConnectionState sets f to be told of each state change of the
// participant's two connections: pc is PCPublish or PCSubscribe, state
// one of RTCPeerConnection's connectionState values ("connecting",
// "connected", "disconnected", "failed", "closed"). Signaling can, for
// instance, call RestartICE when the sub connection fails while the
// participant's socket is up. f must not block.
func (p *Peer) OnConnectionState(f func(pc, state string)) {
	p.onState.Store(&f)
}

// ScreenStreamSuffix ends the MediaStream id of a screen share: its
// subscribers receive it in stream "<publisher id>.screen", its camera
// and microphone in stream "<publisher id>".
const ScreenStreamSuffix = ".screen"

// SetScreenTracks marks the tracks (MediaStreamTrack ids, as in the
// offer's a=msid) that the participant publishes as screen shares. Call
// it before HandleOffer applies the offer that brings them; a track's
// marking is fixed when it is first published.
func (p *Peer) SetScreenTracks(ids []string) {
	set := make(map[string]bool, len(ids))
	for _, id := range ids {
		set[id] = true
	}
	p.smu.Lock()
	p.screens = set
	p.smu.Unlock()
}

func (p *Peer) isScreen(trackID string) bool {
	p.smu.Lock()
	defer p.smu.Unlock()
	return p.screens[trackID]
}

// onTrack starts forwarding a track the participant publishes, or one
// simulcast layer of it (pion calls onTrack once per layer).
func (p *Peer) onTrack(remote *webrtc.TrackRemote, receiver *webrtc.RTPReceiver) {
	index, simulcast := 0, false
	if tracks := receiver.Tracks(); len(tracks) > 1 && remote.RID() != "" {
		// Layers in the order the publisher listed its encodings: lowest
		// first, as browsers' sendEncodings conventionally are.
		simulcast = true
		for i, t := range tracks {
			if t.RID() == remote.RID() {
				index = min(i, maxLayers-1)
			}
		}
	}
	screen := p.isScreen(remote.ID())
	up, isNew := p.room.publish(p, p.id+"-"+remote.ID(), func(id string) *upTrack {
		up := newUpTrack(id, p.id, remote.Kind(), remote.Codec().RTPCodecCapability,
			p.log.With("track", remote.ID(), "kind", remote.Kind().String()))
		up.simulcast = simulcast
		if screen {
			up.streamID = p.id + ScreenStreamSuffix
		}
		up.writeRTCP = p.pub.WriteRTCP
		up.stats = p.room.sfu.stats
		up.out = p.room.sfu.batch
		if remote.Kind() == webrtc.RTPCodecTypeAudio {
			for _, e := range receiver.GetParameters().HeaderExtensions {
				if e.URI == sdp.AudioLevelURI && e.ID > 0 && e.ID < 15 {
					up.levelExtID = uint8(e.ID)
				}
			}
		}
		return up
	})
	if up == nil {
		return
	}
	l := up.newLayer(index, remote.RID(), remote, uint32(remote.SSRC()))
	p.bindDirect(up, l, remote, receiver)
	if !up.start(l, func() { p.room.removeUp(p, up) }) {
		if l.unbind != nil {
			l.unbind()
		}
		return
	}
	if isNew {
		up.log.Info("track published", "codec", up.codec.MimeType, "simulcast", up.simulcast, "audio_level", up.levelExtID != 0, "screen", screen)
	}
	if simulcast {
		up.log.Debug("simulcast layer", "rid", remote.RID(), "layer", index)
	}
}

// bindDirect lets layer l's packets take the direct read path
// (directin.go) when the pub connection's pair is direct UDP: they are
// recorded for the feedback to the publisher, as the feedback
// interceptor records those read through pion, and handed to the layer;
// so are its retransmissions, repaired. A layer whose RTX stream is
// negotiated but not known yet (announced by its first packet, as with
// simulcast) stays on pion's path, which repairs them.
func (p *Peer) bindDirect(up *upTrack, l *layer, remote *webrtc.TrackRemote, receiver *webrtc.RTPReceiver) {
	sfu, id, ssrc := p.room.sfu, p.pub.ID(), l.ssrc
	record := sfu.feedback.recorder(id, ssrc)
	if record == nil {
		return // the feedback interceptor does not know the stream: pion's path
	}
	var recordRTX func(*rtp.Header, time.Time)
	rtxSSRC := uint32(remote.RtxSSRC())
	if rtxSSRC != 0 {
		if recordRTX = sfu.feedback.recorder(id, rtxSSRC); recordRTX == nil {
			return
		}
	} else if hasRTX(receiver) {
		return
	}
	if !sfu.direct.bindRTP(id, ssrc, func(raw []byte, h *rtp.Header, now time.Time, out *outbox) {
		record(h, now)
		up.receive(l, raw, now, out)
	}) {
		return
	}
	pt := uint8(remote.PayloadType())
	if rtxSSRC != 0 && !sfu.direct.bindRTP(id, rtxSSRC, func(raw []byte, h *rtp.Header, now time.Time, out *outbox) {
		recordRTX(h, now)
		if repaired, ok := unwrapRTX(raw, ssrc, pt); ok {
			up.receive(l, repaired, now, out)
		}
	}) {
		sfu.direct.unbindRTP(id, ssrc)
		return
	}
	l.unbind = func() {
		sfu.direct.unbindRTP(id, ssrc)
		if rtxSSRC != 0 {
			sfu.direct.unbindRTP(id, rtxSSRC)
		}
	}
}

// onSubRTCP takes a compound RTCP packet the subscriber sent on the
// direct read path (directin.go): transport-wide feedback goes to the
// estimator, as twccConn passes it on pion's path, and the whole
// packet to every track sent, each acting on what is about it, as
// pion's path gives it to every track it names. It runs on a socket
// reader, so it takes no lock a negotiation may hold.
func (p *Peer) onSubRTCP(b []byte) {
	p.bw.onCompound(b)
	if downs := p.rtcpTracks.Load(); downs != nil {
		for _, d := range *downs {
			d.onRTCP(b)
		}
	}
}

// storeRTCPTracksLocked republishes the tracks onSubRTCP hands RTCP
// to. mu must be held.
func (p *Peer) storeRTCPTracksLocked() {
	downs := make([]*downTrack, 0, len(p.subs)+len(p.paused))
	for _, s := range p.subs {
		downs = append(downs, s.down)
	}
	for _, s := range p.paused {
		downs = append(downs, s.down)
	}
	p.rtcpTracks.Store(&downs)
}

// hasRTX reports whether a receiver's negotiated codecs include RTX.
func hasRTX(receiver *webrtc.RTPReceiver) bool {
	for _, c := range receiver.GetParameters().Codecs {
		if strings.EqualFold(c.MimeType, webrtc.MimeTypeRTX) {
			return true
		}
	}
	return false
}

// subscribeLocked starts sending up to this peer: it resumes a paused
// track, or adds the track to the sub connection and renegotiates.
// room.mu must be held.
func (p *Peer) subscribeLocked(up *upTrack) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || up.publisher == p.id {
		return
	}
	if _, ok := p.subs[up]; ok {
		return
	}
	if s, ok := p.paused[up]; ok {
		delete(p.paused, up)
		s.down.resume()
		up.addDown(s.down)
		p.subs[up] = s
		p.reallocate()
		return
	}
	d := newDownTrack(up, p.id, p.room.sfu.raws, p.log.With("track", up.id))
	d.bw = p.bw
	d.conn = p.room.sfu.direct.get(p.sub.ID())
	d.inline.Store(p.subUDP)
	sender, err := p.sub.AddTrack(d)
	if err != nil {
		d.stop(false)
		p.log.Warn("add track", "err", err)
		return
	}
	d.stats = p.room.sfu.stats
	d.stats.addDown(d)
	go d.readRTCP(sender)
	up.addDown(d)
	p.subs[up] = subscription{down: d, sender: sender}
	p.storeRTCPTracksLocked()
	p.negotiateLocked()
	p.reallocate()
}

// pauseLocked stops sending up to this peer but keeps the track on its
// sub connection, so that subscribeLocked resumes it without
// renegotiation; no packet of up reaches the peer after this returns
// (see downTrack.stop for the one bounded exception). room.mu must be
// held.
func (p *Peer) pauseLocked(up *upTrack) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.subs[up]
	if !ok {
		return
	}
	delete(p.subs, up)
	up.detachDown(s.down)
	s.down.pause()
	p.paused[up] = s
}

// unsubscribeLocked removes up from this peer's sub connection, paused
// or not, and renegotiates; no packet of up reaches it after this
// returns. room.mu must be held.
func (p *Peer) unsubscribeLocked(up *upTrack) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.subs[up]
	if ok {
		delete(p.subs, up)
	} else if s, ok = p.paused[up]; ok {
		delete(p.paused, up)
	} else {
		return
	}
	up.removeDown(s.down, true)
	p.storeRTCPTracksLocked()
	if p.closed {
		return
	}
	if err := p.sub.RemoveTrack(s.sender); err != nil && !errors.Is(err, webrtc.ErrConnectionClosed) {
		p.log.Warn("remove track", "err", err)
	}
	p.negotiateLocked()
}

// Subscriptions lists the ids of the tracks forwarded to this peer now;
// paused ones (negotiated, but no longer allowed) are not listed.
func (p *Peer) Subscriptions() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]string, 0, len(p.subs))
	for up := range p.subs {
		out = append(out, up.id)
	}
	return out
}

// negotiateLocked asks for a new sub offer; p.mu must be held. The
// offer is made by negotiateLoop, not here: callers hold room.mu, and
// making an offer waits for the connection's ICE agent, which one
// participant's stalled connection (ICE over TCP blocked in the kernel)
// can hold up. Nothing that holds room.mu waits for a connection.
func (p *Peer) negotiateLocked() {
	if p.closed {
		return
	}
	p.renegotiate = true
	p.kickNegotiation()
}

func (p *Peer) kickNegotiation() {
	select {
	case p.negotiate <- struct{}{}:
	default:
	}
}

// negotiateLoop makes the sub offers negotiateLocked asks for, until the
// peer closes.
func (p *Peer) negotiateLoop() {
	for {
		select {
		case <-p.done:
			return
		case <-p.negotiate:
		}
		p.offer()
	}
}

// offer sends a sub offer when one is wanted and none is out; otherwise
// the wish stays noted in renegotiate, for HandleAnswer.
func (p *Peer) offer() {
	p.nmu.Lock()
	defer p.nmu.Unlock()
	p.mu.Lock()
	if p.closed || !p.renegotiate || p.awaitingAnswer || p.sub.SignalingState() != webrtc.SignalingStateStable || !p.subStarted() {
		p.mu.Unlock()
		return
	}
	p.renegotiate = false
	restart := p.iceRestart
	p.iceRestart = false
	p.mu.Unlock()
	if h := p.offerHook.Load(); h != nil {
		(*h)()
	}
	// An ICE restart gathers from CreateOffer on: hold its candidates
	// until the offer is out.
	p.holdCandidates(PCSubscribe)
	defer p.releaseCandidates(PCSubscribe)
	offer, err := p.sub.CreateOffer(&webrtc.OfferOptions{ICERestart: restart})
	if err != nil {
		p.log.Warn("create offer", "err", err)
		return
	}
	if err := p.sub.SetLocalDescription(offer); err != nil {
		p.log.Warn("set local offer", "err", err)
		return
	}
	p.mu.Lock()
	closed := p.closed
	p.awaitingAnswer = !closed
	p.mu.Unlock()
	if !closed {
		p.send(Signal{Type: "offer", PC: PCSubscribe, SDP: offer.SDP})
	}
}

// subStarted reports whether the sub connection may be renegotiated: it
// has no answer yet, or its ICE agent has started with the answer's
// credentials. pion starts the agent after the first answer on a queue
// of its own; until then the agent has no remote credentials, and
// pion's SetRemoteDescription takes any later description for an ICE
// restart. An answer to a renegotiation applied then sets the agent's
// remote credentials, which the queued start of the first answer then
// overwrites; and a pion client, taking the offer for a restart, answers
// it with new credentials. The SFU then checks with the client's old
// credentials, the client with its new ones, and ICE never connects.
// The sub connection's ICE state leaves "new" when its agent starts,
// and OnICEConnectionStateChange then wakes negotiateLoop.
func (p *Peer) subStarted() bool {
	return p.sub.CurrentRemoteDescription() == nil || p.sub.ICEConnectionState() != webrtc.ICEConnectionStateNew
}

// RestartICE restarts ICE on the connection the SFU offers (sub): it
// sends an offer with fresh ICE credentials. Call it when the
// participant's network changed, such as when its signaling resumes
// after a drop. If an offer is still waiting for its answer (the client
// may have lost it with its socket), that offer is sent again and the
// restart follows its answer; a client must therefore ignore an offer
// identical to one it already answered. The client restarts ICE on its
// own connection (pub) by sending an offer with fresh credentials
// (RTCPeerConnection.restartIce), which HandleOffer accepts as usual.
func (p *Peer) RestartICE() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	p.iceRestart = true
	if p.awaitingAnswer {
		p.renegotiate = true
		if ld := p.sub.PendingLocalDescription(); ld != nil {
			p.send(Signal{Type: "offer", PC: PCSubscribe, SDP: ld.SDP})
		}
		return nil
	}
	p.negotiateLocked()
	return nil
}

// sendCandidate sends a local candidate, or holds it until the
// description being set on pc has been sent.
func (p *Peer) sendCandidate(pc string, s Signal) {
	p.cmu.Lock()
	defer p.cmu.Unlock()
	if p.held[pc] {
		p.heldCands[pc] = append(p.heldCands[pc], s)
		return
	}
	p.send(s)
}

// holdCandidates holds pc's local candidates from now on.
func (p *Peer) holdCandidates(pc string) {
	p.cmu.Lock()
	defer p.cmu.Unlock()
	p.held[pc] = true
}

// releaseCandidates sends the candidates held for pc, after the
// description just sent, and the next ones as they come.
func (p *Peer) releaseCandidates(pc string) {
	p.cmu.Lock()
	defer p.cmu.Unlock()
	for _, s := range p.heldCands[pc] {
		p.send(s)
	}
	delete(p.heldCands, pc)
	p.held[pc] = false
}

// ErrNegotiation wraps every error caused by what the client sent.
var ErrNegotiation = errors.New("media: negotiation failed")

// HandleOffer applies the client's offer for its publish connection and
// sends the answer.
func (p *Peer) HandleOffer(sdp string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	// An ICE restart offer restarts gathering as it is applied: hold the
	// new candidates until the answer is out.
	p.holdCandidates(PCPublish)
	defer p.releaseCandidates(PCPublish)
	if err := p.pub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}); err != nil {
		return fmt.Errorf("%w: %v", ErrNegotiation, err)
	}
	answer, err := p.pub.CreateAnswer(nil)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNegotiation, err)
	}
	if err := p.pub.SetLocalDescription(answer); err != nil {
		return fmt.Errorf("%w: %v", ErrNegotiation, err)
	}
	p.send(Signal{Type: "answer", PC: PCPublish, SDP: answer.SDP})
	p.flushCandidatesLocked(PCPublish, p.pub)
	return nil
}

// HandleAnswer applies the client's answer to the latest sub offer.
func (p *Peer) HandleAnswer(sdp string) error {
	p.nmu.Lock()
	defer p.nmu.Unlock()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrClosed
	}
	if !p.awaitingAnswer {
		p.mu.Unlock()
		return fmt.Errorf("%w: no offer is waiting for an answer", ErrNegotiation)
	}
	p.mu.Unlock()
	if err := p.sub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp}); err != nil {
		return fmt.Errorf("%w: %v", ErrNegotiation, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.awaitingAnswer = false
	p.flushCandidatesLocked(PCSubscribe, p.sub)
	if p.renegotiate {
		p.kickNegotiation()
	}
	return nil
}

// HandleCandidate adds a remote ICE candidate, holding it until the
// connection has its remote description.
func (p *Peer) HandleCandidate(pc string, c CandidateInit) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	var conn *webrtc.PeerConnection
	switch pc {
	case PCPublish:
		conn = p.pub
	case PCSubscribe:
		conn = p.sub
	default:
		return fmt.Errorf("%w: unknown connection %q", ErrNegotiation, pc)
	}
	if rd := conn.RemoteDescription(); rd == nil || c.UsernameFragment != nil && *c.UsernameFragment != "" && *c.UsernameFragment != iceUfrag(rd.SDP) {
		// Before the description it belongs to (the client's next offer
		// or answer, such as an ICE restart): hold it.
		if len(p.pending[pc]) >= 64 {
			return fmt.Errorf("%w: too many early candidates", ErrNegotiation)
		}
		p.pending[pc] = append(p.pending[pc], c)
		return nil
	}
	if err := conn.AddICECandidate(c); err != nil {
		return fmt.Errorf("%w: %v", ErrNegotiation, err)
	}
	return nil
}

// iceUfrag returns the first ICE username fragment in an SDP.
func iceUfrag(sdp string) string {
	for len(sdp) > 0 {
		line, rest, _ := strings.Cut(sdp, "\n")
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "a=ice-ufrag:"); ok {
			return v
		}
		sdp = rest
	}
	return ""
}

func (p *Peer) flushCandidatesLocked(pc string, conn *webrtc.PeerConnection) {
	for _, c := range p.pending[pc] {
		if err := conn.AddICECandidate(c); err != nil {
			p.log.Debug("early candidate refused", "err", err)
		}
	}
	delete(p.pending, pc)
}

// closePCs stops forwarding to this peer and closes its connections.
func (p *Peer) closePCs() {
	p.doneOnce.Do(func() { close(p.done) })
	p.mu.Lock()
	p.closed = true
	for up, s := range p.subs {
		up.removeDown(s.down, false)
		delete(p.subs, up)
	}
	for up, s := range p.paused {
		up.removeDown(s.down, false)
		delete(p.paused, up)
	}
	p.storeRTCPTracksLocked()
	p.mu.Unlock()
	_ = p.pub.Close()
	_ = p.sub.Close()
}

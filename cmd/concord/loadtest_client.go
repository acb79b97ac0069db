package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/interceptor/pkg/twcc"
	"github.com/pion/logging"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/concord-odr/concord/cases"
	"github.com/concord-odr/concord/media/h264"
)

// Every synthetic packet ends with a trailer the receiving participant
// reads: which published track it belongs to (with --simulcast, which
// layer of it: each layer is a track of its own here), the track's own
// packet counter (the SFU rewrites RTP sequence numbers and hides the
// gaps it makes, so loss is counted on this counter), and the send time.
const (
	trailerLen   = 20
	trailerMagic = 0x434c5431 // "CLT1"
	// maxVideoPayload is the largest payload of a synthetic video packet.
	maxVideoPayload = 1100
)

func putTrailer(b []byte, track, counter uint32, sent int64) {
	t := b[len(b)-trailerLen:]
	binary.BigEndian.PutUint32(t[0:], track)
	binary.BigEndian.PutUint32(t[4:], counter)
	binary.BigEndian.PutUint64(t[8:], uint64(sent))
	binary.BigEndian.PutUint32(t[16:], trailerMagic)
}

func readTrailer(b []byte) (track, counter uint32, sent int64, ok bool) {
	if len(b) < trailerLen {
		return 0, 0, 0, false
	}
	t := b[len(b)-trailerLen:]
	if binary.BigEndian.Uint32(t[16:]) != trailerMagic {
		return 0, 0, 0, false
	}
	return binary.BigEndian.Uint32(t[0:]), binary.BigEndian.Uint32(t[4:]), int64(binary.BigEndian.Uint64(t[8:])), true
}

// ltPubTrack is one track a synthetic participant publishes, or one
// simulcast layer of its video: the trailer names it, and its counter
// counts its own packets.
type ltPubTrack struct {
	id     uint32
	client *ltClient
	video  bool
	local  *webrtc.TrackLocalStaticRTP
	own    *ownTrack // local on the own send path; nil with --pion-send
	stream ownStream // its sending state there (under the sender's mu)
	rid    string    // the simulcast layer's RTP stream id; empty without simulcast
	layer  int       // the simulcast layer's index, 0 the lowest
	group  uint32    // the publication: the id of its first layer (its own id without simulcast)

	sent      atomic.Uint64 // packets written while the connection was up
	sentBytes atomic.Uint64
	keyframe  chan struct{} // a PLI or FIR arrived
}

// ltClient is one synthetic participant: a signaling socket and the two
// pion connections of the protocol, publishing synthetic Opus and VP8 or
// H.264 if its seat says so, and measuring everything it receives.
type ltClient struct {
	r    *loadRun
	idx  int
	room *ltRoom
	tok  ltToken

	ws   *websocket.Conn
	wmu  sync.Mutex
	pub  *webrtc.PeerConnection
	sub  *webrtc.PeerConnection
	self string

	start     time.Time
	joinNanos atomic.Int64 // socket open to first remote media; 0 until then
	// Phases of the join, from socket open: "joined" arrived, admitted
	// from the lobby (a mediator: at joined).
	joinedNanos, admittedNanos atomic.Int64
	joined                     atomic.Bool // "joined" arrived
	failed                     atomic.Bool
	pubUp                      atomic.Bool // the publish connection is connected

	mu         sync.Mutex
	err        error
	waiting    bool // (mediator) someone consented and waits
	pendingICE map[string][]webrtc.ICECandidateInit

	tracks []*ltPubTrack
	snd    *ownSender  // the publisher's own send path; nil with --pion-send
	direct *ltDirect   // the subscriber's own receive path, once open (mu)
	fb     *ltFeedback // its feedback; nil with --pion-receive
	stop   context.CancelFunc
	done   chan struct{}
}

func (c *ltClient) isMediator() bool {
	return c.tok.Role == cases.RoleMediator || c.tok.Role == "co_mediator"
}

func (c *ltClient) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.mu.Unlock()
	c.failed.Store(true)
}

func (c *ltClient) send(v any) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.ws == nil {
		return
	}
	_ = c.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_ = c.ws.WriteJSON(v)
}

// newClientAPI builds the pion API the synthetic participants publish
// with under --pion-send and receive with under --pion-receive (newOwnAPI
// otherwise): the
// default codecs (Opus, VP8, H.264 in packetization mode 1 with profile
// 42e01f among others, so subscribers accept either codec the SFU
// forwards) and interceptors (NACK, RTCP reports, the simulcast header
// extensions, TWCC) as a browser has them, plus a counter of NACKs and
// PLIs. loopbackOnly keeps ICE on the loopback interface.
func newClientAPI(r *loadRun, loopbackOnly bool) (*webrtc.API, error) {
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		return nil, err
	}
	// Silent: hundreds of synthetic clients tearing down at the end of a
	// step print one pion error each (a closed pipe, a late packet), which
	// buried the report. The generator measures what it needs itself.
	quiet := logging.NewDefaultLoggerFactory()
	quiet.DefaultLogLevel = logging.LogLevelDisabled
	ir := &interceptor.Registry{}
	ir.Add(&rtcpCounterFactory{r: r}) // first, so the NACK generator writes through it
	// A browser's RTCP behaviour: NACKs, reports, transport-wide
	// feedback on what it receives and transport-wide sequence numbers
	// on what it sends (the server's estimators and feedback work on
	// them). Not pion's stats interceptor: it sends nothing, and records
	// every packet for GetStats, which the generator does not call; it
	// made the generator, sharing the machine, cost more than the server.
	if err := webrtc.ConfigureNackWithOptions(me, ir,
		[]nack.GeneratorOption{nack.WithGeneratorLoggerFactory(quiet)}, nack.WithResponderLoggerFactory(quiet)); err != nil {
		return nil, err
	}
	if err := webrtc.ConfigureRTCPReportsWithOptions(ir,
		[]report.ReceiverOption{report.WithReceiverLoggerFactory(quiet)}, report.WithSenderLoggerFactory(quiet)); err != nil {
		return nil, err
	}
	if err := webrtc.ConfigureSimulcastExtensionHeaders(me); err != nil {
		return nil, err
	}
	if err := webrtc.ConfigureTWCCSenderWithOptions(me, ir, twcc.WithLoggerFactory(quiet)); err != nil {
		return nil, err
	}
	if err := webrtc.ConfigureTWCCHeaderExtensionSender(me, ir); err != nil {
		return nil, err
	}
	se := clientSettings(loopbackOnly)
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
}

// clientSettings are the synthetic participants' pion settings: UDP over
// IPv4, no mDNS, silent logs; loopbackOnly keeps ICE on loopback.
func clientSettings(loopbackOnly bool) webrtc.SettingEngine {
	quiet := logging.NewDefaultLoggerFactory()
	quiet.DefaultLogLevel = logging.LogLevelDisabled
	se := webrtc.SettingEngine{}
	se.LoggerFactory = quiet
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	if loopbackOnly {
		se.SetIncludeLoopbackCandidate(true)
		se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	}
	return se
}

// rtcpCounterFactory counts the NACKs and PLIs the synthetic
// participants send as subscribers.
type rtcpCounterFactory struct{ r *loadRun }

func (f *rtcpCounterFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &rtcpCounter{r: f.r}, nil
}

type rtcpCounter struct {
	interceptor.NoOp
	r *loadRun
}

func (i *rtcpCounter) BindRTCPWriter(w interceptor.RTCPWriter) interceptor.RTCPWriter {
	return interceptor.RTCPWriterFunc(func(pkts []rtcp.Packet, a interceptor.Attributes) (int, error) {
		for _, p := range pkts {
			switch p := p.(type) {
			case *rtcp.TransportLayerNack:
				i.r.nacksSent.Add(uint64(len(p.Nacks)))
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				i.r.plisSent.Add(1)
			}
		}
		return w.Write(pkts, a)
	})
}

// run joins, publishes and receives until ctx ends.
func (c *ltClient) run(ctx context.Context) {
	defer close(c.done)
	if err := c.join(ctx); err != nil {
		c.fail(err)
		c.r.noteError("join: " + errText(err))
		return
	}
	<-ctx.Done()
}

func errText(err error) string {
	s := err.Error()
	if len(s) > 120 {
		s = s[:120]
	}
	return s
}

func (c *ltClient) join(ctx context.Context) error {
	c.start = time.Now()
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	ws, _, err := websocket.DefaultDialer.DialContext(dctx, ltWSURL(c.r.base), nil)
	cancel()
	if err != nil {
		return err
	}
	c.wmu.Lock()
	c.ws = ws
	c.wmu.Unlock()
	c.send(map[string]any{"type": "join", "token": c.tok.Token})
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	var first struct {
		Type string `json:"type"`
		Code string `json:"code"`
		Self struct {
			ID string `json:"id"`
		} `json:"self"`
	}
	if err := ws.ReadJSON(&first); err != nil {
		return fmt.Errorf("read joined: %w", err)
	}
	_ = ws.SetReadDeadline(time.Time{})
	if first.Type != "joined" {
		return fmt.Errorf("first message %s %s, want joined", first.Type, first.Code)
	}
	c.self = first.Self.ID
	c.joined.Store(true)
	c.joinedNanos.Store(max(1, time.Since(c.start).Nanoseconds()))
	if c.isMediator() {
		c.admittedNanos.Store(c.joinedNanos.Load())
	}

	api := c.r.pubAPI
	if c.sub, err = c.r.subAPI.NewPeerConnection(webrtc.Configuration{}); err != nil {
		return err
	}
	if !c.r.cfg.PionReceive {
		c.fb = newLtFeedback()
		c.fb.sent = c.r.countFeedback
		go c.fb.loop(ctx.Done(), c.sub.WriteRTCP)
	}
	c.sub.OnICECandidate(func(cand *webrtc.ICECandidate) {
		if cand != nil {
			c.send(map[string]any{"type": "candidate", "pc": "sub", "candidate": cand.ToJSON()})
		}
	})
	c.sub.OnTrack(func(tr *webrtc.TrackRemote, recv *webrtc.RTPReceiver) { go c.receive(tr, recv) })

	if c.tok.Publish {
		if c.pub, err = api.NewPeerConnection(webrtc.Configuration{}); err != nil {
			return err
		}
		c.pub.OnICECandidate(func(cand *webrtc.ICECandidate) {
			if cand != nil {
				c.send(map[string]any{"type": "candidate", "pc": "pub", "candidate": cand.ToJSON()})
			}
		})
		c.pub.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
			c.pubUp.Store(s == webrtc.PeerConnectionStateConnected)
		})
		if !c.r.cfg.PionSend {
			c.snd = newOwnSender(c, c.r.ownNet)
		}
		if c.r.cfg.Audio {
			if err := c.addAudio(ctx); err != nil {
				return err
			}
		}
		if c.r.cfg.VideoKbps > 0 {
			if err := c.addVideo(ctx); err != nil {
				return err
			}
		}
	}
	go c.readLoop(ctx)
	if !c.isMediator() {
		c.send(map[string]any{"type": "consent"})
	}
	if c.pub != nil {
		offer, err := c.pub.CreateOffer(nil)
		if err != nil {
			return err
		}
		if err := c.pub.SetLocalDescription(offer); err != nil {
			return err
		}
		c.send(map[string]any{"type": "offer", "pc": "pub", "sdp": offer.SDP})
	}
	return nil
}

// addAudio publishes synthetic Opus.
func (c *ltClient) addAudio(ctx context.Context) error {
	local, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2},
		"audio", fmt.Sprintf("lt%d", c.idx))
	if err != nil {
		return fmt.Errorf("audio track: %w", err)
	}
	t := c.r.newPubTrack(c, false, local, 0, 0)
	sender, err := c.pub.AddTrack(c.trackLocal(t))
	if err != nil {
		return fmt.Errorf("add audio track: %w", err)
	}
	c.tracks = append(c.tracks, t)
	go c.readRTCP(t, sender.ReadRTCP)
	go c.sendAudio(ctx, t)
	return nil
}

// addVideo publishes synthetic video in the configured codec: one track,
// or with --simulcast one track in three layers, as the SFU's own tests
// publish it (media/simulcast_test.go): a TrackLocalStaticRTP per layer
// with the same track and stream ids and the layer's RID, the first added
// to the connection and the others as encodings of its sender. Each layer
// is a published track of the generator's own (its trailer id, counter
// and keyframes), and reads its own RTCP: a PLI names the layer's SSRC.
func (c *ltClient) addVideo(ctx context.Context) error {
	codec := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}
	if c.r.cfg.isH264() {
		codec = h264Codec
	}
	layers := c.r.cfg.videoLayers()
	var sender *webrtc.RTPSender
	var tracks []*ltPubTrack
	for i, l := range layers {
		var opts []func(*webrtc.TrackLocalStaticRTP)
		if l.rid != "" {
			opts = append(opts, webrtc.WithRTPStreamID(l.rid))
		}
		local, err := webrtc.NewTrackLocalStaticRTP(codec, "video", fmt.Sprintf("lt%d", c.idx), opts...)
		if err != nil {
			return fmt.Errorf("video track: %w", err)
		}
		var group uint32
		if i > 0 {
			group = tracks[0].id
		}
		t := c.r.newPubTrack(c, true, local, i, group)
		if i == 0 {
			if sender, err = c.pub.AddTrack(c.trackLocal(t)); err != nil {
				return fmt.Errorf("add video track: %w", err)
			}
		} else if err := sender.AddEncoding(c.trackLocal(t)); err != nil {
			return fmt.Errorf("add simulcast layer %s: %w", l.rid, err)
		}
		tracks = append(tracks, t)
		c.tracks = append(c.tracks, t)
		if l.rid == "" {
			go c.readRTCP(t, sender.ReadRTCP)
		} else {
			go c.readRTCP(t, func() ([]rtcp.Packet, interceptor.Attributes, error) { return sender.ReadSimulcastRTCP(l.rid) })
		}
	}
	go c.sendVideo(ctx, sender, tracks, layers)
	return nil
}

// readRTCP reads what the server sends about t until its connection
// closes (pion's interceptors, the NACK responder among them, see RTCP
// only as it is read): a PLI or FIR asks t for a keyframe.
func (c *ltClient) readRTCP(t *ltPubTrack, read func() ([]rtcp.Packet, interceptor.Attributes, error)) {
	for {
		pkts, _, err := read()
		if err != nil {
			return
		}
		for _, p := range pkts {
			switch p := p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				c.r.plisRecv.Add(1)
				select {
				case t.keyframe <- struct{}{}:
				default:
				}
			case *rtcp.TransportLayerNack:
				c.r.nacksRecv.Add(uint64(len(p.Nacks)))
				if c.snd != nil {
					c.snd.nack(t, p)
				}
			}
		}
	}
}

// flush sends what the own send path queued (a frame's packets, one
// sendmmsg).
func (c *ltClient) flush() {
	if c.snd != nil {
		c.snd.flush()
	}
}

// report sends t's sender report on the own send path when one is due
// (pion's report interceptor sends them otherwise).
func (c *ltClient) report(t *ltPubTrack) {
	if c.snd != nil {
		c.snd.report(t, time.Now())
	}
}

// trackLocal returns what t's sender sends: its own track on the own
// send path, else pion's.
func (c *ltClient) trackLocal(t *ltPubTrack) webrtc.TrackLocal {
	if c.snd == nil {
		return t.local
	}
	t.own = &ownTrack{TrackLocalStaticRTP: t.local}
	if t.video {
		t.stream.ring = newOwnRing()
	}
	return t.own
}

// write sends one packet, or on the own send path queues it for flush,
// and counts it if the connection is up.
func (c *ltClient) write(t *ltPubTrack, pkt *rtp.Packet) {
	if c.snd != nil {
		if !c.snd.write(t, &pkt.Header, pkt.Payload) || !c.pubUp.Load() {
			return
		}
	} else if err := t.local.WriteRTP(pkt); err != nil || !c.pubUp.Load() {
		return
	}
	t.sent.Add(1)
	t.sentBytes.Add(uint64(len(pkt.Payload) + 12))
}

// sendAudio sends one Opus-sized packet every 20 ms.
func (c *ltClient) sendAudio(ctx context.Context, t *ltPubTrack) {
	size := max(c.r.cfg.AudioKbps*1000/8/50, trailerLen+4)
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte(i)
	}
	payload[0] = 0xfc // an Opus TOC byte: CELT fullband 20 ms
	pkt := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: uint16(c.idx * 7919), Timestamp: uint32(c.idx * 104729)}}
	var counter uint32
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		counter++
		pkt.SequenceNumber++
		pkt.Timestamp += 960
		putTrailer(payload, t.id, counter, time.Now().UnixNano())
		pkt.Payload = payload
		c.write(t, pkt)
		c.flush()
		c.report(t)
	}
}

// videoPayloads returns the RTP payloads of a keyframe and of any other
// frame of a video layer of bps bit/s in the configured codec; the sender
// writes a fresh trailer over the end of each, frame after frame.
func (c *ltConfig) videoPayloads(bps int) (key, delta [][]byte, err error) {
	bytes, packets := c.videoFrame(bps)
	if !c.isH264() {
		return vp8Payloads(bytes, packets, true), vp8Payloads(bytes, packets, false), nil
	}
	if key, err = h264.Packetize(h264KeyframeUnits(bytes), maxVideoPayload); err != nil {
		return nil, nil, fmt.Errorf("h264 keyframe: %w", err)
	}
	if delta, err = h264.Packetize(h264DeltaUnits(bytes), maxVideoPayload); err != nil {
		return nil, nil, fmt.Errorf("h264 frame: %w", err)
	}
	return key, delta, nil
}

// vp8Payloads cuts a synthetic VP8 frame of about bytes into packets
// payloads of equal size, the first with the payload descriptor that
// starts partition 0 and a keyframe's or an interframe's frame tag.
func vp8Payloads(bytes, packets int, keyframe bool) [][]byte {
	per := bytes / packets
	out := make([][]byte, packets)
	for i := range out {
		p := make([]byte, per)
		if i == 0 {
			p[0] = 0x10 // S: start of partition 0
			if keyframe {
				// VP8 frame tag of a keyframe, start code, 640x360.
				copy(p[1:], []byte{0x50, 0x2a, 0x01, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01})
			} else {
				copy(p[1:], []byte{0x51, 0x2a, 0x01})
			}
		}
		out[i] = p
	}
	return out
}

// ltLayerSend is what sendVideo keeps of one layer.
type ltLayerSend struct {
	t          *ltPubTrack
	key, delta [][]byte // payloads of a keyframe and of another frame
	pkt        rtp.Packet
	counter    uint32
	keyframe   bool // the next frame is a keyframe
}

// sendVideo sends fps frames a second on each layer at the layer's bit
// rate, each frame cut into packets of at most maxVideoPayload bytes (VP8
// payload descriptors, or H.264 NAL units, STAP-A and FU-A); a keyframe
// starts each layer and answers each PLI for it. Simulcast packets carry
// the mid and rid header extensions, as a browser's do: by them the SFU
// tells the layers' SSRCs apart, so nothing is sent on them before the
// publish connection negotiated the extensions.
func (c *ltClient) sendVideo(ctx context.Context, sender *webrtc.RTPSender, tracks []*ltPubTrack, layers []ltVideoLayer) {
	cfg := c.r.cfg
	sends := make([]*ltLayerSend, len(tracks))
	for i, t := range tracks {
		key, delta, err := cfg.videoPayloads(layers[i].bps)
		if err != nil {
			c.r.noteError("video: " + errText(err))
			return
		}
		sends[i] = &ltLayerSend{t: t, key: key, delta: delta, keyframe: true, pkt: rtp.Packet{Header: rtp.Header{
			Version: 2, PayloadType: 96, SequenceNumber: uint16(c.idx*3571 + i*10007), Timestamp: uint32(c.idx*7727 + i*40009),
		}}}
	}
	simulcast := tracks[0].rid != ""
	extensions := !simulcast
	tsStep := uint32(90000 / cfg.FPS)
	tick := time.NewTicker(time.Second / time.Duration(cfg.FPS))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if !extensions {
			if extensions = c.setSimulcastExtensions(sender, sends); !extensions {
				continue
			}
		}
		for _, l := range sends {
			select {
			case <-l.t.keyframe:
				l.keyframe = true
			default:
			}
			payloads := l.delta
			if l.keyframe {
				payloads = l.key
			}
			l.pkt.Timestamp += tsStep
			for i, p := range payloads {
				l.counter++
				l.pkt.SequenceNumber++
				l.pkt.Marker = i == len(payloads)-1
				putTrailer(p, l.t.id, l.counter, time.Now().UnixNano())
				l.pkt.Payload = p
				c.write(l.t, &l.pkt)
			}
			l.keyframe = false
		}
		c.flush()
		for _, l := range sends {
			c.report(l.t)
		}
	}
}

// setSimulcastExtensions puts the mid and rid header extensions on the
// layers' packets once the publish connection has negotiated them; it
// reports whether it did.
func (c *ltClient) setSimulcastExtensions(sender *webrtc.RTPSender, sends []*ltLayerSend) bool {
	var midID, ridID int
	for _, e := range sender.GetParameters().HeaderExtensions {
		switch e.URI {
		case sdp.SDESMidURI:
			midID = e.ID
		case sdp.SDESRTPStreamIDURI:
			ridID = e.ID
		}
	}
	mid := ""
	for _, tr := range c.pub.GetTransceivers() {
		if tr.Sender() == sender {
			mid = tr.Mid()
		}
	}
	if midID == 0 || ridID == 0 || mid == "" {
		return false
	}
	for _, l := range sends {
		if err := l.pkt.Header.SetExtension(uint8(midID), []byte(mid)); err != nil {
			c.r.noteError("video: mid extension: " + errText(err))
			return false
		}
		if err := l.pkt.Header.SetExtension(uint8(ridID), []byte(l.t.rid)); err != nil {
			c.r.noteError("video: rid extension: " + errText(err))
			return false
		}
	}
	return true
}

// receive reads one forwarded track until it ends, measuring each packet.
func (c *ltClient) receive(tr *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
	rx := &ltReceiver{c: c, video: tr.Kind() == webrtc.RTPCodecTypeVideo}
	if rx.video {
		c.r.mu.Lock()
		c.r.videoCodecs[tr.Codec().MimeType]++
		c.r.mu.Unlock()
	}
	if c.fb != nil {
		c.fb.setTrack(tr, recv)
		c.takeTrack(tr, recv, rx)
	}
	buf := make([]byte, 1600)
	for {
		// Without --pion-receive, only what pion had queued before the
		// client's own path took the stream.
		n, _, err := tr.Read(buf)
		if err != nil {
			return
		}
		rx.locked(buf[:n], time.Now().UnixNano())
	}
}

// ltReceiver measures the packets of one track forwarded to a subscriber.
type ltReceiver struct {
	mu    sync.Mutex // pion's path and the client's own, as one hands over
	c     *ltClient
	video bool
	h     rtp.Header
	cur   *ltStream // the stream of the newest packet
	hiSeq uint16    // the newest packet's RTP sequence number
	seen  bool      // any packet arrived
}

// locked is packet under rx.mu.
func (rx *ltReceiver) locked(b []byte, now int64) {
	rx.mu.Lock()
	rx.packet(b, now)
	rx.mu.Unlock()
}

// packet measures one packet that arrived at now: the trailer names the
// published track (with simulcast, the layer) whose stream counts it.
//
// With simulcast the SFU forwards one layer at a time and switches at a
// keyframe of the new layer, continuing the subscriber's sequence
// numbers. When the newest packet (by sequence number) is of another
// layer of the same video than the one before it, the subscriber was
// switched, and the new layer's stream resumes (ltStream.resume): what
// that layer sent while others were forwarded was never meant for this
// subscriber, so it is not loss. An older packet of another layer (a
// late one, a retransmission) is counted on its layer's stream but
// switches nothing.
func (rx *ltReceiver) packet(b []byte, now int64) {
	c := rx.c
	hl, err := rx.h.Unmarshal(b)
	if err != nil {
		return
	}
	if c.fb != nil {
		c.fb.record(&rx.h, now)
	}
	end := len(b)
	if rx.h.Padding && len(b) > hl {
		end -= int(b[len(b)-1])
	}
	if end < hl {
		return
	}
	track, counter, sent, ok := readTrailer(b[hl:end])
	if !ok {
		c.r.foreign.Add(1)
		return
	}
	newest := !rx.seen || int16(rx.h.SequenceNumber-rx.hiSeq) > 0
	if newest {
		rx.hiSeq, rx.seen = rx.h.SequenceNumber, true
	}
	st := rx.cur
	if st == nil || st.pub.id != track {
		if st = c.r.stream(c, track); st == nil {
			c.r.foreign.Add(1)
			return
		}
		if newest {
			if rx.cur != nil && rx.cur.pub.group == st.pub.group {
				st.resume()
			}
			rx.cur = st
		}
	}
	st.add(counter, sent, now, len(b))
	c.r.hist.add(now - sent)
	if c.joinNanos.Load() == 0 && (rx.video || c.r.cfg.VideoKbps == 0) {
		c.joinNanos.CompareAndSwap(0, max(now-c.start.UnixNano(), 1))
	}
}

// readLoop handles the server's messages.
func (c *ltClient) readLoop(ctx context.Context) {
	for {
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			if ctx.Err() == nil {
				c.fail(fmt.Errorf("socket: %w", err))
				c.r.noteError("socket closed")
			}
			return
		}
		var m struct {
			Type      string                   `json:"type"`
			PC        string                   `json:"pc"`
			SDP       string                   `json:"sdp"`
			Code      string                   `json:"code"`
			Fatal     bool                     `json:"fatal"`
			Candidate *webrtc.ICECandidateInit `json:"candidate"`
			Room      json.RawMessage          `json:"room"`
		}
		if err := json.Unmarshal(data, &m); err != nil {
			continue
		}
		switch m.Type {
		case "answer":
			if c.pub == nil {
				continue
			}
			if err := c.pub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: m.SDP}); err != nil {
				c.noteError(ctx, "pub answer: "+errText(err))
				continue
			}
			c.flushICE("pub", c.pub)
		case "offer":
			if err := c.sub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: m.SDP}); err != nil {
				c.noteError(ctx, "sub offer: "+errText(err))
				continue
			}
			answer, err := c.sub.CreateAnswer(nil)
			if err == nil {
				err = c.sub.SetLocalDescription(answer)
			}
			if err != nil {
				c.noteError(ctx, "sub answer: "+errText(err))
				continue
			}
			c.send(map[string]any{"type": "answer", "pc": "sub", "sdp": answer.SDP})
			c.flushICE("sub", c.sub)
		case "candidate":
			if m.Candidate == nil {
				continue
			}
			pc := c.sub
			if m.PC == "pub" {
				pc = c.pub
			}
			if pc == nil {
				continue
			}
			if pc.RemoteDescription() == nil {
				c.mu.Lock()
				if c.pendingICE == nil {
					c.pendingICE = map[string][]webrtc.ICECandidateInit{}
				}
				c.pendingICE[m.PC] = append(c.pendingICE[m.PC], *m.Candidate)
				c.mu.Unlock()
				continue
			}
			_ = pc.AddICECandidate(*m.Candidate)
		case "room":
			c.onRoom(m.Room)
		case "error":
			c.noteError(ctx, "server error "+m.Code)
			if m.Fatal {
				c.fail(errors.New("server error " + m.Code))
			}
		case "session_ended":
			c.fail(errors.New("session ended"))
		}
	}
}

// noteError counts an error, unless the run is stopping.
func (c *ltClient) noteError(ctx context.Context, what string) {
	if ctx.Err() == nil {
		c.r.noteError(what)
	}
}

func (c *ltClient) flushICE(name string, pc *webrtc.PeerConnection) {
	c.mu.Lock()
	pending := c.pendingICE[name]
	delete(c.pendingICE, name)
	c.mu.Unlock()
	for _, cand := range pending {
		_ = pc.AddICECandidate(cand)
	}
}

// onRoom tracks the lobby: a mediator admits everyone who consented and
// waits; a party notes when it is in.
func (c *ltClient) onRoom(raw json.RawMessage) {
	var room struct {
		Self struct {
			State string `json:"state"`
		} `json:"self"`
		Participants []struct {
			State     string `json:"state"`
			Consented bool   `json:"consented"`
		} `json:"participants"`
	}
	if json.Unmarshal(raw, &room) != nil {
		return
	}
	if room.Self.State == "admitted" && c.admittedNanos.Load() == 0 {
		c.admittedNanos.CompareAndSwap(0, max(1, time.Since(c.start).Nanoseconds()))
	}
	if !c.isMediator() {
		return
	}
	waiting := false
	for _, p := range room.Participants {
		if p.State == "waiting" && p.Consented {
			waiting = true
		}
	}
	c.mu.Lock()
	c.waiting = waiting
	c.mu.Unlock()
	if waiting {
		// At most one admit_all per room view: each admission changes the
		// room, and so brings the next view.
		c.send(map[string]any{"type": "admit_all"})
	}
}

// admitAll sends admit_all if the latest room view shows someone who
// consented and waits (the retry of waitReady).
func (c *ltClient) admitAll() {
	c.mu.Lock()
	waiting := c.waiting
	c.mu.Unlock()
	if waiting {
		c.send(map[string]any{"type": "admit_all"})
	}
}

// close leaves the room and closes both connections.
func (c *ltClient) close() {
	if c.stop != nil {
		c.stop()
	}
	<-c.done
	c.send(map[string]any{"type": "leave"})
	c.wmu.Lock()
	if c.ws != nil {
		_ = c.ws.Close()
	}
	c.wmu.Unlock()
	if c.pub != nil {
		_ = c.pub.Close()
	}
	if c.sub != nil {
		_ = c.sub.Close()
	}
}

func ltWSURL(base string) string { return "ws" + strings.TrimPrefix(base, "http") + "/ws" }

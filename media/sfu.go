package media

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/sdp/v3"
	"github.com/pion/transport/v5"
	"github.com/pion/webrtc/v4"

	"github.com/concord-odr/concord/media/internal/pionlog"
	"github.com/concord-odr/concord/media/turn"
)

// Params configures the SFU.
type Params struct {
	Logger *slog.Logger
	// UDPAddr is the one UDP address all peers' media use, such as
	// "0.0.0.0:7881". Port 0 picks a free port.
	UDPAddr string
	// TCPAddr, when set, is the one TCP address for ICE over TCP (passive
	// candidates, RFC 6544), the fallback for networks that block UDP,
	// such as "0.0.0.0:7881". Empty leaves ICE-TCP off.
	TCPAddr string
	// PublicIPs, when set, are announced as this host's addresses in ICE
	// candidates (NAT 1:1, for cloud hosts), for UDP and TCP alike.
	PublicIPs []string
	// ICEServers are handed to clients at join (STUN/TURN), besides the
	// embedded TURN server.
	ICEServers []webrtc.ICEServer
	// TURN, when set, runs the embedded TURN server; ICEServersFor hands
	// out its credentials.
	TURN *TURNParams
	// UDPReaders is how many goroutines read the media UDP address, each
	// its own socket, each forwarding what it reads: 0 is one per core
	// (GOMAXPROCS); 1 leaves the socket to pion's mux's reader.
	UDPReaders int
	// AdaptProcs lets the SFU set the process's GOMAXPROCS to one while
	// the process is not busy, and back to what it was at New when it
	// is (procs.go). For servers; tests leave it off.
	AdaptProcs bool
	// Net replaces the host network, for tests on pion's virtual network
	// (transport/vnet). It carries UDP only: TCPAddr and TURN need the
	// host network.
	Net transport.Net

	// wrapTCP, in tests, wraps the ICE-TCP listener.
	wrapTCP func(net.Listener) net.Listener
}

// TURNParams configures the embedded TURN server. It relays only to this
// SFU's own media addresses.
type TURNParams struct {
	// UDPAddr and TCPAddr are where clients reach the TURN server, such as
	// "0.0.0.0:3478"; at least one.
	UDPAddr string
	TCPAddr string
	// Host is the host name or IP address in the turn: URLs clients get.
	// Default: the first public IP, else the TURN listen address's IP.
	Host string
	// RelayIP is announced for relayed candidates; the SFU must reach it.
	// Default: the first public IP, else the media UDP address's IP, else
	// the TURN listen address's IP.
	RelayIP string
	// Secret signs credentials (TURN REST convention). Every node of a
	// deployment should share it. Empty: a random secret per process.
	Secret []byte
	// TTL is how long handed-out credentials stay valid. It must outlast
	// a session, since refreshing an allocation needs them: 0 means
	// 12 hours.
	TTL time.Duration
	// Realm defaults to "concord".
	Realm string
}

// SFU owns the shared UDP and TCP sockets, the TURN server and the WebRTC
// API every peer is built from.
type SFU struct {
	log     *slog.Logger
	api     *webrtc.API
	udpConn net.PacketConn
	// batch is udpConn when it is the host's UDP socket: the fan-outs
	// send through it with sendmmsg. Nil on a virtual network.
	batch      *batchConn
	udpMux     ice.UDPMux
	tcpLn      net.Listener
	tcpMux     ice.TCPMux
	turn       *turn.Server
	turnURLs   []string
	turnTTL    time.Duration
	iceServers []webrtc.ICEServer
	raws       *rawWriters
	twcc       *twccFactory
	feedback   *feedbackFactory
	direct     *directFactory
	stats      *statsRegistry // Stats (stats.go)

	closeOnce sync.Once
	closed    chan struct{} // closed by Close
}

// New starts an SFU listening on p.UDPAddr (and p.TCPAddr, and the TURN
// addresses).
func New(p Params) (_ *SFU, err error) {
	log := p.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &SFU{log: log, iceServers: p.ICEServers, raws: &rawWriters{m: map[string]interceptor.RTPWriter{}}, twcc: newTWCCFactory(), stats: newStatsRegistry(), closed: make(chan struct{})}
	defer func() {
		if err != nil {
			_ = s.Close()
		}
	}()
	pionLog := pionlog.Factory{Logger: log}
	addr := p.UDPAddr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	if p.Net != nil {
		s.udpConn, err = p.Net.ListenPacket("udp4", addr)
	} else {
		s.udpConn, err = listenUDP(addr)
	}
	if err != nil {
		return nil, fmt.Errorf("media: listen udp %s: %w", addr, err)
	}
	if uc, ok := s.udpConn.(*net.UDPConn); ok {
		s.batch = newBatchConn(uc)
		s.udpConn = s.batch
	}
	s.direct = newDirectFactory(s.batch, log)
	if s.batch != nil {
		s.batch.in = s.direct // before the first read
		readers := p.UDPReaders
		if readers == 0 {
			readers = runtime.GOMAXPROCS(0)
		}
		if err := s.batch.openReaders(readers); err != nil {
			log.Warn("media: one UDP reader only", "err", err)
		}
		if err := s.batch.openSender(); err != nil {
			log.Warn("media: no send-only UDP socket; sending on the shared one", "err", err)
		}
	}
	s.udpMux = webrtc.NewICEUDPMux(pionLog.NewLogger("udpmux"), s.udpConn)

	se := webrtc.SettingEngine{LoggerFactory: pionLog}
	if p.Net != nil {
		se.SetNet(p.Net)
	}
	se.SetICEUDPMux(s.udpMux)
	se.SetICETimeouts(iceDisconnected, iceFailed, consentEvery) // heard.go
	networks := []webrtc.NetworkType{webrtc.NetworkTypeUDP4}
	if p.TCPAddr != "" {
		if p.Net != nil {
			return nil, errors.New("media: ICE over TCP needs the host network")
		}
		if s.tcpLn, err = net.Listen("tcp4", p.TCPAddr); err != nil {
			return nil, fmt.Errorf("media: listen tcp %s: %w", p.TCPAddr, err)
		}
		s.tcpLn = sndbufListener{s.tcpLn}
		if p.wrapTCP != nil {
			s.tcpLn = p.wrapTCP(s.tcpLn)
		}
		// No write buffer in pion (webrtc.NewICETCPMux queues up to 4 MB,
		// seconds of stale media): a subscriber's writer goroutine feels
		// TCP back-pressure itself, and its bounded queue drops.
		s.tcpMux = ice.NewTCPMuxDefault(ice.TCPMuxParams{
			Listener:       s.tcpLn,
			Logger:         pionLog.NewLogger("tcpmux"),
			ReadBufferSize: 32,
		})
		se.SetICETCPMux(s.tcpMux)
		se.DisableActiveTCP(true) // the SFU only accepts
		networks = append(networks, webrtc.NetworkTypeTCP4)
	}
	se.SetNetworkTypes(networks)
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	if len(p.PublicIPs) > 0 {
		if err := se.SetICEAddressRewriteRules(webrtc.ICEAddressRewriteRule{
			External:        p.PublicIPs,
			AsCandidateType: webrtc.ICECandidateTypeHost,
			Mode:            webrtc.ICEAddressRewriteReplace,
		}); err != nil {
			return nil, fmt.Errorf("media: public ips: %w", err)
		}
	}

	me := &webrtc.MediaEngine{}
	if err := registerCodecs(me); err != nil {
		return nil, err
	}
	s.feedback = newFeedbackFactory(s.batch)
	ir, err := registerInterceptors(me, s.raws, s.twcc, s.feedback, s.direct)
	if err != nil {
		return nil, err
	}
	s.api = webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))

	if p.TURN != nil {
		if p.Net != nil {
			return nil, errors.New("media: the TURN server needs the host network")
		}
		if err := s.startTURN(p, *p.TURN); err != nil {
			return nil, err
		}
	}
	if p.AdaptProcs && processCPUKnown {
		full := runtime.GOMAXPROCS(0)
		_, fixed := os.LookupEnv("GOMAXPROCS")
		pol := procsPolicy{full: full, shrinkAfter: procsShrinkAfter}
		go adaptProcs(s.closed, log, pol, procsTick, processCPU, procsSetter(full, fixed))
	}
	log.Info("media listening", "udp", s.udpConn.LocalAddr().String(), "tcp", s.TCPAddr())
	return s, nil
}

// startTURN starts the embedded TURN server, relaying to the SFU's UDP
// media addresses only.
func (s *SFU) startTURN(p Params, tp TURNParams) error {
	local := s.udpConn.LocalAddr().(*net.UDPAddr)
	localIP, _ := netip.AddrFromSlice(local.IP)
	localIP = localIP.Unmap()
	port := uint16(local.Port)

	var peers []turn.Peer
	switch {
	case len(p.PublicIPs) > 0:
		// Candidates carry the public IPs. With one of them, send to the
		// local socket instead, so that no NAT hairpin is needed.
		reach := localIP
		if reach.IsUnspecified() {
			reach = netip.AddrFrom4([4]byte{127, 0, 0, 1})
		}
		for _, ip := range p.PublicIPs {
			a, err := netip.ParseAddr(ip)
			if err != nil {
				return fmt.Errorf("media: public ip %q: %w", ip, err)
			}
			peer := turn.Peer{Addr: netip.AddrPortFrom(a.Unmap(), port)}
			if len(p.PublicIPs) == 1 {
				peer.Via = netip.AddrPortFrom(reach, port)
			}
			peers = append(peers, peer)
		}
	case !localIP.IsUnspecified():
		peers = []turn.Peer{{Addr: netip.AddrPortFrom(localIP, port)}}
	default:
		ips, err := interfaceIPv4s()
		if err != nil {
			return err
		}
		for _, ip := range ips {
			peers = append(peers, turn.Peer{Addr: netip.AddrPortFrom(ip, port)})
		}
	}

	listenIP := func() netip.Addr {
		for _, a := range []string{tp.UDPAddr, tp.TCPAddr} {
			if ap, err := netip.ParseAddrPort(a); err == nil && !ap.Addr().IsUnspecified() {
				return ap.Addr().Unmap()
			}
		}
		return netip.Addr{}
	}()
	relay := tp.RelayIP
	switch {
	case relay != "":
	case len(p.PublicIPs) > 0:
		relay = p.PublicIPs[0]
	case !localIP.IsUnspecified():
		relay = localIP.String()
	case listenIP.IsValid():
		relay = listenIP.String()
	default:
		return errors.New("media: set the TURN relay IP (no public IP and no specific listen address)")
	}
	relayIP, err := netip.ParseAddr(relay)
	if err != nil {
		return fmt.Errorf("media: TURN relay ip %q: %w", relay, err)
	}
	secret := tp.Secret
	if len(secret) == 0 {
		secret = make([]byte, 32)
		_, _ = rand.Read(secret)
	}
	s.turn, err = turn.New(turn.Params{
		Logger:  s.log.With("component", "turn"),
		UDPAddr: tp.UDPAddr,
		TCPAddr: tp.TCPAddr,
		Realm:   tp.Realm,
		Secret:  secret,
		RelayIP: relayIP,
		Peers:   peers,
	})
	if err != nil {
		return fmt.Errorf("media: %w", err)
	}
	host := tp.Host
	switch {
	case host != "":
	case len(p.PublicIPs) > 0:
		host = p.PublicIPs[0]
	case listenIP.IsValid():
		host = listenIP.String()
	default:
		return errors.New("media: set the TURN host (no public IP and no specific TURN listen address)")
	}
	if a := s.turn.UDPAddr(); a != nil {
		s.turnURLs = append(s.turnURLs, "turn:"+net.JoinHostPort(host, portOf(a))+"?transport=udp")
	}
	if a := s.turn.TCPAddr(); a != nil {
		s.turnURLs = append(s.turnURLs, "turn:"+net.JoinHostPort(host, portOf(a))+"?transport=tcp")
	}
	s.turnTTL = tp.TTL
	if s.turnTTL <= 0 {
		s.turnTTL = 12 * time.Hour
	}
	return nil
}

// tcpSendBuffer bounds what the kernel queues for one ICE-TCP
// connection: under a second of media, enough for a mobile link's RTT.
const tcpSendBuffer = 256 << 10

// sndbufListener bounds the kernel send buffer of accepted connections,
// so that a stalled TCP subscriber blocks its writer (and the SFU drops
// for it) instead of queueing seconds of media.
type sndbufListener struct{ net.Listener }

func (l sndbufListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok && err == nil {
		_ = tc.SetWriteBuffer(tcpSendBuffer)
	}
	return c, err
}

func portOf(a net.Addr) string {
	switch a := a.(type) {
	case *net.UDPAddr:
		return strconv.Itoa(a.Port)
	case *net.TCPAddr:
		return strconv.Itoa(a.Port)
	}
	_, port, _ := net.SplitHostPort(a.String())
	return port
}

// interfaceIPv4s lists this host's IPv4 addresses, loopback included
// (the SFU announces loopback candidates too), link-local excluded.
func interfaceIPv4s() ([]netip.Addr, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("media: interface addresses: %w", err)
	}
	var out []netip.Addr
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(n.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		if ip.Is4() && !ip.IsLinkLocalUnicast() {
			out = append(out, ip)
		}
	}
	return out, nil
}

// UDPAddr is the address media arrives on.
func (s *SFU) UDPAddr() net.Addr { return s.udpConn.LocalAddr() }

// TCPAddr is the ICE-TCP address, nil when ICE over TCP is off.
func (s *SFU) TCPAddr() net.Addr {
	if s.tcpLn == nil {
		return nil
	}
	return s.tcpLn.Addr()
}

// TURNAddrs are the embedded TURN server's UDP and TCP addresses, nil
// when it is off or that transport is.
func (s *SFU) TURNAddrs() (udp, tcp net.Addr) {
	if s.turn == nil {
		return nil, nil
	}
	return s.turn.UDPAddr(), s.turn.TCPAddr()
}

// ICEServers are the configured STUN/TURN servers clients should use. It
// holds no credentials of the embedded TURN server: see ICEServersFor.
func (s *SFU) ICEServers() []webrtc.ICEServer { return s.iceServers }

// ICEServersFor returns the ICE servers to hand participant at join: the
// configured ones, and the embedded TURN server (UDP and TCP URLs) with
// credentials of its own, valid for TURNParams.TTL. Call it at each join
// and resume, so credentials never outlive their use by much.
func (s *SFU) ICEServersFor(participant string) []webrtc.ICEServer {
	out := make([]webrtc.ICEServer, 0, len(s.iceServers)+1)
	out = append(out, s.iceServers...)
	if s.turn != nil {
		user, pass := s.turn.Credentials(participant, time.Now().Add(s.turnTTL))
		out = append(out, webrtc.ICEServer{
			URLs:       append([]string(nil), s.turnURLs...),
			Username:   user,
			Credential: pass,
		})
	}
	return out
}

// Close stops the TURN server and the shared sockets. Rooms should be
// closed first.
func (s *SFU) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.closed)
		var errs []error
		if s.turn != nil {
			errs = append(errs, s.turn.Close())
		}
		if s.tcpMux != nil {
			errs = append(errs, s.tcpMux.Close())
		}
		if s.tcpLn != nil {
			errs = append(errs, s.tcpLn.Close())
		}
		if s.udpMux != nil {
			errs = append(errs, s.udpMux.Close())
		}
		if s.udpConn != nil {
			errs = append(errs, s.udpConn.Close())
		}
		err = errors.Join(errs...)
		if errors.Is(err, net.ErrClosed) {
			err = nil
		}
	})
	return err
}

// registerInterceptors is webrtc.RegisterDefaultInterceptors without
// pion's NACK generator and responder, the SFU sending and answering
// NACKs itself (nack.go), without its RTCP reports and transport-wide
// feedback generator, which the SFU makes itself for less (report.go,
// feedback.go), and without its stats interceptor. twcc stamps
// transport-wide sequence numbers on what subscribers receive and reads
// their feedback (bwe.go). direct writes subscribers' RTP over UDP
// without pion's layers below SRTP (direct.go).
func registerInterceptors(me *webrtc.MediaEngine, raws *rawWriters, twcc *twccFactory, feedback *feedbackFactory, direct *directFactory) (*interceptor.Registry, error) {
	ir := &interceptor.Registry{}
	ir.Add(direct)                               // first: binds closest to SRTP and replaces what is below it
	ir.Add(twcc)                                 // next, so retransmissions are stamped
	ir.Add(&rawWriterInterceptor{writers: raws}) // then the writer retransmissions use
	// Receiver reports and transport-wide feedback to publishers
	// (feedback.go) and sender reports to subscribers (report.go) come
	// from the SFU itself.
	ir.Add(feedback)
	if err := webrtc.ConfigureSimulcastExtensionHeaders(me); err != nil {
		return nil, fmt.Errorf("media: simulcast extensions: %w", err)
	}
	// No stats interceptor: it records every packet in both directions
	// for PeerConnection.GetStats, which the SFU never calls (its own
	// counters are in downTrack and layer), and cost more CPU than SRTP.
	// Transport-wide sequence numbers in both directions: the SFU
	// stamps what it sends (twcc) and answers what it receives
	// (feedbackFactory).
	for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		me.RegisterFeedback(webrtc.RTCPFeedback{Type: webrtc.TypeRTCPFBTransportCC}, kind)
		if err := me.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.TransportCCURI}, kind); err != nil {
			return nil, fmt.Errorf("media: transport-wide sequence numbers: %w", err)
		}
	}
	return ir, nil
}

// registerCodecs registers the codecs Concord forwards: Opus for audio,
// VP8 for video (every current browser, phones included, supports both),
// and the audio level header extension (RFC 6464) the active speaker
// detection reads.
func registerCodecs(me *webrtc.MediaEngine) error {
	videoFeedback := []webrtc.RTCPFeedback{
		{Type: "goog-remb"}, {Type: "ccm", Parameter: "fir"},
		{Type: "nack"}, {Type: "nack", Parameter: "pli"}, {Type: "transport-cc"},
	}
	codecs := []struct {
		c webrtc.RTPCodecParameters
		t webrtc.RTPCodecType
	}{
		{webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"},
			PayloadType:        111,
		}, webrtc.RTPCodecTypeAudio},
		{webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000, RTCPFeedback: videoFeedback},
			PayloadType:        96,
		}, webrtc.RTPCodecTypeVideo},
		{webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeRTX, ClockRate: 90000, SDPFmtpLine: "apt=96"},
			PayloadType:        97,
		}, webrtc.RTPCodecTypeVideo},
		// H.264 for phones whose browsers encode it in hardware (Safari
		// prefers it): constrained baseline and baseline, the profiles
		// every WebRTC browser decodes, packetization mode 1. The
		// publisher's browser picks between these and VP8 by its own
		// order; subscribers get what it picked, as the SFU does not
		// transcode.
		{webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000, RTCPFeedback: videoFeedback,
				SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"},
			PayloadType: 125,
		}, webrtc.RTPCodecTypeVideo},
		{webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeRTX, ClockRate: 90000, SDPFmtpLine: "apt=125"},
			PayloadType:        107,
		}, webrtc.RTPCodecTypeVideo},
		{webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000, RTCPFeedback: videoFeedback,
				SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f"},
			PayloadType: 102,
		}, webrtc.RTPCodecTypeVideo},
		{webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeRTX, ClockRate: 90000, SDPFmtpLine: "apt=102"},
			PayloadType:        121,
		}, webrtc.RTPCodecTypeVideo},
	}
	for _, c := range codecs {
		if err := me.RegisterCodec(c.c, c.t); err != nil {
			return fmt.Errorf("media: register %s: %w", c.c.MimeType, err)
		}
	}
	if err := me.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.AudioLevelURI}, webrtc.RTPCodecTypeAudio); err != nil {
		return fmt.Errorf("media: register audio level: %w", err)
	}
	return nil
}

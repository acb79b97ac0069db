// Package media is Concord's selective forwarding unit, built on
// pion/webrtc. It forwards RTP between the participants of a room as it
// is told to (Room.Allow); it knows nothing of cases or of the rules that
// decide who may receive whom.
package media

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"
)

// Params configures the SFU.
type Params struct {
	Logger *slog.Logger
	// UDPAddr is the one UDP address all peers' media use, such as
	// "0.0.0.0:7881". Port 0 picks a free port.
	UDPAddr string
	// PublicIPs, when set, are announced as this host's addresses in ICE
	// candidates (NAT 1:1, for cloud hosts).
	PublicIPs []string
	// ICEServers are handed to clients at join (STUN/TURN).
	ICEServers []webrtc.ICEServer
}

// SFU owns the shared UDP socket and the WebRTC API every peer is built
// from.
type SFU struct {
	log        *slog.Logger
	api        *webrtc.API
	udpConn    net.PacketConn
	udpMux     ice.UDPMux
	iceServers []webrtc.ICEServer

	closeOnce sync.Once
}

// New starts an SFU listening on p.UDPAddr.
func New(p Params) (*SFU, error) {
	log := p.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	addr := p.UDPAddr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	conn, err := net.ListenPacket("udp4", addr)
	if err != nil {
		return nil, fmt.Errorf("media: listen udp %s: %w", addr, err)
	}
	mux := webrtc.NewICEUDPMux(nil, conn)

	me := &webrtc.MediaEngine{}
	if err := registerCodecs(me); err != nil {
		conn.Close()
		return nil, err
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(me, ir); err != nil {
		conn.Close()
		return nil, fmt.Errorf("media: interceptors: %w", err)
	}
	se := webrtc.SettingEngine{}
	se.SetICEUDPMux(mux)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	if len(p.PublicIPs) > 0 {
		if err := se.SetICEAddressRewriteRules(webrtc.ICEAddressRewriteRule{
			External:        p.PublicIPs,
			AsCandidateType: webrtc.ICECandidateTypeHost,
			Mode:            webrtc.ICEAddressRewriteReplace,
		}); err != nil {
			conn.Close()
			return nil, fmt.Errorf("media: public ips: %w", err)
		}
	}
	api := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
	log.Info("media listening", "udp", conn.LocalAddr().String())
	return &SFU{log: log, api: api, udpConn: conn, udpMux: mux, iceServers: p.ICEServers}, nil
}

// UDPAddr is the address media arrives on.
func (s *SFU) UDPAddr() net.Addr { return s.udpConn.LocalAddr() }

// ICEServers are the STUN/TURN servers clients should use.
func (s *SFU) ICEServers() []webrtc.ICEServer { return s.iceServers }

// Close stops the shared socket. Rooms should be closed first.
func (s *SFU) Close() error {
	var err error
	s.closeOnce.Do(func() {
		err = errors.Join(s.udpMux.Close(), s.udpConn.Close())
		if errors.Is(err, net.ErrClosed) {
			err = nil
		}
	})
	return err
}

// registerCodecs registers the codecs Concord forwards: Opus for audio,
// VP8 for video (every current browser, phones included, supports both).
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
	}
	for _, c := range codecs {
		if err := me.RegisterCodec(c.c, c.t); err != nil {
			return fmt.Errorf("media: register %s: %w", c.c.MimeType, err)
		}
	}
	return nil
}

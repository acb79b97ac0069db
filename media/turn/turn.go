// Package turn is Concord's embedded TURN server (RFC 8656, on
// pion/turn). It lets a participant whose network blocks direct media (a
// strict office firewall, a mobile carrier dropping UDP) relay it through
// the server, over UDP or TCP, with short-lived credentials handed out at
// join.
//
// It is not an open relay: an allocation may reach only the addresses
// listed in Params.Peers, which are the SFU's own media addresses. A
// permission for any other address (loopback, private, link-local,
// multicast, cloud metadata or any public host) is refused, a packet for
// another port of an allowed address is dropped, and so is anything
// arriving on a relay socket from elsewhere. TCP relay allocations (RFC
// 6062) are refused: browsers relay UDP, also when they reach the server
// over TCP.
package turn

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // RFC 8489 long-term credentials and the TURN REST convention use HMAC-SHA1
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
	pturn "github.com/pion/turn/v5"

	"github.com/concord-odr/concord/media/internal/pionlog"
)

// Peer is one address the relay may reach.
type Peer struct {
	// Addr is the address as clients name it: one of the SFU's ICE
	// candidates.
	Addr netip.AddrPort
	// Via is where the relay really sends what is addressed to Addr, when
	// that differs: the SFU's local socket when Addr is a public address
	// the host cannot reach itself through (no NAT hairpin). Zero means
	// Addr.
	Via netip.AddrPort
}

// Params configures the server.
type Params struct {
	Logger *slog.Logger
	// UDPAddr and TCPAddr are where clients reach the server, such as
	// "0.0.0.0:3478". Empty leaves that transport off; at least one is
	// needed.
	UDPAddr string
	TCPAddr string
	// Realm defaults to "concord".
	Realm string
	// Secret signs credentials (see Credentials). Required.
	Secret []byte
	// RelayIP is the address announced for relayed transport addresses.
	// The SFU sends to it, so it must be reachable from the SFU.
	RelayIP netip.Addr
	// RelayBind is the local address relay sockets are opened on; by
	// default RelayIP when it is local, else the unspecified address.
	RelayBind string
	// Peers are the only destinations. Required.
	Peers []Peer
	// MaxAllocations per participant; 0 means 8.
	MaxAllocations int
	// Net replaces the host network for relay sockets (tests).
	Net transport.Net
}

// Server is a running TURN server.
type Server struct {
	log     *slog.Logger
	srv     *pturn.Server
	udp     net.PacketConn
	tcp     net.Listener
	realm   string
	secret  []byte
	gen     *relayGen
	maxPer  int
	allocMu sync.Mutex
	allocs  map[string]int // participant -> allocations

	closeOnce sync.Once
	closeErr  error
}

// ErrRefused is the error a refused relay operation reports.
var ErrRefused = errors.New("turn: relay destination refused")

// New starts a server.
func New(p Params) (*Server, error) {
	log := p.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if len(p.Secret) == 0 {
		return nil, errors.New("turn: a secret is required")
	}
	if !p.RelayIP.IsValid() {
		return nil, errors.New("turn: a relay ip is required")
	}
	if p.UDPAddr == "" && p.TCPAddr == "" {
		return nil, errors.New("turn: no udp or tcp address")
	}
	gen, err := newRelayGen(p)
	if err != nil {
		return nil, err
	}
	s := &Server{
		log:    log,
		realm:  p.Realm,
		secret: append([]byte(nil), p.Secret...),
		gen:    gen,
		maxPer: p.MaxAllocations,
		allocs: map[string]int{},
	}
	if s.realm == "" {
		s.realm = "concord"
	}
	if s.maxPer <= 0 {
		s.maxPer = 8
	}
	perm := func(_ net.Addr, peerIP net.IP) bool { return gen.permit(peerIP) }
	cfg := pturn.ServerConfig{
		Realm:         s.realm,
		AuthHandler:   s.auth,
		QuotaHandler:  s.quota,
		LoggerFactory: pionlog.Factory{Logger: log},
		EventHandler: pturn.EventHandler{
			OnAllocationCreated: func(_, _ net.Addr, _, user, _ string, _ net.Addr, _ int) { s.count(user, 1) },
			OnAllocationDeleted: func(_, _ net.Addr, _, user, _ string) { s.count(user, -1) },
		},
	}
	if p.UDPAddr != "" {
		if s.udp, err = net.ListenPacket("udp", p.UDPAddr); err != nil {
			return nil, fmt.Errorf("turn: listen udp %s: %w", p.UDPAddr, err)
		}
		cfg.PacketConnConfigs = []pturn.PacketConnConfig{{PacketConn: s.udp, RelayAddressGenerator: gen, PermissionHandler: perm}}
	}
	if p.TCPAddr != "" {
		if s.tcp, err = net.Listen("tcp", p.TCPAddr); err != nil {
			s.closeListeners()
			return nil, fmt.Errorf("turn: listen tcp %s: %w", p.TCPAddr, err)
		}
		cfg.ListenerConfigs = []pturn.ListenerConfig{{Listener: s.tcp, RelayAddressGenerator: gen, PermissionHandler: perm}}
	}
	if s.srv, err = pturn.NewServer(cfg); err != nil {
		s.closeListeners()
		return nil, fmt.Errorf("turn: %w", err)
	}
	log.Info("turn listening", "udp", addrString(s.udp), "tcp", listenerString(s.tcp), "relay", p.RelayIP.String())
	return s, nil
}

// UDPAddr is where clients reach the server over UDP, nil if not.
func (s *Server) UDPAddr() net.Addr {
	if s.udp == nil {
		return nil
	}
	return s.udp.LocalAddr()
}

// TCPAddr is where clients reach the server over TCP, nil if not.
func (s *Server) TCPAddr() net.Addr {
	if s.tcp == nil {
		return nil
	}
	return s.tcp.Addr()
}

// Realm is the server's realm.
func (s *Server) Realm() string { return s.realm }

// Credentials returns a username and password for participant, valid
// until expires.
func (s *Server) Credentials(participant string, expires time.Time) (username, password string) {
	return Credentials(s.secret, participant, expires)
}

// Credentials makes TURN REST credentials: the username is
// "<expiry unix seconds>:<participant>", the password the base64 HMAC-SHA1
// of the username under the shared secret. Any server holding the secret
// accepts them until the expiry.
func Credentials(secret []byte, participant string, expires time.Time) (username, password string) {
	username = strconv.FormatInt(expires.Unix(), 10) + ":" + participant
	return username, sign(secret, username)
}

func sign(secret []byte, username string) string {
	mac := hmac.New(sha1.New, secret)
	mac.Write([]byte(username))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// auth checks a TURN REST username and returns the long-term key.
func (s *Server) auth(ra *pturn.RequestAttributes) (userID string, key []byte, ok bool) {
	expiry, user, found := strings.Cut(ra.Username, ":")
	if !found || user == "" {
		return "", nil, false
	}
	t, err := strconv.ParseInt(expiry, 10, 64)
	if err != nil || time.Now().Unix() > t {
		s.log.Debug("turn credentials refused", "user", user, "from", ra.SrcAddr)
		return "", nil, false
	}
	return user, pturn.GenerateAuthKey(ra.Username, ra.Realm, sign(s.secret, ra.Username)), true
}

func (s *Server) quota(user, _ string, _ net.Addr) bool {
	s.allocMu.Lock()
	defer s.allocMu.Unlock()
	return s.allocs[user] < s.maxPer
}

func (s *Server) count(user string, d int) {
	s.allocMu.Lock()
	defer s.allocMu.Unlock()
	if s.allocs[user] += d; s.allocs[user] <= 0 {
		delete(s.allocs, user)
	}
}

// Close stops the server and its allocations.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.closeErr = s.srv.Close()
		s.closeListeners()
	})
	return s.closeErr
}

func (s *Server) closeListeners() {
	if s.udp != nil {
		_ = s.udp.Close()
	}
	if s.tcp != nil {
		_ = s.tcp.Close()
	}
}

func addrString(c net.PacketConn) string {
	if c == nil {
		return ""
	}
	return c.LocalAddr().String()
}

func listenerString(l net.Listener) string {
	if l == nil {
		return ""
	}
	return l.Addr().String()
}

// relayGen opens relay sockets that reach only the configured peers.
type relayGen struct {
	log     *slog.Logger
	net     transport.Net
	bind    string
	relayIP net.IP
	ips     map[netip.Addr]bool             // peer IPs clients may name
	to      map[netip.AddrPort]*net.UDPAddr // Addr -> where to send
	from    map[netip.AddrPort]*net.UDPAddr // where replies come from -> Addr
}

var _ pturn.RelayAddressGenerator = (*relayGen)(nil)

func newRelayGen(p Params) (*relayGen, error) {
	if len(p.Peers) == 0 {
		return nil, errors.New("turn: no peers to relay to")
	}
	g := &relayGen{
		log:     p.Logger,
		net:     p.Net,
		bind:    p.RelayBind,
		relayIP: net.IP(p.RelayIP.Unmap().AsSlice()),
		ips:     map[netip.Addr]bool{},
		to:      map[netip.AddrPort]*net.UDPAddr{},
		from:    map[netip.AddrPort]*net.UDPAddr{},
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	if g.net == nil {
		n, err := stdnet.NewNet()
		if err != nil {
			return nil, fmt.Errorf("turn: network: %w", err)
		}
		g.net = n
	}
	if g.bind == "" {
		g.bind = "0.0.0.0"
		if p.RelayIP.Is6() && !p.RelayIP.Is4In6() {
			g.bind = "::"
		}
		if l, err := g.net.ListenPacket("udp", net.JoinHostPort(p.RelayIP.String(), "0")); err == nil {
			_ = l.Close()
			g.bind = p.RelayIP.String()
		}
	}
	for _, peer := range p.Peers {
		addr := netip.AddrPortFrom(peer.Addr.Addr().Unmap(), peer.Addr.Port())
		via := addr
		if peer.Via.IsValid() {
			via = netip.AddrPortFrom(peer.Via.Addr().Unmap(), peer.Via.Port())
		}
		if !usable(addr.Addr()) || !usable(via.Addr()) || addr.Port() == 0 || via.Port() == 0 {
			return nil, fmt.Errorf("turn: %s is not an address to relay to", peer.Addr)
		}
		if prev, ok := g.from[via]; ok && prev.AddrPort() != addr {
			return nil, fmt.Errorf("turn: %s and %s both reach %s", prev, addr, via)
		}
		g.ips[addr.Addr()] = true
		g.to[addr] = net.UDPAddrFromAddrPort(via)
		g.from[via] = net.UDPAddrFromAddrPort(addr)
	}
	return g, nil
}

// usable refuses addresses no SFU listens on: unspecified, multicast,
// broadcast and link-local (which includes 169.254.169.254, the cloud
// metadata service).
func usable(a netip.Addr) bool {
	return a.IsValid() && !a.IsUnspecified() && !a.IsMulticast() && !a.IsLinkLocalUnicast() &&
		!a.IsLinkLocalMulticast() && !a.IsInterfaceLocalMulticast() && a != netip.AddrFrom4([4]byte{255, 255, 255, 255})
}

// permit is the permission handler: only the peers' IPs.
func (g *relayGen) permit(ip net.IP) bool {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return false
	}
	allowed := g.ips[a.Unmap()]
	if !allowed {
		g.log.Info("turn permission refused", "peer", a.Unmap().String())
	}
	return allowed
}

func (g *relayGen) Validate() error { return nil }

// AllocatePacketConn opens a UDP relay socket that reaches only the
// peers.
func (g *relayGen) AllocatePacketConn(conf pturn.AllocateListenerConfig) (net.PacketConn, net.Addr, error) {
	network := conf.Network
	if network == "" {
		network = "udp4"
	}
	conn, err := g.net.ListenPacket(network, net.JoinHostPort(g.bind, "0"))
	if err != nil {
		return nil, nil, err
	}
	local, ok := conn.LocalAddr().(*net.UDPAddr)
	if !ok {
		_ = conn.Close()
		return nil, nil, errors.New("turn: relay socket is not udp")
	}
	return &peerConn{PacketConn: conn, g: g}, &net.UDPAddr{IP: g.relayIP, Port: local.Port}, nil
}

// AllocateListener refuses TCP relay allocations (RFC 6062).
func (g *relayGen) AllocateListener(pturn.AllocateListenerConfig) (net.Listener, net.Addr, error) {
	return nil, nil, ErrRefused
}

// AllocateConn refuses TCP relay connections (RFC 6062).
func (g *relayGen) AllocateConn(pturn.AllocateConnConfig) (net.Conn, error) {
	return nil, ErrRefused
}

// peerConn is a relay socket that exchanges packets with the peers only.
type peerConn struct {
	net.PacketConn
	g *relayGen
}

func addrPortOf(a net.Addr) (netip.AddrPort, bool) {
	u, ok := a.(*net.UDPAddr)
	if !ok {
		return netip.AddrPort{}, false
	}
	ap := u.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), true
}

// WriteTo sends p to addr if addr is a peer, and drops it otherwise.
func (c *peerConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	ap, ok := addrPortOf(addr)
	if !ok {
		return 0, ErrRefused
	}
	to, ok := c.g.to[ap]
	if !ok {
		c.g.log.Debug("turn relay refused", "peer", ap.String())
		return 0, ErrRefused
	}
	return c.PacketConn.WriteTo(p, to)
}

// ReadFrom returns the next packet from a peer, named as clients name
// it; packets from anywhere else are dropped.
func (c *peerConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, from, err := c.PacketConn.ReadFrom(p)
		if err != nil {
			return n, from, err
		}
		if ap, ok := addrPortOf(from); ok {
			if addr, ok := c.g.from[ap]; ok {
				return n, addr, nil
			}
		}
	}
}

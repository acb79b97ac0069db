package turn

import (
	"net"
	"net/netip"
	"testing"
	"time"

	pturn "github.com/pion/turn/v5"
)

var secret = []byte("test secret")

// start runs a server on loopback UDP and TCP whose only peer is a UDP
// socket standing in for the SFU, which echoes what it receives.
func start(t *testing.T) (*Server, net.PacketConn) {
	t.Helper()
	sfu, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sfu.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := sfu.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = sfu.WriteTo(buf[:n], from)
		}
	}()
	s, err := New(Params{
		UDPAddr: "127.0.0.1:0",
		TCPAddr: "127.0.0.1:0",
		Secret:  secret,
		RelayIP: netip.MustParseAddr("127.0.0.1"),
		Peers:   []Peer{{Addr: sfu.LocalAddr().(*net.UDPAddr).AddrPort()}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, sfu
}

// client connects to s over "udp" or "tcp" with the given credentials.
func client(t *testing.T, s *Server, network, user, pass string) *pturn.Client {
	t.Helper()
	var conn net.PacketConn
	var server string
	switch network {
	case "udp":
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		conn, server = c, s.UDPAddr().String()
	case "tcp":
		c, err := net.Dial("tcp", s.TCPAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		conn, server = pturn.NewSTUNConn(c), s.TCPAddr().String()
	}
	c, err := pturn.NewClient(&pturn.ClientConfig{
		TURNServerAddr: server,
		Username:       user,
		Password:       pass,
		Realm:          s.Realm(),
		Conn:           conn,
		RTO:            100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		_ = conn.Close()
	})
	return c
}

func TestCredentials(t *testing.T) {
	exp := time.Unix(1900000000, 0)
	user, pass := Credentials(secret, "p_42", exp)
	if user != "1900000000:p_42" {
		t.Fatalf("username %q", user)
	}
	// RFC 2104 HMAC-SHA1, base64, as coturn's use-auth-secret computes it.
	if pass != sign(secret, user) || len(pass) != 28 {
		t.Fatalf("password %q", pass)
	}
	if _, other := Credentials([]byte("other"), "p_42", exp); other == pass {
		t.Fatal("the password does not depend on the secret")
	}
}

// TestRelayOnlyToPeers: an allocation reaches the SFU and nothing else,
// over UDP and TCP alike.
func TestRelayOnlyToPeers(t *testing.T) {
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			s, sfu := start(t)
			user, pass := s.Credentials("p_1", time.Now().Add(time.Hour))
			c := client(t, s, network, user, pass)
			relay, err := c.Allocate()
			if err != nil {
				t.Fatalf("allocate: %v", err)
			}
			defer relay.Close()

			// To the SFU, and back.
			if _, err := relay.WriteTo([]byte("hello"), sfu.LocalAddr()); err != nil {
				t.Fatalf("write to the SFU: %v", err)
			}
			buf := make([]byte, 100)
			_ = relay.SetReadDeadline(time.Now().Add(3 * time.Second))
			n, from, err := relay.ReadFrom(buf)
			if err != nil || string(buf[:n]) != "hello" || from.String() != sfu.LocalAddr().String() {
				t.Fatalf("echo: %q from %v, %v", buf[:n], from, err)
			}

			// Permissions for anything else are refused: other hosts,
			// private, link-local, metadata, multicast, IPv6 loopback.
			for _, ip := range []string{"8.8.8.8", "10.0.0.1", "192.168.1.1", "172.16.0.1", "169.254.169.254", "224.0.0.1", "255.255.255.255", "100.64.0.1"} {
				if err := c.CreatePermission(&net.UDPAddr{IP: net.ParseIP(ip), Port: 53}); err == nil {
					t.Errorf("permission to %s granted", ip)
				}
			}

			// The SFU's IP on another port: the permission is per IP (RFC
			// 8656), but nothing is relayed there, in either direction.
			other, err := net.ListenPacket("udp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer other.Close()
			_, _ = relay.WriteTo([]byte("leak"), other.LocalAddr())
			_ = other.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			if n, _, err := other.ReadFrom(buf); err == nil {
				t.Fatalf("relayed %q to another port of the SFU's address", buf[:n])
			}
			relayAddr := relay.LocalAddr()
			_, _ = other.WriteTo([]byte("inject"), relayAddr)
			_ = relay.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			if n, from, err := relay.ReadFrom(buf); err == nil {
				t.Fatalf("relayed %q from %v, not the SFU", buf[:n], from)
			}
		})
	}
}

func TestRefused(t *testing.T) {
	s, _ := start(t)
	expiredUser, expiredPass := s.Credentials("p_1", time.Now().Add(-time.Minute))
	user, _ := s.Credentials("p_1", time.Now().Add(time.Hour))
	for name, creds := range map[string][2]string{
		"expired":      {expiredUser, expiredPass},
		"bad password": {user, "AAAAAAAAAAAAAAAAAAAAAAAAAAA="},
		"no expiry":    {"p_1", "x"},
	} {
		t.Run(name, func(t *testing.T) {
			c := client(t, s, "udp", creds[0], creds[1])
			if relay, err := c.Allocate(); err == nil {
				relay.Close()
				t.Fatal("allocation granted")
			}
		})
	}
	t.Run("tcp allocation", func(t *testing.T) {
		user, pass := s.Credentials("p_2", time.Now().Add(time.Hour))
		c := client(t, s, "tcp", user, pass)
		if a, err := c.AllocateTCP(); err == nil {
			_ = a.Close()
			t.Fatal("RFC 6062 TCP allocation granted")
		}
	})
	t.Run("quota", func(t *testing.T) {
		user, pass := s.Credentials("p_3", time.Now().Add(time.Hour))
		for i := range 9 {
			c := client(t, s, "udp", user, pass)
			relay, err := c.Allocate()
			if i < 8 && err != nil {
				t.Fatalf("allocation %d: %v", i, err)
			}
			if i == 8 && err == nil {
				t.Fatal("a ninth allocation was granted")
			}
			if err == nil {
				defer relay.Close()
			}
		}
	})
}

func TestParams(t *testing.T) {
	peer := []Peer{{Addr: netip.MustParseAddrPort("127.0.0.1:7881")}}
	for name, p := range map[string]Params{
		"no secret":    {UDPAddr: "127.0.0.1:0", RelayIP: netip.MustParseAddr("127.0.0.1"), Peers: peer},
		"no peers":     {UDPAddr: "127.0.0.1:0", Secret: secret, RelayIP: netip.MustParseAddr("127.0.0.1")},
		"no listener":  {Secret: secret, RelayIP: netip.MustParseAddr("127.0.0.1"), Peers: peer},
		"metadata":     {UDPAddr: "127.0.0.1:0", Secret: secret, RelayIP: netip.MustParseAddr("127.0.0.1"), Peers: []Peer{{Addr: netip.MustParseAddrPort("169.254.169.254:80")}}},
		"multicast":    {UDPAddr: "127.0.0.1:0", Secret: secret, RelayIP: netip.MustParseAddr("127.0.0.1"), Peers: []Peer{{Addr: netip.MustParseAddrPort("239.1.1.1:7881")}}},
		"no relay ip":  {UDPAddr: "127.0.0.1:0", Secret: secret, Peers: peer},
		"shared route": {UDPAddr: "127.0.0.1:0", Secret: secret, RelayIP: netip.MustParseAddr("127.0.0.1"), Peers: []Peer{{Addr: netip.MustParseAddrPort("192.0.2.1:7881"), Via: netip.MustParseAddrPort("127.0.0.1:7881")}, {Addr: netip.MustParseAddrPort("192.0.2.2:7881"), Via: netip.MustParseAddrPort("127.0.0.1:7881")}}},
	} {
		if s, err := New(p); err == nil {
			_ = s.Close()
			t.Errorf("%s: accepted", name)
		}
	}
}

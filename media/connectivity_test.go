package media

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/transport/v5/vnet"
	"github.com/pion/webrtc/v4"

	"github.com/concord-odr/concord/media/internal/pionlog"
)

// TestICETCP: clients that can use TCP only (UDP blocked) publish and
// receive through the SFU's one ICE-TCP port, next to UDP clients.
func TestICETCP(t *testing.T) {
	sfu := newTestSFU(t, Params{TCPAddr: "127.0.0.1:0"})
	room := sfu.NewRoom("tcp")
	defer room.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	tcpOnly := clientOpts{networks: []webrtc.NetworkType{webrtc.NetworkTypeTCP4}}
	alice := newTestClient(t, room, "alice", tcpOnly)
	bob := newTestClient(t, room, "bob", tcpOnly)
	carol := newTestClient(t, room, "carol", clientOpts{}) // UDP
	alice.publish(ctx, true, true, 2)
	carol.publish(ctx, true, false, 0)
	room.Allow("bob", "alice", true)
	room.Allow("bob", "carol", true)
	room.Allow("carol", "alice", true)
	waitFor(t, 10*time.Second, "media over ICE-TCP", func() bool {
		return bob.packets("alice", "video") > 20 && bob.packets("carol", "audio") > 20 && carol.packets("alice", "video") > 20
	})
	pair := bob.selectedPair()
	if pair == nil || pair.Local.Protocol != webrtc.ICEProtocolTCP {
		t.Fatalf("bob's selected pair %v is not TCP", pair)
	}
	port := strconv.Itoa(sfu.TCPAddr().(*net.TCPAddr).Port)
	if pair.Remote.Port != uint16(sfu.TCPAddr().(*net.TCPAddr).Port) {
		t.Fatalf("bob reaches the SFU at %s:%d, want the ICE-TCP port %s", pair.Remote.Address, pair.Remote.Port, port)
	}
}

// TestPublicIPCandidates: with a public IP configured (NAT 1:1), the SFU
// announces it, on the UDP and the TCP port, and no private address.
func TestPublicIPCandidates(t *testing.T) {
	sfu := newTestSFU(t, Params{TCPAddr: "127.0.0.1:0", PublicIPs: []string{"192.0.2.10"}})
	room := sfu.NewRoom("nat")
	defer room.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := newTestClient(t, room, "c", clientOpts{})
	c.publish(ctx, true, false, 0)
	udpPort := strconv.Itoa(sfu.UDPAddr().(*net.UDPAddr).Port)
	tcpPort := strconv.Itoa(sfu.TCPAddr().(*net.TCPAddr).Port)
	var udp, tcp bool
	waitFor(t, 5*time.Second, "the SFU's candidates", func() bool {
		for _, cand := range c.sfuCandidates() {
			f := strings.Fields(cand)
			if len(f) < 9 {
				continue
			}
			proto, addr, port := strings.ToLower(f[3]), f[5], f[6]
			if addr != "192.0.2.10" {
				t.Fatalf("the SFU announced %q, not its public IP", cand)
			}
			udp = udp || proto == "udp" && port == udpPort
			tcp = tcp || proto == "tcp" && port == tcpPort && strings.Contains(cand, "tcptype passive")
		}
		return udp && tcp
	})
}

// TestNAT1To1: the SFU runs behind a 1:1 NAT (pion's vnet), with its
// private address unreachable from the clients' network. Configured with
// the public IP, it announces that address and media flows through the
// NAT.
func TestNAT1To1(t *testing.T) {
	logs := pionlog.Factory{Logger: testLogger()}
	wan, err := newRouter(&vnet.RouterConfig{CIDR: "203.0.113.0/24", LoggerFactory: logs})
	if err != nil {
		t.Fatal(err)
	}
	lan, err := newRouter(&vnet.RouterConfig{
		CIDR:          "10.1.0.0/24",
		StaticIPs:     []string{"203.0.113.4/10.1.0.4"},
		NATType:       &vnet.NATType{Mode: vnet.NATModeNAT1To1},
		LoggerFactory: logs,
	})
	if err != nil {
		t.Fatal(err)
	}
	sfuNet, _ := newVNet("10.1.0.4")
	if err := lan.AddNet(sfuNet); err != nil {
		t.Fatal(err)
	}
	if err := wan.AddRouter(lan); err != nil {
		t.Fatal(err)
	}
	var nets []*vnet.Net
	for _, ip := range []string{"203.0.113.20", "203.0.113.21"} {
		n, _ := newVNet(ip)
		if err := wan.AddNet(n); err != nil {
			t.Fatal(err)
		}
		nets = append(nets, n)
	}
	if err := wan.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = wan.Stop() }()

	sfu := newTestSFU(t, Params{Net: sfuNet, UDPAddr: "10.1.0.4:7881", PublicIPs: []string{"203.0.113.4"}})
	room := sfu.NewRoom("nat")
	defer room.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	alice := newTestClient(t, room, "alice", clientOpts{net: nets[0]})
	bob := newTestClient(t, room, "bob", clientOpts{net: nets[1]})
	alice.publish(ctx, true, true, 1)
	room.Allow("bob", "alice", true)
	waitFor(t, 10*time.Second, "media through the NAT", func() bool {
		return bob.packets("alice", "video") > 20 && bob.packets("alice", "audio") > 20
	})
	for _, cand := range append(alice.sfuCandidates(), bob.sfuCandidates()...) {
		if strings.Contains(cand, "10.1.0.4") || !strings.Contains(cand, "203.0.113.4 7881") {
			t.Fatalf("the SFU announced %q", cand)
		}
	}
	if p := bob.selectedPair(); p == nil || p.Remote.Address != "203.0.113.4" {
		t.Fatalf("bob's selected pair %v does not use the public address", p)
	}
}

package media

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

// TestTURNRelayOnly: clients forced to relay-only ICE complete a call
// through the embedded TURN server, one reaching it over UDP and one
// over TCP, with the credentials ICEServersFor hands out.
func TestTURNRelayOnly(t *testing.T) {
	t.Parallel()
	sfu := newTestSFU(t, Params{TURN: &TURNParams{UDPAddr: "127.0.0.1:0", TCPAddr: "127.0.0.1:0"}})
	servers := sfu.ICEServersFor("alice")
	if len(servers) != 1 || len(servers[0].URLs) != 2 || !strings.HasPrefix(servers[0].Username, "") {
		t.Fatalf("ICE servers %+v", servers)
	}
	user, _ := servers[0].Username, servers[0].Credential
	if exp, who, ok := strings.Cut(user, ":"); !ok || who != "alice" || len(exp) != 10 {
		t.Fatalf("username %q is not expiry:participant", user)
	}
	only := func(transport string) []webrtc.ICEServer {
		s := sfu.ICEServersFor("p")
		var urls []string
		for _, u := range s[0].URLs {
			if strings.HasSuffix(u, "transport="+transport) {
				urls = append(urls, u)
			}
		}
		s[0].URLs = urls
		return s
	}

	room := sfu.NewRoom("turn")
	defer room.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	alice := newTestClient(t, room, "alice", clientOpts{relayOnly: true, iceServers: only("udp")})
	bob := newTestClient(t, room, "bob", clientOpts{relayOnly: true, iceServers: only("tcp"),
		networks: []webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeTCP4}})
	alice.publish(ctx, true, true, 2)
	bob.publish(ctx, true, false, 0)
	room.Allow("bob", "alice", true)
	room.Allow("alice", "bob", true)
	waitFor(t, 15*time.Second, "media through TURN", func() bool {
		return bob.packets("alice", "video") > 20 && alice.packets("bob", "audio") > 20
	})
	for _, c := range []*testClient{alice, bob} {
		p := c.selectedPair()
		if p == nil || p.Local.Typ != webrtc.ICECandidateTypeRelay {
			t.Fatalf("%s's selected pair %v is not relayed", c.id, p)
		}
	}
}

// TestTURNWithPublicIP: on a cloud host the SFU announces its public IP
// (NAT 1:1), which the host itself may not reach (no hairpin). The TURN
// server relays what clients address to that public IP to the SFU's
// local socket, so relay-only clients still connect.
func TestTURNWithPublicIP(t *testing.T) {
	t.Parallel()
	sfu := newTestSFU(t, Params{
		PublicIPs: []string{"192.0.2.10"}, // TEST-NET-1: unreachable
		TURN:      &TURNParams{UDPAddr: "127.0.0.1:0", Host: "127.0.0.1"},
	})
	room := sfu.NewRoom("cloud")
	defer room.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	alice := newTestClient(t, room, "alice", clientOpts{relayOnly: true, iceServers: sfu.ICEServersFor("alice")})
	bob := newTestClient(t, room, "bob", clientOpts{relayOnly: true, iceServers: sfu.ICEServersFor("bob")})
	alice.publish(ctx, true, true, 1)
	room.Allow("bob", "alice", true)
	waitFor(t, 15*time.Second, "media through TURN to the public address", func() bool {
		return bob.packets("alice", "video") > 20
	})
	if p := bob.selectedPair(); p == nil || p.Local.Typ != webrtc.ICECandidateTypeRelay || p.Remote.Address != "192.0.2.10" {
		t.Fatalf("bob's selected pair %v", p)
	}
}

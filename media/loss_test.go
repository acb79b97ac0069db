package media

import (
	"context"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/pion/transport/v5/vnet"

	"github.com/concord-odr/concord/media/internal/pionlog"
)

// lossyNet is a virtual LAN (pion's transport/vnet) with the SFU at
// 10.0.0.1 and one address per client, dropping a share of the media
// packets (RTP and RTCP, RFC 7983 first byte 128-191) in both directions
// on every leg. ICE and DTLS get through untouched, so the test measures
// media recovery, not connection setup.
type lossyNet struct {
	router *vnet.Router
	mu     sync.Mutex
	rnd    *rand.Rand
	loss   float64
	media  map[string]int // leg ("10.0.0.2>10.0.0.1") -> media packets
	lost   map[string]int
}

// vnetMu serialises creating vnet routers and hosts: pion's vnet numbers
// their MAC addresses without a lock, and the vnet tests run in parallel.
var vnetMu sync.Mutex

func newRouter(cfg *vnet.RouterConfig) (*vnet.Router, error) {
	vnetMu.Lock()
	defer vnetMu.Unlock()
	return vnet.NewRouter(cfg)
}

func newVNet(ips ...string) (*vnet.Net, error) {
	vnetMu.Lock()
	defer vnetMu.Unlock()
	return vnet.NewNet(&vnet.NetConfig{StaticIPs: ips})
}

func newLossyNet(t *testing.T, loss float64) *lossyNet {
	t.Helper()
	r, err := newRouter(&vnet.RouterConfig{
		CIDR:          "10.0.0.0/24",
		MinDelay:      15 * time.Millisecond,
		LoggerFactory: pionlog.Factory{Logger: testLogger()},
	})
	if err != nil {
		t.Fatal(err)
	}
	n := &lossyNet{router: r, rnd: rand.New(rand.NewPCG(5, 5)), loss: loss, media: map[string]int{}, lost: map[string]int{}}
	r.AddChunkFilter(func(c vnet.Chunk) bool {
		b := c.UserData()
		if len(b) == 0 || b[0] < 128 || b[0] > 191 {
			return true
		}
		src, _, _ := net.SplitHostPort(c.SourceAddr().String())
		dst, _, _ := net.SplitHostPort(c.DestinationAddr().String())
		leg := src + ">" + dst
		n.mu.Lock()
		defer n.mu.Unlock()
		n.media[leg]++
		if n.rnd.Float64() < n.loss {
			n.lost[leg]++
			return false
		}
		return true
	})
	return n
}

// host adds a host at ip.
func (n *lossyNet) host(t *testing.T, ip string) *vnet.Net {
	t.Helper()
	h, err := newVNet(ip)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.router.AddNet(h); err != nil {
		t.Fatal(err)
	}
	return h
}

func (n *lossyNet) leg(src, dst string) (media, lost int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.media[src+">"+dst], n.lost[src+">"+dst]
}

// TestNACKRecoversLoss: with 5% of media packets dropped between the
// publisher and the SFU and again between the SFU and the subscriber,
// the subscriber's video is complete once NACK and RTX have done their
// work: the SFU NACKs the publisher for what it missed, and retransmits
// from its own cache (as RTX) what the subscriber NACKs. Audio (Opus
// negotiates no NACK) shows the raw loss for comparison.
func TestNACKRecoversLoss(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("media over a lossy virtual network takes seconds")
	}
	const loss = 0.05
	n := newLossyNet(t, loss)
	sfuNet := n.host(t, "10.0.0.1")
	pubNet := n.host(t, "10.0.0.2")
	subNet := n.host(t, "10.0.0.3")
	if err := n.router.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = n.router.Stop() }()

	sfu := newTestSFU(t, Params{Net: sfuNet, UDPAddr: "10.0.0.1:7881"})
	room := sfu.NewRoom("lossy")
	defer room.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	pub := newTestClient(t, room, "pub", clientOpts{net: pubNet})
	sub := newTestClient(t, room, "sub", clientOpts{net: subNet})
	room.Allow("sub", "pub", true)
	audio, video := pub.publish(ctx, true, true, 5) // 150 video packets a second
	deadline := time.Now().Add(10 * time.Second)
	for sub.packets("pub", "video") <= 30 {
		if time.Now().After(deadline) {
			t.Fatalf("no media through the lossy network after 10 s: pub %s/%s, sub %s/%s, subscriptions %v, received %d",
				pub.pub.ConnectionState(), pub.sub.ConnectionState(), sub.pub.ConnectionState(), sub.sub.ConnectionState(),
				sub.peer.Subscriptions(), sub.packets("pub", "video"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Judge from 200 ms into the subscription: the subscriber's stream
	// starts with the first packet after it was bound, and a packet of
	// just before may come late (retransmitted upstream) with its
	// neighbours already gone by.
	first := sub.got("pub", "video")
	var from uint32 = 1 << 31
	for c := range first.counters {
		from = min(from, c)
	}
	from += 30
	audioFirst := sub.got("pub", "audio")
	var audioFrom uint32 = 1 << 31
	for c := range audioFirst.counters {
		audioFrom = min(audioFrom, c)
	}

	time.Sleep(4 * time.Second)
	// Judge what was sent until a second ago: recovery takes a few round
	// trips.
	to, audioTo := video.count()-150, audio.count()-50
	time.Sleep(time.Second)

	got := sub.got("pub", "video")
	missing := 0
	for c := from; c <= to; c++ {
		if !got.counters[c] {
			missing++
			t.Logf("missing video packet %d (window %d..%d, sent %d)", c, from, to, video.count())
		}
	}
	total := int(to - from + 1)
	gotAudio := sub.got("pub", "audio")
	audioMissing := 0
	for c := audioFrom; c <= audioTo; c++ {
		if !gotAudio.counters[c] {
			audioMissing++
		}
	}
	upMedia, upLost := n.leg("10.0.0.2", "10.0.0.1")
	downMedia, downLost := n.leg("10.0.0.1", "10.0.0.3")
	var resent, missed uint64
	for _, d := range sub.peer.downs() {
		resent += d.resent.Load()
		missed += d.nackMissed.Load()
	}
	t.Logf("network dropped %d/%d media packets publisher->SFU and %d/%d SFU->subscriber", upLost, upMedia, downLost, downMedia)
	t.Logf("video: %d packets sent, %d missing after NACK: residual loss %.2f%% (SFU retransmitted %d, %d NACKed packets were not cached yet)",
		total, missing, 100*float64(missing)/float64(total), resent, missed)
	t.Logf("audio (no NACK): %d packets sent, %d missing: %.2f%%", audioTo-audioFrom+1, audioMissing, 100*float64(audioMissing)/float64(audioTo-audioFrom+1))
	if upLost == 0 || downLost == 0 {
		t.Fatal("the network dropped nothing")
	}
	if resent == 0 {
		t.Fatal("the SFU retransmitted nothing")
	}
	if float64(missing) > 0.002*float64(total) {
		t.Fatalf("residual video loss %d/%d after NACK", missing, total)
	}
}

package media

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

// gate holds back writes on the connections of a listener while paused:
// what the SFU sees when a subscriber's TCP connection stops draining
// and its send buffer is full.
type gate struct {
	mu     sync.Mutex
	cond   *sync.Cond
	paused bool
}

func newGate() *gate {
	g := &gate{}
	g.cond = sync.NewCond(&g.mu)
	return g
}

func (g *gate) set(paused bool) {
	g.mu.Lock()
	g.paused = paused
	g.mu.Unlock()
	g.cond.Broadcast()
}

type gateListener struct {
	net.Listener
	g *gate
}

func (l gateListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &gateConn{Conn: c, g: l.g}, nil
}

type gateConn struct {
	net.Conn
	g      *gate
	closed bool // guarded by g.mu
}

func (c *gateConn) Write(b []byte) (int, error) {
	c.g.mu.Lock()
	for c.g.paused && !c.closed {
		c.g.cond.Wait()
	}
	c.g.mu.Unlock()
	return c.Conn.Write(b)
}

func (c *gateConn) Close() error {
	c.g.mu.Lock()
	c.closed = true
	c.g.mu.Unlock()
	c.g.cond.Broadcast()
	return c.Conn.Close()
}

// seqHoles counts the sequence numbers missing between the first and the
// last of seqs (received in about their order).
func seqHoles(seqs []uint16) int {
	if len(seqs) == 0 {
		return 0
	}
	seen := map[int64]bool{}
	var ext, lo, hi int64
	prev := seqs[0]
	for i, s := range seqs {
		if i > 0 {
			ext += int64(int16(s - prev))
		}
		prev = s
		seen[ext] = true
		lo, hi = min(lo, ext), max(hi, ext)
	}
	return int(hi-lo+1) - len(seen)
}

// TestSlowSubscriber: one subscriber's connection stops taking packets
// (ICE over TCP, writes blocked). The publisher's read loop and the
// other subscriber go on at full rate; the slow one loses packets rather
// than queueing them; when it drains again its stream resumes on a
// keyframe, with sequence numbers that have no holes (nothing to NACK
// for what the SFU chose not to send). Revoking it while blocked returns
// promptly.
func TestSlowSubscriber(t *testing.T) {
	g := newGate()
	sfu := newTestSFU(t, Params{TCPAddr: "127.0.0.1:0", wrapTCP: func(l net.Listener) net.Listener { return gateListener{l, g} }})
	room := sfu.NewRoom("slow")
	defer room.Close()
	defer g.set(false) // first, should the test fail while the gate is shut
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	alice := newTestClient(t, room, "alice", clientOpts{})
	fast := newTestClient(t, room, "fast", clientOpts{})
	slow := newTestClient(t, room, "slow", clientOpts{networks: []webrtc.NetworkType{webrtc.NetworkTypeTCP4}})
	_, video := alice.publish(ctx, true, true, 4)
	room.Allow("fast", "alice", true)
	room.Allow("slow", "alice", true)
	waitFor(t, 10*time.Second, "both subscribers receiving", func() bool {
		return fast.packets("alice", "video") > 50 && slow.packets("alice", "video") > 50
	})
	var slowVideo *downTrack
	for _, d := range slow.peer.downs() {
		if d.up.kind == webrtc.RTPCodecTypeVideo {
			slowVideo = d
		}
	}
	// Over TCP, writes that can wait for the subscriber stay on its
	// writer goroutines; over UDP the publisher's read loop writes.
	if slowVideo.inline.Load() {
		t.Fatal("the TCP subscriber is written from the publisher's read loop")
	}
	for _, d := range fast.peer.downs() {
		if !d.inline.Load() {
			t.Fatalf("the UDP subscriber's %s is not written inline", d.up.kind)
		}
	}

	// Block the slow subscriber for 1.7 s.
	blocked0 := video.count()
	g.set(true)
	time.Sleep(200 * time.Millisecond) // let the pipes fill
	sent0, fast0, slow0 := video.count(), fast.packets("alice", "video"), slowVideo.sent.Load()
	time.Sleep(1500 * time.Millisecond)
	sent, got := video.count()-sent0, fast.packets("alice", "video")-fast0
	if got < int(sent)*9/10 {
		t.Fatalf("while another subscriber was blocked, the fast one received %d of %d video packets", got, sent)
	}
	if w := slowVideo.sent.Load() - slow0; w > 4 {
		t.Fatalf("%d packets written to the blocked subscriber", w)
	}
	if slowVideo.dropped.queueFull.Load() == 0 {
		t.Fatal("the blocked subscriber's queue dropped nothing")
	}
	t.Logf("blocked 1.5 s: fast received %d/%d video packets; slow dropped %d", got, sent, slowVideo.dropped.total())

	// Drained again: it catches up and resumes.
	blocked := video.count() - blocked0
	g.set(false)
	slowBase := slow.packets("alice", "video")
	waitFor(t, 5*time.Second, "the slow subscriber resuming", func() bool {
		return slow.packets("alice", "video") > slowBase+150
	})
	r := slow.got("alice", "video")
	if h := seqHoles(r.seqs); h > 0 {
		t.Fatalf("the slow subscriber's stream has %d sequence holes after the SFU dropped for it", h)
	}
	if d := slowVideo.dropped.total(); d+videoQueue+8 < uint64(blocked) {
		t.Fatalf("dropped %d of the %d packets sent while blocked: more than a queue's worth (%d) was kept", d, blocked, videoQueue)
	}

	// Revoking a blocked subscriber does not hang the room.
	g.set(true)
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	room.Allow("slow", "alice", false)
	if d := time.Since(start); d > 2*stopWait+200*time.Millisecond {
		t.Fatalf("Allow(false) on a blocked subscriber took %v", d)
	}
	fast1 := fast.packets("alice", "video")
	time.Sleep(300 * time.Millisecond)
	if fast.packets("alice", "video") <= fast1 {
		t.Fatal("the fast subscriber stopped receiving after the slow one was revoked")
	}
	g.set(false)
}

package media

import (
	"context"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// ownGoroutines counts the goroutines the media package starts.
func ownGoroutines() (int, string) {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	var sample string
	for _, g := range strings.Split(string(buf), "\n\n") {
		for _, fn := range []string{"(*downTrack).run", "(*downTrack).readRTCP", "(*upTrack).forward", "(*upTrack).rtcpLoop", "(*Room).speakerLoop", "(*Peer).allocateLoop"} {
			if strings.Contains(g, "concord/media."+fn+"(") {
				n++
				sample = g
				break
			}
		}
	}
	return n, sample
}

// TestNoGoroutineLeak: once a room and its clients are closed, every
// goroutine the SFU started for it has ended.
func TestNoGoroutineLeak(t *testing.T) {
	sfu := newTestSFU(t, Params{})
	room := sfu.NewRoom("leak")
	room.OnActiveSpeaker(func(string, string) {})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var clients []*testClient
	var mu sync.Mutex
	states := map[string]bool{}
	for _, id := range []string{"a", "b", "c"} {
		c := newTestClient(t, room, id, clientOpts{})
		if id == "a" {
			c.peer.OnConnectionState(func(pc, state string) {
				mu.Lock()
				defer mu.Unlock()
				states[pc+" "+state] = true
			})
		}
		c.publish(ctx, true, true, 1)
		clients = append(clients, c)
	}
	for _, s := range []string{"a", "b", "c"} {
		for _, p := range []string{"a", "b", "c"} {
			if s != p {
				room.Allow(s, p, true)
			}
		}
	}
	waitFor(t, 5*time.Second, "media everywhere", func() bool {
		return clients[0].packets("c", "video") > 5 && clients[2].packets("a", "video") > 5
	})
	if n, _ := ownGoroutines(); n < 3*2*4 {
		t.Fatalf("only %d media goroutines while 3 participants exchange audio and video", n)
	}
	room.Allow("a", "b", false) // one subscription ended before the rest
	room.Close()
	for _, c := range clients {
		c.close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, sample := ownGoroutines()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d media goroutines left after Close, such as:\n%s", n, sample)
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, want := range []string{"pub connected", "sub connected", "pub closed", "sub closed"} {
		if !states[want] {
			t.Errorf("OnConnectionState never told %q (got %v)", want, states)
		}
	}
}

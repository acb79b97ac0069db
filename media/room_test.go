package media

import (
	"context"
	"testing"
	"time"
)

// TestForwardAndDeny: a subscriber receives a publisher's audio and
// video only while allowed, and once Allow(sub, pub, false) returns
// nothing the publisher sends afterwards reaches it, nor is anything
// more written to its connection. Repeated, while media flows, to catch
// races between the fan-out and the revocation.
func TestForwardAndDeny(t *testing.T) {
	sfu := newTestSFU(t, Params{})
	room := sfu.NewRoom("r1")
	defer room.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	alice := newTestClient(t, room, "alice", clientOpts{})
	bob := newTestClient(t, room, "bob", clientOpts{})
	carol := newTestClient(t, room, "carol", clientOpts{})
	audio, video := alice.publish(ctx, true, true, 3)
	room.Allow("carol", "alice", true) // carol keeps receiving throughout

	// Deny by default: bob gets nothing before he is allowed.
	waitFor(t, 5*time.Second, "carol receiving alice", func() bool {
		return carol.packets("alice", "video") > 10 && carol.packets("alice", "audio") > 5
	})
	if n := bob.packets("alice", "video") + bob.packets("alice", "audio"); n != 0 {
		t.Fatalf("bob received %d packets before being allowed", n)
	}

	for round := range 3 {
		room.Allow("bob", "alice", true)
		base := bob.packets("alice", "video")
		waitFor(t, 5*time.Second, "bob receiving alice", func() bool {
			return bob.packets("alice", "video") > base+20 && bob.got("alice", "audio") != nil
		})

		downs := bob.peer.downs()
		room.Allow("bob", "alice", false)
		lastAudio, lastVideo := audio.count(), video.count()
		written := map[*downTrack]uint64{}
		for _, d := range downs {
			written[d] = d.sent.Load()
		}

		time.Sleep(400 * time.Millisecond)
		for _, kind := range []struct {
			src  *source
			name string
			last uint32
		}{{audio, "audio", lastAudio}, {video, "video", lastVideo}} {
			r := bob.got("alice", kind.name)
			for c := range r.counters {
				if c > kind.last {
					t.Fatalf("round %d: bob received %s packet %d, sent after Allow(false) returned (last before: %d)", round, kind.name, c, kind.last)
				}
			}
		}
		for d, n := range written {
			if m := d.sent.Load(); m != n {
				t.Fatalf("round %d: %d packets written to bob's %s after Allow(false) returned", round, m-n, d.up.kind)
			}
		}
		if len(bob.peer.Subscriptions()) != 0 {
			t.Fatalf("round %d: bob still subscribed to %v", round, bob.peer.Subscriptions())
		}
	}
	if carol.packets("alice", "video") < 100 {
		t.Fatalf("carol received only %d video packets", carol.packets("alice", "video"))
	}
}

// downs lists the downTracks p currently receives.
func (p *Peer) downs() []*downTrack {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []*downTrack
	for _, s := range p.subs {
		out = append(out, s.down)
	}
	return out
}

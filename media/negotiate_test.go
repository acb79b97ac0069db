package media

import (
	"context"
	"sync"
	"testing"
	"time"
)

// TestConcurrentSubscriptions: tracks published by many participants at
// once, and permissions changing meanwhile, reach every subscriber: the
// offers made off the room's lock lose no track whatever the order of
// additions, offers and answers.
func TestConcurrentSubscriptions(t *testing.T) {
	t.Parallel()
	sfu := newTestSFU(t, Params{})
	room := sfu.NewRoom("concurrent")
	defer room.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const pubs = 6
	subs := []*testClient{
		newTestClient(t, room, "sub-a", clientOpts{}),
		newTestClient(t, room, "sub-b", clientOpts{}),
	}
	var pubIDs []string
	var wg sync.WaitGroup
	for i := range pubs {
		id := "pub-" + string(rune('a'+i))
		pubIDs = append(pubIDs, id)
		c := newTestClient(t, room, id, clientOpts{})
		for _, s := range subs {
			room.Allow(s.id, id, true)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(i*37%100) * time.Millisecond)
			c.publish(ctx, true, true, 30)
		}()
	}
	// Flip one permission back and forth while the tracks arrive.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 10 {
			room.Allow("sub-b", "pub-a", i%2 == 1)
			time.Sleep(15 * time.Millisecond)
		}
	}()
	wg.Wait()
	for _, s := range subs {
		for _, id := range pubIDs {
			for _, kind := range []string{"audio", "video"} {
				waitFor(t, 15*time.Second, s.id+" receiving "+id+" "+kind, func() bool { return s.packets(id, kind) > 0 })
			}
		}
	}
}

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
				waitFor(t, 30*time.Second, s.id+" receiving "+id+" "+kind, func() bool { return s.packets(id, kind) > 0 })
			}
		}
	}
}

// TestStalledOfferHoldsNoRoom: a subscriber whose sub offer cannot be
// made (its connection's ICE agent stalled, as an ICE-over-TCP phone
// blocked in the kernel can stall it) holds up nobody else: while its
// offer hangs, the room still subscribes others, pauses and resumes, and
// media flows to them; once it unblocks, it gets its offer and media too.
func TestStalledOfferHoldsNoRoom(t *testing.T) {
	t.Parallel()
	sfu := newTestSFU(t, Params{})
	room := sfu.NewRoom("stalled-offer")
	defer room.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pub := newTestClient(t, room, "pub", clientOpts{})
	stalled := newTestClient(t, room, "stalled", clientOpts{})
	other := newTestClient(t, room, "other", clientOpts{})

	gate := make(chan struct{})
	var once sync.Once
	entered := make(chan struct{})
	hook := func() {
		once.Do(func() { close(entered) })
		<-gate
	}
	stalled.peer.offerHook.Store(&hook)
	room.Allow("stalled", "pub", true)
	pub.publish(ctx, true, true, 30)
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the stalled subscriber's offer was never attempted")
	}

	// Every room operation returns at once though an offer hangs.
	within := func(what string, f func()) {
		t.Helper()
		done := make(chan struct{})
		go func() { f(); close(done) }()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			close(gate) // let the test end
			t.Fatalf("%s waited for the stalled subscriber's offer", what)
		}
	}
	within("subscribing another participant", func() { room.Allow("other", "pub", true) })
	waitFor(t, 10*time.Second, "media to the other participant", func() bool { return other.packets("pub", "video") > 0 })
	within("pausing", func() { room.Allow("other", "pub", false) })
	within("resuming", func() { room.Allow("other", "pub", true) })
	within("pausing the stalled one", func() { room.Allow("stalled", "pub", false) })
	within("resuming the stalled one", func() { room.Allow("stalled", "pub", true) })
	if n := stalled.packets("pub", "video"); n != 0 {
		t.Fatalf("the stalled subscriber got %d packets before its offer", n)
	}

	close(gate)
	waitFor(t, 10*time.Second, "media to the unblocked subscriber", func() bool { return stalled.packets("pub", "video") > 0 })
	before := other.packets("pub", "video")
	waitFor(t, 5*time.Second, "media to the other participant still", func() bool { return other.packets("pub", "video") > before })
}

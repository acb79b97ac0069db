package media

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// loud is one tick of continuous speech at level 20 (-20 dBov); quiet is
// one tick of background noise.
var (
	loud  = levelSample{packets: 12, voiced: 12, loud: 12 * (127 - 20)}
	quiet = levelSample{packets: 12}
)

func TestSpeakerDetector(t *testing.T) {
	all := map[string][]string{"a": {"b", "c"}, "b": {"a", "c"}, "c": {"a", "b"}}
	type step struct {
		samples map[string]levelSample
		hears   map[string][]string
		want    []speakerEvent // sorted by subscriber
	}
	ev := func(pairs ...string) []speakerEvent {
		var out []speakerEvent
		for i := 0; i < len(pairs); i += 2 {
			out = append(out, speakerEvent{pairs[i], pairs[i+1]})
		}
		return out
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"silence elects nobody", []step{
			{map[string]levelSample{"a": quiet, "b": quiet}, all, nil},
			{map[string]levelSample{"a": quiet, "b": quiet}, all, nil},
		}},
		{"one speaker, seen by all", []step{
			{map[string]levelSample{"a": loud, "b": quiet}, all, ev("a", "a", "b", "a", "c", "a")},
			{map[string]levelSample{"a": loud, "b": quiet}, all, nil},
		}},
		{"a pause keeps the speaker", []step{
			{map[string]levelSample{"a": loud}, all, ev("a", "a", "b", "a", "c", "a")},
			{map[string]levelSample{"a": quiet}, all, nil},
			{map[string]levelSample{"a": quiet}, all, nil},
		}},
		{"takeover needs a sustained lead", []step{
			{map[string]levelSample{"a": loud, "b": quiet}, all, ev("a", "a", "b", "a", "c", "a")},
			{map[string]levelSample{"a": loud, "b": loud}, all, nil},
			{map[string]levelSample{"a": quiet, "b": loud}, all, nil}, // b leads once
			{map[string]levelSample{"a": quiet, "b": loud}, all, ev("a", "b", "b", "b", "c", "b")},
		}},
		{"a caucus hides the other side's speaker", []step{
			{map[string]levelSample{"a": loud}, all, ev("a", "a", "b", "a", "c", "a")},
			// c may no longer hear a: its speaker is cleared at once.
			{map[string]levelSample{"a": loud}, map[string][]string{"a": {"b"}, "b": {"a"}, "c": {}}, ev("c", "")},
			{map[string]levelSample{"a": loud}, map[string][]string{"a": {"b"}, "b": {"a"}, "c": {}}, nil},
		}},
		{"a speaker who leaves is replaced", []step{
			{map[string]levelSample{"a": loud, "b": loud}, all, ev("a", "a", "b", "a", "c", "a")},
			{map[string]levelSample{"b": loud}, map[string][]string{"b": {"c"}, "c": {"b"}}, ev("b", "b", "c", "b")},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newSpeakerDetector(speakerTick)
			for i, s := range tt.steps {
				got := d.tick(s.samples, s.hears)
				slices.SortFunc(got, func(x, y speakerEvent) int {
					if x.subscriber < y.subscriber {
						return -1
					}
					return 1
				})
				if !reflect.DeepEqual(got, s.want) {
					t.Fatalf("step %d: events %v, want %v", i, got, s.want)
				}
			}
		})
	}
}

// TestActiveSpeaker: publishers send RFC 6464 audio levels; each
// subscriber is told who speaks among those it may hear, the levels are
// forwarded to subscribers, and a caucus hides the other side's
// speaking.
func TestActiveSpeaker(t *testing.T) {
	t.Parallel()
	sfu := newTestSFU(t, Params{})
	room := sfu.NewRoom("speak")
	defer room.Close()
	speakerOf := watchSpeakers(room)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	ids := []string{"mediator", "consumer", "merchant"}
	clients := map[string]*testClient{}
	sources := map[string]*source{}
	for _, id := range ids {
		clients[id] = newTestClient(t, room, id, clientOpts{})
		a, _ := clients[id].publish(ctx, true, false, 0)
		a.setLevel(127)
		sources[id] = a
	}
	for _, s := range ids {
		for _, p := range ids {
			if s != p {
				room.Allow(s, p, true)
			}
		}
	}
	waitFor(t, 5*time.Second, "audio flowing", func() bool {
		return clients["consumer"].packets("merchant", "audio") > 10 && clients["merchant"].packets("consumer", "audio") > 10
	})

	sources["consumer"].setLevel(25)
	waitFor(t, 3*time.Second, "everyone seeing the consumer speak", func() bool {
		return speakerOf("mediator") == "consumer" && speakerOf("merchant") == "consumer" && speakerOf("consumer") == "consumer"
	})
	if r := clients["merchant"].got("consumer", "audio"); r.levels == 0 {
		t.Fatal("the audio level extension was not forwarded")
	}

	sources["consumer"].setLevel(127)
	sources["merchant"].setLevel(30)
	waitFor(t, 3*time.Second, "the merchant taking over", func() bool {
		return speakerOf("mediator") == "merchant" && speakerOf("consumer") == "merchant"
	})

	// Caucus: the mediator with the merchant; the consumer hears neither.
	room.Allow("consumer", "merchant", false)
	room.Allow("merchant", "consumer", false)
	room.Allow("consumer", "mediator", false)
	room.Allow("mediator", "consumer", false)
	waitFor(t, 2*time.Second, "the consumer's speaker cleared", func() bool {
		return speakerOf("consumer") == ""
	})
	time.Sleep(4 * speakerTick)
	if s := speakerOf("consumer"); s != "" {
		t.Fatalf("during the caucus the consumer was told %q speaks", s)
	}
	if s := speakerOf("mediator"); s != "merchant" {
		t.Fatalf("the mediator's speaker is %q", s)
	}
}

// watchSpeakers follows room's active speaker events: the function it
// returns gives a subscriber's latest speaker ("" before any).
func watchSpeakers(room *Room) func(sub string) string {
	var mu sync.Mutex
	current := map[string]string{}
	room.OnActiveSpeaker(func(sub, speaker string) {
		mu.Lock()
		defer mu.Unlock()
		current[sub] = speaker
	})
	return func(sub string) string {
		mu.Lock()
		defer mu.Unlock()
		return current[sub]
	}
}

// TestSpeakerHearing: telling the detector only about the participants
// that may be a speaker (and each subscriber's current one) gives, tick
// after tick, the same events as telling it everything each subscriber
// hears, as participants come and go, are allowed and denied, mute,
// speak, fall silent and stop sending audio.
func TestSpeakerHearing(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	const n = 12
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("p%02d", i)
	}
	present := map[string]bool{}
	allowed := map[[2]string]bool{}
	muted := map[string]bool{}
	audio := map[string]bool{}
	for _, id := range ids {
		present[id] = rng.IntN(4) > 0
		audio[id] = rng.IntN(2) == 0
		for _, other := range ids {
			allowed[[2]string{id, other}] = rng.IntN(3) > 0
		}
	}
	hears := func(sub, pub string) bool { return present[pub] && allowed[[2]string{sub, pub}] && !muted[pub] }
	full, restricted := newSpeakerDetector(speakerTick), newSpeakerDetector(speakerTick)
	sorted := func(ev []speakerEvent) []speakerEvent {
		slices.SortFunc(ev, func(a, b speakerEvent) int { return strings.Compare(a.subscriber, b.subscriber) })
		return ev
	}
	changes := 0
	for tick := range 2000 {
		id := ids[rng.IntN(n)]
		switch rng.IntN(10) {
		case 0:
			present[id] = !present[id]
		case 1:
			muted[id] = !muted[id]
		case 2:
			audio[id] = !audio[id]
		case 3:
			k := [2]string{id, ids[rng.IntN(n)]}
			allowed[k] = !allowed[k]
		}
		var subs []string
		samples := map[string]levelSample{}
		for _, id := range ids {
			if !present[id] {
				continue
			}
			subs = append(subs, id)
			if audio[id] {
				switch rng.IntN(3) {
				case 0:
					samples[id] = loud
				case 1:
					samples[id] = quiet
				default:
					samples[id] = levelSample{}
				}
			}
		}
		all := map[string][]string{}
		for _, sub := range subs {
			all[sub] = []string{}
			for _, pub := range ids {
				if hears(sub, pub) {
					all[sub] = append(all[sub], pub)
				}
			}
		}
		want := sorted(full.tick(samples, all))
		got := sorted(restricted.tick(samples, restricted.hearing(samples, subs, hears)))
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("tick %d: events %v, with everything heard %v", tick, got, want)
		}
		changes += len(want)
	}
	if changes < 100 {
		t.Fatalf("only %d speaker changes in 2000 ticks: the test shows little", changes)
	}
}

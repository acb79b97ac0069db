package media

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
)

func TestHeardMark(t *testing.T) {
	ref := time.Now()
	var at atomic.Int64
	at.Store(int64(time.Millisecond))
	var learnt atomic.Pointer[time.Time]
	h := &heardMark{at: &at, remote: fakeHeard{ref: ref, at: &at}, ref: &learnt}
	h.heard(ref.Add(time.Second))
	if got := at.Load(); got != int64(time.Second) {
		t.Fatalf("heard 1 s after ref stored %d ns", got)
	}
	h.heard(ref.Add(time.Second + heardEvery/2)) // too soon to store again
	if got := at.Load(); got != int64(time.Second) {
		t.Errorf("a hearing within heardEvery stored %d ns", got)
	}
	h.heard(ref.Add(time.Second + heardEvery))
	if got := at.Load(); got != int64(time.Second+heardEvery) {
		t.Errorf("a hearing heardEvery later stored %d ns", got)
	}
	if r := learnt.Load(); r == nil || !r.Equal(ref) {
		t.Errorf("pion's time reference learnt as %v, want %v", r, ref)
	}
	h.heard(ref) // an older reading never moves it back
	if got := at.Load(); got != int64(time.Second+heardEvery) {
		t.Errorf("an older hearing stored %d ns", got)
	}
}

// fakeHeard is a candidate whose LastReceived is pion's: the reference
// plus the stored nanoseconds.
type fakeHeard struct {
	ice.Candidate
	ref time.Time
	at  *atomic.Int64
}

func (f fakeHeard) LastReceived() time.Time { return f.ref.Add(time.Duration(f.at.Load())) }

// TestDirectPairHeard: the SFU's ICE agent hears a subscriber through
// the RTCP its direct pair carries, which the socket's readers take
// before the agent sees it. Bob's client sends no binding request once
// connected (an hour's keepalive), and the SFU's own come every
// consentEvery (5 s), so only the direct pair's traffic (Bob's receiver
// reports, every 100 ms) keeps his candidate's last hearing within a
// second, as pion's LastReceived reads it.
func TestDirectPairHeard(t *testing.T) {
	sfu := newTestSFU(t, Params{})
	_, _, bob, _ := aliceToBob(t, sfu, clientOpts{reportInterval: 100 * time.Millisecond, keepalive: time.Hour}, 3)
	sub := sfu.direct.get(bob.peer.sub.ID())
	if sub == nil {
		t.Fatal("no direct interceptor on bob's connection")
	}
	waitFor(t, 5*time.Second, "bob's direct pair marked heard", func() bool { return sub.heard.Load() != nil })
	remote, err := selectedRemote(bob.peer.sub.SCTP().Transport().ICETransport())
	if err != nil {
		t.Fatal(err)
	}
	for i := range 12 {
		if age := time.Since(remote.LastReceived()); age > time.Second {
			t.Fatalf("sample %d: bob last heard %v ago", i, age)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if s := bob.peer.sub.ICEConnectionState(); s.String() != "connected" {
		t.Errorf("bob's connection is %s", s)
	}
}

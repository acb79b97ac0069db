package media

import (
	"errors"
	"net/netip"
	"reflect"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
)

// What a connection's direct pair receives counts as hearing from its
// remote candidate, for pion's ICE agent too.
//
// The agent calls a selected pair disconnected when it has heard nothing
// from the remote for its disconnected timeout (5 s) and failed 25 s
// later. On pion's own path every datagram counts; on a direct pair
// (directin.go) the socket's readers take the media and RTCP before the
// agent sees them, and only STUN reached it: the SFU's own binding
// requests every two seconds (pion's default keepalive) and their
// answers kept the pair alive. Those requests, each answered, each
// passing the UDP mux, the candidate's read loop and the agent's task
// loop, were a fifth of the scheduler's wake-ups in the 4 + 70 load test.
// Now the reader marks the remote candidate heard (at most every
// heardEvery), as pion's path does, and the SFU sends its binding
// requests at the consent freshness interval of RFC 7675 (consentEvery)
// instead of every two seconds: media and RTCP say the subscriber is
// there, the binding requests still verify its consent.
//
// The candidate's time of last hearing is pion's unexported
// candidateBase.lastReceived, reached by reflection (the ICE agent from
// webrtc.ICETransport.gatherer.agent, its selected pair's remote
// candidate from its selectedPair) like the
// SRTP internals in direct.go; if its shape changes, remoteHeardOf fails,
// the direct pair is not marked and the agent goes by STUN alone, and
// TestDirectPairHeard says so.

const (
	// heardEvery is how often a direct pair's traffic updates its
	// remote candidate's last hearing.
	heardEvery = 50 * time.Millisecond
	// consentEvery is how often the SFU sends a binding request on a
	// selected pair (RFC 7675: every 5 s, or 4 to 6).
	consentEvery = 5 * time.Second
	// iceDisconnected and iceFailed are pion's defaults, which
	// SetICETimeouts must be given with the keepalive.
	iceDisconnected = 5 * time.Second
	iceFailed       = 25 * time.Second
)

var errICEInternals = errors.New("media: pion's ICE candidate is not as expected")

// heardMark is a remote candidate's time of last hearing, as pion keeps
// it: monotonic nanoseconds since pion's time reference (iceRef).
type heardMark struct {
	at     *atomic.Int64
	remote ice.Candidate
	ref    *atomic.Pointer[time.Time] // &iceRef but in tests
}

// iceRef is pion's time reference for its candidates' times, learnt from
// the first candidate heard (LastReceived is the reference plus the
// stored nanoseconds); one for the process.
var iceRef atomic.Pointer[time.Time]

// heard records that the remote was heard at now.
func (h *heardMark) heard(now time.Time) {
	ref := h.ref.Load()
	if ref == nil {
		if ref = h.learnRef(); ref == nil {
			return
		}
	}
	ns := int64(now.Sub(*ref))
	if ns-h.at.Load() >= int64(heardEvery) {
		h.at.Store(ns)
	}
}

// learnRef learns pion's time reference from the candidate, once it has
// been heard; nil until then.
func (h *heardMark) learnRef() *time.Time {
	// Read twice around LastReceived in case the agent stores a new
	// time between.
	ns := h.at.Load()
	last := h.remote.LastReceived()
	if ns == 0 || h.at.Load() != ns {
		return nil
	}
	ref := last.Add(-time.Duration(ns))
	h.ref.CompareAndSwap(nil, &ref)
	return h.ref.Load()
}

// remoteHeardOf returns the last hearing of the remote candidate of t's
// selected pair, which must be the one at to.
func remoteHeardOf(t *webrtc.ICETransport, to netip.AddrPort) (*heardMark, error) {
	remote, err := selectedRemote(t)
	if err != nil {
		return nil, err
	}
	if ip, err := netip.ParseAddr(remote.Address()); err != nil || netip.AddrPortFrom(ip.Unmap(), uint16(remote.Port())) != to {
		return nil, errICEInternals // the pair moved on since
	}
	cv := reflect.ValueOf(remote)
	if cv.Kind() != reflect.Pointer || cv.Elem().Kind() != reflect.Struct {
		return nil, errICEInternals
	}
	base := cv.Elem().FieldByName("candidateBase")
	if !base.IsValid() || base.Kind() != reflect.Struct {
		return nil, errICEInternals
	}
	at := fieldOf[atomic.Int64](base, "lastReceived")
	if at == nil {
		return nil, errICEInternals
	}
	return &heardMark{at: at, remote: remote, ref: &iceRef}, nil
}

// selectedRemote returns the remote candidate of the selected pair of
// t's ICE agent.
func selectedRemote(t *webrtc.ICETransport) (ice.Candidate, error) {
	if t == nil {
		return nil, errICEInternals
	}
	g := fieldOf[*webrtc.ICEGatherer](reflect.ValueOf(t).Elem(), "gatherer")
	if g == nil || *g == nil {
		return nil, errICEInternals
	}
	a := fieldOf[*ice.Agent](reflect.ValueOf(*g).Elem(), "agent")
	if a == nil || *a == nil {
		return nil, errICEInternals
	}
	// The agent's own pair: GetSelectedCandidatePair returns copies.
	sp := fieldOf[atomic.Value](reflect.ValueOf(*a).Elem(), "selectedPair")
	if sp == nil {
		return nil, errICEInternals
	}
	pair, _ := sp.Load().(*ice.CandidatePair)
	if pair == nil || pair.Remote == nil {
		return nil, errICEInternals
	}
	return pair.Remote, nil
}

// findHeard looks up the remote candidate of the connection's direct
// pair, once both the pair and the transport are known.
func (c *directConn) findHeard() {
	c.mu.Lock()
	to, ok, closed := c.to, c.toOK, c.closed
	c.mu.Unlock()
	tr := c.transport.Load()
	if !ok || closed || tr == nil {
		c.heard.Store(nil)
		return
	}
	h, err := remoteHeardOf(tr.ICETransport(), to)
	if err != nil {
		c.factory.log.Debug("media: direct pair's traffic not shown to the ICE agent", "pc", c.id, "err", err)
	}
	c.heard.Store(h)
}

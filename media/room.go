package media

import (
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
)

// Signal is one negotiation message between the SFU and a participant's
// client: an SDP offer or answer, or an ICE candidate, for one of its two
// connections ("pub", where the client offers what it publishes, and
// "sub", where the SFU offers what the client receives).
type Signal struct {
	Type      string // "offer", "answer" or "candidate"
	PC        string // "pub" or "sub"
	SDP       string
	Candidate *CandidateInit
}

// Connection names.
const (
	PCPublish   = "pub"
	PCSubscribe = "sub"
)

// ErrClosed is returned by a closed room or peer.
var ErrClosed = errors.New("media: closed")

// Room forwards media among its peers. Deny by default: a subscriber
// receives a publisher's tracks only after Allow(sub, pub, true).
type Room struct {
	sfu *SFU
	id  string
	log *slog.Logger

	mu      sync.Mutex // guards the fields below; taken before any Peer.mu
	peers   map[string]*Peer
	allowed map[[2]string]bool // {subscriber, publisher}
	// audioMuted lists publishers whose audio a mediator muted.
	audioMuted map[string]bool
	closed     bool
	onSpeaker  func(subscriber, speaker string)
	speaking   bool          // the speaker loop runs
	done       chan struct{} // closed by Close
}

// NewRoom returns an empty room.
func (s *SFU) NewRoom(id string) *Room {
	s.stats.roomOpened()
	return &Room{
		sfu:     s,
		id:      id,
		log:     s.log.With("room", id),
		peers:   map[string]*Peer{},
		allowed: map[[2]string]bool{},
		done:    make(chan struct{}),
	}
}

// OnActiveSpeaker sets the function told of active speaker changes, from
// the audio levels (RFC 6464) publishers send. Each subscriber has its
// own active speaker, chosen among the participants it may receive
// (Allow) and itself, so a caucus reveals nothing of the other side:
// f(subscriber, speaker) says subscriber's active speaker is now speaker,
// or "" when the previous one left or may no longer be heard. f is
// called from one goroutine of the room, about every 250 ms at most, and
// must not block.
func (r *Room) OnActiveSpeaker(f func(subscriber, speaker string)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.onSpeaker = f
	if r.speaking || r.closed || f == nil {
		return
	}
	r.speaking = true
	go r.speakerLoop(speakerTick)
}

// speakerLoop samples the audio levels every tick until the room closes.
func (r *Room) speakerLoop(tick time.Duration) {
	det := newSpeakerDetector(tick)
	t := newGridTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-r.done:
			return
		case now := <-t.C:
			t.next(now)
		}
		r.mu.Lock()
		samples := map[string]levelSample{}
		for id, p := range r.peers {
			for _, up := range p.ups {
				if up.levelExtID == 0 {
					continue
				}
				n, v, l := up.level.take()
				smp := samples[id]
				smp.packets += n
				smp.voiced += v
				smp.loud += l
				samples[id] = smp
			}
		}
		subs := make([]string, 0, len(r.peers))
		for id := range r.peers {
			subs = append(subs, id)
		}
		hears := det.hearing(samples, subs, r.hearsLocked)
		f := r.onSpeaker
		r.mu.Unlock()
		events := det.tick(samples, hears)
		r.noteSpeakers(events)
		for _, e := range events {
			if f != nil {
				f(e.subscriber, e.speaker)
			}
		}
	}
}

// hearsLocked reports whether sub hears pub's audio now, as the active
// speaker goes: pub is present, sub may receive it, and it is not muted
// (a denial or a mute gives no speaker events either). mu must be held.
func (r *Room) hearsLocked(sub, pub string) bool {
	_, present := r.peers[pub]
	return present && r.allowed[[2]string{sub, pub}] && !r.audioMuted[pub]
}

// AddPeer creates the peer for a participant, replacing (and closing) an
// earlier peer of the same participant. send receives the negotiation
// messages for the client; it must not block.
func (r *Room) AddPeer(id string, send func(Signal)) (*Peer, error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, ErrClosed
	}
	old := r.peers[id]
	r.mu.Unlock()
	if old != nil {
		r.RemovePeer(old)
	}
	p, err := newPeer(r, id, send)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		p.closePCs()
		return nil, ErrClosed
	}
	r.peers[id] = p
	r.sfu.stats.peerAdded()
	// Subscribe to what it may already receive.
	for pubID, pub := range r.peers {
		if r.allowed[[2]string{id, pubID}] {
			for _, up := range pub.ups {
				if r.mayForwardLocked(up) {
					p.subscribeLocked(up)
				}
			}
		}
	}
	return p, nil
}

// RemovePeer closes p and stops everything it published or received.
func (r *Room) RemovePeer(p *Peer) {
	r.mu.Lock()
	if r.peers[p.id] == p {
		delete(r.peers, p.id)
		r.sfu.stats.peerRemoved()
	}
	for _, up := range p.ups {
		r.dropUpLocked(p, up)
	}
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	r.mu.Unlock()
	p.closePCs()
}

// Allow opens or closes the forwarding of everything pub publishes to
// sub. Closing takes effect before Allow returns: no packet of pub is
// handed to sub's connection afterwards. (It waits for a write already in
// progress; only when sub's connection has been blocked for 250 ms, by
// TCP back-pressure, does it return without waiting for that one packet,
// which was being written before the call.) The active speaker events
// follow the same permissions.
//
// Closing pauses the tracks sub already received: they stay negotiated
// on its connection, so that opening again resumes them at once, without
// renegotiation (video at the keyframe asked for on resuming). A track
// sub was never allowed is never added to its connection.
func (r *Room) Allow(sub, pub string, allow bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := [2]string{sub, pub}
	if allow {
		r.allowed[k] = true
	} else {
		delete(r.allowed, k)
	}
	s, p := r.peers[sub], r.peers[pub]
	if s == nil || p == nil {
		return
	}
	for _, up := range p.ups {
		if allow && r.mayForwardLocked(up) {
			s.subscribeLocked(up)
		} else {
			s.pauseLocked(up)
		}
	}
}

// Forget drops every permission involving participant id.
func (r *Room) Forget(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k := range r.allowed {
		if k[0] == id || k[1] == id {
			delete(r.allowed, k)
		}
	}
}

// Close removes every peer.
func (r *Room) Close() {
	r.mu.Lock()
	if !r.closed {
		close(r.done)
		r.sfu.stats.roomClosed()
	}
	r.closed = true
	peers := make([]*Peer, 0, len(r.peers))
	for _, p := range r.peers {
		peers = append(peers, p)
	}
	r.mu.Unlock()
	// Marked closed first, so that removing one peer does not renegotiate
	// the others' connections, which are about to close anyway (and one of
	// which may be stuck on a blocked transport).
	for _, p := range peers {
		p.mu.Lock()
		p.closed = true
		p.mu.Unlock()
	}
	for _, p := range peers {
		r.RemovePeer(p)
	}
}

// publish returns pub's track id, creating it with create (and
// forwarding it to every allowed subscriber) when it is new. It returns
// nil if the room closed or pub left.
func (r *Room) publish(pub *Peer, id string, create func(id string) *upTrack) (up *upTrack, isNew bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.peers[pub.id] != pub {
		return nil, false
	}
	if up := pub.ups[id]; up != nil {
		return up, false
	}
	up = create(id)
	pub.ups[id] = up
	for subID, sub := range r.peers {
		if r.allowed[[2]string{subID, pub.id}] && r.mayForwardLocked(up) {
			sub.subscribeLocked(up)
		}
	}
	return up, true
}

// removeUp stops forwarding a track whose publisher stopped sending.
func (r *Room) removeUp(pub *Peer, up *upTrack) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.dropUpLocked(pub, up)
}

func (r *Room) dropUpLocked(pub *Peer, up *upTrack) {
	if pub.ups[up.id] != up {
		return
	}
	delete(pub.ups, up.id)
	for _, sub := range r.peers {
		sub.unsubscribeLocked(up)
	}
}

// SetAudioMuted stops (or resumes) forwarding a publisher's audio to
// everyone, whatever Allow says: a mediator's mute, enforced here rather
// than trusted to the muted participant's client. Stopping takes effect
// before it returns; like Allow, it pauses and resumes without
// renegotiation. A muted publisher is nobody's active speaker.
func (r *Room) SetAudioMuted(pub string, muted bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.audioMuted == nil {
		r.audioMuted = map[string]bool{}
	}
	if muted {
		r.audioMuted[pub] = true
	} else {
		delete(r.audioMuted, pub)
	}
	p := r.peers[pub]
	if p == nil {
		return
	}
	for _, up := range p.ups {
		if up.kind != webrtc.RTPCodecTypeAudio {
			continue
		}
		for subID, sub := range r.peers {
			switch {
			case muted:
				sub.pauseLocked(up)
			case r.allowed[[2]string{subID, pub}]:
				sub.subscribeLocked(up)
			}
		}
	}
}

// mayForwardLocked reports whether up may be forwarded at all now: a
// muted publisher's audio may not. r.mu must be held.
func (r *Room) mayForwardLocked(up *upTrack) bool {
	return !(up.kind == webrtc.RTPCodecTypeAudio && r.audioMuted[up.publisher])
}

package signaling

import (
	"errors"
	"log/slog"
	"sync"

	"github.com/concord-odr/concord/cases"
	"github.com/concord-odr/concord/media"
	"github.com/concord-odr/concord/rooms"
)

var errRoomClosed = errors.New("signaling: room closed")

// room is one session's live room: its policy state, its media and the
// sockets of the participants present.
type room struct {
	s      *Server
	id     string // session id
	caseID string
	log    *slog.Logger
	media  *media.Room

	mu           sync.Mutex // guards the fields below
	policy       *rooms.Room
	conns        map[string]*conn // by participant id
	participants []cases.Participant
	closed       bool
}

func newRoom(s *Server, sess *cases.Session) *room {
	return &room{
		s:            s,
		id:           sess.ID,
		caseID:       sess.CaseID,
		log:          s.log.With("session", sess.ID),
		media:        s.p.SFU.NewRoom(sess.ID),
		policy:       rooms.New(),
		conns:        map[string]*conn{},
		participants: sess.Participants,
	}
}

// join puts c in the room as p. A connection already there for the same
// participant is told it was replaced and loses its place.
func (r *room) join(c *conn, p cases.Participant, sess *cases.Session) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errRoomClosed
	}
	r.participants = sess.Participants
	if old := r.conns[p.ID]; old != nil {
		old.fail(errorf(CodeReplaced, true, "you joined from another device"))
	}
	self := toParticipant(p, true)
	// "joined" goes out before any negotiation message for this peer.
	c.enqueue(outbound{
		Type:         TypeJoined,
		Self:         &self,
		Participants: r.listLocked(p.ID),
		Session:      &SessionInfo{ID: sess.ID, CaseID: sess.CaseID, Status: sess.Status},
		ICEServers:   r.s.p.ICEServers,
	})
	peer, err := r.media.AddPeer(p.ID, c.sendSignal)
	if err != nil {
		return err
	}
	r.conns[p.ID] = c
	c.peer = peer
	changes, err := r.policy.Join(rooms.Participant{ID: p.ID, Name: p.Name, Role: rooms.Role(p.Role), Side: rooms.Side(p.Side)})
	if err != nil {
		return err
	}
	r.applyLocked(changes)
	for id, other := range r.conns {
		if id != p.ID {
			other.enqueue(outbound{Type: TypeParticipantJoined, Participant: &self})
		}
	}
	return nil
}

// leave takes c out of the room, unless another connection of the same
// participant has replaced it. It reports whether c was present.
func (r *room) leave(c *conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	id := c.participant.ID
	if r.conns[id] != c {
		return false
	}
	delete(r.conns, id)
	if r.closed {
		return false
	}
	if changes, err := r.policy.Leave(id); err == nil {
		r.applyLocked(changes)
	}
	if c.peer != nil {
		r.media.RemovePeer(c.peer)
	}
	for _, other := range r.conns {
		other.enqueue(outbound{Type: TypeParticipantLeft, ParticipantID: id})
	}
	return true
}

// end closes the room for everyone after telling them the result.
func (r *room) end(result string) {
	r.mu.Lock()
	r.closed = true
	conns := make([]*conn, 0, len(r.conns))
	for _, c := range r.conns {
		conns = append(conns, c)
	}
	r.mu.Unlock()
	for _, c := range conns {
		c.enqueue(outbound{Type: TypeSessionEnded, Result: result})
		c.closeAfterFlush("session ended")
	}
	r.media.Close()
}

// applyLocked hands the policy's subscription changes to media.
func (r *room) applyLocked(changes []rooms.Change) {
	for _, ch := range changes {
		r.media.Allow(ch.Subscriber, ch.Publisher, ch.Allow)
	}
}

// listLocked lists the session's participants with their presence.
func (r *room) listLocked(self string) []Participant {
	out := make([]Participant, 0, len(r.participants))
	for _, p := range r.participants {
		_, online := r.conns[p.ID]
		out = append(out, toParticipant(p, online || p.ID == self))
	}
	return out
}

func toParticipant(p cases.Participant, online bool) Participant {
	return Participant{ID: p.ID, Name: p.Name, Role: p.Role, Side: p.Side, Online: online}
}

package signaling

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/concord-odr/concord/cases"
	"github.com/concord-odr/concord/media"
	"github.com/concord-odr/concord/rooms"
	"github.com/concord-odr/concord/signaling/cluster"
)

var errRoomClosed = errors.New("signaling: room closed")

// CodeNotAllowedInReconciliation refuses a mediator action in a
// reconciliation room, which has no mediator (see PROTOCOL.md). It is
// stable, like the codes of message.go.
const CodeNotAllowedInReconciliation = "not_allowed_in_reconciliation"

// mediatorOnly are the room actions of a mediator: a reconciliation room
// refuses them all.
var mediatorOnly = map[string]bool{
	TypeAdmit: true, TypeAdmitAll: true, TypeRemove: true, TypeCheckIdentity: true, TypeIdentityChecked: true,
	TypeSetMode: true, TypeLetIntoCaucus: true, TypeAttachInterpreter: true, TypeMute: true, TypeAskUnmute: true,
	TypeLock: true, TypeNote: true,
}

// policyFor returns the room policy of a session: a reconciliation
// between the applicant and the merchant has no mediator.
func policyFor(sess *cases.Session) *rooms.Room {
	if sess.Mode == cases.ModeReconciliation {
		return rooms.NewKind(rooms.Unmediated)
	}
	return rooms.New()
}

// room is one session's live room: its policy state, its media and the
// sockets of the participants present. Every policy change and the media
// changes that follow from it happen under mu, so media never runs ahead
// of or behind the policy.
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
	startedAt    *time.Time
	notes        []Note
	sinks        map[string]*signalSink // by participant id: where its media signals go
	held         map[string]*time.Timer // dropped sockets keeping their place
	closed       bool
	unsaved      []byte // (cluster) the policy state not yet saved
	saving       bool   // (cluster) a goroutine is saving it
}

// signalSink forwards a peer's negotiation messages to whichever socket
// the participant currently uses, so a resumed socket keeps the peer.
type signalSink struct {
	mu sync.Mutex
	c  *conn
}

func (s *signalSink) set(c *conn) {
	s.mu.Lock()
	s.c = c
	s.mu.Unlock()
}

func (s *signalSink) send(sig media.Signal) {
	s.mu.Lock()
	c := s.c
	s.mu.Unlock()
	if c != nil {
		c.sendSignal(sig)
	}
}

// newRoom opens a session's room, from the state another node saved
// (cluster) when there is one.
func newRoom(s *Server, sess *cases.Session, state []byte) *room {
	policy := policyFor(sess)
	if state != nil {
		restored, err := rooms.Restore(state)
		switch {
		case err != nil:
			s.log.Warn("cluster: the room's saved state is unusable; opening it afresh", "session", sess.ID, "err", err)
		case restored.Kind() != policy.Kind():
			s.log.Warn("cluster: the room's saved state is of another kind; opening it afresh", "session", sess.ID)
		default:
			policy = restored
			s.log.Info("cluster: room reopened from the state its previous node saved", "session", sess.ID)
		}
	}
	r := &room{
		s:            s,
		id:           sess.ID,
		caseID:       sess.CaseID,
		log:          s.log.With("session", sess.ID),
		media:        s.p.SFU.NewRoom(sess.ID),
		policy:       policy,
		conns:        map[string]*conn{},
		participants: sess.Participants,
		sinks:        map[string]*signalSink{},
		held:         map[string]*time.Timer{},
	}
	// Each subscriber hears who is speaking among those it may hear.
	r.media.OnActiveSpeaker(func(sub, speaker string) {
		r.mu.Lock()
		c := r.conns[sub]
		r.mu.Unlock()
		if c != nil {
			c.enqueue(outbound{Type: TypeActiveSpeaker, ParticipantID: speaker})
		}
	})
	return r
}

func toRoomsParticipant(p cases.Participant) rooms.Participant {
	return rooms.Participant{ID: p.ID, Name: p.Name, Role: rooms.Role(p.Role), Side: rooms.Side(p.Side)}
}

// join puts c in the room as p. A connection already there for the same
// participant is told it was replaced and loses its place; one whose
// socket dropped is taken over silently, keeping its media peer when the
// client asks to resume.
func (r *room) join(c *conn, p cases.Participant, sess *cases.Session, resume bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errRoomClosed
	}
	r.participants = sess.Participants
	if r.startedAt == nil {
		at := r.s.p.Now().UTC()
		if sess.StartedAt != nil {
			at = *sess.StartedAt
		}
		r.startedAt = &at
	}
	held := r.held[p.ID]
	if held != nil {
		held.Stop()
		delete(r.held, p.ID)
	}
	// Deny by default: the policy decides before media exists.
	changes, err := r.policy.Join(toRoomsParticipant(p))
	if errors.Is(err, rooms.ErrNoMediator) {
		return errorf(CodeNotAllowedInReconciliation, true, "a reconciliation room has no mediator")
	}
	if err != nil {
		return err
	}
	old := r.conns[p.ID]
	if old != nil && held == nil {
		old.fail(errorf(CodeReplaced, true, "you joined from another device"))
	}
	self := toParticipant(p, true)
	resumed := held != nil && resume && old != nil && old.peer != nil
	// "joined" goes out before any negotiation message for this peer.
	c.enqueue(outbound{
		Type:         TypeJoined,
		Self:         &self,
		Participants: r.listLocked(p.ID),
		Session:      &SessionInfo{ID: sess.ID, CaseID: sess.CaseID, Status: sess.Status},
		ICEServers:   r.s.iceServersFor(p.ID),
		Resumed:      resumed,
	})
	if resumed {
		c.peer = old.peer
		r.sinks[p.ID].set(c)
		// The phone may be on another network now.
		if err := c.peer.RestartICE(); err != nil {
			r.log.Debug("ice restart on resume", "participant", p.ID, "err", err)
		}
	} else {
		sink := &signalSink{c: c}
		peer, err := r.media.AddPeer(p.ID, sink.send)
		if err != nil {
			return err
		}
		r.sinks[p.ID] = sink
		c.peer = peer
	}
	r.conns[p.ID] = c
	r.applyLocked(changes)
	if held == nil {
		for id, other := range r.conns {
			if id != p.ID {
				other.enqueue(outbound{Type: TypeParticipantJoined, Participant: &self})
			}
		}
	}
	r.broadcastStateLocked()
	return nil
}

// suspended reports whether a participant's dropped socket still holds
// its place.
func (r *room) suspended(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.held[id] != nil
}

// suspend keeps c's place for grace after its socket dropped; if nobody
// resumes it by then, the participant leaves. It reports false when c no
// longer holds the place (so there is nothing to keep).
func (r *room) suspend(c *conn, grace time.Duration) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	id := c.participant.ID
	if r.closed || r.conns[id] != c {
		return false
	}
	r.sinks[id].set(nil)
	var t *time.Timer
	t = time.AfterFunc(grace, func() {
		r.mu.Lock()
		current := r.held[id] == t
		if current {
			delete(r.held, id)
		}
		r.mu.Unlock()
		if current {
			c.leaveRoom()
		}
	})
	r.held[id] = t
	return true
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
	delete(r.sinks, id)
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
	r.broadcastStateLocked()
	return true
}

// end closes the room for everyone after telling them the result.
func (r *room) end(result string) {
	r.close(func(c *conn) {
		c.enqueue(outbound{Type: TypeSessionEnded, Result: result})
		c.closeAfterFlush("session ended")
	})
}

// close closes the room: no place is kept for a dropped socket any more,
// tell is called for each participant's socket, and the media closes.
func (r *room) close(tell func(*conn)) {
	r.mu.Lock()
	r.closed = true
	for id, t := range r.held {
		t.Stop()
		delete(r.held, id)
	}
	conns := make([]*conn, 0, len(r.conns))
	for _, c := range r.conns {
		conns = append(conns, c)
	}
	r.mu.Unlock()
	for _, c := range conns {
		tell(c)
	}
	r.media.Close()
}

// act runs one room action from participant by and records it.
func (r *room) act(by string, m *inbound) error {
	ev, err := r.actLocked(by, m)
	if err != nil || ev == nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, e := range ev.events {
		if err := r.s.p.Sessions.RecordRoomEvent(ctx, e.typ, by, e.RoomEvent); err != nil {
			r.log.Error("room event not recorded", "type", e.typ, "err", err)
		}
	}
	return nil
}

type roomEvent struct {
	typ string
	cases.RoomEvent
}

type actResult struct{ events []roomEvent }

func (r *room) actLocked(by string, m *inbound) (*actResult, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, errorf(CodeSessionEnded, true, "this session has ended")
	}
	if r.policy.Kind() == rooms.Unmediated && mediatorOnly[m.Type] {
		return nil, errorf(CodeNotAllowedInReconciliation, false, "%s is a mediator's action; a reconciliation room has no mediator", m.Type)
	}
	res := &actResult{}
	note := func(typ, participant string) {
		res.events = append(res.events, roomEvent{typ, cases.RoomEvent{SessionID: r.id, ParticipantID: participant}})
	}
	var changes []rooms.Change
	var err error
	switch m.Type {
	case TypeConsent:
		waiting := !r.policy.Admitted(by)
		changes, err = r.policy.Consent(by)
		note(cases.RoomConsent, by)
		if waiting && r.policy.Admitted(by) {
			note(cases.RoomAdmitted, by) // an unmediated room admits on consent
		}
	case TypeAdmit:
		changes, err = r.policy.Admit(by, m.ParticipantID)
		note(cases.RoomAdmitted, m.ParticipantID)
	case TypeAdmitAll:
		var ids []string
		ids, changes, err = r.policy.AdmitAll(by)
		for _, id := range ids {
			note(cases.RoomAdmitted, id)
		}
	case TypeRemove:
		changes, err = r.policy.Remove(by, m.ParticipantID)
		if err == nil {
			note(cases.RoomRemoved, m.ParticipantID)
			if c := r.conns[m.ParticipantID]; c != nil {
				c.fail(errorf(CodeRemoved, true, "the mediator has removed you from this session"))
			}
		}
	case TypeCheckIdentity:
		on := m.On != nil && *m.On || m.Allow != nil && *m.Allow
		changes, err = r.policy.CheckIdentity(by, m.ParticipantID, on)
	case TypeIdentityChecked:
		err = r.policy.MarkIdentityChecked(by, m.ParticipantID)
		note(cases.RoomIdentityChecked, m.ParticipantID)
	case TypeSetMode:
		changes, err = r.policy.SetMode(by, *m.Mode)
		mode := r.policy.Mode()
		e := roomEvent{cases.RoomMode, cases.RoomEvent{SessionID: r.id, Mode: "joint"}}
		if mode.Caucus {
			e.Mode, e.Side = "caucus", string(mode.Side)
		}
		res.events = append(res.events, e)
	case TypeLetIntoCaucus:
		allow := m.Allow != nil && *m.Allow || m.On != nil && *m.On
		changes, err = r.policy.LetIntoCaucus(by, m.ParticipantID, allow)
	case TypeAttachInterpreter:
		changes, err = r.policy.AttachInterpreter(by, m.ParticipantID, rooms.Side(m.Side))
	case TypeMute:
		changes, err = r.policy.Mute(by, m.ParticipantID)
		note(cases.RoomMuted, m.ParticipantID)
		if err == nil {
			// Enforced by the SFU, not left to the muted client.
			r.media.SetAudioMuted(m.ParticipantID, true)
		}
	case TypeUnmute:
		changes, err = r.policy.Unmute(by)
		res.events = nil
		if err == nil {
			r.media.SetAudioMuted(by, false)
		}
	case TypeAskUnmute:
		if err := r.policy.Authorize(by, m.ParticipantID); err != nil {
			return nil, err
		}
		if c := r.conns[m.ParticipantID]; c != nil {
			c.enqueue(outbound{Type: TypeUnmuteRequested, From: by})
		}
		return nil, nil
	case TypeLock:
		err = r.policy.Lock(by, *m.Locked)
		res.events = append(res.events, roomEvent{cases.RoomLocked, cases.RoomEvent{SessionID: r.id, Locked: m.Locked}})
	case TypeChat:
		r.chatLocked(by, m.Text)
		return nil, nil
	case TypeNote:
		return nil, r.noteLocked(by, m.Text)
	default:
		return nil, errorf(CodeBadMessage, false, "unknown message type")
	}
	if err != nil {
		return nil, err
	}
	r.applyLocked(changes)
	r.broadcastStateLocked()
	return res, nil
}

// chatLocked delivers a chat message to the sender and to everyone the
// policy lets receive the sender now. Chat is never stored.
func (r *room) chatLocked(from, text string) {
	now := r.s.p.Now().UTC()
	msg := outbound{Type: TypeChat, From: from, Text: text, At: &now}
	for id, c := range r.conns {
		if id == from || r.policy.MayChat(id, from) {
			c.enqueue(msg)
		}
	}
}

// noteLocked keeps a mediator's private note for the room's mediators.
func (r *room) noteLocked(from, text string) error {
	p, _, ok := r.policy.Participant(from)
	if !ok || !rooms.IsMediator(p.Role) {
		return errorf(CodeNotAllowed, false, "only a mediator may write notes")
	}
	n := Note{From: from, Text: text, At: r.s.p.Now().UTC()}
	r.notes = append(r.notes, n)
	for id, c := range r.conns {
		if q, _, ok := r.policy.Participant(id); ok && rooms.IsMediator(q.Role) {
			c.enqueue(outbound{Type: TypeNote, From: from, Text: text, At: &n.At})
		}
	}
	return nil
}

// applyLocked hands the policy's subscription changes to media. Media
// forwards a publisher's tracks to a subscriber while the policy allows
// any of its sources (a mute, which denies audio alone, is enforced by
// media.Room.SetAudioMuted).
func (r *room) applyLocked(changes []rooms.Change) {
	touched := map[[2]string]bool{}
	for _, ch := range changes {
		k := [2]string{ch.Subscriber, ch.Publisher}
		if touched[k] {
			continue
		}
		touched[k] = true
		allow := false
		for _, src := range rooms.Sources {
			allow = allow || r.policy.MayReceive(k[0], k[1], src)
		}
		r.media.Allow(k[0], k[1], allow)
	}
}

// broadcastStateLocked sends every participant its view of the room.
func (r *room) broadcastStateLocked() {
	ids := make([]string, 0, len(r.conns))
	for id := range r.conns {
		ids = append(ids, id)
	}
	r.saveStateLocked()
	views := r.policy.Views(ids)
	for id, c := range r.conns {
		view, ok := views[id]
		if !ok {
			continue
		}
		// Views are built afresh for each change and never changed after;
		// the notes are appended to, never changed in place, so the slice
		// taken here stays as it is.
		st := &RoomState{View: view, StartedAt: r.startedAt}
		if rooms.IsMediator(view.Self.Role) {
			st.Notes = r.notes[:len(r.notes):len(r.notes)]
		}
		c.enqueueLater(&outbound{Type: TypeRoom, Room: st})
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

// AgreementUpdated tells the participants of a case's open rooms that its
// agreement changed, so their clients fetch it again (the API checks
// visibility once more). A draft visible to one side only (prepared in a
// caucus) is announced to the mediators and that side alone.
func (s *Server) AgreementUpdated(caseID, agreementID string, revision int, textHash, visibleTo, status string) {
	s.agreementUpdated(caseID, agreementID, revision, textHash, visibleTo, status)
	s.publish(cluster.Event{Op: opAgreementUpdated, Case: caseID, Agreement: agreementID, Revision: revision,
		TextHash: textHash, VisibleTo: visibleTo, Status: status})
}

func (s *Server) agreementUpdated(caseID, agreementID string, revision int, textHash, visibleTo, status string) {
	s.mu.Lock()
	var rs []*room
	for _, r := range s.rooms {
		if r.caseID == caseID {
			rs = append(rs, r)
		}
	}
	s.mu.Unlock()
	msg := outbound{Type: TypeAgreementUpdated, Agreement: &AgreementInfo{
		ID: agreementID, Revision: revision, TextHash: textHash, VisibleTo: visibleTo, Status: status,
	}}
	for _, r := range rs {
		r.mu.Lock()
		for id, c := range r.conns {
			p, _, ok := r.policy.Participant(id)
			if !ok || !r.policy.Admitted(id) {
				continue // the lobby hears nothing of the agreement
			}
			if visibleTo == "all" || visibleTo == "" || rooms.IsMediator(p.Role) || string(p.Side) == visibleTo {
				c.enqueue(msg)
			}
		}
		r.mu.Unlock()
	}
}

// iceServersFor returns the ICE servers handed to one participant.
func (s *Server) iceServersFor(participantID string) []ICEServer {
	if s.p.ICEServersFor != nil {
		return s.p.ICEServersFor(participantID)
	}
	return s.p.ICEServers
}

// RevokeLinks drops the connections opened with links that were just
// revoked: one participant's, or (participantID empty) a whole session's.
// They keep no place for a resume, and their links no longer join.
func (s *Server) RevokeLinks(sessionID, participantID string) {
	s.revokeLinks(sessionID, participantID)
	s.publish(cluster.Event{Op: opRevokeLinks, Session: sessionID, Participant: participantID})
}

func (s *Server) revokeLinks(sessionID, participantID string) {
	r := s.openRoom(sessionID)
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, c := range r.conns {
		if participantID != "" && id != participantID {
			continue
		}
		if t := r.held[id]; t != nil {
			t.Stop()
			delete(r.held, id)
			go c.leaveRoom()
			continue
		}
		c.fail(errorf(CodeLinkRevoked, true, "this join link has been withdrawn"))
	}
}

// Package signaling translates between participants' WebSockets and the
// rooms: it authenticates a join, keeps the room's state (rooms.Room) and
// the media forwarding (media.Room) in step, and relays negotiation. It
// holds no rules of its own: who may receive whom is decided by rooms.
package signaling

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/concord-odr/concord/cases"
	"github.com/concord-odr/concord/cases/joinlink"
	"github.com/concord-odr/concord/media"
	"github.com/concord-odr/concord/signaling/cluster"
)

// Timing and size limits of a connection.
const (
	maxMessageSize = 64 << 10
	joinTimeout    = 10 * time.Second
	pongWait       = 45 * time.Second
	pingPeriod     = 20 * time.Second
	writeWait      = 10 * time.Second
	sendQueue      = 256
)

// TokenVerifier checks a join token.
type TokenVerifier interface {
	Verify(token string) (*joinlink.Claims, error)
}

// SessionBook is what signaling needs of the case store.
type SessionBook interface {
	Session(ctx context.Context, id string) (*cases.Session, error)
	RecordJoin(ctx context.Context, sessionID, participantID string, at time.Time) error
	RecordLeave(ctx context.Context, sessionID, participantID string, at time.Time) error
	RecordRoomEvent(ctx context.Context, typ, actor string, e cases.RoomEvent) error
	Removed(ctx context.Context, sessionID, participantID string) (bool, error)
}

// Params configures a Server.
type Params struct {
	Logger   *slog.Logger
	SFU      *media.SFU
	Tokens   TokenVerifier
	Sessions SessionBook
	// AllowedOrigins lists extra origins (scheme://host[:port]) whose pages
	// may open a socket; the server's own origin is always allowed.
	AllowedOrigins []string
	ICEServers     []ICEServer
	// ICEServersFor, when set, returns the ICE servers (TURN credentials
	// included) handed to one participant at join; it overrides ICEServers.
	ICEServersFor func(participantID string) []ICEServer
	Now           func() time.Time
	// Metrics, when set, counts messages, errors, rooms and participants.
	Metrics *Metrics
	// ResumeGrace is how long a participant whose socket dropped keeps its
	// place (and its media connections) for a reconnect. 0 disables it.
	ResumeGrace time.Duration
	// Cluster, when set, runs each session's room on one of the nodes
	// sharing a Redis: a join that reaches another node is relayed to it.
	Cluster Cluster
}

// Server accepts signaling sockets and runs the rooms.
type Server struct {
	p        Params
	log      *slog.Logger
	upgrader websocket.Upgrader

	mu       sync.Mutex
	rooms    map[string]*room // by session id
	conns    map[*conn]struct{}
	draining bool
	wg       sync.WaitGroup

	stopRenew chan struct{} // closed by Shutdown to stop renewClaims
}

// New returns a Server.
func New(p Params) *Server {
	if p.Logger == nil {
		p.Logger = slog.New(slog.DiscardHandler)
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	s := &Server{p: p, log: p.Logger, rooms: map[string]*room{}, conns: map[*conn]struct{}{}, stopRenew: make(chan struct{})}
	s.upgrader = websocket.Upgrader{
		ReadBufferSize:  4096,
		WriteBufferSize: 4096,
		CheckOrigin:     s.checkOrigin,
	}
	if p.Cluster != nil {
		s.wg.Add(1)
		go s.renewClaims()
	}
	return s
}

// checkOrigin lets same-origin pages, listed origins and non-browser
// clients (no Origin header) connect.
func (s *Server) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	return slices.Contains(s.p.AllowedOrigins, strings.ToLower(origin))
}

// ServeHTTP upgrades the request to a signaling socket.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	draining := s.draining
	s.mu.Unlock()
	if draining {
		http.Error(w, "server is shutting down", http.StatusServiceUnavailable)
		return
	}
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		s.log.Debug("upgrade refused", "err", err, "origin", r.Header.Get("Origin"))
		return // the upgrader has answered
	}
	c := newConn(s, ws)
	c.relayed = r.Header.Get(relayHeader) != ""
	s.mu.Lock()
	if s.draining {
		s.mu.Unlock()
		c.fail(errorf(CodeShuttingDown, true, "the server is restarting; please reconnect"))
		_ = ws.Close()
		return
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		c.run()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
}

// Shutdown tells every client the server is going away, closes the rooms
// and waits (until ctx ends) for the connections to finish.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.draining {
		close(s.stopRenew)
	}
	s.draining = true
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	rooms := make([]*room, 0, len(s.rooms))
	for _, r := range s.rooms {
		rooms = append(rooms, r)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.fail(errorf(CodeShuttingDown, true, "the server is restarting; please reconnect"))
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	for _, r := range rooms {
		r.media.Close()
		// Another node may open it at once for the participants'
		// reconnects, rather than after this node's heartbeat expires.
		s.releaseClaim(r.id)
	}
	return ctx.Err()
}

// EndSession tells everyone in the session's room that it has ended,
// closes their sockets and the room's media.
func (s *Server) EndSession(sessionID string, result string) {
	s.endSession(sessionID, result)
	s.publish(cluster.Event{Op: opEndSession, Session: sessionID, Result: result})
}

func (s *Server) endSession(sessionID string, result string) {
	if r := s.takeRoom(sessionID); r != nil {
		r.end(result)
		s.release(sessionID)
	}
}

// openRoom returns a session's open room, or nil.
func (s *Server) openRoom(sessionID string) *room {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rooms[sessionID]
}

// takeRoom removes a session's open room from the server and returns it,
// or nil if none is open.
func (s *Server) takeRoom(sessionID string) *room {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rooms[sessionID]
	if r != nil {
		delete(s.rooms, sessionID)
		s.p.Metrics.roomsDelta(-1)
	}
	return r
}

// Rooms returns the number of open rooms.
func (s *Server) Rooms() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.rooms)
}

// roomFor returns the open room of a session, creating it.
func (s *Server) roomFor(sess *cases.Session, state []byte) *room {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rooms[sess.ID]
	if r == nil {
		r = newRoom(s, sess, state)
		s.rooms[sess.ID] = r
		s.p.Metrics.roomsDelta(1)
	}
	return r
}

// dropRoomIfEmpty forgets a room nobody is in.
func (s *Server) dropRoomIfEmpty(r *room) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rooms[r.id] != r {
		return
	}
	r.mu.Lock()
	empty := len(r.conns) == 0
	if empty {
		r.closed = true
	}
	r.mu.Unlock()
	if empty {
		delete(s.rooms, r.id)
		s.p.Metrics.roomsDelta(-1)
		r.media.Close()
		if s.p.Cluster != nil {
			go s.release(r.id)
		}
	}
}

// claims checks a join token's signature and expiry.
func (s *Server) claims(token string) (*joinlink.Claims, error) {
	claims, err := s.p.Tokens.Verify(token)
	switch {
	case errors.Is(err, joinlink.ErrExpired):
		return nil, errorf(CodeTokenExpired, true, "%s", err.Error())
	case err != nil:
		return nil, errorf(CodeInvalidToken, true, "%s", err.Error())
	}
	return claims, nil
}

// verify checks a join token and finds the session and participant.
func (s *Server) verify(ctx context.Context, token string) (*cases.Session, cases.Participant, error) {
	claims, err := s.claims(token)
	if err != nil {
		return nil, cases.Participant{}, err
	}
	sess, err := s.p.Sessions.Session(ctx, claims.SessionID)
	if err != nil {
		if cases.ErrorCode(err) == cases.ENOTFOUND {
			return nil, cases.Participant{}, errorf(CodeNotFound, true, "no such session")
		}
		return nil, cases.Participant{}, err
	}
	p, ok := sess.Participant(claims.ParticipantID())
	if !ok || sess.CaseID != claims.CaseID {
		return nil, cases.Participant{}, errorf(CodeNotFound, true, "no such session")
	}
	if sess.Status == cases.SessionEnded {
		return nil, cases.Participant{}, errorf(CodeSessionEnded, true, "this session has ended")
	}
	removed, err := s.p.Sessions.Removed(ctx, sess.ID, p.ID)
	if err != nil {
		return nil, cases.Participant{}, err
	}
	if removed {
		return nil, cases.Participant{}, errorf(CodeRemoved, true, "the mediator has removed you from this session")
	}
	return sess, p, nil
}

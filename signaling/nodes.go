package signaling

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/concord-odr/concord/cases"
	"github.com/concord-odr/concord/signaling/cluster"
)

// Cluster is what signaling needs of the nodes that share a Redis
// (cluster.Cluster): each session's room runs on one node, and a socket
// that reaches another node is relayed to it.
type Cluster interface {
	Self() string
	RoomTTL() time.Duration
	Claim(ctx context.Context, session string) (cluster.Owner, error)
	Renew(ctx context.Context, sessions []string) (lost []string, err error)
	Release(ctx context.Context, session string) error
	Publish(ctx context.Context, ev cluster.Event) error
	SaveState(ctx context.Context, session string, state []byte) error
	LoadState(ctx context.Context, session string) ([]byte, error)
	ForgetState(ctx context.Context, session string) error
}

// relayHeader marks a socket another node relays; its value is that
// node's name. A relayed join is never relayed again: a node that does not
// own the room any more answers room_moved, and the client reconnects.
const relayHeader = "X-Concord-Relay"

// Events carried between nodes.
const (
	opEndSession       = "end_session"
	opRevokeLinks      = "revoke_links"
	opAgreementUpdated = "agreement_updated"
)

// route finds the node that runs the room the token joins, claiming it
// for this node when no live node does. When this node claims a room it
// has not open, it also returns the room's state saved by the node that
// ran it before (lost or stopped), if any.
func (s *Server) route(token string) (cluster.Owner, []byte, error) {
	claims, err := s.claims(token)
	if err != nil {
		return cluster.Owner{}, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	owner, err := s.p.Cluster.Claim(ctx, claims.SessionID)
	if err != nil {
		// A room open here goes on without Redis: its participants may
		// reconnect to it.
		if s.openRoom(claims.SessionID) != nil {
			s.log.Warn("cluster: Redis unreachable; joining the room open here", "session", claims.SessionID, "err", err)
			return cluster.Owner{Node: s.p.Cluster.Self()}, nil, nil
		}
		s.log.Error("cluster: no owner for the room", "session", claims.SessionID, "err", err)
		return cluster.Owner{}, nil, errUnreachable()
	}
	if owner.Node != s.p.Cluster.Self() {
		return owner, nil, nil
	}
	if s.openRoom(claims.SessionID) != nil {
		return owner, nil, nil
	}
	state, err := s.p.Cluster.LoadState(ctx, claims.SessionID)
	if err != nil {
		// The room opens from its lobby rather than not at all.
		s.log.Warn("cluster: the room's saved state is unreadable; opening it afresh", "session", claims.SessionID, "err", err)
	}
	return owner, state, nil
}

// errUnreachable tells a client its room's node, or the Redis that says
// which it is, cannot be reached; it retries.
func errUnreachable() *protocolError {
	return errorf(CodeUnavailable, true, "the session's room cannot be reached just now; please reconnect")
}

// relay carries the socket to the node that runs its room: it sends the
// join that was read, and from then on run's read loop hands every
// message to the owner (forward) and the owner's go to the client. The
// owner's close (code and reason) reaches the client as it was sent; the
// owner's loss reaches it as shutting_down, and the client reconnects. It
// reports whether the relay started; if not, the client was told why.
func (c *conn) relay(owner cluster.Owner, join []byte) bool {
	close(c.joined) // the owner times the join from here
	ctx, cancel := context.WithTimeout(context.Background(), joinTimeout/2)
	d := websocket.Dialer{HandshakeTimeout: joinTimeout / 2, ReadBufferSize: 4096, WriteBufferSize: 4096}
	ws, resp, err := d.DialContext(ctx, owner.URL, http.Header{relayHeader: {c.s.p.Cluster.Self()}})
	cancel()
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		c.s.p.Metrics.join("relay_failed")
		c.log.Warn("cluster: the room's node is unreachable", "node", owner.Node, "url", owner.URL, "err", err)
		c.fail(errUnreachable())
		return false
	}
	c.s.p.Metrics.join("relayed")
	c.s.p.Metrics.relaysDelta(1)
	c.log.Debug("cluster: relaying", "node", owner.Node)
	ws.SetReadLimit(maxMessageSize)
	up := &upstream{ws: ws, done: make(chan struct{})}
	c.up = up
	go c.fromOwner(up)
	if up.forward(join) != nil {
		c.endRelay(false)
		return false
	}
	return true
}

// upstream is a relayed socket's connection to the room's node.
type upstream struct {
	ws   *websocket.Conn
	done chan struct{} // closed when fromOwner stops
	// clientGone is set when the relay ends from the client's side: the
	// owner's socket closing then is no news to tell the client.
	clientGone atomic.Bool
}

// forward sends one client message to the owner; only run's reader calls
// it.
func (u *upstream) forward(data []byte) error {
	_ = u.ws.SetWriteDeadline(time.Now().Add(writeWait))
	return u.ws.WriteMessage(websocket.TextMessage, data)
}

// fromOwner passes the owner's messages to the client until the owner's
// socket ends.
func (c *conn) fromOwner(u *upstream) {
	defer close(u.done)
	extend := func() { _ = u.ws.SetReadDeadline(time.Now().Add(pongWait)) }
	extend()
	u.ws.SetPingHandler(func(data string) error {
		extend()
		return u.ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(writeWait))
	})
	for {
		kind, data, err := u.ws.ReadMessage()
		if err != nil && u.clientGone.Load() {
			return
		}
		if err != nil {
			// 1006 and 1005 are never sent: gorilla reports a connection
			// that ended without a close frame (a killed node) as 1006.
			var ce *websocket.CloseError
			if errors.As(err, &ce) && ce.Code != websocket.CloseAbnormalClosure && ce.Code != websocket.CloseNoStatusReceived {
				c.closeOnce.Do(func() { c.push(frame{close: true, code: ce.Code, reason: ce.Text}) })
			} else {
				c.fail(errorf(CodeShuttingDown, true, "the server running this session stopped; please reconnect"))
			}
			return
		}
		extend()
		if kind == websocket.TextMessage {
			c.push(frame{data: data})
		}
	}
}

// endRelay closes the owner's socket once the client's read loop has
// stopped, clientGone saying whether the client ended it. The owner keeps
// the place for a resume unless the client said leave, as with a direct
// socket.
func (c *conn) endRelay(clientGone bool) {
	u := c.up
	if clientGone {
		u.clientGone.Store(true)
	}
	_ = u.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, ""), time.Now().Add(time.Second))
	_ = u.ws.Close()
	<-u.done
	c.up = nil
	c.s.p.Metrics.relaysDelta(-1)
}

// renewClaims keeps this node's claims on its open rooms, and moves away
// the participants of a room another node took over meanwhile (after this
// node lost Redis for longer than its heartbeat), so that one room never
// runs on two nodes for long.
func (s *Server) renewClaims() {
	defer s.wg.Done()
	t := time.NewTicker(s.p.Cluster.RoomTTL() / 3)
	defer t.Stop()
	for {
		select {
		case <-s.stopRenew:
			return
		case <-t.C:
		}
		s.mu.Lock()
		ids := make([]string, 0, len(s.rooms))
		for id := range s.rooms {
			ids = append(ids, id)
		}
		s.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), s.p.Cluster.RoomTTL()/3)
		lost, err := s.p.Cluster.Renew(ctx, ids)
		cancel()
		if err != nil {
			s.log.Warn("cluster: room claims not renewed", "rooms", len(ids), "err", err)
			continue
		}
		for _, id := range lost {
			s.log.Warn("cluster: another node runs this room now; moving its participants", "session", id)
			s.moveRoom(id)
		}
		s.endEndedRooms(ids)
	}
}

// endEndedRooms ends the open rooms whose session the store says has
// ended: an end_session event is lost if Redis was unreachable when
// another node ended the session.
func (s *Server) endEndedRooms(ids []string) {
	for _, id := range ids {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		sess, err := s.p.Sessions.Session(ctx, id)
		cancel()
		if err == nil && sess.Status == cases.SessionEnded {
			s.log.Info("cluster: the session ended elsewhere; ending its room", "session", id)
			s.endSession(id, cases.SessionEnded)
		}
	}
}

// moveRoom closes a room this node no longer owns; its participants are
// told room_moved and reconnect to the node that does.
func (s *Server) moveRoom(sessionID string) {
	if r := s.takeRoom(sessionID); r != nil {
		r.close(func(c *conn) {
			c.fail(errorf(CodeRoomMoved, true, "this session moved to another server; reconnecting"))
		})
	}
}

// release gives up the claim on a room this node closed, and its saved
// state, unless it has opened the room again since.
func (s *Server) release(sessionID string) {
	if s.p.Cluster == nil {
		return
	}
	if s.openRoom(sessionID) != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.p.Cluster.ForgetState(ctx, sessionID); err != nil {
		s.log.Warn("cluster: room state not forgotten; it expires", "session", sessionID, "err", err)
	}
	s.releaseClaim(sessionID)
}

// saveStateLocked keeps the room's state in Redis for the node that
// would open it should this one be lost. Writes are in order, one at a
// time, the latest state replacing any not written yet.
func (r *room) saveStateLocked() {
	if r.s.p.Cluster == nil || r.closed {
		return
	}
	r.unsaved = r.policy.Snapshot()
	if r.saving {
		return
	}
	r.saving = true
	go func() {
		for {
			r.mu.Lock()
			state := r.unsaved
			r.unsaved = nil
			if state == nil || r.closed {
				r.saving = false
				r.mu.Unlock()
				return
			}
			r.mu.Unlock()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := r.s.p.Cluster.SaveState(ctx, r.id, state); err != nil {
				r.log.Warn("cluster: room state not saved; a node taking the room over would open it afresh", "err", err)
			}
			cancel()
		}
	}()
}

// releaseClaim gives up the claim on a room.
func (s *Server) releaseClaim(sessionID string) {
	if s.p.Cluster == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.p.Cluster.Release(ctx, sessionID); err != nil {
		s.log.Warn("cluster: room claim not released; it expires", "session", sessionID, "err", err)
	}
}

// publish tells the other nodes of ev; the node running the room applies
// it.
func (s *Server) publish(ev cluster.Event) {
	if s.p.Cluster == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.p.Cluster.Publish(ctx, ev); err != nil {
		s.log.Error("cluster: event not sent to the other nodes", "op", ev.Op, "session", ev.Session, "err", err)
	}
}

// Apply carries out an event another node published.
func (s *Server) Apply(ev cluster.Event) {
	switch ev.Op {
	case opEndSession:
		s.endSession(ev.Session, ev.Result)
	case opRevokeLinks:
		s.revokeLinks(ev.Session, ev.Participant)
	case opAgreementUpdated:
		s.agreementUpdated(ev.Case, ev.Agreement, ev.Revision, ev.TextHash, ev.VisibleTo, ev.Status)
	default:
		s.log.Warn("cluster: unknown event", "op", ev.Op, "node", ev.Node)
	}
}

package signaling

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"

	"github.com/concord-odr/concord/cases"
	"github.com/concord-odr/concord/media"
)

// frame is one item of a connection's send queue.
type frame struct {
	data []byte
	// msg, when data is nil, is encoded by the writer: a message built
	// under a room's lock whose encoding need not hold it. It must not
	// change once queued.
	msg    *outbound
	close  bool // send a close frame and stop
	code   int
	reason string
}

// conn is one participant's socket. Exactly one goroutine reads (run) and
// one writes (writeLoop); everything else enqueues.
type conn struct {
	s       *Server
	ws      *websocket.Conn
	log     *slog.Logger
	queue   chan frame
	done    chan struct{} // closed when the writer stops
	quit    chan struct{} // closed to stop the writer whatever is queued
	limiter *rate.Limiter

	closeOnce sync.Once
	stopOnce  sync.Once
	leaving   atomic.Bool // the client left or the server ended the socket on purpose
	relayed   bool        // another node relays this socket (cluster)
	restore   []byte      // the room's state to open it with (cluster), from route
	up        *upstream   // set while this socket is relayed to the room's node (cluster)

	// Set by the reader during join; read by the room under its lock.
	room        *room
	participant cases.Participant
	peer        *media.Peer
	joined      chan struct{}
}

func newConn(s *Server, ws *websocket.Conn) *conn {
	return &conn{
		s:       s,
		ws:      ws,
		log:     s.log,
		queue:   make(chan frame, sendQueue),
		done:    make(chan struct{}),
		quit:    make(chan struct{}),
		limiter: rate.NewLimiter(50, 200),
		joined:  make(chan struct{}),
	}
}

// run reads until the socket ends, then takes the participant out of its
// room.
func (c *conn) run() {
	go c.writeLoop()
	defer c.cleanup()

	c.ws.SetReadLimit(maxMessageSize)
	_ = c.ws.SetReadDeadline(time.Now().Add(pongWait))
	c.ws.SetPongHandler(func(string) error {
		return c.ws.SetReadDeadline(time.Now().Add(pongWait))
	})
	joinTimer := time.AfterFunc(joinTimeout, func() {
		select {
		case <-c.joined:
		default:
			c.fail(errorf(CodeJoinRequired, true, "no join within %s", joinTimeout))
		}
	})
	defer joinTimer.Stop()

	for {
		kind, data, err := c.ws.ReadMessage()
		if err != nil {
			if !websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway) {
				c.log.Debug("socket read ended", "err", err)
			}
			if c.up != nil {
				c.endRelay(true)
			}
			return
		}
		_ = c.ws.SetReadDeadline(time.Now().Add(pongWait))
		if kind != websocket.TextMessage {
			c.sendError(errorf(CodeBadMessage, false, "messages must be JSON text"))
			continue
		}
		if !c.limiter.Allow() {
			c.sendError(errorf(CodeRateLimited, false, "too many messages"))
			continue
		}
		if c.up != nil {
			if c.up.forward(data) != nil {
				c.endRelay(false)
				return
			}
			continue
		}
		if stop := c.handle(data); stop {
			return
		}
	}
}

// handle processes one message and reports whether to stop reading.
func (c *conn) handle(data []byte) bool {
	m, err := decode(data)
	if m != nil {
		c.s.p.Metrics.message(m.Type)
	} else {
		c.s.p.Metrics.message("bad")
	}
	if err != nil {
		c.sendError(err)
		return false
	}
	if c.room == nil && m.Type != TypeJoin {
		c.fail(errorf(CodeJoinRequired, true, "the first message must be join"))
		return true
	}
	switch m.Type {
	case TypeJoin:
		if c.room != nil {
			c.sendError(errorf(CodeAlreadyJoined, false, "already joined"))
			return false
		}
		if cl := c.s.p.Cluster; cl != nil {
			owner, state, err := c.s.route(m.Token)
			c.restore = state
			if err == nil && owner.Node != cl.Self() {
				if c.relayed {
					err = errorf(CodeRoomMoved, true, "this session moved to another server; reconnecting")
				} else {
					return !c.relay(owner, data)
				}
			}
			if err != nil {
				c.s.p.Metrics.join("refused")
				c.fail(asProtocolError(err))
				return true
			}
		}
		if err := c.join(m.Token, m.Resume); err != nil {
			c.s.p.Metrics.join("refused")
			pe := asProtocolError(err)
			if pe.code == CodeInternal {
				c.log.Error("join failed", "err", err)
			}
			pe.fatal = true
			c.fail(pe)
			return true
		}
		c.s.p.Metrics.join("ok")
		return false
	case TypeOffer:
		if m.ScreenTracks != nil {
			c.peer.SetScreenTracks(m.ScreenTracks)
		}
		err = c.peer.HandleOffer(m.SDP)
	case TypeAnswer:
		err = c.peer.HandleAnswer(m.SDP)
	case TypeCandidate:
		err = c.peer.HandleCandidate(m.PC, *m.Candidate)
	case TypeRestartICE:
		err = c.peer.RestartICE()
	case TypeVideoQuality:
		c.peer.SetMaxVideoLayer(m.ParticipantID, *m.Layer)
	case TypeLeave:
		c.leaving.Store(true)
		c.closeAfterFlush("left")
		return true
	default:
		err = c.room.act(c.participant.ID, m)
		if pe := asProtocolError(err); err != nil && pe.fatal {
			c.fail(pe)
			return true
		}
	}
	if err != nil {
		if errors.Is(err, media.ErrClosed) {
			return true
		}
		c.log.Debug("negotiation", "type", m.Type, "err", err)
		c.sendError(err)
	}
	return false
}

// join authenticates the token and puts the participant in its room. A
// participant whose socket dropped less than the grace period ago comes
// back in its place; with resume its media connections are kept too.
func (c *conn) join(token string, resume bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sess, p, err := c.s.verify(ctx, token)
	if err != nil {
		return err
	}
	c.participant = p
	// Attendance is recorded before the room is entered, so that a session
	// ended meanwhile refuses the join instead of losing the record. A
	// resumed stay is the same stay.
	if !c.s.roomFor(sess, c.restore).suspended(p.ID) {
		if err := c.s.p.Sessions.RecordJoin(ctx, sess.ID, p.ID, c.s.p.Now()); err != nil {
			if cases.ErrorCode(err) == cases.ETRANSITION {
				return errorf(CodeSessionEnded, true, "this session has ended")
			}
			return err
		}
	}
	// Counted before the room sends "joined", so that whoever saw that
	// message sees the participant counted; undone if the join fails.
	c.s.p.Metrics.participantsDelta(1)
	for attempt := 0; ; attempt++ {
		r := c.s.roomFor(sess, c.restore)
		err = r.join(c, p, sess, resume)
		if errors.Is(err, errRoomClosed) && attempt < 3 {
			continue
		}
		if err != nil {
			c.s.p.Metrics.participantsDelta(-1)
			if lerr := c.s.p.Sessions.RecordLeave(ctx, sess.ID, p.ID, c.s.p.Now()); lerr != nil {
				c.log.Error("attendance not closed", "session", sess.ID, "participant", p.ID, "err", lerr)
			}
			return err
		}
		c.room = r
		break
	}
	close(c.joined)
	c.log.Info("joined", "session", sess.ID, "participant", p.ID)
	return nil
}

// cleanup leaves the room (at once, or after the grace period when the
// socket merely dropped) and stops the writer.
func (c *conn) cleanup() {
	if c.room != nil {
		if grace := c.s.p.ResumeGrace; grace > 0 && !c.leaving.Load() && c.room.suspend(c, grace) {
			c.log.Info("socket dropped; keeping the place", "session", c.room.id, "participant", c.participant.ID, "grace", grace)
		} else {
			c.leaveRoom()
		}
	}
	if c.room != nil {
		c.s.p.Metrics.participantsDelta(-1)
	}
	c.stop()
	<-c.done
	_ = c.ws.Close()
}

// leaveRoom takes the participant out of its room for good and records
// the end of its stay.
func (c *conn) leaveRoom() {
	if c.room.leave(c) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := c.s.p.Sessions.RecordLeave(ctx, c.room.id, c.participant.ID, c.s.p.Now()); err != nil {
			c.log.Error("attendance not recorded", "session", c.room.id, "participant", c.participant.ID, "err", err)
		}
		cancel()
		c.log.Info("left", "session", c.room.id, "participant", c.participant.ID)
	}
	c.s.dropRoomIfEmpty(c.room)
}

// stop ends the writer after what is queued, or at once if the queue
// cannot take the close.
func (c *conn) stop() {
	c.closeAfterFlush("")
	c.stopOnce.Do(func() { time.AfterFunc(writeWait, func() { close(c.quit) }) })
}

// writeLoop is the connection's only writer.
func (c *conn) writeLoop() {
	defer close(c.done)
	ping := time.NewTicker(pingPeriod)
	defer ping.Stop()
	for {
		select {
		case <-c.quit:
			_ = c.ws.Close()
			return
		case f := <-c.queue:
			_ = c.ws.SetWriteDeadline(time.Now().Add(writeWait))
			if f.close {
				if f.reason != "" {
					_ = c.ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(f.code, f.reason))
				}
				_ = c.ws.Close()
				return
			}
			if f.data == nil && f.msg != nil {
				data, err := json.Marshal(f.msg)
				if err != nil {
					c.log.Error("encode message", "type", f.msg.Type, "err", err)
					continue
				}
				f.data = data
			}
			if err := c.ws.WriteMessage(websocket.TextMessage, f.data); err != nil {
				_ = c.ws.Close()
				return
			}
		case <-ping.C:
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeWait)); err != nil {
				_ = c.ws.Close()
				return
			}
		}
	}
}

// enqueue sends m without blocking. A client too slow to keep up with
// its queue is disconnected.
func (c *conn) enqueue(m outbound) {
	data, err := json.Marshal(m)
	if err != nil {
		c.log.Error("encode message", "type", m.Type, "err", err)
		return
	}
	c.push(frame{data: data})
}

// enqueueLater queues m to be encoded by the writer, off the caller's
// locks; m must not change afterwards.
func (c *conn) enqueueLater(m *outbound) { c.push(frame{msg: m}) }

func (c *conn) push(f frame) {
	select {
	case <-c.done:
	case c.queue <- f:
	default:
		c.log.Warn("client too slow; disconnecting")
		_ = c.ws.Close()
	}
}

// sendSignal passes a media negotiation message to the client.
func (c *conn) sendSignal(sig media.Signal) {
	c.enqueue(outbound{Type: sig.Type, PC: sig.PC, SDP: sig.SDP, Candidate: sig.Candidate})
}

// sendError reports err to the client.
func (c *conn) sendError(err error) {
	pe := asProtocolError(err)
	c.s.p.Metrics.error(pe.code)
	c.enqueue(outbound{Type: TypeError, Code: pe.code, Message: pe.msg, Fatal: pe.fatal})
}

// fail reports a fatal error and closes the socket once it is written.
func (c *conn) fail(pe *protocolError) {
	pe.fatal = true
	if pe.code != CodeShuttingDown {
		c.leaving.Store(true)
	}
	c.sendError(pe)
	code := websocket.ClosePolicyViolation
	if pe.code == CodeShuttingDown {
		code = websocket.CloseServiceRestart
	} else if pe.code == CodeInternal {
		code = websocket.CloseInternalServerErr
	}
	c.closeOnce.Do(func() { c.push(frame{close: true, code: code, reason: pe.code}) })
}

// closeAfterFlush closes the socket normally after what is queued.
func (c *conn) closeAfterFlush(reason string) {
	c.closeOnce.Do(func() { c.push(frame{close: true, code: websocket.CloseNormalClosure, reason: reason}) })
}

package cases

import (
	"context"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"
)

// The instant-mediation queue of the 24-hour cloud mediation service. A
// party asks to mediate now; its request waits in the queue of the
// case's institution; the institution's on-duty mediators (on a shift
// and present: a heartbeat within PresenceTTL, marked available) are
// offered the requests one at a time, the least busy first. A mediator
// accepts (a session is scheduled with it and the parties, and the case
// is assigned to it) or passes. A request offered to nobody who takes it
// within EscalateAfter, or passed by every on-duty mediator, or waiting
// where nobody is on duty, escalates to the parent institution's
// mediators. The party sees its place and the expected wait.
//
// Invariants: a request is offered to at most one mediator at a time,
// and a mediator holds at most one offer at a time. An offer not
// answered within OfferTimeout counts as a pass.
//
// The queue lives in the memory of one node: the requests waiting and
// the mediators' presence. What happened is written to the case's event
// log (queue.requested, queue.escalated, queue.accepted, queue.cancelled).

// Request statuses.
const (
	QueueWaiting   = "waiting"
	QueueOffered   = "offered"
	QueueAccepted  = "accepted"
	QueueCancelled = "cancelled"
)

// QueueParams configures a Queue.
type QueueParams struct {
	Service *Service
	Logger  *slog.Logger
	// Now is the queue's clock; nil means the service's.
	Now func() time.Time
	// OfferTimeout is how long a mediator has to answer an offer; 0 means
	// one minute.
	OfferTimeout time.Duration
	// EscalateAfter is how long a request waits at one institution before
	// it goes to the parent's mediators; 0 means five minutes.
	EscalateAfter time.Duration
	// PresenceTTL is how long a heartbeat keeps a mediator present; 0
	// means 45 seconds.
	PresenceTTL time.Duration
	// MaxLoad is the most rooms a mediator runs at once; 0 means 3.
	MaxLoad int
	// Tick is the period of the queue's own timer; 0 means 5 seconds.
	// Tests drive the queue with Tick instead (see NewQueue).
	Tick time.Duration
}

// QueueRequest is one party's request to mediate now.
type QueueRequest struct {
	ID            string    `json:"id"`
	CaseID        string    `json:"caseId"`
	CaseNumber    string    `json:"caseNumber"`
	Category      string    `json:"category"`
	InstitutionID string    `json:"institutionId"` // where it waits now
	Origin        string    `json:"originInstitutionId"`
	RequestedBy   string    `json:"requestedBy"`
	Status        string    `json:"status"`
	CreatedAt     time.Time `json:"createdAt"`
	// LevelSince is when it reached its current institution.
	LevelSince  time.Time `json:"levelSince"`
	Escalations int       `json:"escalations"`
	OfferedTo   string    `json:"offeredTo,omitempty"`
	OfferedAt   time.Time `json:"offeredAt,omitzero"`
	// Offers counts the offers made; Passes the passes (timeouts
	// included).
	Offers     int    `json:"offers"`
	Passes     int    `json:"passes"`
	SessionID  string `json:"sessionId,omitempty"`
	MediatorID string `json:"mediatorId,omitempty"`

	passed map[string]bool
	// accepting is set while the session of an accepted offer is
	// written: the offer is neither timed out nor withdrawn meanwhile.
	accepting bool
}

// Ticket is what the party sees of its request.
type Ticket struct {
	ID            string `json:"id"`
	CaseID        string `json:"caseId"`
	Status        string `json:"status"`
	InstitutionID string `json:"institutionId"`
	Escalations   int    `json:"escalations"`
	// Position is the place in the institution's queue (1: next), 0 once
	// it is no longer waiting.
	Position int `json:"position"`
	// ExpectedWaitSeconds estimates the wait from the recent times to
	// accept and the mediators on duty.
	ExpectedWaitSeconds int       `json:"expectedWaitSeconds"`
	OnDuty              int       `json:"onDuty"`
	SessionID           string    `json:"sessionId,omitempty"`
	MediatorID          string    `json:"mediatorId,omitempty"`
	CreatedAt           time.Time `json:"createdAt"`
}

// QueueOffer is what a mediator sees of the request offered to it.
type QueueOffer struct {
	RequestID  string    `json:"requestId"`
	CaseID     string    `json:"caseId"`
	CaseNumber string    `json:"caseNumber"`
	Category   string    `json:"category"`
	Escalated  bool      `json:"escalated"`
	WaitingFor int       `json:"waitingSeconds"`
	ExpiresAt  time.Time `json:"expiresAt"`
}

// duty is a mediator's presence and load.
type duty struct {
	m        Mediator
	shifts   []Shift // from a little before now, refreshed on heartbeats
	seen     time.Time
	avail    bool
	active   int // rooms it runs
	offer    *QueueRequest
	lastGot  time.Time // when it last accepted, for fairness
	sessions map[string]bool
}

// DutyStatus is what the console shows of a mediator on the queue.
type DutyStatus struct {
	MediatorID    string      `json:"mediatorId"`
	InstitutionID string      `json:"institutionId"`
	OnShift       bool        `json:"onShift"`
	Present       bool        `json:"present"`
	Available     bool        `json:"available"`
	OnDuty        bool        `json:"onDuty"`
	Active        int         `json:"active"`
	Offer         *QueueOffer `json:"offer,omitempty"`
}

// Queue is the instant-mediation queue.
type Queue struct {
	p   QueueParams
	svc *Service
	log *slog.Logger
	now func() time.Time

	mu       sync.Mutex
	requests map[string]*QueueRequest // waiting or offered
	byCase   map[string]string        // case -> open request
	duties   map[string]*duty
	sessions map[string]string // session -> mediator, for Release
	avgWait  time.Duration     // moving average of request to accept
	// ended keeps the last state of the requests that left the queue, for
	// their tickets; endedOrder drops the oldest beyond maxEnded.
	ended      map[string]*QueueRequest
	endedOrder []string
	// insts caches the institutions, for escalation, read again after
	// instsTTL.
	insts   map[string]Institution
	instsAt time.Time

	closed chan struct{}
	done   chan struct{}
	once   sync.Once
}

// NewQueue returns a queue. Unless run is false it runs its own timer
// until Close; a queue with run false is driven by calls to Tick.
func NewQueue(p QueueParams, run bool) *Queue {
	if p.Logger == nil {
		p.Logger = slog.New(slog.DiscardHandler)
	}
	if p.Now == nil {
		p.Now = p.Service.Now
	}
	if p.OfferTimeout <= 0 {
		p.OfferTimeout = time.Minute
	}
	if p.EscalateAfter <= 0 {
		p.EscalateAfter = 5 * time.Minute
	}
	if p.PresenceTTL <= 0 {
		p.PresenceTTL = 45 * time.Second
	}
	if p.MaxLoad <= 0 {
		p.MaxLoad = 3
	}
	if p.Tick <= 0 {
		p.Tick = 5 * time.Second
	}
	q := &Queue{p: p, svc: p.Service, log: p.Logger, now: p.Now,
		requests: map[string]*QueueRequest{}, byCase: map[string]string{}, duties: map[string]*duty{},
		sessions: map[string]string{}, avgWait: 2 * time.Minute, ended: map[string]*QueueRequest{},
		closed: make(chan struct{}), done: make(chan struct{})}
	if !run {
		close(q.done)
		return q
	}
	go q.run()
	return q
}

func (q *Queue) run() {
	defer close(q.done)
	t := time.NewTicker(q.p.Tick)
	defer t.Stop()
	for {
		select {
		case <-q.closed:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), q.p.Tick)
			q.Tick(ctx)
			cancel()
		}
	}
}

// Close stops the queue's timer. It is idempotent.
func (q *Queue) Close() error {
	q.once.Do(func() { close(q.closed) })
	<-q.done
	return nil
}

// queueEvent is an event to append once the lock is released.
type queueEvent struct {
	caseID, typ, actor string
	payload            map[string]any
}

// flush writes the events, each in its own transaction; a failure is
// logged (the queue's state is in memory and does not depend on it).
func (q *Queue) flush(ctx context.Context, events []queueEvent) {
	for _, e := range events {
		err := q.svc.store.Update(ctx, func(tx Tx) error {
			return q.svc.appendEvent(ctx, tx, e.caseID, e.typ, e.actor, e.payload)
		})
		if err != nil {
			q.log.Warn("queue: event not recorded", "case", e.caseID, "type", e.typ, "err", err)
		}
	}
}

// Request puts a case in the queue for instant mediation. A case already
// waiting answers with its ticket.
func (q *Queue) Request(ctx context.Context, caseID, actor string) (*Ticket, error) {
	c, err := q.svc.Case(ctx, caseID)
	if err != nil {
		return nil, err
	}
	if c.State != StateAccepted && c.State != StateMediating {
		return nil, Errorf(ETRANSITION, "a case in state %s cannot be mediated now; it must be accepted first", c.State)
	}
	now := q.now().UTC()
	q.mu.Lock()
	if id, ok := q.byCase[caseID]; ok {
		t := q.ticketLocked(q.requests[id], now)
		q.mu.Unlock()
		return t, nil
	}
	r := &QueueRequest{ID: NewID("qr_"), CaseID: c.ID, CaseNumber: c.Number, Category: c.Category,
		InstitutionID: c.InstitutionID, Origin: c.InstitutionID, RequestedBy: actor, Status: QueueWaiting,
		CreatedAt: now, LevelSince: now, passed: map[string]bool{}}
	q.requests[r.ID] = r
	q.byCase[c.ID] = r.ID
	events := []queueEvent{{c.ID, "queue.requested", actor, map[string]any{"requestId": r.ID, "institutionId": r.InstitutionID}}}
	events = append(events, q.dispatchLocked(ctx, now)...)
	t := q.ticketLocked(r, now)
	q.mu.Unlock()
	q.flush(ctx, events)
	return t, nil
}

// Ticket returns the party's view of a request: an open one, or the
// last state of one that ended.
func (q *Queue) Ticket(id string) (*Ticket, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	r, ok := q.requests[id]
	if !ok {
		r, ok = q.ended[id]
	}
	if !ok {
		return nil, Errorf(ENOTFOUND, "queue request not found")
	}
	return q.ticketLocked(r, q.now().UTC()), nil
}

// TicketOfCase returns the ticket of a case's open request, or of its
// latest one that ended.
func (q *Queue) TicketOfCase(caseID string) (*Ticket, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.now().UTC()
	if id, ok := q.byCase[caseID]; ok {
		return q.ticketLocked(q.requests[id], now), nil
	}
	for i := len(q.endedOrder) - 1; i >= 0; i-- {
		if r := q.ended[q.endedOrder[i]]; r != nil && r.CaseID == caseID {
			return q.ticketLocked(r, now), nil
		}
	}
	return nil, Errorf(ENOTFOUND, "the case has no queue request")
}

// Requests lists the open requests, oldest first.
func (q *Queue) Requests() []QueueRequest {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]QueueRequest, 0, len(q.requests))
	for _, r := range q.requests {
		c := *r
		c.passed = nil // the queue's own, not shared with the caller
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].CreatedAt.Before(out[j].CreatedAt) || out[i].CreatedAt.Equal(out[j].CreatedAt) && out[i].ID < out[j].ID
	})
	return out
}

// Heartbeat marks a mediator present, available for offers or not, and
// refreshes its shifts.
func (q *Queue) Heartbeat(ctx context.Context, mediatorID string, available bool) (*DutyStatus, error) {
	var m *Mediator
	var shifts []Shift
	now := q.now().UTC()
	err := q.svc.store.View(ctx, func(tx Tx) error {
		var err error
		if m, err = tx.Mediator(ctx, mediatorID); err != nil {
			return err
		}
		shifts, err = tx.Shifts(ctx, ShiftFilter{MediatorID: mediatorID, From: now.Add(-time.Minute), To: now.Add(24 * time.Hour)})
		return err
	})
	if err != nil {
		return nil, err
	}
	if m.Status != MediatorActive {
		return nil, Errorf(ETRANSITION, "mediator %s is not active", m.Name)
	}
	q.mu.Lock()
	d := q.duties[mediatorID]
	if d == nil {
		d = &duty{sessions: map[string]bool{}}
		q.duties[mediatorID] = d
	}
	d.m, d.shifts, d.seen, d.avail = *m, shifts, now, available
	var events []queueEvent
	if !available && d.offer != nil && !d.offer.accepting {
		q.passLocked(d, d.offer)
	}
	events = append(events, q.dispatchLocked(ctx, now)...)
	st := q.statusLocked(d, now)
	q.mu.Unlock()
	q.flush(ctx, events)
	return st, nil
}

// Status returns a mediator's standing on the queue.
func (q *Queue) Status(mediatorID string) (*DutyStatus, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	d, ok := q.duties[mediatorID]
	if !ok {
		return nil, Errorf(ENOTFOUND, "the mediator has not joined the queue; send a heartbeat")
	}
	return q.statusLocked(d, q.now().UTC()), nil
}

func (q *Queue) statusLocked(d *duty, now time.Time) *DutyStatus {
	st := &DutyStatus{MediatorID: d.m.ID, InstitutionID: d.m.InstitutionID, OnShift: d.onShift(now),
		Present: q.present(d, now), Available: d.avail, OnDuty: q.onDuty(d, now), Active: d.active}
	if r := d.offer; r != nil {
		st.Offer = &QueueOffer{RequestID: r.ID, CaseID: r.CaseID, CaseNumber: r.CaseNumber, Category: r.Category,
			Escalated: r.Escalations > 0, WaitingFor: int(now.Sub(r.CreatedAt).Seconds()), ExpiresAt: r.OfferedAt.Add(q.p.OfferTimeout)}
	}
	return st
}

func (d *duty) onShift(now time.Time) bool {
	for i := range d.shifts {
		if d.shifts[i].Covers(now) {
			return true
		}
	}
	return false
}

func (q *Queue) present(d *duty, now time.Time) bool { return now.Sub(d.seen) < q.p.PresenceTTL }

// onDuty: on a shift, present and available.
func (q *Queue) onDuty(d *duty, now time.Time) bool {
	return d.avail && q.present(d, now) && d.onShift(now)
}

// Accept takes the request offered to the mediator: a session is
// scheduled with it and the case's parties, and the case is assigned to
// it (and, when the request escalated, moved to its institution).
func (q *Queue) Accept(ctx context.Context, mediatorID, requestID string) (*Session, error) {
	now := q.now().UTC()
	q.mu.Lock()
	d := q.duties[mediatorID]
	r := q.requests[requestID]
	if d == nil || r == nil || d.offer != r || r.OfferedTo != mediatorID {
		q.mu.Unlock()
		return nil, Errorf(ETRANSITION, "this request is not offered to you (any more)")
	}
	if now.Sub(r.OfferedAt) >= q.p.OfferTimeout {
		q.passLocked(d, r)
		events := q.dispatchLocked(ctx, now)
		q.mu.Unlock()
		q.flush(ctx, events)
		return nil, Errorf(ETRANSITION, "the offer expired")
	}
	if r.accepting {
		q.mu.Unlock()
		return nil, Errorf(ECONFLICT, "the request is being accepted already")
	}
	// Held: the offer stays with this mediator while the session is
	// written, so that nobody else is offered the request meanwhile.
	r.accepting = true
	m := d.m
	q.mu.Unlock()

	sess, err := q.schedule(ctx, r, m, now)

	q.mu.Lock()
	r.accepting = false
	var events []queueEvent
	if err != nil {
		// The case cannot be mediated (it moved on meanwhile): the request
		// ends; the mediator is free.
		d.offer = nil
		q.endLocked(r, QueueCancelled)
		events = append(events, queueEvent{r.CaseID, "queue.cancelled", "system:queue", map[string]any{"requestId": r.ID, "reason": ErrorMessage(err)}})
	} else {
		d.offer = nil
		d.active++
		d.lastGot = now
		d.sessions[sess.ID] = true
		q.sessions[sess.ID] = mediatorID
		r.SessionID, r.MediatorID = sess.ID, mediatorID
		waited := now.Sub(r.CreatedAt)
		q.avgWait = (q.avgWait*3 + waited) / 4
		q.endLocked(r, QueueAccepted)
	}
	events = append(events, q.dispatchLocked(ctx, now)...)
	q.mu.Unlock()
	q.flush(ctx, events)
	if err != nil {
		return nil, err
	}
	return sess, nil
}

// schedule creates the session of an accepted request.
func (q *Queue) schedule(ctx context.Context, r *QueueRequest, m Mediator, now time.Time) (*Session, error) {
	c, err := q.svc.Case(ctx, r.CaseID)
	if err != nil {
		return nil, err
	}
	ps := []Participant{
		{Name: m.Name, Role: RoleMediator, Side: SideNeutral},
		{Name: c.Applicant.Name, Role: RoleParty, Side: SideApplicant},
		{Name: c.Respondent.Name, Role: RoleParty, Side: SideRespondent},
	}
	actor := "mediator:" + m.ID
	return q.svc.ScheduleSessionWith(ctx, r.CaseID, actor, ps, func(ctx context.Context, tx Tx, c *Case, sess *Session) error {
		payload := map[string]any{"requestId": r.ID, "mediatorId": m.ID, "sessionId": sess.ID,
			"waitedSeconds": int(now.Sub(r.CreatedAt).Seconds()), "escalations": r.Escalations}
		c.MediatorID = m.ID
		if c.InstitutionID != m.InstitutionID {
			payload["fromInstitutionId"] = c.InstitutionID
			payload["institutionId"] = m.InstitutionID
			c.InstitutionID = m.InstitutionID
		}
		c.UpdatedAt = now
		if err := tx.PutCase(ctx, c); err != nil {
			return err
		}
		return q.svc.appendEvent(ctx, tx, c.ID, "queue.accepted", actor, payload)
	})
}

// Pass declines the request offered to the mediator; it is offered to
// the next one, or escalates when every on-duty mediator passed.
func (q *Queue) Pass(ctx context.Context, mediatorID, requestID string) error {
	now := q.now().UTC()
	q.mu.Lock()
	d := q.duties[mediatorID]
	r := q.requests[requestID]
	if d == nil || r == nil || d.offer != r || r.accepting {
		q.mu.Unlock()
		return Errorf(ETRANSITION, "this request is not offered to you (any more)")
	}
	q.passLocked(d, r)
	events := q.dispatchLocked(ctx, now)
	q.mu.Unlock()
	q.flush(ctx, events)
	return nil
}

// Cancel withdraws a request.
func (q *Queue) Cancel(ctx context.Context, requestID, actor string) error {
	now := q.now().UTC()
	q.mu.Lock()
	r := q.requests[requestID]
	if r == nil {
		q.mu.Unlock()
		return Errorf(ENOTFOUND, "queue request not found")
	}
	if r.accepting {
		q.mu.Unlock()
		return Errorf(ETRANSITION, "a mediator is taking the request now")
	}
	if d := q.duties[r.OfferedTo]; d != nil && d.offer == r {
		d.offer = nil
	}
	q.endLocked(r, QueueCancelled)
	events := []queueEvent{{r.CaseID, "queue.cancelled", actor, map[string]any{"requestId": r.ID}}}
	events = append(events, q.dispatchLocked(ctx, now)...)
	q.mu.Unlock()
	q.flush(ctx, events)
	return nil
}

// Release tells the queue that a session it assigned has ended: its
// mediator has one room less.
func (q *Queue) Release(ctx context.Context, sessionID string) {
	now := q.now().UTC()
	q.mu.Lock()
	if id, ok := q.sessions[sessionID]; ok {
		delete(q.sessions, sessionID)
		if d := q.duties[id]; d != nil && d.sessions[sessionID] {
			delete(d.sessions, sessionID)
			d.active--
		}
	}
	events := q.dispatchLocked(ctx, now)
	q.mu.Unlock()
	q.flush(ctx, events)
}

// Tick applies the clock: offers not answered in time count as passes,
// requests that waited too long escalate, absent mediators lose their
// offers; then the waiting requests are offered.
func (q *Queue) Tick(ctx context.Context) {
	now := q.now().UTC()
	q.mu.Lock()
	var events []queueEvent
	for _, d := range q.duties {
		if r := d.offer; r != nil && !r.accepting && (now.Sub(r.OfferedAt) >= q.p.OfferTimeout || !q.present(d, now)) {
			q.passLocked(d, r)
		}
	}
	events = append(events, q.dispatchLocked(ctx, now)...)
	q.mu.Unlock()
	q.flush(ctx, events)
}

// passLocked records that d passed r (or let its offer expire).
func (q *Queue) passLocked(d *duty, r *QueueRequest) {
	d.offer = nil
	r.passed[d.m.ID] = true
	r.Passes++
	r.OfferedTo, r.OfferedAt, r.Status = "", time.Time{}, QueueWaiting
}

// endLocked takes r out of the queue, keeping its last state for its
// ticket.
func (q *Queue) endLocked(r *QueueRequest, status string) {
	r.Status = status
	r.OfferedTo, r.OfferedAt = "", time.Time{}
	delete(q.requests, r.ID)
	delete(q.byCase, r.CaseID)
	q.ended[r.ID] = r
	q.endedOrder = append(q.endedOrder, r.ID)
	if len(q.endedOrder) > maxEnded {
		delete(q.ended, q.endedOrder[0])
		q.endedOrder = q.endedOrder[1:]
	}
}

// instsTTL is how long the queue trusts its copy of the institutions.
const instsTTL = 30 * time.Second

// maxEnded is how many ended requests keep their tickets.
const maxEnded = 10000

// waitingLocked lists the requests waiting for an offer, oldest first.
func (q *Queue) waitingLocked() []*QueueRequest {
	var list []*QueueRequest
	for _, r := range q.requests {
		list = append(list, r)
	}
	sort.Slice(list, func(i, j int) bool {
		if !list[i].CreatedAt.Equal(list[j].CreatedAt) {
			return list[i].CreatedAt.Before(list[j].CreatedAt)
		}
		return list[i].ID < list[j].ID
	})
	return list
}

// dispatchLocked escalates what must escalate and offers each waiting
// request, oldest first, to the least busy on-duty mediator of its
// institution who has not passed it and holds no offer.
func (q *Queue) dispatchLocked(ctx context.Context, now time.Time) []queueEvent {
	var events []queueEvent
	for _, r := range q.waitingLocked() {
		if r.OfferedTo != "" {
			continue
		}
		onDuty, fresh := q.candidatesLocked(r, now)
		// Nobody on duty here; everybody on duty passed, or those who did
		// not are at their load; or it waited long enough: up to the
		// parent's mediators, as far as needed.
		stuck := func() bool {
			return len(onDuty) == 0 || len(r.passed) > 0 && !slices.ContainsFunc(fresh, func(d *duty) bool { return d.active < q.p.MaxLoad })
		}
		for stuck() || now.Sub(r.LevelSince) >= q.p.EscalateAfter {
			e, ok := q.escalateLocked(ctx, r, now, len(onDuty) == 0, len(fresh) > 0)
			if !ok {
				if len(fresh) == 0 && len(onDuty) > 0 && now.Sub(r.LevelSince) >= q.p.EscalateAfter {
					// At the top, everyone passed long ago: a new round.
					r.passed, r.LevelSince = map[string]bool{}, now
					onDuty, fresh = q.candidatesLocked(r, now)
				}
				break
			}
			events = append(events, e)
			onDuty, fresh = q.candidatesLocked(r, now)
		}
		var best *duty
		for _, d := range fresh {
			if d.offer != nil || d.active >= q.p.MaxLoad {
				continue
			}
			if best == nil || d.active < best.active ||
				d.active == best.active && (d.lastGot.Before(best.lastGot) || d.lastGot.Equal(best.lastGot) && d.m.ID < best.m.ID) {
				best = d
			}
		}
		if best == nil {
			continue
		}
		best.offer = r
		r.OfferedTo, r.OfferedAt, r.Status = best.m.ID, now, QueueOffered
		r.Offers++
	}
	return events
}

// candidatesLocked returns the on-duty mediators of r's institution, and
// those of them who have not passed r.
func (q *Queue) candidatesLocked(r *QueueRequest, now time.Time) (onDuty, fresh []*duty) {
	for _, d := range q.duties {
		if d.m.InstitutionID != r.InstitutionID || !q.onDuty(d, now) {
			continue
		}
		onDuty = append(onDuty, d)
		if !r.passed[d.m.ID] {
			fresh = append(fresh, d)
		}
	}
	return onDuty, fresh
}

// escalateLocked moves r to the parent of its institution, if it has an
// active one.
func (q *Queue) escalateLocked(ctx context.Context, r *QueueRequest, now time.Time, nobody, waited bool) (queueEvent, bool) {
	if q.insts == nil || now.Sub(q.instsAt) >= instsTTL || now.Before(q.instsAt) {
		var list []Institution
		err := q.svc.store.View(ctx, func(tx Tx) error {
			var err error
			list, err = tx.Institutions(ctx)
			return err
		})
		if err != nil {
			q.log.Warn("queue: cannot read the institutions", "err", err)
			return queueEvent{}, false
		}
		q.insts, q.instsAt = map[string]Institution{}, now
		for _, inst := range list {
			q.insts[inst.ID] = inst
		}
	}
	var parent *Institution
	seen := map[string]bool{}
	for id := q.insts[r.InstitutionID].ParentID; id != "" && !seen[id]; {
		seen[id] = true
		p, ok := q.insts[id]
		if !ok {
			break
		}
		if p.Status == InstitutionActive {
			parent = &p
			break
		}
		id = p.ParentID
	}
	if parent == nil {
		return queueEvent{}, false
	}
	reason := "all_passed"
	switch {
	case nobody:
		reason = "nobody_on_duty"
	case waited:
		reason = "waited"
	}
	from := r.InstitutionID
	r.InstitutionID, r.LevelSince, r.passed = parent.ID, now, map[string]bool{}
	r.Escalations++
	return queueEvent{r.CaseID, "queue.escalated", "system:queue", map[string]any{
		"requestId": r.ID, "fromInstitutionId": from, "institutionId": parent.ID, "reason": reason}}, true
}

// ticketLocked is the party's view of r.
func (q *Queue) ticketLocked(r *QueueRequest, now time.Time) *Ticket {
	t := &Ticket{ID: r.ID, CaseID: r.CaseID, Status: r.Status, InstitutionID: r.InstitutionID,
		Escalations: r.Escalations, SessionID: r.SessionID, MediatorID: r.MediatorID, CreatedAt: r.CreatedAt}
	if r.Status != QueueWaiting && r.Status != QueueOffered {
		return t
	}
	for _, o := range q.waitingLocked() {
		if o.InstitutionID == r.InstitutionID {
			t.Position++
		}
		if o == r {
			break
		}
	}
	for _, d := range q.duties {
		if d.m.InstitutionID == r.InstitutionID && q.onDuty(d, now) {
			t.OnDuty++
		}
	}
	// Each on-duty mediator takes a request in about the recent time to
	// accept; with none on duty, the request will escalate.
	per := q.avgWait
	wait := time.Duration(t.Position) * per / time.Duration(max(1, t.OnDuty))
	if t.OnDuty == 0 {
		wait = max(wait, q.p.EscalateAfter)
	}
	t.ExpectedWaitSeconds = int(wait.Seconds())
	return t
}

// CheckInvariants verifies the queue's invariants: each open request is
// offered to at most one mediator, each mediator holds at most one
// offer, and the two agree. The contract tests call it while the queue
// works; an operator's diagnostics may too.
func (q *Queue) CheckInvariants() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.checkInvariantsLocked()
}

func (q *Queue) checkInvariantsLocked() error {
	holders := map[string]string{}
	for id, d := range q.duties {
		if d.offer == nil {
			continue
		}
		if other, dup := holders[d.offer.ID]; dup {
			return Errorf(EINTERNAL, "request %s offered to %s and %s at once", d.offer.ID, other, id)
		}
		holders[d.offer.ID] = id
		if d.offer.OfferedTo != id {
			return Errorf(EINTERNAL, "mediator %s holds request %s, offered to %q", id, d.offer.ID, d.offer.OfferedTo)
		}
		if q.requests[d.offer.ID] != d.offer {
			return Errorf(EINTERNAL, "mediator %s holds request %s, which is not open", id, d.offer.ID)
		}
		if d.active > q.p.MaxLoad {
			return Errorf(EINTERNAL, "mediator %s runs %d rooms", id, d.active)
		}
	}
	for id, r := range q.requests {
		if r.OfferedTo != "" && holders[id] != r.OfferedTo {
			return Errorf(EINTERNAL, "request %s says it is offered to %s, who does not hold it", id, r.OfferedTo)
		}
		if (r.OfferedTo != "") != (r.Status == QueueOffered) {
			return Errorf(EINTERNAL, "request %s is %s with offeredTo %q", id, r.Status, r.OfferedTo)
		}
	}
	return nil
}

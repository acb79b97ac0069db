package cases

import (
	"encoding/json"
	"slices"
	"strings"
	"time"
)

// queueSnapshot is what the queue keeps of itself across a move to another
// node: the requests open and recently ended, the mediators' presence,
// load and offers, and the recent time to accept.
type queueSnapshot struct {
	Requests []snapshotRequest `json:"requests"`
	Ended    []QueueRequest    `json:"ended"` // oldest first
	Duties   []snapshotDuty    `json:"duties"`
	Sessions map[string]string `json:"sessions"` // session -> mediator
	AvgWait  time.Duration     `json:"avgWait"`
}

type snapshotRequest struct {
	QueueRequest
	Passed []string `json:"passed,omitempty"`
}

type snapshotDuty struct {
	Mediator  Mediator  `json:"mediator"`
	Shifts    []Shift   `json:"shifts"`
	Seen      time.Time `json:"seen"`
	Available bool      `json:"available"`
	Active    int       `json:"active"`
	Offer     string    `json:"offer,omitempty"` // the request it holds
	LastGot   time.Time `json:"lastGot"`
	Sessions  []string  `json:"sessions,omitempty"`
}

// Snapshot encodes the queue's state for Restore on the node that runs
// the queue next. An accept in progress is kept as the offer it was. The
// same state always encodes the same, so that a caller can tell a change.
func (q *Queue) Snapshot() []byte {
	q.mu.Lock()
	defer q.mu.Unlock()
	s := queueSnapshot{Sessions: q.sessions, AvgWait: q.avgWait}
	for _, r := range q.requests {
		sr := snapshotRequest{QueueRequest: *r}
		sr.passed, sr.accepting = nil, false
		for id := range r.passed {
			sr.Passed = append(sr.Passed, id)
		}
		slices.Sort(sr.Passed)
		s.Requests = append(s.Requests, sr)
	}
	slices.SortFunc(s.Requests, func(a, b snapshotRequest) int { return strings.Compare(a.ID, b.ID) })
	for _, id := range q.endedOrder {
		if r := q.ended[id]; r != nil {
			c := *r
			c.passed, c.accepting = nil, false
			s.Ended = append(s.Ended, c)
		}
	}
	for _, d := range q.duties {
		sd := snapshotDuty{Mediator: d.m, Shifts: d.shifts, Seen: d.seen, Available: d.avail, Active: d.active, LastGot: d.lastGot}
		if d.offer != nil {
			sd.Offer = d.offer.ID
		}
		for id := range d.sessions {
			sd.Sessions = append(sd.Sessions, id)
		}
		slices.Sort(sd.Sessions)
		s.Duties = append(s.Duties, sd)
	}
	slices.SortFunc(s.Duties, func(a, b snapshotDuty) int { return strings.Compare(a.Mediator.ID, b.Mediator.ID) })
	b, _ := json.Marshal(s) // maps, strings, times and numbers: it cannot fail
	return b
}

// Restore replaces the queue's state with a Snapshot taken on another
// node. It refuses a snapshot whose offers do not hold together (see
// CheckInvariants), leaving the queue as it was.
func (q *Queue) Restore(data []byte) error {
	var s queueSnapshot
	if err := json.Unmarshal(data, &s); err != nil {
		return Errorf(EINVALID, "queue snapshot: %v", err)
	}
	requests := map[string]*QueueRequest{}
	byCase := map[string]string{}
	for _, sr := range s.Requests {
		r := sr.QueueRequest
		if r.ID == "" || requests[r.ID] != nil || byCase[r.CaseID] != "" {
			return Errorf(EINVALID, "queue snapshot: request %q missing an id or twice", r.ID)
		}
		r.passed = map[string]bool{}
		for _, id := range sr.Passed {
			r.passed[id] = true
		}
		requests[r.ID] = &r
		byCase[r.CaseID] = r.ID
	}
	duties := map[string]*duty{}
	for _, sd := range s.Duties {
		if sd.Mediator.ID == "" || duties[sd.Mediator.ID] != nil {
			return Errorf(EINVALID, "queue snapshot: mediator %q missing an id or twice", sd.Mediator.ID)
		}
		d := &duty{m: sd.Mediator, shifts: sd.Shifts, seen: sd.Seen, avail: sd.Available, active: sd.Active,
			lastGot: sd.LastGot, sessions: map[string]bool{}}
		if sd.Offer != "" {
			d.offer = requests[sd.Offer]
			if d.offer == nil {
				return Errorf(EINVALID, "queue snapshot: mediator %s holds request %s, which is not open", sd.Mediator.ID, sd.Offer)
			}
		}
		for _, id := range sd.Sessions {
			d.sessions[id] = true
		}
		duties[sd.Mediator.ID] = d
	}
	ended := map[string]*QueueRequest{}
	var endedOrder []string
	for _, r := range s.Ended {
		if r.ID == "" || ended[r.ID] != nil {
			continue
		}
		ended[r.ID] = &r
		endedOrder = append(endedOrder, r.ID)
	}
	if s.Sessions == nil {
		s.Sessions = map[string]string{}
	}
	if s.AvgWait <= 0 {
		s.AvgWait = 2 * time.Minute
	}

	// The offers must hold together before the queue takes them.
	check := &Queue{p: q.p, requests: requests, duties: duties}
	if err := check.checkInvariantsLocked(); err != nil {
		return Errorf(EINVALID, "queue snapshot: %s", ErrorMessage(err))
	}
	q.mu.Lock()
	q.requests, q.byCase, q.duties, q.sessions, q.avgWait = requests, byCase, duties, s.Sessions, s.AvgWait
	q.ended, q.endedOrder = ended, endedOrder
	q.insts, q.instsAt = nil, time.Time{}
	q.mu.Unlock()
	return nil
}

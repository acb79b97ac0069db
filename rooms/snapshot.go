package rooms

import (
	"encoding/json"
	"errors"
	"fmt"
)

// snapshot is what a room keeps of itself across a restart on another
// node: who is known, admitted, consented, muted, let into caucuses or
// attached to a side, the mode and the lock. Who is present is not kept:
// participants are absent until they join again.
type snapshot struct {
	Kind    Kind             `json:"kind"`
	Mode    Mode             `json:"mode"`
	Locked  bool             `json:"locked,omitempty"`
	Members []snapshotMember `json:"members"`
}

type snapshotMember struct {
	ID           string `json:"id"`
	Name         string `json:"name,omitempty"`
	Role         Role   `json:"role"`
	Side         Side   `json:"side"`
	State        string `json:"state"`
	Consented    bool   `json:"consented,omitempty"`
	IDChecked    bool   `json:"idChecked,omitempty"`
	Muted        bool   `json:"muted,omitempty"`
	CaucusGuest  bool   `json:"caucusGuest,omitempty"`
	AttachedSide Side   `json:"attachedSide,omitempty"`
}

// ErrBadSnapshot is returned by Restore for a snapshot it cannot trust.
var ErrBadSnapshot = errors.New("rooms: bad snapshot")

// Snapshot encodes the room's state for Restore, in join order.
func (r *Room) Snapshot() []byte {
	s := snapshot{Kind: r.kind, Mode: r.mode, Locked: r.locked, Members: make([]snapshotMember, 0, len(r.order))}
	for _, id := range r.order {
		m := r.members[id]
		s.Members = append(s.Members, snapshotMember{ID: id, Name: m.Name, Role: m.Role, Side: m.Side, State: m.state,
			Consented: m.consented, IDChecked: m.idChecked, Muted: m.muted, CaucusGuest: m.caucusGuest, AttachedSide: m.attachedSide})
	}
	b, _ := json.Marshal(s) // plain strings and bools: it cannot fail
	return b
}

// Restore rebuilds a room from Snapshot's encoding, everyone absent. It
// checks what it reads as Join and the mediator actions would have, so
// that a damaged snapshot cannot make a room no action could have made.
func Restore(data []byte) (*Room, error) {
	var s snapshot
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSnapshot, err)
	}
	if s.Kind != Mediated && s.Kind != Unmediated {
		return nil, fmt.Errorf("%w: kind %d", ErrBadSnapshot, s.Kind)
	}
	if s.Mode.Caucus && s.Mode.Side != Applicant && s.Mode.Side != Respondent || !s.Mode.Caucus && s.Mode.Side != "" {
		return nil, fmt.Errorf("%w: mode %+v", ErrBadSnapshot, s.Mode)
	}
	if s.Kind == Unmediated && (s.Mode.Caucus || s.Locked) {
		return nil, fmt.Errorf("%w: a room without a mediator in caucus or locked", ErrBadSnapshot)
	}
	r := NewKind(s.Kind)
	r.mode, r.locked = s.Mode, s.Locked
	for _, sm := range s.Members {
		p := Participant{ID: sm.ID, Name: sm.Name, Role: sm.Role, Side: sm.Side}
		switch {
		case p.ID == "" || !validRole(p.Role) || !validSide(p.Side):
			return nil, fmt.Errorf("%w: participant %q", ErrBadSnapshot, p.ID)
		case r.members[p.ID] != nil:
			return nil, fmt.Errorf("%w: participant %q twice", ErrBadSnapshot, p.ID)
		case sm.State != StateWaiting && sm.State != StateAdmitted && sm.State != StateRemoved:
			return nil, fmt.Errorf("%w: participant %q in state %q", ErrBadSnapshot, p.ID, sm.State)
		case s.Kind == Unmediated && IsMediator(p.Role):
			return nil, fmt.Errorf("%w: a mediator in a room without one", ErrBadSnapshot)
		case sm.CaucusGuest && p.Side != Neutral:
			return nil, fmt.Errorf("%w: %q let into caucuses but not neutral", ErrBadSnapshot, p.ID)
		case sm.AttachedSide != "" && (p.Role != Interpreter || sm.AttachedSide != Applicant && sm.AttachedSide != Respondent):
			return nil, fmt.Errorf("%w: %q attached to %q", ErrBadSnapshot, p.ID, sm.AttachedSide)
		}
		r.members[p.ID] = &member{Participant: p, state: sm.State, consented: sm.Consented, idChecked: sm.IDChecked,
			muted: sm.Muted, caucusGuest: sm.CaucusGuest, attachedSide: sm.AttachedSide}
		r.order = append(r.order, p.ID)
	}
	return r, nil
}

// Package rooms holds the state of one mediation room (who is present,
// their roles and sides, and the room's mode) and answers the one question
// media forwarding depends on: may subscriber S receive publisher P?
//
// It does no I/O. Every change returns the exact subscription changes that
// follow from it, which the media layer applies. The answer is deny by
// default: anyone unknown, absent or not yet admitted receives nothing and
// is received by no one.
package rooms

import (
	"errors"
	"slices"
)

// Role is what a participant does in the room.
type Role string

// Roles.
const (
	Mediator Role = "mediator"
	Party    Role = "party"
)

// Side is the party a participant belongs to.
type Side string

// Sides.
const (
	Applicant  Side = "applicant"
	Respondent Side = "respondent"
	Neutral    Side = "neutral"
)

// Participant is one person known to the room.
type Participant struct {
	ID   string
	Name string
	Role Role
	Side Side
}

// Mode is the room's arrangement: a joint session, or a caucus in which
// the mediators speak with one side alone.
type Mode struct {
	Caucus bool
	Side   Side // the side in caucus when Caucus is set
}

// Joint is the mode in which everyone present receives everyone.
var Joint = Mode{}

// Change is one subscription to open (Allow) or close.
type Change struct {
	Subscriber string
	Publisher  string
	Allow      bool
}

// Errors.
var (
	ErrUnknownParticipant = errors.New("rooms: unknown participant")
	ErrInvalidParticipant = errors.New("rooms: participant needs an id, a known role and a known side")
	ErrInvalidMode        = errors.New("rooms: a caucus needs an applicant or respondent side")
)

type member struct {
	Participant
	present bool
}

// Room is the state of one room. It is not safe for concurrent use; its
// owner serialises calls.
type Room struct {
	members map[string]*member
	order   []string // join order, for stable output
	mode    Mode
}

// New returns an empty room in joint mode.
func New() *Room { return &Room{members: map[string]*member{}} }

// Mode returns the room's mode.
func (r *Room) Mode() Mode { return r.mode }

// Participant returns a known participant and whether it is present.
func (r *Room) Participant(id string) (Participant, bool, bool) {
	m, ok := r.members[id]
	if !ok {
		return Participant{}, false, false
	}
	return m.Participant, m.present, true
}

// Present lists the present participants in join order.
func (r *Room) Present() []Participant {
	var out []Participant
	for _, id := range r.order {
		if m := r.members[id]; m.present {
			out = append(out, m.Participant)
		}
	}
	return out
}

// MayReceive reports whether sub may receive pub's media, chat and
// events about what pub says or shows.
func (r *Room) MayReceive(sub, pub string) bool {
	if sub == pub {
		return false
	}
	s, ok1 := r.members[sub]
	p, ok2 := r.members[pub]
	if !ok1 || !ok2 || !s.present || !p.present {
		return false
	}
	if !r.mode.Caucus {
		return true
	}
	sIn, pIn := r.inCaucus(s), r.inCaucus(p)
	switch {
	case sIn && pIn:
		return true
	case sIn || pIn:
		return false
	default:
		// Both wait outside: people of one side may still talk together.
		return s.Side == p.Side && s.Side != Neutral
	}
}

func (r *Room) inCaucus(m *member) bool {
	return m.Role == Mediator || m.Side == r.mode.Side
}

// Join marks p present (adding or updating it) and returns the
// subscriptions that opens.
func (r *Room) Join(p Participant) ([]Change, error) {
	if p.ID == "" || !validRole(p.Role) || !validSide(p.Side) {
		return nil, ErrInvalidParticipant
	}
	return r.diff(func() {
		m, ok := r.members[p.ID]
		if !ok {
			m = &member{}
			r.members[p.ID] = m
			r.order = append(r.order, p.ID)
		}
		m.Participant = p
		m.present = true
	}), nil
}

// Leave marks a participant absent and returns the subscriptions that
// closes.
func (r *Room) Leave(id string) ([]Change, error) {
	m, ok := r.members[id]
	if !ok {
		return nil, ErrUnknownParticipant
	}
	return r.diff(func() { m.present = false }), nil
}

// SetMode changes the room's mode and returns the subscription changes.
func (r *Room) SetMode(mode Mode) ([]Change, error) {
	if mode.Caucus && mode.Side != Applicant && mode.Side != Respondent {
		return nil, ErrInvalidMode
	}
	if !mode.Caucus {
		mode = Joint
	}
	return r.diff(func() { r.mode = mode }), nil
}

// diff applies change and returns how MayReceive moved for every pair.
func (r *Room) diff(change func()) []Change {
	before := r.matrix()
	change()
	after := r.matrix()
	var out []Change
	for _, s := range r.order {
		for _, p := range r.order {
			k := [2]string{s, p}
			if before[k] != after[k] {
				out = append(out, Change{Subscriber: s, Publisher: p, Allow: after[k]})
			}
		}
	}
	return out
}

func (r *Room) matrix() map[[2]string]bool {
	m := make(map[[2]string]bool, len(r.order)*len(r.order))
	for _, s := range r.order {
		for _, p := range r.order {
			if r.MayReceive(s, p) {
				m[[2]string{s, p}] = true
			}
		}
	}
	return m
}

// Receivers lists who may currently receive pub, in join order.
func (r *Room) Receivers(pub string) []string {
	var out []string
	for _, s := range r.order {
		if r.MayReceive(s, pub) {
			out = append(out, s)
		}
	}
	return out
}

func validRole(r Role) bool { return slices.Contains([]Role{Mediator, Party}, r) }

func validSide(s Side) bool { return slices.Contains([]Side{Applicant, Respondent, Neutral}, s) }

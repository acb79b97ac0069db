// Package rooms holds the state of one mediation room (who is present,
// their roles and sides, the lobby, the room's mode) and answers the one
// question media forwarding depends on: may subscriber S receive
// publisher P's source (audio, video, screen)?
//
// It does no I/O. Every action returns the exact subscription changes
// that follow from it, which the media layer applies. The answer is deny
// by default: anyone unknown, absent, waiting in the lobby or removed
// receives nothing and is received by no one.
package rooms

import (
	"errors"
	"slices"
)

// Role is what a participant does in the room.
type Role string

// Roles.
const (
	Mediator    Role = "mediator"
	CoMediator  Role = "co_mediator"
	Party       Role = "party"
	Agent       Role = "agent" // a party's agent or lawyer
	Interpreter Role = "interpreter"
	Observer    Role = "observer" // trainee or supervisor: receives, never heard
)

// Side is the party a participant belongs to.
type Side string

// Sides.
const (
	Applicant  Side = "applicant"
	Respondent Side = "respondent"
	Neutral    Side = "neutral"
)

// Source is one kind of media a participant publishes.
type Source string

// Sources. Chat follows SourceVideo's visibility but ignores mute.
const (
	Audio  Source = "audio"
	Video  Source = "video"
	Screen Source = "screen"
)

// Sources lists every source, in a fixed order.
var Sources = []Source{Audio, Video, Screen}

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
	Caucus bool `json:"caucus"`
	Side   Side `json:"side,omitempty"` // the side in caucus when Caucus is set
}

// Joint is the mode in which everyone admitted receives everyone.
var Joint = Mode{}

// Change is one subscription to open (Allow) or close.
type Change struct {
	Subscriber string
	Publisher  string
	Source     Source
	Allow      bool
}

// Errors. ErrUnknownParticipant is also the answer when the actor may not
// know of the participant.
var (
	ErrUnknownParticipant = errors.New("rooms: unknown participant")
	ErrInvalidParticipant = errors.New("rooms: participant needs an id, a known role and a known side")
	ErrInvalidMode        = errors.New("rooms: a caucus needs an applicant or respondent side")
	ErrNotAllowed         = errors.New("rooms: only a mediator may do that")
	ErrLocked             = errors.New("rooms: the room is locked")
	ErrRemoved            = errors.New("rooms: the participant was removed from this session")
	ErrNoConsent          = errors.New("rooms: the participant has not accepted the session rules")
	ErrNotNeutral         = errors.New("rooms: only a neutral participant can be let into a caucus")
	ErrNotInterpreter     = errors.New("rooms: only an interpreter can be attached to a side")
	ErrNoMediator         = errors.New("rooms: a room without a mediator has no mediator actions")
)

// Kind is how a room is run.
type Kind int

// Kinds.
const (
	// Mediated: a mediator runs the room; newcomers wait in its lobby.
	Mediated Kind = iota
	// Unmediated: the parties alone (a reconciliation between the
	// applicant and the merchant). No mediator joins, a participant is
	// admitted as soon as it accepts the session rules, the mode stays
	// joint, and every mediator action is refused with ErrNoMediator.
	Unmediated
)

// Lobby states of a participant.
const (
	StateWaiting  = "waiting"  // in the lobby
	StateAdmitted = "admitted" // in the room
	StateRemoved  = "removed"  // denied or removed; cannot come back
)

type member struct {
	Participant
	present      bool
	state        string
	consented    bool
	checking     bool // an identity check on video is in progress
	idChecked    bool
	muted        bool // audio muted by a mediator
	caucusGuest  bool // a neutral let into caucuses by a mediator
	attachedSide Side // an interpreter's side
}

// Room is the state of one room. It is not safe for concurrent use; its
// owner serialises calls.
type Room struct {
	kind    Kind
	members map[string]*member
	order   []string // join order, for stable output
	mode    Mode
	locked  bool
}

// New returns an empty mediated room in joint mode.
func New() *Room { return NewKind(Mediated) }

// NewKind returns an empty room of kind k in joint mode.
func NewKind(k Kind) *Room { return &Room{kind: k, members: map[string]*member{}} }

// Kind returns how the room is run.
func (r *Room) Kind() Kind { return r.kind }

// Mode returns the room's mode.
func (r *Room) Mode() Mode { return r.mode }

// Locked reports whether the room takes no newcomers.
func (r *Room) Locked() bool { return r.locked }

// Participant returns a known participant and whether it is present.
func (r *Room) Participant(id string) (Participant, bool, bool) {
	m, ok := r.members[id]
	if !ok {
		return Participant{}, false, false
	}
	return m.Participant, m.present, true
}

// Admitted reports whether a participant has been let into the room.
func (r *Room) Admitted(id string) bool {
	m, ok := r.members[id]
	return ok && m.state == StateAdmitted
}

// IsMediator reports whether role runs the room.
func IsMediator(role Role) bool { return role == Mediator || role == CoMediator }

// MayReceive reports whether sub may receive pub's source.
func (r *Room) MayReceive(sub, pub string, src Source) bool {
	if sub == pub {
		return false
	}
	s, ok1 := r.members[sub]
	p, ok2 := r.members[pub]
	if !ok1 || !ok2 || !s.present || !p.present {
		return false
	}
	if p.Role == Observer {
		return false
	}
	if src == Audio && p.muted {
		return false
	}
	// During an identity check the mediators see and hear the waiting
	// participant. Nothing flows the other way: the mediators' media may be
	// in a caucus or a joint session the newcomer must not receive yet.
	if p.checking && IsMediator(s.Role) && r.active(s) {
		return true
	}
	if !r.active(s) || !r.active(p) {
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
		return r.side(s) == r.side(p) && r.side(s) != Neutral
	}
}

// MayChat reports whether sub may receive pub's chat messages: the same
// visibility as video, whatever mute says.
func (r *Room) MayChat(sub, pub string) bool { return r.MayReceive(sub, pub, Video) }

func (r *Room) active(m *member) bool {
	return m.present && m.state == StateAdmitted && m.consented
}

// side is the side a participant belongs to for caucuses: an
// interpreter follows the side it is attached to.
func (r *Room) side(m *member) Side {
	if m.Role == Interpreter && m.attachedSide != "" {
		return m.attachedSide
	}
	return m.Side
}

func (r *Room) inCaucus(m *member) bool {
	if IsMediator(m.Role) {
		return true
	}
	side := r.side(m)
	return side == r.mode.Side || side == Neutral && m.caucusGuest
}

// InCaucus reports whether participant id takes part in the current
// caucus (false in joint mode).
func (r *Room) InCaucus(id string) bool {
	m, ok := r.members[id]
	return ok && r.mode.Caucus && r.inCaucus(m)
}

// Join marks p present and returns the subscriptions that opens.
// Mediators enter directly; everyone else waits in the lobby until
// admitted, unless admitted before (a reconnect).
func (r *Room) Join(p Participant) ([]Change, error) {
	if p.ID == "" || !validRole(p.Role) || !validSide(p.Side) {
		return nil, ErrInvalidParticipant
	}
	if r.kind == Unmediated && IsMediator(p.Role) {
		return nil, ErrNoMediator
	}
	m, known := r.members[p.ID]
	if known && m.state == StateRemoved {
		return nil, ErrRemoved
	}
	if r.locked && (!known || m.state != StateAdmitted) && !IsMediator(p.Role) {
		return nil, ErrLocked
	}
	return r.diffOne(p.ID, func() {
		if !known {
			m = &member{state: StateWaiting}
			r.members[p.ID] = m
			r.order = append(r.order, p.ID)
		}
		m.Participant = p
		m.present = true
		if IsMediator(p.Role) {
			m.state = StateAdmitted
			m.consented = true
		}
	}), nil
}

// Leave marks a participant absent and returns the subscriptions that
// closes. Its admission is kept for when it comes back.
func (r *Room) Leave(id string) ([]Change, error) {
	m, ok := r.members[id]
	if !ok {
		return nil, ErrUnknownParticipant
	}
	return r.diffOne(id, func() { m.present = false; m.checking = false }), nil
}

// Consent records that a participant accepted the session rules. In an
// unmediated room it also admits the participant.
func (r *Room) Consent(id string) ([]Change, error) {
	m, ok := r.members[id]
	if !ok {
		return nil, ErrUnknownParticipant
	}
	return r.diffOne(id, func() {
		m.consented = true
		if r.kind == Unmediated && m.state == StateWaiting {
			m.state = StateAdmitted
		}
	}), nil
}

// mediatorAndTarget checks that by may run the room and that id exists.
func (r *Room) mediatorAndTarget(by, id string) (*member, error) {
	if r.kind == Unmediated {
		return nil, ErrNoMediator
	}
	b, ok := r.members[by]
	if !ok || !IsMediator(b.Role) || !b.present {
		return nil, ErrNotAllowed
	}
	m, ok := r.members[id]
	if !ok {
		return nil, ErrUnknownParticipant
	}
	return m, nil
}

// Authorize checks that by may run the room and that id is known.
func (r *Room) Authorize(by, id string) error {
	_, err := r.mediatorAndTarget(by, id)
	return err
}

// Admit lets a waiting participant in. It must have consented.
func (r *Room) Admit(by, id string) ([]Change, error) {
	m, err := r.mediatorAndTarget(by, id)
	if err != nil {
		return nil, err
	}
	switch {
	case m.state == StateRemoved:
		return nil, ErrRemoved
	case !m.consented:
		return nil, ErrNoConsent
	}
	return r.diffOne(id, func() { m.state = StateAdmitted; m.checking = false }), nil
}

// AdmitAll admits every present, consenting participant in the lobby and
// returns their ids.
func (r *Room) AdmitAll(by string) ([]string, []Change, error) {
	if _, err := r.mediatorAndTarget(by, by); err != nil {
		return nil, nil, err
	}
	var ids []string
	ch := r.diff(func() {
		for _, id := range r.order {
			m := r.members[id]
			if m.present && m.state == StateWaiting && m.consented {
				m.state = StateAdmitted
				m.checking = false
				ids = append(ids, id)
			}
		}
	})
	return ids, ch, nil
}

// Remove denies a waiting participant or removes an admitted one; it
// cannot come back into this session.
func (r *Room) Remove(by, id string) ([]Change, error) {
	m, err := r.mediatorAndTarget(by, id)
	if err != nil {
		return nil, err
	}
	if IsMediator(m.Role) && m.Role == Mediator {
		return nil, ErrNotAllowed
	}
	return r.diffOne(id, func() { m.state = StateRemoved; m.checking = false }), nil
}

// CheckIdentity starts (or stops) a video identity check of a waiting
// participant: the mediators see and hear it while it is still in the
// lobby (they speak to it through signaling messages, not media).
func (r *Room) CheckIdentity(by, id string, on bool) ([]Change, error) {
	m, err := r.mediatorAndTarget(by, id)
	if err != nil {
		return nil, err
	}
	if on && (m.state != StateWaiting || !m.present) {
		return nil, ErrUnknownParticipant
	}
	return r.diffOne(id, func() { m.checking = on }), nil
}

// MarkIdentityChecked records that a mediator checked a participant's
// identity.
func (r *Room) MarkIdentityChecked(by, id string) error {
	m, err := r.mediatorAndTarget(by, id)
	if err != nil {
		return err
	}
	m.idChecked = true
	return nil
}

// SetMode changes the room's mode and returns the subscription changes.
func (r *Room) SetMode(by string, mode Mode) ([]Change, error) {
	if _, err := r.mediatorAndTarget(by, by); err != nil {
		return nil, err
	}
	if mode.Caucus && mode.Side != Applicant && mode.Side != Respondent {
		return nil, ErrInvalidMode
	}
	if !mode.Caucus {
		mode = Joint
	}
	return r.diff(func() { r.mode = mode }), nil
}

// LetIntoCaucus lets a neutral participant (an observer, a neutral
// interpreter) follow the mediators into caucuses, or not.
func (r *Room) LetIntoCaucus(by, id string, allow bool) ([]Change, error) {
	m, err := r.mediatorAndTarget(by, id)
	if err != nil {
		return nil, err
	}
	if r.side(m) != Neutral || IsMediator(m.Role) {
		return nil, ErrNotNeutral
	}
	return r.diffOne(id, func() { m.caucusGuest = allow }), nil
}

// AttachInterpreter attaches an interpreter to a side, which it then
// follows into and out of caucuses. Neutral detaches it.
func (r *Room) AttachInterpreter(by, id string, side Side) ([]Change, error) {
	m, err := r.mediatorAndTarget(by, id)
	if err != nil {
		return nil, err
	}
	if m.Role != Interpreter {
		return nil, ErrNotInterpreter
	}
	if !validSide(side) {
		return nil, ErrInvalidParticipant
	}
	return r.diffOne(id, func() {
		m.attachedSide = side
		if side == Neutral {
			m.attachedSide = ""
		}
	}), nil
}

// Mute stops a participant's audio reaching anyone; only the participant
// itself can unmute.
func (r *Room) Mute(by, id string) ([]Change, error) {
	m, err := r.mediatorAndTarget(by, id)
	if err != nil {
		return nil, err
	}
	return r.diffOne(id, func() { m.muted = true }), nil
}

// Unmute lets a participant's audio through again; a participant unmutes
// itself.
func (r *Room) Unmute(id string) ([]Change, error) {
	m, ok := r.members[id]
	if !ok {
		return nil, ErrUnknownParticipant
	}
	return r.diffOne(id, func() { m.muted = false }), nil
}

// Lock closes (or reopens) the room to newcomers; those admitted before
// can still reconnect.
func (r *Room) Lock(by string, locked bool) error {
	if _, err := r.mediatorAndTarget(by, by); err != nil {
		return err
	}
	r.locked = locked
	return nil
}

// View is what one participant may know of the room.
type View struct {
	// Unmediated is set in a room without a mediator (a reconciliation).
	Unmediated   bool         `json:"unmediated,omitempty"`
	Mode         Mode         `json:"mode"`
	InCaucus     bool         `json:"inCaucus"` // the viewer takes part in the current caucus
	Locked       bool         `json:"locked"`
	Self         MemberView   `json:"self"`
	Participants []MemberView `json:"participants"`
}

// MemberView is one participant as a viewer sees it.
type MemberView struct {
	ID              string `json:"id"`
	Name            string `json:"name"`
	Role            Role   `json:"role"`
	Side            Side   `json:"side"`
	Present         bool   `json:"present"`
	State           string `json:"state"`
	Consented       bool   `json:"consented"`
	Muted           bool   `json:"muted"`
	IdentityChecked bool   `json:"identityChecked,omitempty"`
	Checking        bool   `json:"checking,omitempty"`
	InCaucus        bool   `json:"inCaucus,omitempty"`
	AttachedSide    Side   `json:"attachedSide,omitempty"`
	CaucusGuest     bool   `json:"caucusGuest,omitempty"`
}

// ViewFor returns what viewer may know: mediators see everything,
// including the lobby; others see the admitted participants. Who is in a
// caucus is shown to its members and to mediators only.
func (r *Room) ViewFor(viewer string) (View, bool) {
	var lists viewLists
	return r.viewFor(viewer, &lists)
}

// Views returns ViewFor of each of viewers that is a member. Viewers who
// see the same participants (the mediators; the others in the caucus;
// everyone else) share one list, so telling a room of n people about a
// change builds three lists, not n: the lists must not be modified.
func (r *Room) Views(viewers []string) map[string]View {
	out := make(map[string]View, len(viewers))
	var lists viewLists
	for _, id := range viewers {
		if v, ok := r.viewFor(id, &lists); ok {
			out[id] = v
		}
	}
	return out
}

// viewLists are the participant lists of one moment, built on first use:
// everyone with caucus membership shown (mediators), admitted members
// with it shown (the caucus's own) and without.
type viewLists struct {
	all, admittedCaucus, admitted []MemberView
	built                         [3]bool
}

func (r *Room) viewFor(viewer string, lists *viewLists) (View, bool) {
	v, ok := r.members[viewer]
	if !ok {
		return View{}, false
	}
	med := IsMediator(v.Role)
	inCaucus := r.InCaucus(viewer)
	out := View{Unmediated: r.kind == Unmediated, Mode: r.mode, Locked: r.locked, Self: r.memberView(v, med || inCaucus), InCaucus: inCaucus}
	var list *[]MemberView
	var k int
	switch {
	case med:
		list, k = &lists.all, 0
	case inCaucus:
		list, k = &lists.admittedCaucus, 1
	default:
		list, k = &lists.admitted, 2
	}
	if !lists.built[k] {
		lists.built[k] = true
		*list = make([]MemberView, 0, len(r.order))
		for _, id := range r.order {
			m := r.members[id]
			if !med && m.state != StateAdmitted {
				continue
			}
			*list = append(*list, r.memberView(m, med || inCaucus))
		}
	}
	out.Participants = *list
	return out, true
}

func (r *Room) memberView(m *member, showCaucus bool) MemberView {
	mv := MemberView{
		ID: m.ID, Name: m.Name, Role: m.Role, Side: m.Side, Present: m.present, State: m.state,
		Consented: m.consented, Muted: m.muted, IdentityChecked: m.idChecked, Checking: m.checking,
		AttachedSide: m.attachedSide, CaucusGuest: m.caucusGuest,
	}
	if showCaucus {
		mv.InCaucus = r.InCaucus(m.ID)
	}
	return mv
}

// diff applies change and returns how MayReceive moved for every pair
// and source.
func (r *Room) diff(change func()) []Change {
	before := r.matrix()
	change()
	after := r.matrix()
	var out []Change
	for i, s := range after.order {
		for j, p := range after.order {
			for k, src := range Sources {
				if allow := after.at(i, j, k); before.get(s, p, k) != allow {
					out = append(out, Change{Subscriber: s, Publisher: p, Source: src, Allow: allow})
				}
			}
		}
	}
	return out
}

// diffOne is diff for a change to participant id alone. What one member
// sends and receives depends only on its own state, the other member's and
// the mode, so only id's row and column can change: O(n) where diff is
// O(n²) (a reconnect in a 74-person room). Its output is in diff's order.
func (r *Room) diffOne(id string, change func()) []Change {
	type entry struct{ recv, send [3]bool } // id receives p; p receives id
	line := func() map[string]entry {
		out := make(map[string]entry, len(r.order))
		if _, ok := r.members[id]; !ok {
			return out
		}
		for _, p := range r.order {
			var e entry
			for k, src := range Sources {
				e.recv[k] = r.MayReceive(id, p, src)
				e.send[k] = r.MayReceive(p, id, src)
			}
			out[p] = e
		}
		return out
	}
	before := line()
	change()
	after := line()
	var out []Change
	add := func(s, p string, k int, was, now bool) {
		if was != now {
			out = append(out, Change{Subscriber: s, Publisher: p, Source: Sources[k], Allow: now})
		}
	}
	for _, s := range r.order {
		if s == id {
			for _, p := range r.order {
				for k := range Sources {
					add(id, p, k, before[p].recv[k], after[p].recv[k])
				}
			}
			continue
		}
		for k := range Sources {
			add(s, id, k, before[s].send[k], after[s].send[k])
		}
	}
	return out
}

// matrix is MayReceive for every subscriber, publisher and source, at
// one moment: a bit per triple, indexed by join order. A diff of a
// 74-person room takes 16 KB where a map of the triples took 2 MB.
type matrix struct {
	order []string
	index map[string]int
	bits  []uint64
}

func (r *Room) matrix() matrix {
	n := len(r.order)
	m := matrix{
		order: slices.Clone(r.order),
		index: make(map[string]int, n),
		bits:  make([]uint64, (n*n*len(Sources)+63)/64),
	}
	for i, id := range r.order {
		m.index[id] = i
	}
	for i, s := range r.order {
		for j, p := range r.order {
			for k, src := range Sources {
				if r.MayReceive(s, p, src) {
					b := (i*n+j)*len(Sources) + k
					m.bits[b/64] |= 1 << (b % 64)
				}
			}
		}
	}
	return m
}

// at is the entry of subscriber i, publisher j and source k by index.
func (m matrix) at(i, j, k int) bool {
	b := (i*len(m.order)+j)*len(Sources) + k
	return m.bits[b/64]&(1<<(b%64)) != 0
}

// get is the entry of subscriber s, publisher p and source k; false for
// someone not in the room then.
func (m matrix) get(s, p string, k int) bool {
	i, ok := m.index[s]
	j, ok2 := m.index[p]
	return ok && ok2 && m.at(i, j, k)
}

// Receivers lists who may currently receive pub's source, in join order.
func (r *Room) Receivers(pub string, src Source) []string {
	var out []string
	for _, s := range r.order {
		if r.MayReceive(s, pub, src) {
			out = append(out, s)
		}
	}
	return out
}

func validRole(r Role) bool {
	return slices.Contains([]Role{Mediator, CoMediator, Party, Agent, Interpreter, Observer}, r)
}

func validSide(s Side) bool { return slices.Contains([]Side{Applicant, Respondent, Neutral}, s) }

package rooms

import (
	"go/build"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

var (
	med    = Participant{ID: "m", Name: "Mediator", Role: Mediator, Side: Neutral}
	comed  = Participant{ID: "m2", Name: "Co-mediator", Role: CoMediator, Side: Neutral}
	cons   = Participant{ID: "c", Name: "Consumer", Role: Party, Side: Applicant}
	rel    = Participant{ID: "r", Name: "Relative", Role: Party, Side: Applicant}
	merc   = Participant{ID: "x", Name: "Merchant", Role: Party, Side: Respondent}
	lawyer = Participant{ID: "l", Name: "Lawyer", Role: Agent, Side: Respondent}
	interp = Participant{ID: "i", Name: "Interpreter", Role: Interpreter, Side: Neutral}
	obs    = Participant{ID: "o", Name: "Trainee", Role: Observer, Side: Neutral}
)

// admitted builds a room where everyone has joined, consented and been
// admitted by the mediator.
func admitted(t *testing.T, ps ...Participant) *Room {
	t.Helper()
	r := New()
	enterAll(t, r, append([]Participant{med}, ps...))
	return r
}

// enterAll has each of ps join, consent and, unless a mediator, be
// admitted by the mediator "m".
func enterAll(tb testing.TB, r *Room, ps []Participant) {
	tb.Helper()
	for _, p := range ps {
		if _, err := r.Join(p); err != nil {
			tb.Fatal(err)
		}
		if _, err := r.Consent(p.ID); err != nil {
			tb.Fatal(err)
		}
		if !IsMediator(p.Role) {
			if _, err := r.Admit("m", p.ID); err != nil {
				tb.Fatal(err)
			}
		}
	}
}

func caucus(s Side) Mode { return Mode{Caucus: true, Side: s} }

func TestMayReceive(t *testing.T) {
	all := []Participant{comed, cons, rel, merc, lawyer, interp, obs}
	tests := []struct {
		name     string
		mode     Mode
		setup    func(r *Room)
		sub, pub string
		src      Source
		want     bool
	}{
		{"joint: party hears mediator", Joint, nil, "c", "m", Audio, true},
		{"joint: party sees other side", Joint, nil, "c", "x", Video, true},
		{"joint: screen share reaches all", Joint, nil, "x", "c", Screen, true},
		{"joint: not self", Joint, nil, "c", "c", Audio, false},
		{"joint: unknown subscriber", Joint, nil, "nobody", "m", Audio, false},
		{"joint: unknown publisher", Joint, nil, "c", "nobody", Audio, false},
		{"joint: observer receives", Joint, nil, "o", "c", Audio, true},
		{"joint: observer is never heard", Joint, nil, "c", "o", Audio, false},
		{"joint: observer is never seen", Joint, nil, "m", "o", Video, false},
		{"caucus A: mediator hears applicant", caucus(Applicant), nil, "m", "c", Audio, true},
		{"caucus A: co-mediator in caucus", caucus(Applicant), nil, "m2", "c", Audio, true},
		{"caucus A: applicant hears mediator", caucus(Applicant), nil, "c", "m", Audio, true},
		{"caucus A: respondent does not hear mediator", caucus(Applicant), nil, "x", "m", Audio, false},
		{"caucus A: respondent does not see applicant's screen", caucus(Applicant), nil, "x", "c", Screen, false},
		{"caucus A: lawyer does not hear applicant", caucus(Applicant), nil, "l", "c", Audio, false},
		{"caucus A: applicant does not hear respondent", caucus(Applicant), nil, "c", "x", Audio, false},
		{"caucus A: mediator does not hear respondent", caucus(Applicant), nil, "m", "x", Audio, false},
		{"caucus A: two applicants hear each other", caucus(Applicant), nil, "c", "r", Audio, true},
		{"caucus A: respondent and its lawyer talk while waiting", caucus(Applicant), nil, "x", "l", Audio, true},
		{"caucus A: neutral observer stays out by default", caucus(Applicant), nil, "o", "c", Audio, false},
		{"caucus A: observer let in receives", caucus(Applicant), func(r *Room) { r.LetIntoCaucus("m", "o", true) }, "o", "c", Audio, true},
		{"caucus A: unattached interpreter out", caucus(Applicant), nil, "i", "c", Audio, false},
		{"caucus A: interpreter attached to A follows", caucus(Applicant), func(r *Room) { r.AttachInterpreter("m", "i", Applicant) }, "c", "i", Audio, true},
		{"caucus B: interpreter attached to A waits with A", caucus(Respondent), func(r *Room) { r.AttachInterpreter("m", "i", Applicant) }, "c", "i", Audio, true},
		{"caucus B: interpreter attached to A hears nothing of B", caucus(Respondent), func(r *Room) { r.AttachInterpreter("m", "i", Applicant) }, "i", "x", Audio, false},
		{"caucus B: waiting applicant does not hear mediator", caucus(Respondent), nil, "c", "m", Audio, false},
		{"mute: muted audio reaches nobody", Joint, func(r *Room) { r.Mute("m", "c") }, "x", "c", Audio, false},
		{"mute: muted video still flows", Joint, func(r *Room) { r.Mute("m", "c") }, "x", "c", Video, true},
		{"mute: self unmute restores", Joint, func(r *Room) { r.Mute("m", "c"); r.Unmute("c") }, "x", "c", Audio, true},
		{"removed: receives nothing", Joint, func(r *Room) { r.Remove("m", "x") }, "x", "m", Audio, false},
		{"removed: sends nothing", Joint, func(r *Room) { r.Remove("m", "x") }, "c", "x", Video, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := admitted(t, all...)
			if tt.setup != nil {
				tt.setup(r)
			}
			if _, err := r.SetMode("m", tt.mode); err != nil {
				t.Fatal(err)
			}
			if got := r.MayReceive(tt.sub, tt.pub, tt.src); got != tt.want {
				t.Fatalf("MayReceive(%s, %s, %s) = %v, want %v", tt.sub, tt.pub, tt.src, got, tt.want)
			}
		})
	}
}

func TestLobby(t *testing.T) {
	r := New()
	if _, err := r.Join(med); err != nil {
		t.Fatal(err)
	}
	ch, err := r.Join(cons)
	if err != nil || len(ch) != 0 {
		t.Fatalf("a waiting party opened subscriptions: %v %v", ch, err)
	}
	if r.MayReceive("m", "c", Video) || r.MayReceive("c", "m", Audio) {
		t.Fatal("lobby is not isolated")
	}
	if _, err := r.Admit("m", "c"); err != ErrNoConsent {
		t.Fatalf("admit without consent: %v", err)
	}
	if _, err := r.Admit("c", "c"); err != ErrNotAllowed {
		t.Fatalf("party admits itself: %v", err)
	}
	// Identity check: the mediator sees and hears the waiting party; nothing
	// flows back and nobody else receives it.
	r.Join(merc)
	r.Consent("x")
	r.Admit("m", "x")
	ch, err = r.CheckIdentity("m", "c", true)
	if err != nil || len(ch) != 3 {
		t.Fatalf("identity check changes: %v %v", ch, err)
	}
	if !r.MayReceive("m", "c", Video) || r.MayReceive("c", "m", Audio) || r.MayReceive("x", "c", Video) || r.MayReceive("c", "x", Video) {
		t.Fatal("identity check must show the waiting party to the mediator only")
	}
	if err := r.MarkIdentityChecked("m", "c"); err != nil {
		t.Fatal(err)
	}
	r.Consent("c")
	if _, err := r.Admit("m", "c"); err != nil {
		t.Fatal(err)
	}
	if !r.MayReceive("x", "c", Video) {
		t.Fatal("admitted party not received")
	}
	v, _ := r.ViewFor("m")
	if !v.Participants[1].IdentityChecked {
		t.Fatalf("identity check not shown: %+v", v.Participants[1])
	}
	// A reconnect keeps admission; a removed participant cannot return.
	r.Leave("c")
	if _, err := r.Join(cons); err != nil || !r.MayReceive("x", "c", Audio) {
		t.Fatalf("reconnect lost admission: %v", err)
	}
	r.Remove("m", "c")
	if _, err := r.Join(cons); err != ErrRemoved {
		t.Fatalf("removed participant rejoined: %v", err)
	}
}

func TestAdmitAllAndLock(t *testing.T) {
	r := New()
	r.Join(med)
	for _, p := range []Participant{cons, rel, merc} {
		r.Join(p)
	}
	r.Consent("c")
	r.Consent("x")
	ids, _, err := r.AdmitAll("m")
	if err != nil || len(ids) != 2 {
		t.Fatalf("admit all: %v %v", ids, err)
	}
	if err := r.Lock("c", true); err != ErrNotAllowed {
		t.Fatalf("party locks: %v", err)
	}
	if err := r.Lock("m", true); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Join(lawyer); err != ErrLocked {
		t.Fatalf("newcomer in a locked room: %v", err)
	}
	r.Leave("c")
	if _, err := r.Join(cons); err != nil {
		t.Fatalf("admitted participant locked out: %v", err)
	}
	// The relative never consented, so it is not admitted and a party's view
	// does not list it.
	v, _ := r.ViewFor("c")
	for _, p := range v.Participants {
		if p.ID == "r" {
			t.Fatal("a party sees the lobby")
		}
	}
}

func TestModeChangesAreExact(t *testing.T) {
	r := admitted(t, cons, merc)
	ch, err := r.SetMode("m", caucus(Applicant))
	if err != nil {
		t.Fatal(err)
	}
	// Caucus with the applicant closes every pair that involves the merchant:
	// 4 pairs x 3 sources.
	for _, c := range ch {
		if c.Allow || (c.Subscriber != "x" && c.Publisher != "x") {
			t.Fatalf("unexpected change %v", c)
		}
	}
	if len(ch) != 12 {
		t.Fatalf("got %d changes, want 12: %v", len(ch), ch)
	}
	ch, _ = r.SetMode("m", Joint)
	if len(ch) != 12 {
		t.Fatalf("back to joint: %v", ch)
	}
	if _, err := r.SetMode("c", Joint); err != ErrNotAllowed {
		t.Fatalf("party sets mode: %v", err)
	}
	if _, err := r.SetMode("m", caucus(Neutral)); err != ErrInvalidMode {
		t.Fatalf("neutral caucus: %v", err)
	}
}

func TestInvalid(t *testing.T) {
	r := New()
	if _, err := r.Join(Participant{ID: "a", Role: "king", Side: Applicant}); err != ErrInvalidParticipant {
		t.Fatalf("bad role: %v", err)
	}
	if _, err := r.Join(Participant{Role: Party, Side: Applicant}); err != ErrInvalidParticipant {
		t.Fatalf("no id: %v", err)
	}
	r = admitted(t, cons, interp)
	if _, err := r.AttachInterpreter("m", "c", Applicant); err != ErrNotInterpreter {
		t.Fatalf("attach a party: %v", err)
	}
	if _, err := r.LetIntoCaucus("m", "c", true); err != ErrNotNeutral {
		t.Fatalf("let a party into caucus: %v", err)
	}
	if _, err := r.Remove("m", "m"); err != ErrNotAllowed {
		t.Fatalf("mediator removes itself: %v", err)
	}
}

// key is one subscriber, publisher and source.
type key struct {
	sub, pub string
	src      Source
}

// allowedMap is MayReceive for every pair and source of r's members, as
// a set: what the changes a room returned must add up to.
func allowedMap(r *Room) map[key]bool {
	m := map[key]bool{}
	for _, s := range r.order {
		for _, p := range r.order {
			for _, src := range Sources {
				if r.MayReceive(s, p, src) {
					m[key{s, p, src}] = true
				}
			}
		}
	}
	return m
}

// randomStep applies one random action, allowed or not, and returns the
// subscription changes it made.
func randomStep(r *Room, rng *rand.Rand, people []Participant) []Change {
	p := people[rng.IntN(len(people))]
	q := people[rng.IntN(len(people))]
	var ch []Change
	switch rng.IntN(13) {
	case 0, 1:
		ch, _ = r.Join(p)
	case 2:
		ch, _ = r.Leave(p.ID)
	case 3:
		ch, _ = r.Consent(p.ID)
	case 4:
		ch, _ = r.Admit(q.ID, p.ID)
	case 5:
		_, ch, _ = r.AdmitAll(q.ID)
	case 6:
		ch, _ = r.SetMode(q.ID, []Mode{Joint, caucus(Applicant), caucus(Respondent)}[rng.IntN(3)])
	case 7:
		ch, _ = r.CheckIdentity(q.ID, p.ID, rng.IntN(2) == 0)
	case 8:
		ch, _ = r.LetIntoCaucus(q.ID, p.ID, rng.IntN(2) == 0)
	case 9:
		ch, _ = r.AttachInterpreter(q.ID, p.ID, []Side{Applicant, Respondent, Neutral}[rng.IntN(3)])
	case 10:
		if rng.IntN(4) == 0 {
			ch, _ = r.Remove(q.ID, p.ID)
		} else {
			ch, _ = r.Mute(q.ID, p.ID)
		}
	case 11:
		ch, _ = r.Unmute(p.ID)
	case 12:
		_ = r.Lock(q.ID, rng.IntN(3) == 0)
	}
	return ch
}

// TestCaucusNeverLeaks applies random action sequences and checks, after
// every step, that (1) nobody outside a caucus may receive anything from
// inside it, (2) nobody in the lobby or removed receives or is received
// (identity checks aside), and (3) the changes returned, applied in order
// from the start, equal the current permission matrix exactly.
func TestCaucusNeverLeaks(t *testing.T) {
	people := []Participant{med, comed, cons, rel, merc, lawyer, interp, obs}
	for seed := uint64(0); seed < 300; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		r := New()
		applied := map[key]bool{}
		apply := func(ch []Change) {
			for _, c := range ch {
				k := key{c.Subscriber, c.Publisher, c.Source}
				if c.Allow == applied[k] {
					t.Fatalf("seed %d: redundant change %v", seed, c)
				}
				applied[k] = c.Allow
			}
		}
		for step := 0; step < 60; step++ {
			ch := randomStep(r, rng, people)
			apply(ch)
			// Views shares lists among viewers and must agree with ViewFor.
			ids := make([]string, len(people))
			for i, p := range people {
				ids[i] = p.ID
			}
			views := r.Views(ids)
			for _, id := range ids {
				v, ok := r.ViewFor(id)
				w, shared := views[id]
				if ok != shared || !reflect.DeepEqual(v, w) {
					t.Fatalf("seed %d step %d: Views for %s = %+v, ViewFor = %+v", seed, step, id, w, v)
				}
			}
			m := allowedMap(r)
			for k, v := range applied {
				if v != m[k] {
					t.Fatalf("seed %d step %d: applied changes disagree with policy at %v", seed, step, k)
				}
			}
			for k := range m {
				if !applied[k] {
					t.Fatalf("seed %d step %d: policy allows %v but no change said so", seed, step, k)
				}
				s, pub := r.members[k.sub], r.members[k.pub]
				if r.mode.Caucus && r.inCaucus(pub) && !r.inCaucus(s) {
					t.Fatalf("seed %d step %d: %s outside the caucus receives %s", seed, step, k.sub, k.pub)
				}
				if s.state != StateAdmitted || pub.state != StateAdmitted && !(pub.checking && IsMediator(s.Role)) {
					t.Fatalf("seed %d step %d: lobby or removed participant in %v", seed, step, k)
				}
				if s.state == StateRemoved || pub.state == StateRemoved {
					t.Fatalf("seed %d step %d: removed participant in %v", seed, step, k)
				}
			}
		}
	}
}

// TestUnmediated covers a room without a mediator: a reconciliation
// between the applicant and the merchant.
func TestUnmediated(t *testing.T) {
	r := NewKind(Unmediated)
	if r.Kind() != Unmediated || New().Kind() != Mediated {
		t.Fatal("kinds")
	}
	for _, p := range []Participant{med, comed} {
		if _, err := r.Join(p); err != ErrNoMediator {
			t.Fatalf("a %s joins an unmediated room: %v", p.Role, err)
		}
	}
	for _, p := range []Participant{cons, merc} {
		if _, err := r.Join(p); err != nil {
			t.Fatal(err)
		}
	}
	if r.Admitted("c") || r.MayReceive("x", "c", Video) {
		t.Fatal("admitted before accepting the session rules")
	}
	if _, err := r.Consent("c"); err != nil {
		t.Fatal(err)
	}
	if !r.Admitted("c") || r.MayReceive("x", "c", Video) || r.MayReceive("c", "x", Video) {
		t.Fatal("consent admits the one who consented, and nothing flows with one who has not")
	}
	ch, err := r.Consent("x")
	if err != nil {
		t.Fatal(err)
	}
	// Both directions open for every source at once.
	if len(ch) != 2*len(Sources) {
		t.Fatalf("changes on the second consent: %v", ch)
	}
	for _, src := range Sources {
		if !r.MayReceive("c", "x", src) || !r.MayReceive("x", "c", src) {
			t.Fatalf("%s does not flow between the parties", src)
		}
	}
	if !r.MayChat("c", "x") {
		t.Fatal("chat does not flow")
	}
	// Every mediator action is refused, whoever asks.
	refused := []struct {
		name string
		do   func() error
	}{
		{"admit", func() error { _, err := r.Admit("c", "x"); return err }},
		{"admit all", func() error { _, _, err := r.AdmitAll("c"); return err }},
		{"remove", func() error { _, err := r.Remove("c", "x"); return err }},
		{"set mode", func() error { _, err := r.SetMode("c", caucus(Applicant)); return err }},
		{"mute", func() error { _, err := r.Mute("x", "c"); return err }},
		{"lock", func() error { return r.Lock("c", true) }},
		{"check identity", func() error { _, err := r.CheckIdentity("c", "x", true); return err }},
		{"identity checked", func() error { return r.MarkIdentityChecked("c", "x") }},
		{"let into caucus", func() error { _, err := r.LetIntoCaucus("c", "x", true); return err }},
		{"attach interpreter", func() error { _, err := r.AttachInterpreter("c", "x", Applicant); return err }},
		{"authorize", func() error { return r.Authorize("c", "x") }},
	}
	for _, tc := range refused {
		if err := tc.do(); err != ErrNoMediator {
			t.Errorf("%s: %v, want ErrNoMediator", tc.name, err)
		}
	}
	if r.Mode() != Joint || r.Locked() {
		t.Fatal("the mode or the lock changed")
	}
	// A reconnect keeps the admission; the one still there sees it.
	if _, err := r.Leave("x"); err != nil {
		t.Fatal(err)
	}
	if r.MayReceive("c", "x", Video) {
		t.Fatal("an absent participant is received")
	}
	if _, err := r.Join(merc); err != nil {
		t.Fatal(err)
	}
	if !r.MayReceive("c", "x", Video) || !r.MayReceive("x", "c", Audio) {
		t.Fatal("a reconnect is not admitted again")
	}
	v, _ := r.ViewFor("c")
	if len(v.Participants) != 2 || v.Mode != Joint {
		t.Fatalf("view: %+v", v)
	}
}

// TestUnmediatedChangesAreExact applies random sequences in an
// unmediated room and checks that the changes returned equal the
// permission matrix, that only consenting participants receive anything,
// and that the room stays joint.
func TestUnmediatedChangesAreExact(t *testing.T) {
	people := []Participant{med, cons, rel, merc, lawyer}
	for seed := uint64(0); seed < 200; seed++ {
		rng := rand.New(rand.NewPCG(seed, 11))
		r := NewKind(Unmediated)
		applied := map[key]bool{}
		for step := 0; step < 40; step++ {
			p, q := people[rng.IntN(len(people))], people[rng.IntN(len(people))]
			var ch []Change
			switch rng.IntN(6) {
			case 0, 1:
				ch, _ = r.Join(p)
			case 2:
				ch, _ = r.Leave(p.ID)
			case 3:
				ch, _ = r.Consent(p.ID)
			case 4:
				ch, _ = r.SetMode(q.ID, caucus(Applicant))
			case 5:
				ch, _ = r.Admit(q.ID, p.ID)
			}
			for _, c := range ch {
				applied[key{c.Subscriber, c.Publisher, c.Source}] = c.Allow
			}
			m := allowedMap(r)
			for k, v := range applied {
				if v != m[k] {
					t.Fatalf("seed %d step %d: applied changes disagree with policy at %v", seed, step, k)
				}
			}
			for k := range m {
				if !applied[k] {
					t.Fatalf("seed %d step %d: policy allows %v but no change said so", seed, step, k)
				}
				if !r.members[k.sub].consented || !r.members[k.pub].consented {
					t.Fatalf("seed %d step %d: a participant who did not consent in %v", seed, step, k)
				}
			}
			if r.Mode() != Joint {
				t.Fatalf("seed %d: the mode changed", seed)
			}
			if _, _, ok := r.Participant(med.ID); ok {
				t.Fatalf("seed %d: a mediator is in the room", seed)
			}
		}
	}
}

// TestNoNetworkImports keeps rooms and cases free of I/O dependencies.
func TestNoNetworkImports(t *testing.T) {
	for _, dir := range []string{".", "../cases"} {
		pkg, err := build.ImportDir(dir, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range pkg.Imports {
			for _, banned := range []string{"github.com/pion/", "github.com/gorilla/", "github.com/jackc/", "net/http", "database/sql"} {
				if strings.HasPrefix(imp, banned) {
					t.Errorf("%s imports %s", dir, imp)
				}
			}
		}
	}
}

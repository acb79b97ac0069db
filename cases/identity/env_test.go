package identity

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/concord-odr/concord/cases"
	"github.com/concord-odr/concord/cases/joinlink"
	"github.com/concord-odr/concord/cases/sqlite"
)

// testHash makes password hashing cheap in tests.
var testHash = HashParams{Memory: 64, Time: 1, Threads: 1}

// clock is a settable time source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

var (
	linkKey  = joinlink.Key{ID: "jk1", Secret: bytes.Repeat([]byte("j"), 32)}
	staffKey = joinlink.Key{ID: "sk1", Secret: bytes.Repeat([]byte("s"), 32)}
)

type env struct {
	t      testing.TB
	store  cases.Store
	cases  *cases.Service
	clock  *clock
	signer *joinlink.Signer
	id     *Service
	queued int
	insts  int
	mu     sync.Mutex
}

func newEnv(t testing.TB) *env {
	t.Helper()
	return newEnvKeys(t, linkKey, staffKey)
}

// randomKey returns a key no other process has.
func randomKey(id string) joinlink.Key {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return joinlink.Key{ID: id, Secret: b}
}

func newEnvKeys(t testing.TB, linkKey, staffKey joinlink.Key) *env {
	t.Helper()
	store, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "cases.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	if err := store.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, store: store, clock: &clock{now: time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)}}
	e.cases = cases.NewService(cases.ServiceParams{Store: store, Now: e.clock.Now})
	e.signer, err = joinlink.NewSigner(linkKey, nil, e.clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	e.id = e.newService(e.signer, staffKey, nil)
	return e
}

func (e *env) newService(links *joinlink.Signer, key joinlink.Key, older []joinlink.Key) *Service {
	e.t.Helper()
	s, err := New(Params{
		Store: e.store, Now: e.clock.Now, Links: links, StaffKey: key, StaffOlderKeys: older,
		BaseURL: func() string { return "https://concord.example/" }, Hash: testHash,
		Queued: func() { e.mu.Lock(); e.queued++; e.mu.Unlock() },
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// mediatingCase opens a case at a new institution and takes it to
// accepted.
func (e *env) mediatingCase(instID string) *cases.Case {
	e.t.Helper()
	ctx := e.t.Context()
	e.insts++
	code := fmt.Sprintf("%04d", e.insts)
	if err := e.cases.PutInstitution(ctx, &cases.Institution{ID: instID, Code: code, Name: "Inst " + instID, Level: cases.LevelDistrict}); err != nil {
		e.t.Fatal(err)
	}
	c, _, err := e.cases.OpenCase(ctx, cases.NewCase{
		InstitutionID: instID, Category: "e-commerce", Channel: cases.ChannelWindow,
		Applicant:  cases.Party{Name: "Li Wei", Kind: "person", Phone: "13800000000"},
		Respondent: cases.Party{Name: "Shop", Kind: "organisation"},
		Claims:     "refund", AmountCents: 100, Actor: "test",
	})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, to := range []cases.State{cases.StateDispatched, cases.StateRespondentContacted, cases.StateAccepted} {
		if c, err = e.cases.Transition(ctx, c.ID, to, "test", nil); err != nil {
			e.t.Fatal(err)
		}
	}
	return c
}

// schedule schedules a session of c with a mediator and two parties and
// issues their links, sending the applicant's by SMS.
func (e *env) schedule(c *cases.Case) (*cases.Session, []IssuedLink) {
	e.t.Helper()
	var links []IssuedLink
	sess, err := e.cases.ScheduleSessionWith(e.t.Context(), c.ID, "test", []cases.Participant{
		{Name: "Mediator Zhang", Role: cases.RoleMediator, Side: cases.SideNeutral},
		{Name: "Li Wei", Role: cases.RoleParty, Side: cases.SideApplicant},
		{Name: "Shop", Role: cases.RoleParty, Side: cases.SideRespondent},
	}, func(ctx context.Context, tx cases.Tx, c *cases.Case, sess *cases.Session) error {
		var err error
		links, err = e.id.IssueLinksTx(ctx, tx, c, sess, "test", nil, map[string]Recipient{
			sess.Participants[1].ID: {Channel: cases.NotifySMS, To: "+86 138 0000 0000"},
		})
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return sess, links
}

// link returns the issued link of the participant with the given side.
func link(t testing.TB, links []IssuedLink, side string) IssuedLink {
	t.Helper()
	for _, l := range links {
		if l.Side == side {
			return l
		}
	}
	t.Fatalf("no %s link in %+v", side, links)
	return IssuedLink{}
}

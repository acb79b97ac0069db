package casetest

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/concord-odr/concord/cases"
)

// queueWorld is a world whose community station and district have
// mediators on shift, and a queue driven by the world's clock.
type queueWorld struct {
	*world
	q         *cases.Queue
	community []*cases.Mediator // n of them
	district  *cases.Mediator   // the world's mediator
	province  *cases.Mediator
}

func newQueueWorld(t *testing.T, s cases.Store, n int) *queueWorld {
	t.Helper()
	ctx := t.Context()
	w := &queueWorld{world: newWorld(t, s, time.Date(2026, 3, 2, 22, 0, 0, 0, cst))}
	w.district = w.mediator
	now := w.clock.Now()
	for i := range n {
		m := &cases.Mediator{InstitutionID: w.world.community.ID, Name: fmt.Sprintf("社区调解员%d", i)}
		if err := w.svc.PutMediator(ctx, m); err != nil {
			t.Fatal(err)
		}
		w.community = append(w.community, m)
	}
	w.province = &cases.Mediator{InstitutionID: w.world.province.ID, Name: "市级值班调解员"}
	if err := w.svc.PutMediator(ctx, w.province); err != nil {
		t.Fatal(err)
	}
	for _, m := range append(slices.Clone(w.community), w.district, w.province) {
		if err := w.svc.PutShift(ctx, &cases.Shift{MediatorID: m.ID, StartsAt: now.Add(-time.Hour), EndsAt: now.Add(8 * time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	w.q = cases.NewQueue(cases.QueueParams{Service: w.svc, Now: w.clock.Now, OfferTimeout: time.Minute,
		EscalateAfter: 5 * time.Minute, PresenceTTL: 10 * time.Minute, MaxLoad: 2}, false)
	t.Cleanup(func() { _ = w.q.Close() })
	return w
}

// acceptedCase opens a case at the community station and takes it to
// accepted.
func (w *queueWorld) acceptedCase(t *testing.T) *cases.Case {
	t.Helper()
	ctx := t.Context()
	c, _, err := w.svc.OpenCase(ctx, newCaseInput(w.world.community.ID, ""))
	if err != nil {
		t.Fatal(err)
	}
	for _, to := range []cases.State{cases.StateDispatched, cases.StateRespondentContacted, cases.StateAccepted} {
		if c, err = w.svc.Transition(ctx, c.ID, to, "staff", nil); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func (w *queueWorld) heartbeat(t *testing.T, ms ...*cases.Mediator) {
	t.Helper()
	for _, m := range ms {
		if _, err := w.q.Heartbeat(t.Context(), m.ID, true); err != nil {
			t.Fatal(err)
		}
	}
}

func (w *queueWorld) check(t *testing.T) {
	t.Helper()
	if err := w.q.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
}

// offerOf returns the request offered to a mediator, or "".
func (w *queueWorld) offerOf(t *testing.T, m *cases.Mediator) string {
	t.Helper()
	st, err := w.q.Status(m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st.Offer == nil {
		return ""
	}
	return st.Offer.RequestID
}

// testQueue: N mediators, M requests at once: every request is offered,
// none to two mediators at once, the least busy first; accepting
// schedules the session.
func testQueue(t *testing.T, s cases.Store) {
	ctx := t.Context()
	const n, m = 3, 7
	w := newQueueWorld(t, s, n)
	w.heartbeat(t, w.community...)
	// The district's mediator is on duty too, for the requests that
	// escalate; it joins once the first offers are out.
	var cs []*cases.Case
	for range m {
		cs = append(cs, w.acceptedCase(t))
	}
	tickets := make([]*cases.Ticket, m)
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Go(func() {
			tk, err := w.q.Request(ctx, c.ID, "p_applicant")
			if err != nil {
				t.Error(err)
				return
			}
			tickets[i] = tk
		})
	}
	wg.Wait()
	w.check(t)
	// Asking again answers with the same ticket.
	again, err := w.q.Request(ctx, cs[0].ID, "p_applicant")
	if err != nil || again.ID != tickets[0].ID {
		t.Fatalf("second request = %+v, %v", again, err)
	}
	// n requests are offered, one to each mediator; the rest wait in
	// order with a place and an expected wait.
	offered := map[string]string{}
	for _, med := range w.community {
		r := w.offerOf(t, med)
		if r == "" {
			t.Fatalf("mediator %s has no offer", med.Name)
		}
		offered[r] = med.ID
	}
	if len(offered) != n {
		t.Fatalf("%d distinct offers to %d mediators", len(offered), n)
	}
	var places []int
	for _, tk := range tickets {
		cur, err := w.q.Ticket(tk.ID)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := offered[cur.ID]; ok != (cur.Status == cases.QueueOffered) {
			t.Fatalf("ticket %+v, offered %v", cur, ok)
		}
		places = append(places, cur.Position)
		if cur.OnDuty != n || cur.ExpectedWaitSeconds <= 0 {
			t.Fatalf("ticket %+v", cur)
		}
	}
	slices.Sort(places)
	if !slices.Equal(places, []int{1, 2, 3, 4, 5, 6, 7}) {
		t.Fatalf("places %v", places)
	}

	// Mediators answer at random, concurrently, until every request is
	// taken; the invariants hold throughout.
	w.heartbeat(t, w.district, w.province)
	w.check(t)
	everyone := append(slices.Clone(w.community), w.district, w.province)
	rng := rand.New(rand.NewPCG(1, 2))
	var mu sync.Mutex
	taken := map[string]string{} // request -> mediator
	for round := 0; len(taken) < m && round < 200; round++ {
		var wg sync.WaitGroup
		for i, med := range everyone {
			accept := rng.IntN(3) > 0
			wg.Go(func() {
				st, err := w.q.Status(med.ID)
				if err != nil || st.Offer == nil {
					return
				}
				if !accept {
					_ = w.q.Pass(ctx, med.ID, st.Offer.RequestID)
					return
				}
				sess, err := w.q.Accept(ctx, med.ID, st.Offer.RequestID)
				if err != nil {
					t.Errorf("accept: %v", err)
					return
				}
				mu.Lock()
				if prev, dup := taken[st.Offer.RequestID]; dup {
					t.Errorf("request %s taken by %s and %s", st.Offer.RequestID, prev, med.ID)
				}
				taken[st.Offer.RequestID] = med.ID
				mu.Unlock()
				// Rooms end now and then, freeing the mediator.
				if (i+round)%2 == 0 {
					w.q.Release(ctx, sess.ID)
				}
			})
		}
		wg.Wait()
		w.check(t)
		w.clock.Add(time.Second) // 200 rounds stay below EscalateAfter
		w.q.Tick(ctx)
		w.check(t)
	}
	if len(taken) != m {
		t.Fatalf("%d of %d requests taken: %v", len(taken), m, w.q.Requests())
	}
	for _, tk := range tickets {
		cur, _ := w.q.Ticket(tk.ID)
		c, _ := w.svc.Case(ctx, cur.CaseID)
		if cur.Status != cases.QueueAccepted || cur.SessionID == "" || c.State != cases.StateMediating || c.MediatorID != cur.MediatorID ||
			taken[cur.ID] != cur.MediatorID {
			t.Fatalf("ticket %+v, case %s %s", cur, c.State, c.MediatorID)
		}
		sess, err := w.svc.Session(ctx, cur.SessionID)
		if err != nil || len(sess.Participants) != 3 || sess.Participants[0].Role != cases.RoleMediator {
			t.Fatalf("session %+v, %v", sess, err)
		}
		if !slices.Contains(eventTypes(t, s, c.ID), "queue.accepted") {
			t.Fatalf("events %v", eventTypes(t, s, c.ID))
		}
	}
}

// testQueueFairness: the least busy mediator is offered first.
func testQueueFairness(t *testing.T, s cases.Store) {
	ctx := t.Context()
	w := newQueueWorld(t, s, 2)
	a, b := w.community[0], w.community[1]
	w.heartbeat(t, a)
	t1, err := w.q.Request(ctx, w.acceptedCase(t).ID, "p")
	if err != nil || w.offerOf(t, a) != t1.ID {
		t.Fatalf("first request not offered to the only mediator: %v", err)
	}
	if _, err := w.q.Accept(ctx, a.ID, t1.ID); err != nil {
		t.Fatal(err)
	}
	// A runs one room; B, who arrives now, runs none: B is offered next.
	w.heartbeat(t, b)
	t2, err := w.q.Request(ctx, w.acceptedCase(t).ID, "p")
	if err != nil {
		t.Fatal(err)
	}
	if w.offerOf(t, b) != t2.ID || w.offerOf(t, a) != "" {
		t.Fatalf("offer went to the busier mediator")
	}
	// A mediator at its load takes no offer; a released room frees it.
	if _, err := w.q.Accept(ctx, b.ID, t2.ID); err != nil {
		t.Fatal(err)
	}
	sess3 := ""
	for range 2 { // A: 1 -> 2 rooms; B: 1 -> 2 rooms
		tk, err := w.q.Request(ctx, w.acceptedCase(t).ID, "p")
		if err != nil {
			t.Fatal(err)
		}
		for _, med := range []*cases.Mediator{a, b} {
			if w.offerOf(t, med) == tk.ID {
				sess, err := w.q.Accept(ctx, med.ID, tk.ID)
				if err != nil {
					t.Fatal(err)
				}
				sess3 = sess.ID
			}
		}
	}
	t5, err := w.q.Request(ctx, w.acceptedCase(t).ID, "p")
	if err != nil {
		t.Fatal(err)
	}
	if w.offerOf(t, a) != "" || w.offerOf(t, b) != "" {
		t.Fatalf("a mediator at its load was offered a request")
	}
	w.q.Release(ctx, sess3)
	if w.offerOf(t, a) != t5.ID && w.offerOf(t, b) != t5.ID {
		t.Fatalf("a freed mediator was not offered the waiting request")
	}
	// Cancel: the request leaves the queue and the mediator's offer goes.
	if err := w.q.Cancel(ctx, t5.ID, "p"); err != nil {
		t.Fatal(err)
	}
	if tk, _ := w.q.Ticket(t5.ID); tk.Status != cases.QueueCancelled || w.offerOf(t, a) != "" || w.offerOf(t, b) != "" {
		t.Fatalf("after cancel: %+v", tk)
	}
	w.check(t)
	_, err = w.q.Ticket("qr_none")
	wantCode(t, err, cases.ENOTFOUND)
}

// testQueueEscalation: a request every on-duty mediator passes, or that
// waits too long, or that waits where nobody is on duty, goes to the
// parent institution's mediators.
func testQueueEscalation(t *testing.T, s cases.Store) {
	ctx := t.Context()
	w := newQueueWorld(t, s, 3)
	w.heartbeat(t, append(slices.Clone(w.community), w.district)...)
	c := w.acceptedCase(t)
	tk, err := w.q.Request(ctx, c.ID, "p")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for range 3 {
		var holder *cases.Mediator
		for _, med := range w.community {
			if w.offerOf(t, med) == tk.ID {
				holder = med
			}
		}
		if holder == nil || seen[holder.ID] {
			t.Fatalf("request not offered to a new community mediator (seen %v)", seen)
		}
		seen[holder.ID] = true
		if err := w.q.Pass(ctx, holder.ID, tk.ID); err != nil {
			t.Fatal(err)
		}
		w.check(t)
	}
	// All three passed: the district's mediator is offered it.
	cur, _ := w.q.Ticket(tk.ID)
	if cur.InstitutionID != w.world.district.ID || cur.Escalations != 1 || w.offerOf(t, w.district) != tk.ID {
		t.Fatalf("after all passed: %+v", cur)
	}
	sess, err := w.q.Accept(ctx, w.district.ID, tk.ID)
	if err != nil {
		t.Fatal(err)
	}
	c, _ = w.svc.Case(ctx, c.ID)
	if c.InstitutionID != w.world.district.ID || c.MediatorID != w.district.ID || sess.CaseID != c.ID {
		t.Fatalf("case after an escalated accept: institution %s mediator %s", c.InstitutionID, c.MediatorID)
	}
	types := eventTypes(t, s, c.ID)
	if !slices.Contains(types, "queue.escalated") || types[len(types)-1] != "queue.accepted" {
		t.Fatalf("events %v", types)
	}

	// An offer not answered in time counts as a pass.
	c2 := w.acceptedCase(t)
	tk2, err := w.q.Request(ctx, c2.ID, "p")
	if err != nil {
		t.Fatal(err)
	}
	first := ""
	for _, med := range w.community {
		if w.offerOf(t, med) == tk2.ID {
			first = med.ID
		}
	}
	w.clock.Add(61 * time.Second)
	w.q.Tick(ctx)
	cur, _ = w.q.Ticket(tk2.ID)
	if cur.Status != cases.QueueOffered || func() bool {
		st, _ := w.q.Status(first)
		return st.Offer != nil
	}() {
		t.Fatalf("after the offer timed out: %+v", cur)
	}
	// Waiting too long at one institution: up, even with mediators left.
	w.clock.Add(5 * time.Minute)
	w.q.Tick(ctx)
	if cur, _ = w.q.Ticket(tk2.ID); cur.InstitutionID != w.world.district.ID {
		t.Fatalf("after waiting: %+v", cur)
	}
	// Nobody on duty at the district (its mediator goes away) nor at the
	// province: it waits at the top, with the province's mediators.
	if _, err := w.q.Heartbeat(ctx, w.district.ID, false); err != nil {
		t.Fatal(err)
	}
	if cur, _ = w.q.Ticket(tk2.ID); cur.InstitutionID != w.world.province.ID || cur.Escalations != 2 || cur.OnDuty != 0 || cur.ExpectedWaitSeconds < 300 {
		t.Fatalf("with nobody on duty: %+v", cur)
	}
	w.check(t)

	// Off shift: a present mediator whose shift ended is not on duty, and
	// a request at its station goes straight up.
	w.clock.Add(9 * time.Hour)
	w.heartbeat(t, w.community...)
	c3 := w.acceptedCase(t)
	tk3, err := w.q.Request(ctx, c3.ID, "p")
	if err != nil {
		t.Fatal(err)
	}
	if cur, _ = w.q.Ticket(tk3.ID); cur.InstitutionID != w.world.province.ID {
		t.Fatalf("off shift: %+v", cur)
	}
	// A case that is not accepted cannot queue.
	_, err = w.q.Request(ctx, w.open(t, false).ID, "p")
	wantCode(t, err, cases.ETRANSITION)
	// Only the holder answers an offer.
	wantCode(t, w.q.Pass(ctx, w.community[0].ID, tk3.ID), cases.ETRANSITION)
	_, err = w.q.Accept(ctx, w.community[0].ID, tk3.ID)
	wantCode(t, err, cases.ETRANSITION)
}

// testQueueMoves: the queue restored from its snapshot on another node
// (its node lost) shows every party the same ticket and every mediator
// the same standing and offer, keeps who passed what, and goes on: the
// offer is accepted there. A snapshot whose offers do not hold together
// is refused and changes nothing.
func testQueueMoves(t *testing.T, s cases.Store) {
	ctx := t.Context()
	w := newQueueWorld(t, s, 2)
	w.heartbeat(t, w.community...)
	var ids []string
	for range 3 {
		tk, err := w.q.Request(ctx, w.acceptedCase(t).ID, "p_applicant")
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, tk.ID)
	}
	first := w.offerOf(t, w.community[0])
	if err := w.q.Pass(ctx, w.community[0].ID, first); err != nil {
		t.Fatal(err)
	}
	w.check(t)
	snap := w.q.Snapshot()

	moved := cases.NewQueue(cases.QueueParams{Service: w.svc, Now: w.clock.Now, OfferTimeout: time.Minute,
		EscalateAfter: 5 * time.Minute, PresenceTTL: 10 * time.Minute, MaxLoad: 2}, false)
	t.Cleanup(func() { _ = moved.Close() })
	if err := moved.Restore(snap); err != nil {
		t.Fatal(err)
	}
	if err := moved.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
	same := func(what string, a, b any, errA, errB error) {
		t.Helper()
		if errA != nil || errB != nil || !reflect.DeepEqual(a, b) {
			t.Fatalf("%s after the move: %+v (%v), before %+v (%v)", what, b, errB, a, errA)
		}
	}
	for _, id := range ids {
		a, errA := w.q.Ticket(id)
		b, errB := moved.Ticket(id)
		same("ticket "+id, a, b, errA, errB)
	}
	for _, m := range w.community {
		a, errA := w.q.Status(m.ID)
		b, errB := moved.Status(m.ID)
		same("standing of "+m.Name, a, b, errA, errB)
	}
	same("open requests", w.q.Requests(), moved.Requests(), nil, nil)
	if again := moved.Snapshot(); !bytes.Equal(again, snap) {
		t.Fatalf("the moved queue's snapshot differs from the one it was restored from:\n%s\n%s", snap, again)
	}

	// Who passed what is kept: the mediator who passed the first request
	// passes its second offer too and is offered nothing (not the first
	// again); the other mediator accepts its offer there.
	off := w.offerOf(t, w.community[0])
	if off == "" || off == first {
		t.Fatalf("before the move, the mediator who passed %s holds %q", first, off)
	}
	if err := moved.Pass(ctx, w.community[0].ID, off); err != nil {
		t.Fatal(err)
	}
	if st, err := moved.Status(w.community[0].ID); err != nil || st.Offer != nil {
		t.Fatalf("after passing both, the mediator holds %+v (%v); the passes were lost in the move", st.Offer, err)
	}
	st, err := moved.Status(w.community[1].ID)
	if err != nil || st.Offer == nil {
		t.Fatalf("the other mediator holds no offer after the move: %+v, %v", st, err)
	}
	taken := st.Offer.RequestID
	sess, err := moved.Accept(ctx, w.community[1].ID, taken)
	if err != nil || sess == nil {
		t.Fatalf("accepting on the moved queue: %v", err)
	}
	if tk, err := moved.Ticket(taken); err != nil || tk.Status != cases.QueueAccepted || tk.SessionID != sess.ID {
		t.Fatalf("ticket after accepting on the moved queue: %+v, %v", tk, err)
	}

	before := moved.Snapshot()
	for name, bad := range map[string]string{
		"not JSON":        `{`,
		"offer not open":  `{"requests":[],"duties":[{"mediator":{"id":"m1"},"offer":"qr_gone"}]}`,
		"request twice":   `{"requests":[{"id":"qr_1","caseId":"c1"},{"id":"qr_1","caseId":"c2"}]}`,
		"offer disagrees": `{"requests":[{"id":"qr_1","caseId":"c1","status":"waiting","offeredTo":"m2"}],"duties":[{"mediator":{"id":"m1"},"offer":"qr_1"}]}`,
	} {
		if err := moved.Restore([]byte(bad)); cases.ErrorCode(err) != cases.EINVALID {
			t.Errorf("%s: restore gave %v, want %s", name, err, cases.EINVALID)
		}
	}
	if tk, err := moved.Ticket(taken); err != nil || tk.Status != cases.QueueAccepted {
		t.Fatalf("a refused snapshot changed the queue: %+v, %v (before: %s)", tk, err, before)
	}
}

package cases_test

import (
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/concord-odr/concord/cases"
	"github.com/concord-odr/concord/cases/sqlite"
)

// flakyStore is a store whose database can be made unreachable.
type flakyStore struct {
	cases.Store
	down atomic.Bool
}

func (f *flakyStore) Update(ctx context.Context, fn func(cases.Tx) error) error {
	if f.down.Load() {
		return cases.Errorf(cases.EUNAVAILABLE, "the case store cannot be reached")
	}
	return f.Store.Update(ctx, fn)
}

// outboxService returns a service on a flaky store with an outbox in dir,
// and a session of a mediating case.
func outboxService(t *testing.T, dir string) (*cases.Service, *flakyStore, *cases.OutcomeOutbox, *cases.Session) {
	t.Helper()
	ctx := t.Context()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "concord.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	flaky := &flakyStore{Store: store}
	box, err := cases.OpenOutcomeOutbox(dir)
	if err != nil {
		t.Fatal(err)
	}
	svc := cases.NewService(cases.ServiceParams{Store: flaky, Outbox: box})
	inst := &cases.Institution{Code: "0101", Name: "Huangpu Mediation Centre", Level: "district"}
	if err := svc.PutInstitution(ctx, inst); err != nil {
		t.Fatal(err)
	}
	c, _, err := svc.OpenCase(ctx, validCase(inst.ID))
	if err != nil {
		t.Fatal(err)
	}
	for _, to := range []cases.State{cases.StateDispatched, cases.StateRespondentContacted, cases.StateAccepted} {
		if _, err := svc.Transition(ctx, c.ID, to, "admin", nil); err != nil {
			t.Fatal(err)
		}
	}
	sess, err := svc.ScheduleSession(ctx, c.ID, "admin", []cases.Participant{
		{Name: "Mediator", Role: cases.RoleMediator, Side: cases.SideNeutral},
		{Name: "Zhang San", Role: cases.RoleParty, Side: cases.SideApplicant},
	})
	if err != nil {
		t.Fatal(err)
	}
	return svc, flaky, box, sess
}

func TestOutcomeOutbox(t *testing.T) {
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "outbox")
	svc, store, box, sess := outboxService(t, dir)
	med := sess.Participants[0].ID
	settled := cases.Outcome{Result: cases.ResultSettled, Terms: "refund 50 yuan"}

	// Invalid requests are refused, not queued, even with the store away.
	store.down.Store(true)
	if _, err := svc.EndSessionDurably(ctx, cases.EndRequest{SessionID: sess.ID, ActorID: med, Outcome: cases.Outcome{Result: "won"}}); cases.ErrorCode(err) != cases.EINVALID {
		t.Fatalf("invalid outcome: %v", err)
	}
	res, err := svc.EndSessionDurably(ctx, cases.EndRequest{SessionID: sess.ID, ActorID: med, Outcome: settled})
	if err != nil || !res.Queued || res.OutboxID == "" {
		t.Fatalf("EndSessionDurably with the store away: %+v %v", res, err)
	}
	// Without an outbox the error comes back.
	plain := cases.NewService(cases.ServiceParams{Store: store})
	if _, err := plain.EndSessionDurably(ctx, cases.EndRequest{SessionID: sess.ID, ActorID: med, Outcome: settled}); cases.ErrorCode(err) != cases.EUNAVAILABLE {
		t.Fatalf("without an outbox: %v", err)
	}
	// A retry while away is queued again; both entries are one outcome.
	if _, err := svc.EndSessionDurably(ctx, cases.EndRequest{SessionID: sess.ID, ActorID: med, Outcome: settled}); err != nil {
		t.Fatal(err)
	}

	// A crash mid-write leaves a temporary file, which reopening removes.
	if err := os.WriteFile(filepath.Join(dir, ".tmp-123"), []byte(`{"id":`), 0o600); err != nil {
		t.Fatal(err)
	}
	box, err = cases.OpenOutcomeOutbox(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, ".tmp-123")); !os.IsNotExist(err) {
		t.Fatalf("partial entry left: %v", err)
	}
	pending, _ := box.Pending()
	if len(pending) != 2 {
		t.Fatalf("pending = %v", pending)
	}

	// While the store is away the replay stops and keeps everything.
	st, err := box.Replay(ctx, svc, nil)
	if cases.ErrorCode(err) != cases.EUNAVAILABLE || st.Left != 2 || st.Written != 0 {
		t.Fatalf("replay while away: %+v %v", st, err)
	}
	// Back: both entries write the one outcome, once.
	store.down.Store(false)
	st, err = box.Replay(ctx, svc, nil)
	if err != nil || st.Written != 2 || st.Left != 0 {
		t.Fatalf("replay: %+v %v", st, err)
	}
	rec, err := svc.Record(ctx, sess.CaseID)
	if err != nil {
		t.Fatal(err)
	}
	ended := 0
	for _, e := range rec.Events {
		if e.Type == "session.ended" {
			ended++
		}
	}
	if ended != 1 || rec.State != cases.StateClosed || rec.Outcome.Terms != settled.Terms {
		t.Fatalf("after replay: %d session.ended, state %s, outcome %+v", ended, rec.State, rec.Outcome)
	}
	if pending, _ := box.Pending(); len(pending) != 0 {
		t.Fatalf("pending after replay: %v", pending)
	}

	// An entry that can never be written moves to failed/.
	store.down.Store(true)
	if _, err := svc.EndSessionDurably(ctx, cases.EndRequest{SessionID: sess.ID, ActorID: med,
		Outcome: cases.Outcome{Result: cases.ResultWithdrawn}}); err != nil {
		t.Fatal(err)
	}
	store.down.Store(false)
	st, err = box.Replay(ctx, svc, nil)
	if err != nil || st.Failed != 1 {
		t.Fatalf("replay of a conflicting outcome: %+v %v", st, err)
	}
	if failed, _ := box.Failed(); len(failed) != 1 {
		t.Fatalf("failed = %v", failed)
	}
}

func TestOutboxReplayer(t *testing.T) {
	ctx := t.Context()
	svc, store, box, sess := outboxService(t, filepath.Join(t.TempDir(), "outbox"))
	store.down.Store(true)
	if _, err := svc.EndSessionDurably(ctx, cases.EndRequest{SessionID: sess.ID, ActorID: sess.Participants[0].ID,
		Outcome: cases.Outcome{Result: cases.ResultWithdrawn}}); err != nil {
		t.Fatal(err)
	}
	r := cases.NewOutboxReplayer(cases.OutboxReplayerParams{Outbox: box, Service: svc, Interval: 20 * time.Millisecond})
	r.Start()
	defer r.Close()
	time.Sleep(60 * time.Millisecond)
	store.down.Store(false)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if pending, _ := box.Pending(); len(pending) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the replayer did not write the outcome")
		}
		time.Sleep(10 * time.Millisecond)
	}
	c, err := svc.Case(ctx, sess.CaseID)
	if err != nil || c.State != cases.StateClosed {
		t.Fatalf("case: %v %+v", err, c)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
}

package casetest

import (
	"testing"

	"github.com/concord-odr/concord/cases"
)

// AuditCase returns a service on s and a case with a settled outcome and
// a signed agreement: a log of a couple of dozen events.
func AuditCase(t *testing.T, s cases.Store) (*cases.Service, string) {
	t.Helper()
	svc, _, c, sess := agreementCase(t, s)
	signedAgreement(t, svc, c, sess)
	med, _, _ := actors(sess)
	if _, err := svc.RecordOutcome(t.Context(), cases.EndRequest{SessionID: sess.ID, ActorID: med.ParticipantID,
		Outcome: cases.Outcome{Result: cases.ResultSettled}}); err != nil {
		t.Fatalf("RecordOutcome: %v", err)
	}
	return svc, c.ID
}

// Tamperer changes a case's event rows directly in a store's database,
// behind the store's back.
type Tamperer struct {
	EditPayload func(seq int64)               // replace the payload of one event
	EditActor   func(seq int64, actor string) // set the actor of one event
	Delete      func(seq int64)               // delete one event
	Unhash      func()                        // clear every hash, as before hashing
	Rehash      func(seq int64, prev, hash string)
	Migrate     func() // run the store's migrations
}

// TamperSuite checks that the verifier finds each kind of tampering at
// the first broken link, and that a log without hashes is chained by
// migrating and by the next append.
func TamperSuite(t *testing.T, svc *cases.Service, caseID string, tm Tamperer) {
	t.Helper()
	ctx := t.Context()
	verify := func() *cases.ChainReport {
		t.Helper()
		rep, err := svc.VerifyCase(ctx, caseID)
		if err != nil {
			t.Fatalf("VerifyCase: %v", err)
		}
		return rep
	}
	wantBreak := func(what string, seq int64) {
		t.Helper()
		rep := verify()
		if rep.OK || rep.Break == nil || rep.Break.Seq != seq {
			t.Fatalf("%s: report %+v (break %+v), want a break at %d", what, rep, rep.Break, seq)
		}
	}
	events := func() []cases.Event {
		t.Helper()
		evs, err := svc.Events(ctx, caseID)
		if err != nil {
			t.Fatal(err)
		}
		return evs
	}
	orig := events()
	if rep := verify(); !rep.OK || rep.Events != len(orig) || len(orig) < 10 {
		t.Fatalf("untouched log: %+v", rep)
	}

	// A log written before hashing: every hash empty. Migrating chains
	// it, to the very hashes the store computed.
	tm.Unhash()
	wantBreak("unhashed log", 1)
	tm.Migrate()
	for i, e := range events() {
		if e.Hash != orig[i].Hash || e.PrevHash != orig[i].PrevHash {
			t.Fatalf("event %d chained by migration to %s, want %s", e.Seq, e.Hash, orig[i].Hash)
		}
	}
	// The next append chains an unhashed log first.
	tm.Unhash()
	if _, err := svc.Apply(ctx, caseID, cases.TransitionRequest{To: cases.StateConfirmationRequested, Actor: "operator", By: cases.ByCourt}); err != nil {
		t.Fatalf("request confirmation: %v", err)
	}
	now := events()
	if len(now) != len(orig)+1 {
		t.Fatalf("%d events, want %d", len(now), len(orig)+1)
	}
	for i := range orig {
		if now[i].Hash != orig[i].Hash {
			t.Fatalf("event %d chained by append to %s, want %s", now[i].Seq, now[i].Hash, orig[i].Hash)
		}
	}
	if rep := verify(); !rep.OK {
		t.Fatalf("after append: %+v", rep.Break)
	}
	orig = now
	head := orig[len(orig)-1].Hash

	// An edited actor breaks the chain at that event; putting it back
	// mends it.
	tm.EditActor(3, "someone else")
	wantBreak("edited actor", 3)
	tm.EditActor(3, orig[2].Actor)
	if rep := verify(); !rep.OK {
		t.Fatalf("actor restored: %+v", rep.Break)
	}

	// An edited payload breaks it too. Rewriting every hash from there on
	// hides the edit from the chain, but not from its exported head.
	tm.EditPayload(5)
	wantBreak("edited payload", 5)
	evs := events()
	for i := 4; i < len(evs); i++ {
		evs[i].Hash = ""
	}
	if _, err := cases.ChainEvents(evs); err != nil {
		t.Fatal(err)
	}
	for _, e := range evs[4:] {
		tm.Rehash(e.Seq, e.PrevHash, e.Hash)
	}
	rep := verify()
	if !rep.OK || rep.Head == nil || rep.Head.Hash == head {
		t.Fatalf("rewritten chain: ok %v, head %+v (was %s)", rep.OK, rep.Head, head)
	}

	// A deleted event is a missing link.
	tm.Delete(2)
	wantBreak("deleted event", 2)
}

// MediatingSessions creates an institution and n mediating cases, each
// with one scheduled session whose first participant is the mediator.
func MediatingSessions(t *testing.T, svc *cases.Service, n int) []*cases.Session {
	t.Helper()
	inst := &cases.Institution{Code: "0311", Name: "徐汇区人民调解委员会", Level: "district"}
	if err := svc.PutInstitution(t.Context(), inst); err != nil {
		t.Fatalf("PutInstitution: %v", err)
	}
	out := make([]*cases.Session, n)
	for i := range out {
		_, out[i] = mediatingCase(t, svc, inst.ID, "")
	}
	return out
}

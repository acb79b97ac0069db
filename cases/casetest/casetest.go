// Package casetest is the contract suite that every cases.Store passes:
// the store tests of cases/sqlite and cases/postgres run the same Run.
//
// Times: stores keep UTC with microsecond precision and normalise the
// values they are given on Put, so the suite writes times with
// nanoseconds and a non-UTC zone and expects them back truncated to the
// microsecond. Event payloads are compared as JSON values, since a store
// may reorder keys (PostgreSQL's jsonb does).
package casetest

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/concord-odr/concord/cases"
)

// Run runs the contract suite. open must return a new, empty, migrated
// store for each call and register its cleanup on t. Subtests run in
// parallel, each on its own store.
func Run(t *testing.T, open func(t *testing.T) cases.Store) {
	tests := []struct {
		name string
		fn   func(*testing.T, cases.Store)
	}{
		{"Institution", testInstitution},
		{"CaseInsertUpdate", testCaseInsertUpdate},
		{"StaleVersion", testStaleVersion},
		{"Duplicates", testDuplicates},
		{"CaseByExternalRef", testCaseByExternalRef},
		{"NextCaseSeq", testNextCaseSeq},
		{"Sessions", testSessions},
		{"Events", testEvents},
		{"Rollback", testRollback},
		{"ViewIsolation", testViewIsolation},
		{"ViewReadOnly", testViewReadOnly},
		{"ConcurrentUpdates", testConcurrentUpdates},
		{"ConcurrentAppends", testConcurrentAppends},
		{"NotFound", testNotFound},
		{"ServiceLifecycle", testServiceLifecycle},
		{"ServiceAdjourned", testServiceAdjourned},
		{"Directory", testDirectory},
		{"IdempotencyStore", testIdempotencyStore},
		{"ListCases", testListCases},
		{"ServicePaths", testServicePaths},
		{"ServiceGuards", testServiceGuards},
		{"ServiceDeadlines", testServiceDeadlines},
		{"ServiceRace", testServiceRace},
		{"ServiceIdempotentOpen", testServiceIdempotentOpen},
		{"ServiceListing", testServiceListing},
		{"ServiceDirectory", testServiceDirectory},
		{"Accounts", testAccounts},
		{"StaffSessions", testStaffSessions},
		{"JoinLinks", testJoinLinks},
		{"Revocations", testRevocations},
		{"Outbox", testOutbox},
		{"OutboxConcurrentClaims", testOutboxConcurrentClaims},
		{"ListCasesScope", testListCasesScope},
		{"IdentityReadOnly", testIdentityReadOnly},
	}
	tests = append(tests, agreementTests()...)
	tests = append(tests, odrTests()...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, open(t))
		})
	}
}

// base is the suite's reference time: nanoseconds and a non-UTC zone, so
// that normalisation by the store is visible.
var base = time.Date(2025, 3, 14, 9, 26, 53, 589793238, time.FixedZone("CST", 8*3600))

// micro returns t as a store keeps it.
func micro(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

func update(t *testing.T, s cases.Store, fn func(cases.Tx) error) {
	t.Helper()
	if err := s.Update(t.Context(), fn); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

func view(t *testing.T, s cases.Store, fn func(cases.Tx) error) {
	t.Helper()
	if err := s.View(t.Context(), fn); err != nil {
		t.Fatalf("View: %v", err)
	}
}

// wantCode fails the test unless err carries the domain code.
func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := cases.ErrorCode(err); got != code {
		t.Fatalf("error code = %q (err %v), want %q", got, err, code)
	}
}

// sameJSON fails the test unless got and want encode to the same JSON.
// Times encode in RFC 3339 with their zone, so this also checks that the
// store returns UTC.
func sameJSON(t *testing.T, what string, got, want any) {
	t.Helper()
	g, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	w, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(g, w) {
		t.Fatalf("%s differs:\n got %s\nwant %s", what, g, w)
	}
}

// sameValue reports whether two JSON documents hold the same value.
// Empty documents are equal to each other only.
func sameValue(a, b json.RawMessage) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// sameEvents fails the test unless got and want are the same events.
func sameEvents(t *testing.T, got, want []cases.Event) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d events, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.CaseID != w.CaseID || g.Seq != w.Seq || g.Type != w.Type || g.Actor != w.Actor ||
			!g.At.Equal(w.At) || g.At.Location() != time.UTC || !sameValue(g.Payload, w.Payload) {
			t.Fatalf("event %d:\n got %+v (payload %s)\nwant %+v (payload %s)", i, g, g.Payload, w, w.Payload)
		}
	}
}

func newInstitution(id string) *cases.Institution {
	return &cases.Institution{
		ID:        id,
		Code:      "0310",
		Name:      "Xuhui District People's Mediation Committee",
		Level:     "district",
		ParentID:  "inst_shanghai",
		Status:    "active",
		CreatedAt: base,
	}
}

// caseAmount is the claimed amount of the cases newCase returns.
const caseAmount = 12990

func newCase(id, number, channel, ref string) *cases.Case {
	return &cases.Case{
		ID:            id,
		Number:        number,
		InstitutionID: "inst_a",
		State:         cases.StateSubmitted,
		Category:      "e-commerce",
		Channel:       channel,
		ExternalRef:   ref,
		Applicant:     cases.Party{Name: "李华", Kind: "person", Phone: "+86 138 0000 0000"},
		Respondent:    cases.Party{Name: "Shop Ltd", Kind: "organisation"},
		Claims:        "refund of a faulty kettle",
		AmountCents:   caseAmount,
		CreatedAt:     base,
		UpdatedAt:     base,
	}
}

// putCase inserts a new case in its own transaction.
func putCase(t *testing.T, s cases.Store, c *cases.Case) {
	t.Helper()
	update(t, s, func(tx cases.Tx) error { return tx.PutCase(t.Context(), c) })
}

func getCase(t *testing.T, s cases.Store, id string) *cases.Case {
	t.Helper()
	var c *cases.Case
	view(t, s, func(tx cases.Tx) error {
		var err error
		c, err = tx.Case(t.Context(), id)
		return err
	})
	return c
}

func getEvents(t *testing.T, s cases.Store, caseID string) []cases.Event {
	t.Helper()
	var list []cases.Event
	view(t, s, func(tx cases.Tx) error {
		var err error
		list, err = tx.Events(t.Context(), caseID)
		return err
	})
	return list
}

// wantSeqs fails the test unless events are numbered 1..n.
func wantSeqs(t *testing.T, events []cases.Event, n int) {
	t.Helper()
	if len(events) != n {
		t.Fatalf("got %d events, want %d", len(events), n)
	}
	for i, e := range events {
		if e.Seq != int64(i+1) {
			t.Fatalf("event %d has seq %d, want %d", i, e.Seq, i+1)
		}
	}
}

// contains reports whether s contains sub, ignoring case.
func contains(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}

package casetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/concord-odr/concord/cases"
)

func testInstitution(t *testing.T, s cases.Store) {
	ctx := t.Context()
	inst := newInstitution("inst_a")
	update(t, s, func(tx cases.Tx) error { return tx.PutInstitution(ctx, inst) })
	if !inst.CreatedAt.Equal(micro(base)) || inst.CreatedAt.Location() != time.UTC {
		t.Fatalf("PutInstitution left CreatedAt = %v, want %v", inst.CreatedAt, micro(base))
	}
	var got *cases.Institution
	view(t, s, func(tx cases.Tx) error {
		var err error
		got, err = tx.Institution(ctx, "inst_a")
		return err
	})
	sameJSON(t, "institution", got, inst)

	// Put replaces.
	inst.Status = "suspended"
	inst.Name = "Renamed"
	update(t, s, func(tx cases.Tx) error { return tx.PutInstitution(ctx, inst) })
	view(t, s, func(tx cases.Tx) error {
		var err error
		got, err = tx.Institution(ctx, "inst_a")
		return err
	})
	sameJSON(t, "replaced institution", got, inst)
}

func testCaseInsertUpdate(t *testing.T, s cases.Store) {
	ctx := t.Context()
	c := newCase("case_1", "2025-0310-000001", "online", "")
	putCase(t, s, c)
	if c.Version != 1 {
		t.Fatalf("after insert Version = %d, want 1", c.Version)
	}
	if !c.CreatedAt.Equal(micro(base)) || c.CreatedAt.Location() != time.UTC {
		t.Fatalf("PutCase left CreatedAt = %v, want %v", c.CreatedAt, micro(base))
	}
	got := getCase(t, s, "case_1")
	sameJSON(t, "inserted case", got, c)

	// Update through a read-modify-write in one transaction.
	update(t, s, func(tx cases.Tx) error {
		c, err := tx.Case(ctx, "case_1")
		if err != nil {
			return err
		}
		c.State = cases.StateClosed
		c.UpdatedAt = base.Add(time.Hour + 999*time.Nanosecond)
		c.Outcome = &cases.Outcome{
			Result:     cases.ResultNotSettled,
			Remedies:   []string{"arbitration", "online litigation"},
			SessionID:  "s_1",
			RecordedBy: "p_mediator",
			RecordedAt: base.Add(time.Hour + 1),
		}
		if err := tx.PutCase(ctx, c); err != nil {
			return err
		}
		if c.Version != 2 {
			return fmt.Errorf("after update Version = %d, want 2", c.Version)
		}
		got = c
		return nil
	})
	if !got.Outcome.RecordedAt.Equal(micro(base.Add(time.Hour))) {
		t.Fatalf("Outcome.RecordedAt = %v, want %v", got.Outcome.RecordedAt, micro(base.Add(time.Hour)))
	}
	sameJSON(t, "updated case", getCase(t, s, "case_1"), got)

	// A second update from the current version.
	got.Claims = "refund and compensation"
	putCase(t, s, got)
	if got.Version != 3 {
		t.Fatalf("after second update Version = %d, want 3", got.Version)
	}
	sameJSON(t, "case after second update", getCase(t, s, "case_1"), got)
}

func testStaleVersion(t *testing.T, s cases.Store) {
	ctx := t.Context()
	putCase(t, s, newCase("case_1", "N-1", "online", ""))
	a := getCase(t, s, "case_1")
	b := getCase(t, s, "case_1")
	a.State = cases.StateDispatched
	putCase(t, s, a)

	b.State = cases.StateClosed
	err := s.Update(ctx, func(tx cases.Tx) error { return tx.PutCase(ctx, b) })
	wantCode(t, err, cases.ECONFLICT)
	if b.Version != 1 {
		t.Fatalf("a failed Put changed Version to %d", b.Version)
	}
	if got := getCase(t, s, "case_1"); got.State != cases.StateDispatched || got.Version != 2 {
		t.Fatalf("stored case = %s v%d, want dispatched v2", got.State, got.Version)
	}

	// A version that never existed, and a second insert of the same id.
	ghost := newCase("case_ghost", "N-2", "online", "")
	ghost.Version = 3
	err = s.Update(ctx, func(tx cases.Tx) error { return tx.PutCase(ctx, ghost) })
	wantCode(t, err, cases.ECONFLICT)
	again := newCase("case_1", "N-3", "online", "")
	err = s.Update(ctx, func(tx cases.Tx) error { return tx.PutCase(ctx, again) })
	wantCode(t, err, cases.ECONFLICT)
}

func testDuplicates(t *testing.T, s cases.Store) {
	ctx := t.Context()
	putCase(t, s, newCase("case_1", "N-1", "12315", "12315-0001"))

	for _, tt := range []struct {
		name string
		c    *cases.Case
		code string
	}{
		{"same channel and ref", newCase("case_2", "N-2", "12315", "12315-0001"), cases.ECONFLICT},
		{"same number", newCase("case_3", "N-1", "online", ""), cases.ECONFLICT},
		{"same ref on another channel", newCase("case_4", "N-4", "portal", "12315-0001"), ""},
		{"empty ref", newCase("case_5", "N-5", "12315", ""), ""},
		{"another empty ref", newCase("case_6", "N-6", "12315", ""), ""},
	} {
		err := s.Update(ctx, func(tx cases.Tx) error { return tx.PutCase(ctx, tt.c) })
		if cases.ErrorCode(err) != tt.code {
			t.Errorf("%s: err = %v, want code %q", tt.name, err, tt.code)
		}
	}

	// An update may not take another case's number or reference either.
	c := getCase(t, s, "case_6")
	c.Number = "N-1"
	err := s.Update(ctx, func(tx cases.Tx) error { return tx.PutCase(ctx, c) })
	wantCode(t, err, cases.ECONFLICT)
	c = getCase(t, s, "case_6")
	c.ExternalRef = "12315-0001"
	err = s.Update(ctx, func(tx cases.Tx) error { return tx.PutCase(ctx, c) })
	wantCode(t, err, cases.ECONFLICT)
}

func testCaseByExternalRef(t *testing.T, s cases.Store) {
	ctx := t.Context()
	c1 := newCase("case_1", "N-1", "12315", "12315-0001")
	c2 := newCase("case_2", "N-2", "portal", "12315-0001")
	c3 := newCase("case_3", "N-3", "12315", "")
	for _, c := range []*cases.Case{c1, c2, c3} {
		putCase(t, s, c)
	}
	for _, tt := range []struct {
		channel, ref string
		want         *cases.Case
	}{
		{"12315", "12315-0001", c1},
		{"portal", "12315-0001", c2},
		{"12315", "12315-0002", nil},
		{"online", "12315-0001", nil},
		{"12315", "", nil}, // an empty reference matches nothing
	} {
		for _, mode := range []string{"view", "update"} {
			run := s.View
			if mode == "update" {
				run = s.Update
			}
			var got *cases.Case
			err := run(ctx, func(tx cases.Tx) error {
				var err error
				got, err = tx.CaseByExternalRef(ctx, tt.channel, tt.ref)
				return err
			})
			if tt.want == nil {
				if cases.ErrorCode(err) != cases.ENOTFOUND {
					t.Errorf("%s (%q, %q): err = %v, want not_found", mode, tt.channel, tt.ref, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("%s (%q, %q): %v", mode, tt.channel, tt.ref, err)
			}
			sameJSON(t, "case by external ref", got, tt.want)
		}
	}
}

func testNextCaseSeq(t *testing.T, s cases.Store) {
	ctx := t.Context()
	next := func(tx cases.Tx, inst string, year int, want int64) error {
		got, err := tx.NextCaseSeq(ctx, inst, year)
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("NextCaseSeq(%s, %d) = %d, want %d", inst, year, got, want)
		}
		return nil
	}
	update(t, s, func(tx cases.Tx) error {
		return errors.Join(
			next(tx, "inst_a", 2025, 1),
			next(tx, "inst_a", 2025, 2),
			next(tx, "inst_b", 2025, 1),
			next(tx, "inst_a", 2026, 1),
			next(tx, "inst_a", 2025, 3),
		)
	})
	update(t, s, func(tx cases.Tx) error { return next(tx, "inst_a", 2025, 4) })

	// A rolled-back transaction gives its number back.
	errRollback := errors.New("roll back")
	err := s.Update(ctx, func(tx cases.Tx) error {
		if err := next(tx, "inst_a", 2025, 5); err != nil {
			return err
		}
		return errRollback
	})
	if err != errRollback {
		t.Fatalf("Update = %v, want %v", err, errRollback)
	}
	update(t, s, func(tx cases.Tx) error {
		return errors.Join(next(tx, "inst_a", 2025, 5), next(tx, "inst_b", 2025, 2))
	})
}

func newSession(id, caseID string, created time.Time) *cases.Session {
	scheduled := base.Add(24*time.Hour + 7)
	left := base.Add(30*time.Minute + 5)
	return &cases.Session{
		ID:          id,
		CaseID:      caseID,
		Mode:        "joint",
		Status:      cases.SessionScheduled,
		ScheduledAt: &scheduled,
		Participants: []cases.Participant{
			{ID: "p_med", Name: "王调解员", Role: cases.RoleMediator, Side: cases.SideNeutral},
			{ID: "p_app", Name: "李华", Role: cases.RoleParty, Side: cases.SideApplicant},
			{ID: "p_resp", Name: "Shop agent", Role: cases.RoleParty, Side: cases.SideRespondent},
		},
		Attendance: []cases.Attendance{
			{ParticipantID: "p_app", JoinedAt: base.Add(3), LeftAt: &left},
			{ParticipantID: "p_med", JoinedAt: base.Add(time.Minute + 3)},
		},
		CreatedAt: created,
	}
}

func testSessions(t *testing.T, s cases.Store) {
	ctx := t.Context()
	putCase(t, s, newCase("case_1", "N-1", "online", ""))
	putCase(t, s, newCase("case_2", "N-2", "online", ""))
	// Listed by creation time, then id.
	sb := newSession("s_b", "case_1", base)
	sa := newSession("s_a", "case_1", base)
	s0 := newSession("s_0", "case_1", base.Add(-time.Minute))
	sz := newSession("s_z", "case_1", base.Add(time.Minute))
	other := newSession("s_other", "case_2", base)
	update(t, s, func(tx cases.Tx) error {
		for _, sess := range []*cases.Session{sb, sz, sa, other, s0} {
			if err := tx.PutSession(ctx, sess); err != nil {
				return err
			}
			if sess.Version != 1 {
				return fmt.Errorf("session %s: Version = %d after insert, want 1", sess.ID, sess.Version)
			}
		}
		return nil
	})
	if got, want := *sb.Attendance[0].LeftAt, micro(base.Add(30*time.Minute)); !got.Equal(want) || got.Location() != time.UTC {
		t.Fatalf("PutSession left Attendance[0].LeftAt = %v, want %v", got, want)
	}

	var got *cases.Session
	var list []cases.Session
	view(t, s, func(tx cases.Tx) error {
		var err error
		if got, err = tx.Session(ctx, "s_b"); err != nil {
			return err
		}
		list, err = tx.Sessions(ctx, "case_1")
		return err
	})
	sameJSON(t, "session", got, sb)
	sameJSON(t, "sessions of case_1", list, []*cases.Session{s0, sa, sb, sz})

	// Update with versioning.
	stale := *got
	got.Status = cases.SessionLive
	started := base.Add(time.Minute + 3)
	got.StartedAt = &started
	got.Attendance = append(got.Attendance, cases.Attendance{ParticipantID: "p_resp", JoinedAt: base.Add(2 * time.Minute)})
	update(t, s, func(tx cases.Tx) error { return tx.PutSession(ctx, got) })
	if got.Version != 2 {
		t.Fatalf("after update Version = %d, want 2", got.Version)
	}
	var again *cases.Session
	view(t, s, func(tx cases.Tx) error {
		var err error
		again, err = tx.Session(ctx, "s_b")
		return err
	})
	sameJSON(t, "updated session", again, got)

	err := s.Update(ctx, func(tx cases.Tx) error { return tx.PutSession(ctx, &stale) })
	wantCode(t, err, cases.ECONFLICT)
	dup := newSession("s_a", "case_1", base)
	err = s.Update(ctx, func(tx cases.Tx) error { return tx.PutSession(ctx, dup) })
	wantCode(t, err, cases.ECONFLICT)
	orphan := newSession("s_orphan", "case_missing", base)
	err = s.Update(ctx, func(tx cases.Tx) error { return tx.PutSession(ctx, orphan) })
	wantCode(t, err, cases.ENOTFOUND)
}

func testEvents(t *testing.T, s cases.Store) {
	ctx := t.Context()
	putCase(t, s, newCase("case_1", "N-1", "online", ""))
	putCase(t, s, newCase("case_2", "N-2", "online", ""))
	payloads := []string{
		`{"b": 1, "a": [1, 2, {"y": null, "x": "中文"}]}`,
		``,
		`"text"`,
		`{"nested": {"z": true, "y": 1.5}}`,
		`[]`,
	}
	var want []cases.Event
	update(t, s, func(tx cases.Tx) error {
		for i, p := range payloads {
			e := &cases.Event{
				CaseID: "case_1", Type: fmt.Sprintf("test.%d", i), Actor: "actor",
				At: base.Add(time.Duration(i)*time.Second + 123), Payload: json.RawMessage(p),
			}
			if p == "" {
				e.Payload = nil
			}
			if err := tx.AppendEvent(ctx, e); err != nil {
				return err
			}
			if e.Seq != int64(i+1) {
				return fmt.Errorf("event %d got Seq %d", i, e.Seq)
			}
			if !e.At.Equal(micro(e.At)) || e.At.Location() != time.UTC {
				return fmt.Errorf("AppendEvent left At = %v", e.At)
			}
			want = append(want, *e)
		}
		// Another case has its own sequence.
		e := &cases.Event{CaseID: "case_2", Type: "test.other", At: base}
		if err := tx.AppendEvent(ctx, e); err != nil {
			return err
		}
		if e.Seq != 1 {
			return fmt.Errorf("first event of case_2 got Seq %d", e.Seq)
		}
		return nil
	})
	sameEvents(t, getEvents(t, s, "case_1"), want)

	// A later transaction continues the sequence.
	update(t, s, func(tx cases.Tx) error {
		e := &cases.Event{CaseID: "case_1", Type: "test.later", Actor: "a", At: base}
		if err := tx.AppendEvent(ctx, e); err != nil {
			return err
		}
		want = append(want, *e)
		return nil
	})
	got := getEvents(t, s, "case_1")
	sameEvents(t, got, want)
	wantSeqs(t, got, len(payloads)+1)

	err := s.Update(ctx, func(tx cases.Tx) error {
		return tx.AppendEvent(ctx, &cases.Event{CaseID: "case_missing", Type: "test", At: base})
	})
	wantCode(t, err, cases.ENOTFOUND)
	err = s.Update(ctx, func(tx cases.Tx) error {
		return tx.AppendEvent(ctx, &cases.Event{CaseID: "case_1", Type: "test", At: base, Payload: json.RawMessage(`{"a":`)})
	})
	wantCode(t, err, cases.EINVALID)
}

// errBoom is the error the suite's failing transactions return.
var errBoom = errors.New("boom")

func testRollback(t *testing.T, s cases.Store) {
	ctx := t.Context()
	old := newCase("case_old", "N-1", "online", "ref-old")
	putCase(t, s, old)
	oldSession := newSession("s_old", "case_old", base)
	update(t, s, func(tx cases.Tx) error {
		if err := tx.PutSession(ctx, oldSession); err != nil {
			return err
		}
		return tx.AppendEvent(ctx, &cases.Event{CaseID: "case_old", Type: "case.submitted", At: base})
	})
	oldEvents := getEvents(t, s, "case_old")

	// Everything written in a failing Update disappears: new rows and
	// changes to existing ones alike.
	err := s.Update(ctx, func(tx cases.Tx) error {
		if err := tx.PutCase(ctx, newCase("case_new", "N-2", "online", "ref-new")); err != nil {
			return err
		}
		if err := tx.PutSession(ctx, newSession("s_new", "case_new", base)); err != nil {
			return err
		}
		for _, id := range []string{"case_new", "case_new", "case_old"} {
			if err := tx.AppendEvent(ctx, &cases.Event{CaseID: id, Type: "test.lost", At: base}); err != nil {
				return err
			}
		}
		c, err := tx.Case(ctx, "case_old")
		if err != nil {
			return err
		}
		c.State = cases.StateClosed
		if err := tx.PutCase(ctx, c); err != nil {
			return err
		}
		sess, err := tx.Session(ctx, "s_old")
		if err != nil {
			return err
		}
		sess.Status = cases.SessionEnded
		if err := tx.PutSession(ctx, sess); err != nil {
			return err
		}
		if err := tx.PutInstitution(ctx, newInstitution("inst_lost")); err != nil {
			return err
		}
		return errBoom
	})
	if err != errBoom {
		t.Fatalf("Update returned %v, want the function's error unchanged", err)
	}
	// A domain error comes back as the same value too.
	domainErr := cases.Errorf(cases.ETRANSITION, "no")
	if err := s.Update(ctx, func(cases.Tx) error { return domainErr }); err != error(domainErr) {
		t.Fatalf("Update returned %v, want the function's error unchanged", err)
	}

	view(t, s, func(tx cases.Tx) error {
		_, err := tx.Case(ctx, "case_new")
		wantCode(t, err, cases.ENOTFOUND)
		_, err = tx.CaseByExternalRef(ctx, "online", "ref-new")
		wantCode(t, err, cases.ENOTFOUND)
		_, err = tx.Session(ctx, "s_new")
		wantCode(t, err, cases.ENOTFOUND)
		_, err = tx.Institution(ctx, "inst_lost")
		wantCode(t, err, cases.ENOTFOUND)
		if evs, err := tx.Events(ctx, "case_new"); err != nil || len(evs) != 0 {
			t.Errorf("events of the rolled-back case = %v, %v; want none", evs, err)
		}
		c, err := tx.Case(ctx, "case_old")
		if err != nil {
			return err
		}
		sameJSON(t, "case after rollback", c, old)
		sess, err := tx.Session(ctx, "s_old")
		if err != nil {
			return err
		}
		sameJSON(t, "session after rollback", sess, oldSession)
		evs, err := tx.Events(ctx, "case_old")
		if err != nil {
			return err
		}
		sameEvents(t, evs, oldEvents)
		return nil
	})
}

func testViewIsolation(t *testing.T, s cases.Store) {
	ctx := t.Context()
	c := newCase("case_1", "N-1", "online", "")
	putCase(t, s, c)
	update(t, s, func(tx cases.Tx) error {
		return tx.AppendEvent(ctx, &cases.Event{CaseID: "case_1", Type: "case.submitted", At: base})
	})

	check := func(when string) {
		t.Helper()
		view(t, s, func(tx cases.Tx) error {
			got, err := tx.Case(ctx, "case_1")
			if err != nil {
				return err
			}
			if got.State != cases.StateSubmitted || got.Version != 1 {
				t.Errorf("%s: View sees case %s v%d, want submitted v1", when, got.State, got.Version)
			}
			evs, err := tx.Events(ctx, "case_1")
			if err != nil {
				return err
			}
			if len(evs) != 1 {
				t.Errorf("%s: View sees %d events, want 1", when, len(evs))
			}
			if _, err := tx.Case(ctx, "case_2"); cases.ErrorCode(err) != cases.ENOTFOUND {
				t.Errorf("%s: View sees an uncommitted case (err %v)", when, err)
			}
			return nil
		})
	}

	written := make(chan struct{})
	release := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- s.Update(ctx, func(tx cases.Tx) error {
			c, err := tx.Case(ctx, "case_1")
			if err != nil {
				return err
			}
			c.State = cases.StateDispatched
			if err := tx.PutCase(ctx, c); err != nil {
				return err
			}
			if err := tx.AppendEvent(ctx, &cases.Event{CaseID: "case_1", Type: "case.dispatched", At: base}); err != nil {
				return err
			}
			if err := tx.PutCase(ctx, newCase("case_2", "N-2", "online", "")); err != nil {
				return err
			}
			close(written)
			<-release
			return errBoom
		})
	}()
	select {
	case <-written:
	case err := <-done:
		t.Fatalf("Update ended before writing: %v", err)
	}
	check("during the Update")
	close(release)
	if err := <-done; err != errBoom {
		t.Fatalf("Update = %v, want %v", err, errBoom)
	}
	check("after the failed Update")
}

func testViewReadOnly(t *testing.T, s cases.Store) {
	ctx := t.Context()
	putCase(t, s, newCase("case_1", "N-1", "online", ""))
	writes := map[string]func(cases.Tx) error{
		"PutInstitution": func(tx cases.Tx) error { return tx.PutInstitution(ctx, newInstitution("inst_x")) },
		"PutCase":        func(tx cases.Tx) error { return tx.PutCase(ctx, newCase("case_x", "N-X", "online", "")) },
		"PutSession":     func(tx cases.Tx) error { return tx.PutSession(ctx, newSession("s_x", "case_1", base)) },
		"AppendEvent": func(tx cases.Tx) error {
			return tx.AppendEvent(ctx, &cases.Event{CaseID: "case_1", Type: "test", At: base})
		},
		"NextCaseSeq": func(tx cases.Tx) error { _, err := tx.NextCaseSeq(ctx, "inst_a", 2025); return err },
	}
	for name, write := range writes {
		if err := s.View(ctx, write); err == nil {
			t.Errorf("%s inside View succeeded", name)
		}
	}
	view(t, s, func(tx cases.Tx) error {
		if _, err := tx.Case(ctx, "case_x"); cases.ErrorCode(err) != cases.ENOTFOUND {
			t.Errorf("a case written in View exists (err %v)", err)
		}
		if evs, err := tx.Events(ctx, "case_1"); err != nil || len(evs) != 0 {
			t.Errorf("events written in View: %v, %v", evs, err)
		}
		return nil
	})
	update(t, s, func(tx cases.Tx) error {
		n, err := tx.NextCaseSeq(ctx, "inst_a", 2025)
		if err == nil && n != 1 {
			err = fmt.Errorf("NextCaseSeq after View = %d, want 1", n)
		}
		return err
	})
}

// testConcurrentUpdates runs read-modify-write Updates of one case from
// many goroutines: each must succeed or fail with ECONFLICT, and the
// successes leave exactly one event each, numbered without gaps.
func testConcurrentUpdates(t *testing.T, s cases.Store) {
	ctx := t.Context()
	const n = 20
	putCase(t, s, newCase("case_1", "N-1", "online", ""))
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = s.Update(ctx, func(tx cases.Tx) error {
				c, err := tx.Case(ctx, "case_1")
				if err != nil {
					return err
				}
				c.AmountCents++
				c.UpdatedAt = base.Add(time.Duration(i) * time.Second)
				if err := tx.PutCase(ctx, c); err != nil {
					return err
				}
				return tx.AppendEvent(ctx, &cases.Event{
					CaseID: "case_1", Type: "test.bumped", Actor: fmt.Sprint(i), At: c.UpdatedAt,
				})
			})
		})
	}
	wg.Wait()
	ok := 0
	for i, err := range errs {
		switch cases.ErrorCode(err) {
		case "":
			ok++
		case cases.ECONFLICT:
		default:
			t.Errorf("Update %d: %v", i, err)
		}
	}
	t.Logf("%d of %d concurrent Updates succeeded", ok, n)
	if ok == 0 {
		t.Fatal("no concurrent Update succeeded")
	}
	c := getCase(t, s, "case_1")
	if c.Version != int64(1+ok) || c.AmountCents != caseAmount+int64(ok) {
		t.Errorf("case after %d successful updates: v%d amount %d", ok, c.Version, c.AmountCents)
	}
	wantSeqs(t, getEvents(t, s, "case_1"), ok)
}

// testConcurrentAppends appends events to one case from many goroutines
// without reading the case first.
func testConcurrentAppends(t *testing.T, s cases.Store) {
	ctx := t.Context()
	const n = 10
	putCase(t, s, newCase("case_1", "N-1", "online", ""))
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = s.Update(ctx, func(tx cases.Tx) error {
				return tx.AppendEvent(ctx, &cases.Event{CaseID: "case_1", Type: "test.appended", Actor: fmt.Sprint(i), At: base})
			})
		})
	}
	wg.Wait()
	ok := 0
	for i, err := range errs {
		switch cases.ErrorCode(err) {
		case "":
			ok++
		case cases.ECONFLICT:
		default:
			t.Errorf("Update %d: %v", i, err)
		}
	}
	t.Logf("%d of %d concurrent appends succeeded", ok, n)
	if ok == 0 {
		t.Fatal("no concurrent append succeeded")
	}
	wantSeqs(t, getEvents(t, s, "case_1"), ok)
}

func testNotFound(t *testing.T, s cases.Store) {
	ctx := t.Context()
	for _, mode := range []string{"view", "update"} {
		run := s.View
		if mode == "update" {
			run = s.Update
		}
		err := run(ctx, func(tx cases.Tx) error {
			for name, get := range map[string]func() error{
				"Institution":       func() error { _, err := tx.Institution(ctx, "nope"); return err },
				"Case":              func() error { _, err := tx.Case(ctx, "nope"); return err },
				"CaseByExternalRef": func() error { _, err := tx.CaseByExternalRef(ctx, "online", "nope"); return err },
				"Session":           func() error { _, err := tx.Session(ctx, "nope"); return err },
			} {
				err := get()
				if cases.ErrorCode(err) != cases.ENOTFOUND {
					t.Errorf("%s: %s = %v, want not_found", mode, name, err)
				}
			}
			if list, err := tx.Sessions(ctx, "nope"); err != nil || len(list) != 0 {
				t.Errorf("%s: Sessions of an unknown case = %v, %v", mode, list, err)
			}
			if list, err := tx.Events(ctx, "nope"); err != nil || len(list) != 0 {
				t.Errorf("%s: Events of an unknown case = %v, %v", mode, list, err)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
	}
}

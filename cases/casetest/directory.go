package casetest

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/concord-odr/concord/cases"
)

func testDirectory(t *testing.T, s cases.Store) {
	ctx := t.Context()
	b := newInstitution("inst_b")
	b.Code = "0200"
	a := newInstitution("inst_a")
	a.Code = "0100"
	update(t, s, func(tx cases.Tx) error {
		return errors.Join(tx.PutInstitution(ctx, b), tx.PutInstitution(ctx, a))
	})
	view(t, s, func(tx cases.Tx) error {
		list, err := tx.Institutions(ctx)
		if err != nil {
			return err
		}
		sameJSON(t, "institutions by code", list, []*cases.Institution{a, b})
		return nil
	})

	// Mediators belong to an existing institution and list by name.
	m2 := &cases.Mediator{ID: "med_2", InstitutionID: "inst_a", Name: "Zhou", Status: cases.MediatorActive, CreatedAt: base}
	m1 := &cases.Mediator{ID: "med_1", InstitutionID: "inst_a", Name: "Chen", Status: cases.MediatorActive, CreatedAt: base}
	m3 := &cases.Mediator{ID: "med_3", InstitutionID: "inst_b", Name: "Wang", Status: cases.MediatorActive, CreatedAt: base}
	update(t, s, func(tx cases.Tx) error {
		return errors.Join(tx.PutMediator(ctx, m2), tx.PutMediator(ctx, m1), tx.PutMediator(ctx, m3))
	})
	if !m1.CreatedAt.Equal(micro(base)) || m1.CreatedAt.Location() != time.UTC {
		t.Fatalf("PutMediator left CreatedAt = %v", m1.CreatedAt)
	}
	m1.Status = cases.MediatorInactive
	update(t, s, func(tx cases.Tx) error { return tx.PutMediator(ctx, m1) })
	view(t, s, func(tx cases.Tx) error {
		got, err := tx.Mediator(ctx, "med_1")
		if err != nil {
			return err
		}
		sameJSON(t, "mediator", got, m1)
		list, err := tx.Mediators(ctx, "inst_a")
		if err != nil {
			return err
		}
		sameJSON(t, "mediators of inst_a", list, []*cases.Mediator{m1, m2})
		if list, err := tx.Mediators(ctx, "inst_none"); err != nil || len(list) != 0 {
			t.Errorf("mediators of an unknown institution: %v, %v", list, err)
		}
		_, err = tx.Mediator(ctx, "med_none")
		wantCode(t, err, cases.ENOTFOUND)
		return nil
	})
	orphan := &cases.Mediator{ID: "med_x", InstitutionID: "inst_none", Name: "X", Status: cases.MediatorActive, CreatedAt: base}
	err := s.Update(ctx, func(tx cases.Tx) error { return tx.PutMediator(ctx, orphan) })
	wantCode(t, err, cases.ENOTFOUND)

	// Enterprises are known by credit code and replaced in place.
	e := &cases.Enterprise{CreditCode: "91310000MA1FL0AB2C", Name: "Shop Ltd", Status: cases.EnterpriseEnrolled, CreatedAt: base, UpdatedAt: base}
	update(t, s, func(tx cases.Tx) error { return tx.PutEnterprise(ctx, e) })
	e.Status = cases.EnterpriseWithdrawn
	e.UpdatedAt = base.Add(time.Hour)
	update(t, s, func(tx cases.Tx) error { return tx.PutEnterprise(ctx, e) })
	view(t, s, func(tx cases.Tx) error {
		got, err := tx.Enterprise(ctx, e.CreditCode)
		if err != nil {
			return err
		}
		sameJSON(t, "enterprise", got, e)
		_, err = tx.Enterprise(ctx, "91310000MA1FL0AB2X")
		wantCode(t, err, cases.ENOTFOUND)
		return nil
	})

	// None of the new writes works in a View.
	for name, write := range map[string]func(cases.Tx) error{
		"PutMediator":    func(tx cases.Tx) error { return tx.PutMediator(ctx, m3) },
		"PutEnterprise":  func(tx cases.Tx) error { return tx.PutEnterprise(ctx, e) },
		"PutIdempotency": func(tx cases.Tx) error { return tx.PutIdempotency(ctx, newRecord("k-view", "h")) },
	} {
		if err := s.View(ctx, write); err == nil {
			t.Errorf("%s inside View succeeded", name)
		}
	}
}

func newRecord(key, hash string) *cases.IdempotencyRecord {
	return &cases.IdempotencyRecord{
		Scope: "operator:POST /api/v1/cases", Key: key, RequestHash: hash, CaseID: "case_1",
		Status: 201, Response: []byte(`{"id":"case_1",  "b":1, "a":2}` + "\n"), CreatedAt: base,
	}
}

func testIdempotencyStore(t *testing.T, s cases.Store) {
	ctx := t.Context()
	r := newRecord("key-1", "hash-1")
	update(t, s, func(tx cases.Tx) error { return tx.PutIdempotency(ctx, r) })
	view(t, s, func(tx cases.Tx) error {
		got, err := tx.Idempotency(ctx, r.Scope, "key-1")
		if err != nil {
			return err
		}
		// The response comes back byte for byte: it is replayed as is.
		if !bytes.Equal(got.Response, r.Response) || got.RequestHash != "hash-1" || got.Status != 201 ||
			got.CaseID != "case_1" || !got.CreatedAt.Equal(micro(base)) {
			t.Errorf("record = %+v (response %q), want %+v", got, got.Response, r)
		}
		_, err = tx.Idempotency(ctx, "other scope", "key-1")
		wantCode(t, err, cases.ENOTFOUND)
		return nil
	})
	err := s.Update(ctx, func(tx cases.Tx) error { return tx.PutIdempotency(ctx, newRecord("key-1", "hash-2")) })
	wantCode(t, err, cases.ECONFLICT)

	// The same key in another scope is another key; a rolled-back one is
	// gone.
	other := newRecord("key-1", "hash-3")
	other.Scope = "public:POST /api/v1/intake"
	update(t, s, func(tx cases.Tx) error { return tx.PutIdempotency(ctx, other) })
	err = s.Update(ctx, func(tx cases.Tx) error {
		if err := tx.PutIdempotency(ctx, newRecord("key-2", "h")); err != nil {
			return err
		}
		return errBoom
	})
	if err != errBoom {
		t.Fatalf("Update = %v", err)
	}
	view(t, s, func(tx cases.Tx) error {
		_, err := tx.Idempotency(ctx, r.Scope, "key-2")
		wantCode(t, err, cases.ENOTFOUND)
		return nil
	})
}

// testListCases checks each filter of ListCases, its order and its seek.
func testListCases(t *testing.T, s cases.Store) {
	ctx := t.Context()
	type spec struct {
		id, inst, category string
		state              cases.State
		created            time.Duration // after base
		due                time.Duration // after base; 0: no pending deadline
	}
	specs := []spec{
		{"case_c", "inst_a", "e-commerce", cases.StateSubmitted, 2 * time.Hour, 0},
		{"case_a", "inst_a", "e-commerce", cases.StateDispatched, time.Hour, 72 * time.Hour},
		{"case_b", "inst_b", "online-payment", cases.StateDispatched, time.Hour, 24 * time.Hour},
		{"case_d", "inst_b", "e-commerce", cases.StateReconciliation, 48 * time.Hour, 96 * time.Hour},
		{"case_e", "inst_a", "online-payment", cases.StateClosed, 72 * time.Hour, 0},
	}
	for i, sp := range specs {
		c := newCase(sp.id, fmt.Sprint("N-", i), "online", "")
		c.InstitutionID = sp.inst
		c.Category = sp.category
		c.State = sp.state
		c.CreatedAt = base.Add(sp.created)
		if sp.due != 0 {
			c.Deadlines = []cases.Deadline{
				{Kind: cases.DeadlineReconciliation, StartedAt: c.CreatedAt, DueAt: base.Add(-time.Hour), MetAt: &c.CreatedAt},
				{Kind: cases.DeadlineRespondentContact, StartedAt: c.CreatedAt, DueDate: "2025-03-20", DueAt: base.Add(sp.due), WorkingDays: 3},
			}
		}
		putCase(t, s, c)
	}
	// A deadline met since is no longer pending.
	update(t, s, func(tx cases.Tx) error {
		c, err := tx.Case(ctx, "case_b")
		if err != nil {
			return err
		}
		met := base.Add(2 * time.Hour)
		c.Deadlines[1].MetAt = &met
		return tx.PutCase(ctx, c)
	})
	list := func(f cases.CaseFilter) []string {
		t.Helper()
		var ids []string
		view(t, s, func(tx cases.Tx) error {
			got, err := tx.ListCases(ctx, f)
			for _, c := range got {
				ids = append(ids, c.ID)
				if c.Version == 0 {
					t.Errorf("listed case %s has no version", c.ID)
				}
			}
			return err
		})
		return ids
	}
	for _, tt := range []struct {
		name string
		f    cases.CaseFilter
		want string
	}{
		{"all, by creation then id", cases.CaseFilter{}, "[case_a case_b case_c case_d case_e]"},
		{"limit", cases.CaseFilter{Limit: 2}, "[case_a case_b]"},
		{"state", cases.CaseFilter{State: cases.StateDispatched}, "[case_a case_b]"},
		{"institution", cases.CaseFilter{InstitutionID: "inst_b"}, "[case_b case_d]"},
		{"category", cases.CaseFilter{Category: "online-payment"}, "[case_b case_e]"},
		{"combined", cases.CaseFilter{InstitutionID: "inst_a", Category: "e-commerce", State: cases.StateSubmitted}, "[case_c]"},
		{"due by", cases.CaseFilter{DueBy: base.Add(72 * time.Hour)}, "[case_a]"},
		{"due by later", cases.CaseFilter{DueBy: base.Add(100 * time.Hour)}, "[case_a case_d]"},
		{"created from", cases.CaseFilter{CreatedFrom: base.Add(2 * time.Hour)}, "[case_c case_d case_e]"},
		{"created before", cases.CaseFilter{CreatedBefore: base.Add(2 * time.Hour)}, "[case_a case_b]"},
		{"after a tie", cases.CaseFilter{AfterCreatedAt: base.Add(time.Hour), AfterID: "case_a"}, "[case_b case_c case_d case_e]"},
		{"after, limited", cases.CaseFilter{AfterCreatedAt: base.Add(time.Hour), AfterID: "case_b", Limit: 2}, "[case_c case_d]"},
		{"after the last", cases.CaseFilter{AfterCreatedAt: base.Add(72 * time.Hour), AfterID: "case_e"}, "[]"},
		{"nothing", cases.CaseFilter{State: cases.StateReferred}, "[]"},
	} {
		if got := fmt.Sprint(list(tt.f)); got != tt.want {
			t.Errorf("%s: got %s, want %s", tt.name, got, tt.want)
		}
	}
}

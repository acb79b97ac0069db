package casetest

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/concord-odr/concord/cases"
)

func newAccount(id, login string, role cases.StaffRole, inst, ent string) *cases.Account {
	return &cases.Account{
		ID: id, Login: login, Name: "Name of " + login, Role: role,
		InstitutionID: inst, EnterpriseCode: ent, Status: cases.AccountActive,
		PasswordHash: "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5", TokenVersion: 1,
		PasswordChangedAt: base, CreatedAt: base, UpdatedAt: base.Add(time.Second),
	}
}

func putAccount(t *testing.T, s cases.Store, a *cases.Account) {
	t.Helper()
	update(t, s, func(tx cases.Tx) error { return tx.PutAccount(t.Context(), a) })
}

func testAccounts(t *testing.T, s cases.Store) {
	ctx := t.Context()
	a := newAccount("acct_1", "wang", cases.StaffMediator, "inst_a", "")
	a.MediatorID = "med_1"
	putAccount(t, s, a)
	if a.Version != 1 || !a.CreatedAt.Equal(micro(base)) || a.CreatedAt.Location() != time.UTC {
		t.Fatalf("after insert: version %d, created %v", a.Version, a.CreatedAt)
	}
	var got, byLogin *cases.Account
	view(t, s, func(tx cases.Tx) error {
		var err error
		if got, err = tx.Account(ctx, "acct_1"); err != nil {
			return err
		}
		byLogin, err = tx.AccountByLogin(ctx, "wang")
		return err
	})
	sameJSON(t, "account", got, a)
	if got.PasswordHash != a.PasswordHash || got.TokenVersion != 1 || byLogin.ID != "acct_1" {
		t.Fatalf("account read back: %+v / %+v", got, byLogin)
	}

	// Update with the version read; a stale version conflicts.
	got.TokenVersion = 2
	got.Status = cases.AccountDisabled
	got.PasswordHash = "$argon2id$other"
	got.MediatorID = "med_2"
	update(t, s, func(tx cases.Tx) error { return tx.PutAccount(ctx, got) })
	if got.Version != 2 {
		t.Fatalf("after update Version = %d", got.Version)
	}
	err := s.Update(ctx, func(tx cases.Tx) error { return tx.PutAccount(ctx, a) }) // a is at version 1
	wantCode(t, err, cases.ECONFLICT)
	view(t, s, func(tx cases.Tx) error {
		g, err := tx.Account(ctx, "acct_1")
		if err == nil && (g.TokenVersion != 2 || g.Status != cases.AccountDisabled || g.PasswordHash != "$argon2id$other" || g.MediatorID != "med_2") {
			err = fmt.Errorf("account after update: %+v", g)
		}
		return err
	})

	// A second account with the same login conflicts.
	err = s.Update(ctx, func(tx cases.Tx) error {
		return tx.PutAccount(ctx, newAccount("acct_2", "wang", cases.StaffMediator, "inst_a", ""))
	})
	wantCode(t, err, cases.ECONFLICT)

	putAccount(t, s, newAccount("acct_3", "admin", cases.StaffInstitutionAdmin, "inst_b", ""))
	putAccount(t, s, newAccount("acct_4", "shop", cases.StaffMerchantAgent, "", "91310000MA1FL0AB2C"))
	putAccount(t, s, newAccount("acct_5", "root", cases.StaffPlatformAdmin, "", ""))
	for _, tt := range []struct {
		name string
		f    cases.AccountFilter
		want []string
	}{
		{"all", cases.AccountFilter{}, []string{"acct_3", "acct_5", "acct_4", "acct_1"}},
		{"institutions", cases.AccountFilter{InstitutionIDs: []string{"inst_a", "inst_b"}}, []string{"acct_3", "acct_1"}},
		{"no institutions", cases.AccountFilter{InstitutionIDs: []string{}}, []string{}},
		{"role", cases.AccountFilter{Role: cases.StaffPlatformAdmin}, []string{"acct_5"}},
		{"enterprise", cases.AccountFilter{EnterpriseCode: "91310000MA1FL0AB2C"}, []string{"acct_4"}},
	} {
		var list []cases.Account
		view(t, s, func(tx cases.Tx) error {
			var err error
			list, err = tx.Accounts(ctx, tt.f)
			return err
		})
		ids := []string{}
		for _, a := range list {
			ids = append(ids, a.ID)
		}
		if !slices.Equal(ids, tt.want) {
			t.Errorf("Accounts %s = %v, want %v", tt.name, ids, tt.want)
		}
	}
	view(t, s, func(tx cases.Tx) error {
		_, err := tx.Account(ctx, "nope")
		wantCode(t, err, cases.ENOTFOUND)
		_, err = tx.AccountByLogin(ctx, "nope")
		wantCode(t, err, cases.ENOTFOUND)
		return nil
	})
}

func testStaffSessions(t *testing.T, s cases.Store) {
	ctx := t.Context()
	putAccount(t, s, newAccount("acct_1", "wang", cases.StaffMediator, "inst_a", ""))
	sess := &cases.StaffSession{ID: "ss_1", AccountID: "acct_1", CreatedAt: base, LastUsedAt: base, ExpiresAt: base.Add(time.Hour)}
	update(t, s, func(tx cases.Tx) error {
		if err := tx.PutStaffSession(ctx, sess); err != nil {
			return err
		}
		return tx.PutStaffSession(ctx, &cases.StaffSession{ID: "ss_2", AccountID: "acct_1", CreatedAt: base, LastUsedAt: base, ExpiresAt: base.Add(time.Hour)})
	})
	rt := &cases.RefreshToken{Hash: "h1", SessionID: "ss_1", CreatedAt: base, ExpiresAt: base.Add(time.Hour)}
	update(t, s, func(tx cases.Tx) error { return tx.PutRefreshToken(ctx, rt) })
	var gotS *cases.StaffSession
	var gotR *cases.RefreshToken
	view(t, s, func(tx cases.Tx) error {
		var err error
		if gotS, err = tx.StaffSession(ctx, "ss_1"); err != nil {
			return err
		}
		gotR, err = tx.RefreshToken(ctx, "h1")
		return err
	})
	sameJSON(t, "staff session", gotS, sess)
	sameJSON(t, "refresh token", gotR, rt)
	if !gotS.Active(base) || gotS.Active(base.Add(time.Hour)) {
		t.Fatal("Active is wrong")
	}

	// Rotating: the token is marked spent; a new one joins the session.
	update(t, s, func(tx cases.Tx) error {
		r, err := tx.RefreshToken(ctx, "h1")
		if err != nil {
			return err
		}
		at := base.Add(time.Minute + 1)
		r.RotatedAt = &at
		if err := tx.PutRefreshToken(ctx, r); err != nil {
			return err
		}
		return tx.PutRefreshToken(ctx, &cases.RefreshToken{Hash: "h2", SessionID: "ss_1", CreatedAt: at, ExpiresAt: base.Add(time.Hour)})
	})
	view(t, s, func(tx cases.Tx) error {
		r, err := tx.RefreshToken(ctx, "h1")
		if err == nil && (r.RotatedAt == nil || !r.RotatedAt.Equal(micro(base.Add(time.Minute)))) {
			err = fmt.Errorf("rotated token: %+v", r)
		}
		return err
	})

	// Revoking every session of the account.
	var n int
	update(t, s, func(tx cases.Tx) error {
		var err error
		n, err = tx.RevokeStaffSessions(ctx, "acct_1", "password_changed", base.Add(2*time.Minute))
		return err
	})
	if n != 2 {
		t.Fatalf("RevokeStaffSessions revoked %d, want 2", n)
	}
	update(t, s, func(tx cases.Tx) error {
		var err error
		n, err = tx.RevokeStaffSessions(ctx, "acct_1", "again", base.Add(3*time.Minute))
		return err
	})
	if n != 0 {
		t.Fatalf("second RevokeStaffSessions revoked %d, want 0", n)
	}
	view(t, s, func(tx cases.Tx) error {
		g, err := tx.StaffSession(ctx, "ss_2")
		if err == nil && (g.RevokedAt == nil || g.RevokeReason != "password_changed" || g.Active(base)) {
			err = fmt.Errorf("revoked session: %+v", g)
		}
		return err
	})

	// Unknown account or session.
	err := s.Update(ctx, func(tx cases.Tx) error {
		return tx.PutStaffSession(ctx, &cases.StaffSession{ID: "ss_x", AccountID: "nope", CreatedAt: base, LastUsedAt: base, ExpiresAt: base})
	})
	wantCode(t, err, cases.ENOTFOUND)
	err = s.Update(ctx, func(tx cases.Tx) error {
		return tx.PutRefreshToken(ctx, &cases.RefreshToken{Hash: "hx", SessionID: "nope", CreatedAt: base, ExpiresAt: base})
	})
	wantCode(t, err, cases.ENOTFOUND)
	view(t, s, func(tx cases.Tx) error {
		_, err := tx.StaffSession(ctx, "nope")
		wantCode(t, err, cases.ENOTFOUND)
		_, err = tx.RefreshToken(ctx, "nope")
		wantCode(t, err, cases.ENOTFOUND)
		return nil
	})
}

// sessionFixture writes a case with one session.
func sessionFixture(t *testing.T, s cases.Store) {
	t.Helper()
	putCase(t, s, newCase("case_1", "N-1", "online", ""))
	update(t, s, func(tx cases.Tx) error { return tx.PutSession(t.Context(), newSession("s_1", "case_1", base)) })
}

func testJoinLinks(t *testing.T, s cases.Store) {
	ctx := t.Context()
	sessionFixture(t, s)
	l1 := &cases.JoinLink{ID: "jl_1", CodeHash: "c1", CaseID: "case_1", SessionID: "s_1", ParticipantID: "p_app",
		CreatedBy: "staff:acct_1", CreatedAt: base, ExpiresAt: base.Add(72 * time.Hour)}
	l2 := &cases.JoinLink{ID: "jl_2", CodeHash: "c2", CaseID: "case_1", SessionID: "s_1", ParticipantID: "p_resp",
		CreatedBy: "operator", CreatedAt: base.Add(time.Second), ExpiresAt: base.Add(72 * time.Hour)}
	update(t, s, func(tx cases.Tx) error {
		if err := tx.PutJoinLink(ctx, l1); err != nil {
			return err
		}
		return tx.PutJoinLink(ctx, l2)
	})
	var got *cases.JoinLink
	var list []cases.JoinLink
	view(t, s, func(tx cases.Tx) error {
		var err error
		if got, err = tx.JoinLinkByCode(ctx, "c1"); err != nil {
			return err
		}
		list, err = tx.JoinLinks(ctx, "s_1")
		return err
	})
	sameJSON(t, "join link", got, l1)
	if got.CodeHash != "c1" || len(list) != 2 || list[0].ID != "jl_1" || list[1].ID != "jl_2" {
		t.Fatalf("links: %+v %+v", got, list)
	}
	for name, l := range map[string]*cases.JoinLink{
		"same id":   {ID: "jl_1", CodeHash: "c3", CaseID: "case_1", SessionID: "s_1", ParticipantID: "p_app", CreatedAt: base, ExpiresAt: base},
		"same code": {ID: "jl_3", CodeHash: "c1", CaseID: "case_1", SessionID: "s_1", ParticipantID: "p_app", CreatedAt: base, ExpiresAt: base},
	} {
		err := s.Update(ctx, func(tx cases.Tx) error { return tx.PutJoinLink(ctx, l) })
		if cases.ErrorCode(err) != cases.ECONFLICT {
			t.Errorf("%s: %v, want conflict", name, err)
		}
	}
	err := s.Update(ctx, func(tx cases.Tx) error {
		return tx.PutJoinLink(ctx, &cases.JoinLink{ID: "jl_4", CodeHash: "c4", CaseID: "case_1", SessionID: "s_none",
			ParticipantID: "p_app", CreatedAt: base, ExpiresAt: base})
	})
	wantCode(t, err, cases.ENOTFOUND)
	view(t, s, func(tx cases.Tx) error {
		_, err := tx.JoinLinkByCode(ctx, "nope")
		wantCode(t, err, cases.ENOTFOUND)
		l, err := tx.JoinLinks(ctx, "s_none")
		if err != nil || len(l) != 0 {
			t.Errorf("links of an unknown session: %v %v", l, err)
		}
		return nil
	})
}

func testRevocations(t *testing.T, s cases.Store) {
	ctx := t.Context()
	lookup := func(jti, sess, p string) (*cases.Revocation, error) {
		var r *cases.Revocation
		err := s.View(ctx, func(tx cases.Tx) error {
			var err error
			r, err = tx.Revocation(ctx, jti, sess, p)
			return err
		})
		return r, err
	}
	if _, err := lookup("jl_1", "s_1", "p_app"); cases.ErrorCode(err) != cases.ENOTFOUND {
		t.Fatalf("nothing revoked yet: %v", err)
	}

	tok := &cases.Revocation{Kind: cases.RevokeToken, JTI: "jl_1", CaseID: "case_1", SessionID: "s_1", Reason: "sent to the wrong number",
		Actor: "staff:acct_1", RevokedAt: base}
	update(t, s, func(tx cases.Tx) error { return tx.PutRevocation(ctx, tok) })
	if tok.Key != "jti:jl_1" || !tok.RevokedAt.Equal(micro(base)) {
		t.Fatalf("recorded revocation: %+v", tok)
	}
	r, err := lookup("jl_1", "s_1", "p_app")
	if err != nil || r.Kind != cases.RevokeToken || r.Reason != "sent to the wrong number" || r.Actor != "staff:acct_1" {
		t.Fatalf("token revocation: %+v %v", r, err)
	}
	if _, err := lookup("jl_2", "s_1", "p_app"); cases.ErrorCode(err) != cases.ENOTFOUND {
		t.Fatalf("another jti is revoked: %v", err)
	}

	// Revoking again keeps the first record.
	again := &cases.Revocation{Kind: cases.RevokeToken, JTI: "jl_1", Reason: "again", Actor: "x", RevokedAt: base.Add(time.Hour)}
	update(t, s, func(tx cases.Tx) error { return tx.PutRevocation(ctx, again) })
	if again.Reason != "sent to the wrong number" || !again.RevokedAt.Equal(micro(base)) {
		t.Fatalf("second revocation replaced the first: %+v", again)
	}

	update(t, s, func(tx cases.Tx) error {
		return tx.PutRevocation(ctx, &cases.Revocation{Kind: cases.RevokeParticipant, SessionID: "s_1", ParticipantID: "p_resp",
			Actor: "operator", RevokedAt: base})
	})
	if r, err := lookup("any", "s_1", "p_resp"); err != nil || r.Kind != cases.RevokeParticipant {
		t.Fatalf("participant revocation: %+v %v", r, err)
	}
	if _, err := lookup("any", "s_2", "p_resp"); cases.ErrorCode(err) != cases.ENOTFOUND {
		t.Fatalf("participant revocation leaks to another session: %v", err)
	}
	update(t, s, func(tx cases.Tx) error {
		return tx.PutRevocation(ctx, &cases.Revocation{Kind: cases.RevokeSession, SessionID: "s_2", Actor: "operator", RevokedAt: base})
	})
	if r, err := lookup("any", "s_2", "p_med"); err != nil || r.Kind != cases.RevokeSession {
		t.Fatalf("session revocation: %+v %v", r, err)
	}
	err = s.Update(ctx, func(tx cases.Tx) error {
		return tx.PutRevocation(ctx, &cases.Revocation{Kind: "everything", Actor: "x", RevokedAt: base})
	})
	wantCode(t, err, cases.EINVALID)
}

func newMessage(id string, created time.Time) *cases.OutboxMessage {
	return &cases.OutboxMessage{ID: id, Channel: cases.NotifySMS, To: "+86 138 0000 0000", Text: "link " + id,
		CaseID: "case_1", Status: cases.OutboxPending, NextAttemptAt: created, CreatedAt: created}
}

func testOutbox(t *testing.T, s cases.Store) {
	ctx := t.Context()
	m1, m2, m3 := newMessage("m1", base), newMessage("m2", base.Add(time.Second)), newMessage("m3", base.Add(time.Hour))
	update(t, s, func(tx cases.Tx) error {
		for _, m := range []*cases.OutboxMessage{m3, m2, m1} {
			if err := tx.PutOutbox(ctx, m); err != nil {
				return err
			}
		}
		return nil
	})
	var got *cases.OutboxMessage
	view(t, s, func(tx cases.Tx) error {
		var err error
		got, err = tx.OutboxMessage(ctx, "m1")
		return err
	})
	sameJSON(t, "outbox message", got, m1)

	claim := func(now, lease time.Time, limit int) []string {
		var list []cases.OutboxMessage
		update(t, s, func(tx cases.Tx) error {
			var err error
			list, err = tx.ClaimOutbox(ctx, now, lease, limit)
			return err
		})
		ids := []string{}
		for _, m := range list {
			if !m.NextAttemptAt.Equal(micro(lease)) {
				t.Errorf("claimed %s leased until %v, want %v", m.ID, m.NextAttemptAt, micro(lease))
			}
			ids = append(ids, fmt.Sprintf("%s#%d", m.ID, m.Attempts))
		}
		return ids
	}
	now := base.Add(time.Minute)
	if ids := claim(now, now.Add(time.Minute), 1); !slices.Equal(ids, []string{"m1#1"}) {
		t.Fatalf("first claim = %v", ids)
	}
	if ids := claim(now, now.Add(time.Minute), 10); !slices.Equal(ids, []string{"m2#1"}) {
		t.Fatalf("second claim = %v (m1 is leased, m3 not due)", ids)
	}
	if ids := claim(now, now.Add(time.Minute), 10); len(ids) != 0 {
		t.Fatalf("claim with everything leased = %v", ids)
	}
	// After the lease, m1 and m2 come back with a second attempt.
	later := now.Add(2 * time.Minute)
	if ids := claim(later, later.Add(time.Minute), 10); !slices.Equal(ids, []string{"m1#2", "m2#2"}) {
		t.Fatalf("claim after the lease = %v", ids)
	}
	// A sent message is never claimed again.
	update(t, s, func(tx cases.Tx) error {
		m, err := tx.OutboxMessage(ctx, "m1")
		if err != nil {
			return err
		}
		sent := later
		m.Status, m.SentAt, m.Text = cases.OutboxSent, &sent, ""
		return tx.PutOutbox(ctx, m)
	})
	end := base.Add(2 * time.Hour)
	if ids := claim(end, end.Add(time.Minute), 10); !slices.Equal(ids, []string{"m2#3", "m3#1"}) {
		t.Fatalf("final claim = %v", ids)
	}
	view(t, s, func(tx cases.Tx) error {
		m, err := tx.OutboxMessage(ctx, "m1")
		if err == nil && (m.Status != cases.OutboxSent || m.SentAt == nil || m.Text != "") {
			err = fmt.Errorf("sent message: %+v", m)
		}
		_, nf := tx.OutboxMessage(ctx, "nope")
		wantCode(t, nf, cases.ENOTFOUND)
		return err
	})
}

// testOutboxConcurrentClaims: workers claiming at once never take the
// same message.
func testOutboxConcurrentClaims(t *testing.T, s cases.Store) {
	ctx := t.Context()
	const n = 30
	update(t, s, func(tx cases.Tx) error {
		for i := range n {
			if err := tx.PutOutbox(ctx, newMessage(fmt.Sprintf("m%02d", i), base.Add(time.Duration(i)))); err != nil {
				return err
			}
		}
		return nil
	})
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() {
			for range 10 {
				var list []cases.OutboxMessage
				err := s.Update(ctx, func(tx cases.Tx) error {
					var err error
					list, err = tx.ClaimOutbox(ctx, base.Add(time.Minute), base.Add(time.Hour), 3)
					return err
				})
				if err != nil && cases.ErrorCode(err) != cases.ECONFLICT {
					t.Error(err)
					return
				}
				mu.Lock()
				for _, m := range list {
					seen[m.ID]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for id, k := range seen {
		if k != 1 {
			t.Errorf("message %s claimed %d times", id, k)
		}
	}
	if len(seen) != n {
		t.Errorf("%d of %d messages claimed", len(seen), n)
	}
}

func testListCasesScope(t *testing.T, s cases.Store) {
	ctx := t.Context()
	for i, spec := range []struct{ inst, credit string }{
		{"inst_a", "91310000MA1FL0AB2C"}, {"inst_b", ""}, {"inst_c", "91310000MA1FL0AB2C"}, {"inst_a", "913100007000000000"},
	} {
		c := newCase(fmt.Sprintf("case_%d", i), fmt.Sprintf("N-%d", i), "online", "")
		c.InstitutionID = spec.inst
		c.Respondent.CreditCode = spec.credit
		c.CreatedAt = base.Add(time.Duration(i) * time.Second)
		putCase(t, s, c)
	}
	// The respondent's credit code is kept on update too.
	update(t, s, func(tx cases.Tx) error {
		c, err := tx.Case(ctx, "case_1")
		if err != nil {
			return err
		}
		c.Respondent.CreditCode = "91310000MA1FL0AB2C"
		return tx.PutCase(ctx, c)
	})
	for _, tt := range []struct {
		name string
		f    cases.CaseFilter
		want []string
	}{
		{"institutions", cases.CaseFilter{InstitutionIDs: []string{"inst_a", "inst_c"}}, []string{"case_0", "case_2", "case_3"}},
		{"no institutions", cases.CaseFilter{InstitutionIDs: []string{}}, []string{}},
		{"narrowed", cases.CaseFilter{InstitutionID: "inst_b", InstitutionIDs: []string{"inst_a"}}, []string{}},
		{"respondent", cases.CaseFilter{RespondentCreditCode: "91310000MA1FL0AB2C"}, []string{"case_0", "case_1", "case_2"}},
		{"both", cases.CaseFilter{RespondentCreditCode: "91310000MA1FL0AB2C", InstitutionIDs: []string{"inst_b"}}, []string{"case_1"}},
	} {
		var list []cases.Case
		view(t, s, func(tx cases.Tx) error {
			var err error
			list, err = tx.ListCases(ctx, tt.f)
			return err
		})
		ids := []string{}
		for _, c := range list {
			ids = append(ids, c.ID)
		}
		if !slices.Equal(ids, tt.want) {
			t.Errorf("ListCases %s = %v, want %v", tt.name, ids, tt.want)
		}
	}
}

func testIdentityReadOnly(t *testing.T, s cases.Store) {
	ctx := t.Context()
	sessionFixture(t, s)
	putAccount(t, s, newAccount("acct_1", "wang", cases.StaffMediator, "inst_a", ""))
	writes := map[string]func(cases.Tx) error{
		"PutAccount": func(tx cases.Tx) error {
			return tx.PutAccount(ctx, newAccount("acct_2", "li", cases.StaffMediator, "inst_a", ""))
		},
		"PutStaffSession": func(tx cases.Tx) error {
			return tx.PutStaffSession(ctx, &cases.StaffSession{ID: "ss_1", AccountID: "acct_1", CreatedAt: base, LastUsedAt: base, ExpiresAt: base})
		},
		"RevokeStaffSessions": func(tx cases.Tx) error { _, err := tx.RevokeStaffSessions(ctx, "acct_1", "x", base); return err },
		"PutRefreshToken": func(tx cases.Tx) error {
			return tx.PutRefreshToken(ctx, &cases.RefreshToken{Hash: "h", SessionID: "ss_1", CreatedAt: base, ExpiresAt: base})
		},
		"PutJoinLink": func(tx cases.Tx) error {
			return tx.PutJoinLink(ctx, &cases.JoinLink{ID: "jl", CodeHash: "c", CaseID: "case_1", SessionID: "s_1", ParticipantID: "p_app", CreatedAt: base, ExpiresAt: base})
		},
		"PutRevocation": func(tx cases.Tx) error {
			return tx.PutRevocation(ctx, &cases.Revocation{Kind: cases.RevokeSession, SessionID: "s_1", Actor: "x", RevokedAt: base})
		},
		"PutOutbox":   func(tx cases.Tx) error { return tx.PutOutbox(ctx, newMessage("m", base)) },
		"ClaimOutbox": func(tx cases.Tx) error { _, err := tx.ClaimOutbox(ctx, base, base, 1); return err },
	}
	for name, write := range writes {
		if err := s.View(ctx, write); err == nil {
			t.Errorf("%s inside View succeeded", name)
		}
	}
}

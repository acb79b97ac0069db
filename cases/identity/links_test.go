package identity

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/concord-odr/concord/cases"
	"github.com/concord-odr/concord/cases/joinlink"
)

func TestNormalizeCode(t *testing.T) {
	for _, tt := range []struct {
		in, want string
		ok       bool
	}{
		{"k3v9x2m7qa", "k3v9x2m7qa", true},
		{"K3V9-X2M7-QA", "k3v9x2m7qa", true},
		{" k3v9 x2m7 qa ", "k3v9x2m7qa", true},
		{"Oi1Lo0abcd", "011100abcd", true},
		{"k3v9x2m7q", "", false},   // too short
		{"k3v9x2m7qaa", "", false}, // too long
		{"k3v9x2m7qu", "", false},  // u is not in the alphabet
		{"k3v9x2m7q!", "", false},
		{"ｋ3v9x2m7qa", "", false}, // full-width letter
		{"", "", false},
	} {
		got, ok := NormalizeCode(tt.in)
		if ok != tt.ok || got != tt.want {
			t.Errorf("NormalizeCode(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
	for range 100 {
		c := newCode()
		if n, ok := NormalizeCode(strings.ToUpper(c)); !ok || n != c || len(c) != CodeLen {
			t.Fatalf("issued code %q does not normalise to itself", c)
		}
	}
}

func TestIssueAndExchange(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	c := e.mediatingCase("inst_a")
	sess, links := e.schedule(c)
	if len(links) != 3 {
		t.Fatalf("issued %d links, want 3", len(links))
	}
	app := link(t, links, cases.SideApplicant)
	if !strings.HasPrefix(app.URL, "https://concord.example/j/") || len(strings.TrimPrefix(app.URL, "https://concord.example/j/")) != CodeLen {
		t.Fatalf("link URL %q", app.URL)
	}
	if len(app.URL) > 40 {
		t.Fatalf("link %q is too long for an SMS", app.URL)
	}
	if app.Notified != cases.NotifySMS || app.MessageID == "" || link(t, links, cases.SideNeutral).Notified != "" {
		t.Fatalf("notification: %+v", links)
	}
	var msg *cases.OutboxMessage
	if err := e.store.View(ctx, func(tx cases.Tx) error {
		var err error
		msg, err = tx.OutboxMessage(ctx, app.MessageID)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if msg.Status != cases.OutboxPending || msg.To != "+86 138 0000 0000" || !strings.Contains(msg.Text, app.URL) || !strings.Contains(msg.Text, c.Number) {
		t.Fatalf("queued message: %+v", msg)
	}

	// The code exchanges for a join token of that participant, with the
	// link's id as jti, expiring with the link.
	ex, err := e.id.Exchange(ctx, strings.ToUpper(app.Code))
	if err != nil {
		t.Fatal(err)
	}
	claims, err := e.id.Verifier(Strict).VerifyContext(ctx, ex.Token)
	if err != nil {
		t.Fatal(err)
	}
	if claims.ParticipantID() != app.ParticipantID || claims.SessionID != sess.ID || claims.CaseID != c.ID ||
		claims.Role != cases.RoleParty || claims.Side != cases.SideApplicant || claims.Name != "Li Wei" ||
		!strings.HasPrefix(claims.ID, "jl_") || !claims.ExpiresAt.Time.Equal(app.ExpiresAt.Truncate(time.Second)) {
		t.Fatalf("exchanged claims: %+v (link %+v)", claims, app)
	}
	// Exchanging again (a reload, a second device) works.
	if _, err := e.id.Exchange(ctx, app.Code); err != nil {
		t.Fatalf("second exchange: %v", err)
	}

	for _, bad := range []string{"", "k3v9x2m7qa", "not a code at all", strings.Repeat("a", 1000)} {
		if _, err := e.id.Exchange(ctx, bad); cases.ErrorCode(err) != ELinkNotFound {
			t.Errorf("Exchange(%q) = %v", bad, err)
		}
	}

	// The link expires.
	e.clock.Add(73 * time.Hour)
	if _, err := e.id.Exchange(ctx, app.Code); cases.ErrorCode(err) != ELinkExpired {
		t.Fatalf("expired link: %v", err)
	}
	if _, err := e.id.Verifier(ForAPI).VerifyContext(ctx, ex.Token); !errors.Is(err, joinlink.ErrExpired) {
		t.Fatalf("token of an expired link: %v", err)
	}
}

// TestRevocation: revoking a link, a participant or a session refuses
// their links and tokens before they expire; so do the removal of the
// participant, the end of the session and the closing of the case.
func TestRevocation(t *testing.T) {
	type fixture struct {
		e     *env
		c     *cases.Case
		sess  *cases.Session
		links []IssuedLink
		token string // the applicant's exchanged token
		full  string // a full join token of the applicant, not from a link
	}
	setup := func(t *testing.T) *fixture {
		e := newEnv(t)
		c := e.mediatingCase("inst_a")
		sess, links := e.schedule(c)
		ex, err := e.id.Exchange(t.Context(), link(t, links, cases.SideApplicant).Code)
		if err != nil {
			t.Fatal(err)
		}
		app := link(t, links, cases.SideApplicant)
		full, _ := e.signer.Issue(joinlink.Claims{CaseID: c.ID, SessionID: sess.ID, Role: app.Role, Side: app.Side,
			RegisteredClaims: jwt.RegisteredClaims{Subject: app.ParticipantID}}, time.Hour)
		return &fixture{e: e, c: c, sess: sess, links: links, token: ex.Token, full: full}
	}
	type want struct {
		exchange string // error code of exchanging the applicant's code
		strict   error
		api      error
		signal   error
	}
	for _, tt := range []struct {
		name string
		act  func(t *testing.T, f *fixture)
		want want
		// respondentUntouched: the respondent's link still works.
		respondentUntouched bool
		fullRefused         bool
	}{
		{"nothing", func(*testing.T, *fixture) {}, want{}, true, false},
		{"revoked jti", func(t *testing.T, f *fixture) {
			claims, err := f.e.signer.Verify(f.token)
			if err != nil {
				t.Fatal(err)
			}
			jti := claims.ID
			if _, err := f.e.id.Revoke(t.Context(), "staff:x", RevokeRequest{SessionID: f.sess.ID, JTI: jti, Reason: "wrong number"}); err != nil {
				t.Fatal(err)
			}
		}, want{ELinkRevoked, joinlink.ErrRevoked, joinlink.ErrRevoked, joinlink.ErrRevoked}, true, false},
		{"revoked participant", func(t *testing.T, f *fixture) {
			pid := link(t, f.links, cases.SideApplicant).ParticipantID
			if _, err := f.e.id.Revoke(t.Context(), "staff:x", RevokeRequest{SessionID: f.sess.ID, ParticipantID: pid}); err != nil {
				t.Fatal(err)
			}
		}, want{ELinkRevoked, joinlink.ErrRevoked, joinlink.ErrRevoked, joinlink.ErrRevoked}, true, true},
		{"revoked session", func(t *testing.T, f *fixture) {
			if _, err := f.e.id.Revoke(t.Context(), "staff:x", RevokeRequest{SessionID: f.sess.ID}); err != nil {
				t.Fatal(err)
			}
		}, want{ELinkRevoked, joinlink.ErrRevoked, joinlink.ErrRevoked, joinlink.ErrRevoked}, false, true},
		{"removed participant", func(t *testing.T, f *fixture) {
			pid := link(t, f.links, cases.SideApplicant).ParticipantID
			if err := f.e.cases.RecordRoomEvent(t.Context(), cases.RoomRemoved, "p_med", cases.RoomEvent{SessionID: f.sess.ID, ParticipantID: pid}); err != nil {
				t.Fatal(err)
			}
		}, want{ERemoved, joinlink.ErrRemoved, joinlink.ErrRemoved, nil}, true, true},
		{"ended session", func(t *testing.T, f *fixture) {
			med := link(t, f.links, cases.SideNeutral).ParticipantID
			if _, _, err := f.e.cases.EndSession(t.Context(), f.sess.ID, med, cases.Outcome{Result: cases.ResultSettled, Terms: "refund"}); err != nil {
				t.Fatal(err)
			}
		}, want{ESessionEnded, joinlink.ErrSessionEnded, nil, nil}, false, true},
		{"closed case", func(t *testing.T, f *fixture) {
			if _, err := f.e.cases.Apply(t.Context(), f.c.ID, cases.TransitionRequest{To: cases.StateClosed, Actor: "test",
				Outcome: &cases.Outcome{Result: cases.ResultWithdrawn}}); err != nil {
				t.Fatal(err)
			}
		}, want{ELinkRevoked, joinlink.ErrRevoked, nil, joinlink.ErrRevoked}, false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := setup(t)
			tt.act(t, f)
			ctx := t.Context()
			_, err := f.e.id.Exchange(ctx, link(t, f.links, cases.SideApplicant).Code)
			if cases.ErrorCode(err) != tt.want.exchange {
				t.Errorf("exchange: %v, want %q", err, tt.want.exchange)
			}
			for _, m := range []struct {
				mode VerifyMode
				want error
			}{{Strict, tt.want.strict}, {ForAPI, tt.want.api}, {ForSignaling, tt.want.signal}} {
				if _, err := f.e.id.Verifier(m.mode).VerifyContext(ctx, f.token); !errors.Is(err, m.want) || (err == nil) != (m.want == nil) {
					t.Errorf("verify (mode %d): %v, want %v", m.mode, err, m.want)
				}
			}
			_, err = f.e.id.Verifier(Strict).VerifyContext(ctx, f.full)
			if (err != nil) != tt.fullRefused {
				t.Errorf("full token of the participant: %v, refused want %v", err, tt.fullRefused)
			}
			_, err = f.e.id.Exchange(ctx, link(t, f.links, cases.SideRespondent).Code)
			if (err == nil) != tt.respondentUntouched {
				t.Errorf("respondent's link: %v, untouched want %v", err, tt.respondentUntouched)
			}
		})
	}
}

func TestRevokeChecks(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	c := e.mediatingCase("inst_a")
	sess, _ := e.schedule(c)
	for _, tt := range []struct {
		name  string
		req   RevokeRequest
		code  string
		field string
	}{
		{"unknown session", RevokeRequest{SessionID: "s_none"}, cases.ENOTFOUND, ""},
		{"unknown participant", RevokeRequest{SessionID: sess.ID, ParticipantID: "p_none"}, cases.EINVALID, "participantId"},
		{"unknown link", RevokeRequest{SessionID: sess.ID, JTI: "jl_none"}, cases.EINVALID, "jti"},
		{"both", RevokeRequest{SessionID: sess.ID, JTI: "x", ParticipantID: "y"}, cases.EINVALID, "jti"},
	} {
		_, err := e.id.Revoke(ctx, "x", tt.req)
		if cases.ErrorCode(err) != tt.code || cases.ErrorField(err) != tt.field {
			t.Errorf("%s: %v", tt.name, err)
		}
	}
	r, err := e.id.Revoke(ctx, "staff:acct_1", RevokeRequest{SessionID: sess.ID, Reason: "rescheduled"})
	if err != nil || r.Kind != cases.RevokeSession || r.CaseID != c.ID {
		t.Fatalf("revoke session: %+v %v", r, err)
	}
	rec, _ := e.cases.Record(ctx, c.ID)
	if last := rec.Events[len(rec.Events)-1]; last.Type != "links.revoked" || last.Actor != "staff:acct_1" {
		t.Fatalf("revocation not in the case log: %+v", last)
	}
	// New links for a revoked session are refused rather than born dead.
	if _, err := e.id.IssueLinks(ctx, sess.ID, "x", nil, nil); cases.ErrorCode(err) != cases.ETRANSITION {
		t.Fatalf("links for a revoked session: %v", err)
	}
}

func TestReissueLinks(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	c := e.mediatingCase("inst_a")
	sess, links := e.schedule(c)
	resp := link(t, links, cases.SideRespondent)
	before := e.queued
	again, err := e.id.IssueLinks(ctx, sess.ID, "staff:x", []string{resp.ParticipantID},
		map[string]Recipient{resp.ParticipantID: {Channel: cases.NotifyWeChat, To: "oWx_openid_123"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(again) != 1 || again[0].Code == resp.Code || again[0].Notified != cases.NotifyWeChat || e.queued != before+1 {
		t.Fatalf("reissued: %+v (queued %d -> %d)", again, before, e.queued)
	}
	for _, l := range []string{resp.Code, again[0].Code} {
		if _, err := e.id.Exchange(ctx, l); err != nil {
			t.Fatalf("link %s: %v", l, err)
		}
	}
	for _, tt := range []struct {
		name string
		only []string
		to   map[string]Recipient
	}{
		{"unknown participant", []string{"p_none"}, nil},
		{"bad phone", nil, map[string]Recipient{resp.ParticipantID: {Channel: cases.NotifySMS, To: "call me"}}},
		{"bad channel", nil, map[string]Recipient{resp.ParticipantID: {Channel: "pigeon", To: "13800000000"}}},
	} {
		if _, err := e.id.IssueLinks(ctx, sess.ID, "x", tt.only, tt.to); cases.ErrorCode(err) != cases.EINVALID {
			t.Errorf("%s: %v", tt.name, err)
		}
	}
}

// TestLinkKeyRotation: short links and join tokens made before a key
// rotation keep working until they expire; new ones use the new key.
func TestLinkKeyRotation(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	c := e.mediatingCase("inst_a")
	_, links := e.schedule(c)
	app := link(t, links, cases.SideApplicant)
	oldTok, err := e.id.Exchange(ctx, app.Code)
	if err != nil {
		t.Fatal(err)
	}

	newKey := joinlink.Key{ID: "jk2", Secret: []byte(strings.Repeat("k", 32))}
	rotatedSigner, _ := joinlink.NewSigner(newKey, []joinlink.Key{linkKey}, e.clock.Now)
	rotated := e.newService(rotatedSigner, staffKey, nil)
	if _, err := rotated.Verifier(Strict).VerifyContext(ctx, oldTok.Token); err != nil {
		t.Fatalf("old token with the old key kept: %v", err)
	}
	ex, err := rotated.Exchange(ctx, app.Code)
	if err != nil {
		t.Fatalf("old short link after rotation: %v", err)
	}
	tok, _, _ := jwt.NewParser().ParseUnverified(ex.Token, &joinlink.Claims{})
	if tok.Header["kid"] != "jk2" {
		t.Fatalf("new token signed with kid %v", tok.Header["kid"])
	}
	// Links issued after the rotation are stored under the new key.
	e.id = rotated
	_, links2 := e.schedule(c)
	if _, err := rotated.Exchange(ctx, link(t, links2, cases.SideApplicant).Code); err != nil {
		t.Fatal(err)
	}
	// Once the old key is dropped, what it signed is refused.
	dropSigner, _ := joinlink.NewSigner(newKey, nil, e.clock.Now)
	dropped := e.newService(dropSigner, staffKey, nil)
	if _, err := dropped.Verifier(Strict).VerifyContext(ctx, oldTok.Token); !errors.Is(err, joinlink.ErrInvalid) {
		t.Fatalf("token of a dropped key: %v", err)
	}
	if _, err := dropped.Exchange(ctx, app.Code); cases.ErrorCode(err) != ELinkNotFound {
		t.Fatalf("short link of a dropped key: %v", err)
	}
}

// TestLoadKeyringRotation: rotating the key files in the data folder.
func TestLoadKeyringRotation(t *testing.T) {
	dir := t.TempDir()
	k1, older, err := joinlink.LoadKeyring(dir, "joinlink")
	if err != nil || len(older) != 0 {
		t.Fatalf("first load: %v %v", older, err)
	}
	if _, err := joinlink.RotateKey(dir, "joinlink", "2026-03-02"); err != nil {
		t.Fatal(err)
	}
	k2, older, err := joinlink.LoadKeyring(dir, "joinlink")
	if err != nil {
		t.Fatal(err)
	}
	if k2.ID == k1.ID || len(older) != 1 || older[0].ID != k1.ID {
		t.Fatalf("after rotation: current %s, older %v", k2.ID, older)
	}
	s1, _ := joinlink.NewSigner(k1, nil, nil)
	tok, _ := s1.Issue(joinlink.Claims{CaseID: "c", SessionID: "s", RegisteredClaims: jwt.RegisteredClaims{Subject: "p"}}, time.Hour)
	s2, _ := joinlink.NewSigner(k2, older, nil)
	if _, err := s2.Verify(tok); err != nil {
		t.Fatalf("token of the rotated-out key: %v", err)
	}
	if _, err := joinlink.RotateKey(dir, "joinlink", "2026-03-02"); err == nil {
		t.Fatal("rotating onto an existing file succeeded")
	}
	ids := []string{}
	for _, k := range older {
		ids = append(ids, k.ID)
	}
	if slices.Contains(ids, k2.ID) {
		t.Fatal("the current key is listed as older")
	}
}

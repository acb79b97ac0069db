package identity

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/concord-odr/concord/cases"
	"github.com/concord-odr/concord/cases/joinlink"
)

// Short link codes are CodeLen characters of Crockford's base32 alphabet
// in lower case: 50 random bits, short enough to type from an SMS, too
// many to guess behind the exchange's rate limits.
const (
	CodeLen      = 10
	codeAlphabet = "0123456789abcdefghjkmnpqrstvwxyz"
	// codeLabel separates code digests from any other use of the keys.
	codeLabel = "concord short link code"
)

// newCode returns a random code.
func newCode() string {
	b := make([]byte, CodeLen)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = codeAlphabet[b[i]&31]
	}
	return string(b)
}

// NormalizeCode returns a code as issued, forgiving what people and
// phones do to it (capitals, spaces, hyphens, O for 0, I or L for 1), and
// reports whether it has a code's form at all.
func NormalizeCode(s string) (string, bool) {
	if len(s) > 4*CodeLen {
		return "", false
	}
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch r {
		case ' ', '-', '\t':
			continue
		case 'o':
			r = '0'
		case 'i', 'l':
			r = '1'
		}
		if r > 0x7f || !strings.ContainsRune(codeAlphabet, r) {
			return "", false
		}
		b.WriteRune(r)
	}
	if b.Len() != CodeLen {
		return "", false
	}
	return b.String(), true
}

// codeHashes returns the digests a code may be stored under: one per
// join link key, the current key's first.
func (s *Service) codeHashes(code string) []string {
	return s.links.Digests(codeLabel, []byte(code))
}

// Recipient is where a participant's join link is sent.
type Recipient struct {
	Channel string // sms, wechat
	To      string // a phone number, or a WeChat openid
}

var (
	phonePattern  = regexp.MustCompile(`^\+?[0-9][0-9 ()-]{4,24}$`)
	openIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{6,64}$`)
)

// Check validates a recipient; field names the input at fault.
func (r Recipient) Check(field string) error {
	switch r.Channel {
	case cases.NotifySMS:
		digits := 0
		for _, c := range r.To {
			if c >= '0' && c <= '9' {
				digits++
			}
		}
		if !phonePattern.MatchString(r.To) || digits < 5 || digits > 15 {
			return cases.FieldErrorf(field+".phone", "%s.phone is not a phone number", field)
		}
	case cases.NotifyWeChat:
		if !openIDPattern.MatchString(r.To) {
			return cases.FieldErrorf(field+".phone", "a WeChat recipient is an openid of 6 to 64 letters, digits, _ or -")
		}
	default:
		return cases.FieldErrorf(field+".channel", "%s.channel must be sms or wechat", field)
	}
	return nil
}

// IssuedLink is a participant's new short join link.
type IssuedLink struct {
	ParticipantID string    `json:"participantId"`
	Name          string    `json:"name"`
	Role          string    `json:"role"`
	Side          string    `json:"side"`
	Code          string    `json:"code"`
	URL           string    `json:"url"`
	ExpiresAt     time.Time `json:"expiresAt"`
	// Notified is the channel the link was queued on, if it was sent.
	Notified  string `json:"notified,omitempty"`
	MessageID string `json:"messageId,omitempty"`
}

// LinkMessage is what the text of a notification carrying a link says.
type LinkMessage struct {
	CaseNumber string
	Name       string
	Role       string
	URL        string
	ExpiresAt  time.Time
}

// china is the time zone of the dates in messages.
var china = time.FixedZone("CST", 8*3600)

// DefaultLinkMessage is a short SMS in Chinese: the case number, the
// link and until when it works.
func DefaultLinkMessage(m LinkMessage) string {
	return fmt.Sprintf("【Concord在线调解】案件%s的视频调解链接：%s ，%s前有效，仅限本人使用，请勿转发。",
		m.CaseNumber, m.URL, m.ExpiresAt.In(china).Format("1月2日15:04"))
}

// Joinable reports whether the state of case c lets its session sess be
// joined: a mediation session while the case is mediating, the
// reconciliation room (applicant and merchant, no mediator) while it is
// in reconciliation. Whether the session itself has ended is apart.
func Joinable(c *cases.Case, sess *cases.Session) bool {
	if sess.Mode == cases.ModeReconciliation {
		return c.State == cases.StateReconciliation
	}
	return c.State == cases.StateMediating
}

// IssueLinksTx issues a short link for each participant of sess (or the
// ones listed in only) inside tx, and queues a message with it for those
// with a recipient. The caller commits tx and then calls Queued.
func (s *Service) IssueLinksTx(ctx context.Context, tx cases.Tx, c *cases.Case, sess *cases.Session, actor string,
	only []string, to map[string]Recipient) ([]IssuedLink, error) {
	if !Joinable(c, sess) {
		if sess.Mode == cases.ModeReconciliation {
			return nil, cases.Errorf(cases.ETRANSITION, "the reconciliation room is open only while the case is in reconciliation (it is %s)", c.State)
		}
		return nil, cases.Errorf(cases.ETRANSITION, "a case in state %s has no sessions to join", c.State)
	}
	if sess.Status == cases.SessionEnded {
		return nil, cases.Errorf(cases.ETRANSITION, "the session has ended")
	}
	for _, id := range only {
		if _, ok := sess.Participant(id); !ok {
			return nil, cases.FieldErrorf("participantIds", "the session has no participant %q", id)
		}
	}
	for id, r := range to {
		if _, ok := sess.Participant(id); !ok {
			return nil, cases.FieldErrorf("recipients", "the session has no participant %q", id)
		}
		if err := r.Check("recipients"); err != nil {
			return nil, err
		}
	}
	events, err := tx.Events(ctx, c.ID)
	if err != nil {
		return nil, err
	}
	now := s.now().UTC()
	exp := now.Add(s.p.LinkTTL)
	base := strings.TrimRight(s.p.BaseURL(), "/")
	var out []IssuedLink
	for _, p := range sess.Participants {
		if only != nil && !slices.Contains(only, p.ID) {
			continue
		}
		if _, err := tx.Revocation(ctx, "", sess.ID, p.ID); err == nil {
			return nil, cases.Errorf(cases.ETRANSITION, "the links of %s were revoked", p.Name)
		} else if cases.ErrorCode(err) != cases.ENOTFOUND {
			return nil, err
		}
		if cases.RemovedIn(events, sess.ID, p.ID) {
			return nil, cases.Errorf(cases.ETRANSITION, "%s was removed from the session", p.Name)
		}
		code := newCode()
		link := &cases.JoinLink{
			ID: cases.NewID("jl_"), CodeHash: s.codeHashes(code)[0],
			CaseID: c.ID, SessionID: sess.ID, ParticipantID: p.ID,
			CreatedBy: actor, CreatedAt: now, ExpiresAt: exp,
		}
		if err := tx.PutJoinLink(ctx, link); err != nil {
			return nil, err
		}
		il := IssuedLink{ParticipantID: p.ID, Name: p.Name, Role: p.Role, Side: p.Side, Code: code,
			URL: base + "/j/" + code, ExpiresAt: link.ExpiresAt}
		if r, ok := to[p.ID]; ok {
			m := &cases.OutboxMessage{
				ID: cases.NewID("msg_"), Channel: r.Channel, To: r.To, CaseID: c.ID,
				Text:   s.p.LinkMessage(LinkMessage{CaseNumber: c.Number, Name: p.Name, Role: p.Role, URL: il.URL, ExpiresAt: exp}),
				Status: cases.OutboxPending, NextAttemptAt: now, CreatedAt: now,
			}
			if err := tx.PutOutbox(ctx, m); err != nil {
				return nil, err
			}
			il.Notified, il.MessageID = r.Channel, m.ID
		}
		out = append(out, il)
	}
	payload, _ := json.Marshal(map[string]any{"sessionId": sess.ID, "count": len(out), "notified": notifiedCount(out)})
	if err := tx.AppendEvent(ctx, &cases.Event{CaseID: c.ID, Type: "links.issued", Actor: actor, At: now, Payload: payload}); err != nil {
		return nil, err
	}
	return out, nil
}

func notifiedCount(links []IssuedLink) int {
	n := 0
	for _, l := range links {
		if l.Notified != "" {
			n++
		}
	}
	return n
}

// IssueLinks issues new short links for a session's participants (all
// of them when only is nil) and sends them to the given recipients. Links
// issued before stay valid; revoke them apart.
func (s *Service) IssueLinks(ctx context.Context, sessionID, actor string, only []string, to map[string]Recipient) ([]IssuedLink, error) {
	var out []IssuedLink
	err := s.store.Update(ctx, func(tx cases.Tx) error {
		sess, err := tx.Session(ctx, sessionID)
		if err != nil {
			return err
		}
		c, err := tx.Case(ctx, sess.CaseID)
		if err != nil {
			return err
		}
		out, err = s.IssueLinksTx(ctx, tx, c, sess, actor, only, to)
		return err
	})
	if err != nil {
		return nil, err
	}
	if notifiedCount(out) > 0 {
		s.queued()
	}
	return out, nil
}

// Queued tells the outbox worker, after a caller's own transaction that
// ran IssueLinksTx has committed, that messages may wait.
func (s *Service) Queued() { s.queued() }

// Exchanged is the join token a short link exchanged for.
type Exchanged struct {
	Token     string           `json:"token"`
	ExpiresAt time.Time        `json:"expiresAt"`
	Claims    *joinlink.Claims `json:"-"`
}

// Exchange trades a short link's code for a join token of its
// participant, valid until the link expires, with the link's id as jti.
// The same code may be exchanged again (a reload, a second device: the
// room lets the newest connection take the participant's place).
func (s *Service) Exchange(ctx context.Context, code string) (*Exchanged, error) {
	code, ok := NormalizeCode(code)
	if !ok {
		return nil, cases.Errorf(ELinkNotFound, "this join link is not valid; check that it was copied whole")
	}
	var claims *joinlink.Claims
	var exp time.Time
	err := s.store.View(ctx, func(tx cases.Tx) error {
		var link *cases.JoinLink
		for _, h := range s.codeHashes(code) {
			l, err := tx.JoinLinkByCode(ctx, h)
			if err == nil {
				link = l
				break
			}
			if cases.ErrorCode(err) != cases.ENOTFOUND {
				return err
			}
		}
		if link == nil {
			return cases.Errorf(ELinkNotFound, "this join link is not valid; check that it was copied whole")
		}
		now := s.now()
		if !now.Before(link.ExpiresAt) {
			return cases.Errorf(ELinkExpired, "this join link has expired; ask the mediation centre for a new one")
		}
		c := &joinlink.Claims{CaseID: link.CaseID, SessionID: link.SessionID,
			RegisteredClaims: jwt.RegisteredClaims{Subject: link.ParticipantID, ID: link.ID}}
		p, err := s.checkTx(ctx, tx, c, Strict)
		if err != nil {
			return linkError(err)
		}
		c.Role, c.Side, c.Name = p.Role, p.Side, p.Name
		claims, exp = c, link.ExpiresAt
		return nil
	})
	if err != nil {
		return nil, err
	}
	tok, err := s.links.Issue(*claims, exp.Sub(s.now()))
	if err != nil {
		return nil, err
	}
	return &Exchanged{Token: tok, ExpiresAt: exp, Claims: claims}, nil
}

// linkError turns a join token refusal into the exchange's domain error.
func linkError(err error) error {
	switch err {
	case joinlink.ErrRevoked:
		return cases.Errorf(ELinkRevoked, "%s", err.Error())
	case joinlink.ErrRemoved:
		return cases.Errorf(ERemoved, "%s", err.Error())
	case joinlink.ErrSessionEnded:
		return cases.Errorf(ESessionEnded, "%s", err.Error())
	case joinlink.ErrInvalid:
		return cases.Errorf(ELinkNotFound, "this join link is not valid")
	}
	return err
}

// RevokeRequest says which join links to revoke: one token or link (JTI),
// every link of one participant (ParticipantID), or every link of the
// session (neither).
type RevokeRequest struct {
	SessionID     string
	ParticipantID string
	JTI           string
	Reason        string
}

// Revoke refuses from now on the join links and tokens the request
// names, before they expire. The revocation is recorded in the case's
// log.
func (s *Service) Revoke(ctx context.Context, actor string, req RevokeRequest) (*cases.Revocation, error) {
	if req.JTI != "" && req.ParticipantID != "" {
		return nil, cases.FieldErrorf("jti", "give a jti or a participantId, not both")
	}
	if len(req.Reason) > 500 || len(req.JTI) > 100 {
		return nil, cases.FieldErrorf("reason", "reason is longer than 500 characters")
	}
	r := &cases.Revocation{Kind: cases.RevokeSession, SessionID: req.SessionID, Reason: req.Reason, Actor: actor}
	switch {
	case req.JTI != "":
		r.Kind, r.JTI = cases.RevokeToken, req.JTI
	case req.ParticipantID != "":
		r.Kind, r.ParticipantID = cases.RevokeParticipant, req.ParticipantID
	}
	err := s.store.Update(ctx, func(tx cases.Tx) error {
		sess, err := tx.Session(ctx, req.SessionID)
		if err != nil {
			return err
		}
		if r.ParticipantID != "" {
			if _, ok := sess.Participant(r.ParticipantID); !ok {
				return cases.FieldErrorf("participantId", "the session has no participant %q", r.ParticipantID)
			}
		}
		if r.JTI != "" {
			links, err := tx.JoinLinks(ctx, sess.ID)
			if err != nil {
				return err
			}
			if !slices.ContainsFunc(links, func(l cases.JoinLink) bool { return l.ID == r.JTI }) {
				return cases.FieldErrorf("jti", "the session has no join link %q", r.JTI)
			}
		}
		r.CaseID = sess.CaseID
		r.RevokedAt = s.now().UTC()
		if err := tx.PutRevocation(ctx, r); err != nil {
			return err
		}
		payload, _ := json.Marshal(map[string]any{"sessionId": sess.ID, "kind": r.Kind,
			"participantId": r.ParticipantID, "jti": r.JTI, "reason": r.Reason})
		return tx.AppendEvent(ctx, &cases.Event{CaseID: sess.CaseID, Type: "links.revoked", Actor: actor, At: r.RevokedAt, Payload: payload})
	})
	if err != nil {
		return nil, err
	}
	s.log.Info("join links revoked", "kind", r.Kind, "session", r.SessionID, "participant", r.ParticipantID, "actor", actor)
	return r, nil
}

// Package identity says who is calling: staff accounts with passwords,
// their short-lived access tokens and rotating refresh sessions, and the
// join links of parties, short enough for an SMS, with their revocation.
// It decides no case rule; who may do what to which case is decided in
// web's authorisation, from the principal identity establishes.
package identity

import (
	"errors"
	"log/slog"
	"time"

	"github.com/concord-odr/concord/cases"
	"github.com/concord-odr/concord/cases/joinlink"
)

// Error codes of identity, beside those of cases. They are stable; web
// maps them to HTTP statuses.
const (
	// ELinkNotFound: a short link code that is malformed or unknown.
	ELinkNotFound = "link_not_found"
	// ELinkExpired: the link's time is up.
	ELinkExpired = "link_expired"
	// ELinkRevoked: the link was revoked, or its case is closed.
	ELinkRevoked = "link_revoked"
	// ESessionEnded: the link's session has ended.
	ESessionEnded = "session_ended"
	// ERemoved: the mediator removed the link's participant.
	ERemoved = "removed"
)

// Params configures a Service.
type Params struct {
	Store  cases.Store
	Logger *slog.Logger
	Now    func() time.Time // defaults to time.Now
	// Links signs and verifies join tokens.
	Links *joinlink.Signer
	// StaffKey signs staff access tokens; StaffOlderKeys still verify.
	StaffKey       joinlink.Key
	StaffOlderKeys []joinlink.Key
	// BaseURL returns the public URL that join links start with.
	BaseURL func() string
	// LinkTTL is how long a join link is valid; 0 means 72 hours.
	LinkTTL time.Duration
	// AccessTTL is how long a staff access token is valid; 0 means 15
	// minutes.
	AccessTTL time.Duration
	// RefreshTTL is how long a refresh token is valid if unused (a staff
	// member idle longer logs in again); 0 means 12 hours.
	RefreshTTL time.Duration
	// SessionTTL is the longest a login lasts however often it is
	// refreshed; 0 means 7 days.
	SessionTTL time.Duration
	// Hash are the argon2id parameters of new password hashes; zero means
	// DefaultHashParams. HashConcurrency bounds the hashes computed at
	// once; 0 means 4.
	Hash            HashParams
	HashConcurrency int
	// LinkMessage writes the text that carries a join link; nil means
	// DefaultLinkMessage.
	LinkMessage func(LinkMessage) string
	// Queued is called after a transaction that queued notifications has
	// committed, to wake the outbox worker. It may be nil.
	Queued func()
	// VerifyTimeout bounds the store lookups of a join token's
	// verification when the caller gives no context; 0 means 5s.
	VerifyTimeout time.Duration
}

// Service manages staff accounts, their logins and join links.
type Service struct {
	p      Params
	store  cases.Store
	log    *slog.Logger
	now    func() time.Time
	links  *joinlink.Signer
	access *tokenSigner
	hasher *hasher
}

// New returns a Service.
func New(p Params) (*Service, error) {
	if p.Store == nil || p.Links == nil {
		return nil, errors.New("identity: a store and a join link signer are required")
	}
	if p.Logger == nil {
		p.Logger = slog.New(slog.DiscardHandler)
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	if p.BaseURL == nil {
		p.BaseURL = func() string { return "" }
	}
	if p.LinkTTL <= 0 {
		p.LinkTTL = 72 * time.Hour
	}
	if p.AccessTTL <= 0 {
		p.AccessTTL = 15 * time.Minute
	}
	if p.RefreshTTL <= 0 {
		p.RefreshTTL = 12 * time.Hour
	}
	if p.SessionTTL <= 0 {
		p.SessionTTL = 7 * 24 * time.Hour
	}
	if p.Hash == (HashParams{}) {
		p.Hash = DefaultHashParams
	}
	if p.LinkMessage == nil {
		p.LinkMessage = DefaultLinkMessage
	}
	if p.VerifyTimeout <= 0 {
		p.VerifyTimeout = 5 * time.Second
	}
	access, err := newTokenSigner(p.StaffKey, p.StaffOlderKeys, p.Now)
	if err != nil {
		return nil, err
	}
	h, err := newHasher(p.Hash, p.HashConcurrency)
	if err != nil {
		return nil, err
	}
	return &Service{p: p, store: p.Store, log: p.Logger, now: p.Now, links: p.Links, access: access, hasher: h}, nil
}

// queued tells the outbox worker that messages wait.
func (s *Service) queued() {
	if s.p.Queued != nil {
		s.p.Queued()
	}
}

// errUnauthorized returns an EUNAUTHORIZED error with a safe message.
func errUnauthorized(msg string) error { return cases.Errorf(cases.EUNAUTHORIZED, "%s", msg) }

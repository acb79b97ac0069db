package identity

import (
	"context"

	"github.com/concord-odr/concord/cases"
	"github.com/concord-odr/concord/cases/joinlink"
)

// VerifyMode chooses which refusals a Verifier makes itself.
type VerifyMode int

const (
	// ForSignaling refuses what the join link signer does (signature, kid,
	// algorithm, iss, aud, exp, nbf), a revoked jti, participant or
	// session, and a link whose case was closed while its session was not
	// ended. A removed participant, an ended session and an unknown
	// participant or session pass: signaling refuses those itself, each
	// with its own error code (removed, session_ended, not_found).
	ForSignaling VerifyMode = iota
	// ForAPI refuses also a removed participant. A party whose session
	// has ended, or whose case is closed, still reads its own case (the
	// outcome it agreed to) until its link expires.
	ForAPI
	// Strict refuses also an ended session or a closed case, and an
	// unknown session or participant: the link can no longer be used to
	// join. The short link exchange uses it.
	Strict
)

// Verifier checks join tokens, revocation included. It satisfies
// signaling.TokenVerifier and web.TokenVerifier.
type Verifier struct {
	s    *Service
	mode VerifyMode
}

// Verifier returns a join token verifier that refuses revoked links.
func (s *Service) Verifier(mode VerifyMode) *Verifier { return &Verifier{s: s, mode: mode} }

// Verify checks token with a context of its own.
func (v *Verifier) Verify(token string) (*joinlink.Claims, error) {
	ctx, cancel := context.WithTimeout(context.Background(), v.s.p.VerifyTimeout)
	defer cancel()
	return v.VerifyContext(ctx, token)
}

// VerifyContext checks token's signature and claims, then the store for
// revocations; see VerifyMode. A link to the reconciliation room works
// while the case is in reconciliation (Joinable). Its errors are the joinlink package's
// (ErrInvalid, ErrExpired, ErrRevoked, ErrRemoved, ErrSessionEnded, ...)
// or, when the store fails, an internal error.
func (v *Verifier) VerifyContext(ctx context.Context, token string) (*joinlink.Claims, error) {
	c, err := v.s.links.Verify(token)
	if err != nil {
		return nil, err
	}
	err = v.s.store.View(ctx, func(tx cases.Tx) error {
		_, err := v.s.checkTx(ctx, tx, c, v.mode)
		return err
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// checkTx checks the store for what refuses the claims c in mode, and
// returns the participant they name (zero if it passed unknown).
func (s *Service) checkTx(ctx context.Context, tx cases.Tx, c *joinlink.Claims, mode VerifyMode) (cases.Participant, error) {
	if _, err := tx.Revocation(ctx, c.ID, c.SessionID, c.ParticipantID()); err == nil {
		return cases.Participant{}, joinlink.ErrRevoked
	} else if cases.ErrorCode(err) != cases.ENOTFOUND {
		return cases.Participant{}, err
	}
	sess, err := tx.Session(ctx, c.SessionID)
	if cases.ErrorCode(err) == cases.ENOTFOUND {
		if mode == ForSignaling {
			return cases.Participant{}, nil
		}
		return cases.Participant{}, joinlink.ErrInvalid
	}
	if err != nil {
		return cases.Participant{}, err
	}
	if sess.CaseID != c.CaseID {
		return cases.Participant{}, joinlink.ErrInvalid
	}
	p, ok := sess.Participant(c.ParticipantID())
	if !ok && mode != ForSignaling {
		return cases.Participant{}, joinlink.ErrInvalid
	}
	if mode != ForSignaling {
		events, err := tx.Events(ctx, sess.CaseID)
		if err != nil {
			return cases.Participant{}, err
		}
		if cases.RemovedIn(events, sess.ID, c.ParticipantID()) {
			return cases.Participant{}, joinlink.ErrRemoved
		}
	}
	if sess.Status == cases.SessionEnded {
		if mode == Strict {
			return cases.Participant{}, joinlink.ErrSessionEnded
		}
		return p, nil
	}
	if mode == ForAPI {
		return p, nil
	}
	cs, err := tx.Case(ctx, sess.CaseID)
	if err != nil {
		return cases.Participant{}, err
	}
	if !Joinable(cs, sess) {
		return cases.Participant{}, joinlink.ErrRevoked
	}
	return p, nil
}

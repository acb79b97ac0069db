package cases

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// Recording an outcome is idempotent by its natural key, the session: a
// session ends once, and the request that ended it is kept (its hash, in
// the idempotency records under scopeSessionEnd). The same request again
// (a client's retry, or a replay from the outbox after an ambiguous
// failure) records nothing and answers with the case and session as they
// are; another request for an ended session is ETRANSITION.

// scopeSessionEnd is the idempotency scope of ended sessions; the key is
// the session id.
const scopeSessionEnd = "session.end"

// EndRequest asks to end a session with an outcome.
type EndRequest struct {
	SessionID string `json:"sessionId"`
	// ActorID is the participant id of the session's mediator.
	ActorID string  `json:"actorId"`
	Outcome Outcome `json:"outcome"`
	// At is when the mediator ended the session; zero means now. A
	// request replayed from the outbox keeps the time it was made.
	At time.Time `json:"at"`
}

// EndResult is what ending a session did.
type EndResult struct {
	Case    *Case    `json:"case,omitempty"`
	Session *Session `json:"session,omitempty"`
	// Replayed is set when the session had already ended with this same
	// request: nothing new was recorded.
	Replayed bool `json:"replayed,omitempty"`
	// Queued is set when the store was unreachable and the request was
	// kept in the outbox instead, as OutboxID; it is written when the
	// store returns.
	Queued   bool   `json:"queued,omitempty"`
	OutboxID string `json:"outboxId,omitempty"`
}

// requestHash identifies what was asked, not when.
func (r *EndRequest) requestHash() string {
	o := r.Outcome
	remedies := o.Remedies
	if len(remedies) == 0 {
		remedies = nil
	}
	var next string
	if o.NextSessionAt != nil {
		next = o.NextSessionAt.UTC().Truncate(time.Microsecond).Format(time.RFC3339Nano)
	}
	b, _ := json.Marshal([]any{r.SessionID, r.ActorID, o.Result, o.Terms, remedies, next, o.AgreementID})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// check validates what can be checked without the store.
func (r *EndRequest) check() error {
	o := &r.Outcome
	if !o.Result.Valid() {
		return FieldErrorf("result", "unknown outcome %q", o.Result)
	}
	if err := validText("terms", o.Terms, 20000, false); err != nil {
		return err
	}
	if o.Result == ResultNotSettled && len(o.Remedies) == 0 {
		return FieldErrorf("remedies", "a not-settled outcome needs the remedies shown to the applicant")
	}
	if len(o.Remedies) > 10 {
		return FieldErrorf("remedies", "at most 10 remedies")
	}
	for _, rm := range o.Remedies {
		if err := validText("remedies", rm, 500, true); err != nil {
			return err
		}
	}
	if o.NextSessionAt != nil && o.Result != ResultAdjourned {
		return FieldErrorf("nextSessionAt", "only an adjourned session has a next session")
	}
	if err := validText("agreementId", o.AgreementID, 64, false); err != nil {
		return err
	}
	if r.SessionID == "" || r.ActorID == "" {
		return Errorf(ENOTFOUND, "no such session")
	}
	return nil
}

// RecordOutcome ends a session and records its outcome in one
// transaction: the session's end, the outcome and, for a final result,
// the case closing with it. A settled outcome refers to the case's signed
// agreement, whose reference stands in for the terms when none are
// given. The same request again is a retry (see above).
func (s *Service) RecordOutcome(ctx context.Context, req EndRequest) (*EndResult, error) {
	if err := req.check(); err != nil {
		return nil, err
	}
	hash := req.requestHash()
	o := req.Outcome
	res := &EndResult{}
	err := s.store.Update(ctx, func(tx Tx) error {
		sess, err := tx.Session(ctx, req.SessionID)
		if err != nil {
			return err
		}
		p, ok := sess.Participant(req.ActorID)
		if !ok || p.Role != RoleMediator {
			return Errorf(ENOTFOUND, "no such session")
		}
		c, err := tx.Case(ctx, sess.CaseID)
		if err != nil {
			return err
		}
		if sess.Status == SessionEnded {
			rec, err := tx.Idempotency(ctx, scopeSessionEnd, sess.ID)
			if err != nil && ErrorCode(err) != ENOTFOUND {
				return err
			}
			if err == nil && rec.RequestHash == hash {
				res.Case, res.Session, res.Replayed = c, sess, true
				return nil
			}
			return Errorf(ETRANSITION, "the session has already ended")
		}
		// A session of a case already closed by another session still ends,
		// but its outcome cannot change the case.
		if c.State != StateMediating && c.State != StateClosed {
			return Errorf(ETRANSITION, "a case in state %s cannot record an outcome", c.State)
		}
		if c.State == StateClosed && o.Result.Final() {
			return Errorf(ETRANSITION, "the case is already closed; end this session as adjourned")
		}
		if o.Result.settles() {
			switch {
			case o.AgreementID != "" && (c.Agreement == nil || c.Agreement.ID != o.AgreementID):
				return FieldErrorf("agreementId", "agreementId must name the case's signed agreement")
			case c.Agreement != nil:
				o.AgreementID = c.Agreement.ID
				if o.Terms == "" {
					o.Terms = fmt.Sprintf("见调解协议 %s-%d（%s）", c.Number, c.Agreement.Number, c.Agreement.ID)
				}
			case o.Terms == "":
				return FieldErrorf("terms", "terms is required: the agreed terms, or sign the agreement first")
			}
		} else if o.AgreementID != "" {
			return FieldErrorf("agreementId", "only a settled outcome refers to an agreement")
		}
		now := req.At.UTC()
		if req.At.IsZero() {
			now = s.now().UTC()
		}
		if sess.StartedAt == nil {
			sess.StartedAt = &now
		}
		sess.EndedAt = &now
		sess.Status = SessionEnded
		closeAttendance(sess, "", now)
		if err := tx.PutSession(ctx, sess); err != nil {
			return err
		}
		o.SessionID = sess.ID
		o.RecordedBy = req.ActorID
		o.RecordedAt = now
		ob, err := json.Marshal(o)
		if err != nil {
			return fmt.Errorf("encode outcome: %w", err)
		}
		if err := tx.PutIdempotency(ctx, &IdempotencyRecord{
			Scope: scopeSessionEnd, Key: sess.ID, RequestHash: hash, CaseID: c.ID,
			Status: 200, Response: ob, CreatedAt: now,
		}); err != nil {
			return err
		}
		res.Case, res.Session = c, sess
		if err := s.appendEventAt(ctx, tx, c.ID, "session.ended", req.ActorID, now, map[string]any{"sessionId": sess.ID, "result": o.Result}); err != nil {
			return err
		}
		if !o.Result.Final() {
			return s.appendEventAt(ctx, tx, c.ID, "case.adjourned", req.ActorID, now, o)
		}
		c.Outcome = &o
		return s.setStateLocked(ctx, tx, c, StateClosed, req.ActorID, map[string]any{"outcome": o})
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// appendEventAt appends an event stamped at, not now.
func (s *Service) appendEventAt(ctx context.Context, tx Tx, caseID, typ, actor string, at time.Time, payload any) error {
	e, err := s.event(caseID, typ, actor, payload)
	if err != nil {
		return err
	}
	e.At = at
	return tx.AppendEvent(ctx, e)
}

// EndSessionDurably records an outcome like RecordOutcome, but when the
// store is unreachable (EUNAVAILABLE) and the service has an outbox it
// keeps the request there, durably, and answers Queued: the outbox's
// replayer writes it when the store returns. The request is validated
// first, so only requests that can succeed are queued.
func (s *Service) EndSessionDurably(ctx context.Context, req EndRequest) (*EndResult, error) {
	if err := req.check(); err != nil {
		return nil, err
	}
	if req.At.IsZero() {
		req.At = s.now().UTC()
	}
	res, err := s.RecordOutcome(ctx, req)
	if err == nil || s.outbox == nil || ErrorCode(err) != EUNAVAILABLE {
		return res, err
	}
	id, qerr := s.outbox.Put(req)
	if qerr != nil {
		s.log.Error("outcome outbox: cannot keep an outcome the store refused", "session", req.SessionID, "err", qerr, "storeErr", err)
		return nil, err
	}
	s.log.Warn("case store unreachable: outcome kept in the outbox", "session", req.SessionID, "outbox", id, "err", err)
	return &EndResult{Queued: true, OutboxID: id}, nil
}

package cases

import (
	"context"
	"slices"
	"time"
)

// AgreementActor is who takes an agreement step: a participant of one of
// the case's sessions, as its join token names it. The service checks
// the participant against the session, so a token for another case or
// with another role gets nowhere.
type AgreementActor struct {
	SessionID     string
	ParticipantID string
}

// DraftRequest creates or edits the open draft of a case's agreement.
type DraftRequest struct {
	CaseID  string
	Actor   AgreementActor // the session's mediator
	Content AgreementContent
	// VisibleTo is "all" (the default) or the side the mediator is in a
	// caucus with while drafting.
	VisibleTo string
	// Revision is the draft revision the mediator edited: 0 to start a
	// draft, otherwise the current one (a stale one is ECONFLICT).
	Revision int
}

// participantLocked resolves an actor to a participant of a session of
// caseID with the given role. Anything else is ENOTFOUND, so that a
// refusal reveals nothing.
func participantLocked(ctx context.Context, tx Tx, caseID string, a AgreementActor, role string) (*Session, Participant, error) {
	if a.SessionID == "" || a.ParticipantID == "" {
		return nil, Participant{}, Errorf(ENOTFOUND, "case not found")
	}
	sess, err := tx.Session(ctx, a.SessionID)
	if ErrorCode(err) == ENOTFOUND || err == nil && sess.CaseID != caseID {
		return nil, Participant{}, Errorf(ENOTFOUND, "case not found")
	}
	if err != nil {
		return nil, Participant{}, err
	}
	p, ok := sess.Participant(a.ParticipantID)
	if !ok || p.Role != role {
		return nil, Participant{}, Errorf(ENOTFOUND, "case not found")
	}
	return sess, p, nil
}

// agreementCaseLocked reads a case whose agreement may be drafted,
// confirmed or signed: one being mediated, or closed as settled or
// partially settled and not yet gone on to confirmation.
func agreementCaseLocked(ctx context.Context, tx Tx, caseID string) (*Case, error) {
	c, err := tx.Case(ctx, caseID)
	if err != nil {
		return nil, err
	}
	switch {
	case c.State == StateMediating:
	case c.State == StateClosed && c.Outcome != nil && c.Outcome.Result.settles():
	default:
		return nil, Errorf(ETRANSITION, "a case in state %s has no agreement to prepare", c.State)
	}
	return c, nil
}

// openDraft returns the case's draft, if any, and the highest number.
func openDraft(list []Agreement) (*Agreement, int) {
	var draft *Agreement
	top := 0
	for i := range list {
		if list[i].Status == AgreementDraft {
			draft = &list[i]
		}
		top = max(top, list[i].Number)
	}
	return draft, top
}

// AgreementTemplate returns a draft's content filled in from the case:
// the parties, the claims as the disputed matters, the mediator and the
// institution. The actor is the session's mediator.
func (s *Service) AgreementTemplate(ctx context.Context, caseID string, actor AgreementActor) (*AgreementContent, error) {
	var out *AgreementContent
	err := s.store.View(ctx, func(tx Tx) error {
		_, med, err := participantLocked(ctx, tx, caseID, actor, RoleMediator)
		if err != nil {
			return err
		}
		c, err := tx.Case(ctx, caseID)
		if err != nil {
			return err
		}
		inst, err := tx.Institution(ctx, c.InstitutionID)
		instName := ""
		if err == nil {
			instName = inst.Name
		} else if ErrorCode(err) != ENOTFOUND {
			return err
		}
		party := func(side string, p Party) AgreementParty {
			id := p.CreditCode
			return AgreementParty{Side: side, Name: p.Name, Kind: p.Kind, IDNumber: id, Phone: p.Phone}
		}
		out = &AgreementContent{
			Parties:         []AgreementParty{party(SideApplicant, c.Applicant), party(SideRespondent, c.Respondent)},
			DisputedMatters: c.Claims,
			Terms:           []AgreementTerm{},
			Mediator:        med.Name,
			Institution:     instName,
		}
		return nil
	})
	return out, err
}

// DraftAgreement starts or edits the open draft of a case's agreement. A
// change of the text makes a new revision and voids the confirmations
// given before it.
func (s *Service) DraftAgreement(ctx context.Context, req DraftRequest) (*Agreement, error) {
	content := req.Content
	content.Parties = slices.Clone(content.Parties)
	content.Terms = slices.Clone(content.Terms)
	if content.Parties == nil {
		content.Parties = []AgreementParty{}
	}
	if content.Terms == nil {
		content.Terms = []AgreementTerm{}
	}
	if err := validateContent(&content); err != nil {
		return nil, err
	}
	visible := req.VisibleTo
	switch visible {
	case "":
		visible = VisibleToAll
	case VisibleToAll, SideApplicant, SideRespondent:
	default:
		return nil, FieldErrorf("visibleTo", "visibleTo is all, applicant or respondent")
	}
	var out *Agreement
	err := s.store.Update(ctx, func(tx Tx) error {
		c, err := agreementCaseLocked(ctx, tx, req.CaseID)
		if err != nil {
			return err
		}
		sess, med, err := participantLocked(ctx, tx, c.ID, req.Actor, RoleMediator)
		if err != nil {
			return err
		}
		list, err := tx.Agreements(ctx, c.ID)
		if err != nil {
			return err
		}
		now := s.now().UTC()
		a, top := openDraft(list)
		if a == nil {
			if req.Revision != 0 {
				return Errorf(ECONFLICT, "there is no open draft at revision %d; reload the agreement", req.Revision)
			}
			if top > 0 {
				return Errorf(ETRANSITION, "the case already has a signed agreement; start a correction of it instead")
			}
			a = &Agreement{
				ID: NewID("agr_"), CaseID: c.ID, CaseNumber: c.Number, Number: 1, Status: AgreementDraft,
				Confirmations: []AgreementConfirmation{}, CreatedAt: now,
			}
		} else if req.Revision != a.Revision {
			return Errorf(ECONFLICT, "the draft is at revision %d, not %d: it was changed; reload it and edit again", a.Revision, req.Revision)
		}
		supersedes := 0
		if a.Supersedes != "" {
			for _, old := range list {
				if old.ID == a.Supersedes {
					supersedes = old.Number
				}
			}
		}
		text := RenderAgreementText(c.Number, a.Number, supersedes, &content)
		hash := TextHash(text)
		a.Content = content
		a.DraftedBy = med.ID
		a.SessionID = sess.ID
		a.UpdatedAt = now
		changedVisibility := a.VisibleTo != visible
		a.VisibleTo = visible
		if hash == a.TextHash && a.Version != 0 {
			if !changedVisibility {
				out = a
				return nil // nothing changed
			}
		} else {
			voided := len(a.Confirmations)
			a.Revision++
			a.Text, a.TextHash = text, hash
			a.Confirmations = []AgreementConfirmation{}
			if err := s.appendEvent(ctx, tx, c.ID, "agreement.drafted", med.ID, map[string]any{
				"agreementId": a.ID, "number": a.Number, "revision": a.Revision, "textHash": a.TextHash,
				"visibleTo": a.VisibleTo, "sessionId": sess.ID, "voidedConfirmations": voided,
			}); err != nil {
				return err
			}
		}
		if changedVisibility && a.Version != 0 {
			if err := s.appendEvent(ctx, tx, c.ID, "agreement.visibility", med.ID, map[string]any{
				"agreementId": a.ID, "visibleTo": a.VisibleTo,
			}); err != nil {
				return err
			}
		}
		if err := tx.PutAgreement(ctx, a); err != nil {
			return err
		}
		out = a
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ConfirmRequest is a party confirming the exact text of an agreement.
type ConfirmRequest struct {
	CaseID      string
	AgreementID string
	Actor       AgreementActor // a party of a session of the case
	// TextHash is the SHA-256 of the text the party read; it must be the
	// agreement's current one.
	TextHash string
}

// ConfirmAgreement records a party's confirmation of the current text.
// Confirming the same text again changes nothing.
func (s *Service) ConfirmAgreement(ctx context.Context, req ConfirmRequest) (*Agreement, error) {
	var out *Agreement
	err := s.store.Update(ctx, func(tx Tx) error {
		c, err := agreementCaseLocked(ctx, tx, req.CaseID)
		if err != nil {
			return err
		}
		sess, p, err := participantLocked(ctx, tx, c.ID, req.Actor, RoleParty)
		if err != nil {
			return err
		}
		a, err := caseAgreement(ctx, tx, c.ID, req.AgreementID)
		if err != nil {
			return err
		}
		if !a.VisibleToSide(p.Side) {
			return Errorf(ENOTFOUND, "agreement not found")
		}
		if a.Status != AgreementDraft {
			return Errorf(ETRANSITION, "the agreement is %s and takes no more confirmations", a.Status)
		}
		if a.VisibleTo != VisibleToAll {
			return Errorf(ETRANSITION, "the draft is being prepared in a caucus; it is confirmed in joint session")
		}
		if req.TextHash != a.TextHash {
			return Errorf(ECONFLICT, "the agreement text has changed since you read it; read it again and confirm the new text")
		}
		if err := complete(&a.Content); err != nil {
			return err
		}
		for _, cf := range a.Confirmations {
			if cf.ParticipantID == p.ID && cf.TextHash == a.TextHash {
				out = a
				return nil
			}
		}
		now := s.now().UTC()
		a.Confirmations = append(a.Confirmations, AgreementConfirmation{
			ParticipantID: p.ID, Name: p.Name, Side: p.Side, SessionID: sess.ID,
			At: now, Revision: a.Revision, TextHash: a.TextHash,
		})
		a.UpdatedAt = now
		if err := tx.PutAgreement(ctx, a); err != nil {
			return err
		}
		out = a
		return s.appendEvent(ctx, tx, c.ID, "agreement.confirmed", p.ID, map[string]any{
			"agreementId": a.ID, "revision": a.Revision, "textHash": a.TextHash,
			"side": p.Side, "sessionId": sess.ID,
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// SignRequest is the mediator signing an agreement.
type SignRequest struct {
	CaseID      string
	AgreementID string
	Actor       AgreementActor // the session's mediator
	TextHash    string
}

// SignAgreement makes a draft final: the mediator signs last, once every
// side has confirmed the current text. The agreement takes effect now;
// its deadlines become follow-ups; a correction supersedes the agreement
// it corrects.
func (s *Service) SignAgreement(ctx context.Context, req SignRequest) (*Agreement, error) {
	var out *Agreement
	err := s.store.Update(ctx, func(tx Tx) error {
		c, err := agreementCaseLocked(ctx, tx, req.CaseID)
		if err != nil {
			return err
		}
		sess, med, err := participantLocked(ctx, tx, c.ID, req.Actor, RoleMediator)
		if err != nil {
			return err
		}
		a, err := caseAgreement(ctx, tx, c.ID, req.AgreementID)
		if err != nil {
			return err
		}
		if a.Status != AgreementDraft {
			if a.Status == AgreementFinal && a.TextHash == req.TextHash && a.Signature != nil && a.Signature.ParticipantID == med.ID {
				out = a // signed already: a retry
				return nil
			}
			return Errorf(ETRANSITION, "the agreement is %s and cannot be signed", a.Status)
		}
		if req.TextHash != a.TextHash {
			return Errorf(ECONFLICT, "the agreement text has changed since you read it; read it again")
		}
		if a.VisibleTo != VisibleToAll {
			return Errorf(ETRANSITION, "the draft is being prepared in a caucus; it is signed in joint session")
		}
		if err := complete(&a.Content); err != nil {
			return err
		}
		for _, side := range []string{SideApplicant, SideRespondent} {
			if len(a.ConfirmedBy(side)) == 0 {
				return Errorf(ETRANSITION, "the %s has not confirmed the current text; the mediator signs last", side)
			}
		}
		now := s.now().UTC()
		a.Status = AgreementFinal
		a.Signature = &AgreementSignature{ParticipantID: med.ID, Name: med.Name, SessionID: sess.ID, At: now, TextHash: a.TextHash}
		at := now
		a.EffectiveAt = &at
		a.UpdatedAt = now
		if err := tx.PutAgreement(ctx, a); err != nil {
			return err
		}
		if a.Supersedes != "" {
			old, err := tx.Agreement(ctx, a.Supersedes)
			if err != nil {
				return err
			}
			old.Status = AgreementSuperseded
			old.SupersededBy = a.ID
			old.UpdatedAt = now
			if err := tx.PutAgreement(ctx, old); err != nil {
				return err
			}
			if err := supersedeFollowUps(ctx, tx, c.ID, old.ID, now); err != nil {
				return err
			}
		}
		if err := s.createFollowUps(ctx, tx, c, a, now); err != nil {
			return err
		}
		c.Agreement = &AgreementRef{ID: a.ID, Number: a.Number, TextHash: a.TextHash, EffectiveAt: now}
		c.UpdatedAt = now
		if err := tx.PutCase(ctx, c); err != nil {
			return err
		}
		out = a
		payload := map[string]any{
			"agreementId": a.ID, "number": a.Number, "textHash": a.TextHash,
			"effectiveAt": now, "sessionId": sess.ID,
		}
		if a.Supersedes != "" {
			payload["supersedes"] = a.Supersedes
		}
		return s.appendEvent(ctx, tx, c.ID, "agreement.signed", med.ID, payload)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// CorrectRequest starts a correction of a final agreement.
type CorrectRequest struct {
	CaseID      string
	AgreementID string
	Actor       AgreementActor // the session's mediator
	Reason      string
}

// CorrectAgreement starts a new draft that corrects a final agreement:
// the next number, the same content to edit, no confirmations. The final
// agreement stays as it is until the correction is signed.
func (s *Service) CorrectAgreement(ctx context.Context, req CorrectRequest) (*Agreement, error) {
	if err := validText("reason", req.Reason, 2000, true); err != nil {
		return nil, err
	}
	var out *Agreement
	err := s.store.Update(ctx, func(tx Tx) error {
		c, err := agreementCaseLocked(ctx, tx, req.CaseID)
		if err != nil {
			return err
		}
		sess, med, err := participantLocked(ctx, tx, c.ID, req.Actor, RoleMediator)
		if err != nil {
			return err
		}
		old, err := caseAgreement(ctx, tx, c.ID, req.AgreementID)
		if err != nil {
			return err
		}
		if old.Status != AgreementFinal {
			return Errorf(ETRANSITION, "only a final agreement is corrected; this one is %s", old.Status)
		}
		list, err := tx.Agreements(ctx, c.ID)
		if err != nil {
			return err
		}
		if draft, _ := openDraft(list); draft != nil {
			return Errorf(ETRANSITION, "draft %d is open; finish or edit it instead", draft.Number)
		}
		_, top := openDraft(list)
		now := s.now().UTC()
		a := &Agreement{
			ID: NewID("agr_"), CaseID: c.ID, CaseNumber: c.Number, Number: top + 1,
			Supersedes: old.ID, Status: AgreementDraft, VisibleTo: VisibleToAll,
			Content: old.Content, Revision: 1, Confirmations: []AgreementConfirmation{},
			CorrectionReason: req.Reason, DraftedBy: med.ID, SessionID: sess.ID, CreatedAt: now, UpdatedAt: now,
		}
		a.Text = RenderAgreementText(c.Number, a.Number, old.Number, &a.Content)
		a.TextHash = TextHash(a.Text)
		if err := tx.PutAgreement(ctx, a); err != nil {
			return err
		}
		out = a
		return s.appendEvent(ctx, tx, c.ID, "agreement.correction_started", med.ID, map[string]any{
			"agreementId": a.ID, "number": a.Number, "supersedes": old.ID, "revision": a.Revision,
			"textHash": a.TextHash, "reason": req.Reason, "sessionId": sess.ID,
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// caseAgreement reads an agreement of caseID; one of another case is
// ENOTFOUND.
func caseAgreement(ctx context.Context, tx Tx, caseID, id string) (*Agreement, error) {
	a, err := tx.Agreement(ctx, id)
	if err == nil && a.CaseID != caseID {
		return nil, Errorf(ENOTFOUND, "agreement not found")
	}
	return a, err
}

// Agreements lists a case's agreements, oldest first. The case must
// exist.
func (s *Service) Agreements(ctx context.Context, caseID string) ([]Agreement, error) {
	var list []Agreement
	err := s.store.View(ctx, func(tx Tx) error {
		if _, err := tx.Case(ctx, caseID); err != nil {
			return err
		}
		var err error
		list, err = tx.Agreements(ctx, caseID)
		return err
	})
	return list, err
}

// Agreement reads one agreement of a case.
func (s *Service) Agreement(ctx context.Context, caseID, id string) (*Agreement, error) {
	var a *Agreement
	err := s.store.View(ctx, func(tx Tx) error {
		var err error
		a, err = caseAgreement(ctx, tx, caseID, id)
		return err
	})
	return a, err
}

// finalAgreement returns the agreement in force of c, or nil.
func finalAgreement(ctx context.Context, tx Tx, c *Case) (*Agreement, error) {
	if c.Agreement == nil {
		return nil, nil
	}
	a, err := tx.Agreement(ctx, c.Agreement.ID)
	if err != nil {
		return nil, err
	}
	return a, nil
}

// effectiveAt is when c's agreement took effect: the mediator's signature
// of the agreement in force, or, for a case settled without one, the
// recording of its outcome.
func effectiveAt(c *Case) time.Time {
	if c.Agreement != nil {
		return c.Agreement.EffectiveAt
	}
	if c.Outcome != nil {
		return c.Outcome.RecordedAt
	}
	return time.Time{}
}

package cases

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/concord-odr/concord/cases/calendar"
)

// NewCase is what an intake channel knows of a new dispute.
type NewCase struct {
	InstitutionID string
	Category      string
	Channel       string
	ExternalRef   string
	Applicant     Party
	Respondent    Party
	Claims        string
	AmountCents   int64
	IncidentDate  string // YYYY-MM-DD, optional
	Actor         string
}

// Intake channels.
const (
	ChannelOnline = "online" // the applicant's own form
	ChannelWindow = "window" // staff at a service window
	ChannelPhone  = "phone"  // staff taking a call
	ChannelKiosk  = "kiosk"  // a community remote mediation room
	Channel12315  = "12315"  // imported from the national 12315 platform
	ChannelPortal = "portal" // imported from another government portal
)

// Categories lists the dispute categories intake accepts.
func Categories() []string {
	return []string{
		"e-commerce", "online-payment", "internet-service", "product-quality",
		"service-quality", "consumer-finance", "other",
	}
}

var (
	phonePattern      = regexp.MustCompile(`^\+?[0-9][0-9 -]{4,30}$`)
	creditCodePattern = regexp.MustCompile(`^[0-9A-HJ-NPQRTUWXY]{2}[0-9]{6}[0-9A-HJ-NPQRTUWXY]{10}$`)
)

// ValidCreditCode reports whether s has the form of a unified social
// credit code (18 characters; the check digit is not verified).
func ValidCreditCode(s string) bool { return creditCodePattern.MatchString(s) }

func validParty(field string, p Party) error {
	if err := validText(field+".name", p.Name, 200, true); err != nil {
		return err
	}
	switch p.Kind {
	case "", "person", "organisation":
	default:
		return FieldErrorf(field+".kind", "%s.kind must be person or organisation", field)
	}
	if p.Phone != "" && !phonePattern.MatchString(p.Phone) {
		return FieldErrorf(field+".phone", "%s.phone is not a phone number", field)
	}
	if p.CreditCode != "" && !ValidCreditCode(p.CreditCode) {
		return FieldErrorf(field+".creditCode", "%s.creditCode is not an 18-character unified social credit code", field)
	}
	return nil
}

// validate checks n's fields; now bounds the incident date.
func (n *NewCase) validate(now time.Time) error {
	if err := validParty("applicant", n.Applicant); err != nil {
		return err
	}
	if err := validParty("respondent", n.Respondent); err != nil {
		return err
	}
	for _, v := range []struct {
		field, value string
		max          int
		required     bool
	}{
		{"institutionId", n.InstitutionID, 64, true},
		{"category", n.Category, 64, true},
		{"channel", n.Channel, 32, true},
		{"externalRef", n.ExternalRef, 128, false},
		{"claims", n.Claims, 10000, false},
	} {
		if err := validText(v.field, v.value, v.max, v.required); err != nil {
			return err
		}
	}
	if n.AmountCents < 0 {
		return FieldErrorf("amountCents", "amountCents must not be negative")
	}
	if n.IncidentDate != "" {
		d, err := calendar.ParseDate(n.IncidentDate)
		if err != nil {
			return FieldErrorf("incidentDate", "incidentDate: %v", err)
		}
		if calendar.DateOf(now).Before(d) {
			return FieldErrorf("incidentDate", "incidentDate %s is in the future", d)
		}
		if d.Year < 1990 {
			return FieldErrorf("incidentDate", "incidentDate %s is too far in the past", d)
		}
	}
	return nil
}

// OpenCase records a new case in state submitted. When the channel and
// external reference are set and a case with them exists, that case is
// returned unchanged and created is false.
func (s *Service) OpenCase(ctx context.Context, n NewCase) (c *Case, created bool, err error) {
	if err := n.validate(s.now()); err != nil {
		return nil, false, err
	}
	err = s.store.Update(ctx, func(tx Tx) error {
		var err error
		c, created, err = s.openLocked(ctx, tx, n)
		return err
	})
	if err != nil && n.ExternalRef != "" && ErrorCode(err) == ECONFLICT {
		// Another request imported the same external case at the same
		// moment: answer with that case.
		var existing *Case
		if verr := s.store.View(ctx, func(tx Tx) error {
			var err error
			existing, err = tx.CaseByExternalRef(ctx, n.Channel, n.ExternalRef)
			return err
		}); verr == nil {
			return existing, false, nil
		}
	}
	if err != nil {
		return nil, false, err
	}
	return c, created, nil
}

// openLocked creates the case n describes inside tx, or finds the one
// with its external reference.
func (s *Service) openLocked(ctx context.Context, tx Tx, n NewCase) (*Case, bool, error) {
	if n.ExternalRef != "" {
		existing, err := tx.CaseByExternalRef(ctx, n.Channel, n.ExternalRef)
		if err == nil {
			return existing, false, nil
		}
		if ErrorCode(err) != ENOTFOUND {
			return nil, false, err
		}
	}
	inst, err := tx.Institution(ctx, n.InstitutionID)
	if err != nil {
		if ErrorCode(err) == ENOTFOUND {
			return nil, false, FieldErrorf("institutionId", "institution %q does not exist", n.InstitutionID)
		}
		return nil, false, err
	}
	if inst.Status != InstitutionActive {
		return nil, false, FieldErrorf("institutionId", "institution %s is %s and receives no new cases", inst.Name, inst.Status)
	}
	n.Applicant.ODREnterprise = false
	n.Respondent.ODREnterprise = false
	if code := n.Respondent.CreditCode; code != "" {
		e, err := tx.Enterprise(ctx, code)
		switch {
		case err == nil:
			n.Respondent.ODREnterprise = e.Status == EnterpriseEnrolled
		case ErrorCode(err) != ENOTFOUND:
			return nil, false, err
		}
	}
	now := s.now().UTC()
	day := calendar.DateOf(now)
	seq, err := tx.NextCaseSeq(ctx, inst.ID, day.Year)
	if err != nil {
		return nil, false, err
	}
	c := &Case{
		ID:            NewID("case_"),
		Number:        fmt.Sprintf("%d-%s-%06d", day.Year, inst.Code, seq),
		InstitutionID: inst.ID,
		State:         StateSubmitted,
		Category:      n.Category,
		Channel:       n.Channel,
		ExternalRef:   n.ExternalRef,
		Applicant:     n.Applicant,
		Respondent:    n.Respondent,
		Claims:        n.Claims,
		AmountCents:   n.AmountCents,
		IncidentDate:  n.IncidentDate,
		RuleSetID:     s.rules.InForce(day).ID,
		CreatedAt:     now,
		UpdatedAt:     now,
	}
	if err := tx.PutCase(ctx, c); err != nil {
		return nil, false, err
	}
	err = s.appendEvent(ctx, tx, c.ID, "case.submitted", n.Actor, map[string]any{
		"channel": n.Channel, "category": n.Category, "number": c.Number, "ruleSetId": c.RuleSetID,
	})
	if err != nil {
		return nil, false, err
	}
	return c, true, nil
}

// IdempotencyKey names one create request: the client's key within a
// scope (who asked, at which endpoint), with a hash of the request.
type IdempotencyKey struct {
	Scope       string
	Key         string
	RequestHash string
}

// Respond renders the answer to a create request. It runs inside the
// transaction that creates the case; what it returns is stored with the
// idempotency key and replayed for a repeated request.
type Respond func(c *Case, created bool) (status int, body []byte, err error)

// Answer is the answer to a create request.
type Answer struct {
	Status   int
	Body     []byte
	CaseID   string
	Created  bool // a case was created by this request
	Replayed bool // the answer is the stored one of an earlier request
}

// maxKeyLen is the longest idempotency key accepted.
const maxKeyLen = 255

// OpenCaseOnce is OpenCase for requests that carry an idempotency key:
// the first request with a key opens the case and stores respond's answer
// with the key in the same transaction; a repeat with the same key and
// request hash gets that answer again and creates nothing; the same key
// with another request is EIDEMPOTENCY. An empty key behaves like
// OpenCase.
func (s *Service) OpenCaseOnce(ctx context.Context, n NewCase, key IdempotencyKey, respond Respond) (*Answer, error) {
	if key.Key != "" {
		if len(key.Key) > maxKeyLen || strings.IndexFunc(key.Key, func(r rune) bool { return r < 0x21 || r > 0x7e }) >= 0 {
			return nil, FieldErrorf("Idempotency-Key", "the Idempotency-Key header must be 1 to %d visible ASCII characters", maxKeyLen)
		}
		if key.Scope == "" || key.RequestHash == "" {
			return nil, fmt.Errorf("cases: idempotency key without scope or request hash")
		}
	}
	if err := n.validate(s.now()); err != nil {
		return nil, err
	}
	var ans *Answer
	attempt := func() error {
		return s.store.Update(ctx, func(tx Tx) error {
			ans = nil
			if key.Key != "" {
				rec, err := tx.Idempotency(ctx, key.Scope, key.Key)
				if err == nil {
					ans, err = replay(rec, key)
					return err
				}
				if ErrorCode(err) != ENOTFOUND {
					return err
				}
			}
			c, created, err := s.openLocked(ctx, tx, n)
			if err != nil {
				return err
			}
			status, body, err := respond(c, created)
			if err != nil {
				return err
			}
			ans = &Answer{Status: status, Body: body, CaseID: c.ID, Created: created}
			if key.Key == "" {
				return nil
			}
			return tx.PutIdempotency(ctx, &IdempotencyRecord{
				Scope: key.Scope, Key: key.Key, RequestHash: key.RequestHash,
				CaseID: c.ID, Status: status, Response: body, CreatedAt: s.now().UTC(),
			})
		})
	}
	var err error
	// A concurrent request with the same key or external reference makes
	// this one conflict; the next attempt sees what it committed.
	for range 3 {
		if err = attempt(); ErrorCode(err) != ECONFLICT {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	return ans, nil
}

// replay returns the stored answer of rec if key's request is the same.
func replay(rec *IdempotencyRecord, key IdempotencyKey) (*Answer, error) {
	if rec.RequestHash != key.RequestHash {
		return nil, &Error{Code: EIDEMPOTENCY, Field: "Idempotency-Key",
			Message: "this Idempotency-Key was already used with a different request; use a new key for a new request"}
	}
	return &Answer{Status: rec.Status, Body: slices.Clone([]byte(rec.Response)), CaseID: rec.CaseID, Replayed: true}, nil
}

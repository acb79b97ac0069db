package cases

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"time"

	"github.com/concord-odr/concord/cases/calendar"
)

// CaseQuery is a staff search for cases. Zero fields match everything.
type CaseQuery struct {
	State         State
	InstitutionID string
	Category      string
	// Overdue selects the cases whose pending deadline has passed.
	Overdue bool
	// CreatedFrom and CreatedTo bound the day (in China) the case was
	// opened, both included: YYYY-MM-DD.
	CreatedFrom string
	CreatedTo   string
	// Cursor continues a listing from the page that returned it.
	Cursor string
	// Limit is the page size, 1 to MaxPageSize; 0 means DefaultPageSize.
	Limit int
	// InstitutionIDs, when not nil, confines the listing to the cases of
	// these institutions, and RespondentCreditCode, when set, to the
	// complaints against one enterprise: the caller's scope.
	InstitutionIDs       []string
	RespondentCreditCode string
}

// Page sizes of ListCases.
const (
	DefaultPageSize = 50
	MaxPageSize     = 200
)

// CasePage is one page of a listing, oldest case first.
type CasePage struct {
	Items []Case `json:"items"`
	// NextCursor continues the listing; empty on the last page.
	NextCursor string `json:"nextCursor,omitempty"`
}

// cursor is what an opaque cursor holds: the last case of a page and a
// digest of the query it belongs to.
type cursor struct {
	CreatedAt int64  `json:"t"`
	ID        string `json:"i"`
	Query     string `json:"q"`
}

// digest identifies q's filters, so that a cursor is not used with
// another query.
func (q CaseQuery) digest() string {
	b, _ := json.Marshal([]any{q.State, q.InstitutionID, q.Category, q.Overdue, q.CreatedFrom, q.CreatedTo,
		q.InstitutionIDs, q.RespondentCreditCode})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:6])
}

// ListCases lists the cases matching q, a page at a time, in a stable
// order: by creation time, then id.
func (s *Service) ListCases(ctx context.Context, q CaseQuery) (*CasePage, error) {
	f := CaseFilter{State: q.State, InstitutionID: q.InstitutionID, Category: q.Category,
		InstitutionIDs: q.InstitutionIDs, RespondentCreditCode: q.RespondentCreditCode}
	if q.State != "" && !q.State.Valid() {
		return nil, FieldErrorf("state", "unknown state %q", q.State)
	}
	switch {
	case q.Limit == 0:
		f.Limit = DefaultPageSize
	case q.Limit < 1 || q.Limit > MaxPageSize:
		return nil, FieldErrorf("limit", "limit must be between 1 and %d", MaxPageSize)
	default:
		f.Limit = q.Limit
	}
	if q.Overdue {
		f.DueBy = s.now().UTC()
	}
	var from, to calendar.Date
	if q.CreatedFrom != "" {
		d, err := calendar.ParseDate(q.CreatedFrom)
		if err != nil {
			return nil, FieldErrorf("createdFrom", "createdFrom: %v", err)
		}
		from = d
		f.CreatedFrom = d.Start().UTC()
	}
	if q.CreatedTo != "" {
		d, err := calendar.ParseDate(q.CreatedTo)
		if err != nil {
			return nil, FieldErrorf("createdTo", "createdTo: %v", err)
		}
		to = d
		f.CreatedBefore = d.AddDays(1).Start().UTC()
	}
	if q.CreatedFrom != "" && q.CreatedTo != "" && to.Before(from) {
		return nil, FieldErrorf("createdTo", "createdTo is before createdFrom")
	}
	digest := q.digest()
	if q.Cursor != "" {
		var c cursor
		b, err := base64.RawURLEncoding.DecodeString(q.Cursor)
		if err != nil || json.Unmarshal(b, &c) != nil || c.ID == "" {
			return nil, FieldErrorf("cursor", "the cursor is not one this server issued")
		}
		if c.Query != digest {
			return nil, FieldErrorf("cursor", "the cursor belongs to a listing with other filters")
		}
		f.AfterCreatedAt = time.UnixMicro(c.CreatedAt).UTC()
		f.AfterID = c.ID
	}
	limit := f.Limit
	f.Limit++ // one more tells whether there is a next page
	var list []Case
	err := s.store.View(ctx, func(tx Tx) error {
		var err error
		list, err = tx.ListCases(ctx, f)
		return err
	})
	if err != nil {
		return nil, err
	}
	page := &CasePage{Items: list}
	if len(list) > limit {
		page.Items = list[:limit]
		last := page.Items[limit-1]
		b, _ := json.Marshal(cursor{CreatedAt: last.CreatedAt.UnixMicro(), ID: last.ID, Query: digest})
		page.NextCursor = base64.RawURLEncoding.EncodeToString(b)
	}
	if page.Items == nil {
		page.Items = []Case{}
	}
	return page, nil
}

// Events returns a case's event log, oldest first.
func (s *Service) Events(ctx context.Context, caseID string) ([]Event, error) {
	var list []Event
	err := s.store.View(ctx, func(tx Tx) error {
		if _, err := tx.Case(ctx, caseID); err != nil {
			return err
		}
		var err error
		list, err = tx.Events(ctx, caseID)
		return err
	})
	return list, err
}

// Case reads one case.
func (s *Service) Case(ctx context.Context, id string) (*Case, error) {
	var c *Case
	err := s.store.View(ctx, func(tx Tx) error {
		var err error
		c, err = tx.Case(ctx, id)
		return err
	})
	return c, err
}

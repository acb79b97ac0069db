// Package stats computes Concord's statistics for the supervising
// departments: aggregates of cases by institution, level, district,
// category, channel, outcome and month, times to accept and to close,
// reconciliation and confirmation rates; and the early warnings of a
// merchant or a category whose weekly complaints rise well above its
// baseline.
//
// The statistics carry no personal data. They are computed from a
// Dataset of Facts, which holds only the coarse fields they need (the
// month, never the day or the place; categories and channels reduced to
// the known lists); names, phone numbers, ID and credit-code numbers,
// claims and agreed terms never enter it. Any cell counting fewer than
// MinCell cases is suppressed, and secondary suppression hides further
// cells so that no suppressed value can be derived from a total (see
// suppress.go).
//
// Early warnings name merchants: they are for the institution's staff,
// who see the cases anyway, and are never part of an export.
package stats

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/concord-odr/concord/cases"
	"github.com/concord-odr/concord/cases/calendar"
)

// Fact is what the statistics know of one case.
type Fact struct {
	Month         string // YYYY-MM the case was opened (China)
	InstitutionID string
	Category      string // one of cases.Categories(), or "other"
	Channel       string // a known channel, or "other"
	Outcome       string // see outcomeOf
	// Days from opening to acceptance and to closing, when they happened.
	DaysToAccept *float64
	DaysToClose  *float64
	// Reconciliation: "" (none), "open", "reconciled" or "escalated".
	Reconciliation string
	// Confirmation: "" (none requested), "pending", "confirmed", "refused".
	Confirmation string
	Settled      bool // settled or partially settled (has an agreement)

	// For early warnings only, never exported: the respondent's credit
	// code and name, and when the case was opened.
	respondentCode string
	respondentName string
	openedAt       time.Time
}

// Dataset is the facts of the cases in a scope, with the institutions.
type Dataset struct {
	Facts        []Fact
	Institutions []cases.Institution
	From, To     string // months, both included; "" for open ends
	// Category and Channel are the filters Narrow applied; "" for none.
	Category, Channel string

	// complements are, for each report of the same scope anyone can ask
	// for with fewer filters, the facts it counts that Facts does not.
	// Subtracting a filtered report from such a wider one gives these
	// counts: Compute suppresses a cell whose complement is small, as if
	// the complement were published too.
	complements [][]Fact
}

// Scope selects the cases a Dataset holds.
type Scope struct {
	// InstitutionIDs, when not nil, selects the cases of these
	// institutions.
	InstitutionIDs []string
	// From and To are months (YYYY-MM), both included; empty for open
	// ends.
	From, To string
	// Category and Channel, when set, keep only the cases of that
	// category (cases.Categories()) or channel ("other" for the rest).
	Category, Channel string
}

// checkFilters refuses a category or a channel the statistics do not
// know: the filters take the same reduced values the facts hold.
func checkFilters(category, channel string) error {
	if category != "" && !slices.Contains(append(cases.Categories(), "other"), category) {
		return cases.FieldErrorf("category", "category must be one of %s", strings.Join(cases.Categories(), ", "))
	}
	if channel != "" && !slices.Contains(append(slices.Clone(channels), "other"), channel) {
		return cases.FieldErrorf("channel", "channel must be one of %s, other", strings.Join(channels, ", "))
	}
	return nil
}

// Narrow keeps the facts of one category and one channel ("" for any),
// and remembers what the wider reports of the same scope count besides,
// for the suppression (see Dataset.complements).
func (d *Dataset) Narrow(category, channel string) error {
	if err := checkFilters(category, channel); err != nil {
		return err
	}
	if category == "" && channel == "" {
		return nil
	}
	match := func(f *Fact, category, channel string) bool {
		return (category == "" || f.Category == category) && (channel == "" || f.Channel == channel)
	}
	// The wider reports: no filter, and with both filters set, each one
	// alone.
	wider := [][2]string{{"", ""}}
	if category != "" && channel != "" {
		wider = append(wider, [2]string{category, ""}, [2]string{"", channel})
	}
	comps := make([][]Fact, len(wider))
	var kept []Fact
	for i := range d.Facts {
		f := &d.Facts[i]
		if match(f, category, channel) {
			kept = append(kept, *f)
			continue
		}
		for j, w := range wider {
			if match(f, w[0], w[1]) {
				comps[j] = append(comps[j], *f)
			}
		}
	}
	d.Facts, d.Category, d.Channel = kept, category, channel
	d.complements = append(d.complements, comps...)
	return nil
}

// parseMonth parses YYYY-MM.
func parseMonth(field, s string) (time.Time, error) {
	t, err := time.ParseInLocation("2006-01", s, calendar.Zone())
	if err != nil {
		return time.Time{}, cases.FieldErrorf(field, "%s must be a month, YYYY-MM", field)
	}
	return t, nil
}

// Outcomes, beside the results of cases.Result.
const (
	OutcomeOpen     = "open"
	OutcomeRejected = "rejected"
)

// outcomeOf is where a case ended, or "open".
func outcomeOf(c *cases.Case) string {
	if c.State == cases.StateRejected {
		return OutcomeRejected
	}
	if c.Outcome != nil {
		switch c.State {
		case cases.StateClosed, cases.StateConfirmationRequested, cases.StateConfirmed,
			cases.StateConfirmationRefused, cases.StateReferred:
			return string(c.Outcome.Result)
		}
	}
	return OutcomeOpen
}

// Outcomes lists the outcome keys in display order.
func Outcomes() []string {
	return []string{
		string(cases.ResultReconciled), string(cases.ResultSettled), string(cases.ResultPartiallySettled),
		string(cases.ResultNotSettled), string(cases.ResultWithdrawn), OutcomeRejected, OutcomeOpen,
	}
}

var channels = []string{cases.ChannelOnline, cases.ChannelWindow, cases.ChannelPhone, cases.ChannelKiosk,
	cases.Channel12315, cases.ChannelPortal}

// known returns v if it is in list, and "other" otherwise, so that a
// free-text value never reaches the statistics.
func known(v string, list []string) string {
	if slices.Contains(list, v) {
		return v
	}
	return "other"
}

// Collect reads the facts of the cases in scope from a store.
func Collect(ctx context.Context, store cases.Store, sc Scope) (*Dataset, error) {
	if err := checkFilters(sc.Category, sc.Channel); err != nil {
		return nil, err
	}
	d := &Dataset{From: sc.From, To: sc.To}
	f := cases.CaseFilter{Limit: 500, InstitutionIDs: sc.InstitutionIDs}
	if sc.From != "" {
		t, err := parseMonth("from", sc.From)
		if err != nil {
			return nil, err
		}
		f.CreatedFrom = t.UTC()
	}
	if sc.To != "" {
		t, err := parseMonth("to", sc.To)
		if err != nil {
			return nil, err
		}
		f.CreatedBefore = t.AddDate(0, 1, 0).UTC()
		if !f.CreatedFrom.IsZero() && !f.CreatedBefore.After(f.CreatedFrom) {
			return nil, cases.FieldErrorf("to", "to is before from")
		}
	}
	err := store.View(ctx, func(tx cases.Tx) error {
		var err error
		if d.Institutions, err = tx.Institutions(ctx); err != nil {
			return err
		}
		for {
			list, err := tx.ListCases(ctx, f)
			if err != nil {
				return err
			}
			for i := range list {
				fact, err := factOf(ctx, tx, &list[i])
				if err != nil {
					return err
				}
				d.Facts = append(d.Facts, fact)
			}
			if len(list) < f.Limit {
				return nil
			}
			last := list[len(list)-1]
			f.AfterCreatedAt, f.AfterID = last.CreatedAt, last.ID
		}
	})
	if err != nil {
		return nil, err
	}
	if err := d.Narrow(sc.Category, sc.Channel); err != nil {
		return nil, err
	}
	return d, nil
}

// factOf reduces a case to its fact, reading its events for the times.
func factOf(ctx context.Context, tx cases.Tx, c *cases.Case) (Fact, error) {
	f := Fact{
		Month:          c.CreatedAt.In(calendar.Zone()).Format("2006-01"),
		InstitutionID:  c.InstitutionID,
		Category:       known(c.Category, cases.Categories()),
		Channel:        known(c.Channel, channels),
		Outcome:        outcomeOf(c),
		respondentCode: c.Respondent.CreditCode,
		respondentName: c.Respondent.Name,
		openedAt:       c.CreatedAt,
	}
	f.Settled = f.Outcome == string(cases.ResultSettled) || f.Outcome == string(cases.ResultPartiallySettled)
	if cf := c.Confirmation; cf != nil {
		switch {
		case cf.DecidedAt == nil:
			f.Confirmation = "pending"
		case cf.Confirmed:
			f.Confirmation = "confirmed"
		default:
			f.Confirmation = "refused"
		}
	}
	events, err := tx.Events(ctx, c.ID)
	if err != nil {
		return Fact{}, err
	}
	days := func(t time.Time) *float64 {
		v := t.Sub(c.CreatedAt).Hours() / 24
		return &v
	}
	for _, e := range events {
		switch e.Type {
		case "case." + string(cases.StateAccepted):
			if f.DaysToAccept == nil {
				f.DaysToAccept = days(e.At)
			}
		case "case." + string(cases.StateClosed):
			f.DaysToClose = days(e.At)
		case "case." + string(cases.StateReconciliation):
			f.Reconciliation = "open"
		}
	}
	if f.Reconciliation != "" {
		switch {
		case f.Outcome == string(cases.ResultReconciled):
			f.Reconciliation = "reconciled"
		case c.State != cases.StateReconciliation:
			f.Reconciliation = "escalated"
		}
	}
	return f, nil
}

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
// builder.suppress); cells that another report (a wider month range,
// institution scope or filter) would give away by subtraction are
// hidden too (see Dataset for what that guarantees, and its limits).
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
//
// Differencing. Anyone who may ask for statistics may ask for several
// reports and subtract one from another: a report filtered by category
// from the unfiltered one, the months 2026-01..2026-03 from
// 2026-01..2026-02, an institution's subtree from its parent's or from
// the whole platform's. When one report counts a subset of the cases of
// another, the difference of a cell is itself a count of cases, and a
// small one (1 to MinCell-1) discloses a small group as surely as a
// small cell would. Compute therefore hides, on top of the suppression
// within the report, every cell with cases whose count differs by 1 to
// MinCell-1 from the same cell of a wider report anyone can ask for: a
// report of the same or a wider scope (an ancestor's subtree, or all
// institutions), over the same or a wider month range (any range of
// whole months that holds this one), with the same or fewer filters.
// The narrower report hides, never the wider one, so the widest reports
// (a whole subtree over all months) keep the most figures. And a report
// of an institution with children hides a cell whose count in the
// institution's own cases is 1 to MinCell-1, because the report minus
// its children's reports gives those.
//
// The guarantee: for any two reports of one snapshot of the data where
// one counts a subset of the other's cases, no cell shown in both
// differs by 1 to MinCell-1; and an institution's own small counts do
// not follow from its report minus its children's. Its limits: it does
// not consider every combination of three or more reports (a year minus
// each of its months but one, where that month's report hid a cell by
// secondary suppression only; a grandparent minus a parent minus an
// uncle), nor reports taken at different times (the data change: two
// reports of the current month a week apart differ by the week's
// cases), nor the medians and percentiles of the durations table.
type Dataset struct {
	Facts        []Fact
	Institutions []cases.Institution
	From, To     string // months, both included; "" for open ends
	// Category and Channel are the filters Narrow applied; "" for none.
	Category, Channel string

	// universe holds the facts of every report that can be compared
	// with this one: every case of every institution in every month
	// (nil: Facts as they were before Narrow).
	universe []Fact
	// scope is the institutions whose cases Facts holds, nil for all;
	// wider lists the scopes anyone can ask for that hold it (the
	// subtrees of its ancestors, nil for all institutions); root is the
	// institution whose subtree scope is, if it is one.
	scope map[string]bool
	wider []map[string]bool
	root  string
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

// Narrow keeps the facts of one category and one channel ("" for any).
// The facts it drops stay known to the suppression, which compares the
// filtered report with the wider ones (see Dataset).
func (d *Dataset) Narrow(category, channel string) error {
	if err := checkFilters(category, channel); err != nil {
		return err
	}
	// Narrowing twice to two different values would leave a report
	// whose filters say one thing and whose facts another.
	if category != "" && d.Category != "" && category != d.Category {
		return cases.FieldErrorf("category", "the statistics are already for category %s", d.Category)
	}
	if channel != "" && d.Channel != "" && channel != d.Channel {
		return cases.FieldErrorf("channel", "the statistics are already for channel %s", d.Channel)
	}
	if category == "" && channel == "" {
		return nil
	}
	if d.universe == nil {
		d.universe = d.Facts
	}
	var kept []Fact
	for i := range d.Facts {
		if matches(&d.Facts[i], category, channel) {
			kept = append(kept, d.Facts[i])
		}
	}
	d.Facts = kept
	if category != "" {
		d.Category = category
	}
	if channel != "" {
		d.Channel = channel
	}
	return nil
}

// matches reports whether a fact is of a category and a channel ("" for
// any).
func matches(f *Fact, category, channel string) bool {
	return (category == "" || f.Category == category) && (channel == "" || f.Channel == channel)
}

// inRange reports whether a month is in from..to ("" for open ends);
// YYYY-MM strings sort as the months do.
func inRange(month, from, to string) bool {
	return (from == "" || month >= from) && (to == "" || month <= to)
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

// Collect reads the facts of the cases in scope from a store. It reads
// every case, not only those in scope: the suppression compares the
// report with the wider ones anyone can ask for (see Dataset).
func Collect(ctx context.Context, store cases.Store, sc Scope) (*Dataset, error) {
	if err := checkScope(sc); err != nil {
		return nil, err
	}
	var universe []Fact
	var insts []cases.Institution
	f := cases.CaseFilter{Limit: 500}
	err := store.View(ctx, func(tx cases.Tx) error {
		var err error
		if insts, err = tx.Institutions(ctx); err != nil {
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
				universe = append(universe, fact)
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
	return scoped(universe, insts, sc)
}

// checkScope refuses months that are not YYYY-MM, a range that ends
// before it starts, and unknown filters.
func checkScope(sc Scope) error {
	if err := checkFilters(sc.Category, sc.Channel); err != nil {
		return err
	}
	var from time.Time
	if sc.From != "" {
		t, err := parseMonth("from", sc.From)
		if err != nil {
			return err
		}
		from = t
	}
	if sc.To != "" {
		t, err := parseMonth("to", sc.To)
		if err != nil {
			return err
		}
		if !from.IsZero() && t.Before(from) {
			return cases.FieldErrorf("to", "to is before from")
		}
	}
	return nil
}

// scoped is the dataset of a scope, taken from the facts of every case
// (universe), which it keeps for the suppression, with the scopes that
// hold this one.
func scoped(universe []Fact, insts []cases.Institution, sc Scope) (*Dataset, error) {
	if err := checkScope(sc); err != nil {
		return nil, err
	}
	d := &Dataset{From: sc.From, To: sc.To, Institutions: insts, universe: universe}
	if sc.InstitutionIDs != nil {
		d.scope = map[string]bool{}
		for _, id := range sc.InstitutionIDs {
			d.scope[id] = true
		}
		// The wider scopes are the subtrees that hold this one, and
		// all institutions.
		for _, in := range insts {
			sub := subtree(insts, in.ID)
			switch {
			case len(sub) == len(d.scope) && containsAll(sub, d.scope):
				d.root = in.ID
			case containsAll(sub, d.scope):
				d.wider = append(d.wider, sub)
			}
		}
		d.wider = append(d.wider, nil)
	}
	for i := range universe {
		f := &universe[i]
		if (d.scope == nil || d.scope[f.InstitutionID]) && inRange(f.Month, sc.From, sc.To) {
			d.Facts = append(d.Facts, *f)
		}
	}
	if err := d.Narrow(sc.Category, sc.Channel); err != nil {
		return nil, err
	}
	return d, nil
}

// subtree returns id and the ids of every institution below it.
func subtree(insts []cases.Institution, id string) map[string]bool {
	out := map[string]bool{id: true}
	for grew := true; grew; {
		grew = false
		for _, in := range insts {
			if !out[in.ID] && in.ParentID != "" && out[in.ParentID] {
				out[in.ID], grew = true, true
			}
		}
	}
	return out
}

// containsAll reports whether every id of sub is in set.
func containsAll(set, sub map[string]bool) bool {
	for id := range sub {
		if !set[id] {
			return false
		}
	}
	return true
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

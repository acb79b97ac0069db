package cases

import (
	"context"
	"math"
	"sort"
	"time"

	"github.com/concord-odr/concord/cases/calendar"
)

// The merchant dashboard: an enterprise's own complaints by category,
// outcome, month and time to resolve, so that it finds its weak links.
// It is built from the enterprise's reconciliation records only.

// DashboardGroup is the complaints of one category or month.
type DashboardGroup struct {
	Key       string `json:"key"`
	Total     int    `json:"total"`
	Open      int    `json:"open"`
	Settled   int    `json:"settled"`
	Escalated int    `json:"escalated"`
	// ReconciliationRate is settled / (settled + escalated); nil while
	// none ended.
	ReconciliationRate *float64 `json:"reconciliationRate"`
	// MedianResolveHours is the median time from the complaint reaching
	// the inbox to its settlement or escalation.
	MedianResolveHours *float64 `json:"medianResolveHours"`
}

// DashboardCount is a count under a key.
type DashboardCount struct {
	Key   string `json:"key"`
	Count int    `json:"count"`
}

// Durations summarises times, in hours.
type Durations struct {
	Count       int      `json:"count"`
	MeanHours   *float64 `json:"meanHours"`
	MedianHours *float64 `json:"medianHours"`
	P90Hours    *float64 `json:"p90Hours"`
}

// MerchantDashboard is an enterprise's own reconciliation figures.
type MerchantDashboard struct {
	EnterpriseCode string `json:"enterpriseCode"`
	// From and To are the days (China) the complaints reached the inbox,
	// both included.
	From      string `json:"from"`
	To        string `json:"to"`
	Total     int    `json:"total"`
	Open      int    `json:"open"`
	Settled   int    `json:"settled"`
	Escalated int    `json:"escalated"`
	// Overdue counts the open complaints past their deadline, which the
	// worker is about to escalate.
	Overdue            int              `json:"overdue"`
	ReconciliationRate *float64         `json:"reconciliationRate"`
	ByCategory         []DashboardGroup `json:"byCategory"`
	ByMonth            []DashboardGroup `json:"byMonth"`
	// ByOutcome counts settled, open, and each escalation reason
	// (declined, refused, deadline_passed, enterprise_suspended).
	ByOutcome          []DashboardCount `json:"byOutcome"`
	FirstResponse      Durations        `json:"firstResponse"`
	Resolve            Durations        `json:"resolve"`
	ResolveHistogram   []DashboardCount `json:"resolveHistogram"`
	GeneratedAt        time.Time        `json:"generatedAt"`
	DeadlinePassedRate *float64         `json:"deadlinePassedRate"`
}

// resolveBuckets are the upper bounds of the histogram of times to
// resolve.
var resolveBuckets = []struct {
	key string
	max time.Duration
}{
	{"<=1d", 24 * time.Hour},
	{"<=3d", 72 * time.Hour},
	{"<=7d", 7 * 24 * time.Hour},
	{"<=14d", 14 * 24 * time.Hour},
	{">14d", time.Duration(math.MaxInt64)},
}

// Dashboard computes an enterprise's dashboard over the complaints that
// reached its inbox from one day to another (China time, both included;
// empty from means the beginning, empty to today).
func (s *Service) Dashboard(ctx context.Context, enterpriseCode, from, to string) (*MerchantDashboard, error) {
	now := s.now().UTC()
	f := ReconciliationFilter{EnterpriseCode: enterpriseCode, Limit: 1000}
	d := &MerchantDashboard{EnterpriseCode: enterpriseCode, GeneratedAt: now.Truncate(time.Second)}
	toDay := calendar.DateOf(now)
	if to != "" {
		t, err := calendar.ParseDate(to)
		if err != nil {
			return nil, FieldErrorf("to", "to: %v", err)
		}
		toDay = t
	}
	f.StartedBefore = toDay.AddDays(1).Start().UTC()
	d.To = toDay.String()
	if from != "" {
		fd, err := calendar.ParseDate(from)
		if err != nil {
			return nil, FieldErrorf("from", "from: %v", err)
		}
		if toDay.Before(fd) {
			return nil, FieldErrorf("to", "to is before from")
		}
		f.StartedFrom = fd.Start().UTC()
		d.From = fd.String()
	}
	var all []Reconciliation
	err := s.store.View(ctx, func(tx Tx) error {
		if _, err := tx.Enterprise(ctx, enterpriseCode); err != nil {
			return err
		}
		for {
			page, err := tx.Reconciliations(ctx, f)
			if err != nil {
				return err
			}
			all = append(all, page...)
			if len(page) < f.Limit {
				return nil
			}
			last := page[len(page)-1]
			f.AfterStartedAt, f.AfterCaseID = last.StartedAt, last.CaseID
		}
	})
	if err != nil {
		return nil, err
	}
	type acc struct {
		g       DashboardGroup
		resolve []float64
	}
	byCat, byMonth := map[string]*acc{}, map[string]*acc{}
	outcomes := map[string]int{}
	var first, resolve []float64
	hist := make([]int, len(resolveBuckets))
	for _, r := range all {
		d.Total++
		month := r.StartedAt.In(calendar.Zone()).Format("2006-01")
		groups := []*acc{getAcc(byCat, r.Category), getAcc(byMonth, month)}
		groups[0].g.Key, groups[1].g.Key = r.Category, month
		for _, a := range groups {
			a.g.Total++
		}
		if r.FirstResponseAt != nil {
			first = append(first, r.FirstResponseAt.Sub(r.StartedAt).Hours())
		}
		if r.Open() {
			d.Open++
			outcomes["open"]++
			if !now.Before(r.DueAt) {
				d.Overdue++
			}
			for _, a := range groups {
				a.g.Open++
			}
			continue
		}
		took := r.EndedAt.Sub(r.StartedAt)
		resolve = append(resolve, took.Hours())
		for i, b := range resolveBuckets {
			if took <= b.max {
				hist[i]++
				break
			}
		}
		if r.Status == RecSettled {
			d.Settled++
			outcomes[RecSettled]++
		} else {
			d.Escalated++
			outcomes[r.Result]++
		}
		for _, a := range groups {
			if r.Status == RecSettled {
				a.g.Settled++
			} else {
				a.g.Escalated++
			}
			a.resolve = append(a.resolve, took.Hours())
		}
	}
	d.ReconciliationRate = ratio(d.Settled, d.Settled+d.Escalated)
	d.DeadlinePassedRate = ratio(outcomes[ReasonDeadlinePassed], d.Settled+d.Escalated)
	finish := func(m map[string]*acc) []DashboardGroup {
		out := make([]DashboardGroup, 0, len(m))
		for _, a := range m {
			a.g.ReconciliationRate = ratio(a.g.Settled, a.g.Settled+a.g.Escalated)
			a.g.MedianResolveHours = quantile(a.resolve, 0.5)
			out = append(out, a.g)
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
		return out
	}
	d.ByCategory, d.ByMonth = finish(byCat), finish(byMonth)
	d.ByOutcome = []DashboardCount{}
	for _, k := range []string{RecSettled, "open", ReasonDeclined, ReasonRefused, ReasonDeadlinePassed, ReasonEnterpriseSuspended} {
		d.ByOutcome = append(d.ByOutcome, DashboardCount{Key: k, Count: outcomes[k]})
	}
	d.FirstResponse, d.Resolve = summarize(first), summarize(resolve)
	d.ResolveHistogram = make([]DashboardCount, len(resolveBuckets))
	for i, b := range resolveBuckets {
		d.ResolveHistogram[i] = DashboardCount{Key: b.key, Count: hist[i]}
	}
	return d, nil
}

func getAcc[T any](m map[string]*T, key string) *T {
	a, ok := m[key]
	if !ok {
		a = new(T)
		m[key] = a
	}
	return a
}

// ratio returns n/d rounded to 4 places, or nil when d is 0.
func ratio(n, d int) *float64 {
	if d == 0 {
		return nil
	}
	v := math.Round(float64(n)/float64(d)*10000) / 10000
	return &v
}

// quantile returns the q-quantile of xs (nearest rank), rounded to one
// decimal, or nil for none.
func quantile(xs []float64, q float64) *float64 {
	if len(xs) == 0 {
		return nil
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	i = max(0, min(i, len(s)-1))
	v := math.Round(s[i]*10) / 10
	return &v
}

func summarize(xs []float64) Durations {
	d := Durations{Count: len(xs)}
	if len(xs) == 0 {
		return d
	}
	sum := 0.0
	for _, x := range xs {
		sum += x
	}
	mean := math.Round(sum/float64(len(xs))*10) / 10
	d.MeanHours = &mean
	d.MedianHours = quantile(xs, 0.5)
	d.P90Hours = quantile(xs, 0.9)
	return d
}

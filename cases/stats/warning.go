package stats

import (
	"math"
	"sort"
	"time"
)

// Warning flags a merchant or a category whose complaints in the last
// week rose well above its own weekly baseline. Warnings are for the
// institution's staff: they name the merchant, and are never exported
// with the statistics.
type Warning struct {
	Kind string `json:"kind"` // merchant, category
	// Key is the merchant's credit code or the category; Name the
	// merchant's name.
	Key  string `json:"key"`
	Name string `json:"name,omitempty"`
	// Count is the complaints in the week ending at WeekEnd; Baseline the
	// mean per week over the weeks before.
	WeekStart time.Time `json:"weekStart"`
	WeekEnd   time.Time `json:"weekEnd"`
	Count     int       `json:"count"`
	Baseline  float64   `json:"baseline"`
	// Ratio is Count / Baseline (Count when the baseline is 0).
	Ratio float64 `json:"ratio"`
}

// WarningParams tunes the early warning.
type WarningParams struct {
	// BaselineWeeks is how many weeks before the last one make the
	// baseline; 0 means 8.
	BaselineWeeks int
	// MinCount is the fewest complaints in the week that may raise a
	// warning; 0 means 5.
	MinCount int
	// Factor is how many times the baseline the week must reach; 0 means
	// 2.
	Factor float64
}

// Warnings flags, at now, the merchants and categories whose complaints
// in the last 7 days reached MinCount, Factor times their baseline, and
// exceeded it by more than three standard deviations of a Poisson count
// at the baseline rate.
func Warnings(d *Dataset, now time.Time, p WarningParams) []Warning {
	if p.BaselineWeeks <= 0 {
		p.BaselineWeeks = 8
	}
	if p.MinCount <= 0 {
		p.MinCount = 5
	}
	if p.Factor <= 0 {
		p.Factor = 2
	}
	week := 7 * 24 * time.Hour
	start := now.Add(-week)
	baseStart := start.Add(-time.Duration(p.BaselineWeeks) * week)
	type tally struct {
		name          string
		current, past int
	}
	merchants, categories := map[string]*tally{}, map[string]*tally{}
	add := func(m map[string]*tally, key, name string, current bool) {
		t, ok := m[key]
		if !ok {
			t = &tally{}
			m[key] = t
		}
		if name != "" {
			t.name = name
		}
		if current {
			t.current++
		} else {
			t.past++
		}
	}
	for i := range d.Facts {
		f := &d.Facts[i]
		if f.openedAt.Before(baseStart) || !f.openedAt.Before(now) {
			continue
		}
		current := !f.openedAt.Before(start)
		if f.respondentCode != "" {
			add(merchants, f.respondentCode, f.respondentName, current)
		}
		add(categories, f.Category, "", current)
	}
	var out []Warning
	for _, g := range []struct {
		kind string
		m    map[string]*tally
	}{{"merchant", merchants}, {"category", categories}} {
		for key, t := range g.m {
			base := float64(t.past) / float64(p.BaselineWeeks)
			c := float64(t.current)
			if t.current < p.MinCount || c < p.Factor*base || c-base <= 3*math.Sqrt(math.Max(base, 1)) {
				continue
			}
			ratio := c
			if base > 0 {
				ratio = c / base
			}
			out = append(out, Warning{Kind: g.kind, Key: key, Name: t.name, WeekStart: start.UTC(), WeekEnd: now.UTC(),
				Count: t.current, Baseline: math.Round(base*100) / 100, Ratio: math.Round(ratio*100) / 100})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Ratio != out[j].Ratio {
			return out[i].Ratio > out[j].Ratio
		}
		return out[i].Kind+out[i].Key < out[j].Kind+out[j].Key
	})
	if out == nil {
		out = []Warning{}
	}
	return out
}

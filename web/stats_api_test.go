package web

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/concord-odr/concord/cases"
	"github.com/concord-odr/concord/cases/stats"
)

// statsReport is the part of GET /api/v1/stats the tests read.
type statsReport struct {
	Category string `json:"category"`
	Channel  string `json:"channel"`
	Tables   []struct {
		Name string
		Rows []struct {
			Keys       map[string]string
			Values     map[string]*float64
			Suppressed []string
		}
	}
}

// cell returns a one-way table's count for key, and whether it is
// suppressed; it fails the test when there is no such row.
func (r statsReport) cell(t *testing.T, table, key string) (*float64, bool) {
	t.Helper()
	for _, tb := range r.Tables {
		if tb.Name != table {
			continue
		}
		for _, row := range tb.Rows {
			for _, k := range row.Keys {
				if k == key {
					return row.Values["cases"], slices.Contains(row.Suppressed, "cases")
				}
			}
		}
	}
	t.Fatalf("%s has no row %q", table, key)
	return nil, false
}

// keys lists a one-way table's keys.
func (r statsReport) keys(table, dim string) []string {
	var out []string
	for _, tb := range r.Tables {
		if tb.Name == table {
			for _, row := range tb.Rows {
				out = append(out, row.Keys[dim])
			}
		}
	}
	return out
}

// TestStatisticsFilters filters the statistics by category and by
// channel over HTTP: a filtered report counts only its cases and names
// its filter; small cells stay suppressed, and so does a cell that the
// unfiltered report would give away by subtraction; unknown values are
// refused; the filtered CSV has no personal data.
func TestStatisticsFilters(t *testing.T) {
	e := newODREnv(t)
	var secrets []string
	open := func(i int, category, channel string) {
		name := fmt.Sprintf("张三%02d", i)
		phone := fmt.Sprintf("+86 139 6666 %04d", 1000+i)
		body := caseBody(e.distA, false)
		body["category"] = category
		body["applicant"] = map[string]any{"name": name, "kind": "person", "phone": phone}
		secrets = append(secrets, name, phone)
		if channel == cases.ChannelOnline {
			e.asOK("", "POST", "/api/v1/intake", body, 201, nil)
			return
		}
		body["channel"] = channel
		e.asOK(testAdminToken, "POST", "/api/v1/cases", body, 201, nil)
	}
	// 12 e-commerce cases online; 7 product-quality and 2 e-commerce
	// ones at the window.
	for i := range 12 {
		open(i, "e-commerce", cases.ChannelOnline)
	}
	for i := range 7 {
		open(100+i, "product-quality", cases.ChannelWindow)
	}
	for i := range 2 {
		open(200+i, "e-commerce", cases.ChannelWindow)
	}
	get := func(query string) statsReport {
		t.Helper()
		var r statsReport
		e.asOK(testAdminToken, "GET", "/api/v1/stats"+query, nil, 200, &r)
		return r
	}

	all := get("")
	if v, _ := all.cell(t, "by_channel", cases.ChannelWindow); v == nil || *v != 9 {
		t.Fatalf("unfiltered, the window counts %v, want 9", v)
	}

	// By channel: the window's 9 cases; its 2 e-commerce ones are
	// suppressed, and so product quality's 7, or the total gives them.
	win := get("?channel=window")
	if win.Channel != cases.ChannelWindow || win.Category != "" {
		t.Fatalf("the window report says its filters are %q %q", win.Category, win.Channel)
	}
	if v, _ := win.cell(t, "by_month", stats.Total); v == nil || *v != 9 {
		t.Fatalf("window: total %v, want 9", v)
	}
	if got := win.keys("by_channel", "channel"); !slices.Equal(got, []string{cases.ChannelWindow, stats.Total}) {
		t.Fatalf("window: by channel has %v", got)
	}
	for _, cat := range []string{"e-commerce", "product-quality"} {
		if v, hidden := win.cell(t, "by_category", cat); v != nil || !hidden {
			t.Errorf("window: %s shows %v", cat, v)
		}
	}

	// By category: product quality's 7 cases, all at the window. The
	// unfiltered report shows the window's 9: showing 7 here would give
	// away the window's 2 e-commerce cases, so the window cell is
	// suppressed, and with it the total, which equals it.
	pq := get("?category=product-quality")
	if pq.Category != "product-quality" {
		t.Fatalf("the product-quality report says its category is %q", pq.Category)
	}
	if got := pq.keys("by_category", "category"); !slices.Equal(got, []string{"product-quality", stats.Total}) {
		t.Fatalf("product quality: by category has %v", got)
	}
	for _, key := range []string{cases.ChannelWindow, stats.Total} {
		if v, hidden := pq.cell(t, "by_channel", key); v != nil || !hidden {
			t.Errorf("product quality: by channel %s shows %v", key, v)
		}
	}

	// Both filters: e-commerce online is 12 cases, but the e-commerce
	// report shows 14: the total is suppressed, or it would give away
	// the 2 e-commerce cases at the window.
	ecOnline := get("?category=e-commerce&channel=online")
	if ecOnline.Category != "e-commerce" || ecOnline.Channel != cases.ChannelOnline {
		t.Fatalf("the e-commerce online report says its filters are %q %q", ecOnline.Category, ecOnline.Channel)
	}
	if v, _ := get("?category=e-commerce").cell(t, "by_month", stats.Total); v == nil || *v != 14 {
		t.Fatalf("e-commerce: total %v, want 14", v)
	}
	if v, hidden := ecOnline.cell(t, "by_month", stats.Total); v != nil || !hidden {
		t.Fatalf("e-commerce online: total %v shown", v)
	}

	for _, tc := range []struct{ query, field string }{
		{"?category=kettles", "category"},
		{"?channel=fax", "channel"},
		{"?category=" + "e-commerce&channel=" + "Window", "channel"},
	} {
		resp, b := e.as(testAdminToken, "GET", "/api/v1/stats"+tc.query, nil)
		wantProblem(t, resp, b, 422, cases.EINVALID, tc.field)
	}

	// The filtered CSV export: the usual header, no personal data.
	resp, body := e.as(testAdminToken, "GET", "/api/v1/stats?format=csv&channel=window", nil)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") {
		t.Fatalf("csv: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	lines, err := csv.NewReader(strings.NewReader(string(body))).ReadAll()
	if err != nil || len(lines) < 2 || !slices.Equal(lines[0], stats.CSVHeader) {
		t.Fatalf("csv: %v, header %v", err, lines[:min(1, len(lines))])
	}
	_, jsonBody := e.as(testAdminToken, "GET", "/api/v1/stats?channel=window", nil)
	if err := json.Unmarshal(jsonBody, &statsReport{}); err != nil {
		t.Fatalf("json: %v", err)
	}
	for _, out := range []string{string(body), string(jsonBody)} {
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Fatalf("the filtered export holds %q", s)
			}
		}
	}
}

// TestStatisticsRangeAndScopeDifferencing asks for reports that count
// a subset of another's cases, by month range and by institution, over
// HTTP: the narrower report hides a cell that differs from the wider
// report's by a small count, so subtracting them gives nothing away.
func TestStatisticsRangeAndScopeDifferencing(t *testing.T) {
	e := newODREnv(t)
	open := func(inst string, n int) {
		for range n {
			body := caseBody(inst, false)
			body["channel"] = cases.ChannelWindow
			e.asOK(testAdminToken, "POST", "/api/v1/cases", body, 201, nil)
		}
	}
	// March: 12 cases at district A and 3 at B. April: 2 more at A.
	open(e.distA, 12)
	open(e.distB, 3)
	e.clock.Add(31 * 24 * time.Hour)
	open(e.distA, 2)
	e.relogin("adminA") // a month on, A's token has expired
	get := func(token, query string) statsReport {
		t.Helper()
		var r statsReport
		e.asOK(token, "GET", "/api/v1/stats"+query, nil, 200, &r)
		return r
	}

	// The widest report shows everything: 17 cases; so does the same
	// range asked for with an explicit start.
	for _, q := range []string{"", "?from=2026-03", "?from=2026-03&to=2026-04"} {
		if v, _ := get(testAdminToken, q).cell(t, "by_month", stats.Total); v == nil || *v != 17 {
			t.Fatalf("all %q: total %v, want 17", q, v)
		}
	}
	// March alone would show 15, and March..April's 17 minus it April's
	// 2: March's total is hidden, and so is A's March count (12 against
	// 14).
	march := get(testAdminToken, "?from=2026-03&to=2026-03")
	if v, hidden := march.cell(t, "by_month", stats.Total); v != nil || !hidden {
		t.Fatalf("March: total %v shown, 2 short of March..April's", v)
	}
	if v, hidden := march.cell(t, "by_institution", "District A (0310)"); v != nil || !hidden {
		t.Fatalf("March: district A %v shown, 2 short of March..April's", v)
	}
	// A's subtree (14) against all institutions (17): B's 3 cases would
	// follow, so A's total is hidden, whether institution admin A or the
	// platform admin asks.
	for _, tc := range []struct{ token, query string }{
		{e.tokens["adminA"], ""},
		{testAdminToken, "?institutionId=" + e.distA},
	} {
		if v, hidden := get(tc.token, tc.query).cell(t, "by_month", stats.Total); v != nil || !hidden {
			t.Fatalf("A's subtree %q: total %v shown, 3 short of all institutions'", tc.query, v)
		}
	}
}

package stats

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math/big"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/concord-odr/concord/cases"
	"github.com/concord-odr/concord/cases/sqlite"
)

var cst = time.FixedZone("CST", 8*3600)

// canonical names a published row by its keys, totals left out, the way
// cellID names cells: the same count published in two tables has one
// name.
func canonical(t Table, row Row) string {
	var pairs []string
	for _, d := range t.Dimensions {
		if k := row.Keys[d]; k != Total {
			pairs = append(pairs, d, k)
		}
	}
	return cellID(pairs...)
}

// published gathers the counts of a report's count tables: visible
// values and the names of the hidden ones.
func published(t *testing.T, r *Report) (visible map[string]int, hidden map[string]bool) {
	t.Helper()
	visible, hidden = map[string]int{}, map[string]bool{}
	for _, tb := range r.Tables {
		if !slices.Equal(tb.Measures, []string{measureCases}) {
			continue
		}
		for _, row := range tb.Rows {
			id := canonical(tb, row)
			v := row.Values[measureCases]
			if v == nil {
				if !slices.Contains(row.Suppressed, measureCases) {
					t.Fatalf("%s %v: null but not suppressed", tb.Name, row.Keys)
				}
				if _, ok := visible[id]; ok {
					t.Fatalf("%s: cell %q shown in one table and hidden in another", tb.Name, id)
				}
				hidden[id] = true
				continue
			}
			if hidden[id] {
				t.Fatalf("%s: cell %q shown in one table and hidden in another", tb.Name, id)
			}
			if *v > 0 && *v < MinCell {
				t.Fatalf("%s %v: a count of %v is shown", tb.Name, row.Keys, *v)
			}
			visible[id] = int(*v)
		}
	}
	return visible, hidden
}

// equation is sum(coef * cell) = 0 over published cells.
type equation map[string]int64

// equations are the linear relations an attacker knows between the
// published counts: each table's totals, and the same cases counted
// under two dimensions. They are built from the published report alone
// (and the institutions' levels and districts, which are public).
func equations(r *Report, inst map[string][2]string) []equation {
	var eqs []equation
	keys := map[string][]string{} // dimension -> keys
	for _, tb := range r.Tables {
		if !slices.Equal(tb.Measures, []string{measureCases}) {
			continue
		}
		for _, row := range tb.Rows {
			for _, d := range tb.Dimensions {
				if k := row.Keys[d]; k != Total && !slices.Contains(keys[d], k) {
					keys[d] = append(keys[d], k)
				}
			}
		}
		switch len(tb.Dimensions) {
		case 1:
			d := tb.Dimensions[0]
			e := equation{"": -1}
			for _, row := range tb.Rows {
				if k := row.Keys[d]; k != Total {
					e[cellID(d, k)]++
				}
			}
			eqs = append(eqs, e)
		case 2:
			d1, d2 := tb.Dimensions[0], tb.Dimensions[1]
			byA, byC := map[string]equation{}, map[string]equation{}
			for _, row := range tb.Rows {
				a, c := row.Keys[d1], row.Keys[d2]
				if a == Total || c == Total {
					continue
				}
				if byA[a] == nil {
					byA[a] = equation{cellID(d1, a): -1}
				}
				if byC[c] == nil {
					byC[c] = equation{cellID(d2, c): -1}
				}
				byA[a][cellID(d1, a, d2, c)]++
				byC[c][cellID(d1, a, d2, c)]++
			}
			for _, e := range byA {
				eqs = append(eqs, e)
			}
			for _, e := range byC {
				eqs = append(eqs, e)
			}
		}
	}
	// Institutions make up their levels and districts.
	byLevel, byDistrict := map[string]equation{}, map[string]equation{}
	for _, name := range keys["institution"] {
		lv, dt := inst[name][0], inst[name][1]
		if byLevel[lv] == nil {
			byLevel[lv] = equation{cellID("level", lv): -1}
		}
		if byDistrict[dt] == nil {
			byDistrict[dt] = equation{cellID("district", dt): -1}
		}
		byLevel[lv][cellID("institution", name)]++
		byDistrict[dt][cellID("institution", name)]++
	}
	for _, e := range byLevel {
		eqs = append(eqs, e)
	}
	for _, e := range byDistrict {
		eqs = append(eqs, e)
	}
	// The same cases under two names, overall and per category.
	closed := []string{"reconciled", "settled", "partially_settled", "not_settled", "withdrawn"}
	buckets := []string{"<=7d", "8-15d", "16-30d", "31-60d", ">60d"}
	same := func(ctx []string, x string, xs []string, y string, ys []string) {
		e := equation{}
		for _, k := range xs {
			e[cellID(append(slices.Clone(ctx), x, k)...)]++
		}
		for _, k := range ys {
			e[cellID(append(slices.Clone(ctx), y, k)...)]--
		}
		eqs = append(eqs, e)
	}
	same(nil, "outcome", closed, "close_time", buckets)
	same(nil, "outcome", []string{"open", "rejected"}, "close_time", []string{"not_closed"})
	for _, ctx := range append([][]string{nil}, func() (cs [][]string) {
		for _, c := range keys["category"] {
			cs = append(cs, []string{"category", c})
		}
		return cs
	}()...) {
		same(ctx, "outcome", []string{"reconciled"}, "reconciliation", []string{"reconciled"})
		same(ctx, "outcome", []string{"settled", "partially_settled"}, "confirmation", []string{"not_requested", "pending", "confirmed", "refused"})
		same(ctx, "outcome", []string{"reconciled", "not_settled", "withdrawn", "rejected", "open"}, "confirmation", []string{"not_settled"})
	}
	return eqs
}

// derivable returns the hidden cells that the equations and the visible
// counts determine exactly (by Gaussian elimination over the rationals).
func derivable(eqs []equation, visible map[string]int, hidden map[string]bool) []string {
	var vars []string
	for id := range hidden {
		vars = append(vars, id)
	}
	sort.Strings(vars)
	col := map[string]int{}
	for i, v := range vars {
		col[v] = i
	}
	var rows [][]*big.Rat
	for _, e := range eqs {
		row := make([]*big.Rat, len(vars)+1)
		for i := range row {
			row[i] = new(big.Rat)
		}
		any := false
		for id, c := range e {
			if j, ok := col[id]; ok {
				row[j].Add(row[j], big.NewRat(c, 1))
				any = true
			} else {
				// A visible (or absent: zero) cell moves to the constant.
				row[len(vars)].Sub(row[len(vars)], big.NewRat(c*int64(visible[id]), 1))
			}
		}
		if any {
			rows = append(rows, row)
		}
	}
	// Reduced row echelon form.
	r := 0
	for c := 0; c < len(vars) && r < len(rows); c++ {
		p := -1
		for i := r; i < len(rows); i++ {
			if rows[i][c].Sign() != 0 {
				p = i
				break
			}
		}
		if p < 0 {
			continue
		}
		rows[r], rows[p] = rows[p], rows[r]
		inv := new(big.Rat).Inv(rows[r][c])
		for j := range rows[r] {
			rows[r][j].Mul(rows[r][j], inv)
		}
		for i := range rows {
			if i != r && rows[i][c].Sign() != 0 {
				f := new(big.Rat).Set(rows[i][c])
				for j := range rows[i] {
					rows[i][j].Sub(rows[i][j], new(big.Rat).Mul(f, rows[r][j]))
				}
			}
		}
		r++
	}
	var out []string
	for _, row := range rows {
		nz := -1
		for j := range vars {
			if row[j].Sign() != 0 {
				if nz >= 0 {
					nz = -2
					break
				}
				nz = j
			}
		}
		if nz >= 0 {
			out = append(out, fmt.Sprintf("%s = %s", vars[nz], row[len(vars)].RatString()))
		}
	}
	return out
}

// randomDataset makes n facts spread unevenly, so that many cells are
// small.
func randomDataset(rng *rand.Rand, n int) (*Dataset, map[string][2]string) {
	insts := []cases.Institution{
		{ID: "p", Code: "31", Name: "Province", Level: cases.LevelProvince},
		{ID: "d1", Code: "0310", Name: "District One", Level: cases.LevelDistrict, ParentID: "p"},
		{ID: "d2", Code: "0320", Name: "District Two", Level: cases.LevelDistrict, ParentID: "p"},
		{ID: "c1", Code: "031001", Name: "Community", Level: cases.LevelCommunity, ParentID: "d1"},
		{ID: "c2", Code: "032001", Name: "Community", Level: cases.LevelCommunity, ParentID: "d2"},
	}
	d := &Dataset{Institutions: insts}
	cats := cases.Categories()
	outs := Outcomes()
	for range n {
		f := Fact{
			Month:         fmt.Sprintf("2026-%02d", 1+rng.IntN(3)),
			InstitutionID: insts[rng.IntN(len(insts))].ID,
			Category:      cats[min(rng.IntN(len(cats)), rng.IntN(len(cats)))],
			Channel:       channels[rng.IntN(3)],
			Outcome:       outs[rng.IntN(len(outs))],
		}
		if f.Outcome != OutcomeOpen && f.Outcome != OutcomeRejected {
			v := rng.Float64() * 90
			f.DaysToClose = &v
		}
		if rng.IntN(3) == 0 {
			v := rng.Float64() * 5
			f.DaysToAccept = &v
		}
		f.Settled = f.Outcome == "settled" || f.Outcome == "partially_settled"
		if f.Settled && rng.IntN(2) == 0 {
			f.Confirmation = []string{"pending", "confirmed", "refused"}[rng.IntN(3)]
		}
		switch {
		case f.Outcome == "reconciled":
			f.Reconciliation = "reconciled"
		case rng.IntN(4) == 0 && f.Outcome != "open":
			f.Reconciliation = "escalated"
		case rng.IntN(6) == 0 && f.Outcome == "open":
			f.Reconciliation = "open"
		}
		d.Facts = append(d.Facts, f)
	}
	names := map[string][2]string{
		"Province (31)":       {cases.LevelProvince, "(above district level)"},
		"District One (0310)": {cases.LevelDistrict, "District One (0310)"},
		"District Two (0320)": {cases.LevelDistrict, "District Two (0320)"},
		"Community (031001)":  {cases.LevelCommunity, "District One (0310)"},
		"Community (032001)":  {cases.LevelCommunity, "District Two (0320)"},
	}
	return d, names
}

// TestSuppression checks, on random datasets, that no count below
// MinCell is shown and that no hidden count can be derived from the
// published ones.
func TestSuppression(t *testing.T) {
	for seed := range uint64(40) {
		rng := rand.New(rand.NewPCG(seed, 7))
		n := []int{3, 12, 40, 150, 600}[seed%5]
		d, inst := randomDataset(rng, n)
		r := Compute(d, time.Now())
		visible, hidden := published(t, r)
		if got := derivable(equations(r, inst), visible, hidden); len(got) > 0 {
			t.Fatalf("seed %d (%d cases): hidden counts derivable: %v", seed, n, got)
		}
		if n >= 150 && len(hidden) == 0 {
			t.Fatalf("seed %d: nothing suppressed in a skewed dataset of %d", seed, n)
		}
		if n >= 150 && visible[""] != n {
			t.Fatalf("seed %d: total %d, want %d", seed, visible[""], n)
		}
		// Rates and times are hidden where their counts are.
		for _, tb := range r.Tables {
			for _, row := range tb.Rows {
				for _, m := range tb.Measures {
					if v := row.Values[m]; v != nil && slices.Contains(row.Suppressed, m) {
						t.Fatalf("%s %v: %s both shown and suppressed", tb.Name, row.Keys, m)
					}
				}
			}
		}
	}
}

// TestSecondarySuppression checks the textbook case: one small cell in
// a line with a total hides a second cell.
func TestSecondarySuppression(t *testing.T) {
	d := &Dataset{Institutions: []cases.Institution{{ID: "a", Code: "1", Name: "A", Level: cases.LevelDistrict}}}
	add := func(cat, out string, n int) {
		for range n {
			d.Facts = append(d.Facts, Fact{Month: "2026-03", InstitutionID: "a", Category: cat, Channel: "online", Outcome: out})
		}
	}
	add("e-commerce", OutcomeOpen, 20)
	add("online-payment", OutcomeOpen, 9)
	add("product-quality", OutcomeOpen, 3)
	r := Compute(d, time.Now())
	var cat Table
	for _, tb := range r.Tables {
		if tb.Name == "by_category" {
			cat = tb
		}
	}
	got := map[string]*float64{}
	for _, row := range cat.Rows {
		got[row.Keys["category"]] = row.Values[measureCases]
	}
	if got["product-quality"] != nil || got["online-payment"] != nil || got["e-commerce"] == nil || *got[Total] != 32 {
		t.Fatalf("by category: %v", cat.Rows)
	}
}

// TestNoPersonalData seeds cases full of names, phone numbers, ID and
// credit-code numbers through the case service, exports everything as
// JSON and CSV, and checks that none of it appears, and that the export
// suppresses small cells.
func TestNoPersonalData(t *testing.T) {
	ctx := t.Context()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, cst)
	clock := func() time.Time { now = now.Add(time.Minute); return now }
	svc := cases.NewService(cases.ServiceParams{Store: store, Now: clock})
	prov := &cases.Institution{Code: "31", Name: "Shanghai Centre", Level: cases.LevelProvince}
	if err := svc.PutInstitution(ctx, prov); err != nil {
		t.Fatal(err)
	}
	dist := &cases.Institution{Code: "0310", Name: "Xuhui Committee", Level: cases.LevelDistrict, ParentID: prov.ID}
	if err := svc.PutInstitution(ctx, dist); err != nil {
		t.Fatal(err)
	}
	var secrets []string
	for i := range 23 {
		name := fmt.Sprintf("张伟%02d", i)
		phone := fmt.Sprintf("+86 139 1234 %04d", 5000+i)
		idNo := fmt.Sprintf("11010119900307%04d", 1000+i)
		merchant := fmt.Sprintf("黑心商店%02d有限公司", i)
		credit := fmt.Sprintf("91310000MA1FL%03dXC", i)
		ref := fmt.Sprintf("12315-2026-%06d", 777000+i)
		claims := fmt.Sprintf("退款 %d 元；身份证 %s；住址 上海市徐汇区漕溪北路%d号", 100+i, idNo, 10+i)
		secrets = append(secrets, name, phone, idNo, merchant, credit, ref, claims, "漕溪北路")
		cat := "e-commerce"
		switch {
		case i >= 19:
			cat = "product-quality"
		case i >= 14:
			cat = "online-payment"
		}
		c, _, err := svc.OpenCase(ctx, cases.NewCase{
			InstitutionID: dist.ID, Category: cat, Channel: cases.Channel12315, ExternalRef: ref,
			Applicant:  cases.Party{Name: name, Kind: "person", Phone: phone},
			Respondent: cases.Party{Name: merchant, Kind: "organisation", CreditCode: credit},
			Claims:     claims, AmountCents: int64(10000 + i), IncidentDate: "2026-02-14", Actor: "import",
		})
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			for _, to := range []cases.State{cases.StateDispatched, cases.StateRespondentContacted, cases.StateAccepted, cases.StateMediating} {
				if _, err := svc.Transition(ctx, c.ID, to, "staff", nil); err != nil {
					t.Fatal(err)
				}
			}
			terms := fmt.Sprintf("%s 向 %s 退款 %d 元", merchant, name, 100+i)
			secrets = append(secrets, terms)
			if _, err := svc.Apply(ctx, c.ID, cases.TransitionRequest{To: cases.StateClosed, Actor: "staff",
				Outcome: &cases.Outcome{Result: cases.ResultSettled, Terms: terms}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	d, err := Collect(ctx, store, Scope{})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Facts) != 23 {
		t.Fatalf("collected %d facts", len(d.Facts))
	}
	r := Compute(d, time.Date(2026, 4, 1, 9, 0, 0, 0, cst))
	j, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var c bytes.Buffer
	if err := r.WriteCSV(&c); err != nil {
		t.Fatal(err)
	}
	for _, out := range [][]byte{j, c.Bytes()} {
		for _, s := range secrets {
			if bytes.Contains(out, []byte(s)) {
				t.Fatalf("export contains %q", s)
			}
		}
		// Nor the day of the incident or of the opening.
		for _, s := range []string{"2026-02-14", "2026-03-02"} {
			if bytes.Contains(out, []byte(s)) {
				t.Fatalf("export contains the date %s", s)
			}
		}
	}
	visible, hidden := published(t, r)
	if visible[""] != 23 || visible[cellID("category", "e-commerce")] != 14 {
		t.Fatalf("totals: %v", visible)
	}
	// product-quality (4) is hidden, and so is online-payment (5), the
	// smallest other cell of its line, or the total would give it away.
	if !hidden[cellID("category", "product-quality")] || !hidden[cellID("category", "online-payment")] {
		t.Fatalf("category cells: visible %v hidden %v", visible, hidden)
	}
	inst := map[string][2]string{"Xuhui Committee (0310)": {cases.LevelDistrict, "Xuhui Committee (0310)"}}
	if got := derivable(equations(r, inst), visible, hidden); len(got) > 0 {
		t.Fatalf("derivable: %v", got)
	}
	// The CSV is well formed: a header and a value or a status per line.
	lines, err := csv.NewReader(&c).ReadAll()
	if err != nil || len(lines) < 50 || !slices.Equal(lines[0], CSVHeader) {
		t.Fatalf("CSV: %d lines, %v", len(lines), err)
	}
	for _, l := range lines[1:] {
		if (l[6] == "") == (l[7] == "") {
			t.Fatalf("CSV line %v: a value or a status, not both nor neither", l)
		}
		if l[7] == "" && strings.Contains(l[5], "cases") && l[6] != "0" && len(l[6]) == 1 && l[6] < "5" {
			t.Fatalf("CSV shows a small count: %v", l)
		}
	}
}

func TestCollectScope(t *testing.T) {
	ctx := t.Context()
	store, err := sqlite.Open(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		sc    Scope
		field string
	}{
		{Scope{From: "2026-13"}, "from"},
		{Scope{To: "March"}, "to"},
		{Scope{From: "2026-04", To: "2026-03"}, "to"},
	} {
		if _, err := Collect(ctx, store, tc.sc); cases.ErrorField(err) != tc.field {
			t.Errorf("Collect(%+v) = %v, want field %s", tc.sc, err, tc.field)
		}
	}
	d, err := Collect(ctx, store, Scope{From: "2026-01", To: "2026-03", InstitutionIDs: []string{}})
	if err != nil || len(d.Facts) != 0 {
		t.Fatalf("empty scope: %v, %v", d, err)
	}
	r := Compute(d, time.Now())
	for _, tb := range r.Tables {
		if len(tb.Rows) == 0 {
			t.Fatalf("table %s has no total row", tb.Name)
		}
	}
}

func TestWarnings(t *testing.T) {
	now := time.Date(2026, 3, 30, 12, 0, 0, 0, cst)
	var d Dataset
	add := func(code, name, cat string, daysAgo float64, n int) {
		for range n {
			d.Facts = append(d.Facts, Fact{Category: cat, respondentCode: code, respondentName: name,
				openedAt: now.Add(-time.Duration(daysAgo * 24 * float64(time.Hour)))})
		}
	}
	// A: 1 a week for 8 weeks, then 9 this week: flagged.
	for w := 1; w <= 8; w++ {
		add("A", "Shop A", "e-commerce", float64(7*w)+1, 1)
	}
	add("A", "Shop A", "e-commerce", 2, 9)
	// B: steady 6 a week: not flagged.
	for w := 0; w <= 8; w++ {
		add("B", "Shop B", "product-quality", float64(7*w)+1, 6)
	}
	// C: 4 this week from nothing: under the minimum.
	add("C", "Shop C", "other", 1, 4)
	got := Warnings(&d, now, WarningParams{})
	var keys []string
	for _, w := range got {
		keys = append(keys, w.Kind+":"+w.Key)
	}
	if !slices.Equal(keys, []string{"merchant:A", "category:e-commerce"}) && !slices.Equal(keys, []string{"category:e-commerce", "merchant:A"}) {
		t.Fatalf("warnings %v (%+v)", keys, got)
	}
	if got[0].Count != 9 || got[0].Baseline != 1 || got[0].Name != "Shop A" && got[0].Kind == "merchant" {
		t.Fatalf("warning %+v", got[0])
	}
}

// TestNarrow filters a dataset by category and channel: the report
// counts only the matching cases, says which filter it has, and hides a
// cell whose complement (the same cell of the unfiltered report minus
// it) is small, which the unfiltered report alone would not.
func TestNarrow(t *testing.T) {
	d := &Dataset{Institutions: []cases.Institution{{ID: "a", Code: "1", Name: "A", Level: cases.LevelDistrict}}}
	add := func(month, cat, channel string, n int) {
		for range n {
			d.Facts = append(d.Facts, Fact{Month: month, InstitutionID: "a", Category: cat, Channel: channel, Outcome: OutcomeOpen})
		}
	}
	add("2026-01", "e-commerce", cases.ChannelOnline, 12)
	add("2026-02", "e-commerce", cases.ChannelOnline, 8)
	add("2026-01", "product-quality", cases.ChannelWindow, 9)
	add("2026-02", "product-quality", cases.ChannelWindow, 2)
	byMonth := func(r *Report) map[string]*float64 {
		got := map[string]*float64{}
		for _, tb := range r.Tables {
			if tb.Name == "by_month" {
				for _, row := range tb.Rows {
					got[row.Keys["month"]] = row.Values[measureCases]
				}
			}
		}
		return got
	}
	// Unfiltered, February's 10 cases are shown: with the filtered 8,
	// they would give away product quality's 2.
	if all := byMonth(Compute(d, time.Now())); all["2026-02"] == nil || *all["2026-02"] != 10 {
		t.Fatalf("unfiltered by month: %v", all)
	}

	for _, bad := range []struct{ category, channel, field string }{
		{"kettles", "", "category"}, {"", "fax", "channel"},
	} {
		if err := d.Narrow(bad.category, bad.channel); cases.ErrorField(err) != bad.field {
			t.Errorf("Narrow(%q, %q) = %v, want field %s", bad.category, bad.channel, err, bad.field)
		}
	}
	if len(d.Facts) != 31 {
		t.Fatalf("a refused filter changed the dataset: %d facts", len(d.Facts))
	}

	narrow := *d
	if err := narrow.Narrow("e-commerce", ""); err != nil {
		t.Fatal(err)
	}
	r := Compute(&narrow, time.Now())
	if r.Category != "e-commerce" || r.Channel != "" {
		t.Fatalf("report filters %q %q", r.Category, r.Channel)
	}
	got := byMonth(r)
	// February (8, complement 2) is hidden, and so January, or the total
	// would give it away.
	if got["2026-02"] != nil || got["2026-01"] != nil || got[Total] == nil || *got[Total] != 20 {
		t.Fatalf("e-commerce by month: %v", got)
	}
	for _, tb := range r.Tables {
		if tb.Name != "by_category" {
			continue
		}
		for _, row := range tb.Rows {
			if k := row.Keys["category"]; k != "e-commerce" && k != Total {
				t.Fatalf("the e-commerce report counts %s", k)
			}
		}
	}

	// Both filters: the facts of the wider reports (the unfiltered one
	// and each filter alone) stay known to the suppression.
	both := *d
	if err := both.Narrow("product-quality", cases.ChannelWindow); err != nil {
		t.Fatal(err)
	}
	if len(both.Facts) != 11 || len(both.universe) != 31 {
		t.Fatalf("both filters: %d facts, universe %d", len(both.Facts), len(both.universe))
	}
	// Narrowing again to another category would mislabel the report.
	if err := both.Narrow("e-commerce", ""); cases.ErrorField(err) != "category" {
		t.Fatalf("narrowing a product-quality report to e-commerce: %v", err)
	}
}

// TestNarrowDifferencing checks, on random datasets, that no cell shown
// both in a filtered report and in the unfiltered one differs from it
// by a small count, and that a filtered report is itself safe.
func TestNarrowDifferencing(t *testing.T) {
	for seed := range uint64(12) {
		rng := rand.New(rand.NewPCG(seed, 11))
		n := []int{40, 150, 600}[seed%3]
		d, inst := randomDataset(rng, n)
		all, _ := published(t, Compute(d, time.Now()))
		for _, f := range [][2]string{{"e-commerce", ""}, {"", cases.ChannelWindow}, {"online-payment", cases.ChannelOnline}} {
			nd := *d
			if err := nd.Narrow(f[0], f[1]); err != nil {
				t.Fatal(err)
			}
			r := Compute(&nd, time.Now())
			visible, hidden := published(t, r)
			if got := derivable(equations(r, inst), visible, hidden); len(got) > 0 {
				t.Fatalf("seed %d, filter %v: hidden counts derivable: %v", seed, f, got)
			}
			for id, v := range visible {
				if u, ok := all[id]; ok && v > 0 && small(u-v) {
					t.Fatalf("seed %d, filter %v: cell %q is %d filtered and %d unfiltered", seed, f, id, v, u)
				}
			}
		}
	}
}

// report is one report anyone may ask for, for the differencing tests.
type report struct {
	ids               []string // the scope's institutions, nil for all
	from, to          string
	category, channel string
	visible           map[string]int
	hidden            map[string]bool
}

// holds reports whether r counts every case that s counts: a scope, a
// month range and filters each as wide or wider.
func (r *report) holds(s *report) bool {
	if r.ids != nil && (s.ids == nil || !containsAll(toSet(r.ids), toSet(s.ids))) {
		return false
	}
	if r.from != "" && (s.from == "" || s.from < r.from) || r.to != "" && (s.to == "" || s.to > r.to) {
		return false
	}
	return (r.category == "" || r.category == s.category) && (r.channel == "" || r.channel == s.channel)
}

// String names a report by its parameters, for failure messages.
func (r *report) String() string {
	return fmt.Sprintf("{scope %v, %q..%q, category %q, channel %q}", r.ids, r.from, r.to, r.category, r.channel)
}

func toSet(ids []string) map[string]bool {
	m := map[string]bool{}
	for _, id := range ids {
		m[id] = true
	}
	return m
}

// shown returns a cell's published count: a cell with no row counts no
// case, which everyone can see.
func (r *report) shown(id string) (int, bool) {
	if r.hidden[id] {
		return 0, false
	}
	return r.visible[id], true
}

// TestRangeAndScopeDifferencing checks, on random datasets, every pair
// of reports anyone can ask for where one counts a subset of the
// other's cases (institution subtrees and all institutions, every range
// of whole months and the open one, with and without filters): no cell
// shown in both differs by 1 to MinCell-1. It also checks that an
// institution's report minus its children's reports, where all are
// shown, never gives a count of 1 to MinCell-1, and that each report is
// safe alone.
func TestRangeAndScopeDifferencing(t *testing.T) {
	scopes := [][]string{nil, {"p", "d1", "d2", "c1", "c2"}, {"d1", "c1"}, {"c1"}, {"d2", "c2"}, {"c2"}}
	children := map[int][]int{1: {2, 4}, 2: {3}, 4: {5}} // by index in scopes
	months := []string{"2026-01", "2026-02", "2026-03"}
	ranges := [][2]string{{"", ""}, {"", "2026-02"}, {"2026-02", ""}}
	for i, a := range months {
		for _, b := range months[i:] {
			ranges = append(ranges, [2]string{a, b})
		}
	}
	filters := [][2]string{{"", ""}, {"e-commerce", ""}, {"e-commerce", cases.ChannelOnline}}
	hiddenByDifferencing := 0
	for seed := range uint64(3) {
		rng := rand.New(rand.NewPCG(seed, 13))
		n := []int{80, 200, 600}[seed]
		all, inst := randomDataset(rng, n)
		var reps []*report
		index := map[[3]int]*report{} // scope, range, filter
		for si, ids := range scopes {
			for ri, rg := range ranges {
				for fi, f := range filters {
					d, err := scoped(all.Facts, all.Institutions, Scope{InstitutionIDs: ids, From: rg[0], To: rg[1], Category: f[0], Channel: f[1]})
					if err != nil {
						t.Fatal(err)
					}
					r := Compute(d, time.Now())
					rep := &report{ids: ids, from: rg[0], to: rg[1], category: f[0], channel: f[1]}
					rep.visible, rep.hidden = published(t, r)
					// Safe alone: checked on a share of the reports, as
					// the exact check is slow.
					if (si+ri+fi)%7 == 0 {
						if got := derivable(equations(r, inst), rep.visible, rep.hidden); len(got) > 0 {
							t.Fatalf("seed %d, %v: hidden counts derivable: %v", seed, rep, got)
						}
					}
					// Until it has seen one, count what the differencing
					// rule hid beyond the report alone, so that the test
					// knows it exercised the rule.
					if hiddenByDifferencing == 0 {
						alone := &Dataset{Facts: d.Facts, Institutions: d.Institutions, From: d.From, To: d.To,
							Category: d.Category, Channel: d.Channel}
						solo, _ := published(t, Compute(alone, time.Now()))
						for id := range rep.hidden {
							if _, ok := solo[id]; ok {
								hiddenByDifferencing++
							}
						}
					}
					reps = append(reps, rep)
					index[[3]int{si, ri, fi}] = rep
				}
			}
		}
		for _, w := range reps {
			for _, r := range reps {
				if w == r || !w.holds(r) {
					continue
				}
				for _, cells := range []map[string]int{w.visible, r.visible} {
					for id := range cells {
						u, okW := w.shown(id)
						v, okR := r.shown(id)
						if okW && okR && small(u-v) {
							t.Fatalf("seed %d: cell %q is %d in %v and %d in %v", seed, id, u, w, v, r)
						}
					}
				}
			}
		}
		// An institution's report minus its children's.
		for parent, kids := range children {
			for ri := range ranges {
				for fi := range filters {
					p := index[[3]int{parent, ri, fi}]
				cells:
					for id, u := range p.visible {
						for _, k := range kids {
							v, ok := index[[3]int{k, ri, fi}].shown(id)
							if !ok {
								continue cells
							}
							u -= v
						}
						if small(u) {
							t.Fatalf("seed %d: cell %q of %v minus its children's is %d", seed, id, scopes[parent], u)
						}
					}
				}
			}
		}
	}
	if hiddenByDifferencing == 0 {
		t.Fatal("the differencing rule hid nothing: the test does not exercise it")
	}
}

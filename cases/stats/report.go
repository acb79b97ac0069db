package stats

import (
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/concord-odr/concord/cases"
)

// MinCell is the smallest count shown: a cell counting 1 to MinCell-1
// cases is suppressed.
const MinCell = 5

// Total is the key of a total row.
const Total = "(total)"

// Report is the statistics of a Dataset.
type Report struct {
	GeneratedAt time.Time `json:"generatedAt"`
	From        string    `json:"from,omitempty"`
	To          string    `json:"to,omitempty"`
	// Category and Channel are the filters of the report, if any.
	Category string `json:"category,omitempty"`
	Channel  string `json:"channel,omitempty"`
	// MinCell is the suppression threshold: counts below it are hidden.
	MinCell int     `json:"minCell"`
	Tables  []Table `json:"tables"`
}

// Table is one aggregate: counts by one or two dimensions with their
// totals, or measures (rates, times) by one dimension.
type Table struct {
	Name       string   `json:"name"`
	Title      string   `json:"title"`
	Dimensions []string `json:"dimensions"`
	Measures   []string `json:"measures"`
	Rows       []Row    `json:"rows"`
}

// Row is one line of a table. A suppressed measure has a null value and
// is listed in Suppressed; a measure with nothing to measure (a rate of
// no case) is null and not listed.
type Row struct {
	Keys       map[string]string   `json:"keys"`
	Values     map[string]*float64 `json:"values"`
	Suppressed []string            `json:"suppressed,omitempty"`
}

// Table and measure names.
const (
	measureCases = "cases"
)

// dimension is one way to classify facts.
type dimension struct {
	name string
	// of returns the fact's key; keys lists them in display order (nil:
	// sorted by key).
	of   func(*Fact) string
	keys []string
}

// cellID names a cell by its constraints, dimension=key joined by &,
// sorted; "" is the grand total. A cell shared by two tables (a margin of
// a two-way table and a line of a one-way one) has one id, so that it is
// suppressed in both or in neither.
func cellID(pairs ...string) string {
	var parts []string
	for i := 0; i+1 < len(pairs); i += 2 {
		parts = append(parts, pairs[i]+"="+pairs[i+1])
	}
	sort.Strings(parts)
	return strings.Join(parts, "&")
}

// Close-time buckets, in days.
var closeBuckets = []struct {
	key string
	max float64
}{
	{"<=7d", 7}, {"8-15d", 15}, {"16-30d", 30}, {"31-60d", 60}, {">60d", math.Inf(1)},
}

const notClosed = "not_closed"

func closeBucket(f *Fact) string {
	if f.DaysToClose == nil {
		return notClosed
	}
	for _, b := range closeBuckets {
		if *f.DaysToClose <= b.max {
			return b.key
		}
	}
	return closeBuckets[len(closeBuckets)-1].key
}

// Confirmation keys.
const (
	confNotSettled   = "not_settled"
	confNotRequested = "not_requested"
)

func confirmationOf(f *Fact) string {
	if !f.Settled {
		return confNotSettled
	}
	if f.Confirmation == "" {
		return confNotRequested
	}
	return f.Confirmation
}

func reconciliationOf(f *Fact) string {
	if f.Reconciliation == "" {
		return "none"
	}
	return f.Reconciliation
}

// builder computes a report: the counts of every cell, the relations
// between cells, and the suppression.
type builder struct {
	d      *Dataset
	dims   map[string]*dimension
	counts map[string]int
	// oneWay and twoWay are the tables' dimensions, for cellsOf.
	oneWay []string
	twoWay [][2]string
	// relations are the linear equations between cells that anyone can
	// write from the published tables: a total is the sum of its parts;
	// two sums count the same cases. Each maps cells to coefficients, the
	// whole summing to zero.
	relations []map[string]int
	supp      map[string]bool
	// instLevel and instDistrict give the level and the district of an
	// institution key.
	instLevel, instDistrict func(name string) string
}

// Compute builds the report of a dataset at now.
func Compute(d *Dataset, now time.Time) *Report {
	b := &builder{d: d, dims: map[string]*dimension{}, counts: map[string]int{}, supp: map[string]bool{}}
	b.defineDimensions()
	oneWay := []string{"month", "institution", "level", "district", "category", "channel", "outcome",
		"close_time", "reconciliation", "confirmation"}
	twoWay := [][2]string{{"category", "outcome"}, {"month", "outcome"}, {"category", "reconciliation"}, {"category", "confirmation"}}
	b.oneWay, b.twoWay = oneWay, twoWay
	b.count()
	for _, dim := range oneWay {
		b.relateOneWay(dim)
	}
	for _, p := range twoWay {
		b.relateTwoWay(p[0], p[1])
	}
	b.relateAcross()
	b.suppress()

	r := &Report{GeneratedAt: now.UTC().Truncate(time.Second), From: d.From, To: d.To,
		Category: d.Category, Channel: d.Channel, MinCell: MinCell}
	titles := map[string]string{
		"month": "Cases by month opened", "institution": "Cases by institution", "level": "Cases by institution level",
		"district": "Cases by district", "category": "Cases by category", "channel": "Cases by channel",
		"outcome": "Cases by outcome", "close_time": "Time to close (days), closed cases",
		"reconciliation": "Cases by ODR reconciliation", "confirmation": "Settled cases by confirmation (court or arbitration)",
	}
	for _, dim := range oneWay {
		r.Tables = append(r.Tables, b.oneWayTable("by_"+dim, titles[dim], dim))
	}
	for _, p := range twoWay {
		r.Tables = append(r.Tables, b.twoWayTable(p[0]+"_"+p[1], "Cases by "+p[0]+" and "+p[1], p[0], p[1]))
	}
	r.Tables = append(r.Tables, b.reconciliationRates(), b.confirmationRates(), b.durations())
	return r
}

func (b *builder) defineDimensions() {
	byID := map[string]*cases.Institution{}
	for i := range b.d.Institutions {
		byID[b.d.Institutions[i].ID] = &b.d.Institutions[i]
	}
	instName := func(id string) string {
		if inst, ok := byID[id]; ok {
			return inst.Name + " (" + inst.Code + ")"
		}
		return "unknown"
	}
	level := func(id string) string {
		if inst, ok := byID[id]; ok {
			return inst.Level
		}
		return "unknown"
	}
	district := func(id string) string {
		for range len(byID) + 1 {
			inst, ok := byID[id]
			if !ok {
				return "unknown"
			}
			switch inst.Level {
			case cases.LevelDistrict:
				return instName(inst.ID)
			case cases.LevelProvince, cases.LevelCity:
				return "(above district level)"
			}
			id = inst.ParentID
		}
		return "unknown"
	}
	buckets := []string{}
	for _, cb := range closeBuckets {
		buckets = append(buckets, cb.key)
	}
	for _, dim := range []*dimension{
		{name: "month", of: func(f *Fact) string { return f.Month }},
		{name: "institution", of: func(f *Fact) string { return instName(f.InstitutionID) }},
		{name: "level", of: func(f *Fact) string { return level(f.InstitutionID) },
			keys: []string{cases.LevelProvince, cases.LevelCity, cases.LevelDistrict, cases.LevelCommunity, "unknown"}},
		{name: "district", of: func(f *Fact) string { return district(f.InstitutionID) }},
		{name: "category", of: func(f *Fact) string { return f.Category }, keys: append(cases.Categories(), "other")},
		{name: "channel", of: func(f *Fact) string { return f.Channel }, keys: append(slices.Clone(channels), "other")},
		{name: "outcome", of: func(f *Fact) string { return f.Outcome }, keys: Outcomes()},
		{name: "close_time", of: closeBucket, keys: append(buckets, notClosed)},
		{name: "reconciliation", of: reconciliationOf, keys: []string{"none", "open", "reconciled", "escalated"}},
		{name: "confirmation", of: confirmationOf,
			keys: []string{confNotRequested, "pending", "confirmed", "refused", confNotSettled}},
	} {
		b.dims[dim.name] = dim
	}
	nameToID := map[string]string{}
	for id := range byID {
		nameToID[instName(id)] = id
	}
	b.instLevel = func(name string) string { return level(nameToID[name]) }
	b.instDistrict = func(name string) string { return district(nameToID[name]) }
}

// keysOf returns the keys of a dimension that occur, in display order.
func (b *builder) keysOf(dim string) []string {
	d := b.dims[dim]
	var out []string
	seen := map[string]bool{}
	for _, k := range d.keys {
		if b.counts[cellID(dim, k)] > 0 && !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	var rest []string
	for id, n := range b.counts {
		if n == 0 || strings.Contains(id, "&") || !strings.HasPrefix(id, dim+"=") {
			continue
		}
		k := strings.TrimPrefix(id, dim+"=")
		if !seen[k] {
			seen[k] = true
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	return append(out, rest...)
}

// cellsOf returns the ids of the cells that count a fact, the grand
// total among them. It runs for every case of every wider report (see
// differenced), so it builds the ids directly rather than through
// cellID.
func (b *builder) cellsOf(f *Fact) []string {
	key := make(map[string]string, len(b.oneWay))
	ids := make([]string, 0, 1+len(b.oneWay)+3*len(b.twoWay))
	ids = append(ids, "")
	keyOf := func(dim string) string {
		k, ok := key[dim]
		if !ok {
			k = b.dims[dim].of(f)
			key[dim] = k
		}
		return k
	}
	for _, dim := range b.oneWay {
		ids = append(ids, dim+"="+keyOf(dim))
	}
	for _, p := range b.twoWay {
		// A margin is a one-way cell when its dimension has a table.
		for _, dim := range p {
			if id := dim + "=" + keyOf(dim); !slices.Contains(b.oneWay, dim) && !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
		x, y := p[0]+"="+keyOf(p[0]), p[1]+"="+keyOf(p[1])
		if y < x {
			x, y = y, x
		}
		ids = append(ids, x+"&"+y)
	}
	return ids
}

// count counts every cell of the tables.
func (b *builder) count() {
	for i := range b.d.Facts {
		for _, id := range b.cellsOf(&b.d.Facts[i]) {
			b.counts[id]++
		}
	}
}

// differenced returns the cells with cases that a wider report would
// give away by subtraction (see Dataset): those whose count differs by
// 1 to MinCell-1 from the same cell of a report of a scope in
// [scope]+wider, with the report's filters or fewer, over the report's
// month range or a wider one; and, when the scope is an institution's
// subtree, those whose count in the institution's own cases is 1 to
// MinCell-1.
func (b *builder) differenced() map[string]bool {
	d := b.d
	out := map[string]bool{}
	universe := d.universe
	if universe == nil {
		universe = d.Facts
	}
	filters := [][2]string{{d.Category, d.Channel}}
	if d.Category != "" {
		filters = append(filters, [2]string{"", d.Channel})
	}
	if d.Channel != "" {
		filters = append(filters, [2]string{d.Category, ""})
	}
	if d.Category != "" && d.Channel != "" {
		filters = append(filters, [2]string{"", ""})
	}
	scopes := append([]map[string]bool{d.scope}, d.wider...)
	// window is one wider report's counts: within the report's months,
	// and by month before and after them.
	type window struct {
		in            map[string]int
		before, after map[string]map[string]int
	}
	var windows []window
	type sel struct {
		scope  map[string]bool
		filter [2]string
	}
	var sels []sel
	for _, sc := range scopes {
		for _, f := range filters {
			sels = append(sels, sel{sc, f})
			windows = append(windows, window{map[string]int{}, map[string]map[string]int{}, map[string]map[string]int{}})
		}
	}
	// Only the cells this report has cases in can be hidden; counting
	// only those keeps the maps small.
	add := func(counts map[string]int, ids []string) {
		for _, id := range ids {
			if b.counts[id] > 0 {
				counts[id]++
			}
		}
	}
	byMonth := func(m map[string]map[string]int, month string) map[string]int {
		if m[month] == nil {
			m[month] = map[string]int{}
		}
		return m[month]
	}
	for i := range universe {
		f := &universe[i]
		var ids []string
		for k, s := range sels {
			if s.scope != nil && !s.scope[f.InstitutionID] || !matches(f, s.filter[0], s.filter[1]) {
				continue
			}
			if ids == nil {
				ids = b.cellsOf(f)
			}
			w := &windows[k]
			switch {
			case inRange(f.Month, d.From, d.To):
				add(w.in, ids)
			case d.From != "" && f.Month < d.From:
				add(byMonth(w.before, f.Month), ids)
			default:
				add(byMonth(w.after, f.Month), ids)
			}
		}
	}
	for _, w := range windows {
		var before, after []string
		for m := range w.before {
			before = append(before, m)
		}
		for m := range w.after {
			after = append(after, m)
		}
		// Nearest months first: a wider range adds the months next to
		// the report's first.
		sort.Sort(sort.Reverse(sort.StringSlice(before)))
		sort.Strings(after)
		for id, n := range b.counts {
			if n == 0 {
				continue
			}
			// Every wider range is this report's months plus some
			// months before them and some after, each adding a count
			// of zero or more. The differences with this report are
			// base plus such sums; when base is 0, the smallest
			// positive one is the count of the nearest month, on
			// either side, with cases in the cell, so that is the
			// one to test.
			base := w.in[id] - n
			if small(base) {
				out[id] = true
				continue
			}
			if base != 0 {
				continue
			}
			for _, side := range []struct {
				months []string
				counts map[string]map[string]int
			}{{before, w.before}, {after, w.after}} {
				for _, m := range side.months {
					if c := side.counts[m][id]; c > 0 {
						if small(c) {
							out[id] = true
						}
						break
					}
				}
			}
		}
	}
	// An institution's report minus its children's gives the counts of
	// its own cases.
	if d.root != "" {
		own := map[string]int{}
		for i := range d.Facts {
			if d.Facts[i].InstitutionID == d.root {
				add(own, b.cellsOf(&d.Facts[i]))
			}
		}
		for id, n := range own {
			if small(n) {
				out[id] = true
			}
		}
	}
	return out
}

// small reports whether a count is shown nowhere: 1 to MinCell-1.
func small(n int) bool { return n > 0 && n < MinCell }

// relate records the equation sum(parts) - total = 0.
func (b *builder) relate(total string, parts ...string) {
	eq := map[string]int{}
	if total != "-" {
		eq[total]--
	}
	for _, id := range parts {
		eq[id]++
	}
	b.addRelation(eq)
}

// same records the equation sum(xs) - sum(ys) = 0.
func (b *builder) same(xs, ys []string) {
	eq := map[string]int{}
	for _, id := range xs {
		eq[id]++
	}
	for _, id := range ys {
		eq[id]--
	}
	b.addRelation(eq)
}

// addRelation keeps the terms of eq on cells with cases: an empty cell
// is a known zero.
func (b *builder) addRelation(eq map[string]int) {
	for id, c := range eq {
		if c == 0 || b.counts[id] == 0 {
			delete(eq, id)
		}
	}
	if len(eq) > 0 {
		b.relations = append(b.relations, eq)
	}
}

func (b *builder) relateOneWay(dim string) {
	var ids []string
	for _, k := range b.keysOf(dim) {
		ids = append(ids, cellID(dim, k))
	}
	b.relate("", ids...)
}

func (b *builder) relateTwoWay(d1, d2 string) {
	k1, k2 := b.keysOf(d1), b.keysOf(d2)
	for _, a := range k1 {
		var ids []string
		for _, c := range k2 {
			ids = append(ids, cellID(d1, a, d2, c))
		}
		b.relate(cellID(d1, a), ids...)
	}
	for _, c := range k2 {
		var ids []string
		for _, a := range k1 {
			ids = append(ids, cellID(d1, a, d2, c))
		}
		b.relate(cellID(d2, c), ids...)
	}
}

// relateAcross records the relations between dimensions that count the
// same cases under other names: an institution's cases are part of its
// level's and its district's; closed outcomes are the cases with a close
// time; reconciled cases are reconciled outcomes; settled outcomes are
// the cases of the confirmation table. Each holds overall and, where
// both dimensions are crossed with the category, per category.
func (b *builder) relateAcross() {
	byLevel, byDistrict := map[string][]string{}, map[string][]string{}
	for _, name := range b.keysOf("institution") {
		id := cellID("institution", name)
		byLevel[b.instLevel(name)] = append(byLevel[b.instLevel(name)], id)
		byDistrict[b.instDistrict(name)] = append(byDistrict[b.instDistrict(name)], id)
	}
	for lv, ids := range byLevel {
		b.relate(cellID("level", lv), ids...)
	}
	for dt, ids := range byDistrict {
		b.relate(cellID("district", dt), ids...)
	}
	closed := []string{string(cases.ResultReconciled), string(cases.ResultSettled), string(cases.ResultPartiallySettled),
		string(cases.ResultNotSettled), string(cases.ResultWithdrawn)}
	var closeKeys []string
	for _, cb := range closeBuckets {
		closeKeys = append(closeKeys, cb.key)
	}
	type same struct {
		x    string
		xs   []string
		y    string
		ys   []string
		byCt bool // also per category
	}
	settled := []string{string(cases.ResultSettled), string(cases.ResultPartiallySettled)}
	var unsettled []string
	for _, o := range Outcomes() {
		if !slices.Contains(settled, o) {
			unsettled = append(unsettled, o)
		}
	}
	for _, s := range []same{
		{"outcome", closed, "close_time", closeKeys, false},
		{"outcome", []string{OutcomeOpen, OutcomeRejected}, "close_time", []string{notClosed}, false},
		{"outcome", []string{string(cases.ResultReconciled)}, "reconciliation", []string{"reconciled"}, true},
		{"outcome", settled, "confirmation", []string{confNotRequested, "pending", "confirmed", "refused"}, true},
		{"outcome", unsettled, "confirmation", []string{confNotSettled}, true},
	} {
		contexts := [][]string{nil}
		if s.byCt {
			for _, c := range b.keysOf("category") {
				contexts = append(contexts, []string{"category", c})
			}
		}
		for _, ctx := range contexts {
			var xs, ys []string
			for _, k := range s.xs {
				xs = append(xs, cellID(append(slices.Clone(ctx), s.x, k)...))
			}
			for _, k := range s.ys {
				ys = append(ys, cellID(append(slices.Clone(ctx), s.y, k)...))
			}
			b.same(xs, ys)
		}
	}
}

// suppress hides every cell counting 1 to MinCell-1 cases, and every
// cell a wider report would give away (differenced), as primary
// suppression; then it hides more cells (secondary suppression) until no
// hidden cell follows from the published ones through the relations:
// first, cheaply, while a relation has exactly one hidden cell, the
// smallest visible cell of that relation; then, while Gaussian
// elimination over all relations still determines a hidden cell, the
// smallest visible cell of a relation that holds it.
func (b *builder) suppress() {
	for id, n := range b.counts {
		if small(n) {
			b.supp[id] = true
		}
	}
	// A cell that a wider report would give away by subtraction is
	// hidden as if it were small itself.
	for id := range b.differenced() {
		b.supp[id] = true
	}
	for {
		for changed := true; changed; {
			changed = false
			for _, rel := range b.relations {
				hidden := ""
				count := 0
				for id := range rel {
					if b.supp[id] {
						hidden, count = id, count+1
					}
				}
				if count == 1 && b.hideNext(hidden) {
					changed = true
				}
			}
		}
		determined := b.determined()
		if len(determined) == 0 {
			return
		}
		if !b.hideNear(determined[0]) {
			return // everything linked to it is hidden already
		}
	}
}

// hideNext hides the smallest visible cell that shares a relation with
// id, and reports whether there was one.
func (b *builder) hideNext(id string) bool {
	// found, not pick != "": the grand total's id is "".
	pick, found := "", false
	for _, rel := range b.relations {
		if _, ok := rel[id]; !ok {
			continue
		}
		for other := range rel {
			if b.supp[other] || b.counts[other] == 0 {
				continue
			}
			if !found || b.counts[other] < b.counts[pick] || b.counts[other] == b.counts[pick] && other < pick {
				pick, found = other, true
			}
		}
	}
	if !found {
		return false
	}
	b.supp[pick] = true
	return true
}

// hideNear hides the smallest visible cell of the relations that link
// id, through hidden cells, to the rest: the equations that determine it
// then have one more unknown. It reports whether there was one.
func (b *builder) hideNear(id string) bool {
	seen := map[string]bool{id: true}
	queue := []string{id}
	pick, found := "", false // found: the grand total's id is ""
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		for _, rel := range b.relations {
			if _, ok := rel[cur]; !ok {
				continue
			}
			for other := range rel {
				switch {
				case b.supp[other]:
					if !seen[other] {
						seen[other] = true
						queue = append(queue, other)
					}
				case b.counts[other] > 0:
					if !found || b.counts[other] < b.counts[pick] || b.counts[other] == b.counts[pick] && other < pick {
						pick, found = other, true
					}
				}
			}
		}
		if found {
			break // the nearest ring of relations that has a visible cell
		}
	}
	if !found {
		return false
	}
	b.supp[pick] = true
	return true
}

// determined returns the hidden cells that the relations determine from
// the visible ones: those whose unit vector lies in the row space of the
// relations restricted to the hidden cells (reduced row echelon form).
func (b *builder) determined() []string {
	var vars []string
	for id := range b.supp {
		vars = append(vars, id)
	}
	sort.Strings(vars)
	col := make(map[string]int, len(vars))
	for i, v := range vars {
		col[v] = i
	}
	var rows [][]float64
	for _, rel := range b.relations {
		var row []float64
		for id, c := range rel {
			if j, ok := col[id]; ok {
				if row == nil {
					row = make([]float64, len(vars))
				}
				row[j] += float64(c)
			}
		}
		if row != nil {
			rows = append(rows, row)
		}
	}
	const eps = 1e-9
	r := 0
	for c := 0; c < len(vars) && r < len(rows); c++ {
		p := -1
		for i := r; i < len(rows); i++ {
			if math.Abs(rows[i][c]) > eps && (p < 0 || math.Abs(rows[i][c]) > math.Abs(rows[p][c])) {
				p = i
			}
		}
		if p < 0 {
			continue
		}
		rows[r], rows[p] = rows[p], rows[r]
		pivot := rows[r][c]
		for j := range rows[r] {
			rows[r][j] /= pivot
		}
		for i := range rows {
			if i != r && math.Abs(rows[i][c]) > eps {
				f := rows[i][c]
				for j := range rows[i] {
					rows[i][j] -= f * rows[r][j]
				}
			}
		}
		r++
	}
	var out []string
	for _, row := range rows[:r] {
		only := -1
		for j, v := range row {
			if math.Abs(v) > eps {
				if only >= 0 {
					only = -2
					break
				}
				only = j
			}
		}
		if only >= 0 {
			out = append(out, vars[only])
		}
	}
	return out
}

// value returns a cell's count, or nil when it is suppressed.
func (b *builder) value(id string) (*float64, bool) {
	if b.supp[id] {
		return nil, true
	}
	v := float64(b.counts[id])
	return &v, false
}

func (b *builder) countRow(keys map[string]string, id string) Row {
	r := Row{Keys: keys, Values: map[string]*float64{}}
	v, hidden := b.value(id)
	r.Values[measureCases] = v
	if hidden {
		r.Suppressed = []string{measureCases}
	}
	return r
}

func (b *builder) oneWayTable(name, title, dim string) Table {
	t := Table{Name: name, Title: title, Dimensions: []string{dim}, Measures: []string{measureCases}, Rows: []Row{}}
	for _, k := range b.keysOf(dim) {
		t.Rows = append(t.Rows, b.countRow(map[string]string{dim: k}, cellID(dim, k)))
	}
	t.Rows = append(t.Rows, b.countRow(map[string]string{dim: Total}, ""))
	return t
}

func (b *builder) twoWayTable(name, title, d1, d2 string) Table {
	t := Table{Name: name, Title: title, Dimensions: []string{d1, d2}, Measures: []string{measureCases}, Rows: []Row{}}
	k1, k2 := b.keysOf(d1), b.keysOf(d2)
	for _, a := range k1 {
		for _, c := range k2 {
			t.Rows = append(t.Rows, b.countRow(map[string]string{d1: a, d2: c}, cellID(d1, a, d2, c)))
		}
		t.Rows = append(t.Rows, b.countRow(map[string]string{d1: a, d2: Total}, cellID(d1, a)))
	}
	for _, c := range k2 {
		t.Rows = append(t.Rows, b.countRow(map[string]string{d1: Total, d2: c}, cellID(d2, c)))
	}
	t.Rows = append(t.Rows, b.countRow(map[string]string{d1: Total, d2: Total}, ""))
	return t
}

// byCategory returns the category keys and the total, with the context
// pairs of their cells.
func (b *builder) byCategory() (keys []string, ctx [][]string) {
	for _, c := range b.keysOf("category") {
		keys = append(keys, c)
		ctx = append(ctx, []string{"category", c})
	}
	return append(keys, Total), append(ctx, nil)
}

// reconciliationRates is, by category, the share of reconciliations that
// ended settled (reconciled / (reconciled + escalated)).
func (b *builder) reconciliationRates() Table {
	t := Table{Name: "reconciliation_rate", Title: "ODR reconciliation rate: reconciled / (reconciled + escalated)",
		Dimensions: []string{"category"}, Measures: []string{"reconciliation_rate"}, Rows: []Row{}}
	keys, ctxs := b.byCategory()
	for i, k := range keys {
		ctx := ctxs[i]
		rec := cellID(append(slices.Clone(ctx), "reconciliation", "reconciled")...)
		esc := cellID(append(slices.Clone(ctx), "reconciliation", "escalated")...)
		r := Row{Keys: map[string]string{"category": k}, Values: map[string]*float64{}}
		// reconciled + escalated is not a published cell: the rate needs
		// both parts.
		b.rateOfParts(&r, "reconciliation_rate", rec, esc)
		t.Rows = append(t.Rows, r)
	}
	return t
}

// rateOfParts adds measure = a/(a+b) from two cells.
func (b *builder) rateOfParts(r *Row, measure, a, c string) {
	if b.supp[a] || b.supp[c] {
		r.Values[measure] = nil
		r.Suppressed = append(r.Suppressed, measure)
		return
	}
	r.Values[measure] = nil
	if d := b.counts[a] + b.counts[c]; d > 0 {
		v := math.Round(float64(b.counts[a])/float64(d)*10000) / 10000
		r.Values[measure] = &v
	}
}

// confirmationRates is, by category, the share of settled cases whose
// confirmation was requested, and the share of decided requests that
// were confirmed.
func (b *builder) confirmationRates() Table {
	t := Table{Name: "confirmation_rate", Title: "Confirmation: requested / settled, and confirmed / (confirmed + refused)",
		Dimensions: []string{"category"}, Measures: []string{"request_rate", "confirmation_rate"}, Rows: []Row{}}
	keys, ctxs := b.byCategory()
	for i, k := range keys {
		ctx := ctxs[i]
		cell := func(v string) string { return cellID(append(slices.Clone(ctx), "confirmation", v)...) }
		r := Row{Keys: map[string]string{"category": k}, Values: map[string]*float64{}}
		// requested / settled, from its four parts.
		parts := []string{cell(confNotRequested), cell("pending"), cell("confirmed"), cell("refused")}
		hidden := false
		settled, requested := 0, 0
		for j, id := range parts {
			hidden = hidden || b.supp[id]
			settled += b.counts[id]
			if j > 0 {
				requested += b.counts[id]
			}
		}
		switch {
		case hidden:
			r.Values["request_rate"] = nil
			r.Suppressed = append(r.Suppressed, "request_rate")
		case settled > 0:
			v := math.Round(float64(requested)/float64(settled)*10000) / 10000
			r.Values["request_rate"] = &v
		default:
			r.Values["request_rate"] = nil
		}
		b.rateOfParts(&r, "confirmation_rate", cell("confirmed"), cell("refused"))
		t.Rows = append(t.Rows, r)
	}
	return t
}

// durations is, by category, the median and 90th percentile of the days
// to accept and to close; each is shown only when it summarises at least
// MinCell cases.
func (b *builder) durations() Table {
	measures := []string{"median_days_to_accept", "p90_days_to_accept", "median_days_to_close", "p90_days_to_close"}
	t := Table{Name: "durations", Title: "Days from opening to acceptance and to closing",
		Dimensions: []string{"category"}, Measures: measures, Rows: []Row{}}
	accept, closeT := map[string][]float64{}, map[string][]float64{}
	for i := range b.d.Facts {
		f := &b.d.Facts[i]
		for _, k := range []string{f.Category, Total} {
			if f.DaysToAccept != nil {
				accept[k] = append(accept[k], *f.DaysToAccept)
			}
			if f.DaysToClose != nil {
				closeT[k] = append(closeT[k], *f.DaysToClose)
			}
		}
	}
	keys, _ := b.byCategory()
	for _, k := range keys {
		r := Row{Keys: map[string]string{"category": k}, Values: map[string]*float64{}}
		for _, m := range []struct {
			median, p90 string
			xs          []float64
		}{
			{measures[0], measures[1], accept[k]},
			{measures[2], measures[3], closeT[k]},
		} {
			switch n := len(m.xs); {
			case n == 0:
				r.Values[m.median], r.Values[m.p90] = nil, nil
			case n < MinCell:
				r.Values[m.median], r.Values[m.p90] = nil, nil
				r.Suppressed = append(r.Suppressed, m.median, m.p90)
			default:
				r.Values[m.median], r.Values[m.p90] = quantile(m.xs, 0.5), quantile(m.xs, 0.9)
			}
		}
		t.Rows = append(t.Rows, r)
	}
	return t
}

// quantile returns the q-quantile of xs (nearest rank), in days rounded
// to one decimal.
func quantile(xs []float64, q float64) *float64 {
	s := slices.Clone(xs)
	sort.Float64s(s)
	i := max(0, min(int(math.Ceil(q*float64(len(s))))-1, len(s)-1))
	v := math.Round(s[i]*10) / 10
	return &v
}

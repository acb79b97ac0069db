package web

import (
	"bytes"
	"net/http"
	"strconv"
	"time"

	"github.com/concord-odr/concord/cases/calendar"
	"github.com/concord-odr/concord/cases/stats"
)

// The statistics API (cases/stats), for platform and institution admins
// (odr_authz.go):
//
//	GET /api/v1/stats?from=YYYY-MM&to=YYYY-MM&institutionId=&category=&channel=&format=json|csv
//	    aggregates with no personal data, small cells suppressed; the CSV
//	    is the export for the supervising departments. category and
//	    channel keep the cases of one category or channel. Because two
//	    reports can be subtracted, a cell that differs by a small count
//	    from the same cell of a wider report (fewer filters, a wider
//	    month range, an ancestor's subtree or all institutions) is
//	    suppressed too, as is an institution's cell whose count in its
//	    own cases, without its children's, is small (stats.Dataset says
//	    what this guarantees and what it does not)
//	GET /api/v1/stats/warnings?institutionId=&weeks=8
//	    merchants and categories whose complaints rose well above their
//	    baseline in the last 7 days; it names merchants, and is for the
//	    institution's staff only

// registerStatsAPI adds the statistics routes to the mux.
func (h *Handler) registerStatsAPI() {
	h.mux.HandleFunc("GET /api/v1/stats", h.guard(staffOnly, h.statistics))
	h.mux.HandleFunc("GET /api/v1/stats/warnings", h.guard(staffOnly, h.warnings))
}

func (h *Handler) statistics(w http.ResponseWriter, r *http.Request) {
	if !knownQuery(w, r, "from", "to", "institutionId", "category", "channel", "format") {
		return
	}
	q := r.URL.Query()
	format := q.Get("format")
	if format != "" && format != "json" && format != "csv" {
		writeFieldProblem(w, codeBadRequest, "format", "format must be json or csv")
		return
	}
	ids, err := h.statsScope(r.Context(), principalOf(r), q.Get("institutionId"))
	if err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	d, err := stats.Collect(r.Context(), h.p.Cases.Store(), stats.Scope{
		InstitutionIDs: ids, From: q.Get("from"), To: q.Get("to"),
		Category: q.Get("category"), Channel: q.Get("channel"),
	})
	if err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	rep := stats.Compute(d, h.p.Cases.Now())
	if format != "csv" {
		writeJSON(w, http.StatusOK, rep)
		return
	}
	var buf bytes.Buffer
	if err := rep.WriteCSV(&buf); err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	name := "concord-stats-" + calendar.DateOf(h.p.Cases.Now()).String() + ".csv"
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(buf.Bytes())
}

func (h *Handler) warnings(w http.ResponseWriter, r *http.Request) {
	if !knownQuery(w, r, "institutionId", "weeks") {
		return
	}
	q := r.URL.Query()
	weeks := 8
	if s := q.Get("weeks"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 52 {
			writeFieldProblem(w, codeBadRequest, "weeks", "weeks must be a whole number from 1 to 52")
			return
		}
		weeks = n
	}
	ids, err := h.statsScope(r.Context(), principalOf(r), q.Get("institutionId"))
	if err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	now := h.p.Cases.Now()
	from := now.Add(-time.Duration(weeks+1) * 7 * 24 * time.Hour).In(calendar.Zone()).Format("2006-01")
	d, err := stats.Collect(r.Context(), h.p.Cases.Store(), stats.Scope{InstitutionIDs: ids, From: from})
	if err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	list := stats.Warnings(d, now, stats.WarningParams{BaselineWeeks: weeks})
	writeJSON(w, http.StatusOK, map[string]any{"items": list, "baselineWeeks": weeks})
}

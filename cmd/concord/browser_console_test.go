package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"

	"github.com/concord-odr/concord/cases"
	"github.com/concord-odr/concord/cases/stats"
)

// The staff console (web/static/console*.js) in a real Chromium, signed
// in with the demo's staff accounts (demo.go): the mediator's queue and
// case page at desktop size, the merchant's inbox on a phone, and an
// institution admin's statistics with their SVG charts. Every screen
// passes the axe-core audit.

// consoleSignIn opens /console in a new tab and signs in.
func consoleSignIn(t *testing.T, browserCtx context.Context, srv *testServer, name, login string, phone bool) *tab {
	t.Helper()
	tb := openTab(t, browserCtx, name, srv.BaseURL+"/console", phone)
	tb.waitJS(t, `document.body.dataset.view === 'login' && document.activeElement.id === 'login-heading'`, joinWait, "show the sign-in with focus on its heading")
	if err := chromedp.Do(tb.ctx,
		chromedp.SendKeys(chromedp.ID("login-name"), login),
		chromedp.SendKeys(chromedp.ID("login-password"), srv.Main.Demo.StaffPassword),
	); err != nil {
		t.Fatalf("%s: filling the sign-in form: %v", name, err)
	}
	tb.click(t, "#login-submit")
	return tb
}

// setValue sets a form control's value as typing or choosing would.
func setValue(t *testing.T, tb *tab, sel, v string) {
	t.Helper()
	evalJS[bool](t, tb, fmt.Sprintf(`(() => {
		const e = document.querySelector(%q);
		e.value = %q;
		e.dispatchEvent(new Event('input', { bubbles: true }));
		e.dispatchEvent(new Event('change', { bubbles: true }));
		return true;
	})()`, sel, v))
}

// TestBrowserConsoleMediator: a wrong password is refused with the
// server's message; the demo mediator signs in at desktop size, finds
// the demo case in its queue, opens the case page with its history, goes
// on duty and accepts an instant mediation request.
func TestBrowserConsoleMediator(t *testing.T) {
	step := stepper(t)
	browserCtx := startBrowser(t)
	axe := loadAxe(t)
	srv := startTestServer(t)
	demo := srv.Main.Demo

	tb := openTab(t, browserCtx, "mediator", srv.BaseURL+"/console", false)
	tabs := []*tab{tb}
	tb.waitJS(t, `document.body.dataset.view === 'login'`, joinWait, "show the sign-in")
	// Chinese by default only when the browser does not prefer English.
	tb.waitJS(t, `document.documentElement.lang === 'en' && document.getElementById('login-heading').textContent === 'Staff sign-in'`, uiWait, "show the sign-in in English")
	axe.audit(t, tb, "sign-in")
	tb.screenshot(t, "console-sign-in.png")

	if err := chromedp.Do(tb.ctx,
		chromedp.SendKeys(chromedp.ID("login-name"), "demo-mediator"),
		chromedp.SendKeys(chromedp.ID("login-password"), "not the password"),
	); err != nil {
		t.Fatal(err)
	}
	tb.click(t, "#login-submit")
	tb.waitJS(t, `document.getElementById('login-error').textContent.includes('the login or the password is wrong')`, uiWait, "show the wrong-password error")
	if v := evalJS[string](t, tb, `document.body.dataset.view`); v != "login" {
		t.Fatalf("after a wrong password the console shows %q", v)
	}
	tb.screenshot(t, "console-sign-in-error.png")
	step("wrong password refused")

	setValue(t, tb, "#login-password", demo.StaffPassword)
	tb.click(t, "#login-submit")
	tb.waitJS(t, fmt.Sprintf(`document.body.dataset.view === 'queue' && !document.getElementById('view-queue').hasAttribute('aria-busy')
		&& document.activeElement.id === 'queue-heading'
		&& document.querySelector('#view-queue a[href="#case/%s"]') !== null`, demo.CaseID), joinWait, "show the queue with the demo case")
	// The demo session was created today: it is among today's sessions.
	if n := evalJS[int](t, tb, `document.querySelectorAll('#today-heading ~ .cs-list li').length`); n < 1 {
		t.Errorf("today's sessions list %d items, want the demo session", n)
	}
	axe.audit(t, tb, "queue")
	tb.fullScreenshot(t, "console-queue.png")
	step("queue shown")

	tb.click(t, fmt.Sprintf(`#open-heading ~ .cs-list a[href="#case/%s"]`, demo.CaseID))
	tb.waitJS(t, fmt.Sprintf(`document.body.dataset.view === 'case' && document.activeElement.id === 'case-heading'
		&& document.getElementById('case-heading').textContent.includes(%q)
		&& document.querySelectorAll('#case-history li').length >= 3
		&& document.querySelector('#case-history li[data-type="case.submitted"]') !== null
		&& document.querySelector('[data-action="open-room"]') !== null`, demo.CaseNumber), uiWait, "show the case page with its history")
	if s := evalJS[string](t, tb, `document.getElementById('case-state').dataset.state`); s != string(cases.StateMediating) {
		t.Errorf("case page state %q", s)
	}
	axe.audit(t, tb, "case page")
	tb.fullScreenshot(t, "console-case.png")
	step("case page shown")

	scheduleFromConsole(t, srv, tb, axe)
	step("session scheduled")
	room := openRoomFromConsole(t, srv, tb, axe)
	tabs = append(tabs, room)
	step("room opened from the case page")

	// On duty, an instant request for the demo case is offered to the
	// mediator, who accepts it.
	tb.click(t, `a[href="#queue"]`)
	tb.waitJS(t, `document.body.dataset.view === 'queue' && document.getElementById('duty-toggle') !== null`, uiWait, "show the queue again")
	tb.click(t, "#duty-toggle")
	tb.waitJS(t, `document.getElementById('duty-toggle').getAttribute('aria-pressed') === 'true'
		&& document.getElementById('duty-state').textContent.includes('on duty')`, uiWait, "go on duty")
	code, ticket := post(t, srv.BaseURL+"/api/v1/queue/requests", srv.Config.AdminToken, "application/json",
		fmt.Sprintf(`{"caseId":%q}`, demo.CaseID))
	if code != http.StatusCreated {
		t.Fatalf("queue request: %d %v", code, ticket)
	}
	reqID, _ := ticket["id"].(string)
	tb.waitJS(t, fmt.Sprintf(`document.querySelector('.cs-offer[data-request=%q] [data-action="accept"]') !== null`, reqID), joinWait, "show the offered request")
	axe.audit(t, tb, "queue with an offer")
	tb.screenshot(t, "console-queue-offer.png")
	tb.click(t, `.cs-offer [data-action="accept"]`)
	tb.waitJS(t, `document.body.dataset.view === 'case'`, uiWait, "open the accepted case")
	var got struct {
		Status     string `json:"status"`
		SessionID  string `json:"sessionId"`
		MediatorID string `json:"mediatorId"`
	}
	if code := getJSON(t, srv.BaseURL+"/api/v1/queue/requests/"+reqID, srv.Config.AdminToken, &got); code != http.StatusOK {
		t.Fatalf("ticket: %d", code)
	}
	if got.Status != cases.QueueAccepted || got.MediatorID != demoMediatorID || got.SessionID == "" {
		t.Fatalf("after accepting, the ticket is %+v", got)
	}
	// The case page lists the session the acceptance created.
	tb.waitJS(t, fmt.Sprintf(`document.querySelectorAll('#sessions-heading ~ .cs-list li').length >= 2
		&& document.querySelector('#case-history li[data-type="queue.accepted"]') !== null && %q !== ''`, got.SessionID), uiWait, "list the new session")
	step("instant request accepted")

	tb.click(t, "#cs-signout")
	tb.waitJS(t, `document.body.dataset.view === 'login' && document.getElementById('cs-nav').hidden`, uiWait, "sign out")
	checkNoPageProblems(t, tabs)
}

// scheduleFromConsole schedules a new session of the demo case for
// tomorrow at 10:30 (the browser's time) from the case page, and checks
// that the page lists it and that the case record has it at that time.
func scheduleFromConsole(t *testing.T, srv *testServer, tb *tab, axe *axeAuditor) {
	t.Helper()
	demo := srv.Main.Demo
	sessions := `document.querySelectorAll('#sessions-heading ~ .cs-list li').length`
	before := evalJS[int](t, tb, sessions)
	// The value a person would pick, and the instant it means.
	want := evalJS[string](t, tb, `(() => {
		const d = new Date(Date.now() + 86400000);
		d.setHours(10, 30, 0, 0);
		const pad = (n) => String(n).padStart(2, '0');
		const v = d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + 'T10:30';
		const e = document.getElementById('schedule-when');
		e.value = v;
		e.dispatchEvent(new Event('input', { bubbles: true }));
		return d.toISOString();
	})()`)
	at, err := time.Parse(time.RFC3339, want)
	if err != nil {
		t.Fatalf("the page's time %q: %v", want, err)
	}
	// The parties are not told in the test: no messages to send.
	evalJS[bool](t, tb, `document.getElementById('schedule-notify').checked = false`)
	tb.screenshot(t, "console-case-schedule.png")
	tb.click(t, `#schedule-form button[type="submit"]`)
	tb.waitJS(t, fmt.Sprintf(`%s === %d && document.body.dataset.view === 'case'`, sessions, before+1), uiWait, "list the scheduled session")
	var rec struct {
		Sessions []struct {
			ID          string     `json:"id"`
			Status      string     `json:"status"`
			ScheduledAt *time.Time `json:"scheduledAt"`
		} `json:"sessions"`
	}
	if code := getJSON(t, srv.BaseURL+"/api/v1/cases/"+demo.CaseID, srv.Config.AdminToken, &rec); code != http.StatusOK {
		t.Fatalf("case: %d", code)
	}
	found := false
	for _, s := range rec.Sessions {
		if s.ScheduledAt != nil && s.ScheduledAt.Equal(at) && s.ID != demo.SessionID {
			found = true
		}
	}
	if !found {
		t.Fatalf("no session of the case is scheduled at %v: %+v", at, rec.Sessions)
	}
	axe.audit(t, tb, "case page with a scheduled session")
}

// openRoomFromConsole opens the room of the demo case's first open
// session from the case page: the console issues the mediator's own
// link and opens it in a new tab, where the mediator is in the room.
func openRoomFromConsole(t *testing.T, srv *testServer, tb *tab, axe *axeAuditor) *tab {
	t.Helper()
	newTab := chromedp.WaitNewTarget(tb.ctx, func(info *target.Info) bool {
		return info.Type == "page" && strings.HasPrefix(info.URL, srv.BaseURL) && !strings.Contains(info.URL, "/console")
	})
	tb.click(t, `[data-action="open-room"]`)
	var id target.ID
	select {
	case id = <-newTab:
	case <-time.After(uiWait):
		t.Fatal("mediator: the console opened no room tab")
	}
	roomCtx, cancel := chromedp.NewContext(tb.ctx, chromedp.WithTargetID(id))
	t.Cleanup(cancel)
	if err := chromedp.Do(roomCtx); err != nil {
		t.Fatal("mediator: attaching to the room tab:", err)
	}
	room := &tab{name: "mediator room", ctx: roomCtx, log: watchConsole(roomCtx)}
	room.waitState(t, "in-room", joinWait)
	// It is the mediator's link: the page has the mediator's controls.
	room.waitJS(t, `(() => { const b = document.getElementById('end-session'); return b !== null && b.offsetParent !== null; })()`, uiWait, "show the mediator's controls")
	// The console stays on the case page, with no error.
	if v := evalJS[string](t, tb, `document.body.dataset.view + '|' + document.getElementById('cs-alert').hidden`); v != "case|true" {
		t.Errorf("after opening the room the console shows %q (view|alert hidden)", v)
	}
	room.screenshot(t, "console-room.png")
	axe.audit(t, room, "room opened from the console")
	return room
}

// TestBrowserConsoleMerchant: the demo merchant agent signs in on a
// phone, finds the demo complaint in its inbox and makes a counter-offer,
// which the case's reconciliation records, and declines a second one,
// which goes to mediation; its dashboard draws a bar for each complaint's
// category and counts the declined one as escalated.
func TestBrowserConsoleMerchant(t *testing.T) {
	browserCtx := startBrowser(t)
	axe := loadAxe(t)
	srv := startTestServer(t)
	demo := srv.Main.Demo
	if demo.ComplaintID == "" {
		t.Fatal("the demo has no complaint")
	}

	// A second complaint, which the merchant declines.
	ctx := context.Background()
	svc := srv.Main.cases
	second, _, err := svc.OpenCase(ctx, cases.NewCase{
		InstitutionID: demoInstitutionID, Category: "product-quality", Channel: demoChannel, ExternalRef: "test-complaint-2",
		Applicant:  cases.Party{Name: "Li Lei (consumer)", Kind: "person"},
		Respondent: cases.Party{Name: "Bright Home Appliances Ltd", Kind: "organisation", CreditCode: demoCreditCode},
		Claims:     "Replace a rice cooker whose lid does not close.", AmountCents: 25900, Actor: "test",
	})
	if err == nil && second.State == cases.StateSubmitted {
		_, err = svc.SweepReconciliation(ctx)
	}
	if err != nil {
		t.Fatal("opening a second complaint:", err)
	}

	tb := consoleSignIn(t, browserCtx, srv, "merchant", "demo-merchant", true)
	tabs := []*tab{tb}
	item := fmt.Sprintf(`li[data-case=%q]`, demo.ComplaintID)
	tb.waitJS(t, fmt.Sprintf(`document.body.dataset.view === 'inbox' && document.activeElement.id === 'inbox-heading'
		&& document.querySelector('%s [data-due]') !== null && /left|剩余/.test(document.querySelector('%s [data-due]').textContent)`, item, item),
		joinWait, "show the complaint with its countdown")
	if w := evalJS[int](t, tb, `document.documentElement.scrollWidth`); w > 360 {
		t.Errorf("the inbox is %dpx wide on a 360px phone", w)
	}
	axe.audit(t, tb, "inbox (phone)")
	tb.fullScreenshot(t, "console-merchant-inbox-phone.png")

	tb.click(t, item+` [data-action="counter"]`)
	tb.waitJS(t, fmt.Sprintf(`document.querySelector('%s form[data-form="counter"]') !== null`, item), uiWait, "open the counter-offer form")
	amount := fmt.Sprintf(`#counter-amount-%s`, demo.ComplaintID)
	terms := fmt.Sprintf(`#counter-terms-%s`, demo.ComplaintID)
	// A malformed amount is refused in the page.
	if err := chromedp.Do(tb.ctx, chromedp.SendKeys(amount, "12,9.x"), chromedp.SendKeys(terms, "Refund 299.00 yuan within 3 days; the kettle is collected.")); err != nil {
		t.Fatal(err)
	}
	tb.click(t, item+` [data-submit="counter"]`)
	tb.waitJS(t, fmt.Sprintf(`document.querySelector('%s form .form-error').textContent !== ''`, item), uiWait, "refuse a malformed amount")
	axe.audit(t, tb, "counter-offer form (phone)")
	tb.screenshot(t, "console-merchant-counter-phone.png")
	setValue(t, tb, amount, "299.00")
	tb.click(t, item+` [data-submit="counter"]`)
	tb.waitJS(t, fmt.Sprintf(`document.querySelector('%s .cs-status-tag[data-status="offer_pending"]') !== null
		&& document.querySelector('%s .cs-offer-line') !== null`, item, item), uiWait, "show the offer pending")

	var rec struct {
		State          string `json:"state"`
		Reconciliation struct {
			Status string `json:"status"`
			Offers []struct {
				Kind        string `json:"kind"`
				AmountCents int64  `json:"amountCents"`
				Terms       string `json:"terms"`
				Status      string `json:"status"`
			} `json:"offers"`
		} `json:"reconciliation"`
	}
	if code := getJSON(t, srv.BaseURL+"/api/v1/odr/cases/"+demo.ComplaintID, srv.Config.AdminToken, &rec); code != http.StatusOK {
		t.Fatalf("reconciliation: %d", code)
	}
	offers := rec.Reconciliation.Offers
	if rec.State != string(cases.StateReconciliation) || rec.Reconciliation.Status != cases.RecOfferPending || len(offers) != 1 ||
		offers[0].Kind != cases.ActCounter || offers[0].AmountCents != 29900 || offers[0].Status != cases.OfferPending ||
		!strings.Contains(offers[0].Terms, "kettle is collected") {
		t.Fatalf("after the counter-offer: %+v", rec)
	}

	declineComplaint(t, srv, tb, axe, second.ID)

	tb.click(t, `a[href="#dashboard"]`)
	tb.waitJS(t, `document.body.dataset.view === 'dashboard' && document.activeElement.id === 'dashboard-heading'
		&& document.querySelectorAll('#chart-dash-category .chart-item[data-state="value"]').length === 2
		&& document.querySelector('#dash-escalated dd').textContent.trim() === '1'
		&& document.querySelectorAll('#chart-dash-outcome .chart-item').length >= 1
		&& document.querySelector('#chart-dash-resolve svg') !== null`, uiWait, "draw the dashboard")
	axe.audit(t, tb, "dashboard (phone)")
	tb.fullScreenshot(t, "console-merchant-dashboard-phone.png")
	checkNoPageProblems(t, tabs)
}

// declineComplaint declines a complaint from the merchant's inbox: a
// decline with no reason is refused in the page; with one, the complaint
// leaves the inbox and goes to mediation with the reason.
func declineComplaint(t *testing.T, srv *testServer, tb *tab, axe *axeAuditor, caseID string) {
	t.Helper()
	item := fmt.Sprintf(`li[data-case=%q]`, caseID)
	tb.waitJS(t, fmt.Sprintf(`document.querySelector('%s [data-action="decline"]') !== null`, item), uiWait, "list the second complaint")
	tb.click(t, item+` [data-action="decline"]`)
	tb.waitJS(t, fmt.Sprintf(`document.querySelector('%s form[data-form="decline"]') !== null
		&& document.activeElement.id === 'decline-reason-%s'`, item, caseID), uiWait, "open the decline form with focus on the reason")
	// The browser itself stops an empty reason (the field is required);
	// the page stops one of spaces.
	field := fmt.Sprintf("#decline-reason-%s", caseID)
	if !evalJS[bool](t, tb, fmt.Sprintf(`document.querySelector(%q).matches(':invalid')`, field)) {
		t.Error("an empty decline reason is not invalid")
	}
	if err := chromedp.Do(tb.ctx, chromedp.SendKeys(field, "   ")); err != nil {
		t.Fatal(err)
	}
	tb.click(t, item+` [data-submit="decline"]`)
	tb.waitJS(t, fmt.Sprintf(`document.querySelector('%s form .form-error').textContent !== ''`, item), uiWait, "refuse a decline with no reason")
	const reason = "The lid was damaged by misuse; we ask for a mediator."
	setValue(t, tb, field, reason)
	axe.audit(t, tb, "decline form (phone)")
	tb.screenshot(t, "console-merchant-decline-phone.png")
	tb.click(t, item+` [data-submit="decline"]`)
	tb.waitJS(t, fmt.Sprintf(`document.querySelector('%s') === null && document.body.dataset.view === 'inbox'`, item), uiWait, "take the declined complaint out of the inbox")
	var rec struct {
		State          string `json:"state"`
		Reconciliation struct {
			Status string `json:"status"`
			Result string `json:"result"`
			Reason string `json:"reason"`
		} `json:"reconciliation"`
	}
	if code := getJSON(t, srv.BaseURL+"/api/v1/odr/cases/"+caseID, srv.Config.AdminToken, &rec); code != http.StatusOK {
		t.Fatalf("declined complaint: %d", code)
	}
	if rec.State == string(cases.StateReconciliation) || rec.Reconciliation.Status != cases.RecEscalated || rec.Reconciliation.Result != cases.ReasonDeclined || rec.Reconciliation.Reason != reason {
		t.Fatalf("after the decline: %+v", rec)
	}
}

// statsJSON is the part of GET /api/v1/stats the test reads.
type statsJSON struct {
	Tables []struct {
		Name string `json:"name"`
		Rows []struct {
			Keys       map[string]string   `json:"keys"`
			Values     map[string]*float64 `json:"values"`
			Suppressed []string            `json:"suppressed"`
		} `json:"rows"`
	} `json:"tables"`
}

// cellText is how the page shows a one-way table's count: the number,
// or "<5" when suppressed.
func (s statsJSON) cellText(table, dim, key string) string {
	for _, tb := range s.Tables {
		if tb.Name != table {
			continue
		}
		for _, r := range tb.Rows {
			if r.Keys[dim] != key {
				continue
			}
			if v := r.Values["cases"]; v != nil {
				return strconv.FormatFloat(*v, 'f', -1, 64)
			}
			if slices.Contains(r.Suppressed, "cases") {
				return "<5"
			}
			return "–"
		}
	}
	return "no row"
}

// chartWant counts what a chart should draw from a table: its rows but
// the total (and those skip drops), by state.
func (s statsJSON) chartWant(table, dim, measure string, skip ...string) (values, suppressed, empty int) {
	for _, tb := range s.Tables {
		if tb.Name != table {
			continue
		}
	rows:
		for _, r := range tb.Rows {
			k := r.Keys[dim]
			if k == "(total)" {
				continue
			}
			for _, s := range skip {
				if k == s {
					continue rows
				}
			}
			switch {
			case slices.Contains(r.Suppressed, measure):
				suppressed++
			case r.Values[measure] == nil:
				empty++
			default:
				values++
			}
		}
	}
	return
}

// seedStats closes cases at the demo institution: settled e-commerce
// ones and withdrawn product-quality ones at the window, withdrawn
// e-commerce ones submitted online; the demo complaint is
// reconciled and the demo case stays open, two cells of one case, which
// the server suppresses.
func seedStats(t *testing.T, srv *testServer) {
	t.Helper()
	ctx := context.Background()
	svc := srv.Main.cases
	closeCase := func(i int, category string, o cases.Outcome, channel ...string) {
		ch := cases.ChannelWindow
		if len(channel) > 0 {
			ch = channel[0]
		}
		c, _, err := svc.OpenCase(ctx, cases.NewCase{
			InstitutionID: demoInstitutionID, Category: category, Channel: ch,
			Applicant:  cases.Party{Name: fmt.Sprintf("Applicant %d", i), Kind: "person"},
			Respondent: cases.Party{Name: fmt.Sprintf("Shop %d", i), Kind: "organisation"},
			Claims:     "A refund.", AmountCents: 10000, Actor: "test",
		})
		if err == nil {
			c, err = walkTo(ctx, svc, c, cases.StateAccepted, "test")
		}
		if err == nil {
			_, err = svc.ScheduleSession(ctx, c.ID, "test", []cases.Participant{
				{Name: "Mediator", Role: cases.RoleMediator, Side: cases.SideNeutral},
				{Name: "A", Role: cases.RoleParty, Side: cases.SideApplicant},
			})
		}
		if err == nil {
			_, err = svc.Apply(ctx, c.ID, cases.TransitionRequest{To: cases.StateClosed, Actor: "test", Outcome: &o})
		}
		if err != nil {
			t.Fatalf("seeding case %d: %v", i, err)
		}
	}
	for i := range 10 {
		closeCase(i, "e-commerce", cases.Outcome{Result: cases.ResultSettled, Terms: "Refund of 100 yuan."})
	}
	for i := range 6 {
		closeCase(100+i, "product-quality", cases.Outcome{Result: cases.ResultWithdrawn})
	}
	// Five e-commerce cases submitted online, withdrawn: with
	// them, the demo's two cases are not the only ones a filter by
	// category or by the window leaves out, and the filtered reports can
	// show their counts.
	for i := range 5 {
		closeCase(200+i, "e-commerce", cases.Outcome{Result: cases.ResultWithdrawn}, cases.ChannelOnline)
	}
	if _, err := svc.MerchantAct(ctx, srv.Main.Demo.ComplaintID, cases.MerchantAction{Kind: cases.ActAcceptClaim, Actor: "test"}); err != nil {
		t.Fatalf("reconciling the demo complaint: %v", err)
	}
}

// checkCharts compares the four statistics charts with the API's
// report: one item per row, drawn as a bar, "<5" or empty as the row is.
// It returns how many suppressed cells and bars it saw.
func checkCharts(t *testing.T, tb *tab, rep statsJSON, what string) (suppressedSeen, valuesSeen int) {
	t.Helper()
	charts := []struct {
		id, table, dim, measure string
		skip                    []string
	}{
		{"chart-trend", "by_month", "month", "cases", nil},
		{"chart-outcome", "by_outcome", "outcome", "cases", nil},
		{"chart-close", "by_close_time", "close_time", "cases", []string{"not_closed"}},
		{"chart-rec", "reconciliation_rate", "category", "reconciliation_rate", nil},
	}
	for _, c := range charts {
		values, suppressed, empty := rep.chartWant(c.table, c.dim, c.measure, c.skip...)
		count := func(state string) int {
			return evalJS[int](t, tb, fmt.Sprintf(`document.querySelectorAll('#%s svg .chart-item[data-state=%q]').length`, c.id, state))
		}
		gv, gs, ge := count("value"), count("suppressed"), count("empty")
		if gv != values || gs != suppressed || ge != empty {
			t.Errorf("%s, %s: drew %d bars, %d suppressed, %d empty; the API's %s has %d, %d, %d", what, c.id, gv, gs, ge, c.table, values, suppressed, empty)
		}
		if bars := evalJS[int](t, tb, fmt.Sprintf(`document.querySelectorAll('#%s svg rect.chart-bar').length`, c.id)); bars != values {
			t.Errorf("%s, %s: %d bars for %d values", what, c.id, bars, values)
		}
		suppressedSeen += gs
		valuesSeen += gv
		// A suppressed cell says so, never zero: a count reads "<5", a
		// rate "suppressed".
		want := "<5"
		if c.measure != "cases" {
			want = "suppressed"
		}
		if gs > 0 {
			if txt := evalJS[string](t, tb, fmt.Sprintf(`document.querySelector('#%s svg .chart-item[data-state="suppressed"] .chart-suppressed').textContent`, c.id)); txt != want {
				t.Errorf("%s, %s: a suppressed cell reads %q", what, c.id, txt)
			}
		}
	}
	return suppressedSeen, valuesSeen
}

// TestBrowserConsoleStatistics: the demo institution admin opens the
// statistics; the four charts draw one item per row of the API's tables,
// and suppressed cells read "<5" (a rate: "suppressed"), never zero.
func TestBrowserConsoleStatistics(t *testing.T) {
	browserCtx := startBrowser(t)
	axe := loadAxe(t)
	srv := startTestServer(t)
	seedStats(t, srv)

	var rep statsJSON
	if code := getJSON(t, srv.BaseURL+"/api/v1/stats", srv.Config.AdminToken, &rep); code != http.StatusOK {
		t.Fatalf("stats: %d", code)
	}

	tb := consoleSignIn(t, browserCtx, srv, "admin", "demo-admin", false)
	tabs := []*tab{tb}
	tb.waitJS(t, `document.body.dataset.view === 'queue'`, joinWait, "show the admin's queue")
	tb.click(t, `a[href="#stats"]`)
	tb.waitJS(t, `document.body.dataset.view === 'stats' && document.activeElement.id === 'stats-heading'
		&& document.querySelectorAll('.cs-charts svg[role="img"]').length === 4`, uiWait, "draw the four charts")

	if sup, val := checkCharts(t, tb, rep, "all"); sup == 0 || val == 0 {
		t.Errorf("the charts drew %d bars and %d suppressed cells; the seeded data has both large and small cells", val, sup)
	}
	axe.audit(t, tb, "statistics")
	tb.fullScreenshot(t, "console-statistics.png")

	total := func() string { return evalJS[string](t, tb, `document.querySelector('#fig-total dd').textContent`) }
	allTotal := total()

	// Filtered to product quality, the server counts that category only:
	// the charts draw the filtered report, and the total changes.
	setValue(t, tb, "#stats-category", "product-quality")
	tb.click(t, `#stats-filters button[type="submit"]`)
	tb.waitJS(t, `document.querySelector('#chart-outcome figcaption').textContent.includes('Product quality')
		&& document.querySelectorAll('#chart-rec .chart-item').length === 1
		&& document.activeElement.id === 'stats-heading'`, uiWait, "filter by category")
	var pq statsJSON
	if code := getJSON(t, srv.BaseURL+"/api/v1/stats?category=product-quality", srv.Config.AdminToken, &pq); code != http.StatusOK {
		t.Fatalf("stats by category: %d", code)
	}
	checkCharts(t, tb, pq, "product quality")
	if got, want := total(), pq.cellText("by_month", "month", "(total)"); got == allTotal || got != want || want != "6" {
		t.Errorf("filtered to product quality, the total reads %q (all: %q); the API's is %q, want 6", got, allTotal, want)
	}
	if n := evalJS[int](t, tb, `document.querySelectorAll('#chart-outcome .chart-item').length`); n != 1 {
		t.Errorf("product quality's outcome mix has %d items, want withdrawn only", n)
	}
	axe.audit(t, tb, "statistics by category")
	tb.fullScreenshot(t, "console-statistics-category.png")

	// Filtered to the window channel instead.
	setValue(t, tb, "#stats-category", "")
	setValue(t, tb, "#stats-channel", "window")
	tb.click(t, `#stats-filters button[type="submit"]`)
	tb.waitJS(t, `document.getElementById('fig-channel') !== null && document.querySelector('#chart-outcome figcaption').textContent === 'Outcome mix'`, uiWait, "filter by channel")
	var win statsJSON
	if code := getJSON(t, srv.BaseURL+"/api/v1/stats?channel=window", srv.Config.AdminToken, &win); code != http.StatusOK {
		t.Fatalf("stats by channel: %d", code)
	}
	checkCharts(t, tb, win, "window")
	if got, want := total(), win.cellText("by_month", "month", "(total)"); got != want || want != "16" {
		t.Errorf("filtered to the window, the total reads %q; the API's is %q, want 16", got, want)
	}
	axe.audit(t, tb, "statistics by channel")

	downloadStatsCSV(t, tb)
	checkNoPageProblems(t, tabs)
}

// downloadStatsCSV downloads the statistics as CSV from the page into a
// temporary folder, and checks the file: the export's header, the
// filtered rows, and none of the seeded personal data.
func downloadStatsCSV(t *testing.T, tb *tab) {
	t.Helper()
	dir := t.TempDir()
	if _, err := chromedp.CallBrowser(tb.ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: dir,
	}); err != nil {
		t.Fatal("allowing downloads:", err)
	}
	tb.click(t, `[data-export="csv"]`)
	var data []byte
	deadline := time.Now().Add(uiWait)
	for data == nil {
		if time.Now().After(deadline) {
			entries, _ := os.ReadDir(dir)
			t.Fatalf("no CSV downloaded within %v; the folder has %v", uiWait, entries)
		}
		time.Sleep(100 * time.Millisecond)
		b, err := os.ReadFile(filepath.Join(dir, "concord-stats.csv"))
		if err == nil && len(b) > 0 {
			data = b
		}
	}
	lines, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
	if err != nil || len(lines) < 2 {
		t.Fatalf("the downloaded CSV: %v, %d lines", err, len(lines))
	}
	if !slices.Equal(lines[0], stats.CSVHeader) {
		t.Errorf("the downloaded CSV's header is %v, want %v", lines[0], stats.CSVHeader)
	}
	// The export is of the filter shown: the window's cases only.
	for _, l := range lines[1:] {
		if l[0] == "by_channel" && l[2] != "window" && l[2] != "(total)" {
			t.Errorf("the window's export counts channel %q", l[2])
		}
	}
	// seedStats's and the demo's names, claims and terms.
	for _, s := range []string{"Applicant", "Shop ", "A refund", "Refund of 100 yuan", "Wang Fang", "Bright Home", demoCreditCode, "kettle"} {
		if bytes.Contains(data, []byte(s)) {
			t.Errorf("the downloaded CSV holds %q", s)
		}
	}
}

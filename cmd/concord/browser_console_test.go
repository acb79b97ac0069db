package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/concord-odr/concord/cases"
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

// TestBrowserConsoleMerchant: the demo merchant agent signs in on a
// phone, finds the demo complaint in its inbox and makes a counter-offer,
// which the case's reconciliation records; its dashboard draws its bars.
func TestBrowserConsoleMerchant(t *testing.T) {
	browserCtx := startBrowser(t)
	axe := loadAxe(t)
	srv := startTestServer(t)
	demo := srv.Main.Demo
	if demo.ComplaintID == "" {
		t.Fatal("the demo has no complaint")
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

	tb.click(t, `a[href="#dashboard"]`)
	tb.waitJS(t, `document.body.dataset.view === 'dashboard' && document.activeElement.id === 'dashboard-heading'
		&& document.querySelectorAll('#chart-dash-category .chart-item[data-state="value"]').length === 1
		&& document.querySelectorAll('#chart-dash-outcome .chart-item').length >= 1
		&& document.querySelector('#chart-dash-resolve svg') !== null`, uiWait, "draw the dashboard")
	axe.audit(t, tb, "dashboard (phone)")
	tb.fullScreenshot(t, "console-merchant-dashboard-phone.png")
	checkNoPageProblems(t, tabs)
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
// ones and withdrawn product-quality ones; the demo complaint is
// reconciled and the demo case stays open, two cells of one case, which
// the server suppresses.
func seedStats(t *testing.T, srv *testServer) {
	t.Helper()
	ctx := context.Background()
	svc := srv.Main.cases
	closeCase := func(i int, category string, o cases.Outcome) {
		c, _, err := svc.OpenCase(ctx, cases.NewCase{
			InstitutionID: demoInstitutionID, Category: category, Channel: cases.ChannelWindow,
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
	if _, err := svc.MerchantAct(ctx, srv.Main.Demo.ComplaintID, cases.MerchantAction{Kind: cases.ActAcceptClaim, Actor: "test"}); err != nil {
		t.Fatalf("reconciling the demo complaint: %v", err)
	}
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

	charts := []struct {
		id, table, dim, measure string
		skip                    []string
	}{
		{"chart-trend", "by_month", "month", "cases", nil},
		{"chart-outcome", "by_outcome", "outcome", "cases", nil},
		{"chart-close", "by_close_time", "close_time", "cases", []string{"not_closed"}},
		{"chart-rec", "reconciliation_rate", "category", "reconciliation_rate", nil},
	}
	suppressedSeen, valuesSeen := 0, 0
	for _, c := range charts {
		values, suppressed, empty := rep.chartWant(c.table, c.dim, c.measure, c.skip...)
		count := func(state string) int {
			return evalJS[int](t, tb, fmt.Sprintf(`document.querySelectorAll('#%s svg .chart-item[data-state=%q]').length`, c.id, state))
		}
		gv, gs, ge := count("value"), count("suppressed"), count("empty")
		if gv != values || gs != suppressed || ge != empty {
			t.Errorf("%s: drew %d bars, %d suppressed, %d empty; the API's %s has %d, %d, %d", c.id, gv, gs, ge, c.table, values, suppressed, empty)
		}
		if bars := evalJS[int](t, tb, fmt.Sprintf(`document.querySelectorAll('#%s svg rect.chart-bar').length`, c.id)); bars != values {
			t.Errorf("%s: %d bars for %d values", c.id, bars, values)
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
				t.Errorf("%s: a suppressed cell reads %q", c.id, txt)
			}
		}
	}
	if suppressedSeen == 0 || valuesSeen == 0 {
		t.Errorf("the charts drew %d bars and %d suppressed cells; the seeded data has both large and small cells", valuesSeen, suppressedSeen)
	}
	axe.audit(t, tb, "statistics")
	tb.fullScreenshot(t, "console-statistics.png")

	// Filtered to product quality, the outcome mix shows that category's row.
	setValue(t, tb, "#stats-category", "product-quality")
	tb.click(t, `#stats-filters button[type="submit"]`)
	tb.waitJS(t, `document.querySelector('#chart-outcome figcaption').textContent.includes('Product quality')
		&& document.querySelectorAll('#chart-rec .chart-item').length === 1`, uiWait, "filter by category")
	checkNoPageProblems(t, tabs)
}

package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestBrowserAgreement drafts, confirms and signs the mediation agreement
// in real browsers: the mediator starts from the case's template, writes
// the facts and an agreed term and shares the draft with everyone; both
// parties' pages (one a phone) show the same exact text and each confirms
// it; the mediator's Sign button then works, and the API says the
// agreement is final, with both confirmations and the signature.
func TestBrowserAgreement(t *testing.T) {
	step := stepper(t)
	browserCtx := startBrowser(t)
	axe := loadAxe(t)
	srv := startTestServer(t)
	demo := srv.Demo

	med := openTab(t, browserCtx, "mediator", demo.Mediator, false)
	consumer := openTab(t, browserCtx, "consumer", demo.Consumer, true) // on a phone
	merchant := openTab(t, browserCtx, "merchant", demo.Merchant, false)
	tabs := []*tab{med, consumer, merchant}
	dumpOnFailure(t, tabs)

	med.waitState(t, "in-room", joinWait)
	enterRoomWith(t, med, entryQuiet, consumer, merchant)
	step("in the room")

	// The parties see no agreement panel before there is a draft.
	for _, p := range []*tab{consumer, merchant} {
		if !evalJS[bool](t, p, `document.getElementById('agreement-panel').hidden`) {
			t.Errorf("%s: the agreement panel shows before any draft", p.name)
		}
	}

	// The mediator drafts from the template.
	med.click(t, "#agreement-load-template")
	med.waitJS(t, `document.getElementById('agreement-panel').dataset.template === 'loaded'`, uiWait, "load the template")
	const facts = "The consumer bought a kettle that leaks; 消费者购买的水壶漏水。"
	const term = "The merchant refunds the price of the kettle; 商家退还货款。"
	if err := chromedp.Do(med.ctx,
		chromedp.SetValue(chromedp.ID("agreement-facts"), facts),
		chromedp.SetValue(chromedp.ID("agreement-disputed"), "Whether the kettle is defective / 水壶是否存在质量问题"),
		chromedp.SetValue(chromedp.ID("agreement-term-1-text"), term),
		chromedp.SetValue(chromedp.ID("agreement-term-1-obligor"), "respondent"),
		chromedp.SetValue(chromedp.ID("agreement-term-1-amount"), "128.50"),
		chromedp.SetValue(chromedp.ID("agreement-term-1-method"), "bank transfer"),
		chromedp.SetValue(chromedp.ID("agreement-term-1-deadline"), "2030-01-31"),
	); err != nil {
		t.Fatal("mediator: filling in the agreement:", err)
	}
	// In a private meeting the draft is meant for that side by default.
	med.click(t, "#mode-caucus-respondent")
	med.waitJS(t, `document.getElementById('agreement-visible').value === 'respondent'`, uiWait, "default the draft to the respondent in its caucus")
	med.click(t, "#mode-joint")
	med.waitJS(t, `document.getElementById('agreement-visible').value === 'all'`, uiWait, "default the draft to everyone in the joint session")
	med.click(t, "#agreement-save")
	med.waitJS(t, `document.getElementById('agreement-panel').dataset.status === 'draft' && document.getElementById('agreement-text').textContent.includes('商家退还货款')`,
		uiWait, "save the draft and show its text")
	if msg := evalJS[string](t, med, `document.getElementById('agreement-error').textContent`); msg != "" {
		t.Fatalf("mediator: saving the draft: %s", msg)
	}
	step("draft saved")
	medText := evalJS[string](t, med, `document.getElementById('agreement-text').textContent`)
	if !evalJS[bool](t, med, `document.getElementById('agreement-sign').disabled`) {
		t.Error("the Sign button works before the parties confirmed")
	}

	// Both parties see the same text and confirm it.
	for _, p := range []*tab{consumer, merchant} {
		p.waitJS(t, `!document.getElementById('agreement-panel').hidden && document.getElementById('agreement-text').textContent.length > 0`,
			uiWait, "show the shared draft")
		if got := evalJS[string](t, p, `document.getElementById('agreement-text').textContent`); got != medText {
			t.Fatalf("%s sees the agreement text\n%q\nthe mediator's page shows\n%q", p.name, got, medText)
		}
		if ws := evalJS[string](t, p, `getComputedStyle(document.getElementById('agreement-text')).whiteSpace`); ws != "pre-wrap" {
			t.Errorf("%s: the agreement text is laid out with white-space %q, want pre-wrap", p.name, ws)
		}
	}
	if evalJS[bool](t, consumer, `document.getElementById('agreement-text').scrollWidth > document.getElementById('agreement-text').clientWidth + 1`) {
		t.Error("on the phone the agreement text needs horizontal scrolling")
	}
	consumer.screenshot(t, "concord-phone-agreement.png")
	axe.audit(t, consumer, "agreement draft (phone)")
	for i, p := range []*tab{consumer, merchant} {
		p.click(t, "#agreement-confirm")
		p.waitJS(t, `document.getElementById('agreement-confirm').hidden`, uiWait, "take the confirmation")
		if msg := evalJS[string](t, p, `document.getElementById('agreement-action-error').textContent`); msg != "" {
			t.Fatalf("%s: confirming: %s", p.name, msg)
		}
		want := []string{"applicant", "applicant respondent"}[i]
		med.waitJS(t, fmt.Sprintf(`document.getElementById('agreement-panel').dataset.confirmed === %q`, want), uiWait, "show who confirmed: "+want)
	}
	step("both confirmed")
	consumer.screenshot(t, "concord-phone-agreement-confirmed.png")

	// The mediator signs.
	med.waitJS(t, `!document.getElementById('agreement-sign').disabled`, uiWait, "allow signing")
	med.screenshot(t, "concord-mediator-agreement.png")
	axe.audit(t, med, "agreement editor (mediator)")
	med.click(t, "#agreement-sign")
	for _, tb := range tabs {
		tb.waitJS(t, `document.getElementById('agreement-panel').dataset.status === 'final'`, uiWait, "show the agreement final")
	}
	if !evalJS[bool](t, med, `document.getElementById('agreement-editor').hidden`) {
		t.Error("the editor still shows once the agreement is final")
	}
	step("signed")

	// The PDF downloads with the token: the page reports no error.
	merchant.click(t, "#agreement-pdf")
	merchant.waitJS(t, `document.getElementById('agreement-action-error').textContent === ''`, uiWait, "download the PDF")

	var list struct {
		Items []struct {
			ID            string `json:"id"`
			Status        string `json:"status"`
			Text          string `json:"text"`
			Confirmations []struct {
				Side string `json:"side"`
			} `json:"confirmations"`
			Signature *struct {
				Name string `json:"name"`
			} `json:"signature"`
		} `json:"items"`
	}
	if code := getJSON(t, srv.BaseURL+"/api/v1/cases/"+demo.CaseID+"/agreements", srv.MediatorToken, &list); code != http.StatusOK {
		t.Fatalf("GET agreements: status %d", code)
	}
	if len(list.Items) != 1 {
		t.Fatalf("the case has %d agreements, want 1", len(list.Items))
	}
	a := list.Items[0]
	if a.Status != "final" || a.Signature == nil || len(a.Confirmations) != 2 {
		t.Errorf("the agreement is %q, signature %v, %d confirmations; want final, signed, 2", a.Status, a.Signature, len(a.Confirmations))
	}
	if a.Text != medText {
		t.Errorf("the stored text differs from the one the pages showed")
	}
	if !strings.Contains(a.Text, "128.50") && !strings.Contains(a.Text, "128") {
		t.Errorf("the agreement text lacks the amount: %q", a.Text)
	}

	checkNoPageProblems(t, tabs)
}

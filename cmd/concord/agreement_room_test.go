package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"
)

func putJSON(t *testing.T, url, token string, body any) (int, map[string]any) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("PUT", url, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// TestAgreementDraftFollowsCaucus: a draft prepared in a caucus with the
// applicant is announced to the mediator and the applicant only; a draft
// for everyone reaches both sides.
func TestAgreementDraftFollowsCaucus(t *testing.T) {
	ts := startTestServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	med, app, resp := roomOfThree(t, ctx, ts)
	_ = med
	var tmpl map[string]any
	if code := getJSON(t, ts.BaseURL+"/api/v1/cases/"+ts.Demo.CaseID+"/agreements/template", ts.MediatorToken, &tmpl); code != 200 {
		t.Fatalf("template: %d %v", code, tmpl)
	}
	content := tmpl["content"]
	if content == nil {
		content = tmpl
	}
	draftURL := ts.BaseURL + "/api/v1/cases/" + ts.Demo.CaseID + "/agreements/draft"
	code, a := putJSON(t, draftURL, ts.MediatorToken, map[string]any{"content": content, "visibleTo": "applicant", "revision": 0})
	if code != 200 {
		t.Fatalf("caucus draft: %d %v", code, a)
	}
	time.Sleep(300 * time.Millisecond)
	if n := app.count("agreement_updated"); n != 1 {
		t.Fatalf("applicant got %d agreement announcements, want 1", n)
	}
	if n := resp.count("agreement_updated"); n != 0 {
		t.Fatalf("respondent heard of the applicant's caucus draft (%d)", n)
	}
	rev, _ := a["revision"].(float64)
	code, a = putJSON(t, draftURL, ts.MediatorToken, map[string]any{"content": content, "visibleTo": "all", "revision": int(rev)})
	if code != 200 {
		t.Fatalf("joint draft: %d %v", code, a)
	}
	time.Sleep(300 * time.Millisecond)
	if resp.count("agreement_updated") != 1 || app.count("agreement_updated") != 2 {
		t.Fatalf("joint draft announcements: applicant %d, respondent %d", app.count("agreement_updated"), resp.count("agreement_updated"))
	}
}

package web

import (
	"io/fs"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// TestConsolePage: /console is the staff console's page, served with the
// strict Content-Security-Policy, and its modules are served as scripts.
func TestConsolePage(t *testing.T) {
	h := NewHandler(Params{})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/console", nil))
	if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("/console: %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	csp := rec.Header().Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'self'", "script-src 'self'", "style-src 'self'", "object-src 'none'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("/console: CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("/console: weak CSP %q", csp)
	}
	if rec.Header().Get("X-Frame-Options") != "DENY" || rec.Header().Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("/console: missing security headers %v", rec.Header())
	}
	body := rec.Body.String()
	if !strings.Contains(body, `<script type="module" src="/static/console.js">`) {
		t.Errorf("/console does not load console.js")
	}
	for _, src := range []string{"console.js", "console-api.js", "console-queue.js", "console-stats.js", "console-merchant.js", "charts.js"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/static/"+src, nil))
		if rec.Code != 200 || !strings.Contains(rec.Header().Get("Content-Type"), "javascript") {
			t.Errorf("/static/%s: %d %s", src, rec.Code, rec.Header().Get("Content-Type"))
		}
	}
}

// TestConsoleNeedsNoInlineCode: the console's page has no inline script
// or style, and its scripts set no style attribute, which the CSP would
// refuse.
func TestConsoleNeedsNoInlineCode(t *testing.T) {
	static, _ := fs.Sub(staticFiles, "static")
	html, err := fs.ReadFile(static, "console.html")
	if err != nil {
		t.Fatal(err)
	}
	inlineScript := regexp.MustCompile(`<script(?:\s[^>]*)?>\s*[^<\s]`)
	if inlineScript.Match(html) || regexp.MustCompile(`(?i)\sstyle=|<style|\son[a-z]+=`).Match(html) {
		t.Error("console.html has inline script, style or event handler")
	}
	styleSet := regexp.MustCompile(`\.style\b|setAttribute\(\s*['"]style|innerHTML|\beval\(|new Function`)
	for _, name := range []string{"console.js", "console-api.js", "console-queue.js", "console-stats.js", "console-merchant.js", "charts.js"} {
		b, err := fs.ReadFile(static, name)
		if err != nil {
			t.Fatal(err)
		}
		if loc := styleSet.FindIndex(b); loc != nil {
			t.Errorf("%s sets a style or builds code from text: %q", name, b[loc[0]:loc[1]])
		}
	}
}

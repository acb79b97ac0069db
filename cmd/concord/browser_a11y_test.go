package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The accessibility audit runs axe-core (from the npm registry, installed
// into a temporary folder by the test; nothing is vendored) in the pages
// of the browser tests. Its source is evaluated through DevTools, which
// the page's Content-Security-Policy does not govern. Violations of impact
// "serious" or "critical" fail the test.
//
// CONCORD_AXE_JS may name a local axe.min.js instead. Without npm or the
// registry the audit is skipped, unless CI is set.

// axeVersion is the axe-core major version the audit expects.
const axeVersion = "axe-core@4"

type axeAuditor struct {
	done chan struct{}
	src  string
	err  error

	warnOnce sync.Once
}

var (
	axeOnce   sync.Once
	axeShared *axeAuditor
)

// loadAxe starts fetching axe-core (once per test binary) and returns the
// auditor; audits wait for the fetch.
func loadAxe(t *testing.T) *axeAuditor {
	t.Helper()
	axeOnce.Do(func() {
		axeShared = &axeAuditor{done: make(chan struct{})}
		go func() {
			defer close(axeShared.done)
			axeShared.src, axeShared.err = fetchAxe()
		}()
	})
	return axeShared
}

// axeFor returns the shared auditor.
func axeFor(t *testing.T) *axeAuditor { return loadAxe(t) }

func fetchAxe() (string, error) {
	if p := os.Getenv("CONCORD_AXE_JS"); p != "" {
		b, err := os.ReadFile(p)
		return string(b), err
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return "", fmt.Errorf("npm is not installed: %w", err)
	}
	dir, err := os.MkdirTemp("", "concord-axe-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 80*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "install", "--prefix", dir, "--no-audit", "--no-fund", "--no-save",
		"--no-package-lock", "--loglevel=error", axeVersion)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("npm install %s: %v: %s", axeVersion, err, strings.TrimSpace(string(out)))
	}
	b, err := os.ReadFile(filepath.Join(dir, "node_modules", "axe-core", "axe.min.js"))
	if err != nil {
		return "", fmt.Errorf("reading axe-core: %w", err)
	}
	return string(b), nil
}

// axeViolation is one failed rule with a few of its nodes.
type axeViolation struct {
	ID     string   `json:"id"`
	Impact string   `json:"impact"`
	Help   string   `json:"help"`
	Nodes  []string `json:"nodes"`
}

const axeRunJS = `(async () => {
	const r = await axe.run(document, { resultTypes: ['violations'] });
	return r.violations
		.filter((v) => v.impact === 'serious' || v.impact === 'critical')
		.map((v) => ({
			id: v.id, impact: v.impact, help: v.help,
			nodes: v.nodes.slice(0, 6).map((n) => n.target.join(' ') + ' — ' + String(n.failureSummary || '').replace(/\s+/g, ' ').slice(0, 400)),
		}));
})()`

// audit runs axe-core on the page as it is now and fails the test on
// serious or critical violations.
func (a *axeAuditor) audit(t *testing.T, tb *tab, screen string) {
	t.Helper()
	var unavailable error
	select {
	case <-a.done:
		unavailable = a.err
	case <-time.After(90 * time.Second):
		unavailable = fmt.Errorf("axe-core did not arrive in time")
	}
	if unavailable != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("accessibility audit: axe-core is unavailable and CI needs it: %v", unavailable)
		}
		a.warnOnce.Do(func() { t.Logf("skipping the accessibility audits: %v", unavailable) })
		return
	}
	ctx, cancel := context.WithTimeout(tb.ctx, 60*time.Second)
	defer cancel()
	loaded, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`typeof window.axe === 'object' && typeof window.axe.run === 'function'`))
	if err != nil {
		t.Fatalf("%s: checking for axe-core: %v", tb.name, err)
	}
	if !loaded {
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](a.src)); err != nil {
			t.Fatalf("%s: loading axe-core: %v", tb.name, err)
		}
	}
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](axeRunJS, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("%s: running axe-core on the %s screen: %v", tb.name, screen, err)
	}
	var vs []axeViolation
	if err := json.Unmarshal(raw, &vs); err != nil {
		t.Fatalf("%s: decoding axe-core's answer: %v", tb.name, err)
	}
	for _, v := range vs {
		t.Errorf("%s page, %s screen: accessibility (%s) %s: %s\n    %s", tb.name, screen, v.Impact, v.ID, v.Help, strings.Join(v.Nodes, "\n    "))
	}
}

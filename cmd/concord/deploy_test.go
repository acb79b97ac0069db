package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDeployKitNamesKnownSettings: every CONCORD_ variable the deployment
// kit and the READMEs name is a setting of the server, since an unknown
// one stops it at start, and every setting is in the configuration
// reference.
func TestDeployKitNamesKnownSettings(t *testing.T) {
	known := map[string]bool{}
	var c Config
	for _, s := range c.settings() {
		known[s.env] = true
	}
	name := regexp.MustCompile(`CONCORD_[A-Z0-9_]*[A-Z0-9]`)
	files := []string{"../../README.md"}
	err := filepath.WalkDir("../../deploy", func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 5 {
		t.Fatalf("found only %v", files)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range name.FindAllString(string(b), -1) {
			if !known[n] && !strings.HasPrefix(n, "CONCORD_TEST_") {
				t.Errorf("%s names %s, which is not a setting (the server would refuse to start)", f, n)
			}
		}
	}
	ref, err := os.ReadFile("../../deploy/README.md")
	if err != nil {
		t.Fatal(err)
	}
	for n := range known {
		if !strings.Contains(string(ref), "| `"+n+"` |") {
			t.Errorf("deploy/README.md's configuration reference does not list %s", n)
		}
	}
}

package rules_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/concord-odr/concord/cases/calendar"
	"github.com/concord-odr/concord/cases/rules"
)

func day(t *testing.T, s string) calendar.Date {
	t.Helper()
	d, err := calendar.ParseDate(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestInForce(t *testing.T) {
	b, err := rules.Embedded()
	if err != nil {
		t.Fatalf("Embedded: %v", err)
	}
	for _, tt := range []struct{ day, want string }{
		{"2020-01-01", "consumer-2024"},
		{"2026-04-14", "consumer-2024"},
		{"2026-04-15", "consumer-2026-04"},
		{"2030-01-01", "consumer-2026-04"},
	} {
		if got := b.InForce(day(t, tt.day)); got.ID != tt.want {
			t.Errorf("InForce(%s) = %s, want %s", tt.day, got.ID, tt.want)
		}
	}
	old, _ := b.Get("consumer-2024")
	cur, _ := b.Get("consumer-2026-04")
	if old.ReconciliationDays == cur.ReconciliationDays {
		t.Error("the 2026-04-15 rules should change the reconciliation deadline")
	}
	if _, ok := old.RejectReason("duplicate_application"); ok {
		t.Error("the old rules know a reason introduced on 2026-04-15")
	}
	if r, ok := cur.RejectReason("duplicate_application"); !ok || r.Label == "" {
		t.Error("the current rules lack duplicate_application")
	}
}

func TestLoadOverride(t *testing.T) {
	dir := t.TempDir()
	doc := `{"id":"consumer-2024","name":"patched","effectiveFrom":"2024-01-01","respondentContactDays":5,
		"reconciliationDays":10,"confirmationWindowDays":30,"rejectReasons":[{"code":"other","label":"other"}]}`
	if err := os.WriteFile(filepath.Join(dir, "consumer-2024.json"), []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := rules.Load(dir)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if r, _ := b.Get("consumer-2024"); r.RespondentContactDays != 5 || len(b.All()) != 2 {
		t.Fatalf("override not applied: %+v", r)
	}
	if err := os.WriteFile(filepath.Join(dir, "misnamed.json"), []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := rules.Load(dir); err == nil {
		t.Fatal("Load accepted a file named after another id")
	}
}

func TestParseRejects(t *testing.T) {
	good := func() map[string]string {
		return map[string]string{
			"id": `"x"`, "name": `"x"`, "effectiveFrom": `"2027-01-01"`, "respondentContactDays": `3`,
			"reconciliationDays": `7`, "confirmationWindowDays": `30`, "rejectReasons": `[{"code":"other","label":"o"}]`,
		}
	}
	encode := func(m map[string]string) []byte {
		s := "{"
		for k, v := range m {
			if len(s) > 1 {
				s += ","
			}
			s += `"` + k + `":` + v
		}
		return []byte(s + "}")
	}
	if _, err := rules.Parse(encode(good())); err != nil {
		t.Fatalf("valid rule set: %v", err)
	}
	for name, change := range map[string]func(map[string]string){
		"unknown field": func(m map[string]string) { m["extra"] = "1" },
		"bad id":        func(m map[string]string) { m["id"] = `"Bad Id"` },
		"bad date":      func(m map[string]string) { m["effectiveFrom"] = `"2027-13-01"` },
		"zero days":     func(m map[string]string) { m["respondentContactDays"] = `0` },
		"no reasons":    func(m map[string]string) { m["rejectReasons"] = `[]` },
		"dup reasons":   func(m map[string]string) { m["rejectReasons"] = `[{"code":"a","label":"a"},{"code":"a","label":"b"}]` },
		"bad code":      func(m map[string]string) { m["rejectReasons"] = `[{"code":"Not OK","label":"a"}]` },
	} {
		m := good()
		change(m)
		if _, err := rules.Parse(encode(m)); err == nil {
			t.Errorf("%s: Parse succeeded", name)
		}
	}
}

// FuzzParse checks that no input crashes the rule set decoder and that an
// accepted rule set makes a book.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"id":"x","name":"x","effectiveFrom":"2027-01-01","respondentContactDays":3,"reconciliationDays":7,"confirmationWindowDays":30,"rejectReasons":[{"code":"other","label":"o"}]}`))
	f.Add([]byte(`{"id":"Bad"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := rules.Parse(b)
		if err != nil {
			return
		}
		if _, err := rules.New(r); err != nil {
			t.Fatalf("a parsed rule set does not make a book: %v", err)
		}
	})
}

package calendar_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/concord-odr/concord/cases/calendar"
)

func date(t *testing.T, s string) calendar.Date {
	t.Helper()
	d, err := calendar.ParseDate(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestEmbedded(t *testing.T) {
	c, err := calendar.Embedded()
	if err != nil {
		t.Fatalf("Embedded: %v", err)
	}
	for _, y := range []int{2025, 2026} {
		if !c.Covers(y) {
			t.Errorf("embedded calendar lacks %d", y)
		}
	}
	for _, tt := range []struct {
		day  string
		work bool
	}{
		{"2026-01-01", false}, // 元旦, Thursday
		{"2026-01-04", true},  // make-up Sunday
		{"2026-02-14", true},  // make-up Saturday before 春节
		{"2026-02-16", false}, // 春节 Monday
		{"2026-02-23", false}, // last day of 春节
		{"2026-02-24", true},
		{"2026-02-28", true}, // make-up Saturday after 春节
		{"2026-04-06", false},
		{"2026-04-07", true},
		{"2026-04-11", false}, // an ordinary Saturday
		{"2026-05-09", true},
		{"2026-09-20", true},
		{"2026-10-07", false},
		{"2026-10-10", true},
		{"2025-01-26", true},
		{"2025-10-08", false},
	} {
		work, known := c.IsWorkday(date(t, tt.day))
		if work != tt.work || !known {
			t.Errorf("IsWorkday(%s) = %v, %v; want %v, true", tt.day, work, known, tt.work)
		}
	}
}

func TestAddWorkdays(t *testing.T) {
	c, err := calendar.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		from string
		n    int
		want string
	}{
		{"2026-04-08", 3, "2026-04-13"}, // Wednesday: Thu, Fri, Mon
		{"2026-04-10", 3, "2026-04-15"}, // Friday
		{"2026-04-02", 3, "2026-04-08"}, // over 清明: Fri 3, Tue 7, Wed 8
		{"2026-02-12", 3, "2026-02-24"}, // Thu: Fri 13, make-up Sat 14, then 春节 until the 23rd
		{"2026-09-30", 3, "2026-10-10"}, // Wed: 国庆 until the 7th, Thu 8, Fri 9, make-up Sat 10
		{"2026-12-31", 1, "2027-01-01"}, // 2027 is unknown: weekends only
	} {
		got, exact := c.AddWorkdays(date(t, tt.from), tt.n)
		if got.String() != tt.want {
			t.Errorf("AddWorkdays(%s, %d) = %s, want %s", tt.from, tt.n, got, tt.want)
		}
		if wantExact := !strings.HasPrefix(tt.want, "2027"); exact != wantExact {
			t.Errorf("AddWorkdays(%s, %d): exact = %v, want %v", tt.from, tt.n, exact, wantExact)
		}
	}
}

func TestDateOf(t *testing.T) {
	// 17:30 UTC is already the next day in China.
	got := calendar.DateOf(time.Date(2026, 4, 14, 17, 30, 0, 0, time.UTC))
	if got.String() != "2026-04-15" {
		t.Fatalf("DateOf = %s", got)
	}
	if s := got.Start(); !s.Equal(time.Date(2026, 4, 14, 16, 0, 0, 0, time.UTC)) {
		t.Fatalf("Start = %v", s)
	}
	for _, bad := range []string{"2026-02-30", "2026-4-1", "", "2026-04-01T00:00:00Z"} {
		if _, err := calendar.ParseDate(bad); err == nil {
			t.Errorf("ParseDate(%q) succeeded", bad)
		}
	}
}

func TestParseYearRejects(t *testing.T) {
	for name, doc := range map[string]string{
		"unknown field":     `{"year":2027,"holidays":[],"workdays":[],"extra":1}`,
		"other year":        `{"year":2027,"holidays":[{"name":"x","from":"2026-01-01","to":"2026-01-01"}],"workdays":[]}`,
		"weekday make-up":   `{"year":2027,"holidays":[],"workdays":["2027-01-04"]}`,
		"bad date":          `{"year":2027,"holidays":[{"name":"x","from":"2027-02-30","to":"2027-03-01"}],"workdays":[]}`,
		"reversed":          `{"year":2027,"holidays":[{"name":"x","from":"2027-02-03","to":"2027-02-01"}],"workdays":[]}`,
		"overlap":           `{"year":2027,"holidays":[{"name":"x","from":"2027-02-01","to":"2027-02-03"},{"name":"y","from":"2027-02-03","to":"2027-02-04"}],"workdays":[]}`,
		"make-up in a gap":  `{"year":2027,"holidays":[{"name":"x","from":"2027-02-05","to":"2027-02-08"}],"workdays":["2027-02-06"]}`,
		"trailing document": `{"year":2027,"holidays":[],"workdays":[]} {}`,
	} {
		if _, err := calendar.ParseYear([]byte(doc)); err == nil {
			t.Errorf("%s: ParseYear succeeded", name)
		}
	}
}

func TestLoadOverrides(t *testing.T) {
	dir := t.TempDir()
	// The operator adds 2027 (a made-up arrangement) and replaces 2026
	// with a year that has no holidays.
	write := func(name, doc string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("2027.json", `{"year":2027,"holidays":[{"name":"元旦","from":"2027-01-01","to":"2027-01-03"}],"workdays":[]}`)
	write("2026.json", `{"year":2026,"holidays":[],"workdays":[]}`)
	write("README.txt", "ignored")
	c, err := calendar.Load(dir)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if work, known := c.IsWorkday(date(t, "2027-01-01")); work || !known {
		t.Errorf("2027-01-01: %v %v", work, known)
	}
	if work, _ := c.IsWorkday(date(t, "2026-01-01")); !work {
		t.Error("the operator's 2026 did not replace the embedded one")
	}
	if got := c.Years(); len(got) != 3 || got[0] != 2025 || got[2] != 2027 {
		t.Errorf("Years = %v", got)
	}

	write("2028.json", `{"year":2029,"holidays":[],"workdays":[]}`)
	if _, err := calendar.Load(dir); err == nil {
		t.Error("Load accepted a file whose year differs from its name")
	}
	if _, err := calendar.Load(filepath.Join(dir, "missing")); err == nil {
		t.Error("Load accepted a missing folder")
	}
}

// FuzzParseYear checks that no input crashes the year decoder and that
// an accepted year builds a calendar.
func FuzzParseYear(f *testing.F) {
	f.Add([]byte(`{"year":2026,"holidays":[{"name":"元旦","from":"2026-01-01","to":"2026-01-03"}],"workdays":["2026-01-04"]}`))
	f.Add([]byte(`{"year":2027,"holidays":[],"workdays":[]}`))
	f.Add([]byte(`{"year":99999}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		y, err := calendar.ParseYear(b)
		if err != nil {
			return
		}
		if _, err := calendar.New(y); err != nil {
			t.Fatalf("a parsed year does not build: %v", err)
		}
	})
}

// Package calendar knows which days are working days in mainland China:
// Monday to Friday, except the public holidays, plus the make-up working
// days (调休) that fall on a weekend. Each year's arrangement is published
// by the State Council's General Office late in the year before; it is
// kept as one JSON file per year.
//
// The files of the years known when Concord was built are embedded (see
// data/). An operator adds a year, or corrects one, by putting a file
// named YYYY.json in a folder given to Load; a file there replaces the
// embedded file of the same year.
package calendar

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"time"
)

//go:embed data/*.json
var dataFiles embed.FS

// zone is China Standard Time: UTC+8 all year, without daylight saving.
var zone = time.FixedZone("CST", 8*3600)

// Zone returns the time zone in which days are counted (UTC+8).
func Zone() *time.Location { return zone }

// Date is a day of the civil calendar, without a time or a zone.
type Date struct {
	Year  int
	Month time.Month
	Day   int
}

// DateOf returns the day t falls on in China.
func DateOf(t time.Time) Date {
	y, m, d := t.In(zone).Date()
	return Date{y, m, d}
}

// ParseDate parses YYYY-MM-DD, refusing impossible dates such as
// 2026-02-30.
func ParseDate(s string) (Date, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return Date{}, fmt.Errorf("%q is not a date in the form YYYY-MM-DD", s)
	}
	y, m, d := t.Date()
	return Date{y, m, d}, nil
}

// String returns the date as YYYY-MM-DD.
func (d Date) String() string { return fmt.Sprintf("%04d-%02d-%02d", d.Year, d.Month, d.Day) }

// Start returns the first instant of the day in China.
func (d Date) Start() time.Time { return time.Date(d.Year, d.Month, d.Day, 0, 0, 0, 0, zone) }

// AddDays returns the date n calendar days later (earlier when n < 0).
func (d Date) AddDays(n int) Date {
	y, m, dd := time.Date(d.Year, d.Month, d.Day+n, 12, 0, 0, 0, time.UTC).Date()
	return Date{y, m, dd}
}

// Weekday returns the day of the week.
func (d Date) Weekday() time.Weekday {
	return time.Date(d.Year, d.Month, d.Day, 12, 0, 0, 0, time.UTC).Weekday()
}

// Before reports whether d is earlier than o.
func (d Date) Before(o Date) bool { return d.Start().Before(o.Start()) }

// Holiday is one public holiday period, its days inclusive.
type Holiday struct {
	Name string `json:"name"`
	From string `json:"from"`
	To   string `json:"to"`
}

// Year is one year's file: the days off of each holiday (weekend days
// inside a holiday included) and the make-up working days.
type Year struct {
	Year     int       `json:"year"`
	Source   string    `json:"source,omitempty"`
	Holidays []Holiday `json:"holidays"`
	Workdays []string  `json:"workdays"`
}

// year is a parsed Year.
type year struct {
	off map[Date]string // day off -> holiday name
	on  map[Date]bool   // make-up working days
}

// Calendar answers whether a day is a working day. It is immutable and
// safe for concurrent use.
type Calendar struct {
	years map[int]year
}

// ParseYear decodes and checks one year's file: every date lies in the
// year, make-up working days fall on a weekend and outside holidays.
func ParseYear(b []byte) (Year, error) {
	var y Year
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&y); err != nil {
		return Year{}, fmt.Errorf("calendar: %w", err)
	}
	if dec.Decode(&struct{}{}) != io.EOF {
		return Year{}, errors.New("calendar: trailing data after the year object")
	}
	if _, err := y.parse(); err != nil {
		return Year{}, err
	}
	return y, nil
}

func (y Year) parse() (year, error) {
	if y.Year < 2000 || y.Year > 2200 {
		return year{}, fmt.Errorf("calendar: year %d out of range", y.Year)
	}
	p := year{off: map[Date]string{}, on: map[Date]bool{}}
	date := func(s, what string) (Date, error) {
		d, err := ParseDate(s)
		if err != nil {
			return Date{}, fmt.Errorf("calendar %d: %s: %w", y.Year, what, err)
		}
		if d.Year != y.Year {
			return Date{}, fmt.Errorf("calendar %d: %s %s is not in %d", y.Year, what, s, y.Year)
		}
		return d, nil
	}
	for _, h := range y.Holidays {
		if h.Name == "" {
			return year{}, fmt.Errorf("calendar %d: a holiday has no name", y.Year)
		}
		from, err := date(h.From, h.Name+" from")
		if err != nil {
			return year{}, err
		}
		to, err := date(h.To, h.Name+" to")
		if err != nil {
			return year{}, err
		}
		if to.Before(from) {
			return year{}, fmt.Errorf("calendar %d: %s ends before it starts", y.Year, h.Name)
		}
		for d := from; !to.Before(d); d = d.AddDays(1) {
			if other, ok := p.off[d]; ok {
				return year{}, fmt.Errorf("calendar %d: %s is in both %s and %s", y.Year, d, other, h.Name)
			}
			p.off[d] = h.Name
		}
	}
	for _, s := range y.Workdays {
		d, err := date(s, "make-up working day")
		if err != nil {
			return year{}, err
		}
		if wd := d.Weekday(); wd != time.Saturday && wd != time.Sunday {
			return year{}, fmt.Errorf("calendar %d: make-up working day %s is a %s, not a weekend day", y.Year, d, wd)
		}
		if name, ok := p.off[d]; ok {
			return year{}, fmt.Errorf("calendar %d: %s is both a working day and in %s", y.Year, d, name)
		}
		p.on[d] = true
	}
	return p, nil
}

// New returns a calendar of the given years; a later Year replaces an
// earlier one of the same number.
func New(years ...Year) (*Calendar, error) {
	c := &Calendar{years: map[int]year{}}
	for _, y := range years {
		p, err := y.parse()
		if err != nil {
			return nil, err
		}
		c.years[y.Year] = p
	}
	return c, nil
}

var fileName = regexp.MustCompile(`^[0-9]{4}\.json$`)

// readDir parses the YYYY.json files of fsys, checking that each file's
// year matches its name.
func readDir(fsys fs.FS) ([]Year, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("calendar: %w", err)
	}
	var years []Year
	for _, e := range entries {
		if e.IsDir() || !fileName.MatchString(e.Name()) {
			continue
		}
		b, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("calendar: %w", err)
		}
		y, err := ParseYear(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", e.Name(), err)
		}
		if want, _ := strconv.Atoi(e.Name()[:4]); y.Year != want {
			return nil, fmt.Errorf("calendar: %s holds year %d", e.Name(), y.Year)
		}
		years = append(years, y)
	}
	return years, nil
}

// Embedded returns the calendar of the years built into Concord.
func Embedded() (*Calendar, error) {
	sub, err := fs.Sub(dataFiles, "data")
	if err != nil {
		return nil, fmt.Errorf("calendar: %w", err)
	}
	years, err := readDir(sub)
	if err != nil {
		return nil, err
	}
	return New(years...)
}

// Load returns the embedded calendar with the YYYY.json files of dir
// added; a file in dir replaces the embedded year of the same number. An
// empty dir loads the embedded years only; a dir that does not exist is
// an error.
func Load(dir string) (*Calendar, error) {
	sub, err := fs.Sub(dataFiles, "data")
	if err != nil {
		return nil, fmt.Errorf("calendar: %w", err)
	}
	years, err := readDir(sub)
	if err != nil {
		return nil, err
	}
	if dir != "" {
		extra, err := readDir(os.DirFS(filepath.Clean(dir)))
		if err != nil {
			return nil, err
		}
		years = append(years, extra...)
	}
	return New(years...)
}

// Years lists the years the calendar knows, in order.
func (c *Calendar) Years() []int {
	ys := make([]int, 0, len(c.years))
	for y := range c.years {
		ys = append(ys, y)
	}
	sort.Ints(ys)
	return ys
}

// Covers reports whether the calendar has the given year's file.
func (c *Calendar) Covers(y int) bool {
	_, ok := c.years[y]
	return ok
}

// IsWorkday reports whether d is a working day. known is false when the
// calendar lacks d's year; the answer then counts weekends only.
func (c *Calendar) IsWorkday(d Date) (work, known bool) {
	y, known := c.years[d.Year]
	if known {
		if y.on[d] {
			return true, true
		}
		if _, off := y.off[d]; off {
			return false, true
		}
	}
	wd := d.Weekday()
	return wd != time.Saturday && wd != time.Sunday, known
}

// AddWorkdays returns the n-th working day after d (d itself not
// counted); n must be at least 1. exact is false when a year the count
// went through is missing from the calendar, so that only weekends were
// skipped there.
func (c *Calendar) AddWorkdays(d Date, n int) (due Date, exact bool) {
	exact = true
	due = d
	for n > 0 {
		due = due.AddDays(1)
		work, known := c.IsWorkday(due)
		exact = exact && known
		if work {
			n--
		}
	}
	return due, exact
}

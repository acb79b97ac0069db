// Package rules holds the rule sets cases are handled by: deadlines in
// working days and the reason codes staff choose from. Rules change on a
// given date; a case keeps the rule set that was in force on the day it
// was opened, so a change never moves the deadlines of earlier cases.
//
// The rule sets known when Concord was built are embedded (see data/).
// Their numbers and codes are Concord's defaults for consumer disputes;
// an operator checks them against the measures their platform works
// under and adds or replaces a rule set by putting an ID.json file in a
// folder given to Load (a file with the id of an embedded set replaces
// it).
package rules

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
	"strings"

	"github.com/concord-odr/concord/cases/calendar"
)

//go:embed data/*.json
var dataFiles embed.FS

// Reason is one reason code and the label shown to the applicant.
type Reason struct {
	Code  string `json:"code"`
	Label string `json:"label"`
}

// RuleSet is the rules in force from one date until the next set's.
type RuleSet struct {
	ID            string `json:"id"`
	Name          string `json:"name"`
	EffectiveFrom string `json:"effectiveFrom"` // YYYY-MM-DD, in China
	// RespondentContactDays is how many working days after dispatch the
	// institution has to contact the respondent.
	RespondentContactDays int `json:"respondentContactDays"`
	// ReconciliationDays is how many working days an ODR enterprise has
	// to settle a complaint directly before it goes to an institution.
	ReconciliationDays int `json:"reconciliationDays"`
	// ConfirmationWindowDays is how many calendar days after a settlement
	// the parties may request its confirmation by a court or an
	// arbitration body.
	ConfirmationWindowDays int `json:"confirmationWindowDays"`
	// RejectReasons are the codes a rejection must give.
	RejectReasons []Reason `json:"rejectReasons"`

	from calendar.Date
}

// RejectReason returns the reason with the given code.
func (r *RuleSet) RejectReason(code string) (Reason, bool) {
	for _, x := range r.RejectReasons {
		if x.Code == code {
			return x, true
		}
	}
	return Reason{}, false
}

var (
	idPattern   = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,63}$`)
	codePattern = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)
)

// Parse decodes and checks one rule set.
func Parse(b []byte) (*RuleSet, error) {
	var r RuleSet
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	if dec.Decode(&struct{}{}) != io.EOF {
		return nil, errors.New("rules: trailing data after the rule set")
	}
	if err := r.check(); err != nil {
		return nil, err
	}
	return &r, nil
}

func (r *RuleSet) check() error {
	if !idPattern.MatchString(r.ID) {
		return fmt.Errorf("rules: id %q must be lower-case letters, digits and dashes", r.ID)
	}
	d, err := calendar.ParseDate(r.EffectiveFrom)
	if err != nil {
		return fmt.Errorf("rules %s: effectiveFrom: %w", r.ID, err)
	}
	r.from = d
	for name, n := range map[string]int{
		"respondentContactDays":  r.RespondentContactDays,
		"reconciliationDays":     r.ReconciliationDays,
		"confirmationWindowDays": r.ConfirmationWindowDays,
	} {
		if n < 1 || n > 366 {
			return fmt.Errorf("rules %s: %s must be between 1 and 366", r.ID, name)
		}
	}
	if len(r.RejectReasons) == 0 {
		return fmt.Errorf("rules %s: no reject reasons", r.ID)
	}
	seen := map[string]bool{}
	for _, x := range r.RejectReasons {
		if !codePattern.MatchString(x.Code) || strings.TrimSpace(x.Label) == "" {
			return fmt.Errorf("rules %s: reject reason %q needs a snake_case code and a label", r.ID, x.Code)
		}
		if seen[x.Code] {
			return fmt.Errorf("rules %s: reject reason %q listed twice", r.ID, x.Code)
		}
		seen[x.Code] = true
	}
	return nil
}

// Book is every known rule set. It is immutable and safe for concurrent
// use.
type Book struct {
	sets []*RuleSet // by EffectiveFrom
}

// New returns a book of the given rule sets; a later set replaces an
// earlier one with the same id. Two sets may not take effect on the same
// day.
func New(sets ...*RuleSet) (*Book, error) {
	byID := map[string]*RuleSet{}
	for _, r := range sets {
		c := *r
		c.RejectReasons = append([]Reason(nil), r.RejectReasons...)
		if err := c.check(); err != nil {
			return nil, err
		}
		byID[c.ID] = &c
	}
	b := &Book{}
	for _, r := range byID {
		b.sets = append(b.sets, r)
	}
	sort.Slice(b.sets, func(i, j int) bool { return b.sets[i].from.Before(b.sets[j].from) })
	for i := 1; i < len(b.sets); i++ {
		if b.sets[i].from == b.sets[i-1].from {
			return nil, fmt.Errorf("rules: %s and %s take effect on the same day", b.sets[i-1].ID, b.sets[i].ID)
		}
	}
	if len(b.sets) == 0 {
		return nil, errors.New("rules: no rule set")
	}
	return b, nil
}

func readDir(fsys fs.FS) ([]*RuleSet, error) {
	names, err := fs.Glob(fsys, "*.json")
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	var sets []*RuleSet
	for _, name := range names {
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("rules: %w", err)
		}
		r, err := Parse(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if r.ID+".json" != name {
			return nil, fmt.Errorf("rules: %s holds rule set %q", name, r.ID)
		}
		sets = append(sets, r)
	}
	return sets, nil
}

// Embedded returns the book of the rule sets built into Concord.
func Embedded() (*Book, error) { return Load("") }

// Load returns the embedded rule sets with the ID.json files of dir
// added or replacing embedded ones. An empty dir loads the embedded sets
// only.
func Load(dir string) (*Book, error) {
	sub, err := fs.Sub(dataFiles, "data")
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	sets, err := readDir(sub)
	if err != nil {
		return nil, err
	}
	if dir != "" {
		extra, err := readDir(os.DirFS(filepath.Clean(dir)))
		if err != nil {
			return nil, err
		}
		sets = append(sets, extra...)
	}
	return New(sets...)
}

// InForce returns the rule set in force on day d: the one with the
// latest EffectiveFrom not after d. Before the first set, the first set
// applies.
func (b *Book) InForce(d calendar.Date) *RuleSet {
	in := b.sets[0]
	for _, r := range b.sets[1:] {
		if d.Before(r.from) {
			break
		}
		in = r
	}
	return in
}

// Get returns the rule set with the given id.
func (b *Book) Get(id string) (*RuleSet, bool) {
	for _, r := range b.sets {
		if r.ID == id {
			return r, true
		}
	}
	return nil, false
}

// All returns the rule sets, oldest first.
func (b *Book) All() []*RuleSet { return append([]*RuleSet(nil), b.sets...) }

package rooms

import (
	"go/build"
	"slices"
	"strings"
	"testing"
)

var (
	med  = Participant{ID: "m", Name: "Mediator", Role: Mediator, Side: Neutral}
	cons = Participant{ID: "c", Name: "Consumer", Role: Party, Side: Applicant}
	rel  = Participant{ID: "r", Name: "Relative", Role: Party, Side: Applicant}
	merc = Participant{ID: "x", Name: "Merchant", Role: Party, Side: Respondent}
)

func mustJoin(t *testing.T, r *Room, ps ...Participant) {
	t.Helper()
	for _, p := range ps {
		if _, err := r.Join(p); err != nil {
			t.Fatal(err)
		}
	}
}

func TestMayReceive(t *testing.T) {
	tests := []struct {
		name     string
		mode     Mode
		sub, pub string
		want     bool
	}{
		{"joint: party hears mediator", Joint, "c", "m", true},
		{"joint: party hears other side", Joint, "c", "x", true},
		{"joint: not self", Joint, "c", "c", false},
		{"joint: unknown subscriber", Joint, "nobody", "m", false},
		{"joint: unknown publisher", Joint, "c", "nobody", false},
		{"caucus A: mediator hears applicant", Mode{Caucus: true, Side: Applicant}, "m", "c", true},
		{"caucus A: applicant hears mediator", Mode{Caucus: true, Side: Applicant}, "c", "m", true},
		{"caucus A: respondent does not hear mediator", Mode{Caucus: true, Side: Applicant}, "x", "m", false},
		{"caucus A: respondent does not hear applicant", Mode{Caucus: true, Side: Applicant}, "x", "c", false},
		{"caucus A: applicant does not hear respondent", Mode{Caucus: true, Side: Applicant}, "c", "x", false},
		{"caucus A: mediator does not hear respondent", Mode{Caucus: true, Side: Applicant}, "m", "x", false},
		{"caucus A: two applicants hear each other", Mode{Caucus: true, Side: Applicant}, "c", "r", true},
		{"caucus B: applicants waiting hear each other", Mode{Caucus: true, Side: Respondent}, "c", "r", true},
		{"caucus B: waiting applicant does not hear mediator", Mode{Caucus: true, Side: Respondent}, "c", "m", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := New()
			mustJoin(t, r, med, cons, rel, merc)
			if _, err := r.SetMode(tt.mode); err != nil {
				t.Fatal(err)
			}
			if got := r.MayReceive(tt.sub, tt.pub); got != tt.want {
				t.Fatalf("MayReceive(%s, %s) = %v, want %v", tt.sub, tt.pub, got, tt.want)
			}
		})
	}
}

func TestJoinLeaveChanges(t *testing.T) {
	r := New()
	ch, err := r.Join(med)
	if err != nil || len(ch) != 0 {
		t.Fatalf("first join: %v %v", ch, err)
	}
	ch, _ = r.Join(cons)
	want := []Change{{"m", "c", true}, {"c", "m", true}}
	if !slices.Equal(ch, want) {
		t.Fatalf("second join changes = %v, want %v", ch, want)
	}
	ch, _ = r.Leave("c")
	want = []Change{{"m", "c", false}, {"c", "m", false}}
	if !slices.Equal(ch, want) {
		t.Fatalf("leave changes = %v, want %v", ch, want)
	}
	if r.MayReceive("m", "c") {
		t.Fatal("absent participant still received")
	}
	if _, err := r.Leave("ghost"); err != ErrUnknownParticipant {
		t.Fatalf("leave unknown = %v", err)
	}
}

func TestModeChangesAreExact(t *testing.T) {
	r := New()
	mustJoin(t, r, med, cons, merc)
	ch, err := r.SetMode(Mode{Caucus: true, Side: Applicant})
	if err != nil {
		t.Fatal(err)
	}
	// Caucus with the applicant closes every pair that involves the merchant.
	for _, c := range ch {
		if c.Allow || (c.Subscriber != "x" && c.Publisher != "x") {
			t.Fatalf("unexpected change %v", c)
		}
	}
	if len(ch) != 4 {
		t.Fatalf("got %d changes, want 4: %v", len(ch), ch)
	}
	ch, _ = r.SetMode(Joint)
	if len(ch) != 4 {
		t.Fatalf("back to joint: %v", ch)
	}
	for _, c := range ch {
		if !c.Allow {
			t.Fatalf("unexpected close %v", c)
		}
	}
}

func TestInvalid(t *testing.T) {
	r := New()
	if _, err := r.Join(Participant{ID: "a", Role: "king", Side: Applicant}); err != ErrInvalidParticipant {
		t.Fatalf("bad role: %v", err)
	}
	if _, err := r.Join(Participant{Role: Party, Side: Applicant}); err != ErrInvalidParticipant {
		t.Fatalf("no id: %v", err)
	}
	if _, err := r.SetMode(Mode{Caucus: true, Side: Neutral}); err != ErrInvalidMode {
		t.Fatalf("neutral caucus: %v", err)
	}
}

// TestNoNetworkImports keeps rooms free of I/O dependencies.
func TestNoNetworkImports(t *testing.T) {
	for _, dir := range []string{".", "../cases"} {
		pkg, err := build.ImportDir(dir, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range pkg.Imports {
			for _, banned := range []string{"github.com/pion/", "github.com/gorilla/", "github.com/jackc/", "net/http", "database/sql"} {
				if strings.HasPrefix(imp, banned) {
					t.Errorf("%s imports %s", dir, imp)
				}
			}
		}
	}
}

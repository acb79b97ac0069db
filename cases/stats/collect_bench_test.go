package stats

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/concord-odr/concord/cases"
	"github.com/concord-odr/concord/cases/sqlite"
)

// BenchmarkCollect measures what GET /api/v1/stats reads before it
// computes: every case of the store and its events (for the wider scopes
// that small-cell protection compares against), here 2 000 cases on the
// embedded store, half of them taken to mediation.
func BenchmarkCollect(b *testing.B) {
	ctx := b.Context()
	store, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "c.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	if err := store.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, cst)
	clock := func() time.Time { now = now.Add(time.Minute); return now }
	svc := cases.NewService(cases.ServiceParams{Store: store, Now: clock})
	inst := &cases.Institution{Code: "31", Name: "Shanghai Centre", Level: cases.LevelProvince}
	if err := svc.PutInstitution(ctx, inst); err != nil {
		b.Fatal(err)
	}
	const n = 2000
	for i := range n {
		c, _, err := svc.OpenCase(ctx, cases.NewCase{
			InstitutionID: inst.ID, Category: "e-commerce", Channel: cases.ChannelOnline,
			Applicant:  cases.Party{Name: fmt.Sprint("Applicant ", i), Kind: "person"},
			Respondent: cases.Party{Name: "Merchant", Kind: "organisation"}, Actor: "bench",
		})
		if err != nil {
			b.Fatal(err)
		}
		if i%2 == 0 {
			for _, to := range []cases.State{cases.StateDispatched, cases.StateRespondentContacted, cases.StateAccepted} {
				if _, err := svc.Transition(ctx, c.ID, to, "staff", nil); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		d, err := Collect(ctx, store, Scope{})
		if err != nil {
			b.Fatal(err)
		}
		if len(d.Facts) != n {
			b.Fatalf("%d facts, want %d", len(d.Facts), n)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/n, "µs/case")
}

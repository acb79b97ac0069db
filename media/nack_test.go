package media

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestNackGeneratorMissingCount: through arrivals in order, gaps, late
// and duplicate arrivals, jumps and wraps, and NACK rounds that give up,
// the generator's count of missing packets is the number of slots marked
// missing, so due skips its scan exactly when nothing is missing.
func TestNackGeneratorMissingCount(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var g nackGenerator
	seq := uint16(65000)
	now := time.Now().UnixNano()
	var out []uint16
	for i := range 200_000 {
		switch r := rng.IntN(100); {
		case r < 80:
			seq++
		case r < 90:
			seq += uint16(2 + rng.IntN(5)) // a gap
		case r < 97:
			g.observe(seq - uint16(1+rng.IntN(40))) // late or duplicate
			continue
		case r < 98:
			seq += uint16(nackWindow + rng.IntN(1000)) // a jump
		default:
			now += int64(nackRetry)
			out = g.due(now, out[:0])
		}
		g.observe(seq)
		if i%97 == 0 {
			n := 0
			for _, sl := range g.slots {
				if sl.missing {
					n++
				}
			}
			if n != g.missing {
				t.Fatalf("step %d: %d slots missing, count %d", i, n, g.missing)
			}
			if n == 0 {
				if got := g.due(now+int64(time.Hour), out[:0]); len(got) != 0 {
					t.Fatalf("step %d: nothing missing, yet %d NACKed", i, len(got))
				}
			}
		}
	}
}

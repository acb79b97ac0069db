package media

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
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

// TestRTCPLoopWakes: a published video track's RTCP loop sleeps while
// nothing is missing (a ticker woke it 50 times a second), and a gap
// wakes it to NACK the missing packet within a few ticks, then lets it
// sleep again once the packet arrives.
func TestRTCPLoopWakes(t *testing.T) {
	up := benchUpTrack(webrtc.RTPCodecTypeVideo)
	nacked := make(chan []uint16, 16)
	up.writeRTCP = func(pkts []rtcp.Packet) error {
		for _, p := range pkts {
			if n, ok := p.(*rtcp.TransportLayerNack); ok {
				var seqs []uint16
				for _, pair := range n.Nacks {
					seqs = append(seqs, pair.PacketList()...)
				}
				nacked <- seqs
			}
		}
		return nil
	}
	go up.rtcpLoop()
	defer close(up.done)
	raw := benchPacket(t)
	send := func(seq uint16) {
		raw[2], raw[3] = byte(seq>>8), byte(seq)
		up.handle(up.layer(0), raw, time.Now(), nil)
	}

	seq := uint16(100)
	for range 30 { // 300 ms without loss
		send(seq)
		seq++
		time.Sleep(10 * time.Millisecond)
	}
	if w := up.rtcpWakes.Load(); w > 3 {
		t.Fatalf("the RTCP loop woke %d times in 300 ms without loss", w)
	}

	lost := seq
	seq++
	send(seq) // the gap
	start := time.Now()
	select {
	case seqs := <-nacked:
		if len(seqs) != 1 || seqs[0] != lost {
			t.Fatalf("NACKed %v, want [%d]", seqs, lost)
		}
		t.Logf("NACKed %d after %v", lost, time.Since(start).Round(time.Millisecond))
	case <-time.After(time.Second):
		t.Fatal("no NACK for a missing packet within a second")
	}
	send(lost) // repaired
	time.Sleep(50 * time.Millisecond)
	before := up.rtcpWakes.Load()
	time.Sleep(300 * time.Millisecond)
	if w := up.rtcpWakes.Load() - before; w > 2 {
		t.Fatalf("the RTCP loop woke %d times in 300 ms after the loss was repaired", w)
	}
	select {
	case seqs := <-nacked:
		t.Fatalf("NACKed %v after the packet arrived", seqs)
	default:
	}
}

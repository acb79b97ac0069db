package media

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
)

func TestNTPTime(t *testing.T) {
	if got, want := NTPTime(0), uint64(ntpEpochOffset)<<32; got != want {
		t.Fatalf("NTPTime(0) = %x, want %x", got, want)
	}
	if got, want := NTPTime(int64(1500*time.Millisecond)), uint64(ntpEpochOffset+1)<<32|0x80000000; got != want {
		t.Fatalf("NTPTime(1.5 s) = %x, want %x", got, want)
	}
}

// TestSenderReports: a subscriber gets a sender report about once a
// second for each stream it receives, naming the stream's SSRC, with
// growing packet and byte counts, and an RTP time that matches the
// timestamps of the packets arriving then: what a browser needs for
// lip sync.
func TestSenderReports(t *testing.T) {
	t.Parallel()
	sfu := newTestSFU(t, Params{})
	room := sfu.NewRoom("reports")
	defer room.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pub := newTestClient(t, room, "pub", clientOpts{})
	sub := newTestClient(t, room, "sub", clientOpts{})

	type stream struct {
		clockRate uint32
		lastTS    uint32
		lastAt    time.Time
		reports   []rtcp.SenderReport
		skew      []time.Duration // SR's RTP time - the newest packet's, in time
	}
	var mu sync.Mutex
	streams := map[uint32]*stream{}
	sub.sub.OnTrack(func(tr *webrtc.TrackRemote, rcv *webrtc.RTPReceiver) {
		s := &stream{clockRate: tr.Codec().ClockRate}
		mu.Lock()
		streams[uint32(tr.SSRC())] = s
		mu.Unlock()
		go func() {
			for {
				pkts, _, err := rcv.ReadRTCP()
				if err != nil {
					return
				}
				for _, p := range pkts {
					sr, ok := p.(*rtcp.SenderReport)
					if !ok || sr.SSRC != uint32(tr.SSRC()) {
						continue
					}
					mu.Lock()
					s.reports = append(s.reports, *sr)
					if !s.lastAt.IsZero() {
						// Where the newest packet's timestamp says we are now.
						expected := s.lastTS + uint32(time.Since(s.lastAt).Seconds()*float64(s.clockRate))
						d := time.Duration(float64(int32(sr.RTPTime-expected)) / float64(s.clockRate) * float64(time.Second))
						s.skew = append(s.skew, d)
					}
					mu.Unlock()
				}
			}
		}()
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			mu.Lock()
			s.lastTS, s.lastAt = p.Timestamp, time.Now()
			mu.Unlock()
		}
	})
	pub.publish(ctx, true, true, 30)
	room.Allow("sub", "pub", true)

	waitFor(t, 10*time.Second, "three sender reports for audio and video", func() bool {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, s := range streams {
			if len(s.reports) >= 3 {
				n++
			}
		}
		return n == 2
	})
	mu.Lock()
	defer mu.Unlock()
	for ssrc, s := range streams {
		first, last := s.reports[0], s.reports[len(s.reports)-1]
		if last.PacketCount <= first.PacketCount || last.OctetCount <= first.OctetCount {
			t.Errorf("stream %d: counts did not grow: %+v then %+v", ssrc, first, last)
		}
		gap := float64(last.NTPTime-first.NTPTime) / (1 << 32)
		if want := float64(len(s.reports) - 1); gap < want*0.8 || gap > want*1.5 {
			t.Errorf("stream %d: %d reports over %.2f s, want about one a second", ssrc, len(s.reports), gap)
		}
		ticks := float64(last.RTPTime-first.RTPTime) / float64(s.clockRate)
		if d := ticks - gap; d < -0.1 || d > 0.1 {
			t.Errorf("stream %d: RTP time advanced %.3f s over %.3f s of NTP time", ssrc, ticks, gap)
		}
		// One report may be off: the test publisher's timestamps follow
		// its frame count, not the clock, so a stall of its sender on a
		// loaded machine puts its packets behind the wall-clock time the
		// reports (rightly) extrapolate to. Most must be close.
		off := 0
		for _, d := range s.skew {
			if d < -100*time.Millisecond || d > 100*time.Millisecond {
				off++
			}
		}
		if len(s.skew) == 0 || 2*off >= len(s.skew) {
			t.Errorf("stream %d: %d of %d reports' RTP times are over 100 ms off the stream's packets", ssrc, off, len(s.skew))
		}
		t.Logf("stream %d (%d Hz): %d reports, skews %v", ssrc, s.clockRate, len(s.reports), s.skew)
	}
}

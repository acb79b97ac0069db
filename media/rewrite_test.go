package media

import (
	"context"
	"testing"
	"time"
)

func TestRewriter(t *testing.T) {
	type pkt struct {
		seq             uint16
		ts              uint32
		atMS            int64
		resync, newSrc  bool
		wantSeq, wantTS int64 // relative to the first outgoing packet; -1: dropped
	}
	const ms = int64(time.Millisecond)
	tests := []struct {
		name string
		pkts []pkt
	}{
		{"in order", []pkt{
			{seq: 100, ts: 9000, wantSeq: 0, wantTS: 0},
			{seq: 101, ts: 9000, wantSeq: 1, wantTS: 0},
			{seq: 102, ts: 12000, wantSeq: 2, wantTS: 3000},
		}},
		{"wraps around", []pkt{
			{seq: 65534, ts: 4294967000, wantSeq: 0, wantTS: 0},
			{seq: 65535, ts: 4294967000, wantSeq: 1, wantTS: 0},
			{seq: 0, ts: 2704, wantSeq: 2, wantTS: 3000},
		}},
		{"loss upstream stays visible, late packets keep their place", []pkt{
			{seq: 10, ts: 0, wantSeq: 0, wantTS: 0},
			{seq: 12, ts: 3000, wantSeq: 2, wantTS: 3000},
			{seq: 11, ts: 0, wantSeq: 1, wantTS: 0},
			{seq: 13, ts: 3000, wantSeq: 3, wantTS: 3000},
		}},
		{"packets the SFU dropped leave no hole", []pkt{
			{seq: 10, ts: 0, wantSeq: 0, wantTS: 0},
			{seq: 11, ts: 0, wantSeq: 1, wantTS: 0},
			{seq: 40, ts: 30000, resync: true, wantSeq: 2, wantTS: 30000}, // same source: time goes on
			{seq: 41, ts: 30000, wantSeq: 3, wantTS: 30000},
			{seq: 39, ts: 27000, wantSeq: -1}, // from before the gap: dropped
		}},
		{"a new source continues the stream", []pkt{
			{seq: 500, ts: 1000, atMS: 0, wantSeq: 0, wantTS: 0},
			{seq: 501, ts: 4000, atMS: 33, wantSeq: 1, wantTS: 3000},
			{seq: 7, ts: 777777, atMS: 133, newSrc: true, wantSeq: 2, wantTS: 3000 + 9000}, // 100 ms later at 90 kHz
			{seq: 8, ts: 780777, atMS: 166, wantSeq: 3, wantTS: 3000 + 9000 + 3000},
		}},
		{"a restarted publisher continues the stream", []pkt{
			{seq: 1000, ts: 0, atMS: 0, wantSeq: 0, wantTS: 0},
			{seq: 30000, ts: 5000000, atMS: 20, wantSeq: 1, wantTS: 1800}, // jump: 20 ms later
			{seq: 30001, ts: 5003000, atMS: 53, wantSeq: 2, wantTS: 4800},
		}},
		{"far too late", []pkt{
			{seq: 5000, ts: 0, wantSeq: 0, wantTS: 0},
			{seq: 5001 + maxReorder, ts: 0, wantSeq: 1 + maxReorder, wantTS: 0},
			{seq: 5000 + 2, ts: 0, wantSeq: 2, wantTS: 0},
			{seq: 4999, ts: 0, wantSeq: -1}, // before the first packet
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := rewriter{clockRate: 90000}
			var seq0 uint16
			var ts0 uint32
			for i, p := range tt.pkts {
				m := packetMeta{seq: p.seq, ts: p.ts, at: 1 + p.atMS*ms}
				seq, ts, ok := r.rewrite(&m, p.resync, p.newSrc)
				if p.wantSeq < 0 {
					if ok {
						t.Fatalf("packet %d (seq %d) forwarded as %d, want dropped", i, p.seq, seq-seq0)
					}
					continue
				}
				if !ok {
					t.Fatalf("packet %d (seq %d) dropped", i, p.seq)
				}
				if i == 0 {
					seq0, ts0 = seq, ts
					if seq == p.seq && ts == p.ts {
						t.Fatal("the outgoing stream starts at the publisher's numbers, not random ones")
					}
				}
				if got := int64(seq - seq0); got != p.wantSeq {
					t.Fatalf("packet %d: seq +%d, want +%d", i, got, p.wantSeq)
				}
				if got := int64(ts - ts0); got != p.wantTS {
					t.Fatalf("packet %d: ts +%d, want +%d", i, got, p.wantTS)
				}
			}
		})
	}
}

// TestPerSubscriberNumbering: two subscribers of one track get their own
// SSRC, sequence numbers and timestamps, each continuous, with the
// publisher's timing.
func TestPerSubscriberNumbering(t *testing.T) {
	sfu := newTestSFU(t, Params{})
	room := sfu.NewRoom("numbers")
	defer room.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pub := newTestClient(t, room, "pub", clientOpts{})
	a := newTestClient(t, room, "a", clientOpts{})
	b := newTestClient(t, room, "b", clientOpts{})
	pub.publish(ctx, false, true, 1)
	room.Allow("a", "pub", true)
	room.Allow("b", "pub", true)
	waitFor(t, 5*time.Second, "video at both", func() bool {
		return a.packets("pub", "video") > 30 && b.packets("pub", "video") > 30
	})
	ra, rb := a.got("pub", "video"), b.got("pub", "video")
	if ra.ssrc == rb.ssrc || ra.seqs[0] == rb.seqs[0] || ra.tss[0] == rb.tss[0] {
		t.Fatalf("subscribers share numbering: ssrc %d/%d seq %d/%d ts %d/%d", ra.ssrc, rb.ssrc, ra.seqs[0], rb.seqs[0], ra.tss[0], rb.tss[0])
	}
	for _, r := range []*received{ra, rb} {
		for i := 1; i < len(r.seqs); i++ {
			if r.seqs[i] != r.seqs[i-1]+1 {
				t.Fatalf("sequence jumps from %d to %d", r.seqs[i-1], r.seqs[i])
			}
			if d := r.tss[i] - r.tss[i-1]; d != 3000 {
				t.Fatalf("timestamp step %d, want the publisher's 3000", d)
			}
		}
	}
}

package media

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/pion/interceptor/pkg/twcc"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
)

type twccEntry struct {
	seq uint16
	at  int64
}

// pionTWCC lists the packets a feedback packet reports received, the
// way pion parses it.
func pionTWCC(t testing.TB, raw []byte) ([]twccEntry, bool) {
	var fb rtcp.TransportLayerCC
	if err := fb.Unmarshal(raw); err != nil {
		return nil, false
	}
	var out []twccEntry
	seq, left := fb.BaseSequenceNumber, int(fb.PacketStatusCount)
	at := int64(fb.ReferenceTime) * int64(64*time.Millisecond)
	deltas := fb.RecvDeltas
	add := func(s uint16) {
		if (s == rtcp.TypeTCCPacketReceivedSmallDelta || s == rtcp.TypeTCCPacketReceivedLargeDelta) && len(deltas) > 0 {
			at += deltas[0].Delta * int64(time.Microsecond)
			deltas = deltas[1:]
			out = append(out, twccEntry{seq, at})
		}
		seq++
		left--
	}
	for _, c := range fb.PacketChunks {
		switch c := c.(type) {
		case *rtcp.RunLengthChunk:
			for range min(int(c.RunLength), left) {
				add(c.PacketStatusSymbol)
			}
		case *rtcp.StatusVectorChunk:
			for _, s := range c.SymbolList {
				if left == 0 {
					break
				}
				if c.SymbolSize == rtcp.TypeTCCSymbolSizeOneBit && s == 1 {
					s = rtcp.TypeTCCPacketReceivedSmallDelta
				}
				add(s)
			}
		}
	}
	return out, true
}

func ourTWCC(raw []byte) ([]twccEntry, bool) {
	var out []twccEntry
	ok := twccStatus(raw, func(seq uint16, at int64) {
		out = append(out, twccEntry{seq, at})
	})
	return out, ok
}

// TestTWCCStatus: feedback built by pion's own recorder, from runs of
// packets received and lost, small and large (negative too) arrival
// gaps, across the sequence number wrap, reads in place exactly as
// pion's parser reads it.
func TestTWCCStatus(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	packets := 0
	for round := range 200 {
		rec := twcc.NewRecorder(1)
		seq := uint16(65000 + rng.IntN(1000))
		at := int64(1_000_000 + rng.IntN(1_000_000)) // microseconds
		for range 1 + rng.IntN(300) {
			switch r := rng.IntN(10); {
			case r < 6:
				at += int64(rng.IntN(3000))
			case r < 8:
				at += int64(rng.IntN(100_000)) // a large delta
			case r < 9:
				at -= int64(rng.IntN(5000)) // reordered: negative
			}
			if rng.IntN(10) > round%5 { // some rounds lose more
				rec.Record(2, seq, at)
			}
			seq += 1 + uint16(rng.IntN(2)*rng.IntN(3))
		}
		for _, p := range rec.BuildFeedbackPacket() {
			raw, err := p.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			want, ok := pionTWCC(t, raw)
			if !ok {
				t.Fatalf("round %d: pion cannot parse its own feedback", round)
			}
			got, ok := ourTWCC(raw)
			if !ok {
				t.Fatalf("round %d: feedback pion parses was read as malformed", round)
			}
			if len(got) != len(want) {
				t.Fatalf("round %d: %d packets received, pion %d", round, len(got), len(want))
			}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("round %d, status %d: %+v, pion %+v", round, i, got[i], want[i])
				}
			}
			packets += len(got)
		}
	}
	if packets < 5_000 {
		t.Fatalf("only %d packets compared", packets)
	}
	rec := twcc.NewRecorder(1)
	for i := range uint16(100) {
		rec.Record(2, i, int64(i)*2000)
	}
	raw, err := rec.BuildFeedbackPacket()[0].Marshal()
	if err != nil {
		t.Fatal(err)
	}
	b := newBandwidth(nil)
	allocs := testing.AllocsPerRun(100, func() { b.onTWCC(raw) })
	if allocs != 0 {
		t.Fatalf("%.0f allocations per feedback read", allocs)
	}
}

// TestTWCCStatusHostile: a feedback packet claiming 65535 statuses costs
// what its bytes hold, not what it claims: runs not received are skipped
// whole, and statuses received without deltas end the read.
func TestTWCCStatusHostile(t *testing.T) {
	head := []byte{0x8f, 205, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0x12, 0x34, 0xff, 0xff, 0, 0, 1, 0}
	packet := func(chunks ...uint16) []byte {
		p := append([]byte(nil), head...)
		for _, c := range chunks {
			p = append(p, byte(c>>8), byte(c))
		}
		for len(p)%4 != 0 {
			p = append(p, 0)
		}
		p[2], p[3] = 0, byte(len(p)/4-1)
		return p
	}
	calls := 0
	count := func(uint16, int64) { calls++ }

	// Eight runs of 8191 packets not received (and a ninth of 8): 65535.
	lost := packet(0x1fff, 0x1fff, 0x1fff, 0x1fff, 0x1fff, 0x1fff, 0x1fff, 0x1fff, 0x0008)
	if !twccStatus(lost, count) || calls != 0 {
		t.Fatalf("runs not received: ok false or %d calls", calls)
	}
	// The same runs, claimed received, with no deltas: malformed at once.
	claimed := packet(0x3fff, 0x3fff, 0x3fff, 0x3fff, 0x3fff, 0x3fff, 0x3fff, 0x3fff, 0x2008)
	if twccStatus(claimed, count) || calls > len(claimed) {
		t.Fatalf("statuses received without deltas were read (%d calls)", calls)
	}
}

// FuzzTWCCStatus: any bytes are read without a panic, and whatever
// pion parses as feedback is read the same.
func FuzzTWCCStatus(f *testing.F) {
	rec := twcc.NewRecorder(1)
	for i := range uint16(40) {
		if i%7 != 3 {
			rec.Record(2, 100+i, int64(i)*1500)
		}
	}
	for _, p := range rec.BuildFeedbackPacket() {
		raw, _ := p.Marshal()
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, ok := ourTWCC(raw)
		want, pionOK := pionTWCC(t, raw)
		if !pionOK || !ok {
			return // pion is laxer or stricter on malformed input; neither panics
		}
		if len(want) < len(got) {
			got = got[:len(want)]
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("status %d: %+v, pion %+v", i, got[i], want[i])
			}
		}
	})
}

// TestOnRTCP: a subscriber's compound RTCP acts on this track only for
// what names it: its NACKs and PLIs (not another stream's in the same
// compound, which pion delivers to every stream it names), a FIR listing
// it, and its own report block's loss.
func TestOnRTCP(t *testing.T) {
	up := benchUpTrack(webrtc.RTPCodecTypeVideo)
	d := newDownTrack(up, "sub", &rawWriters{}, up.log)
	bindSink(d, &sinkWriter{}, 100)
	defer d.stop(false)
	const mine, other = 100, 200
	d.bw = newBandwidth(nil)

	compound := func(pkts ...rtcp.Packet) []byte {
		raw, err := rtcp.Marshal(pkts)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	rr := &rtcp.ReceiverReport{SSRC: 9, Reports: []rtcp.ReceptionReport{{SSRC: other, FractionLost: 200}, {SSRC: mine, FractionLost: 0}}}

	d.onRTCP(compound(rr, &rtcp.TransportLayerNack{SenderSSRC: 9, MediaSSRC: other, Nacks: []rtcp.NackPair{{PacketID: 5}}},
		&rtcp.PictureLossIndication{SenderSSRC: 9, MediaSSRC: other}))
	if d.nacksIn.Load() != 0 || d.plisIn.Load() != 0 {
		t.Fatalf("another stream's feedback was taken: %d NACKed, %d PLIs", d.nacksIn.Load(), d.plisIn.Load())
	}

	d.onRTCP(compound(rr, &rtcp.TransportLayerNack{SenderSSRC: 9, MediaSSRC: mine, Nacks: []rtcp.NackPair{{PacketID: 5, LostPackets: 0b101}}},
		&rtcp.PictureLossIndication{SenderSSRC: 9, MediaSSRC: mine}))
	if d.nacksIn.Load() != 3 || d.plisIn.Load() != 1 {
		t.Fatalf("own feedback: %d NACKed packets (want 3), %d PLIs (want 1)", d.nacksIn.Load(), d.plisIn.Load())
	}

	d.onRTCP(compound(rr, &rtcp.FullIntraRequest{SenderSSRC: 9, FIR: []rtcp.FIREntry{{SSRC: other}, {SSRC: mine, SequenceNumber: 1}}}))
	d.onRTCP(compound(rr, &rtcp.FullIntraRequest{SenderSSRC: 9, FIR: []rtcp.FIREntry{{SSRC: other}}}))
	if d.plisIn.Load() != 2 {
		t.Fatalf("%d keyframe requests after a FIR listing the track and one not, want 2", d.plisIn.Load())
	}

	// Loss: only this track's block counts (the other's says 78 %).
	before := d.bw.current()
	for range 5 {
		d.onRTCP(compound(&rtcp.ReceiverReport{SSRC: 9, Reports: []rtcp.ReceptionReport{{SSRC: other, FractionLost: 200}, {SSRC: mine}}}))
	}
	if d.bw.current() < before {
		t.Fatalf("another stream's loss cut the estimate: %.0f -> %.0f", before, d.bw.current())
	}
	d.onRTCP(compound(&rtcp.ReceiverReport{SSRC: 9, Reports: []rtcp.ReceptionReport{{SSRC: mine, FractionLost: 200}}}))
	if d.bw.current() >= before {
		t.Fatalf("78 %% loss on the track left the estimate at %.0f (was %.0f)", d.bw.current(), before)
	}

	// Malformed input ends the walk without harm.
	for _, raw := range [][]byte{nil, {0x80}, {0x81, 201, 0, 200}, {0x00, 201, 0, 1, 0, 0, 0, 0}} {
		d.onRTCP(raw)
	}
	raw := compound(rr, &rtcp.PictureLossIndication{SenderSSRC: 9, MediaSSRC: other})
	if allocs := testing.AllocsPerRun(100, func() { d.onRTCP(raw) }); allocs != 0 {
		t.Fatalf("%.0f allocations per receiver report read", allocs)
	}
}

// BenchmarkRTCPRead: one subscriber's compound RTCP packet read by a
// track (a receiver report naming eight streams, and a transport-wide
// feedback reporting 50 packets), in place against pion's rtcp.Unmarshal.
func BenchmarkRTCPRead(b *testing.B) {
	rec := twcc.NewRecorder(1)
	for i := range uint16(50) {
		rec.Record(2, 1000+i, int64(i)*2000)
	}
	rr := &rtcp.ReceiverReport{SSRC: 9}
	for i := range uint32(8) {
		rr.Reports = append(rr.Reports, rtcp.ReceptionReport{SSRC: 100 + i})
	}
	raw, err := rtcp.Marshal(append([]rtcp.Packet{rr}, rec.BuildFeedbackPacket()...))
	if err != nil {
		b.Fatal(err)
	}
	b.Run("in-place", func(b *testing.B) {
		up := benchUpTrack(webrtc.RTPCodecTypeVideo)
		d := newDownTrack(up, "sub", &rawWriters{}, up.log)
		bindSink(d, &sinkWriter{}, 100)
		defer d.stop(false)
		d.bw = newBandwidth(nil)
		b.ReportAllocs()
		for b.Loop() {
			d.onRTCP(raw)
			it := rtcpIter{raw}
			for {
				pt, format, p, ok := it.next()
				if !ok {
					break
				}
				if pt == rtcpRTPFB && format == fmtTWCC {
					d.bw.onTWCC(p)
				}
			}
		}
	})
	b.Run("pion-unmarshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := rtcp.Unmarshal(raw); err != nil {
				b.Fatal(err)
			}
		}
	})
}

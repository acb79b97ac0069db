package main

import (
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// TestLtFeedback: the subscribers' own feedback reports every packet
// recorded, in transport-wide feedback, and each stream's loss in its
// receiver report.
func TestLtFeedback(t *testing.T) {
	f := newLtFeedback()
	f.twccID = 3
	const ssrc = 0x1234
	now := time.Now().UnixNano()
	for i := range 10 {
		if i == 5 {
			continue // lost
		}
		h := rtp.Header{Version: 2, SSRC: ssrc, SequenceNumber: uint16(65530 + i), Timestamp: uint32(i * 3000)}
		if err := h.SetExtension(3, []byte{0, byte(100 + i)}); err != nil {
			t.Fatal(err)
		}
		f.record(&h, now+int64(i)*int64(time.Millisecond))
	}
	pkts := f.collect(time.Now().Add(time.Second))
	var cc *rtcp.TransportLayerCC
	var rr *rtcp.ReceiverReport
	for _, p := range pkts {
		switch p := p.(type) {
		case *rtcp.TransportLayerCC:
			cc = p
		case *rtcp.ReceiverReport:
			rr = p
		}
	}
	if cc == nil || rr == nil {
		t.Fatalf("feedback %v: want transport-wide feedback and a receiver report", pkts)
	}
	if cc.BaseSequenceNumber != 100 || cc.PacketStatusCount != 10 || cc.MediaSSRC != ssrc {
		t.Errorf("transport-wide feedback from %d on %d packets of %x, want from 100 on 10 of %x",
			cc.BaseSequenceNumber, cc.PacketStatusCount, cc.MediaSSRC, ssrc)
	}
	if len(rr.Reports) != 1 {
		t.Fatalf("%d report blocks, want 1", len(rr.Reports))
	}
	b := rr.Reports[0]
	// 65530..65539 wraps: the extended highest is 1<<16 + 3.
	if b.SSRC != ssrc || b.TotalLost != 1 || b.LastSequenceNumber != 1<<16+3 || b.FractionLost != 256/10 {
		t.Errorf("report %+v: want 1 lost of 10, highest %d", b, 1<<16+3)
	}
	if again := f.collect(time.Now().Add(time.Second + 100*time.Millisecond)); len(again) != 0 {
		t.Errorf("nothing new, yet sent %v", again)
	}
}

// TestLoadtestOwnReceivePath: the subscribers take their media from the
// socket themselves and send their own feedback; --pion-receive leaves
// both to pion.
func TestLoadtestOwnReceivePath(t *testing.T) {
	res := runLoadtestJSON(t, "--rooms", "1", "--participants", "3", "--duration", "2s", "--warmup", "500ms")
	s := res.Steps[0]
	checkStep(t, s, 3)
	p := res.ReceivePath
	if p == nil {
		t.Fatal("no receive path reported")
	}
	window := uint64(s.Audio.Received + s.Video.Received)
	if p.OwnPackets < window*9/10 {
		t.Errorf("own path took %d packets; the window alone received %d", p.OwnPackets, window)
	}
	// Three subscribers, over at least 2.5 s of media: 10 feedback
	// packets a second each and a report a second; a second's worth at
	// least, on the slowest machine.
	if p.TransportFeedback < 3*10 || p.ReceiverReports < 3 {
		t.Errorf("sent %d transport-wide feedback packets, %d receiver reports", p.TransportFeedback, p.ReceiverReports)
	}

	res = runLoadtestJSON(t, "--rooms", "1", "--participants", "3", "--duration", "2s", "--warmup", "500ms", "--pion-receive")
	checkStep(t, res.Steps[0], 3)
	if res.ReceivePath != nil {
		t.Errorf("with --pion-receive: own path %+v", res.ReceivePath)
	}
}

package main

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/concord-odr/concord/media"
)

// TestLoadtestOwnSendPath: the publishers encrypt and send their media
// themselves once their connection is up, with a sender report a second
// on each track; --pion-send leaves all of it to pion.
func TestLoadtestOwnSendPath(t *testing.T) {
	res := runLoadtestJSON(t, "--rooms", "1", "--participants", "3", "--duration", "2s", "--warmup", "500ms")
	s := res.Steps[0]
	checkStep(t, s, 3)
	p := res.SendPath
	if p == nil {
		t.Fatal("no send path reported")
	}
	window := uint64(s.Audio.Sent + s.Video.Sent)
	if p.OwnPackets < window {
		t.Errorf("own path sent %d packets; the window alone %d", p.OwnPackets, window)
	}
	if p.PionPackets > p.OwnPackets/10 {
		t.Errorf("%d packets went through pion, %d own: the own path came late or not at all", p.PionPackets, p.OwnPackets)
	}
	// Three publishers, two tracks each, over at least 2.5 s of media.
	if p.SenderReports < 3*2*2 {
		t.Errorf("sent %d sender reports", p.SenderReports)
	}

	res = runLoadtestJSON(t, "--rooms", "1", "--participants", "3", "--duration", "2s", "--warmup", "500ms", "--pion-send")
	checkStep(t, res.Steps[0], 3)
	if res.SendPath != nil {
		t.Errorf("with --pion-send: own path %+v", res.SendPath)
	}
}

// TestOwnSendRetransmits loses one video packet in 40 on the own send
// path: the server NACKs them and the publishers send them again (on
// their RTX streams), so the subscribers lose almost none.
func TestOwnSendRetransmits(t *testing.T) {
	ownDropForTest = func(pkt []byte) bool {
		// VP8 (payload type 96, as the SFU registers it), not its RTX.
		return len(pkt) > 300 && pkt[1]&0x7f == 96 && binary.BigEndian.Uint16(pkt[2:])%40 == 0
	}
	defer func() { ownDropForTest = nil }()
	res := runLoadtestJSON(t, "--rooms", "1", "--participants", "3", "--duration", "3s", "--warmup", "500ms")
	s := res.Steps[0]
	checkStep(t, s, 3)
	p := res.SendPath
	if p == nil {
		t.Fatal("no send path reported")
	}
	dropped := p.OwnPackets / 2 / 40 // about half the packets are video
	if p.Retransmitted < dropped/2 || s.NACKsReceived == 0 {
		t.Errorf("retransmitted %d packets for %d NACKed (about %d dropped)", p.Retransmitted, s.NACKsReceived, dropped)
	}
	// Unrepaired, 2.5 % of the video would be lost.
	if s.Video.Sent == 0 || float64(s.Video.Lost) > 0.005*float64(s.Video.Sent*2) {
		t.Errorf("video: %d of %d packets lost", s.Video.Lost, s.Video.Sent*2)
	}
}

// TestOwnSenderReport: a sender report's RTP time runs on from the newest
// packet's timestamp by the clock rate, and it counts packets and
// payload octets.
func TestOwnSenderReport(t *testing.T) {
	at := time.Unix(1_700_000_000, 0)
	st := &ownStream{packets: 7, octets: 7000, lastTS: 1000, lastAt: at}
	sr := st.senderReport(&ownBinding{ssrc: 42, clock: 90000}, at.Add(100*time.Millisecond))
	if sr.SSRC != 42 || sr.PacketCount != 7 || sr.OctetCount != 7000 {
		t.Errorf("report %+v", sr)
	}
	if sr.RTPTime != 1000+9000 {
		t.Errorf("RTP time %d, want %d", sr.RTPTime, 1000+9000)
	}
	if want := media.NTPTime(at.Add(100 * time.Millisecond).UnixNano()); sr.NTPTime != want {
		t.Errorf("NTP time %x, want %x", sr.NTPTime, want)
	}
}

// TestOwnRing keeps the newest packet of each slot and forgets the one it
// replaced.
func TestOwnRing(t *testing.T) {
	r := newOwnRing()
	put := func(seq uint16) {
		h := rtp.Header{Version: 2, SequenceNumber: seq, SSRC: 1}
		b := r.slot(seq)
		n, err := h.MarshalTo(b)
		if err != nil {
			t.Fatal(err)
		}
		r.keep(seq, n)
	}
	put(65535)
	put(10)
	if r.get(65535) == nil || r.get(10) == nil {
		t.Fatal("kept packets not found")
	}
	put(10 + ringSlots)
	if r.get(10) != nil {
		t.Error("replaced packet still returned")
	}
	var h rtp.Header
	if _, err := h.Unmarshal(r.get(10 + ringSlots)); err != nil || h.SequenceNumber != 10+ringSlots {
		t.Errorf("slot holds %d (%v)", h.SequenceNumber, err)
	}
	if r.get(11) != nil {
		t.Error("a packet never kept returned")
	}
}

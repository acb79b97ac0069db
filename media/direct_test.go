package media

import (
	"bytes"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/pion/webrtc/v4"
)

// TestDirectOutWrite: a direct write puts on the wire what the
// subscriber's SRTP context decrypts to the packet written, and
// allocates nothing.
func TestDirectOutWrite(t *testing.T) {
	enc, dec := srtpPair(t)
	rx, conn := loopbackPair(t)
	o := newTestDirectOut(conn, rx, enc)

	payload := bytes.Repeat([]byte{0xab}, 1100)
	h := &rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: 65534, Timestamp: 1234, SSRC: 0xdeadbeef, Marker: true}
	if err := h.SetExtension(3, []byte{1, 2}); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 2000)
	var plain []byte
	for i := range 4 { // across the sequence number's rollover
		h.SequenceNumber = 65534 + uint16(i)
		if _, err := o.write(h, payload); err != nil {
			t.Fatal(err)
		}
		_ = rx.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, _, err := rx.ReadFromUDP(got)
		if err != nil {
			t.Fatal(err)
		}
		if plain, err = dec.DecryptRTP(plain[:0], got[:n], nil); err != nil {
			t.Fatalf("packet %d: subscriber cannot decrypt: %v", i, err)
		}
		var p rtp.Packet
		if err := p.Unmarshal(plain); err != nil {
			t.Fatal(err)
		}
		if p.SequenceNumber != h.SequenceNumber || p.SSRC != h.SSRC || !p.Marker || !bytes.Equal(p.Payload, payload) ||
			!bytes.Equal(p.GetExtension(3), []byte{1, 2}) {
			t.Fatalf("packet %d: got %v, wrote %v", i, p.Header, h)
		}
	}
	allocs := testing.AllocsPerRun(200, func() {
		h.SequenceNumber++
		if _, err := o.write(h, payload); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("a direct write allocates %.1f times", allocs)
	}
}

// TestDirectWrites: a subscriber over UDP gets its packets through the
// direct path; when its pair stops being direct (as after an ICE
// restart onto TCP) they go through pion, and back, with no loss of
// decryption either way.
func TestDirectWrites(t *testing.T) {
	sfu := newTestSFU(t, Params{})
	_, _, bob, _ := aliceToBob(t, sfu, clientOpts{}, 3)
	dc := sfu.direct.get(bob.peer.sub.ID())
	if dc == nil {
		t.Fatal("no direct interceptor on bob's sub connection")
	}
	waitFor(t, 5*time.Second, "direct writes", func() bool { return dc.sent() > 20 })
	if o := dc.out.Load(); o == nil || o.seal == nil {
		t.Fatal("the negotiated SRTP context (AES-GCM) is not sealed without pion")
	}

	// Not direct: pion writes, with the same SRTP context.
	sfu.direct.setPair(bob.peer.sub.ID(), nil)
	pion, direct := dc.viaPion.Load(), dc.sent()
	base := bob.packets("alice", "video")
	waitFor(t, 5*time.Second, "bob receiving through pion", func() bool {
		return bob.packets("alice", "video") > base+30
	})
	if dc.viaPion.Load() < pion+30 {
		t.Fatalf("only %d packets went through pion after the pair stopped being direct", dc.viaPion.Load()-pion)
	}
	if d := dc.sent() - direct; d > 4 { // writes already past the check
		t.Fatalf("%d direct writes after the pair stopped being direct", d)
	}

	// Direct again.
	var pair *webrtc.ICECandidatePair
	if p, err := bob.peer.sub.SCTP().Transport().ICETransport().GetSelectedCandidatePair(); err == nil {
		pair = p
	}
	sfu.direct.setPair(bob.peer.sub.ID(), pair)
	direct = dc.sent()
	base = bob.packets("alice", "video")
	waitFor(t, 5*time.Second, "bob receiving directly again", func() bool {
		return bob.packets("alice", "video") > base+30 && dc.sent() > direct+30
	})
}

// TestDirectRolloverAcrossPaths: the direct path shares pion's SRTP
// context, so a stream whose sequence numbers roll over on one path
// stays decryptable when its packets move to the other.
func TestDirectRolloverAcrossPaths(t *testing.T) {
	sfu := newTestSFU(t, Params{})
	sender, err := sfu.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer sender.Close()
	sfu.direct.attach(sender)
	sender.SCTP().Transport().ICETransport().OnSelectedCandidatePairChange(func(p *webrtc.ICECandidatePair) {
		sfu.direct.setPair(sender.ID(), p)
	})
	receiver, err := clientAPI(t, clientOpts{}).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer receiver.Close()
	var tracks [2]*webrtc.TrackLocalStaticRTP
	for i := range tracks {
		tr, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, string(rune('a'+i)), "s")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sender.AddTrack(tr); err != nil {
			t.Fatal(err)
		}
		tracks[i] = tr
	}
	var mu sync.Mutex
	seen := map[string]map[uint16]bool{"a": {}, "b": {}}
	receiver.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			mu.Lock()
			seen[tr.ID()][p.SequenceNumber] = true
			mu.Unlock()
		}
	})
	connect(t, sender, receiver)

	dc := sfu.direct.get(sender.ID())
	payload := bytes.Repeat([]byte{0x10}, 800)
	seqs := [2]uint16{40000, 30000}
	write := func(n int) {
		for range n {
			for i, tr := range tracks {
				if err := tr.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seqs[i], Timestamp: uint32(seqs[i]) * 3000}, Payload: payload}); err != nil {
					t.Fatal(err)
				}
				seqs[i]++
			}
			time.Sleep(200 * time.Microsecond)
		}
	}
	// Until the receiver gets both tracks (the first writes may precede
	// the receiver's tracks).
	waitFor(t, 10*time.Second, "first packets", func() bool {
		write(5)
		mu.Lock()
		defer mu.Unlock()
		return len(seen["a"]) > 0 && len(seen["b"]) > 0
	})
	if dc.sent() == 0 {
		t.Fatal("the sender is not writing directly")
	}
	pair, err := sender.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil {
		t.Fatal("no selected pair", err)
	}
	// a rolls over on pion's path and continues directly; b rolls over
	// directly and continues on pion's path.
	seqs[0] = 65536 - 60
	fromA := seqs[0]
	sfu.direct.setPair(sender.ID(), nil)
	write(120)
	seqs[1] = 65536 - 60
	fromB := seqs[1]
	sfu.direct.setPair(sender.ID(), pair)
	write(120)
	sfu.direct.setPair(sender.ID(), nil)
	write(120)
	sfu.direct.setPair(sender.ID(), pair)
	write(120)
	missing := func() (string, uint16, bool) {
		mu.Lock()
		defer mu.Unlock()
		for s := fromA; s != seqs[0]; s++ {
			if !seen["a"][s] {
				return "a", s, true
			}
		}
		for s := fromB; s != seqs[1]; s++ {
			if !seen["b"][s] {
				return "b", s, true
			}
		}
		return "", 0, false
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		tr, s, miss := missing()
		if !miss {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("track %s: packet %d never decrypted (pion wrote %d, direct %d)", tr, s, dc.viaPion.Load(), dc.sent())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if dc.viaPion.Load() < 400 || dc.sent() < 400 {
		t.Fatalf("pion wrote %d, direct %d: the test did not use both paths", dc.viaPion.Load(), dc.sent())
	}
}

// connect negotiates a offerer and b answerer in one round, without
// trickle.
func connect(t *testing.T, a, b *webrtc.PeerConnection) {
	t.Helper()
	offer, err := a.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	done := webrtc.GatheringCompletePromise(a)
	if err := a.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-done
	if err := b.SetRemoteDescription(*a.LocalDescription()); err != nil {
		t.Fatal(err)
	}
	answer, err := b.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	done = webrtc.GatheringCompletePromise(b)
	if err := b.SetLocalDescription(answer); err != nil {
		t.Fatal(err)
	}
	<-done
	if err := a.SetRemoteDescription(*b.LocalDescription()); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkDirectWrite: one 1100-byte packet written to 70 subscribers
// on the direct write path, each with its own SRTP context and buffer,
// in one send batch, as a fan-out does; a subscriber's packet per op.
// Each subscriber's state is cold by the time its turn comes again,
// as in a large room.
func BenchmarkDirectWrite(b *testing.B) {
	// pion: each copy marshalled into the connection's buffer, encrypted
	// by pion's context, copied into the shared batch (the path off the
	// socket's readers, and every path before ef14f98). sealed: each
	// copy marshalled into the reader's own batch and sealed there with
	// the stream's rollover counter (ef14f98, ab2662d).
	for _, mode := range []string{"pion", "sealed"} {
		b.Run(mode, func(b *testing.B) { benchmarkDirectWrite(b, mode == "sealed") })
	}
}

func benchmarkDirectWrite(b *testing.B, sealed bool) {
	const subs = 70
	rx, conn := loopbackPair(b)
	go func() { // drain, as a subscriber would
		buf := make([]byte, 2000)
		for {
			if _, _, err := rx.ReadFromUDPAddrPort(buf); err != nil {
				return
			}
		}
	}()
	outs := make([]*directOut, subs)
	rocs := make([]rollover, subs)
	for i := range outs {
		enc, _ := srtpPair(b)
		outs[i] = newTestDirectOut(conn, rx, enc)
		if sealed {
			s, err := sealerOf(enc)
			if err != nil {
				b.Fatal(err)
			}
			outs[i].sealer = *s
			outs[i].seal = &outs[i].sealer
		}
	}
	ob := newOutbox(conn)
	payload := bytes.Repeat([]byte{0xab}, 1100)
	h := &rtp.Header{Version: 2, PayloadType: 96, SSRC: 0xdeadbeef}
	if err := h.SetExtension(3, []byte{1, 2}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	b.ResetTimer()
	for i := 0; i < b.N; {
		h.SequenceNumber++
		conn.hold()
		for j, o := range outs {
			var err error
			if sealed {
				err = o.writeStream(ob, h, payload, rocs[j].sent(h.SequenceNumber))
			} else {
				_, err = o.write(h, payload)
			}
			if err != nil {
				b.Fatal(err)
			}
			if i++; i == b.N {
				break
			}
		}
		ob.flush()
		conn.release()
	}
}

// loopbackPair returns a subscriber's socket and the SFU's batchConn,
// both on loopback, closed when the test ends.
func loopbackPair(tb testing.TB) (*net.UDPConn, *batchConn) {
	tb.Helper()
	rx := loopbackUDP(tb)
	tx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatal(err)
	}
	conn := newBatchConn(tx)
	tb.Cleanup(func() { _ = conn.Close() })
	return rx, conn
}

// newTestDirectOut is a direct writer to rx through conn with ctx.
func newTestDirectOut(conn *batchConn, rx *net.UDPConn, ctx *srtp.Context) *directOut {
	buf := &directBuf{}
	buf.hdr.Extensions = buf.exts[:0]
	return &directOut{conn: conn, to: rx.LocalAddr().(*net.UDPAddr).AddrPort(), ctx: ctx, ctxMu: &sync.Mutex{}, buf: buf}
}

// TestWriteInto: a reader's fan-out marshals and encrypts each copy
// straight into its send batch, sealed without pion or (another
// profile) with pion's context; off the readers, a sealed copy goes
// through the shared batch. What goes on the wire, more packets than
// one batch holds and across the sequence number's rollover, decrypts
// to what was written, stamped with consecutive transport-wide sequence
// numbers that the subscriber's estimator records; the writes allocate
// nothing.
func TestWriteInto(t *testing.T) {
	for _, sealed := range []bool{false, true} {
		for _, reader := range []bool{false, true} {
			if !sealed && !reader {
				continue // pion's context off the readers: the interceptors' path
			}
			t.Run(fmt.Sprintf("sealed=%v/reader=%v", sealed, reader), func(t *testing.T) { testWriteInto(t, sealed, reader) })
		}
	}
}

func testWriteInto(t *testing.T, sealed, reader bool) {
	enc, dec := srtpPair(t)
	rx, conn := loopbackPair(t)
	o := newTestDirectOut(conn, rx, enc)
	if sealed {
		var err error
		if o.seal, err = sealerOf(enc); err != nil {
			t.Fatal(err)
		}
	}
	ob := newOutbox(conn)
	const twccID = 5
	d := &downTrack{conn: &directConn{}, bw: newBandwidth(nil), twccID: twccID}
	d.conn.out.Store(o)
	if d.directOut(ob) != o || d.directOut(newOutbox(newBatchConn(rx))) != nil {
		t.Fatal("directOut: the connection's path only for a batch of its own socket group")
	}
	if got := d.directOut(nil); (got == o) != sealed {
		t.Fatalf("directOut(nil) = %v: off the readers only a sealed copy is written directly", got)
	}
	var out *outbox
	if reader {
		out = ob
		conn.hold() // off the readers: the shared batch, held as a fan-out holds it
	} else {
		conn.hold()
	}

	const n = batchSize + 10 // one full batch sent on its own, the rest by flush
	payload := bytes.Repeat([]byte{0xcd}, 1000)
	h := &rtp.Header{Version: 2, PayloadType: 96, SSRC: 0x1234}
	for i := range n {
		h.SequenceNumber = uint16(65536 - n/2 + i) // across the rollover
		h.Extensions = h.Extensions[:0]
		h.Extension = false
		if err := d.writeInto(o, out, h, payload, d.roc.sent(h.SequenceNumber)); err != nil {
			t.Fatal(err)
		}
	}
	if reader && ob.b.n != n-batchSize {
		t.Fatalf("the outbox holds %d packets, want %d (a full batch goes at once)", ob.b.n, n-batchSize)
	}
	ob.flush()
	conn.release()
	got := make([]byte, 2000)
	var plain []byte
	for i := range n {
		_ = rx.SetReadDeadline(time.Now().Add(2 * time.Second))
		k, _, err := rx.ReadFromUDP(got)
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if plain, err = dec.DecryptRTP(plain[:0], got[:k], nil); err != nil {
			t.Fatalf("packet %d: subscriber cannot decrypt: %v", i, err)
		}
		var p rtp.Packet
		if err := p.Unmarshal(plain); err != nil {
			t.Fatal(err)
		}
		ext := p.GetExtension(twccID)
		if p.SequenceNumber != uint16(65536-n/2+i) || !bytes.Equal(p.Payload, payload) || len(ext) != 2 || int(ext[0])<<8|int(ext[1]) != i {
			t.Fatalf("packet %d: seq %d, transport-wide %v, %d payload bytes", i, p.SequenceNumber, ext, len(p.Payload))
		}
		if s := d.bw.sent[i]; int(s.seq) != i || s.size < 1000 {
			t.Fatalf("packet %d: the estimator recorded %+v", i, s)
		}
	}
	if d.conn.sent() != n {
		t.Fatalf("counted %d direct writes, want %d", d.conn.sent(), n)
	}
	if sealed && d.handed != o {
		t.Fatal("a sealed stream does not remember whose context to hand back to")
	}
	allocs := testing.AllocsPerRun(200, func() {
		h.SequenceNumber++
		h.Extensions = h.Extensions[:0]
		if err := d.writeInto(o, ob, h, payload, d.roc.sent(h.SequenceNumber)); err != nil {
			t.Fatal(err)
		}
		ob.flush()
	})
	if allocs != 0 {
		t.Fatalf("a write into the outbox allocates %.1f times", allocs)
	}
	// A packet too large for a slot is not written into the outbox.
	if fitsSlot(h, batchMTU) {
		t.Fatal("a payload of a whole slot fits")
	}
}

package media

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/pion/webrtc/v4"
)

// testContexts returns an encrypting and a decrypting context with the
// same keys.
func testContexts(t testing.TB, profile srtp.ProtectionProfile, opts ...srtp.ContextOption) (enc, dec *srtp.Context) {
	t.Helper()
	keyLen, err := profile.KeyLen()
	if err != nil {
		t.Fatal(err)
	}
	saltLen, err := profile.SaltLen()
	if err != nil {
		t.Fatal(err)
	}
	key, salt := bytes.Repeat([]byte{0x42}, keyLen), bytes.Repeat([]byte{0x17}, saltLen)
	if enc, err = srtp.CreateContext(key, salt, profile, opts...); err != nil {
		t.Fatal(err)
	}
	if dec, err = srtp.CreateContext(key, salt, profile, opts...); err != nil {
		t.Fatal(err)
	}
	return enc, dec
}

// TestSealerMatchesPion: sealing with a context's key and the stream's
// own rollover counter puts on the wire exactly what pion's EncryptRTP
// does, for both AES-GCM profiles, with and without cryptex (RFC 9335,
// which pion negotiates with pion), headers with and without one- and
// two-byte extensions, across the sequence number's rollover; the
// other profiles are left to pion.
func TestSealerMatchesPion(t *testing.T) {
	for _, c := range []struct {
		profile srtp.ProtectionProfile
		cryptex bool
	}{{srtp.ProtectionProfileAeadAes128Gcm, false}, {srtp.ProtectionProfileAeadAes256Gcm, false}, {srtp.ProtectionProfileAeadAes128Gcm, true}} {
		profile := c.profile
		var opts []srtp.ContextOption
		if c.cryptex {
			opts = append(opts, srtp.Cryptex(srtp.CryptexModeEnabled))
		}
		pion, _ := testContexts(t, profile, opts...)
		ours, dec := testContexts(t, profile, opts...)
		s, err := sealerOf(ours)
		if err != nil {
			t.Fatalf("profile %v: %v", profile, err)
		}
		rng := rand.New(rand.NewPCG(1, 2))
		var r rollover
		var iv [12]byte
		buf := make([]byte, batchMTU)
		var plain []byte
		seq := uint16(65536 - 150)
		for i := range 300 {
			h := &rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, Timestamp: rng.Uint32(), SSRC: 0xabcdef01, Marker: i%7 == 0}
			switch i % 3 {
			case 0:
				if err := h.SetExtension(3, []byte{byte(i), 1}); err != nil {
					t.Fatal(err)
				}
			case 1:
				h.Extension, h.ExtensionProfile = true, rtp.ExtensionProfileTwoByte
				if err := h.SetExtension(20, []byte{byte(i), 2, 3}); err != nil || h.ExtensionProfile != rtp.ExtensionProfileTwoByte {
					t.Fatal("no two-byte extension", err)
				}
			}
			payload := make([]byte, 1+rng.IntN(1200))
			for j := range payload {
				payload[j] = byte(rng.Uint32())
			}
			hl, err := h.MarshalTo(buf)
			if err != nil {
				t.Fatal(err)
			}
			n := hl + copy(buf[hl:], payload)
			buf0 := append([]byte(nil), buf[:n]...)
			want, err := pion.EncryptRTP(nil, buf[:n], nil)
			if err != nil {
				t.Fatal(err)
			}
			got := s.seal(buf, h, hl, n, r.sent(seq), &iv)
			if !bytes.Equal(got, want) {
				t.Fatalf("profile %v, packet %d (seq %d): sealed %x, pion %x", profile, i, seq, got[:24], want[:24])
			}
			if plain, err = dec.DecryptRTP(plain[:0], got, nil); err != nil || !bytes.Equal(plain[hl:], payload) || !bytes.Equal(plain[:hl], buf0[:hl]) {
				t.Fatalf("packet %d: the subscriber decrypts %v", i, err)
			}
			// Now and then a packet goes out of order, as a late one the
			// rewriter still forwards.
			if i%50 == 25 {
				seq -= 3
			} else if i%50 == 26 {
				seq += 4
			} else {
				seq++
			}
		}
		if r.current() != 1 {
			t.Fatalf("rollover counter %d after the rollover", r.current())
		}
		if s.cryptex != c.cryptex {
			t.Fatalf("cryptex %v, the context's %v", s.cryptex, c.cryptex)
		}
	}
	enc, _ := testContexts(t, srtp.ProtectionProfileAes128CmHmacSha1_80)
	if _, err := sealerOf(enc); err == nil {
		t.Fatal("an AES-CM context is sealed without pion")
	}
	if _, err := sealerOf(enc); err == errSRTPInternals {
		t.Fatal("pion's fields are not as expected")
	}
}

// TestRollover: the counter of each packet as RFC 3711 guesses it,
// late packets from before a rollover included.
func TestRollover(t *testing.T) {
	var r rollover
	for _, c := range []struct {
		seq uint16
		roc uint32
	}{{65530, 0}, {65535, 0}, {2, 1}, {65534, 0}, {3, 1}, {30000, 1}, {60000, 1}, {10, 2}, {59990, 1}, {11, 2}, {40000, 1}} {
		if got := r.sent(c.seq); got != c.roc {
			t.Fatalf("seq %d: rollover counter %d, want %d", c.seq, got, c.roc)
		}
	}
	if r.current() != 2 {
		t.Fatalf("current %d, want 2", r.current())
	}
	var s rollover
	if s.sent(100) != 0 || s.sent(90) != 0 || s.sent(65535-10) != 0 {
		t.Fatal("a packet before the stream's first is in its first period")
	}
}

// TestHandBack: after packets sealed without pion cross a rollover,
// pion's path encrypts the stream decryptably only once the downTrack
// has handed the counter back to its context.
func TestHandBack(t *testing.T) {
	for _, hand := range []bool{false, true} {
		enc, dec := testContexts(t, srtp.ProtectionProfileAeadAes128Gcm)
		o := &directOut{ctx: enc, ctxMu: new(sync.Mutex)}
		var err error
		if o.seal, err = sealerOf(enc); err != nil {
			t.Fatal(err)
		}
		d := &downTrack{ssrc: 0x5151}
		var iv [12]byte
		buf := make([]byte, batchMTU)
		var plain []byte
		payload := bytes.Repeat([]byte{1}, 500)
		seq := uint16(65536 - 20)
		for range 40 { // sealed across the rollover
			h := &rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, SSRC: d.ssrc}
			hl, _ := h.MarshalTo(buf)
			n := hl + copy(buf[hl:], payload)
			if plain, err = dec.DecryptRTP(plain[:0], o.seal.seal(buf, h, hl, n, d.roc.sent(seq), &iv), nil); err != nil {
				t.Fatal(err)
			}
			d.handed = o
			seq++
		}
		if hand {
			d.handBack()
			if d.handed != nil {
				t.Fatal("handed back twice")
			}
		}
		h := &rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, SSRC: d.ssrc}
		hl, _ := h.MarshalTo(buf)
		n := hl + copy(buf[hl:], payload)
		d.roc.sent(seq)
		wire, err := enc.EncryptRTP(nil, buf[:n], nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = dec.DecryptRTP(plain[:0], wire, nil)
		if hand && err != nil {
			t.Fatalf("pion's packet after the hand-back: %v", err)
		}
		if !hand && err == nil {
			t.Fatal("pion's packet decrypts without the hand-back: the test shows nothing")
		}
	}
}

// BenchmarkSeal: one 1100-byte packet encrypted for one of 70 or 4000
// subscribers (each with its own context, in turn), by pion's
// EncryptRTP or sealed with the stream's own rollover counter; no send.
// With 4000 the contexts do not stay in cache from one packet to the
// next, as in a loaded SFU, where the fan-outs, the kernel and the
// other goroutines pass through the cache between a subscriber's
// packets.
func BenchmarkSeal(b *testing.B) {
	for _, subs := range []int{70, 4000} {
		for _, mode := range []string{"pion", "sealed"} {
			b.Run(fmt.Sprintf("subs=%d/%s", subs, mode), func(b *testing.B) { benchmarkSeal(b, subs, mode == "sealed") })
		}
	}
}

func benchmarkSeal(b *testing.B, subs int, sealed bool) {
	ctxs := make([]*srtp.Context, subs)
	sealers := make([]*rtpSealer, subs)
	rocs := make([]rollover, subs)
	for i := range ctxs {
		enc, _ := srtpPair(b)
		ctxs[i] = enc
		s, err := sealerOf(enc)
		if err != nil {
			b.Fatal(err)
		}
		sealers[i] = s
	}
	h := &rtp.Header{Version: 2, PayloadType: 96, SSRC: 0xdeadbeef}
	if err := h.SetExtension(3, []byte{1, 2}); err != nil {
		b.Fatal(err)
	}
	payload := bytes.Repeat([]byte{0xab}, 1100)
	buf := make([]byte, batchMTU)
	var parsed rtp.Header
	var iv [12]byte
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for i := 0; b.Loop(); i++ {
		j := i % subs
		if j == 0 {
			h.SequenceNumber++
		}
		hl, _ := h.MarshalTo(buf)
		n := hl + copy(buf[hl:], payload)
		if !sealed {
			if _, err := ctxs[j].EncryptRTP(buf[:0], buf[:n], &parsed); err != nil {
				b.Fatal(err)
			}
		} else {
			sealers[j].seal(buf, h, hl, n, rocs[j].sent(h.SequenceNumber), &iv)
		}
	}
}

// TestSealedRolloverAcrossPaths: a real subscriber keeps decrypting a
// sealed stream whose sequence numbers roll over, and keeps decrypting
// it when its connection stops being direct (pion's context encrypts,
// told the rollover counter by the downTrack) and when it is direct
// again.
func TestSealedRolloverAcrossPaths(t *testing.T) {
	sfu := newTestSFU(t, Params{})
	_, _, bob, _ := aliceToBob(t, sfu, clientOpts{}, 10)
	subID := bob.peer.sub.ID()
	dc := sfu.direct.get(subID)
	waitFor(t, 5*time.Second, "sealed direct writes", func() bool {
		o := dc.out.Load()
		return o != nil && o.seal != nil && dc.sent() > 20
	})
	d := bob.down(webrtc.RTPCodecTypeVideo)
	if d == nil {
		t.Fatal("bob has no video downTrack")
	}
	received := func(more int) {
		t.Helper()
		base := bob.packets("alice", "video")
		waitFor(t, 10*time.Second, fmt.Sprintf("bob receiving %d more", more), func() bool {
			return bob.packets("alice", "video") >= base+more
		})
	}
	// Move the outgoing sequence numbers to just before the rollover, in
	// steps the subscriber's SRTP takes as moving forward.
	for {
		d.wmu.Lock()
		left := uint16(65536-100) - d.rw.lastOutSeq
		step := min(left, 30000)
		d.rw.seqOffset -= step
		d.wmu.Unlock()
		received(10)
		if step == left {
			break
		}
	}
	rolled := func() bool {
		d.wmu.Lock()
		defer d.wmu.Unlock()
		return d.roc.current() == 1
	}
	waitFor(t, 10*time.Second, "the stream rolling over", rolled)
	received(30)

	pion := dc.viaPion.Load()
	pair, err := bob.peer.sub.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil {
		t.Fatal("no selected pair", err)
	}
	sfu.direct.setPair(subID, nil)
	received(30)
	if dc.viaPion.Load() < pion+30 {
		t.Fatalf("only %d packets through pion", dc.viaPion.Load()-pion)
	}
	direct := dc.sent()
	sfu.direct.setPair(subID, pair)
	received(30)
	if dc.sent() < direct+30 {
		t.Fatalf("only %d packets sealed after the pair was direct again", dc.sent()-direct)
	}
}

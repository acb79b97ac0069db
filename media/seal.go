package media

import (
	"crypto/cipher"
	"encoding/binary"
	"fmt"
	"reflect"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
)

// Sealing a subscriber's RTP without pion's per-packet bookkeeping.
//
// pion's Context.EncryptRTP parses the header the caller has just
// marshalled, looks the SSRC's rollover state up in a map, and derives
// the rollover counter from it: three loads of state that, with 70
// subscribers, are never in cache, a tenth of the server's CPU in 4 +
// 70. A downTrack knows every sequence number it sends, so it keeps its
// stream's rollover counter itself (rollover) and seals its packets
// with the AEAD and session salt of the connection's own SRTP context
// (RFC 7714: AES-GCM, the profiles Concord negotiates first). The
// context stays pion's: pion's path (a connection on TCP or a relay, a
// retransmission written through pion) still encrypts with it, and a
// downTrack moving a stream back to pion's path first tells the context
// the rollover counter (downTrack.handBack).

// rtpSealer encrypts RTP with the key and salt of an SRTP context. It
// holds no per-packet state: any number of goroutines may use it.
type rtpSealer struct {
	aead cipher.AEAD
	salt [12]byte
	// cryptex: header extensions are encrypted too (RFC 9335), as both
	// ends negotiated.
	cryptex bool
}

// sealTag is what sealing adds to a packet: the AES-GCM tag.
const sealTag = 16

// sealerOf returns a sealer for pion's local context ctx, or an error
// when the context is not one sealer can stand in for: another
// protection profile than AES-GCM, a master key identifier, the
// rollover counter carried in packets, or pion's fields not shaped as expected (TestSealerMatchesPion says so).
func sealerOf(ctx *srtp.Context) (*rtpSealer, error) {
	v := reflect.ValueOf(ctx).Elem()
	rcc := fieldOf[srtp.RCCMode](v, "rccMode")
	if rcc == nil {
		return nil, errSRTPInternals
	}
	if *rcc != srtp.RCCModeNone {
		return nil, fmt.Errorf("media: SRTP rollover counter carriage: not sealed directly")
	}
	c := v.FieldByName("cipher")
	if !c.IsValid() || c.Kind() != reflect.Interface || c.IsNil() {
		return nil, errSRTPInternals
	}
	p := c.Elem()
	if p.Kind() != reflect.Pointer || p.IsNil() || p.Elem().Kind() != reflect.Struct {
		return nil, errSRTPInternals
	}
	s := p.Elem()
	if s.Type().Name() != "srtpCipherAeadAesGcm" {
		return nil, fmt.Errorf("media: SRTP cipher %s: not sealed directly", s.Type().Name())
	}
	aeadF := fieldOf[cipher.AEAD](s, "srtpCipher")
	salt := fieldOf[[]byte](s, "srtpSessionSalt")
	mki := fieldOf[[]byte](s, "mki")
	encrypted := fieldOf[bool](s, "srtpEncrypted")
	cryptex := fieldOf[bool](s, "useCryptex")
	if aeadF == nil || salt == nil || len(*salt) != 12 || mki == nil || encrypted == nil || cryptex == nil {
		return nil, errSRTPInternals
	}
	if len(*mki) != 0 || !*encrypted {
		return nil, fmt.Errorf("media: SRTP with a key identifier, or unencrypted: not sealed directly")
	}
	aead := *aeadF
	if aead == nil || aead.NonceSize() != 12 || aead.Overhead() != sealTag {
		return nil, errSRTPInternals
	}
	sl := &rtpSealer{aead: aead, cryptex: *cryptex}
	copy(sl.salt[:], *salt)
	return sl, nil
}

// seal encrypts, in place, the packet pkt[:n] whose header h takes its
// first hl bytes, and returns it with its tag: pkt must have room for
// it. With cryptex, a header extension is encrypted with the payload
// and its profile marked so; a header with CSRCs is then not sealed
// (nil: the SFU's never has any). iv is the caller's scratch memory (on
// the stack it would escape to the heap through the AEAD's interface).
func (s *rtpSealer) seal(pkt []byte, h *rtp.Header, hl, n int, roc uint32, iv *[12]byte) []byte {
	*iv = [12]byte{}
	binary.BigEndian.PutUint32(iv[2:], h.SSRC)
	binary.BigEndian.PutUint32(iv[6:], roc)
	binary.BigEndian.PutUint16(iv[10:], h.SequenceNumber)
	for i := range iv {
		iv[i] ^= s.salt[i]
	}
	if s.cryptex && h.Extension {
		if len(h.CSRC) > 0 {
			return nil
		}
		profile := uint16(rtp.CryptexProfileOneByte)
		if h.ExtensionProfile != rtp.ExtensionProfileOneByte {
			profile = rtp.CryptexProfileTwoByte
		}
		binary.BigEndian.PutUint16(pkt[12:], profile)
		hl = 16 // the fixed header and the extension's own
	}
	s.aead.Seal(pkt[hl:hl], iv[:], pkt[hl:n], pkt[:hl])
	return pkt[:n+sealTag]
}

// rollover follows one sending stream's rollover counter (RFC 3711,
// 3.3.1) from the sequence numbers it sends, as pion's context does
// for what it encrypts: index is the newest packet's rollover counter
// and sequence number.
type rollover struct {
	index   uint64
	started bool
}

// sent returns the rollover counter of a packet sent with sequence
// number seq, which a newer packet advances. A packet at most 32 767
// behind the newest belongs to its rollover period.
func (r *rollover) sent(seq uint16) uint32 {
	if !r.started {
		r.started = true
		r.index = uint64(seq)
		return 0
	}
	diff := int64(int16(seq - uint16(r.index)))
	i := int64(r.index) + diff
	if i < 0 {
		return 0 // older than the stream's first packet
	}
	if diff > 0 {
		r.index = uint64(i)
	}
	return uint32(i >> 16)
}

// current is the newest packet's rollover counter.
func (r *rollover) current() uint32 { return uint32(r.index >> 16) }

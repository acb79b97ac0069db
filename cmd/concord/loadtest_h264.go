package main

import (
	"fmt"

	"github.com/pion/webrtc/v4"
)

// Synthetic H.264 for --codec h264: constrained baseline, packetization
// mode 1 (RFC 6184), as browsers send it. Nothing decodes these frames;
// what matters is that their RTP payloads have the layout an SFU reads
// (NAL unit types, STAP-A sizes, FU-A headers), and that the measurement
// trailer written over the last trailerLen bytes of every packet lands in
// NAL unit payload bytes, never in a header or a size.

// H.264 NAL unit types (RFC 6184, H.264 table 7-1).
const (
	h264NALSlice = 1  // coded slice of a non-IDR picture
	h264NALIDR   = 5  // coded slice of an IDR picture
	h264NALSPS   = 7  // sequence parameter set
	h264NALPPS   = 8  // picture parameter set
	h264STAPA    = 24 // single-time aggregation packet
	h264FUA      = 28 // fragmentation unit
)

// h264Codec is the codec of --codec h264, the one browsers offer first
// for H.264: constrained baseline 3.1, packetization mode 1.
var h264Codec = webrtc.RTPCodecCapability{
	MimeType:    webrtc.MimeTypeH264,
	ClockRate:   90000,
	SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
}

// h264NALMin is the smallest synthetic NAL unit: its header byte and a
// trailer's worth of payload, so that a trailer written over the end of a
// packet that ends with it stays inside it.
const h264NALMin = 1 + trailerLen

// h264NAL returns a synthetic NAL unit of size bytes (at least
// h264NALMin): the header byte, lead, then filler.
func h264NAL(header byte, lead []byte, size int) []byte {
	nal := make([]byte, max(size, h264NALMin, 1+len(lead)))
	nal[0] = header
	copy(nal[1:], lead)
	for i := 1 + len(lead); i < len(nal); i++ {
		nal[i] = byte(i)
	}
	return nal
}

// h264KeyframeUnits returns the NAL units of a synthetic IDR picture whose
// slice is size bytes: SPS, PPS and the IDR slice, as an encoder emits
// them. The parameter sets begin as a constrained baseline 3.1 encoder's
// do (NRI 3) but are longer than real ones (a PPS is 4 to 8 bytes) so that
// a trailer over the end of a STAP-A that ends with one stays in its
// payload.
func h264KeyframeUnits(size int) [][]byte {
	return [][]byte{
		h264NAL(0x60|h264NALSPS, []byte{0x42, 0xe0, 0x1f, 0x8d, 0x8d, 0x40, 0x50, 0x17, 0xfc, 0xb8}, h264NALMin),
		h264NAL(0x60|h264NALPPS, []byte{0xce, 0x3c, 0x80}, h264NALMin),
		h264NAL(0x60|h264NALIDR, []byte{0x88, 0x84}, size),
	}
}

// h264DeltaUnits returns the NAL unit of a synthetic non-IDR picture of
// size bytes: one slice (NRI 2).
func h264DeltaUnits(size int) [][]byte {
	return [][]byte{h264NAL(0x40|h264NALSlice, []byte{0x9a}, size)}
}

// h264FUCount is how many FU-A fragments a NAL unit of n bytes (header
// included) needs in payloads of at most limit bytes: each fragment
// carries a 2-byte FU indicator and header and part of the NAL unit's
// payload (the NAL header travels in the FU header).
func h264FUCount(n, limit int) int {
	per := limit - 2
	return (n - 1 + per - 1) / per
}

// h264PacketsPerFrame is how many packets a picture of one NAL unit of n
// bytes takes in payloads of at most limit bytes.
func h264PacketsPerFrame(n, limit int) int {
	if n <= limit {
		return 1
	}
	return h264FUCount(n, limit)
}

// h264Payloads cuts the NAL units of one access unit into RTP payloads of
// at most limit bytes (RFC 6184, packetization mode 1), in order: NAL units
// that fit in one packet together are aggregated in a STAP-A (so SPS and
// PPS always share one, as browsers send them, with the IDR slice too when
// it fits); a NAL unit that fits alone is a single NAL unit packet; a
// larger one is cut into FU-A fragments of nearly equal size.
func h264Payloads(nals [][]byte, limit int) ([][]byte, error) {
	var out [][]byte
	for i := 0; i < len(nals); {
		// The longest run from i that fits in one STAP-A.
		j, size := i+1, 1+2+len(nals[i])
		for j < len(nals) && size+2+len(nals[j]) <= limit {
			size += 2 + len(nals[j])
			j++
		}
		switch nal := nals[i]; {
		case len(nal) < 1:
			return nil, fmt.Errorf("h264: empty NAL unit %d", i)
		case j-i > 1:
			out = append(out, h264STAP(nals[i:j]))
		case len(nal) <= limit:
			out = append(out, append([]byte(nil), nal...))
		default:
			if limit <= 2 {
				return nil, fmt.Errorf("h264: payload limit %d leaves no room for a fragment", limit)
			}
			out = append(out, h264Fragment(nal, limit)...)
		}
		i = j
	}
	return out, nil
}

// h264STAP aggregates NAL units into one STAP-A: a STAP-A NAL header (F
// of any unit, the highest NRI of them), then each unit after its 16-bit
// size.
func h264STAP(nals [][]byte) []byte {
	var f, nri byte
	size := 1
	for _, n := range nals {
		f |= n[0] & 0x80
		nri = max(nri, n[0]&0x60)
		size += 2 + len(n)
	}
	p := make([]byte, 1, size)
	p[0] = f | nri | h264STAPA
	for _, n := range nals {
		p = append(p, byte(len(n)>>8), byte(len(n)))
		p = append(p, n...)
	}
	return p
}

// h264Fragment cuts a NAL unit into FU-A fragments of at most limit bytes: an
// FU indicator (the unit's F and NRI, type 28), an FU header (start and
// end bits, the unit's type) and the next part of the unit's payload. The
// parts differ in size by at most a byte, so none is a runt.
func h264Fragment(nal []byte, limit int) [][]byte {
	n := h264FUCount(len(nal), limit)
	body := nal[1:]
	out := make([][]byte, 0, n)
	for k, off := 0, 0; k < n; k++ {
		part := len(body) / n
		if k < len(body)%n {
			part++
		}
		fu := nal[0] & 0x1f
		if k == 0 {
			fu |= 0x80 // S
		}
		if k == n-1 {
			fu |= 0x40 // E
		}
		p := make([]byte, 2, 2+part)
		p[0], p[1] = nal[0]&0xe0|h264FUA, fu
		out = append(out, append(p, body[off:off+part]...))
		off += part
	}
	return out
}

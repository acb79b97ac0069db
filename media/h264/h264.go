// Package h264 holds what Concord needs of H.264's RTP payload format
// (RFC 6184): the NAL unit types, where a subscriber can start decoding
// (Keyframe, which the SFU switches and answers keyframe requests by),
// and packetization mode 1's payloads (Packetize, which the load
// generator sends as browsers do).
package h264

import "fmt"

// NAL unit types (RFC 6184, H.264 table 7-1).
const (
	NALSlice = 1  // coded slice of a non-IDR picture
	NALIDR   = 5  // coded slice of an IDR picture
	NALSPS   = 7  // sequence parameter set
	NALPPS   = 8  // picture parameter set
	STAPA    = 24 // single-time aggregation packet
	FUA      = 28 // fragmentation unit
)

// Keyframe reports whether an RTP payload (packetization modes 0 and 1)
// starts an IDR picture or the parameter sets sent before one: a single
// SPS or IDR NAL unit, a STAP-A holding one, or the first fragment of a
// fragmented IDR NAL unit. Browsers send SPS and PPS (in a STAP-A)
// immediately before every IDR picture, so the first of those packets is
// where a subscriber can start decoding.
func Keyframe(p []byte) bool {
	if len(p) < 1 {
		return false
	}
	switch t := p[0] & 0x1f; t {
	case NALIDR, NALSPS:
		return true
	case STAPA:
		// NAL units, each after a 16-bit size.
		for i := 1; i+2 < len(p); {
			size := int(p[i])<<8 | int(p[i+1])
			i += 2
			if size == 0 || i+size > len(p) {
				return false
			}
			if nt := p[i] & 0x1f; nt == NALIDR || nt == NALSPS {
				return true
			}
			i += size
		}
		return false
	case FUA:
		// FU header: S E R Type(5); only the start fragment counts.
		return len(p) >= 2 && p[1]&0x80 != 0 && p[1]&0x1f == NALIDR
	default:
		return false
	}
}

// fragments is how many FU-A fragments a NAL unit of n bytes (header
// included) needs in payloads of at most limit bytes: each fragment
// carries a 2-byte FU indicator and header and part of the NAL unit's
// payload (the NAL header travels in the FU header).
func fragments(n, limit int) int {
	per := limit - 2
	return (n - 1 + per - 1) / per
}

// Packets is how many payloads Packetize cuts a lone NAL unit of n bytes
// into, in payloads of at most limit bytes.
func Packets(n, limit int) int {
	if n <= limit {
		return 1
	}
	return fragments(n, limit)
}

// Packetize cuts the NAL units of one access unit into RTP payloads of at
// most limit bytes (packetization mode 1), in order: NAL units that fit
// in one packet together are aggregated in a STAP-A (so SPS and PPS
// always share one, as browsers send them, with the IDR slice too when
// it fits); a NAL unit that fits alone is a single NAL unit packet; a
// larger one is cut into FU-A fragments of nearly equal size.
func Packetize(nals [][]byte, limit int) ([][]byte, error) {
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
			out = append(out, aggregate(nals[i:j]))
		case len(nal) <= limit:
			out = append(out, append([]byte(nil), nal...))
		default:
			if limit <= 2 {
				return nil, fmt.Errorf("h264: payload limit %d leaves no room for a fragment", limit)
			}
			out = append(out, fragment(nal, limit)...)
		}
		i = j
	}
	return out, nil
}

// aggregate puts NAL units into one STAP-A: a STAP-A NAL header (F of any
// unit, the highest NRI of them), then each unit after its 16-bit size.
func aggregate(nals [][]byte) []byte {
	var f, nri byte
	size := 1
	for _, n := range nals {
		f |= n[0] & 0x80
		nri = max(nri, n[0]&0x60)
		size += 2 + len(n)
	}
	p := make([]byte, 1, size)
	p[0] = f | nri | STAPA
	for _, n := range nals {
		p = append(p, byte(len(n)>>8), byte(len(n)))
		p = append(p, n...)
	}
	return p
}

// fragment cuts a NAL unit into FU-A fragments of at most limit bytes: an
// FU indicator (the unit's F and NRI, type 28), an FU header (start and
// end bits, the unit's type) and the next part of the unit's payload.
// The parts differ in size by at most a byte, so none is a runt.
func fragment(nal []byte, limit int) [][]byte {
	n := fragments(len(nal), limit)
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
		p[0], p[1] = nal[0]&0xe0|FUA, fu
		out = append(out, append(p, body[off:off+part]...))
		off += part
	}
	return out
}

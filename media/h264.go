package media

// H.264 NAL unit types (RFC 6184) that matter for finding keyframes.
const (
	h264NALSlice = 1  // coded slice of a non-IDR picture
	h264NALIDR   = 5  // coded slice of an IDR picture
	h264NALSPS   = 7  // sequence parameter set
	h264NALPPS   = 8  // picture parameter set
	h264STAPA    = 24 // single-time aggregation packet
	h264FUA      = 28 // fragmentation unit
)

// h264Keyframe reports whether an RTP payload (RFC 6184, packetization
// modes 0 and 1) starts an IDR picture or the parameter sets sent before
// one: a single SPS or IDR NAL unit, a STAP-A holding one, or the first
// fragment of a fragmented IDR NAL unit. Browsers send SPS and PPS (in a
// STAP-A) immediately before every IDR picture, so the first of those
// packets is where a subscriber can start decoding.
func h264Keyframe(p []byte) bool {
	if len(p) < 1 {
		return false
	}
	switch t := p[0] & 0x1f; t {
	case h264NALIDR, h264NALSPS:
		return true
	case h264STAPA:
		// NAL units, each after a 16-bit size.
		for i := 1; i+2 < len(p); {
			size := int(p[i])<<8 | int(p[i+1])
			i += 2
			if size == 0 || i+size > len(p) {
				return false
			}
			if nt := p[i] & 0x1f; nt == h264NALIDR || nt == h264NALSPS {
				return true
			}
			i += size
		}
		return false
	case h264FUA:
		// FU header: S E R Type(5); only the start fragment counts.
		return len(p) >= 2 && p[1]&0x80 != 0 && p[1]&0x1f == h264NALIDR
	default:
		return false
	}
}

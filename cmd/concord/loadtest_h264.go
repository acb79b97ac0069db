package main

import (
	"github.com/pion/webrtc/v4"

	"github.com/concord-odr/concord/media/h264"
)

// Synthetic H.264 for --codec h264: constrained baseline, packetization
// mode 1 (RFC 6184; media/h264 cuts the payloads), as browsers send it.
// Nothing decodes these frames; what matters is that their RTP payloads
// have the layout an SFU reads (NAL unit types, STAP-A sizes, FU-A
// headers), and that the measurement trailer written over the last
// trailerLen bytes of every packet lands in NAL unit payload bytes, never
// in a header or a size.

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
		h264NAL(0x60|h264.NALSPS, []byte{0x42, 0xe0, 0x1f, 0x8d, 0x8d, 0x40, 0x50, 0x17, 0xfc, 0xb8}, h264NALMin),
		h264NAL(0x60|h264.NALPPS, []byte{0xce, 0x3c, 0x80}, h264NALMin),
		h264NAL(0x60|h264.NALIDR, []byte{0x88, 0x84}, size),
	}
}

// h264DeltaUnits returns the NAL unit of a synthetic non-IDR picture of
// size bytes: one slice (NRI 2).
func h264DeltaUnits(size int) [][]byte {
	return [][]byte{h264NAL(0x40|h264.NALSlice, []byte{0x9a}, size)}
}

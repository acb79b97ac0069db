package media

import (
	"encoding/binary"
	"time"

	"github.com/pion/rtcp"
)

// Subscribers' RTCP is read from its bytes, without pion's rtcp.Unmarshal
// for the frequent packets. pion hands a compound packet to the reader
// of every stream it names: a receiver report naming a subscriber's
// eight streams was parsed sixteen times (by the transport-wide
// feedback reader and by RTPSender.ReadRTCP, for each), and a
// transport-wide feedback's parse allocated one object per packet it
// reported. Receiver reports, keyframe requests and transport-wide
// feedback are read in place; NACKs and REMB, rarer, are still
// unmarshalled.

// RTCP packet types and feedback formats (RFC 3550, 4585, 5104, 8888).
const (
	rtcpRR    = 201
	rtcpRTPFB = 205
	rtcpPSFB  = 206

	fmtNACK = 1  // RTPFB
	fmtTWCC = 15 // RTPFB
	fmtPLI  = 1  // PSFB
	fmtFIR  = 4  // PSFB
	fmtAFB  = 15 // PSFB: application layer feedback (REMB)
)

// rtcpIter walks the packets of a compound RTCP packet.
type rtcpIter struct{ b []byte }

// next returns the next packet's type, its count or format field, and
// its bytes (header included); ok is false at the end or at a malformed
// packet, which ends the walk.
func (it *rtcpIter) next() (pt, count uint8, p []byte, ok bool) {
	if len(it.b) < 4 || it.b[0]>>6 != 2 {
		return 0, 0, nil, false
	}
	size := 4 * (int(binary.BigEndian.Uint16(it.b[2:])) + 1)
	if size > len(it.b) {
		return 0, 0, nil, false
	}
	p, it.b = it.b[:size], it.b[size:]
	return p[1], p[0] & 0x1f, p, true
}

// mediaIs reports whether feedback packet p (RTPFB or PSFB) is about
// stream ssrc: its media source field.
func mediaIs(p []byte, ssrc uint32) bool {
	return len(p) >= 12 && binary.BigEndian.Uint32(p[8:]) == ssrc
}

// firNames reports whether a full intra request (RFC 5104 4.3.1) asks
// stream ssrc for a keyframe: its FCI entries name the streams.
func firNames(p []byte, ssrc uint32) bool {
	for fci := p[min(12, len(p)):]; len(fci) >= 8; fci = fci[8:] {
		if binary.BigEndian.Uint32(fci) == ssrc {
			return true
		}
	}
	return false
}

// reportBlocks calls fn with the SSRC and fraction lost of each report
// block of a receiver report.
func reportBlocks(p []byte, count uint8, fn func(ssrc uint32, fractionLost uint8)) {
	b := p[min(8, len(p)):]
	for range count {
		if len(b) < 24 {
			return
		}
		fn(binary.BigEndian.Uint32(b), b[4])
		b = b[24:]
	}
}

// twccStatus reads a transport-wide feedback packet (RTPFB format 15,
// draft-holmer-rmcat-transport-wide-cc-extensions-01): fn is called, in
// order, for each packet it reports received, with its transport-wide
// sequence number and its arrival time in nanoseconds on the receiver's
// clock. It reports false for a malformed packet (fn may have been
// called for a part of it). Its work is bounded by the packet's length,
// not by the status count it claims: a run of packets not received is
// skipped whole, and every packet received has a delta in the packet.
func twccStatus(p []byte, fn func(seq uint16, at int64)) bool {
	if len(p) < 20 {
		return false
	}
	seq := binary.BigEndian.Uint16(p[12:])
	count := int(binary.BigEndian.Uint16(p[14:]))
	ref := int64(p[16])<<16 | int64(p[17])<<8 | int64(p[18])
	at := ref * int64(64*time.Millisecond)
	chunks := p[20:]

	// The chunks cover count statuses; the deltas follow them.
	n, covered := 0, 0
	for covered < count {
		if len(chunks) < 2*(n+1) {
			return false
		}
		c := binary.BigEndian.Uint16(chunks[2*n:])
		covered += chunkLen(c)
		n++
	}
	deltas := chunks[2*n:]

	left := count
	for i := range n {
		c := binary.BigEndian.Uint16(chunks[2*i:])
		k := min(chunkLen(c), left)
		if s := chunkSymbol(c, 0); c&0x8000 == 0 && s != rtcp.TypeTCCPacketReceivedSmallDelta && s != rtcp.TypeTCCPacketReceivedLargeDelta {
			seq += uint16(k) // a run not received
			left -= k
			continue
		}
		for j := range k {
			switch chunkSymbol(c, j) {
			case rtcp.TypeTCCPacketReceivedSmallDelta:
				if len(deltas) < 1 {
					return false
				}
				at += int64(deltas[0]) * 250 * int64(time.Microsecond)
				deltas = deltas[1:]
				fn(seq, at)
			case rtcp.TypeTCCPacketReceivedLargeDelta:
				if len(deltas) < 2 {
					return false
				}
				at += int64(int16(binary.BigEndian.Uint16(deltas))) * 250 * int64(time.Microsecond)
				deltas = deltas[2:]
				fn(seq, at)
			}
			seq++
			left--
		}
	}
	return true
}

// chunkLen is how many statuses a packet status chunk holds.
func chunkLen(c uint16) int {
	switch {
	case c&0x8000 == 0:
		return int(c & 0x1fff) // run length
	case c&0x4000 == 0:
		return 14 // vector of 1-bit symbols
	default:
		return 7 // vector of 2-bit symbols
	}
}

// chunkSymbol is the k-th status of a chunk.
func chunkSymbol(c uint16, k int) uint16 {
	switch {
	case c&0x8000 == 0:
		return (c >> 13) & 3
	case c&0x4000 == 0:
		return (c >> (13 - k)) & 1 // 1: received, small delta
	default:
		return (c >> (12 - 2*k)) & 3
	}
}

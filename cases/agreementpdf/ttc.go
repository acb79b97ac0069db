package agreementpdf

import (
	"encoding/binary"
	"errors"
)

// firstFont returns the first font of a TrueType collection (.ttc) as a
// standalone TrueType file: its table directory and tables, with the
// tables' offsets rewritten. The tables' checksums stay valid; the
// head table's whole-file adjustment is not recomputed (PDF readers do
// not check it).
func firstFont(ttc []byte) ([]byte, error) {
	be := binary.BigEndian
	if len(ttc) < 16 || string(ttc[:4]) != "ttcf" || be.Uint32(ttc[8:]) < 1 {
		return nil, errors.New("not a TrueType collection")
	}
	off := int(be.Uint32(ttc[12:]))
	if off+12 > len(ttc) {
		return nil, errors.New("truncated collection")
	}
	n := int(be.Uint16(ttc[off+4:]))
	dir := off + 12
	if dir+16*n > len(ttc) {
		return nil, errors.New("truncated table directory")
	}
	head := 12 + 16*n
	out := make([]byte, head, len(ttc))
	copy(out, ttc[off:off+12])
	for i := range n {
		rec := ttc[dir+16*i : dir+16*i+16]
		tOff, tLen := int(be.Uint32(rec[8:])), int(be.Uint32(rec[12:]))
		if tOff < 0 || tLen < 0 || tOff+tLen > len(ttc) {
			return nil, errors.New("table out of range")
		}
		copy(out[12+16*i:], rec[:8]) // tag, checksum
		be.PutUint32(out[12+16*i+8:], uint32(len(out)))
		be.PutUint32(out[12+16*i+12:], uint32(tLen))
		out = append(out, ttc[tOff:tOff+tLen]...)
		for len(out)%4 != 0 {
			out = append(out, 0)
		}
	}
	return out, nil
}

package media

import "testing"

func TestVP8Keyframe(t *testing.T) {
	tests := []struct {
		name    string
		payload []byte
		want    bool
	}{
		{"empty", nil, false},
		{"keyframe, short descriptor", []byte{0x10, 0x00}, true},
		{"inter frame", []byte{0x10, 0x01}, false},
		{"continuation", []byte{0x00, 0x00}, false},
		{"other partition", []byte{0x11, 0x00}, false},
		{"keyframe, 15-bit picture id", []byte{0x90, 0x80, 0x81, 0x23, 0x00}, true},
		{"keyframe, 7-bit picture id, tl0picidx, tid", []byte{0x90, 0xe0, 0x12, 0x05, 0x40, 0x00}, true},
		{"inter, 7-bit picture id", []byte{0x90, 0x80, 0x12, 0x01}, false},
		{"truncated extension", []byte{0x90}, false},
		{"truncated picture id", []byte{0x90, 0x80}, false},
		{"no frame header", []byte{0x90, 0x80, 0x12}, false},
	}
	for _, tt := range tests {
		if got := vp8Keyframe(tt.payload); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}

func FuzzVP8Keyframe(f *testing.F) {
	f.Add([]byte{0x10, 0x00})
	f.Add([]byte{0x90, 0xf0, 0x81, 0x23, 0x05, 0x40, 0x00})
	f.Fuzz(func(t *testing.T, p []byte) {
		_ = vp8Keyframe(p)
	})
}

// FuzzRewriter feeds arbitrary packet sequences to the rewriter: it must
// never panic, and packets of one source that arrive in order leave it
// in order, one apart.
func FuzzRewriter(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8}, uint16(65530))
	f.Fuzz(func(t *testing.T, steps []byte, start uint16) {
		r := rewriter{clockRate: 90000}
		seq := start
		var last uint16
		var have bool
		for i, s := range steps {
			m := packetMeta{seq: seq, ts: uint32(i) * 3000, at: int64(i+1) * 33e6}
			out, _, ok := r.rewrite(&m, s&1 == 1, s&2 == 2)
			if !ok {
				t.Fatalf("in-order packet %d dropped", i)
			}
			if have && out != last+1 {
				t.Fatalf("packet %d: out %d after %d", i, out, last)
			}
			last, have = out, true
			seq += 1 + uint16(s>>6) // small forward gaps: loss upstream
			if s>>6 != 0 {
				have = false // a gap upstream stays visible
			}
		}
	})
}

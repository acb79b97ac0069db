package h264

import (
	"fmt"
	"testing"
)

func TestKeyframe(t *testing.T) {
	tests := []struct {
		name    string
		payload []byte
		want    bool
	}{
		{"empty", nil, false},
		{"single IDR", []byte{0x65, 0x88, 0x84}, true},
		{"single SPS", []byte{0x67, 0x42, 0xe0, 0x1f}, true},
		{"single PPS", []byte{0x68, 0xce}, false},
		{"single non-IDR slice", []byte{0x41, 0x9a}, false},
		{"STAP-A SPS+PPS", []byte{0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xce}, true},
		{"STAP-A PPS+IDR", []byte{0x78, 0x00, 0x02, 0x68, 0xce, 0x00, 0x02, 0x65, 0x88}, true},
		{"STAP-A slices only", []byte{0x78, 0x00, 0x02, 0x41, 0x9a, 0x00, 0x02, 0x41, 0x9b}, false},
		{"STAP-A truncated size", []byte{0x78, 0x00, 0x09, 0x67, 0x42}, false},
		{"STAP-A zero size", []byte{0x78, 0x00, 0x00, 0x67}, false},
		{"FU-A IDR start", []byte{0x7c, 0x85, 0x88, 0x84}, true},
		{"FU-A IDR middle", []byte{0x7c, 0x05, 0x00}, false},
		{"FU-A IDR end", []byte{0x7c, 0x45, 0x00}, false},
		{"FU-A slice start", []byte{0x7c, 0x81, 0x9a}, false},
		{"FU-A truncated", []byte{0x7c}, false},
	}
	for _, tt := range tests {
		if got := Keyframe(tt.payload); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestPacketizedKeyframe: what Packetize makes of an IDR picture is
// found where a decoder can start — the payload with its parameter sets,
// and the first fragment of a fragmented IDR slice — and nowhere else; a
// non-IDR picture is found nowhere.
func TestPacketizedKeyframe(t *testing.T) {
	unit := func(header byte, size int) []byte {
		n := make([]byte, size)
		n[0] = header
		for i := 1; i < size; i++ {
			n[i] = byte(i)
		}
		return n
	}
	sps, pps := unit(0x60|NALSPS, 12), unit(0x60|NALPPS, 6)
	for _, tc := range []struct {
		name     string
		nals     [][]byte
		payloads int
		keys     []int // the payloads Keyframe finds
	}{
		{"SPS, PPS and a small IDR slice", [][]byte{sps, pps, unit(0x60|NALIDR, 400)}, 1, []int{0}},
		{"SPS, PPS and a fragmented IDR slice", [][]byte{sps, pps, unit(0x60|NALIDR, 5000)}, 6, []int{0, 1}},
		{"a fragmented IDR slice alone", [][]byte{unit(0x60|NALIDR, 5000)}, 5, []int{0}},
		{"a fragmented non-IDR slice", [][]byte{unit(0x40|NALSlice, 5000)}, 5, nil},
		{"a small non-IDR slice", [][]byte{unit(0x40|NALSlice, 300)}, 1, nil},
	} {
		payloads, err := Packetize(tc.nals, 1200)
		if err != nil {
			t.Fatal(err)
		}
		if len(payloads) != tc.payloads {
			t.Errorf("%s: %d payloads, want %d", tc.name, len(payloads), tc.payloads)
		}
		var keys []int
		for i, p := range payloads {
			if len(p) > 1200 {
				t.Errorf("%s: payload %d is %d bytes", tc.name, i, len(p))
			}
			if Keyframe(p) {
				keys = append(keys, i)
			}
		}
		if fmt.Sprint(keys) != fmt.Sprint(tc.keys) {
			t.Errorf("%s: keyframe in payloads %v, want %v", tc.name, keys, tc.keys)
		}
	}
}

func TestPacketizeErrors(t *testing.T) {
	if _, err := Packetize([][]byte{{}}, 1200); err == nil {
		t.Error("an empty NAL unit packetized")
	}
	if _, err := Packetize([][]byte{make([]byte, 10)}, 2); err == nil {
		t.Error("a 10-byte unit fragmented into 2-byte payloads")
	}
}

func FuzzKeyframe(f *testing.F) {
	f.Add([]byte{0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xce})
	f.Add([]byte{0x7c, 0x85, 0x88})
	f.Fuzz(func(t *testing.T, p []byte) {
		_ = Keyframe(p)
	})
}

package signaling

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestDecode(t *testing.T) {
	tests := []struct {
		raw  string
		ok   bool
		code string
	}{
		{`{"type":"join","token":"t"}`, true, ""},
		{`{"type":"join"}`, false, CodeBadMessage},
		{`{"type":"offer","pc":"pub","sdp":"v=0"}`, true, ""},
		{`{"type":"offer","pc":"sub","sdp":"v=0"}`, false, CodeBadMessage},
		{`{"type":"offer","pc":"pub","sdp":"v=0","screenTracks":["{8f1c-aa}","screen"]}`, true, ""},
		{`{"type":"offer","pc":"pub","sdp":"v=0","screenTracks":[]}`, true, ""},
		{`{"type":"offer","pc":"pub","sdp":"v=0","screenTracks":["a","b","c","d","e"]}`, false, CodeBadMessage},
		{`{"type":"offer","pc":"pub","sdp":"v=0","screenTracks":[""]}`, false, CodeBadMessage},
		{`{"type":"offer","pc":"pub","sdp":"v=0","screenTracks":["` + strings.Repeat("x", 65) + `"]}`, false, CodeBadMessage},
		{`{"type":"offer","pc":"pub","sdp":"v=0","screenTracks":["has space"]}`, false, CodeBadMessage},
		{`{"type":"offer","pc":"pub","sdp":"v=0","screenTracks":"screen"}`, false, CodeBadMessage},
		{`{"type":"answer","pc":"sub","sdp":"v=0"}`, true, ""},
		{`{"type":"candidate","pc":"sub","candidate":{"candidate":"x"}}`, true, ""},
		{`{"type":"candidate","pc":"pub"}`, false, CodeBadMessage},
		{`{"type":"set_mode","mode":{"caucus":true,"side":"applicant"}}`, true, ""},
		{`{"type":"set_mode"}`, false, CodeBadMessage},
		{`{"type":"admit"}`, false, CodeBadMessage},
		{`{"type":"admit","participantId":"p"}`, true, ""},
		{`{"type":"lock"}`, false, CodeBadMessage},
		{`{"type":"chat","text":""}`, false, CodeBadMessage},
		{`{"type":"chat","text":"hello"}`, true, ""},
		{`{"type":"check_identity","participantId":"p"}`, false, CodeBadMessage},
		{`{"type":"nope"}`, false, CodeBadMessage},
		{`[]`, false, CodeBadMessage},
		{`{"type":5}`, false, CodeBadMessage},
	}
	for _, tt := range tests {
		_, err := decode([]byte(tt.raw))
		if tt.ok != (err == nil) {
			t.Errorf("%s: err %v", tt.raw, err)
			continue
		}
		var pe *protocolError
		if err != nil && (!errors.As(err, &pe) || pe.code != tt.code || pe.fatal) {
			t.Errorf("%s: %v, want non-fatal %s", tt.raw, err, tt.code)
		}
	}
}

// FuzzDecode: no input makes the decoder panic, and whatever it accepts
// has a known type and the fields that type needs.
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		`{"type":"join","token":"t"}`, `{"type":"offer","pc":"pub","sdp":"v=0"}`,
		`{"type":"candidate","pc":"sub","candidate":{"candidate":"c","sdpMid":"0"}}`,
		`{"type":"set_mode","mode":{"caucus":true,"side":"respondent"}}`, `{"type":"chat","text":"你好"}`,
		`{"type":"offer","pc":"pub","sdp":"v=0","screenTracks":["s"]}`,
		`{}`, `null`, `{"type":"lock","locked":false}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := decode(data)
		if err != nil {
			if asProtocolError(err).code != CodeBadMessage {
				t.Fatalf("decode error with code %q", asProtocolError(err).code)
			}
			return
		}
		switch m.Type {
		case TypeJoin:
			if m.Token == "" {
				t.Fatal("join without token accepted")
			}
		case TypeOffer, TypeAnswer:
			if m.SDP == "" {
				t.Fatal("sdp missing")
			}
			if !validScreenTracks(m.ScreenTracks) {
				t.Fatalf("screenTracks %q accepted", m.ScreenTracks)
			}
		case TypeCandidate:
			if m.Candidate == nil {
				t.Fatal("candidate missing")
			}
		case TypeSetMode:
			if m.Mode == nil {
				t.Fatal("mode missing")
			}
		}
		if _, err := json.Marshal(m); err != nil {
			t.Fatal(err)
		}
	})
}

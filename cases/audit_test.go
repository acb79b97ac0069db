package cases_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/concord-odr/concord/cases"
)

func TestCanonicalJSON(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{`{"b": 1, "a": [1, 2, {"y": null, "x": "中文"}]}`, `{"a":[1,2,{"x":"中文","y":null}],"b":1}`},
		{`"text"`, `"text"`},
		{`[]`, `[]`},
		{`{"a":1,"a":2}`, `{"a":2}`},
		{`"<\u00e9>\/"`, `"<é>/"`},
		{`1.50`, `1.5`},
		{`15e-1`, `1.5`},
		{`1E2`, `100`},
		{`-0.0`, `0`},
		{`0.0500`, `0.05`},
		{`-12345678901234567890`, `-12345678901234567890`},
		{`1.5e-7`, `0.00000015`},
		{`true`, `true`},
	} {
		got, err := cases.CanonicalJSON([]byte(tt.in))
		if err != nil || string(got) != tt.want {
			t.Errorf("CanonicalJSON(%s) = %s, %v; want %s", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{``, `{`, `1 2`, `1e999999`} {
		if _, err := cases.CanonicalJSON([]byte(bad)); err == nil {
			t.Errorf("CanonicalJSON(%q) succeeded", bad)
		}
	}
}

// FuzzCanonicalJSON checks that canonical JSON is valid, stable, and the
// same for a document re-encoded by another encoder.
func FuzzCanonicalJSON(f *testing.F) {
	for _, s := range []string{`{"b":1,"a":[1.50,"x"]}`, `"中文"`, `1e3`, `[{"":null}]`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := cases.CanonicalJSON([]byte(in))
		if err != nil {
			return
		}
		if !json.Valid(got) {
			t.Fatalf("invalid canonical JSON %s of %s", got, in)
		}
		again, err := cases.CanonicalJSON(got)
		if err != nil || !bytes.Equal(again, got) {
			t.Fatalf("not stable: %s -> %s (%v)", got, again, err)
		}
		var v any
		if json.Unmarshal(got, &v) != nil {
			return
		}
		indented, _ := json.MarshalIndent(v, "", "  ")
		other, err := cases.CanonicalJSON(indented)
		if err == nil && !bytes.Equal(other, got) && !strings.ContainsAny(string(got), "eE.") {
			t.Fatalf("re-encoded differs: %s vs %s", other, got)
		}
	})
}

func TestVerifyChain(t *testing.T) {
	at := time.Date(2025, 3, 14, 1, 2, 3, 4000, time.UTC)
	events := []cases.Event{
		{CaseID: "c1", Seq: 1, Type: "case.submitted", Actor: "intake", At: at, Payload: json.RawMessage(`{"b":1,"a":2}`)},
		{CaseID: "c1", Seq: 2, Type: "case.dispatched", Actor: "admin", At: at.Add(time.Second)},
		{CaseID: "c1", Seq: 3, Type: "case.closed", Actor: "med", At: at.Add(2 * time.Second), Payload: json.RawMessage(`"x"`)},
	}
	if sealed, err := cases.ChainEvents(events); err != nil || len(sealed) != 3 {
		t.Fatalf("ChainEvents: %v %v", sealed, err)
	}
	if rep := cases.VerifyChain("c1", events); !rep.OK || rep.Head.Seq != 3 || rep.Head.Hash != events[2].Hash {
		t.Fatalf("VerifyChain: %+v", rep)
	}
	// The payload's spelling does not matter, its value does.
	respelt := append([]cases.Event(nil), events...)
	respelt[0].Payload = json.RawMessage(`{ "a": 2, "b": 1.0 }`)
	if rep := cases.VerifyChain("c1", respelt); !rep.OK {
		t.Fatalf("respelt payload: %+v", rep.Break)
	}
	for _, tt := range []struct {
		name   string
		change func(e []cases.Event) []cases.Event
		seq    int64
	}{
		{"payload", func(e []cases.Event) []cases.Event { e[0].Payload = json.RawMessage(`{"a":3,"b":1}`); return e }, 1},
		{"time", func(e []cases.Event) []cases.Event { e[1].At = e[1].At.Add(time.Microsecond); return e }, 2},
		{"type", func(e []cases.Event) []cases.Event { e[2].Type = "case.rejected"; return e }, 3},
		{"prev hash", func(e []cases.Event) []cases.Event { e[1].PrevHash = e[2].Hash; return e }, 2},
		{"deleted", func(e []cases.Event) []cases.Event { return append(e[:1:1], e[2]) }, 2},
		{"reordered", func(e []cases.Event) []cases.Event { return []cases.Event{e[1], e[0], e[2]} }, 1},
		{"no hash", func(e []cases.Event) []cases.Event { e[2].Hash = ""; return e }, 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			evs := tt.change(append([]cases.Event(nil), events...))
			rep := cases.VerifyChain("c1", evs)
			if rep.OK || rep.Break.Seq != tt.seq {
				t.Fatalf("report %+v %+v, want a break at %d", rep, rep.Break, tt.seq)
			}
		})
	}
	// The hash is fixed by the documented encoding: the SHA-256 of
	// ["concord.event.v1","c",1,"t","a",1,null,""], which an auditor can
	// recompute with any tool.
	h, err := cases.EventHash(&cases.Event{CaseID: "c", Seq: 1, Type: "t", Actor: "a", At: time.UnixMicro(1)}, "")
	if err != nil || h != "89fb08936fa1000822b6fc77058fe135360b71e8997bb8f3b5b66c2780896106" {
		t.Fatalf("EventHash = %s, %v", h, err)
	}
}

func TestHeadExporter(t *testing.T) {
	svc, inst := newService(t)
	c, _, err := svc.OpenCase(t.Context(), validCase(inst.ID))
	if err != nil {
		t.Fatal(err)
	}
	var logs, out bytes.Buffer
	x := cases.NewHeadExporter(cases.HeadExporterParams{Service: svc, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Interval: time.Hour, Out: &out})
	heads, err := x.ExportOnce(t.Context())
	if err != nil || heads.Count != 1 || heads.Items[0].CaseID != c.ID {
		t.Fatalf("ExportOnce: %v %+v", err, heads)
	}
	if !strings.Contains(logs.String(), "audit chain heads") || !strings.Contains(logs.String(), heads.Items[0].Hash) {
		t.Fatalf("log: %s", logs.String())
	}
	var got cases.ChainHeads
	if err := json.Unmarshal(out.Bytes(), &got); err != nil || got.Digest != heads.Digest {
		t.Fatalf("exported line: %s (%v)", out.String(), err)
	}
	// An unchanged head is logged once; the digest every time.
	logs.Reset()
	if _, err := x.ExportOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs.String(), "audit chain head ") {
		t.Fatalf("unchanged head logged again: %s", logs.String())
	}
	x.Start()
	x.Start()
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	_ = x.Close()
	// Closing one never started does not block.
	_ = cases.NewHeadExporter(cases.HeadExporterParams{Service: svc}).Close()
}

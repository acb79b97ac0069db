package rooms

import (
	"bytes"
	"errors"
	"maps"
	"math/rand/v2"
	"testing"
)

// TestSnapshotRestores: a room restored from its snapshot (on another
// node, after its own was lost), once the participants present join again,
// lets exactly the same people receive exactly the same media, in the
// same mode; a locked room takes back only those it had admitted, and
// the removed stay out. Random
// action sequences, mediated and not.
func TestSnapshotRestores(t *testing.T) {
	people := []Participant{med, comed, cons, rel, merc, lawyer, interp, obs}
	for seed := uint64(0); seed < 200; seed++ {
		rng := rand.New(rand.NewPCG(seed, 11))
		r := New()
		if seed%4 == 3 {
			r = NewKind(Unmediated)
		}
		for step := 0; step < 40; step++ {
			randomStep(r, rng, people)
			snap := r.Snapshot()
			back, err := Restore(snap)
			if err != nil {
				t.Fatalf("seed %d step %d: restore: %v\n%s", seed, step, err, snap)
			}
			if again := back.Snapshot(); !bytes.Equal(again, snap) {
				t.Fatalf("seed %d step %d: snapshot of the restored room differs:\n%s\n%s", seed, step, snap, again)
			}
			if len(allowedMap(back)) != 0 {
				t.Fatalf("seed %d step %d: a restored room lets media flow before anyone joins", seed, step)
			}
			// Everyone present joins the restored room again.
			refused := false
			for _, id := range r.order {
				m := r.members[id]
				if !m.present {
					continue
				}
				if _, err := back.Join(m.Participant); err != nil {
					removed := m.state == StateRemoved && errors.Is(err, ErrRemoved)
					locked := m.state != StateAdmitted && errors.Is(err, ErrLocked)
					if !removed && !locked {
						t.Fatalf("seed %d step %d: %s rejoining: %v", seed, step, id, err)
					}
					refused = true
				}
			}
			checking := false
			for _, m := range r.members {
				checking = checking || m.checking
			}
			if refused || checking {
				continue // identity checks are not kept; the refused are absent
			}
			if want, got := allowedMap(r), allowedMap(back); !maps.Equal(want, got) {
				t.Fatalf("seed %d step %d: restored room allows %v, the original %v", seed, step, got, want)
			}
			if back.Mode() != r.Mode() || back.Locked() != r.Locked() {
				t.Fatalf("seed %d step %d: restored mode %+v locked %v, want %+v %v", seed, step, back.Mode(), back.Locked(), r.Mode(), r.Locked())
			}
		}
	}
}

func TestRestoreRefusesBadSnapshots(t *testing.T) {
	for name, s := range map[string]string{
		"not JSON":            `{`,
		"unknown kind":        `{"kind":7,"mode":{"caucus":false},"members":[]}`,
		"caucus without side": `{"kind":0,"mode":{"caucus":true},"members":[]}`,
		"joint with a side":   `{"kind":0,"mode":{"caucus":false,"side":"applicant"},"members":[]}`,
		"unmediated caucus":   `{"kind":1,"mode":{"caucus":true,"side":"applicant"},"members":[]}`,
		"unknown role":        `{"kind":0,"mode":{},"members":[{"id":"a","role":"king","side":"neutral","state":"admitted"}]}`,
		"no id":               `{"kind":0,"mode":{},"members":[{"id":"","role":"party","side":"applicant","state":"admitted"}]}`,
		"twice":               `{"kind":0,"mode":{},"members":[{"id":"a","role":"party","side":"applicant","state":"admitted"},{"id":"a","role":"party","side":"applicant","state":"admitted"}]}`,
		"unknown state":       `{"kind":0,"mode":{},"members":[{"id":"a","role":"party","side":"applicant","state":"vip"}]}`,
		"mediator unmediated": `{"kind":1,"mode":{},"members":[{"id":"m","role":"mediator","side":"neutral","state":"admitted"}]}`,
		"partisan guest":      `{"kind":0,"mode":{},"members":[{"id":"a","role":"party","side":"applicant","state":"admitted","caucusGuest":true}]}`,
		"party attached":      `{"kind":0,"mode":{},"members":[{"id":"a","role":"party","side":"applicant","state":"admitted","attachedSide":"respondent"}]}`,
	} {
		if _, err := Restore([]byte(s)); !errors.Is(err, ErrBadSnapshot) {
			t.Errorf("%s: %v, want ErrBadSnapshot", name, err)
		}
	}
}

// FuzzRestore: whatever it reads, Restore does not panic, and what it
// accepts snapshots back to an input it accepts the same way.
func FuzzRestore(f *testing.F) {
	f.Add(admittedRoom().Snapshot())
	f.Add([]byte(`{"kind":0,"mode":{"caucus":true,"side":"respondent"},"locked":true,"members":[{"id":"i","role":"interpreter","side":"neutral","state":"waiting","attachedSide":"applicant"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Restore(data)
		if err != nil {
			return
		}
		snap := r.Snapshot()
		again, err := Restore(snap)
		if err != nil {
			t.Fatalf("a restored room's snapshot is refused: %v\n%s", err, snap)
		}
		if !bytes.Equal(again.Snapshot(), snap) {
			t.Fatalf("snapshots differ after a second restore:\n%s", snap)
		}
	})
}

func admittedRoom() *Room {
	r := New()
	for _, p := range []Participant{med, cons, merc, interp} {
		_, _ = r.Join(p)
		_, _ = r.Consent(p.ID)
		_, _ = r.Admit(med.ID, p.ID)
	}
	_, _ = r.SetMode(med.ID, caucus(Applicant))
	return r
}

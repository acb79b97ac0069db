package rooms

import (
	"fmt"
	"testing"
)

// room20 builds a 20-person mediated room, everyone admitted: a mediator
// and a co-mediator, 7 applicants and 7 respondents (parties and their
// agents), an interpreter attached to each side, and two observers.
func room20(b *testing.B) *Room {
	b.Helper()
	ps := []Participant{med, comed}
	for i := range 7 {
		role := Party
		if i%2 == 1 {
			role = Agent
		}
		ps = append(ps,
			Participant{ID: fmt.Sprint("a", i), Name: "Applicant", Role: role, Side: Applicant},
			Participant{ID: fmt.Sprint("r", i), Name: "Respondent", Role: role, Side: Respondent})
	}
	ps = append(ps,
		Participant{ID: "ia", Name: "Interpreter A", Role: Interpreter, Side: Neutral},
		Participant{ID: "ir", Name: "Interpreter R", Role: Interpreter, Side: Neutral},
		Participant{ID: "o1", Name: "Trainee", Role: Observer, Side: Neutral},
		Participant{ID: "o2", Name: "Supervisor", Role: Observer, Side: Neutral})
	r := New()
	enterAll(b, r, ps)
	if _, err := r.AttachInterpreter("m", "ia", Applicant); err != nil {
		b.Fatal(err)
	}
	if _, err := r.AttachInterpreter("m", "ir", Respondent); err != nil {
		b.Fatal(err)
	}
	if len(ps) != 20 {
		b.Fatalf("%d participants", len(ps))
	}
	return r
}

// BenchmarkModeChange20 measures the room policy's recomputation for a
// 20-person room: one op is one mode change (joint, caucus with the
// applicant, joint, caucus with the respondent, in turn) returning the
// exact subscription changes for media/.
func BenchmarkModeChange20(b *testing.B) {
	r := room20(b)
	modes := []Mode{caucus(Applicant), Joint, caucus(Respondent), Joint}
	changes := 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		cs, err := r.SetMode("m", modes[i%len(modes)])
		if err != nil {
			b.Fatal(err)
		}
		changes += len(cs)
	}
	b.StopTimer()
	if changes == 0 {
		b.Fatal("no subscription changed")
	}
	b.ReportMetric(float64(changes)/float64(b.N), "changes/op")
}

// BenchmarkMayReceive20 measures the forwarding decision every
// subscription asks: may sub receive pub's source, in a 20-person room
// in caucus.
func BenchmarkMayReceive20(b *testing.B) {
	r := room20(b)
	if _, err := r.SetMode("m", caucus(Applicant)); err != nil {
		b.Fatal(err)
	}
	ids := []string{"m", "m2", "a0", "a1", "r0", "r1", "ia", "ir", "o1"}
	// In caucus with the applicant: the mediator hears a0, r0 does not.
	if !r.MayReceive("m", "a0", Audio) || r.MayReceive("r0", "a0", Audio) {
		b.Fatal("the caucus is not what the benchmark expects")
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		_ = r.MayReceive(ids[i%len(ids)], ids[(i/len(ids))%len(ids)], Audio)
	}
}

// BenchmarkLeaveJoin74 measures what a phone's reconnect costs the room
// policy in the largest workload's room (4 publishers + 70 subscribers,
// 74 people): one op is one party leaving and joining again, each
// returning its exact subscription changes.
func BenchmarkLeaveJoin74(b *testing.B) {
	r := New()
	ps := []Participant{med}
	for i := range 73 {
		side := Applicant
		if i%2 == 1 {
			side = Respondent
		}
		ps = append(ps, Participant{ID: fmt.Sprint("p", i), Name: "Party", Role: Party, Side: side})
	}
	enterAll(b, r, ps)
	changes := 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		p := ps[1+i%73]
		left, err := r.Leave(p.ID)
		if err != nil {
			b.Fatal(err)
		}
		back, err := r.Join(p)
		if err != nil {
			b.Fatal(err)
		}
		changes += len(left) + len(back)
	}
	b.StopTimer()
	if want := 2 * 73 * 3 * 2; changes/b.N != want {
		b.Fatalf("%d changes per leave and join, want %d", changes/b.N, want)
	}
	b.ReportMetric(float64(changes)/float64(b.N), "changes/op")
}

package cluster

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/concord-odr/concord/signaling/cluster/redistest"
)

// events collects what a node's apply receives.
type events struct {
	mu  sync.Mutex
	got []Event
}

func (e *events) apply(ev Event) {
	e.mu.Lock()
	e.got = append(e.got, ev)
	e.mu.Unlock()
}

func (e *events) list() []Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Event(nil), e.got...)
}

const testTTL = 600 * time.Millisecond

func startNode(t *testing.T, c *redis.Client, prefix, name string, apply func(Event)) *Cluster {
	t.Helper()
	n, err := New(Options{Client: c, Prefix: prefix, Node: name, URL: "ws://" + name + ":8080/ws", NodeTTL: testTTL})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(t.Context(), apply); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return n
}

// crash stops a node's heartbeat and events as a killed process would:
// its key stays until it expires.
func (c *Cluster) crash() {
	c.once.Do(func() { close(c.stop) })
	c.wg.Wait()
}

func claim(t *testing.T, n *Cluster, session string) Owner {
	t.Helper()
	o, err := n.Claim(t.Context(), session)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestClaimsAndRelayAddress(t *testing.T) {
	rdb := redistest.Client(t)
	prefix := redistest.Prefix(t, rdb)
	a := startNode(t, rdb, prefix, "a", nil)
	b := startNode(t, rdb, prefix, "b", nil)

	if o := claim(t, a, "s1"); o.Node != "a" || o.URL != "ws://a:8080/ws" {
		t.Fatalf("a's claim of a free room: %+v", o)
	}
	if o := claim(t, b, "s1"); o.Node != "a" || o.URL != "ws://a:8080/ws" {
		t.Fatalf("b asked for a's room: %+v, want a and its URL", o)
	}
	if o := claim(t, a, "s1"); o.Node != "a" {
		t.Fatalf("a claimed its own room again: %+v", o)
	}
	if o := claim(t, b, "s2"); o.Node != "b" {
		t.Fatalf("b's claim of a free room: %+v", o)
	}

	// Renewals keep a node's own rooms and report the others'.
	lost, err := a.Renew(t.Context(), []string{"s1", "s2"})
	if err != nil || len(lost) != 1 || lost[0] != "s2" {
		t.Fatalf("a renewed s1 and s2: lost %v, %v; want [s2]", lost, err)
	}
	ttl, _ := rdb.PTTL(t.Context(), prefix+"room:s1").Result()
	if ttl <= 0 || ttl > a.RoomTTL() {
		t.Fatalf("s1's claim expires in %v, want (0, %v]", ttl, a.RoomTTL())
	}

	// Another node's release leaves the claim; the owner's frees it.
	if err := b.Release(t.Context(), "s1"); err != nil {
		t.Fatal(err)
	}
	if o := claim(t, b, "s1"); o.Node != "a" {
		t.Fatalf("after b released a's room, it belongs to %q", o.Node)
	}
	if err := a.Release(t.Context(), "s1"); err != nil {
		t.Fatal(err)
	}
	if o := claim(t, b, "s1"); o.Node != "b" {
		t.Fatalf("after a released s1, b's claim gave %q", o.Node)
	}
	// A room released and joined again on the same node is renewed, not
	// lost: renewals also take a free key.
	_ = b.Release(t.Context(), "s1")
	if lost, err := b.Renew(t.Context(), []string{"s1"}); err != nil || len(lost) != 0 {
		t.Fatalf("b renewed its released room: lost %v, %v", lost, err)
	}
}

// TestNodeLoss: a node that stops renewing its heartbeat loses its rooms
// to the next node that asks for them, one TTL later; a node that closes
// hands them over at once.
func TestNodeLoss(t *testing.T) {
	rdb := redistest.Client(t)
	prefix := redistest.Prefix(t, rdb)
	a := startNode(t, rdb, prefix, "a", nil)
	b := startNode(t, rdb, prefix, "b", nil)
	c := startNode(t, rdb, prefix, "c", nil)
	claim(t, a, "s1")
	claim(t, c, "s3")

	// Alive for longer than its TTL: the heartbeat renews it.
	time.Sleep(2 * testTTL)
	if o := claim(t, b, "s1"); o.Node != "a" {
		t.Fatalf("a is alive, but its room went to %q", o.Node)
	}

	a.crash()
	lostAt := time.Now()
	if o := claim(t, b, "s1"); o.Node != "a" {
		t.Fatalf("right after a stopped, its room went to %q before its TTL", o.Node)
	}
	var o Owner
	for time.Since(lostAt) < 5*testTTL {
		if o = claim(t, b, "s1"); o.Node == "b" {
			break
		}
		time.Sleep(testTTL / 10)
	}
	if o.Node != "b" {
		t.Fatalf("a's room still belongs to %q %v after it stopped", o.Node, time.Since(lostAt))
	}
	t.Logf("a's room taken over %v after its last heartbeat could have run", time.Since(lostAt).Round(10*time.Millisecond))
	// a, had it come back, finds out on its next renewal.
	if lost, err := a.Renew(t.Context(), []string{"s1"}); err != nil || len(lost) != 1 {
		t.Fatalf("a's renewal after the takeover: lost %v, %v; want [s1]", lost, err)
	}

	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if o := claim(t, b, "s3"); o.Node != "b" {
		t.Fatalf("c closed, but its room still belongs to %q", o.Node)
	}
}

func TestNodeNamesUnique(t *testing.T) {
	rdb := redistest.Client(t)
	prefix := redistest.Prefix(t, rdb)
	startNode(t, rdb, prefix, "a", nil)
	dup, err := New(Options{Client: rdb, Prefix: prefix, Node: "a", URL: "ws://elsewhere/ws", NodeTTL: testTTL})
	if err != nil {
		t.Fatal(err)
	}
	err = dup.Start(t.Context(), nil)
	if err == nil || !strings.Contains(err.Error(), "already called") {
		t.Fatalf("a second live node called a started: %v", err)
	}
	if url, _ := rdb.Get(t.Context(), prefix+"node:a").Result(); url != "ws://a:8080/ws" {
		t.Fatalf("the refused node overwrote the live one's address: %q", url)
	}

	// Restarted under the name of a node that crashed: it waits for the
	// old heartbeat to expire, then starts.
	old := startNode(t, rdb, prefix, "r", nil)
	old.crash()
	again, err := New(Options{Client: rdb, Prefix: prefix, Node: "r", URL: "ws://r2/ws", NodeTTL: testTTL})
	if err != nil {
		t.Fatal(err)
	}
	if err := again.Start(t.Context(), nil); err != nil {
		t.Fatalf("restart under a crashed node's name: %v", err)
	}
	defer again.Close()
}

func TestEvents(t *testing.T) {
	rdb := redistest.Client(t)
	prefix := redistest.Prefix(t, rdb)
	var ea, eb, other events
	a := startNode(t, rdb, prefix, "a", ea.apply)
	startNode(t, rdb, prefix, "b", eb.apply)
	// A node of another cluster (prefix) on the same Redis hears nothing.
	startNode(t, rdb, redistest.Prefix(t, rdb), "x", other.apply)

	sent := Event{Op: "end_session", Session: "s1", Result: "settled"}
	if err := a.Publish(t.Context(), sent); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(eb.list()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	got := eb.list()
	if len(got) != 1 {
		t.Fatalf("b received %d events, want 1", len(got))
	}
	if want := (Event{Node: "a", Op: "end_session", Session: "s1", Result: "settled"}); got[0] != want {
		t.Fatalf("b received %+v, want %+v", got[0], want)
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(ea.list()); n != 0 {
		t.Errorf("the publishing node applied its own event again (%d)", n)
	}
	if n := len(other.list()); n != 0 {
		t.Errorf("another cluster's node received %d events", n)
	}
}

func TestOptions(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer rdb.Close()
	for name, o := range map[string]Options{
		"no client": {Node: "a", URL: "ws://a/ws"},
		"no name":   {Client: rdb, URL: "ws://a/ws"},
		"no URL":    {Client: rdb, Node: "a"},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	n, err := New(Options{Client: rdb, Node: "a", URL: "ws://a/ws", NodeTTL: time.Minute, RoomTTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if n.RoomTTL() != time.Minute {
		t.Errorf("a room TTL below the node TTL was kept: %v", n.RoomTTL())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := n.Start(ctx, nil); err == nil {
		t.Error("started with Redis unreachable")
	}
	if _, err := n.Claim(ctx, "s"); err == nil {
		t.Error("claimed with Redis unreachable")
	}
}

func TestRoomState(t *testing.T) {
	rdb := redistest.Client(t)
	prefix := redistest.Prefix(t, rdb)
	a := startNode(t, rdb, prefix, "a", nil)
	b := startNode(t, rdb, prefix, "b", nil)
	if st, err := b.LoadState(t.Context(), "s1"); err != nil || st != nil {
		t.Fatalf("state of a room never saved: %q, %v", st, err)
	}
	if err := a.SaveState(t.Context(), "s1", []byte(`{"v":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := a.SaveState(t.Context(), "s1", []byte(`{"v":2}`)); err != nil {
		t.Fatal(err)
	}
	if st, err := b.LoadState(t.Context(), "s1"); err != nil || string(st) != `{"v":2}` {
		t.Fatalf("b loaded %q, %v; want the latest state a saved", st, err)
	}
	if ttl, _ := rdb.TTL(t.Context(), prefix+"state:s1").Result(); ttl <= 0 || ttl > stateTTL {
		t.Fatalf("saved state expires in %v, want within %v", ttl, stateTTL)
	}
	if err := a.ForgetState(t.Context(), "s1"); err != nil {
		t.Fatal(err)
	}
	if st, err := b.LoadState(t.Context(), "s1"); err != nil || st != nil {
		t.Fatalf("state after it was forgotten: %q, %v", st, err)
	}
}

// TestNodes: the operator's view lists the live nodes with the rooms each
// runs and which runs the queue, and a dead node while it holds claims.
func TestNodes(t *testing.T) {
	rdb := redistest.Client(t)
	prefix := redistest.Prefix(t, rdb)
	a := startNode(t, rdb, prefix, "a", nil)
	b := startNode(t, rdb, prefix, "b", nil)
	c := startNode(t, rdb, prefix, "c", nil)
	startNode(t, rdb, prefix, "idle", nil)
	for _, s := range []string{"s1", "s2", QueueClaim} {
		claim(t, a, s)
	}
	claim(t, b, "s3")
	claim(t, c, "s4")
	c.crash()
	time.Sleep(testTTL + 100*time.Millisecond)
	got, err := b.Nodes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := []NodeStatus{
		{Node: "a", URL: "ws://a:8080/ws", Alive: true, Rooms: 2, Queue: true},
		{Node: "b", URL: "ws://b:8080/ws", Alive: true, Rooms: 1},
		{Node: "c", Rooms: 1},
		{Node: "idle", URL: "ws://idle:8080/ws", Alive: true},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("nodes:\n%+v\nwant\n%+v", got, want)
	}
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/concord-odr/concord/cases"
	"github.com/concord-odr/concord/signaling/cluster/redistest"
)

// nodeChildEnv makes this test binary run "concord serve" as a node of a
// cluster that a test can kill.
const nodeChildEnv = "CONCORD_TEST_NODE_CHILD"

func init() {
	if os.Getenv(nodeChildEnv) == "1" && len(os.Args) > 1 && os.Args[1] == "serve" {
		os.Exit(run(os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
	}
}

// clusterDB is a migrated PostgreSQL schema for the nodes of one test.
func clusterDB(t *testing.T) string {
	t.Helper()
	url := testPostgresURL(t)
	if code := run([]string{"migrate"}, []string{"CONCORD_DATABASE_URL=" + url, "CONCORD_DATA_DIR=" + t.TempDir()}, io.Discard, io.Discard); code != 0 {
		t.Fatalf("migrate on PostgreSQL exited %d", code)
	}
	return url
}

// clusterConfig is a node's configuration: the shared database and Redis,
// and (when from is set) the signing keys of the node that made the demo,
// as an operator shares them between nodes.
func clusterConfig(t *testing.T, db, redisURL string, from *testServer) Config {
	t.Helper()
	cfg := testConfig(t)
	cfg.DatabaseURL = db
	cfg.RedisURL = redisURL
	cfg.NodeTTL = time.Second
	if from != nil {
		cfg.Demo = false
		shareKeys(t, from.Config.DataDir, cfg.DataDir)
	}
	return cfg
}

// joinAs joins through base with token, fails the test (saying who, and
// through what) unless the answer is joined, and closes the socket when
// the test ends.
func joinAs(t *testing.T, base, token, who string) *websocket.Conn {
	t.Helper()
	ws, first := dialSignaling(t, base, token)
	t.Cleanup(func() { ws.Close() })
	if first["type"] != "joined" {
		t.Fatalf("%s: %v", who, first)
	}
	return ws
}

// twoNodes starts two nodes on one database and Redis: b made the demo,
// a shares b's keys and operator token. It returns the Redis URL too.
func twoNodes(t *testing.T) (a, b *testServer, redisURL string) {
	t.Helper()
	db, rurl := clusterDB(t), redistest.URL(t)
	b = startTestServerWith(t, clusterConfig(t, db, rurl, nil))
	cfg := clusterConfig(t, db, rurl, b)
	cfg.AdminToken = b.Config.AdminToken
	a = startTestServerWith(t, cfg)
	return a, b, rurl
}

func shareKeys(t *testing.T, from, to string) {
	t.Helper()
	for _, name := range []string{"joinlink.key", "staff.key"} {
		b, err := os.ReadFile(filepath.Join(from, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestTwoNodesShareARoom: the mediator joins through node A, which then
// runs the session's room; the parties join through node B, which relays
// their signaling to A. Media flows between all three through A, and the
// session ended through B's API ends the room on A.
func TestTwoNodesShareARoom(t *testing.T) {
	a, b, rurl := twoNodes(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	med := newPionClient(ctx, t, "mediator", a.BaseURL, tokenFromURL(b.Demo.Mediator))
	con := newPionClient(ctx, t, "consumer", b.BaseURL, tokenFromURL(b.Demo.Consumer))
	mer := newPionClient(ctx, t, "merchant", b.BaseURL, tokenFromURL(b.Demo.Merchant))
	if ra, rb := a.sig.Rooms(), b.sig.Rooms(); ra != 1 || rb != 0 {
		t.Fatalf("rooms open: node A %d, node B %d; want the one room on A", ra, rb)
	}
	admitAll(t, med, con, mer)
	clients := []*pionClient{med, con, mer}
	waitAllReceiveAll(t, clients, 10*time.Second)
	if got := a.sfu.Stats().Peers; got < 3 {
		t.Errorf("node A's SFU has %d peers, want the three participants'", got)
	}
	if got := b.sfu.Stats().Peers; got != 0 {
		t.Errorf("node B's SFU has %d peers; the media should all go to A", got)
	}
	// The operator's view, from either node's admin address.
	var view struct {
		Nodes []struct {
			Node  string
			Alive bool
			Rooms int
		}
	}
	if code := getJSON(t, "http://"+b.admin.Addr().String()+"/cluster", "", &view); code != 200 {
		t.Fatalf("GET /cluster on node B: %d", code)
	}
	rooms := map[string]int{}
	for _, n := range view.Nodes {
		if n.Alive {
			rooms[n.Node] = n.Rooms
		}
	}
	if _, bAlive := rooms[b.nodes.Self()]; rooms[a.nodes.Self()] != 1 || rooms[b.nodes.Self()] != 0 || !bAlive {
		t.Errorf("/cluster shows %+v, want A running the room and B alive", view.Nodes)
	}

	opt, _ := redis.ParseURL(rurl)
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	// The room's state is kept in Redis for a node that would take over.
	waitUntil(t, 5*time.Second, "the room's state saved with the parties admitted", func() bool {
		st, _ := rdb.Get(ctx, "concord:state:"+b.Demo.SessionID).Result()
		return strings.Count(st, `"state":"admitted"`) == 3
	})

	code, body := post(t, b.BaseURL+"/api/v1/sessions/"+b.Demo.SessionID+"/end", b.MediatorToken, "application/json",
		`{"result":"settled","terms":"Refund in full."}`)
	if code != 200 {
		t.Fatalf("end through node B: %d %v", code, body)
	}
	for _, c := range clients {
		waitUntil(t, 5*time.Second, c.name+" told the session ended", func() bool {
			c.mu.Lock()
			defer c.mu.Unlock()
			return c.ended == "settled"
		})
	}
	waitUntil(t, 5*time.Second, "node A's room closed", func() bool { return a.sig.Rooms() == 0 })
	waitUntil(t, 5*time.Second, "the room's claim released and its saved state dropped", func() bool {
		n, err := rdb.Exists(ctx, "concord:room:"+b.Demo.SessionID, "concord:state:"+b.Demo.SessionID).Result()
		return err == nil && n == 0
	})
}

// TestNodeLossMovesTheRoom: node A, running a session's room in caucus
// with the applicant, is killed; the participant relayed through node B
// is told so and reconnects, and B opens the room once A's heartbeat has
// expired, as A left it: the parties admitted, the same caucus.
func TestNodeLossMovesTheRoom(t *testing.T) {
	db, rurl := clusterDB(t), redistest.URL(t)
	b := startTestServerWith(t, clusterConfig(t, db, rurl, nil))
	acfg := clusterConfig(t, db, rurl, b)
	acfg.AdminToken = b.Config.AdminToken
	a, kill := startNodeChild(t, acfg)

	// A runs the instant-mediation queue too, with the demo mediator on
	// duty; it saves the queue's state within a second.
	presence := "/api/v1/queue/mediators/" + demoMediatorID + "/presence"
	if code, st := putJSONAs(t, a+presence, acfg.AdminToken, `{"available":true}`); code != 200 || st["onDuty"] != true {
		t.Fatalf("on duty through node A: %d %v", code, st)
	}

	med := joinAs(t, a, tokenFromURL(b.Demo.Mediator), "mediator through node A")
	con := joinAs(t, a, tokenFromURL(b.Demo.Consumer), "consumer through node A")
	mer := joinAs(t, b.BaseURL, tokenFromURL(b.Demo.Merchant), "merchant through node B")
	readUntil(t, con, "participant_joined")
	if n := b.sig.Rooms(); n != 0 {
		t.Fatalf("node B opened %d rooms; the room runs on A", n)
	}
	for _, ws := range []*websocket.Conn{con, mer} {
		if err := ws.WriteJSON(map[string]any{"type": "consent"}); err != nil {
			t.Fatal(err)
		}
	}
	caucusApplicant := func(v map[string]any) bool {
		mode, _ := v["mode"].(map[string]any)
		return mode["caucus"] == true && mode["side"] == "applicant"
	}
	selfState := func(v map[string]any) any { self, _ := v["self"].(map[string]any); return self["state"] }
	roomView(t, med, "both parties consented", func(v map[string]any) bool {
		n := 0
		for _, p := range v["participants"].([]any) {
			if p.(map[string]any)["consented"] == true {
				n++
			}
		}
		return n == 3
	})
	for _, m := range []map[string]any{{"type": "admit_all"}, {"type": "set_mode", "mode": map[string]any{"caucus": true, "side": "applicant"}}} {
		if err := med.WriteJSON(m); err != nil {
			t.Fatal(err)
		}
	}
	roomView(t, mer, "the merchant admitted, outside the applicant's caucus", func(v map[string]any) bool {
		return selfState(v) == "admitted" && caucusApplicant(v) && v["inCaucus"] == false
	})
	time.Sleep(1500 * time.Millisecond) // the queue's state saved

	kill()
	killed := time.Now()
	e := readUntil(t, mer, "error")
	if e["code"] != "shutting_down" {
		t.Fatalf("the relayed merchant was told %v, want shutting_down", e)
	}
	_ = mer.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := mer.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseServiceRestart) {
		t.Fatalf("the relayed socket after A's loss: %v, want closed with 1012 (service restart)", err)
	}

	// Reconnect as the client does, until B has the room.
	var refused []string
	var again *websocket.Conn
	for time.Since(killed) < 15*time.Second {
		ws, m := dialSignaling(t, b.BaseURL, tokenFromURL(b.Demo.Merchant))
		if m["type"] == "joined" {
			again = ws
			break
		}
		ws.Close()
		if m["code"] != "unavailable" {
			t.Fatalf("rejoin through B: %v, want joined or unavailable", m)
		}
		refused = append(refused, fmt.Sprint(m["code"]))
		time.Sleep(200 * time.Millisecond)
	}
	if again == nil {
		t.Fatalf("the merchant could not rejoin through B within 15 s of A's loss (%d tries refused)", len(refused))
	}
	defer again.Close()
	t.Logf("room reopened on B %v after A was killed (%d tries refused while A's heartbeat lived)",
		time.Since(killed).Round(100*time.Millisecond), len(refused))
	if n := b.sig.Rooms(); n != 1 {
		t.Fatalf("node B runs %d rooms after taking over, want 1", n)
	}
	// The room as A left it: no lobby again, no consent again, the caucus.
	roomView(t, again, "the merchant still admitted, the applicant's caucus on", func(v map[string]any) bool {
		return selfState(v) == "admitted" && caucusApplicant(v) && v["inCaucus"] == false
	})
	con2 := joinAs(t, b.BaseURL, tokenFromURL(b.Demo.Consumer), "consumer back through node B")
	roomView(t, con2, "the consumer still admitted, in its caucus", func(v map[string]any) bool {
		return selfState(v) == "admitted" && caucusApplicant(v) && v["inCaucus"] == true
	})
	p := readUntil(t, again, "participant_joined")
	if who, _ := p["participant"].(map[string]any); who == nil || who["role"] != "party" {
		t.Fatalf("merchant saw %v, want the consumer joining", p)
	}
	// The queue moved to B as A left it: the mediator is still on duty.
	var st map[string]any
	if code := getJSON(t, b.BaseURL+"/api/v1/queue/mediators/"+demoMediatorID, b.Config.AdminToken, &st); code != 200 || st["onDuty"] != true {
		t.Fatalf("the queue through B after A's loss: %d %v; want the mediator still on duty", code, st)
	}
}

// roomView reads ws until a room view satisfies ok.
func roomView(t *testing.T, ws *websocket.Conn, what string, ok func(view map[string]any) bool) map[string]any {
	t.Helper()
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	defer ws.SetReadDeadline(time.Time{})
	var last map[string]any
	for {
		var m map[string]any
		if err := ws.ReadJSON(&m); err != nil {
			t.Fatalf("waiting for %s: %v (last view %v)", what, err, last)
		}
		if v, _ := m["room"].(map[string]any); m["type"] == "room" && v != nil {
			last = v
			if ok(v) {
				return v
			}
		}
	}
}

// startNodeChild runs cfg as a "concord serve" child process, and returns
// its base URL once it answers and a kill that ends it at once, as a crash
// would: no goodbye to Redis, no close frames. The test's end kills it too.
func startNodeChild(t *testing.T, cfg Config) (string, func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "serve",
		"--addr", addr, "--data-dir", cfg.DataDir, "--database-url", cfg.DatabaseURL,
		"--redis-url", cfg.RedisURL, "--node-ttl", cfg.NodeTTL.String(),
		"--media-udp", "127.0.0.1:0", "--media-tcp", "127.0.0.1:0", "--admin-addr", "",
		"--adaptive-procs=false", "--log-level", "warn", "--admin-token", cfg.AdminToken)
	cmd.Env = append(os.Environ(), nodeChildEnv+"=1")
	out := &tailBuffer{max: 16 << 10}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("node child's output:\n%s", out.String())
		}
	})
	base := "http://" + addr
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return base, func() {
					if err := cmd.Process.Kill(); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		select {
		case <-exited:
			t.Fatalf("the node child exited at start:\n%s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the node child did not answer within 20 s:\n%s", out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitUntil polls cond until it holds or d passes.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestNodeStopHandsOver: a node that stops normally gives its rooms up at
// once; the next join through another node opens the room there on the
// first try.
func TestNodeStopHandsOver(t *testing.T) {
	a, b, rurl := twoNodes(t)
	con := joinAs(t, a.BaseURL, tokenFromURL(b.Demo.Consumer), "consumer through node A")
	opt, _ := redis.ParseURL(rurl)
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	key := "concord:room:" + b.Demo.SessionID
	if n, _ := rdb.Exists(t.Context(), key).Result(); n != 1 {
		t.Fatal("node A opened the room without claiming it")
	}
	if err := a.Main.Close(); err != nil {
		t.Fatal(err)
	}
	if e := readUntil(t, con, "error"); e["code"] != "shutting_down" {
		t.Fatalf("consumer on the stopping node was told %v", e)
	}
	if n, _ := rdb.Exists(t.Context(), key).Result(); n != 0 {
		t.Fatal("node A stopped but kept its claim on the room")
	}
	joinAs(t, b.BaseURL, tokenFromURL(b.Demo.Consumer), "consumer through node B right after A stopped")
	if n := b.sig.Rooms(); n != 1 {
		t.Fatalf("node B runs %d rooms, want 1", n)
	}
}

// TestRoomClaimConflicts: a relayed join that reaches a node not running
// the room is not relayed again (room_moved), and a node that finds its
// room claimed by another live node (after losing Redis for longer than
// its heartbeat, say) sends its participants there.
func TestRoomClaimConflicts(t *testing.T) {
	a, b, rurl := twoNodes(t)
	con := joinAs(t, a.BaseURL, tokenFromURL(b.Demo.Consumer), "consumer through node A")

	// As if B had relayed a join to A while A did not own the room: here
	// to B, which does not.
	ws, _, err := websocket.DefaultDialer.Dial(wsURL(b.BaseURL), http.Header{"X-Concord-Relay": {"some-node"}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if err := ws.WriteJSON(map[string]any{"type": "join", "token": tokenFromURL(b.Demo.Merchant)}); err != nil {
		t.Fatal(err)
	}
	if e := readUntil(t, ws, "error"); e["code"] != "room_moved" {
		t.Fatalf("a relayed join to a node not running the room: %v, want room_moved", e)
	}

	opt, _ := redis.ParseURL(rurl)
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	if err := rdb.Set(t.Context(), "concord:node:intruder", "ws://127.0.0.1:1/ws", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	defer rdb.Del(context.Background(), "concord:node:intruder")
	if err := rdb.Set(t.Context(), "concord:room:"+b.Demo.SessionID, "intruder", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if m := readUntilWithin(t, con, "error", 10*time.Second); m["code"] != "room_moved" {
		t.Fatalf("node A's participant was told %v, want room_moved", m)
	}
	waitUntil(t, 5*time.Second, "node A's room closed", func() bool { return a.sig.Rooms() == 0 })
}

// TestRedisLossKeepsOpenRooms: while a node cannot reach Redis, its open
// room takes its participants' reconnects, and a room no node has open
// cannot be opened (unavailable, which the apps retry).
func TestRedisLossKeepsOpenRooms(t *testing.T) {
	db, rurl := clusterDB(t), redistest.URL(t)
	opt, _ := redis.ParseURL(rurl)
	cut := proxyTCP(t, opt.Addr)
	cfg := clusterConfig(t, db, "redis://"+cut.addr+"/"+fmt.Sprint(opt.DB), nil)
	cfg.NodeTTL = 10 * time.Second // Redis, not the node, is lost here
	a := startTestServerWith(t, cfg)
	con := joinAs(t, a.BaseURL, tokenFromURL(a.Demo.Consumer), "consumer")
	other := otherSession(t, a)

	cut.close()
	con.Close() // the phone's connection drops
	joinAs(t, a.BaseURL, tokenFromURL(a.Demo.Consumer), "rejoining the open room with Redis unreachable")
	ws, first := dialSignaling(t, a.BaseURL, other)
	defer ws.Close()
	if first["type"] != "error" || first["code"] != "unavailable" {
		t.Fatalf("opening another room with Redis unreachable: %v, want unavailable", first)
	}
}

// tcpProxy forwards connections to a target until close, which also cuts
// those open.
type tcpProxy struct {
	addr  string
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func proxyTCP(t *testing.T, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{addr: ln.Addr().String(), ln: ln}
	t.Cleanup(p.close)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
	return p
}

func (p *tcpProxy) close() {
	_ = p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

// TestTwoNodesShareTheQueue: the instant-mediation queue lives in one
// node's memory; queue requests reaching another node are relayed to it,
// so a mediator on duty through one node is seen through the other, and
// the queue moves to a live node when its node stops, as it was.
func TestTwoNodesShareTheQueue(t *testing.T) {
	a, b, _ := twoNodes(t)
	tok := b.Config.AdminToken
	presence := "/api/v1/queue/mediators/" + demoMediatorID + "/presence"
	status := func(base string) (int, map[string]any) {
		var st map[string]any
		code := getJSON(t, base+"/api/v1/queue/mediators/"+demoMediatorID, tok, &st)
		return code, st
	}
	if code, st := putJSONAs(t, a.BaseURL+presence, tok, `{"available":true}`); code != 200 || st["onDuty"] != true {
		t.Fatalf("on duty through node A: %d %v", code, st)
	}
	if code, st := status(b.BaseURL); code != 200 || st["onDuty"] != true {
		t.Fatalf("the mediator on duty through A, seen through B: %d %v; want on duty", code, st)
	}
	if err := a.Main.Close(); err != nil {
		t.Fatal(err)
	}
	// B runs the queue now, restored as A left it: the mediator is still
	// on duty, without a heartbeat to B.
	if code, st := status(b.BaseURL); code != 200 || st["onDuty"] != true {
		t.Fatalf("through B after A stopped: %d %v; want the mediator still on duty", code, st)
	}
}

// TestRevokeAcrossNodes: links revoked through one node's API drop the
// participant's socket on the node running the room.
func TestRevokeAcrossNodes(t *testing.T) {
	a, b, _ := twoNodes(t)
	ws, joined := dialSignaling(t, a.BaseURL, tokenFromURL(b.Demo.Consumer))
	defer ws.Close()
	if joined["type"] != "joined" || a.sig.Rooms() != 1 {
		t.Fatalf("consumer through node A: %v (A runs %d rooms)", joined, a.sig.Rooms())
	}
	self, _ := joined["self"].(map[string]any)
	body, _ := json.Marshal(map[string]any{"participantId": self["id"]})
	if code, out := post(t, b.BaseURL+"/api/v1/sessions/"+b.Demo.SessionID+"/revocations", b.Config.AdminToken, "application/json", string(body)); code != 201 {
		t.Fatalf("revoke through node B: %d %v", code, out)
	}
	if m := readUntil(t, ws, "error"); m["code"] != "link_revoked" || m["fatal"] != true {
		t.Fatalf("the participant on node A was told %v, want link_revoked", m)
	}
}

// TestRelayedSocketDrops: a phone relayed through node B loses its
// connection and comes back; the room on A kept its place, and B counts
// two relayed joins and no error sent (a client leaving is not the
// owner's loss).
func TestRelayedSocketDrops(t *testing.T) {
	a, b, _ := twoNodes(t)
	con := joinAs(t, a.BaseURL, tokenFromURL(b.Demo.Consumer), "consumer through node A")
	mer := joinAs(t, b.BaseURL, tokenFromURL(b.Demo.Merchant), "merchant through node B")
	readUntil(t, con, "participant_joined")
	mer.Close() // no close frame: the connection is lost
	time.Sleep(200 * time.Millisecond)
	joinAs(t, b.BaseURL, tokenFromURL(b.Demo.Merchant), "merchant back through node B")
	// The room kept the merchant's place: no participant_left on A's side.
	_ = con.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	for {
		var m map[string]any
		if err := con.ReadJSON(&m); err != nil {
			break
		}
		if m["type"] == "participant_left" {
			t.Fatalf("the consumer was told the merchant left: %v", m)
		}
	}
	resp, err := http.Get("http://" + b.admin.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `concord_signaling_joins_total{result="relayed"} 2`) {
		t.Errorf("node B's metrics lack 2 relayed joins")
	}
	if !strings.Contains(string(body), "concord_signaling_relays 1\n") {
		t.Errorf("node B's metrics do not count the one socket it relays now:\n%s", grepLines(string(body), "relays"))
	}
	if strings.Contains(string(body), `concord_signaling_errors_total{`) {
		t.Errorf("node B sent errors for a dropped connection:\n%s", grepLines(string(body), "concord_signaling_errors_total"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestEndedSessionEndsRoomWithoutEvent: a session ended while its room's
// node missed the event (Redis unreachable at that moment; here the store
// is written directly, which publishes nothing) is ended on that node by
// its next claim renewal, from the store.
func TestEndedSessionEndsRoomWithoutEvent(t *testing.T) {
	a, b, _ := twoNodes(t)
	con := joinAs(t, a.BaseURL, tokenFromURL(b.Demo.Consumer), "consumer through node A")
	sess, err := b.cases.Session(context.Background(), b.Demo.SessionID)
	if err != nil {
		t.Fatal(err)
	}
	var mediator string
	for _, p := range sess.Participants {
		if p.Role == cases.RoleMediator {
			mediator = p.ID
		}
	}
	if _, _, err := b.cases.EndSession(context.Background(), sess.ID, mediator, cases.Outcome{Result: cases.ResultWithdrawn}); err != nil {
		t.Fatal(err)
	}
	readUntilWithin(t, con, "session_ended", 10*time.Second)
	waitUntil(t, 5*time.Second, "node A's room closed", func() bool { return a.sig.Rooms() == 0 })
}

// Package cluster lets several Concord nodes share one Redis: it says which
// node runs each session's room, which nodes are alive and where their
// signaling can be reached, and carries the events that must reach a room
// wherever it runs (a session ended, a link revoked, an agreement edited).
//
// A node announces itself under a key that expires unless renewed (its
// heartbeat). A room is claimed by the first node a participant joins
// through, under a key its owner renews while the room is open; a claim
// whose owner's heartbeat has expired is taken over by the next node that
// needs it. So a node's loss frees its rooms within one heartbeat's TTL,
// and the participants' reconnects open them on the nodes still alive.
//
// One Redis (or a Redis with a replica and Sentinel) is assumed: the
// claims are checked in Lua scripts that read a node key and a room key
// together, which Redis Cluster would refuse across slots.
package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Defaults of Options.
const (
	DefaultPrefix  = "concord:"
	DefaultNodeTTL = 10 * time.Second
	DefaultRoomTTL = 60 * time.Second
)

// Options configures a Cluster.
type Options struct {
	Client *redis.Client
	// Prefix starts every key and channel name (default "concord:").
	Prefix string
	// Node names this node; it must be unique among the live nodes.
	Node string
	// URL is where the other nodes reach this node's signaling socket
	// (ws:// or wss://, the path included).
	URL string
	// NodeTTL is how long this node counts as alive without a heartbeat;
	// it is renewed every third of it. It bounds how long a lost node's
	// rooms stay unreachable.
	NodeTTL time.Duration
	// RoomTTL is how long a room's claim outlives its owner's last renewal
	// when the owner is alive but cannot reach Redis.
	RoomTTL time.Duration
	Logger  *slog.Logger
}

// Owner is the node that runs a room.
type Owner struct {
	Node string
	URL  string
}

// Event is something that must reach a session's room on whichever node
// runs it.
type Event struct {
	Node        string `json:"node"` // the node that published it
	Op          string `json:"op"`
	Session     string `json:"session,omitempty"`
	Participant string `json:"participant,omitempty"`
	Result      string `json:"result,omitempty"`
	Case        string `json:"case,omitempty"`
	Agreement   string `json:"agreement,omitempty"`
	Revision    int    `json:"revision,omitempty"`
	TextHash    string `json:"textHash,omitempty"`
	VisibleTo   string `json:"visibleTo,omitempty"`
	Status      string `json:"status,omitempty"`
}

// Cluster is this node's membership.
type Cluster struct {
	o   Options
	rdb *redis.Client
	log *slog.Logger

	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

// claimScript claims KEYS[1] (a room) for ARGV[1] unless a live node
// holds it: free, already ours, or held by a node whose heartbeat key
// (ARGV[3] .. owner) has expired. It returns the owner.
var claimScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] and redis.call('EXISTS', ARGV[3] .. cur) == 1 then
  return cur
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return ARGV[1]
`)

// renewScript renews the claims in KEYS held by ARGV[1] (or free, as a
// room released a moment ago by a leaving participant and joined again
// since); it returns 1 for each kept and 0 for each another node holds.
var renewScript = redis.NewScript(`
local out = {}
for i, key in ipairs(KEYS) do
  local cur = redis.call('GET', key)
  if cur == false or cur == ARGV[1] then
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
`)

// releaseScript deletes KEYS[1] if ARGV[1] holds it.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// New checks the options and returns a Cluster; Start joins it.
func New(o Options) (*Cluster, error) {
	if o.Client == nil {
		return nil, errors.New("cluster: no Redis client")
	}
	if o.Node == "" {
		return nil, errors.New("cluster: no node name")
	}
	if o.URL == "" {
		return nil, errors.New("cluster: no signaling URL for the other nodes")
	}
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.NodeTTL <= 0 {
		o.NodeTTL = DefaultNodeTTL
	}
	if o.RoomTTL <= 0 {
		o.RoomTTL = DefaultRoomTTL
	}
	if o.RoomTTL < o.NodeTTL {
		o.RoomTTL = o.NodeTTL
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Cluster{o: o, rdb: o.Client, log: o.Logger, stop: make(chan struct{})}, nil
}

// Self is this node's name.
func (c *Cluster) Self() string { return c.o.Node }

// RoomTTL is how long a claim lasts unless renewed.
func (c *Cluster) RoomTTL() time.Duration { return c.o.RoomTTL }

func (c *Cluster) nodeKey(node string) string { return c.o.Prefix + "node:" + node }
func (c *Cluster) roomKey(session string) string {
	return c.o.Prefix + "room:" + session
}
func (c *Cluster) eventsChannel() string { return c.o.Prefix + "events" }

// Start announces this node, keeps its heartbeat, and hands every event
// another node publishes to apply (in order, on one goroutine). It fails
// if a live node already has this name.
func (c *Cluster) Start(ctx context.Context, apply func(Event)) error {
	// A node restarted under its name waits for its former heartbeat to
	// expire.
	deadline := time.Now().Add(c.o.NodeTTL + time.Second)
	for {
		ok, err := c.rdb.SetNX(ctx, c.nodeKey(c.o.Node), c.o.URL, c.o.NodeTTL).Result()
		if err != nil {
			return fmt.Errorf("cluster: announce node: %w", err)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster: a live node is already called %q (names must be unique)", c.o.Node)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(c.o.NodeTTL / 5):
		}
	}
	sub := c.rdb.Subscribe(ctx, c.eventsChannel())
	if _, err := sub.Receive(ctx); err != nil { // the subscription's confirmation
		_ = sub.Close()
		_ = c.rdb.Del(context.Background(), c.nodeKey(c.o.Node)).Err()
		return fmt.Errorf("cluster: subscribe: %w", err)
	}
	c.wg.Add(2)
	go c.heartbeat()
	go c.listen(sub, apply)
	c.log.Info("cluster: node announced", "node", c.o.Node, "url", c.o.URL, "ttl", c.o.NodeTTL)
	return nil
}

// heartbeat renews the node key every third of its TTL. A node whose key
// expired meanwhile (Redis unreachable for longer than the TTL) announces
// itself again; its rooms may have been taken over, which the room
// renewals find out.
func (c *Cluster) heartbeat() {
	defer c.wg.Done()
	t := time.NewTicker(c.o.NodeTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.o.NodeTTL/3)
		err := c.rdb.Set(ctx, c.nodeKey(c.o.Node), c.o.URL, c.o.NodeTTL).Err()
		cancel()
		if err != nil {
			c.log.Warn("cluster: heartbeat failed", "err", err)
		}
	}
}

func (c *Cluster) listen(sub *redis.PubSub, apply func(Event)) {
	defer c.wg.Done()
	defer func() { _ = sub.Close() }()
	ch := sub.Channel()
	for {
		select {
		case <-c.stop:
			return
		case msg, ok := <-ch:
			if !ok {
				return
			}
			var ev Event
			if err := json.Unmarshal([]byte(msg.Payload), &ev); err != nil {
				c.log.Warn("cluster: unreadable event", "err", err)
				continue
			}
			if ev.Node == c.o.Node || apply == nil {
				continue // applied where it was published
			}
			apply(ev)
		}
	}
}

// Claim returns the node that runs session's room, claiming it for this
// node when no live node does.
func (c *Cluster) Claim(ctx context.Context, session string) (Owner, error) {
	node, err := claimScript.Run(ctx, c.rdb, []string{c.roomKey(session)},
		c.o.Node, c.o.RoomTTL.Milliseconds(), c.o.Prefix+"node:").Text()
	if err != nil {
		return Owner{}, fmt.Errorf("cluster: claim room: %w", err)
	}
	if node == c.o.Node {
		return Owner{Node: node, URL: c.o.URL}, nil
	}
	url, err := c.rdb.Get(ctx, c.nodeKey(node)).Result()
	if errors.Is(err, redis.Nil) {
		// Its heartbeat expired between the two reads: claim again.
		return c.Claim(ctx, session)
	}
	if err != nil {
		return Owner{}, fmt.Errorf("cluster: find node: %w", err)
	}
	return Owner{Node: node, URL: url}, nil
}

// Renew extends this node's claims on sessions and returns those another
// node holds now.
func (c *Cluster) Renew(ctx context.Context, sessions []string) (lost []string, err error) {
	if len(sessions) == 0 {
		return nil, nil
	}
	keys := make([]string, len(sessions))
	for i, s := range sessions {
		keys[i] = c.roomKey(s)
	}
	kept, err := renewScript.Run(ctx, c.rdb, keys, c.o.Node, c.o.RoomTTL.Milliseconds()).Int64Slice()
	if err != nil {
		return nil, fmt.Errorf("cluster: renew rooms: %w", err)
	}
	for i, k := range kept {
		if k == 0 && i < len(sessions) {
			lost = append(lost, sessions[i])
		}
	}
	return lost, nil
}

// Release gives up this node's claim on session's room.
func (c *Cluster) Release(ctx context.Context, session string) error {
	if err := releaseScript.Run(ctx, c.rdb, []string{c.roomKey(session)}, c.o.Node).Err(); err != nil {
		return fmt.Errorf("cluster: release room: %w", err)
	}
	return nil
}

// stateTTL bounds how long a room's saved state outlives its last change:
// longer than any session, so that a room quiet for hours still restores.
const stateTTL = 24 * time.Hour

func (c *Cluster) stateKey(session string) string { return c.o.Prefix + "state:" + session }

// SaveState keeps a room's state (rooms.Room.Snapshot) for the node that
// opens the room next, should this one be lost.
func (c *Cluster) SaveState(ctx context.Context, session string, state []byte) error {
	if err := c.rdb.Set(ctx, c.stateKey(session), state, stateTTL).Err(); err != nil {
		return fmt.Errorf("cluster: save room state: %w", err)
	}
	return nil
}

// LoadState returns a room's saved state, or nil if none is kept.
func (c *Cluster) LoadState(ctx context.Context, session string) ([]byte, error) {
	b, err := c.rdb.Get(ctx, c.stateKey(session)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cluster: load room state: %w", err)
	}
	return b, nil
}

// ForgetState drops a room's saved state: the room closed normally.
func (c *Cluster) ForgetState(ctx context.Context, session string) error {
	if err := c.rdb.Del(ctx, c.stateKey(session)).Err(); err != nil {
		return fmt.Errorf("cluster: forget room state: %w", err)
	}
	return nil
}

// NodeStatus is what an operator sees of one node of the cluster.
type NodeStatus struct {
	Node  string `json:"node"`
	URL   string `json:"url,omitempty"`
	Alive bool   `json:"alive"` // its heartbeat has not expired
	// Rooms counts the rooms it holds claims on; Queue is set on the node
	// that runs the instant-mediation queue.
	Rooms int  `json:"rooms"`
	Queue bool `json:"queue,omitempty"`
}

// QueueClaim is the claim, among the rooms', of the node that runs the
// instant-mediation queue (session ids start "s_"). Nodes lists it apart.
const QueueClaim = "~queue"

// Nodes lists the live nodes and those still holding claims, by name.
func (c *Cluster) Nodes(ctx context.Context) ([]NodeStatus, error) {
	byName := map[string]*NodeStatus{}
	nodeKeys, err := c.scan(ctx, c.o.Prefix+"node:*")
	if err != nil {
		return nil, err
	}
	if len(nodeKeys) > 0 {
		urls, err := c.rdb.MGet(ctx, nodeKeys...).Result()
		if err != nil {
			return nil, fmt.Errorf("cluster: read nodes: %w", err)
		}
		for i, k := range nodeKeys {
			name := k[len(c.o.Prefix+"node:"):]
			url, _ := urls[i].(string)
			byName[name] = &NodeStatus{Node: name, URL: url, Alive: urls[i] != nil}
		}
	}
	roomKeys, err := c.scan(ctx, c.o.Prefix+"room:*")
	if err != nil {
		return nil, err
	}
	if len(roomKeys) > 0 {
		owners, err := c.rdb.MGet(ctx, roomKeys...).Result()
		if err != nil {
			return nil, fmt.Errorf("cluster: read rooms: %w", err)
		}
		for i, k := range roomKeys {
			owner, ok := owners[i].(string)
			if !ok {
				continue // released meanwhile
			}
			n := byName[owner]
			if n == nil {
				n = &NodeStatus{Node: owner}
				byName[owner] = n
			}
			if k[len(c.o.Prefix+"room:"):] == QueueClaim {
				n.Queue = true
			} else {
				n.Rooms++
			}
		}
	}
	out := make([]NodeStatus, 0, len(byName))
	for _, n := range byName {
		out = append(out, *n)
	}
	slices.SortFunc(out, func(a, b NodeStatus) int { return strings.Compare(a.Node, b.Node) })
	return out, nil
}

func (c *Cluster) scan(ctx context.Context, match string) ([]string, error) {
	var keys []string
	iter := c.rdb.Scan(ctx, 0, match, 1000).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return nil, fmt.Errorf("cluster: scan %s: %w", match, err)
	}
	return keys, nil
}

// Publish sends ev to every other node.
func (c *Cluster) Publish(ctx context.Context, ev Event) error {
	ev.Node = c.o.Node
	data, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	if err := c.rdb.Publish(ctx, c.eventsChannel(), data).Err(); err != nil {
		return fmt.Errorf("cluster: publish: %w", err)
	}
	return nil
}

// Close stops the heartbeat and the events and removes this node's key,
// so that its rooms can be claimed at once rather than after the TTL.
// It releases no room: the caller releases those it closes.
func (c *Cluster) Close() error {
	c.once.Do(func() { close(c.stop) })
	c.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.rdb.Del(ctx, c.nodeKey(c.o.Node)).Err(); err != nil {
		return fmt.Errorf("cluster: remove node: %w", err)
	}
	return nil
}

package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/concord-odr/concord/cases"
	"github.com/concord-odr/concord/signaling/cluster"
)

// newCluster makes this node one of those sharing the Redis: rooms are
// claimed there, and a join that reaches a node not running its room is
// relayed to the node that does, at NodeURL.
func (m *Main) newCluster() (*cluster.Cluster, error) {
	name := m.Config.NodeName
	if name == "" {
		host, _ := os.Hostname()
		if host == "" {
			host = "concord"
		}
		var b [3]byte
		_, _ = rand.Read(b[:])
		name = host + "-" + hex.EncodeToString(b[:])
	}
	return cluster.New(cluster.Options{
		Client:  m.redis,
		Node:    name,
		URL:     m.nodeURL(),
		NodeTTL: m.Config.NodeTTL,
		// Claims are renewed every 2 TTLs: a room another node took over
		// while this one lost Redis moves within that.
		RoomTTL: 6 * m.Config.NodeTTL,
		Logger:  m.log,
	})
}

// nodeURL is where the other nodes reach this node's signaling: NodeURL,
// or the listening address, with the host name standing in for an
// unspecified host (0.0.0.0 or ::).
func (m *Main) nodeURL() string {
	if m.Config.NodeURL != "" {
		return m.Config.NodeURL
	}
	host, port, _ := net.SplitHostPort(m.ln.Addr().String())
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		if h, err := os.Hostname(); err == nil && h != "" {
			host = h
		}
	}
	u := url.URL{Scheme: "ws", Host: net.JoinHostPort(host, port), Path: "/ws"}
	return u.String()
}

// Cluster events of the queue.
const opQueueRelease = "queue_release"

// queueLeader tracks which node runs the instant-mediation queue, which
// lives in one node's memory: the first node asked claims it, and keeps
// it while it renews the claim. The node running it saves its state in
// Redis each second it changed; the next node to run it (this one lost or
// stopped) restores that state first, so parties keep their places and
// mediators their offers.
type queueLeader struct {
	nodes *cluster.Cluster
	queue *cases.Queue
	log   *slog.Logger

	mu      sync.Mutex
	leading bool
	saved   []byte // the state last saved

	stop chan struct{}
	done chan struct{}
}

// queueSaveEvery is how often the queue's state is saved when it changed.
const queueSaveEvery = time.Second

func newQueueLeader(nodes *cluster.Cluster, queue *cases.Queue, log *slog.Logger) *queueLeader {
	q := &queueLeader{nodes: nodes, queue: queue, log: log, stop: make(chan struct{}), done: make(chan struct{})}
	go q.run()
	return q
}

// node returns nil when this node runs the queue, or the base URL of the
// node that does.
func (q *queueLeader) node(ctx context.Context) (*url.URL, error) {
	o, err := q.nodes.Claim(ctx, cluster.QueueClaim)
	if err != nil {
		return nil, err
	}
	mine := o.Node == q.nodes.Self()
	q.mu.Lock()
	if mine && !q.leading {
		q.takeOverLocked(ctx)
	}
	q.leading = mine
	q.mu.Unlock()
	if mine {
		return nil, nil
	}
	u, err := url.Parse(o.URL)
	if err != nil {
		return nil, fmt.Errorf("node %s's URL: %w", o.Node, err)
	}
	base := &url.URL{Scheme: "http", Host: u.Host}
	if u.Scheme == "wss" {
		base.Scheme = "https"
	}
	return base, nil
}

// takeOverLocked restores the state the queue's previous node saved, if
// any, before this node serves the queue.
func (q *queueLeader) takeOverLocked(ctx context.Context) {
	state, err := q.nodes.LoadState(ctx, cluster.QueueClaim)
	switch {
	case err != nil:
		q.log.Error("cluster: this node runs the instant-mediation queue, but its saved state is unreadable; it starts empty", "err", err)
	case state == nil:
		q.log.Info("cluster: this node runs the instant-mediation queue")
	default:
		if err := q.queue.Restore(state); err != nil {
			q.log.Error("cluster: this node runs the instant-mediation queue, but its saved state is unusable; it starts empty", "err", err)
			return
		}
		q.saved = state
		q.log.Info("cluster: this node runs the instant-mediation queue, restored as its previous node left it",
			"open", len(q.queue.Requests()))
	}
}

func (q *queueLeader) isLeading() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.leading
}

// run saves the queue's state while this node runs it, and renews the
// claim every third of the claim's TTL.
func (q *queueLeader) run() {
	defer close(q.done)
	t := time.NewTicker(queueSaveEvery)
	defer t.Stop()
	lastRenew := time.Now()
	for {
		select {
		case <-q.stop:
			return
		case <-t.C:
		}
		if !q.isLeading() {
			continue
		}
		q.save()
		if time.Since(lastRenew) < q.nodes.RoomTTL()/3 {
			continue
		}
		lastRenew = time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), q.nodes.RoomTTL()/3)
		lost, err := q.nodes.Renew(ctx, []string{cluster.QueueClaim})
		cancel()
		if err != nil {
			q.log.Warn("cluster: the queue's claim was not renewed", "err", err)
			continue
		}
		if len(lost) > 0 {
			q.mu.Lock()
			q.leading = false
			q.mu.Unlock()
			q.log.Warn("cluster: another node runs the instant-mediation queue now")
		}
	}
}

// save writes the queue's state if it changed since it was last saved.
func (q *queueLeader) save() {
	state := q.queue.Snapshot()
	q.mu.Lock()
	same := bytes.Equal(state, q.saved)
	q.mu.Unlock()
	if same {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), queueSaveEvery)
	defer cancel()
	if err := q.nodes.SaveState(ctx, cluster.QueueClaim, state); err != nil {
		q.log.Warn("cluster: the queue's state was not saved", "err", err)
		return
	}
	q.mu.Lock()
	q.saved = state
	q.mu.Unlock()
}

// Close stops, saves the queue's state and gives the queue up, so that
// the next node asked takes it at once, as this node left it.
func (q *queueLeader) Close() {
	close(q.stop)
	<-q.done
	if q.isLeading() {
		q.save()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = q.nodes.Release(ctx, cluster.QueueClaim)
	}
}

// applyEvent carries out what another node published: the queue's part
// here, the rooms' in signaling.
func (m *Main) applyEvent(ev cluster.Event) {
	if ev.Op == opQueueRelease {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		m.cloud.queue.Release(ctx, ev.Session)
		return
	}
	m.sig.Apply(ev)
}

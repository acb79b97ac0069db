package main

import (
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

// queueClaim is the claim, among the rooms', of the node that runs the
// instant-mediation queue (session ids start "s_").
const queueClaim = "~queue"

// Cluster events of the queue.
const opQueueRelease = "queue_release"

// queueLeader tracks which node runs the instant-mediation queue, which
// lives in one node's memory: the first node asked claims it, and keeps
// it while it renews the claim; a lost node's queue moves to the next
// node asked once its heartbeat expires (the requests waiting in it are
// lost: the parties ask again).
type queueLeader struct {
	nodes *cluster.Cluster
	log   *slog.Logger

	mu      sync.Mutex
	leading bool

	stop chan struct{}
	done chan struct{}
}

func newQueueLeader(nodes *cluster.Cluster, log *slog.Logger) *queueLeader {
	q := &queueLeader{nodes: nodes, log: log, stop: make(chan struct{}), done: make(chan struct{})}
	go q.renew()
	return q
}

// node returns nil when this node runs the queue, or the base URL of the
// node that does.
func (q *queueLeader) node(ctx context.Context) (*url.URL, error) {
	o, err := q.nodes.Claim(ctx, queueClaim)
	if err != nil {
		return nil, err
	}
	mine := o.Node == q.nodes.Self()
	q.mu.Lock()
	if mine && !q.leading {
		q.log.Info("cluster: this node runs the instant-mediation queue")
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

func (q *queueLeader) isLeading() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.leading
}

func (q *queueLeader) renew() {
	defer close(q.done)
	t := time.NewTicker(q.nodes.RoomTTL() / 3)
	defer t.Stop()
	for {
		select {
		case <-q.stop:
			return
		case <-t.C:
		}
		if !q.isLeading() {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), q.nodes.RoomTTL()/3)
		lost, err := q.nodes.Renew(ctx, []string{queueClaim})
		cancel()
		if err != nil {
			q.log.Warn("cluster: the queue's claim was not renewed", "err", err)
			continue
		}
		if len(lost) > 0 {
			q.mu.Lock()
			q.leading = false
			q.mu.Unlock()
			q.log.Warn("cluster: another node runs the instant-mediation queue now; requests waiting here are left")
		}
	}
}

// Close stops renewing and gives the queue up, so that the next node
// asked takes it at once.
func (q *queueLeader) Close() {
	close(q.stop)
	<-q.done
	if q.isLeading() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = q.nodes.Release(ctx, queueClaim)
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

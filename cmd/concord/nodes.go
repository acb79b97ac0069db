package main

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/url"
	"os"

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

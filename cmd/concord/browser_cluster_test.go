package main

import (
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestBrowserClusterNodeStops: three browsers reach two nodes through one
// load balancer, with no stickiness: page loads, API calls and sockets go
// to either node. The room runs on one; when that node stops, the pages
// reconnect through the balancer to the other, which reopens the room as
// it was: nobody is sent back to the lobby, and media flows again.
func TestBrowserClusterNodeStops(t *testing.T) {
	step := stepper(t)
	browserCtx := startBrowser(t)
	a, b, _ := twoNodes(t)
	lb := newBalancer(t, a.BaseURL, b.BaseURL)
	link := func(u string) string { return lb.URL + strings.TrimPrefix(u, b.BaseURL) }

	med := openTab(t, browserCtx, "mediator", link(b.Demo.Mediator), false)
	consumer := openTab(t, browserCtx, "consumer", link(b.Demo.Consumer), true)
	merchant := openTab(t, browserCtx, "merchant", link(b.Demo.Merchant), false)
	tabs := []*tab{med, consumer, merchant}
	dumpOnFailure(t, tabs)

	med.waitState(t, "in-room", joinWait)
	enterRoomWith(t, med, entryQuiet, consumer, merchant)
	waitMediaFlowing(t, tabs, 2, joinWait)
	step("media flows through the balancer")

	owner, other := a, b
	if b.sig.Rooms() == 1 {
		owner, other = b, a
	}
	if owner.sig.Rooms() != 1 || other.sig.Rooms() != 0 {
		t.Fatalf("rooms open: %d and %d, want one room on one node", owner.sig.Rooms(), other.sig.Rooms())
	}
	if err := owner.Main.Close(); err != nil {
		t.Fatal(err)
	}
	step("the room's node stopped")

	// Every page reconnects to the other node and is back in the room,
	// without consenting or waiting in the lobby again (nobody here would
	// accept the rules or admit anyone).
	for _, tb := range tabs {
		tb.waitState(t, "in-room", joinWait)
	}
	waitMediaFlowing(t, tabs, 2, joinWait)
	step("media flows again on the other node")
	if n := other.sig.Rooms(); n != 1 {
		t.Fatalf("the surviving node runs %d rooms, want 1", n)
	}
}

// balancer spreads requests, sockets included, over nodes in turn,
// skipping those that refuse connections, as a load balancer with health
// checks does.
type balancer struct {
	*httptest.Server
	nodes []*url.URL
	next  atomic.Uint64
}

func newBalancer(t *testing.T, bases ...string) *balancer {
	t.Helper()
	lb := &balancer{}
	for _, base := range bases {
		u, err := url.Parse(base)
		if err != nil {
			t.Fatal(err)
		}
		lb.nodes = append(lb.nodes, u)
	}
	lb.Server = httptest.NewServer(lb)
	t.Cleanup(lb.Close)
	return lb
}

func (lb *balancer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := lb.next.Add(1)
	for i := range lb.nodes {
		node := lb.nodes[(int(start)+i)%len(lb.nodes)]
		c, err := net.DialTimeout("tcp", node.Host, 200*time.Millisecond)
		if err != nil {
			continue
		}
		c.Close()
		proxy := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(node)
			pr.Out.Host = pr.In.Host // the page's origin, as a balancer keeps it
		}}
		proxy.ServeHTTP(w, r)
		return
	}
	http.Error(w, "no node answers", http.StatusBadGateway)
}

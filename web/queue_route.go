package web

import (
	"context"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"

	"github.com/concord-odr/concord/cases"
)

// QueueNode says which node of a cluster runs the instant-mediation queue,
// which lives in one node's memory: nil for this node, or the base URL
// (http://host:port) of the node to send queue requests to.
type QueueNode func(ctx context.Context) (*url.URL, error)

// relayHeader marks a request another node relayed; it is served here,
// never relayed again.
const relayHeader = "X-Concord-Relay"

// queuePath reports whether a request needs the queue: the queue's own
// API and the kiosk's, which starts cases into it and shows its tickets.
func queuePath(p string) bool {
	return strings.HasPrefix(p, "/api/v1/queue/") || strings.HasPrefix(p, "/api/v1/kiosk/")
}

// routeQueue sends a queue request to the node running the queue when
// that is another node, and reports whether it did (or answered an error).
func (h *Handler) routeQueue(w http.ResponseWriter, r *http.Request) bool {
	if h.p.QueueNode == nil || !queuePath(r.URL.Path) || r.Header.Get(relayHeader) != "" {
		return false
	}
	target, err := h.p.QueueNode(r.Context())
	if err != nil {
		h.log.Error("cluster: the queue's node is unknown", "err", err)
		writeProblem(w, cases.EUNAVAILABLE, "the mediation queue cannot be reached just now; try again shortly")
		return true
	}
	if target == nil {
		return false
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
			pr.Out.Host = pr.In.Host
			pr.Out.Header.Set(relayHeader, "1")
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			h.log.Warn("cluster: the queue's node did not answer", "node", target.Host, "err", err)
			writeProblem(w, cases.EUNAVAILABLE, "the mediation queue cannot be reached just now; try again shortly")
		},
	}
	proxy.ServeHTTP(w, r)
	return true
}

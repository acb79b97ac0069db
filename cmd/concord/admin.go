package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/procfs"

	"github.com/concord-odr/concord/signaling/cluster"
)

// newAdminHandler serves what an operator's monitoring and a profiling
// session need, on an address that is not the public one:
//
//	/metrics         Prometheus text format: reg's metrics plus the Go
//	                 runtime (go_*) and process (process_*) collectors
//	/debug/pprof/    net/http/pprof: heap, goroutine, profile (CPU), trace, ...
//	/cluster         with several nodes: each node, whether it is alive, the
//	                 rooms it runs and whether it runs the queue (JSON)
//
// reg may be nil (a fresh registry); nodes is nil on a single node. The runtime and process collectors
// are registered on reg unless it already has them, so the handler can be
// built twice on one registry.
func newAdminHandler(reg *prometheus.Registry, nodes nodeLister) http.Handler {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	cs := []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	}
	if c := privateMemoryCollector(); c != nil {
		cs = append(cs, c)
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			var already prometheus.AlreadyRegisteredError
			if !errors.As(err, &already) {
				panic(fmt.Sprintf("admin: register collector: %v", err))
			}
		}
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	links := `<li><a href="metrics">/metrics</a></li><li><a href="debug/pprof/">/debug/pprof/</a></li>`
	if nodes != nil {
		links += `<li><a href="cluster">/cluster</a></li>`
		mux.HandleFunc("GET /cluster", func(w http.ResponseWriter, r *http.Request) {
			ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
			defer cancel()
			list, err := nodes.Nodes(ctx)
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "no-store")
			if err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
				return
			}
			_ = json.NewEncoder(w).Encode(map[string]any{"nodes": list})
		})
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><title>Concord admin</title><h1>Concord admin</h1><ul>`+links+`</ul>`)
	})
	return mux
}

// nodeLister lists the nodes of a cluster (cluster.Cluster).
type nodeLister interface {
	Nodes(ctx context.Context) ([]cluster.NodeStatus, error)
}

// privateMemoryCollector reports the process's anonymous resident memory
// (RssAnon: its heap, stacks and runtime structures), where the system
// tells it (Linux), else nil. process_resident_memory_bytes also counts
// the pages of the binary's code and data as they are first touched,
// which are shared, one-off and reclaimable: the first room of a server
// brings in ~2 MB of them, and the load test charged them to its
// participants.
func privateMemoryCollector() prometheus.Collector {
	self, err := procfs.Self()
	if err != nil {
		return nil
	}
	if _, err := self.NewStatus(); err != nil {
		return nil
	}
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "concord_process_private_resident_bytes",
		Help: "Anonymous resident memory of the process (RssAnon): resident memory less the binary's file-backed pages.",
	}, func() float64 {
		st, err := self.NewStatus()
		if err != nil {
			return math.NaN()
		}
		return float64(st.RssAnon)
	})
}

// adminServer is the admin HTTP listener: newAdminHandler on its own
// address (default 127.0.0.1:9090, never the public one).
type adminServer struct {
	ln   net.Listener
	srv  *http.Server
	wg   sync.WaitGroup
	once sync.Once
}

// startAdmin listens on addr and serves h until Close. Port 0 picks a
// free port; Addr tells which.
func startAdmin(addr string, h http.Handler, log *slog.Logger) (*adminServer, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin: listen %s: %w", addr, err)
	}
	a := &adminServer{ln: ln, srv: &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		// No write timeout: /debug/pprof/profile and /trace stream for as
		// long as their seconds parameter says.
		IdleTimeout: 120 * time.Second,
		ErrorLog:    slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		if err := a.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin server stopped", "err", err)
		}
	}()
	log.Info("admin listening", "url", "http://"+ln.Addr().String())
	return a, nil
}

// Addr is the address the admin server listens on.
func (a *adminServer) Addr() net.Addr { return a.ln.Addr() }

// Close stops the admin server, waiting briefly for requests in flight.
func (a *adminServer) Close() error {
	var err error
	a.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err = a.srv.Shutdown(ctx); errors.Is(err, context.DeadlineExceeded) {
			err = a.srv.Close()
		}
		a.wg.Wait()
	})
	return err
}

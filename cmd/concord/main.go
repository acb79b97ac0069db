// Command concord is the Concord mediation server: HTTP API, WebSocket
// signaling, SFU media and the browser client in one binary.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/concord-odr/concord/cases"
	"github.com/concord-odr/concord/cases/calendar"
	"github.com/concord-odr/concord/cases/identity"
	"github.com/concord-odr/concord/cases/joinlink"
	"github.com/concord-odr/concord/cases/notify"
	"github.com/concord-odr/concord/cases/postgres"
	"github.com/concord-odr/concord/cases/rules"
	"github.com/concord-odr/concord/cases/sqlite"
	"github.com/concord-odr/concord/media"
	"github.com/concord-odr/concord/signaling"
	"github.com/concord-odr/concord/signaling/cluster"
	"github.com/concord-odr/concord/web"
	"github.com/concord-odr/concord/web/ratelimit"
)

const usage = `Concord: real-time online mediation server.

Usage:
  concord serve [flags]     run the server (applies migrations first)
  concord migrate [flags]   apply the case store's schema migrations and exit
  concord loadtest [flags]  synthetic participants measure a server (--help)
  concord audit verify CASE recompute a case's hash-chained event log (--help)
  concord user add [flags]  create a staff account, e.g. the first platform admin (--help)
  concord help              show this text

"concord serve --demo" starts with the embedded store and prints join links for
a demo case. Run "concord serve --help" for every flag; each flag also reads
an environment variable (CONCORD_ADDR, CONCORD_DATABASE_URL, ...).
`

func main() {
	os.Exit(run(os.Args[1:], environ(), os.Stdout, os.Stderr))
}

// run is main without the exit, for tests.
func run(args, env []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "help", "-h", "--help", "-help":
		fmt.Fprint(stdout, usage)
		return 0
	case "loadtest":
		return runLoadtest(rest, env, stdout, stderr)
	case "user":
		return runUser(rest, env, os.Stdin, stdout, stderr)
	case "audit":
		return runAudit(rest, env, stdout, stderr)
	case "serve", "migrate":
	default:
		fmt.Fprintf(stderr, "concord: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	cfg, err := parseConfig(cmd, rest, env, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "concord %s: %v\n", cmd, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	m := NewMain(cfg, stdout, cfg.logger(stderr))
	if cmd == "migrate" {
		if err := m.Migrate(ctx); err != nil {
			fmt.Fprintf(stderr, "concord migrate: %v\n", err)
			return 1
		}
		fmt.Fprintln(stdout, "migrations applied")
		return 0
	}
	if err := m.Run(ctx); err != nil {
		fmt.Fprintf(stderr, "concord serve: %v\n", err)
		_ = m.Close()
		return 1
	}
	<-ctx.Done()
	stop() // a second signal now ends the process at once
	m.log.Info("shutting down")
	if err := m.Close(); err != nil {
		fmt.Fprintf(stderr, "concord serve: shutdown: %v\n", err)
		return 1
	}
	return 0
}

// Main is the running server: its configuration and every part it wires.
type Main struct {
	Config Config
	Stdout io.Writer
	log    *slog.Logger

	store   cases.Store
	durable *durability // outcome outbox replayer, chain head export
	cases   *cases.Service
	signer  *joinlink.Signer
	// identity, outbox and limiter: staff accounts and join links, the
	// notifications they send, and the rate limits of logins and links.
	identity *identity.Service
	outbox   *notify.Outbox
	limiter  ratelimit.Limiter
	sfu      *media.SFU
	sig      *signaling.Server
	redis    *redis.Client
	nodes    *cluster.Cluster // with Redis: the nodes sharing it
	// queueLead, with nodes, says which node runs the instant-mediation
	// queue.
	queueLead *queueLeader
	httpSrv   *http.Server
	ln        net.Listener
	serveWG   sync.WaitGroup

	metrics *prometheus.Registry
	admin   *adminServer

	// Demo is set after Run when Config.Demo is on.
	Demo *Demo

	// cloud runs the ODR and reminder workers and the instant-mediation
	// queue (cloud.go).
	cloud *cloudMediation
	// ends tells the queue and the rooms of sessions the store ended.
	ends *sessionEnds

	closeOnce sync.Once
	closeErr  error
}

// NewMain returns a Main for cfg.
func NewMain(cfg Config, stdout io.Writer, log *slog.Logger) *Main {
	return &Main{Config: cfg, Stdout: stdout, log: log}
}

// openStore opens the configured case store and applies its migrations.
func (m *Main) openStore(ctx context.Context) error {
	if m.Config.DatabaseURL != "" {
		s, err := postgres.Open(ctx, m.Config.DatabaseURL)
		if err != nil {
			return fmt.Errorf("open PostgreSQL: %w", err)
		}
		m.store = s
		if err := s.Migrate(ctx); err != nil {
			return fmt.Errorf("migrate PostgreSQL: %w", err)
		}
		m.log.Info("case store: PostgreSQL")
		return nil
	}
	if err := os.MkdirAll(m.Config.DataDir, 0o700); err != nil {
		return fmt.Errorf("data folder: %w", err)
	}
	path := filepath.Join(m.Config.DataDir, "cases.db")
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		return fmt.Errorf("open embedded store %s: %w", path, err)
	}
	m.store = s
	if err := s.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate embedded store: %w", err)
	}
	m.log.Info("case store: embedded", "path", path)
	return nil
}

// Migrate applies the case store's migrations.
func (m *Main) Migrate(ctx context.Context) error {
	defer m.Close()
	return m.openStore(ctx)
}

// Run opens the store, starts media, signaling and HTTP, and returns once
// the server is listening. Close stops it.
func (m *Main) Run(ctx context.Context) error {
	if err := m.openStore(ctx); err != nil {
		return err
	}
	m.metrics = prometheus.NewRegistry()
	m.store = cases.ObservedStore(m.store, storeLatency(m.metrics))
	m.ends = watchSessionEnds(m.store)
	m.store = m.ends
	var err error
	sp := cases.ServiceParams{Store: m.store, Logger: m.log}
	if sp.Outbox, err = openOutcomeOutbox(m.Config.DataDir); err != nil {
		return err
	}
	if m.Config.CalendarDir != "" {
		cal, err := calendar.Load(m.Config.CalendarDir)
		if err != nil {
			return fmt.Errorf("calendar: %w", err)
		}
		sp.Calendar = cal
	}
	if m.Config.RulesDir != "" {
		book, err := rules.Load(m.Config.RulesDir)
		if err != nil {
			return fmt.Errorf("rules: %w", err)
		}
		sp.Rules = book
	}
	m.cases = cases.NewService(sp)
	m.durable = startDurability(m.cases, sp.Outbox, m.log, 0)
	m.cloud = startCloudMediation(m.cases, m.log)
	if m.Config.AdminToken == "" && m.Config.Demo {
		if m.Config.AdminToken, err = demoAdminToken(m.Config.DataDir); err != nil {
			return err
		}
	}

	if m.Config.RedisURL != "" {
		opt, err := redis.ParseURL(m.Config.RedisURL)
		if err != nil {
			return fmt.Errorf("redis url: %w", err)
		}
		m.redis = redis.NewClient(opt)
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = m.redis.Ping(pctx).Err()
		cancel()
		if err != nil {
			return fmt.Errorf("redis: %w", err)
		}
		m.log.Info("redis reachable")
	}

	if err := m.startIdentity(); err != nil {
		return err
	}
	proxies, err := m.Config.trustedProxies()
	if err != nil {
		return err
	}

	mp := media.Params{Logger: m.log, UDPAddr: m.Config.MediaUDP, TCPAddr: m.Config.MediaTCP, UDPReaders: m.Config.MediaReaders, AdaptProcs: m.Config.AdaptiveProcs, PublicIPs: m.Config.publicIPs()}
	if m.Config.TURNUDP != "" || m.Config.TURNTCP != "" {
		secret, err := turnSecret(m.Config.TURNSecretFile, m.Config.DataDir)
		if err != nil {
			return fmt.Errorf("turn secret: %w", err)
		}
		mp.TURN = &media.TURNParams{UDPAddr: m.Config.TURNUDP, TCPAddr: m.Config.TURNTCP, Host: m.Config.TURNHost, Secret: secret, TTL: m.Config.TURNTTL}
	}
	m.sfu, err = media.New(mp)
	if err != nil {
		return err
	}
	registerMediaMetrics(m.metrics, m.sfu)
	m.ln, err = net.Listen("tcp", m.Config.Addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", m.Config.Addr, err)
	}
	var nodes *cluster.Cluster
	var lister nodeLister
	if m.redis != nil {
		if nodes, err = m.newCluster(); err != nil {
			return err
		}
		lister = nodes
	}
	if m.Config.AdminAddr != "" {
		if m.admin, err = startAdmin(m.Config.AdminAddr, newAdminHandler(m.metrics, lister), m.log); err != nil {
			return err
		}
	}
	sigp := signaling.Params{
		Logger:         m.log,
		SFU:            m.sfu,
		Tokens:         m.identity.Verifier(identity.ForSignaling),
		Sessions:       m.cases,
		AllowedOrigins: lowerAll(splitList(m.Config.AllowedOrigins)),
		ResumeGrace:    m.Config.ResumeGrace,
		Metrics:        signaling.NewMetrics(m.metrics),
		ICEServersFor:  m.iceServersFor,
	}
	if nodes != nil {
		sigp.Cluster = nodes
	}
	m.sig = signaling.New(sigp)
	onEnded := m.cloud.sessionEnded(m.sig)
	if nodes != nil {
		if err := nodes.Start(ctx, m.applyEvent); err != nil {
			return err
		}
		m.nodes = nodes
		m.queueLead = newQueueLeader(nodes, m.cloud.queue, m.log)
		local := onEnded
		onEnded = func(e endedSession) {
			local(e)
			// The queue may run on another node.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := nodes.Publish(ctx, cluster.Event{Op: opQueueRelease, Session: e.ID}); err != nil {
				m.log.Error("cluster: the queue's node was not told of an ended session", "session", e.ID, "err", err)
			}
		}
	}
	m.ends.notify(onEnded)
	var queueNode web.QueueNode
	if m.queueLead != nil {
		queueNode = m.queueLead.node
	}
	handler := web.NewHandler(web.Params{
		Logger:         m.log,
		Cases:          m.cases,
		Tokens:         m.identity.Verifier(identity.ForAPI),
		Signaling:      m.sig,
		Rooms:          m.sig,
		AdminToken:     m.Config.AdminToken,
		ImportSecret:   m.Config.ImportSecret,
		Identity:       m.identity,
		Limiter:        m.limiter,
		TrustedProxies: proxies,
		Queue:          m.cloud.queue,
		QueueNode:      queueNode,
	})

	m.httpSrv = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(m.log.Handler(), slog.LevelWarn),
	}
	m.serveWG.Add(1)
	go func() {
		defer m.serveWG.Done()
		if err := m.httpSrv.Serve(m.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.log.Error("http server stopped", "err", err)
		}
	}()
	m.log.Info("listening", "url", m.BaseURL())

	if m.Config.Demo {
		d, err := m.seedDemo(ctx)
		if err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		m.Demo = d
		d.print(m.Stdout, m.BaseURL(), m.Config.AdminToken)
	}
	return nil
}

// BaseURL is the URL join links start with.
func (m *Main) BaseURL() string {
	if m.Config.PublicURL != "" {
		return strings.TrimRight(m.Config.PublicURL, "/")
	}
	if m.ln != nil {
		return "http://" + m.ln.Addr().String()
	}
	return "http://" + m.Config.Addr
}

// Close shuts down in stages: no new sockets, tell the connected clients,
// close rooms and media, then the HTTP server and the store. It is
// idempotent.
func (m *Main) Close() error {
	m.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var errs []error
		if m.sig != nil {
			if err := m.sig.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("signaling: %w", err))
			}
		}
		if m.queueLead != nil {
			m.queueLead.Close()
		}
		if m.nodes != nil {
			if err := m.nodes.Close(); err != nil {
				m.log.Warn("left the cluster without saying so; the other nodes wait for this node's heartbeat to expire", "err", err)
			}
		}
		if m.httpSrv != nil {
			if err := m.httpSrv.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("http: %w", err))
			}
			m.serveWG.Wait()
		} else if m.ln != nil {
			_ = m.ln.Close() // Run failed between listening and serving
		}
		if m.admin != nil {
			_ = m.admin.Close()
		}
		if m.sfu != nil {
			if err := m.sfu.Close(); err != nil {
				errs = append(errs, fmt.Errorf("media: %w", err))
			}
		}
		if m.outbox != nil {
			_ = m.outbox.Close()
		}
		if m.redis != nil {
			_ = m.redis.Close()
		}
		if m.durable != nil {
			_ = m.durable.Close()
		}
		if m.cloud != nil {
			_ = m.cloud.Close()
		}
		if m.store != nil {
			if err := m.store.Close(); err != nil {
				errs = append(errs, fmt.Errorf("store: %w", err))
			}
		}
		m.closeErr = errors.Join(errs...)
	})
	return m.closeErr
}

func lowerAll(in []string) []string {
	for i := range in {
		in[i] = strings.ToLower(in[i])
	}
	return in
}

// iceServersFor converts the SFU's ICE servers for one participant (TURN
// credentials included) to what signaling hands the client.
func (m *Main) iceServersFor(participantID string) []signaling.ICEServer {
	var out []signaling.ICEServer
	for _, s := range m.sfu.ICEServersFor(participantID) {
		cred, _ := s.Credential.(string)
		out = append(out, signaling.ICEServer{URLs: s.URLs, Username: s.Username, Credential: cred})
	}
	return out
}

// turnSecret reads the TURN credential secret from file, or from (and on
// first use into) the data folder.
func turnSecret(file, dataDir string) ([]byte, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		if s := strings.TrimSpace(string(b)); len(s) >= 16 {
			return []byte(s), nil
		}
		return nil, fmt.Errorf("%s: the secret must be at least 16 characters", file)
	}
	secret, err := loadOrCreateSecret(filepath.Join(dataDir, "turn.secret"), 16, 32, hex.EncodeToString)
	return []byte(secret), err
}

// loadOrCreateSecret reads a secret of at least minLen characters kept in
// path, or creates one from size random bytes (readable by the owner
// only) when the file is missing or too short.
func loadOrCreateSecret(path string, minLen, size int, encode func([]byte) string) (string, error) {
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) >= minLen {
		return strings.TrimSpace(string(b)), nil
	}
	raw := make([]byte, size)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	s := encode(raw)
	if err := os.WriteFile(path, []byte(s+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return s, nil
}

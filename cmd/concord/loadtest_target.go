package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/concord-odr/concord/cases"
	"github.com/concord-odr/concord/cases/joinlink"
)

// ltSeat is one participant the load test wants in a room.
type ltSeat struct {
	Role    string `json:"role"`
	Side    string `json:"side"`
	Publish bool   `json:"publish"`
}

// ltToken is a seat with its join token.
type ltToken struct {
	ltSeat
	Token   string `json:"token"`
	Session string `json:"session,omitempty"`
}

// ltServerStats is what the server's metrics say at one instant.
type ltServerStats struct {
	CPUSeconds float64            // process_cpu_seconds_total
	RSSBytes   float64            // process_resident_memory_bytes
	Private    float64            // concord_process_private_resident_bytes (0: not reported)
	Goroutines float64            // go_goroutines
	Concord    map[string]float64 // every concord_* series, summed over its labels
	// Delay is the histogram concord_media_forward_delay_seconds: each
	// bucket's upper bound in seconds (+Inf the last) to its cumulative
	// count; empty when the server does not report it.
	Delay map[float64]float64
}

// ltServerInfo describes the server under test.
type ltServerInfo struct {
	Mode  string `json:"mode"` // child, inprocess, remote
	URL   string `json:"url"`
	Admin string `json:"admin,omitempty"`
	PID   int    `json:"pid,omitempty"`
	// Shared is true when the server runs in the generator's process: its
	// CPU and memory then include the generator's.
	Shared bool `json:"shared"`
	// Local is true when the server is on this machine (loopback).
	Local bool `json:"local"`
}

// ltTarget is a server the load test joins.
type ltTarget interface {
	Info() ltServerInfo
	// Sessions creates (or, remotely, hands out) one session per room with
	// the given seats, and returns a join token per seat.
	Sessions(ctx context.Context, rooms [][]ltSeat) ([][]ltToken, error)
	// Stats reads the server's CPU and memory; ok is false when the
	// target has no metrics to read.
	Stats(ctx context.Context) (s ltServerStats, ok bool, err error)
	Close() error
}

// seatsFor lays out one room: the mediator first, then parties
// alternating between the two sides. The first pubs seats publish.
func seatsFor(total, pubs int) []ltSeat {
	seats := make([]ltSeat, total)
	for i := range seats {
		s := ltSeat{Role: cases.RoleParty, Side: cases.SideApplicant, Publish: i < pubs}
		switch {
		case i == 0:
			s.Role, s.Side = cases.RoleMediator, cases.SideNeutral
		case i%2 == 0:
			s.Side = cases.SideRespondent
		}
		seats[i] = s
	}
	return seats
}

// --- sessions in a case store ----------------------------------------------

const (
	ltInstitutionID = "inst_loadtest"
	ltActor         = "loadtest"
)

// ltSessionMaker creates load-test cases and sessions in a case service
// and signs their join tokens.
type ltSessionMaker struct {
	svc    *cases.Service
	store  cases.Store
	signer *joinlink.Signer
	ttl    time.Duration

	mu      sync.Mutex
	instOK  bool
	counter int
}

func (mk *ltSessionMaker) ensureInstitution(ctx context.Context) error {
	if mk.instOK {
		return nil
	}
	var exists bool
	err := mk.store.View(ctx, func(tx cases.Tx) error {
		_, err := tx.Institution(ctx, ltInstitutionID)
		if err == nil {
			exists = true
			return nil
		}
		if cases.ErrorCode(err) == cases.ENOTFOUND {
			return nil
		}
		return err
	})
	if err != nil {
		return err
	}
	if !exists {
		inst := &cases.Institution{ID: ltInstitutionID, Code: "LT01", Name: "Load Test Mediation Centre", Level: "community", Status: "active"}
		if err := mk.svc.PutInstitution(ctx, inst); err != nil {
			return err
		}
	}
	mk.instOK = true
	return nil
}

// pathTo finds the shortest chain of lifecycle steps from one state to
// another in the lifecycle table, so that the load test follows the
// table as it grows (it walks to accepted, as the demo does).
func pathTo(from, to cases.State) []cases.State {
	prev := map[cases.State]cases.State{from: from}
	queue := []cases.State{from}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		if s == to {
			var path []cases.State
			for s != from {
				path = append([]cases.State{s}, path...)
				s = prev[s]
			}
			return path
		}
		for _, n := range cases.Next(s) {
			if _, seen := prev[n]; !seen {
				prev[n] = s
				queue = append(queue, n)
			}
		}
	}
	return nil
}

// walkTo moves case c along pathTo(c.State, to), one recorded transition
// at a time, and returns it as it then stands. A case already at to, or
// past it, is returned unchanged.
func walkTo(ctx context.Context, svc *cases.Service, c *cases.Case, to cases.State, actor string) (*cases.Case, error) {
	for _, step := range pathTo(c.State, to) {
		next, err := svc.Transition(ctx, c.ID, step, actor, nil)
		if err != nil {
			return nil, fmt.Errorf("case %s to %s: %w", c.ID, step, err)
		}
		c = next
	}
	return c, nil
}

func (mk *ltSessionMaker) Sessions(ctx context.Context, rooms [][]ltSeat) ([][]ltToken, error) {
	mk.mu.Lock()
	defer mk.mu.Unlock()
	if err := mk.ensureInstitution(ctx); err != nil {
		return nil, fmt.Errorf("institution: %w", err)
	}
	out := make([][]ltToken, 0, len(rooms))
	for _, seats := range rooms {
		mk.counter++
		c, _, err := mk.svc.OpenCase(ctx, cases.NewCase{
			InstitutionID: ltInstitutionID,
			Category:      "e-commerce",
			Channel:       "online",
			Applicant:     cases.Party{Name: fmt.Sprintf("Load applicant %d", mk.counter), Kind: "person"},
			Respondent:    cases.Party{Name: fmt.Sprintf("Load merchant %d", mk.counter), Kind: "organisation"},
			Claims:        "Synthetic load-test case.",
			AmountCents:   10000,
			Actor:         ltActor,
		})
		if err != nil {
			return nil, fmt.Errorf("open case: %w", err)
		}
		if c, err = walkTo(ctx, mk.svc, c, cases.StateAccepted, ltActor); err != nil {
			return nil, err
		}
		ps := make([]cases.Participant, len(seats))
		for i, s := range seats {
			ps[i] = cases.Participant{Name: fmt.Sprintf("%s %d", s.Role, i), Role: s.Role, Side: s.Side}
		}
		sess, err := mk.svc.ScheduleSession(ctx, c.ID, ltActor, ps)
		if err != nil {
			return nil, fmt.Errorf("schedule session: %w", err)
		}
		toks := make([]ltToken, len(seats))
		for i, p := range sess.Participants {
			tok, err := mk.signer.Issue(joinlink.Claims{
				CaseID: c.ID, SessionID: sess.ID, Role: p.Role, Side: p.Side, Name: p.Name,
				RegisteredClaims: jwt.RegisteredClaims{Subject: p.ID},
			}, mk.ttl)
			if err != nil {
				return nil, err
			}
			toks[i] = ltToken{ltSeat: seats[i], Token: tok, Session: sess.ID}
		}
		out = append(out, toks)
	}
	return out, nil
}

// --- an in-process server ---------------------------------------------------

// ltServerOpts are the settings of a server the load test starts that
// its flags choose.
type ltServerOpts struct {
	logLevel     string
	mediaReaders int // 0: the server's default
	// adaptiveProcs is the server's --adaptive-procs; never for a
	// server in the generator's own process, whose GOMAXPROCS it sets.
	adaptiveProcs bool
	// binary, when set, is the concord executable a child server runs
	// (another build), else this one.
	binary string
}

// ltServerConfig is the configuration of a server the load test starts:
// loopback ports picked by the kernel, a fresh data folder.
func ltServerConfig(dataDir string, o ltServerOpts) (Config, error) {
	args := []string{
		"--addr", "127.0.0.1:0",
		"--media-udp", "127.0.0.1:0",
		"--media-tcp", "127.0.0.1:0",
		"--data-dir", dataDir,
		"--log-level", o.logLevel,
		"--media-readers", strconv.Itoa(o.mediaReaders),
		"--adaptive-procs=" + strconv.FormatBool(o.adaptiveProcs),
	}
	// An admin address, once serve has one, must not collide with a
	// server already running either.
	for _, st := range (&Config{}).settings() {
		if st.flag == "admin-addr" {
			args = append(args, "--admin-addr", "127.0.0.1:0")
		}
	}
	return parseConfig("serve", args, nil, io.Discard)
}

// startLoadServer starts a Main for the load test and a session maker on
// it. The caller closes the Main and removes dataDir.
func startLoadServer(ctx context.Context, dataDir string, o ltServerOpts, logTo io.Writer) (*Main, *ltSessionMaker, error) {
	cfg, err := ltServerConfig(dataDir, o)
	if err != nil {
		return nil, nil, err
	}
	m := NewMain(cfg, io.Discard, cfg.logger(logTo))
	if err := m.Run(ctx); err != nil {
		_ = m.Close()
		return nil, nil, err
	}
	return m, &ltSessionMaker{svc: m.cases, store: m.store, signer: m.signer, ttl: time.Hour}, nil
}

type inprocTarget struct {
	*ltSessionMaker
	m   *Main
	dir string
}

func newInprocTarget(ctx context.Context, o ltServerOpts, logTo io.Writer) (*inprocTarget, error) {
	dir, err := os.MkdirTemp("", "concord-loadtest-")
	if err != nil {
		return nil, err
	}
	m, mk, err := startLoadServer(ctx, dir, o, logTo)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return &inprocTarget{ltSessionMaker: mk, m: m, dir: dir}, nil
}

func (t *inprocTarget) Info() ltServerInfo {
	return ltServerInfo{Mode: "inprocess", URL: t.m.BaseURL(), PID: os.Getpid(), Shared: true, Local: true}
}

func (t *inprocTarget) Stats(context.Context) (ltServerStats, bool, error) {
	cpu, ok := selfCPUSeconds()
	if !ok {
		return ltServerStats{}, false, nil
	}
	return ltServerStats{CPUSeconds: cpu, RSSBytes: float64(procRSS(os.Getpid()))}, true, nil
}

func (t *inprocTarget) Close() error {
	err := t.m.Close()
	os.RemoveAll(t.dir)
	return err
}

// mintTokens creates cfg.Rooms sessions in the store of a server's data
// folder (or its PostgreSQL database) with the server's signing key, and
// writes their join tokens to cfg.MintTokens, a blank line between
// sessions. It returns how many sessions it wrote.
func mintTokens(ctx context.Context, cfg *ltConfig) (int, error) {
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "joinlink.key")); err != nil {
		return 0, fmt.Errorf("no signing key in %s (give the server's --data-dir): %w", cfg.DataDir, err)
	}
	m := NewMain(Config{DataDir: cfg.DataDir, DatabaseURL: cfg.DatabaseURL}, io.Discard, slog.New(slog.DiscardHandler))
	defer m.Close()
	if err := m.openStore(ctx); err != nil {
		return 0, err
	}
	key, err := joinlink.LoadOrCreateKey(cfg.DataDir)
	if err != nil {
		return 0, err
	}
	signer, err := joinlink.NewSigner(key, nil, nil)
	if err != nil {
		return 0, err
	}
	mk := &ltSessionMaker{svc: cases.NewService(cases.ServiceParams{Store: m.store, Logger: m.log}), store: m.store, signer: signer, ttl: 72 * time.Hour}
	layouts := make([][]ltSeat, cfg.Rooms)
	for i := range layouts {
		layouts[i] = seatsFor(cfg.perRoom(), cfg.pubsPerRoom())
	}
	rooms, err := mk.Sessions(ctx, layouts)
	if err != nil {
		return 0, err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# concord loadtest: %d sessions of %d participants, the mediator first; blank lines separate sessions\n", len(rooms), cfg.perRoom())
	for _, room := range rooms {
		for _, tk := range room {
			b.WriteString(tk.Token + "\n")
		}
		b.WriteString("\n")
	}
	return len(rooms), os.WriteFile(cfg.MintTokens, []byte(b.String()), 0o600)
}

// --- a child process --------------------------------------------------------

// childHello is the first line a load-test child prints.
type childHello struct {
	URL   string `json:"url"`
	Admin string `json:"admin"`
	PID   int    `json:"pid"`
	Error string `json:"error,omitempty"`
}

type childRequest struct {
	Rooms [][]ltSeat `json:"rooms"`
}

type childResponse struct {
	Rooms [][]ltToken `json:"rooms"`
	Error string      `json:"error,omitempty"`
}

// ltChildEnv marks the environment of a load-test child, so that a test
// binary standing in for concord knows to run the child.
const ltChildEnv = "CONCORD_TEST_LOADTEST_CHILD"

// runLoadtestChild is "concord loadtest --internal-child": a server on
// loopback with its admin endpoint, which creates sessions on request. It
// prints a childHello line, then answers each childRequest line on stdin
// with a childResponse line, and stops when stdin closes.
func runLoadtestChild(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("concord loadtest --internal-child", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o ltServerOpts
	fs.StringVar(&o.logLevel, "log-level", "error", "server log level")
	fs.IntVar(&o.mediaReaders, "media-readers", 0, "the server's media readers (0: its default)")
	fs.BoolVar(&o.adaptiveProcs, "adaptive-procs", true, "the server's --adaptive-procs")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	enc := json.NewEncoder(stdout)
	fail := func(err error) int {
		_ = enc.Encode(childHello{Error: err.Error()})
		return 1
	}
	dir, err := os.MkdirTemp("", "concord-loadtest-server-")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	m, mk, err := startLoadServer(ctx, dir, o, stderr)
	if err != nil {
		return fail(err)
	}
	defer m.Close()
	admin := m.admin // the server's own (ltServerConfig gives it one), with every metric
	if admin == nil {
		return fail(errors.New("the server has no admin endpoint"))
	}
	if err := enc.Encode(childHello{URL: m.BaseURL(), Admin: "http://" + admin.Addr().String(), PID: os.Getpid()}); err != nil {
		return 1
	}
	sc := bufio.NewScanner(stdin)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var req childRequest
		var resp childResponse
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			resp.Error = err.Error()
		} else if resp.Rooms, err = mk.Sessions(ctx, req.Rooms); err != nil {
			resp.Error = err.Error()
		}
		if err := enc.Encode(resp); err != nil {
			return 1
		}
	}
	return 0
}

type childTarget struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
	hello childHello
	http  *http.Client
	mu    sync.Mutex
	done  chan error
}

// newChildTarget runs this executable (or o.binary, another build) as
// "concord loadtest --internal-child", so that the server's CPU and
// memory are its own.
func newChildTarget(ctx context.Context, o ltServerOpts, stderr io.Writer) (*childTarget, error) {
	exe := o.binary
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("find the concord executable: %w", err)
		}
	}
	// Only the settings that differ from the child's defaults, which an
	// older build (--server-binary) may not know.
	args := []string{"loadtest", "--internal-child", "--log-level", o.logLevel}
	if o.mediaReaders != 0 {
		args = append(args, "--media-readers", strconv.Itoa(o.mediaReaders))
	}
	if !o.adaptiveProcs {
		args = append(args, "--adaptive-procs=false")
	}
	cmd, stdin, stdout, err := startLtChild(exe, args, stderr)
	if err != nil {
		return nil, fmt.Errorf("start server child: %w", err)
	}
	t := &childTarget{cmd: cmd, stdin: stdin, out: bufio.NewReaderSize(stdout, 1<<20), http: &http.Client{Timeout: 10 * time.Second}, done: make(chan error, 1)}
	go func() { t.done <- cmd.Wait() }()
	helloc := make(chan error, 1)
	go func() {
		line, err := t.out.ReadBytes('\n')
		if err == nil {
			err = json.Unmarshal(line, &t.hello)
		}
		if err == nil && t.hello.Error != "" {
			err = errors.New(t.hello.Error)
		}
		helloc <- err
	}()
	select {
	case err = <-helloc:
	case <-time.After(30 * time.Second):
		err = errors.New("no answer within 30s")
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		_ = t.Close()
		return nil, fmt.Errorf("server child: %w", err)
	}
	return t, nil
}

// startLtChild starts exe with args as a load test's child process,
// marked as one (ltChildEnv) and stopped with this process, its stderr
// ours: the child answers on its stdout what it reads on its stdin.
func startLtChild(exe string, args []string, stderr io.Writer) (*exec.Cmd, io.WriteCloser, io.ReadCloser, error) {
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), ltChildEnv+"=1")
	cmd.Stderr = stderr
	setChildAttrs(cmd)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, nil, err
	}
	return cmd, stdin, stdout, nil
}

func (t *childTarget) Info() ltServerInfo {
	return ltServerInfo{Mode: "child", URL: t.hello.URL, Admin: t.hello.Admin, PID: t.hello.PID, Local: true}
}

func (t *childTarget) Sessions(ctx context.Context, rooms [][]ltSeat) ([][]ltToken, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	b, err := json.Marshal(childRequest{Rooms: rooms})
	if err != nil {
		return nil, err
	}
	if _, err := t.stdin.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("server child: %w", err)
	}
	line, err := t.out.ReadBytes('\n')
	if err != nil {
		return nil, fmt.Errorf("server child: %w", err)
	}
	var resp childResponse
	if err := json.Unmarshal(line, &resp); err != nil {
		return nil, fmt.Errorf("server child: %w", err)
	}
	if resp.Error != "" {
		return nil, fmt.Errorf("server child: %s", resp.Error)
	}
	return resp.Rooms, nil
}

func (t *childTarget) Stats(ctx context.Context) (ltServerStats, bool, error) {
	s, err := scrapeMetrics(ctx, t.http, t.hello.Admin+"/metrics")
	return s, err == nil, err
}

func (t *childTarget) Close() error {
	_ = t.stdin.Close()
	select {
	case <-t.done:
		return nil
	case <-time.After(15 * time.Second):
		_ = t.cmd.Process.Kill()
		<-t.done
		return errors.New("server child did not stop within 15s; killed")
	}
}

// --- a remote node -----------------------------------------------------------

type remoteTarget struct {
	url, metrics string
	groups       [][]ltToken
	next         int
	http         *http.Client
}

// readTokenFile reads join tokens, one a line (a whole join link is fine:
// the part after '#' is taken). Blank lines separate sessions; without
// them tokens are grouped by the session their claims name. Lines
// starting with '#' are comments.
func readTokenFile(path string) ([][]ltToken, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var groups [][]ltToken
	var cur []ltToken
	blankSeparated := false
	flush := func() {
		if len(cur) > 0 {
			groups = append(groups, cur)
			cur = nil
		}
	}
	for n, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "#") {
			continue
		}
		if line == "" {
			if len(cur) > 0 {
				blankSeparated = true
			}
			flush()
			continue
		}
		if _, after, ok := strings.Cut(line, "#"); ok {
			line = after
		}
		cl, err := peekClaims(line)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n+1, err)
		}
		cur = append(cur, ltToken{ltSeat: ltSeat{Role: cl.Role, Side: cl.Side, Publish: true}, Token: line, Session: cl.SessionID})
	}
	flush()
	if !blankSeparated {
		bySession := map[string]int{}
		var regrouped [][]ltToken
		for _, g := range groups {
			for _, tk := range g {
				i, ok := bySession[tk.Session]
				if !ok {
					i = len(regrouped)
					bySession[tk.Session] = i
					regrouped = append(regrouped, nil)
				}
				regrouped[i] = append(regrouped[i], tk)
			}
		}
		groups = regrouped
	}
	// The mediator first: it admits the others.
	for _, g := range groups {
		for i, tk := range g {
			if tk.Role == cases.RoleMediator || tk.Role == "co_mediator" {
				g[0], g[i] = g[i], g[0]
				break
			}
		}
	}
	return groups, nil
}

// peekClaims reads a join token's claims without verifying it: only the
// server can, and it will.
func peekClaims(tok string) (*joinlink.Claims, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, errors.New("not a join token (want header.claims.signature)")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, fmt.Errorf("token claims: %w", err)
	}
	var cl joinlink.Claims
	if err := json.Unmarshal(b, &cl); err != nil {
		return nil, fmt.Errorf("token claims: %w", err)
	}
	return &cl, nil
}

func newRemoteTarget(url, tokens, metrics string) (*remoteTarget, error) {
	groups, err := readTokenFile(tokens)
	if err != nil {
		return nil, err
	}
	if len(groups) == 0 {
		return nil, fmt.Errorf("%s holds no join tokens", tokens)
	}
	return &remoteTarget{url: strings.TrimRight(url, "/"), metrics: metrics, groups: groups, http: &http.Client{Timeout: 10 * time.Second}}, nil
}

func (t *remoteTarget) Info() ltServerInfo {
	return ltServerInfo{Mode: "remote", URL: t.url, Admin: strings.TrimSuffix(t.metrics, "/metrics"), Local: isLoopbackURL(t.url)}
}

// Sessions hands out the next sessions of the token file. Which seats
// publish follows the request's layout: the first seats of a group take
// the request's publish flags in order.
func (t *remoteTarget) Sessions(_ context.Context, rooms [][]ltSeat) ([][]ltToken, error) {
	if t.next+len(rooms) > len(t.groups) {
		return nil, fmt.Errorf("the token file holds %d sessions; %d more wanted", len(t.groups)-t.next, len(rooms))
	}
	out := make([][]ltToken, len(rooms))
	for i, seats := range rooms {
		g := t.groups[t.next]
		t.next++
		toks := make([]ltToken, len(g))
		for j, tk := range g {
			tk.Publish = true
			if j < len(seats) {
				tk.Publish = seats[j].Publish
			}
			toks[j] = tk
		}
		out[i] = toks
	}
	return out, nil
}

func (t *remoteTarget) Stats(ctx context.Context) (ltServerStats, bool, error) {
	if t.metrics == "" {
		return ltServerStats{}, false, nil
	}
	s, err := scrapeMetrics(ctx, t.http, t.metrics)
	return s, err == nil, err
}

func (t *remoteTarget) Close() error { return nil }

func isLoopbackURL(u string) bool {
	host := strings.TrimPrefix(strings.TrimPrefix(u, "http://"), "https://")
	host, _, _ = strings.Cut(host, "/")
	return strings.HasPrefix(host, "127.") || strings.HasPrefix(host, "localhost") || strings.HasPrefix(host, "[::1]")
}

// --- metrics ----------------------------------------------------------------

// scrapeMetrics reads a Prometheus text exposition (prometheus/common's
// parser) and picks out the process and runtime figures, every concord_*
// series summed over its labels, and the buckets of the server's
// forwarding delay.
func scrapeMetrics(ctx context.Context, c *http.Client, url string) (ltServerStats, error) {
	s := ltServerStats{Concord: map[string]float64{}, Delay: map[float64]float64{}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return s, err
	}
	req.Header.Set("Accept", "text/plain")
	// Uncompressed: a gzip writer at promhttp's level holds about 800 KB
	// in the server's pool between scrapes, which the first scrape (the
	// idle figure's) does not count and every later one does, so that the
	// measurement alone added 200 KB per participant to 2 + 2's figure.
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := c.Do(req)
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("%s: %s", url, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return s, fmt.Errorf("%s: %w", url, err)
	}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			switch f.GetType() {
			case dto.MetricType_HISTOGRAM:
				h := m.GetHistogram()
				if name == forwardDelayMetric {
					inf := false
					for _, b := range h.GetBucket() {
						s.Delay[b.GetUpperBound()] += float64(b.GetCumulativeCount())
						inf = inf || math.IsInf(b.GetUpperBound(), 1)
					}
					if !inf { // the count is the +Inf bucket's
						s.Delay[math.Inf(1)] += float64(h.GetSampleCount())
					}
				}
				s.add(name+"_count", float64(h.GetSampleCount()))
				s.add(name+"_sum", h.GetSampleSum())
			case dto.MetricType_SUMMARY:
				s.add(name+"_count", float64(m.GetSummary().GetSampleCount()))
				s.add(name+"_sum", m.GetSummary().GetSampleSum())
			case dto.MetricType_COUNTER:
				s.add(name, m.GetCounter().GetValue())
			case dto.MetricType_GAUGE:
				s.add(name, m.GetGauge().GetValue())
			default:
				s.add(name, m.GetUntyped().GetValue())
			}
		}
	}
	return s, nil
}

// add notes one sample of a scrape: the process and runtime figures by
// name, every concord_* series summed over its labels.
func (s *ltServerStats) add(name string, v float64) {
	switch {
	case name == "process_cpu_seconds_total":
		s.CPUSeconds = v
	case name == "process_resident_memory_bytes":
		s.RSSBytes = v
	case name == "go_goroutines":
		s.Goroutines = v
	case name == "concord_process_private_resident_bytes":
		s.Private = v
	case strings.HasPrefix(name, "concord_"):
		s.Concord[name] += v
	}
}

// The server's counter of video paused for bandwidth, and its gauge of
// the tracks paused so now.
const (
	bandwidthPausesMetric = "concord_media_bandwidth_pauses_total"
	bandwidthPausedMetric = "concord_media_bandwidth_paused_tracks"
)

// forwardDelayMetric is the server's histogram of its own share of the
// forwarding latency (media.Stats.ForwardDelay).
const forwardDelayMetric = "concord_media_forward_delay_seconds"

// delayQuantiles returns the q quantiles, in milliseconds, of what the
// histogram counted between two scrapes (cumulative counts by upper
// bound), interpolating within a bucket as Prometheus's
// histogram_quantile does; a quantile in the last, unbounded bucket is
// its lower bound. n is the number counted; 0 when nothing was.
func delayQuantiles(before, after map[float64]float64, qs ...float64) (ms []float64, n float64) {
	bounds := make([]float64, 0, len(after))
	for b := range after {
		bounds = append(bounds, b)
	}
	slices.Sort(bounds)
	if len(bounds) == 0 || !math.IsInf(bounds[len(bounds)-1], 1) {
		return nil, 0
	}
	cum := make([]float64, len(bounds))
	for i, b := range bounds {
		cum[i] = after[b] - before[b]
	}
	n = cum[len(cum)-1]
	if n <= 0 {
		return nil, 0
	}
	for _, q := range qs {
		rank := q * n
		i := 0
		for i < len(cum)-1 && cum[i] < rank {
			i++
		}
		lower, below := 0.0, 0.0
		if i > 0 {
			lower, below = bounds[i-1], cum[i-1]
		}
		v := lower
		if !math.IsInf(bounds[i], 1) && cum[i] > below {
			v = lower + (bounds[i]-lower)*(rank-below)/(cum[i]-below)
		}
		ms = append(ms, v*1000)
	}
	return ms, n
}

// loadtestLogger is the logger of the generator's own messages.
func loadtestLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pion/webrtc/v4"
	"golang.org/x/time/rate"

	"github.com/concord-odr/concord/media/h264"
)

const loadtestUsage = `Usage: concord loadtest [flags]

Synthetic participants (pion) join mediation rooms through the real
signaling and media path, publish synthetic Opus audio and VP8 or H.264
video, in one layer or three simulcast layers, and measure join time,
loss, forwarding latency and jitter, and the server's CPU and memory.

With no --url, a server is started on loopback as a child process
("concord loadtest --internal-child", its metrics scraped from its admin
endpoint), or in this process with --server inprocess. With --url and
--tokens it joins a remote node with the given join tokens.

Examples:
  concord loadtest --rooms 10 --duration 20s
  concord loadtest --ramp --ramp-steps 1,5,10,20,40 --report out/
  concord loadtest --pubs 4 --subs 20
  concord loadtest --pubs 10 --subs 50 --video-kbps 0
  concord loadtest --pubs 2 --subs 8 --codec h264 --simulcast
  concord loadtest --url https://node:8443 --tokens tokens.txt --metrics http://node:9090/metrics

Flags:
`

// ltConfig is the load test's configuration.
type ltConfig struct {
	Rooms         int           `json:"rooms"`
	Participants  int           `json:"participants"`
	Pubs          int           `json:"pubs,omitempty"`
	Subs          int           `json:"subs,omitempty"`
	VideoKbps     int           `json:"videoKbps"`
	FPS           int           `json:"fps"`
	Codec         string        `json:"codec"` // vp8 or h264; empty (vp8) in reports from before --codec
	Simulcast     bool          `json:"simulcast"`
	Audio         bool          `json:"audio"`
	AudioKbps     int           `json:"audioKbps"`
	Duration      time.Duration `json:"-"`
	Warmup        time.Duration `json:"-"`
	JoinRate      float64       `json:"joinRate"`
	JoinTimeout   time.Duration `json:"-"`
	CaucusEvery   time.Duration `json:"-"`
	URL           string        `json:"url,omitempty"`
	Tokens        string        `json:"tokens,omitempty"`
	Metrics       string        `json:"metrics,omitempty"`
	Server        string        `json:"server"`
	Ramp          bool          `json:"ramp"`
	RampSteps     []int         `json:"rampSteps,omitempty"`
	MaxLossPct    float64       `json:"maxLossPct"`
	MaxP99        time.Duration `json:"-"`
	MaxCPU        float64       `json:"maxCpu"`
	Report        string        `json:"-"`
	JSON          bool          `json:"-"`
	Quiet         bool          `json:"-"`
	Streams       bool          `json:"-"`
	Profile       bool          `json:"-"`
	KeepGoing     bool          `json:"keepGoing,omitempty"`
	MintTokens    string        `json:"-"`
	Replot        string        `json:"-"`
	DataDir       string        `json:"-"`
	DatabaseURL   string        `json:"-"`
	ServerLog     string        `json:"-"`
	ServerReaders int           `json:"-"`
	ServerProcs   bool          `json:"serverAdaptiveProcs"`
	ServerBinary  string        `json:"serverBinary,omitempty"`
	PionReceive   bool          `json:"pionReceive"`
	PionSend      bool          `json:"pionSend"`
	Floor         bool          `json:"floor,omitempty"`

	// layerCycle, with simulcast, has every subscriber cap each
	// publisher's video at layer 0, 2, 1, 2 in turn this often (the
	// video_quality message of a browser that shrinks and grows a tile),
	// so that the SFU switches layers back and forth. Set by the tests.
	layerCycle time.Duration

	// Durations as text, for the JSON report.
	DurationS    float64 `json:"durationSeconds"`
	WarmupS      float64 `json:"warmupSeconds"`
	CaucusEveryS float64 `json:"caucusEverySeconds"`
	MaxP99Ms     float64 `json:"maxP99Ms"`
}

// pubsPerRoom is how many participants of a room publish.
func (c *ltConfig) pubsPerRoom() int {
	if c.Pubs > 0 || c.Subs > 0 {
		return c.Pubs
	}
	return c.Participants
}

// nominalPacketsPerSec is what one publisher sends.
func (c *ltConfig) nominalPacketsPerSec() float64 {
	var n float64
	if c.Audio {
		n += 50
	}
	for _, l := range c.videoLayers() {
		_, packets := c.videoFrame(l.bps)
		n += float64(c.FPS * packets)
	}
	return n
}

// ltVideoLayer is one encoding of a publisher's video: the only one, or
// a simulcast layer.
type ltVideoLayer struct {
	rid string // RTP stream id; empty without simulcast
	bps int    // bit rate, bit/s
}

// ltSimulcastLayers are the layers of --simulcast, lowest first (the SFU
// numbers them in the order the publisher lists its encodings, as
// browsers' sendEncodings do): RID and the fraction of --video-kbps.
var ltSimulcastLayers = []struct {
	rid string
	div int
}{{"q", 4}, {"h", 2}, {"f", 1}}

// simulcastLayerIndex is the index of the simulcast layer of a RID in
// ltSimulcastLayers, -1 for none.
func simulcastLayerIndex(rid string) int {
	for i, l := range ltSimulcastLayers {
		if l.rid == rid {
			return i
		}
	}
	return -1
}

// videoLayers lists the video encodings each publisher sends, none with
// --video-kbps 0.
func (c *ltConfig) videoLayers() []ltVideoLayer {
	switch {
	case c.VideoKbps <= 0:
		return nil
	case !c.Simulcast:
		return []ltVideoLayer{{bps: c.VideoKbps * 1000}}
	}
	out := make([]ltVideoLayer, len(ltSimulcastLayers))
	for i, l := range ltSimulcastLayers {
		out[i] = ltVideoLayer{rid: l.rid, bps: c.VideoKbps * 1000 / l.div}
	}
	return out
}

// isH264 reports whether publishers send H.264 (--codec h264).
func (c *ltConfig) isH264() bool { return c.Codec == "h264" }

// videoFrame is the size of one synthetic video frame of a layer of bps
// bit/s (of its one slice, with H.264) and the number of packets it is
// cut into (a keyframe may take one more, with H.264).
func (c *ltConfig) videoFrame(bps int) (bytes, packets int) {
	bytes = max(bps/8/c.FPS, trailerLen+16)
	if c.isH264() {
		return bytes, h264.Packets(bytes, maxVideoPayload)
	}
	return bytes, (bytes + maxVideoPayload - 1) / maxVideoPayload
}

func (c *ltConfig) perRoom() int {
	if c.Pubs > 0 || c.Subs > 0 {
		return c.Pubs + c.Subs
	}
	return c.Participants
}

func parseLoadtestFlags(args []string, stderr io.Writer) (*ltConfig, error) {
	c := &ltConfig{}
	fs := flag.NewFlagSet("concord loadtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, loadtestUsage)
		fs.PrintDefaults()
	}
	fs.IntVar(&c.Rooms, "rooms", 1, "number of rooms (sessions)")
	fs.IntVar(&c.Participants, "participants", 3, "participants per room, the mediator included; all publish")
	fs.IntVar(&c.Pubs, "pubs", 0, "publishers per room (the mediator first); with --subs, replaces --participants")
	fs.IntVar(&c.Subs, "subs", 0, "subscribe-only participants per room (publish nothing)")
	fs.IntVar(&c.VideoKbps, "video-kbps", 500, "video bitrate per publisher, kbit/s (0: no video)")
	fs.IntVar(&c.FPS, "fps", 30, "video frame rate")
	fs.StringVar(&c.Codec, "codec", "vp8", "video codec: vp8, or h264 (constrained baseline, packetization mode 1)")
	fs.BoolVar(&c.Simulcast, "simulcast", false, `send video in three simulcast layers, RIDs "q", "h", "f" at 1/4, 1/2 and all of --video-kbps`)
	fs.BoolVar(&c.Audio, "audio", true, "publish Opus-sized audio (50 packets/s)")
	fs.IntVar(&c.AudioKbps, "audio-kbps", 32, "audio bitrate per publisher, kbit/s")
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "measurement window (per ramp step)")
	fs.DurationVar(&c.Warmup, "warmup", 2*time.Second, "wait after everyone receives media, before measuring")
	fs.Float64Var(&c.JoinRate, "join-rate", 20, "joins per second")
	fs.DurationVar(&c.JoinTimeout, "join-timeout", 30*time.Second, "how long to wait for everyone to receive media")
	fs.DurationVar(&c.CaucusEvery, "caucus-every", 0, "switch each room between joint session and a caucus this often (0: never; at least 2s)")
	fs.StringVar(&c.URL, "url", "", "base URL of a remote node (with --tokens); empty starts a server on loopback")
	fs.StringVar(&c.Tokens, "tokens", "", "file of join tokens for --url, one a line, sessions separated by blank lines or told by the tokens' claims")
	fs.StringVar(&c.Metrics, "metrics", "", "the remote node's admin /metrics URL, for its CPU and memory (optional)")
	fs.StringVar(&c.Server, "server", "child", "without --url: child (a separate server process) or inprocess (CPU and memory then include the generator's)")
	fs.BoolVar(&c.Ramp, "ramp", false, "step the room count up (--ramp-steps) until loss, latency or CPU crosses its limit; report the last step that held")
	steps := fs.String("ramp-steps", "1,5,10,20,30,40,50,60,80,100,120,150,200", "room counts of --ramp")
	fs.BoolVar(&c.KeepGoing, "keep-going", false, "ramp: run every step, also past the first that crossed a limit (the held figure stays the last step before it)")
	fs.Float64Var(&c.MaxLossPct, "max-loss", 1, "ramp limit: packet loss, percent")
	fs.DurationVar(&c.MaxP99, "max-p99", 50*time.Millisecond, "ramp limit: forwarding latency p99")
	fs.Float64Var(&c.MaxCPU, "max-cpu", 0.95, "ramp limit: CPU used, as a fraction of this machine's cores: server plus generator when the server runs here, the server alone when remote")
	fs.StringVar(&c.Report, "report", "", "write results.json, results.txt and SVG charts (CPU, loss, latency against rooms) into this folder")
	fs.BoolVar(&c.JSON, "json", false, "print the results as JSON instead of a table")
	fs.BoolVar(&c.Quiet, "quiet", false, "no progress line")
	fs.BoolVar(&c.Streams, "streams", false, "print every stream in the table (always in the JSON)")
	fs.BoolVar(&c.Profile, "profile", false, "with --report: CPU profiles of the server (from its admin /debug/pprof) and of the generator over each window, and the server's heap after it")
	fs.StringVar(&c.ServerLog, "server-log", "error", "log level of a server the load test starts")
	fs.IntVar(&c.ServerReaders, "server-readers", 0, "media readers of a server the load test starts (0: one per core, its default)")
	fs.BoolVar(&c.ServerProcs, "server-adaptive-procs", true, "a server the load test starts as a child adapts its GOMAXPROCS to its load, as by default (its --adaptive-procs)")
	fs.StringVar(&c.ServerBinary, "server-binary", "", "run this concord executable as the server child instead of this one: two builds measured under one generator, on one machine")
	fs.BoolVar(&c.PionReceive, "pion-receive", false, "subscribers receive through pion's whole stack (its read loops, buffers and receive-side interceptors) instead of their own lighter path")
	fs.BoolVar(&c.PionSend, "pion-send", false, "publishers send through pion's whole stack (its track writer, send-side interceptors, SRTP session and ICE connection) instead of their own lighter path")
	fs.BoolVar(&c.Floor, "floor", false, "measure this machine's floor instead of the server: the same packets, at the same pace, through a bare relay in a child process (one goroutine, recvmmsg and sendmmsg; no encryption, RTP or signaling); Linux")
	fs.StringVar(&c.Replot, "replot", "", "rewrite results.txt and the charts of a --report folder from its results.json, then exit")
	fs.StringVar(&c.MintTokens, "mint-tokens", "", "create --rooms sessions in the case store of --data-dir (or --database-url) and write their join tokens to this file for --tokens, then exit; run it on the node, beside its server")
	fs.StringVar(&c.DataDir, "data-dir", "concord-data", "with --mint-tokens: the server's data folder (its signing key, and its embedded store)")
	fs.StringVar(&c.DatabaseURL, "database-url", "", "with --mint-tokens: the server's PostgreSQL URL, when it uses one")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	for _, s := range strings.Split(*steps, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("ramp-steps: %q is not a room count", s)
		}
		c.RampSteps = append(c.RampSteps, n)
	}
	sort.Ints(c.RampSteps)
	c.RampSteps = slices.Compact(c.RampSteps)
	var errs []error
	switch {
	case c.Rooms < 1:
		errs = append(errs, errors.New("rooms must be at least 1"))
	case c.Pubs > 0 || c.Subs > 0:
		if c.Pubs < 1 {
			errs = append(errs, errors.New("pubs must be at least 1 (the mediator)"))
		}
		if c.Pubs+c.Subs < 2 {
			errs = append(errs, errors.New("a room needs at least 2 participants"))
		}
	case c.Participants < 2:
		errs = append(errs, errors.New("participants must be at least 2 (a mediator and a party)"))
	}
	if c.VideoKbps < 0 || c.VideoKbps > 20000 {
		errs = append(errs, errors.New("video-kbps must be between 0 and 20000"))
	}
	if c.FPS < 1 || c.FPS > 120 {
		errs = append(errs, errors.New("fps must be between 1 and 120"))
	}
	c.Codec = strings.ToLower(c.Codec)
	if c.Codec != "vp8" && c.Codec != "h264" {
		errs = append(errs, fmt.Errorf("codec must be vp8 or h264, not %q", c.Codec))
	}
	if c.Simulcast && c.VideoKbps == 0 {
		errs = append(errs, errors.New("--simulcast needs video (--video-kbps above 0)"))
	}
	if c.AudioKbps < 6 || c.AudioKbps > 510 {
		errs = append(errs, errors.New("audio-kbps must be between 6 and 510"))
	}
	if !c.Audio && c.VideoKbps == 0 {
		errs = append(errs, errors.New("nothing to publish: --audio=false and --video-kbps 0"))
	}
	if c.Duration < time.Second || c.Duration > time.Hour {
		errs = append(errs, errors.New("duration must be between 1s and 1h"))
	}
	if c.Warmup < 0 || c.Warmup > 5*time.Minute {
		errs = append(errs, errors.New("warmup must be between 0 and 5m"))
	}
	if c.JoinRate <= 0 || c.JoinRate > 1000 {
		errs = append(errs, errors.New("join-rate must be between 0 and 1000 per second"))
	}
	if c.JoinTimeout < time.Second {
		errs = append(errs, errors.New("join-timeout must be at least 1s"))
	}
	if c.CaucusEvery != 0 && c.CaucusEvery < 2*time.Second {
		errs = append(errs, errors.New("caucus-every must be 0 or at least 2s"))
	}
	if (c.URL == "") != (c.Tokens == "") {
		errs = append(errs, errors.New("--url and --tokens go together"))
	}
	if c.URL == "" && c.Server != "child" && c.Server != "inprocess" {
		errs = append(errs, errors.New("server must be child or inprocess"))
	}
	if c.ServerBinary != "" && (c.URL != "" || c.Server != "child") {
		errs = append(errs, errors.New("--server-binary needs the child server (no --url, no --server inprocess)"))
	}
	if c.URL != "" {
		c.Server = "remote"
	}
	if c.Floor && (c.URL != "" || c.Ramp || c.Report != "" || c.CaucusEvery != 0 || c.Server != "child" || c.ServerBinary != "") {
		errs = append(errs, errors.New("--floor measures one step on this machine: no --url, --ramp, --report, --caucus-every, --server or --server-binary"))
	}
	if c.Profile && c.Report == "" {
		errs = append(errs, errors.New("--profile needs --report DIR"))
	}
	if c.Ramp && len(c.RampSteps) == 0 {
		errs = append(errs, errors.New("ramp needs ramp-steps"))
	}
	if c.Ramp && len(c.RampSteps) > 50 {
		errs = append(errs, errors.New("at most 50 ramp steps"))
	}
	maxRooms := c.Rooms
	if c.Ramp {
		maxRooms = c.RampSteps[len(c.RampSteps)-1]
	}
	if maxRooms*c.perRoom() > 2000 {
		errs = append(errs, fmt.Errorf("%d participants is more than one generator runs (2000)", maxRooms*c.perRoom()))
	}
	c.DurationS, c.WarmupS = c.Duration.Seconds(), c.Warmup.Seconds()
	c.CaucusEveryS, c.MaxP99Ms = c.CaucusEvery.Seconds(), float64(c.MaxP99)/1e6
	return c, errors.Join(errs...)
}

// runLoadtest is "concord loadtest".
func runLoadtest(args []string, _ []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "--internal-child" {
		return runLoadtestChild(args[1:], os.Stdin, stdout, stderr)
	}
	if len(args) > 0 && args[0] == "--internal-relay" {
		return runFloorRelay(os.Stdin, stdout)
	}
	cfg, err := parseLoadtestFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "concord loadtest: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if cfg.Replot != "" {
		b, err := os.ReadFile(filepath.Join(cfg.Replot, "results.json"))
		var res ltResult
		if err == nil {
			err = json.Unmarshal(b, &res)
		}
		if err == nil {
			err = writeReport(cfg.Replot, &res)
		}
		if err != nil {
			fmt.Fprintf(stderr, "concord loadtest: replot: %v\n", err)
			return 1
		}
		return 0
	}
	if cfg.MintTokens != "" {
		n, err := mintTokens(ctx, cfg)
		if err != nil {
			fmt.Fprintf(stderr, "concord loadtest: mint tokens: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "wrote %d sessions of %d participants to %s\n", n, cfg.perRoom(), cfg.MintTokens)
		return 0
	}
	res, err := loadtest(ctx, cfg, stderr)
	if res != nil {
		res.Command = "concord loadtest " + strings.Join(args, " ")
		if cfg.Report != "" {
			if werr := writeReport(cfg.Report, res); werr != nil {
				fmt.Fprintf(stderr, "concord loadtest: report: %v\n", werr)
				err = errors.Join(err, werr)
			}
		}
		if cfg.JSON {
			_ = writeJSON(stdout, res)
		} else {
			writeTable(stdout, res, cfg.Streams)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "concord loadtest: %v\n", err)
		return 1
	}
	return 0
}

// loadtest runs the configured load and returns its results; on an error
// midway it returns what it measured so far too.
func loadtest(ctx context.Context, cfg *ltConfig, stderr io.Writer) (*ltResult, error) {
	if cfg.Floor {
		return loadtestFloor(ctx, cfg, stderr)
	}
	var tgt ltTarget
	var err error
	switch cfg.Server {
	case "remote":
		tgt, err = newRemoteTarget(cfg.URL, cfg.Tokens, cfg.Metrics)
	case "inprocess":
		tgt, err = newInprocTarget(ctx, ltServerOpts{logLevel: cfg.ServerLog, mediaReaders: cfg.ServerReaders}, stderr)
	default:
		tgt, err = newChildTarget(ctx, ltServerOpts{logLevel: cfg.ServerLog, mediaReaders: cfg.ServerReaders, adaptiveProcs: cfg.ServerProcs, binary: cfg.ServerBinary}, stderr)
	}
	if err != nil {
		return nil, err
	}
	r := newLoadRun(ctx, cfg, tgt, stderr)
	defer func() {
		if cerr := tgt.Close(); cerr != nil {
			fmt.Fprintf(stderr, "concord loadtest: %v\n", cerr)
		}
	}()
	if r.api, err = newClientAPI(r, r.info.Local); err != nil {
		return nil, err
	}
	r.pubAPI, r.subAPI = r.api, r.api
	if !cfg.PionReceive || !cfg.PionSend {
		if r.ownNet, err = newLtNet(); err != nil {
			return nil, err
		}
		own, err := newOwnAPI(r, r.ownNet, r.info.Local)
		if err != nil {
			return nil, err
		}
		if !cfg.PionReceive {
			r.subAPI = own
		}
		if !cfg.PionSend {
			r.pubAPI = own
		}
	}
	res := r.newResult()
	err = r.drive(res)
	r.closeAll()
	res.Errors = r.errorCounts()
	if !cfg.PionSend {
		res.SendPath = r.sendPath()
	}
	if !cfg.PionReceive {
		res.ReceivePath = &ltReceivePath{OwnPackets: r.ownPackets.Load(), TransportFeedback: r.feedbackSent.Load(), ReceiverReports: r.reportsSent.Load()}
	}
	r.mu.Lock()
	if len(r.videoCodecs) > 0 {
		res.VideoCodecs = maps.Clone(r.videoCodecs)
	}
	r.mu.Unlock()
	res.ModeSwitches, res.Foreign = r.modeSwitches.Load(), r.foreign.Load()
	return res, err
}

// loadRun is one load test in progress.
type loadRun struct {
	cfg    *ltConfig
	tgt    ltTarget
	info   ltServerInfo
	base   string
	api    *webrtc.API // pion's whole stack, as a browser's
	pubAPI *webrtc.API // the publishers': api with --pion-send
	subAPI *webrtc.API // the subscribers': api with --pion-receive
	ownNet *ltNet      // the sockets of the own paths (nil with both flags)
	stderr io.Writer
	ctx    context.Context // lives as long as the run

	// What the subscribers' own path took, and the feedback it sent.
	ownPackets, feedbackSent, reportsSent atomic.Uint64

	mu        sync.Mutex
	rooms     []*ltRoom
	clients   []*ltClient
	pubTracks []*ltPubTrack
	streams   map[[2]uint32]*ltStream // {subscriber idx, published track id}
	errs      map[string]int
	// videoCodecs counts the video tracks subscribers received, by the
	// codec the SFU negotiated for them.
	videoCodecs map[string]int

	hist                                     ltHist
	nacksSent, plisSent, nacksRecv, plisRecv atomic.Uint64
	foreign                                  atomic.Uint64 // packets without a trailer
	modeSwitches                             atomic.Uint64
	pauseGap                                 int64
	limiter                                  *rate.Limiter
	phase                                    atomic.Value // string
	idleRSS                                  float64
	idlePrivate                              float64

	progressStop, progressDone chan struct{}
	progressLine               bool // stderr is a terminal

	caucusWG   sync.WaitGroup
	caucusCtx  context.Context
	caucusStop context.CancelFunc
}

type ltRoom struct {
	idx      int
	clients  []*ltClient
	mediator *ltClient
}

func newLoadRun(ctx context.Context, cfg *ltConfig, tgt ltTarget, stderr io.Writer) *loadRun {
	info := tgt.Info()
	r := &loadRun{
		cfg: cfg, tgt: tgt, info: info, base: strings.TrimRight(info.URL, "/"), stderr: stderr, ctx: ctx,
		streams:     map[[2]uint32]*ltStream{},
		errs:        map[string]int{},
		videoCodecs: map[string]int{},
		limiter:     rate.NewLimiter(rate.Limit(cfg.JoinRate), 1),
	}
	if cfg.CaucusEvery > 0 {
		r.pauseGap = int64(min(time.Second, cfg.CaucusEvery/2))
	}
	r.caucusCtx, r.caucusStop = context.WithCancel(ctx)
	r.phase.Store("starting")
	if f, ok := stderr.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			r.progressLine = true
		}
	}
	return r
}

func (r *loadRun) noteError(what string) {
	r.mu.Lock()
	r.errs[what]++
	r.mu.Unlock()
}

func (r *loadRun) errorCounts() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.errs) == 0 {
		return nil
	}
	return maps.Clone(r.errs)
}

// newPubTrack registers a track c publishes: audio, video, or one layer
// of a simulcast video. The layers of one video share its group, the id
// of its first layer; any other track is a group of its own (group 0).
func (r *loadRun) newPubTrack(c *ltClient, video bool, local *webrtc.TrackLocalStaticRTP, layer int, group uint32) *ltPubTrack {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := &ltPubTrack{id: uint32(len(r.pubTracks) + 1), client: c, video: video, local: local, rid: local.RID(), layer: layer,
		group: group, keyframe: make(chan struct{}, 1)}
	if t.group == 0 {
		t.group = t.id
	}
	r.pubTracks = append(r.pubTracks, t)
	return t
}

// stream returns what subscriber c received of track id, nil for a
// track this generator did not publish.
func (r *loadRun) stream(c *ltClient, id uint32) *ltStream {
	r.mu.Lock()
	defer r.mu.Unlock()
	if id == 0 || int(id) > len(r.pubTracks) {
		return nil
	}
	k := [2]uint32{uint32(c.idx), id}
	s := r.streams[k]
	if s == nil {
		s = &ltStream{sub: c, pub: r.pubTracks[id-1], pauseGap: r.pauseGap}
		r.streams[k] = s
	}
	return s
}

// drive runs the whole test: one step, or the ramp.
func (r *loadRun) drive(res *ltResult) error {
	r.startProgress()
	defer r.stopProgress()
	if s, ok, _ := r.tgt.Stats(r.ctx); ok {
		r.idleRSS, r.idlePrivate = s.RSSBytes, s.Private
		res.IdleRSSBytes = s.RSSBytes
	}
	steps := []int{r.cfg.Rooms}
	if r.cfg.Ramp {
		steps = r.cfg.RampSteps
	}
	for i, rooms := range steps {
		step, err := r.runStep(rooms)
		if step != nil {
			r.evaluate(step)
			res.Steps = append(res.Steps, *step)
			if step.Held && res.RampStop == "" {
				res.HeldRooms = step.Rooms
			}
			r.logStep(step)
		}
		if err != nil {
			return err
		}
		if r.cfg.Ramp && !step.Held && res.RampStop == "" {
			res.RampStop = fmt.Sprintf("%d rooms crossed: %s", step.Rooms, strings.Join(step.Crossed, ", "))
			if !r.cfg.KeepGoing {
				break
			}
		}
		if r.cfg.Ramp && i == len(steps)-1 && res.RampStop == "" {
			res.RampStop = "the last step held"
		}
	}
	res.Streams = r.streamResults(res)
	return nil
}

func (r *loadRun) logStep(s *ltStep) {
	if !r.cfg.Ramp || r.cfg.Quiet {
		return
	}
	r.clearProgress()
	verdict := "held"
	if !s.Held {
		verdict = "crossed " + strings.Join(s.Crossed, ", ")
	}
	fmt.Fprintf(r.stderr, "step %d rooms: loss %.2f%%, latency p99 %s, server %s cores, machine %.0f%% busy: %s\n",
		s.Rooms, s.LossPct, fmtMs(float64(s.Latency.P99)), fmtCores(s.Server.Cores, s.Server.Measured), 100*s.MachineBusy, verdict)
}

// runStep brings the room count to rooms and measures one window.
func (r *loadRun) runStep(rooms int) (*ltStep, error) {
	r.mu.Lock()
	have := len(r.rooms)
	first := len(r.clients)
	r.mu.Unlock()
	if rooms > have {
		if err := r.addRooms(rooms - have); err != nil {
			return nil, err
		}
	}
	r.mu.Lock()
	fresh := slices.Clone(r.clients[first:])
	r.mu.Unlock()
	r.phase.Store(fmt.Sprintf("waiting for media (%d rooms)", rooms))
	notReady := r.waitReady(fresh)
	if err := r.ctx.Err(); err != nil {
		return nil, err
	}
	r.phase.Store(fmt.Sprintf("warming up (%d rooms)", rooms))
	if err := sleepCtx(r.ctx, r.cfg.Warmup); err != nil {
		return nil, err
	}
	r.phase.Store(fmt.Sprintf("measuring (%d rooms)", rooms))
	s0 := r.snapshot()
	var profiled func()
	if r.cfg.Profile {
		profiled = r.startProfiles(rooms)
	}
	err := sleepCtx(r.ctx, r.cfg.Duration)
	s1 := r.snapshot()
	if profiled != nil {
		profiled()
	}
	step := r.compute(s0, s1, fresh)
	step.NotReady = notReady
	if err != nil {
		// Interrupted: keep what the shortened window measured.
		return step, err
	}
	return step, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// addRooms creates n sessions and joins their participants at the join
// rate.
func (r *loadRun) addRooms(n int) error {
	layouts := make([][]ltSeat, n)
	for i := range layouts {
		layouts[i] = seatsFor(r.cfg.perRoom(), r.cfg.pubsPerRoom())
	}
	r.phase.Store(fmt.Sprintf("creating %d sessions", n))
	toks, err := r.tgt.Sessions(r.ctx, layouts)
	if err != nil {
		return fmt.Errorf("sessions: %w", err)
	}
	var newClients []*ltClient
	r.mu.Lock()
	for _, group := range toks {
		room := &ltRoom{idx: len(r.rooms)}
		for _, tk := range group {
			c := &ltClient{r: r, idx: len(r.clients), room: room, tok: tk, done: make(chan struct{})}
			r.clients = append(r.clients, c)
			room.clients = append(room.clients, c)
			if room.mediator == nil && c.isMediator() {
				room.mediator = c
			}
			newClients = append(newClients, c)
		}
		r.rooms = append(r.rooms, room)
		if r.cfg.CaucusEvery > 0 && room.mediator != nil {
			r.caucusWG.Add(1)
			go r.caucusLoop(room)
		}
		if r.cfg.layerCycle > 0 && r.cfg.Simulcast {
			r.caucusWG.Add(1)
			go r.layerLoop(room)
		}
	}
	total := len(r.clients)
	r.mu.Unlock()
	for i, c := range newClients {
		if err := r.limiter.Wait(r.ctx); err != nil {
			return err
		}
		r.phase.Store(fmt.Sprintf("joining %d/%d", total-len(newClients)+i+1, total))
		cctx, cancel := context.WithCancel(r.ctx)
		c.stop = cancel
		go c.run(cctx)
	}
	return nil
}

// expectsMedia reports whether someone else in c's room publishes.
func (c *ltClient) expectsMedia() bool {
	for _, o := range c.room.clients {
		if o != c && o.tok.Publish {
			return true
		}
	}
	return false
}

// waitReady waits until each of clients received remote media (or
// failed), nudging mediators to admit; it returns how many did not
// within the join timeout.
func (r *loadRun) waitReady(clients []*ltClient) int {
	deadline := time.Now().Add(r.cfg.JoinTimeout)
	lastNudge := time.Now()
	for {
		pending := 0
		for _, c := range clients {
			if c.expectsMedia() && c.joinNanos.Load() == 0 && !c.failed.Load() {
				pending++
			}
		}
		if pending == 0 || time.Now().After(deadline) || r.ctx.Err() != nil {
			return pending
		}
		if time.Since(lastNudge) > 500*time.Millisecond {
			lastNudge = time.Now()
			r.mu.Lock()
			rooms := slices.Clone(r.rooms)
			r.mu.Unlock()
			for _, room := range rooms {
				if m := room.mediator; m != nil && m.joined.Load() {
					m.admitAll()
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// caucusLoop has the room's mediator switch between joint session and a
// caucus with each side in turn.
func (r *loadRun) caucusLoop(room *ltRoom) {
	defer r.caucusWG.Done()
	every := r.cfg.CaucusEvery
	// Stagger the rooms so that they do not all renegotiate at once.
	if err := sleepCtx(r.caucusCtx, every+every*time.Duration(room.idx%10)/10); err != nil {
		return
	}
	modes := []map[string]any{
		{"caucus": true, "side": "applicant"},
		{"caucus": false},
		{"caucus": true, "side": "respondent"},
		{"caucus": false},
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for i := 0; ; i++ {
		if room.mediator.joined.Load() && !room.mediator.failed.Load() {
			room.mediator.send(map[string]any{"type": "set_mode", "mode": modes[i%len(modes)]})
			r.modeSwitches.Add(1)
		}
		select {
		case <-r.caucusCtx.Done():
			return
		case <-tick.C:
		}
	}
}

// layerLoop has every participant of room that joined cap the video it
// receives of each other publisher at the next layer of a cycle, every
// layerCycle.
func (r *loadRun) layerLoop(room *ltRoom) {
	defer r.caucusWG.Done()
	tick := time.NewTicker(r.cfg.layerCycle)
	defer tick.Stop()
	layers := []int{0, 2, 1, 2}
	for i := 0; ; i++ {
		select {
		case <-r.caucusCtx.Done():
			return
		case <-tick.C:
		}
		for _, c := range room.clients {
			if !c.joined.Load() || c.failed.Load() {
				continue
			}
			for _, o := range room.clients {
				// o.self is set before o.joined.
				if o != c && o.tok.Publish && o.joined.Load() {
					c.send(map[string]any{"type": "video_quality", "participantId": o.self, "layer": layers[i%len(layers)]})
				}
			}
		}
	}
}

// closeAll stops every participant, a few at a time.
func (r *loadRun) closeAll() {
	r.caucusStop()
	r.caucusWG.Wait()
	r.mu.Lock()
	clients := slices.Clone(r.clients)
	r.mu.Unlock()
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for _, c := range clients {
		if c.stop == nil {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c.close()
		}()
	}
	wg.Wait()
}

// --- measuring ---------------------------------------------------------------

type ltSnap struct {
	at        time.Time
	sent      map[uint32][2]uint64 // track id -> packets, bytes
	streams   map[[2]uint32]ltStreamCounts
	jitter    map[[2]uint32]float64
	hist      []uint64
	nacksSent uint64
	plisSent  uint64
	nacksRecv uint64
	plisRecv  uint64
	gen       float64
	genOK     bool
	busy      uint64
	total     uint64
	machOK    bool
	srv       ltServerStats
	srvOK     bool
}

func (r *loadRun) snapshot() *ltSnap {
	s := &ltSnap{sent: map[uint32][2]uint64{}, streams: map[[2]uint32]ltStreamCounts{}, jitter: map[[2]uint32]float64{}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	s.srv, s.srvOK, _ = r.tgt.Stats(ctx)
	cancel()
	s.at = time.Now()
	s.gen, s.genOK = selfCPUSeconds()
	s.busy, s.total, s.machOK = machineCPU()
	r.mu.Lock()
	tracks := slices.Clone(r.pubTracks)
	streams := make(map[[2]uint32]*ltStream, len(r.streams))
	for k, v := range r.streams {
		streams[k] = v
	}
	r.mu.Unlock()
	for _, t := range tracks {
		s.sent[t.id] = [2]uint64{t.sent.Load(), t.sentBytes.Load()}
	}
	for k, st := range streams {
		s.streams[k], s.jitter[k] = st.snapshot()
	}
	s.hist = r.hist.snapshot()
	s.nacksSent, s.plisSent = r.nacksSent.Load(), r.plisSent.Load()
	s.nacksRecv, s.plisRecv = r.nacksRecv.Load(), r.plisRecv.Load()
	return s
}

// compute turns two snapshots into a step's figures; fresh are the
// participants that joined for this step.
func (r *loadRun) compute(s0, s1 *ltSnap, fresh []*ltClient) *ltStep {
	win := s1.at.Sub(s0.at).Seconds()
	r.mu.Lock()
	st := &ltStep{Rooms: len(r.rooms), Participants: len(r.clients), WindowSeconds: win}
	tracks := slices.Clone(r.pubTracks)
	for _, c := range r.clients {
		if c.tok.Publish {
			st.Publishers++
		} else {
			st.SubscribeOnly++
		}
	}
	r.mu.Unlock()

	// The simulcast layers, lowest first.
	for _, l := range r.cfg.videoLayers() {
		if l.rid != "" {
			st.Layers = append(st.Layers, ltLayerStats{RID: l.rid, Kbps: float64(l.bps) / 1000})
		}
	}
	// What publishers sent.
	var inPackets float64
	for _, t := range tracks {
		a, b := s0.sent[t.id], s1.sent[t.id]
		k := &st.Audio
		if t.video {
			k = &st.Video
		}
		k.Sent += b[0] - a[0]
		inPackets += float64(b[0] - a[0])
		if t.rid != "" && t.layer < len(st.Layers) {
			st.Layers[t.layer].Sent += b[0] - a[0]
		}
	}
	// What subscribers received, summed per subscriber and publication
	// (the layers of a simulcast video are one stream of it).
	type pairCounts struct {
		video                 bool
		recv, exp, lost, size uint64
	}
	pairs := map[[2]uint32]*pairCounts{}
	var outPackets, outBytes float64
	var jitters []float64
	for key, b := range s1.streams {
		a := s0.streams[key]
		dRecv, dUniq, dExp := b.Received-a.Received, b.Unique-a.Unique, b.Expected-a.Expected
		if dRecv == 0 && dExp == 0 {
			continue
		}
		t := tracks[key[1]-1]
		lost := uint64(0)
		if dExp > dUniq {
			lost = dExp - dUniq
		}
		p := pairs[[2]uint32{key[0], t.group}]
		if p == nil {
			p = &pairCounts{video: t.video}
			pairs[[2]uint32{key[0], t.group}] = p
		}
		p.recv += dRecv
		p.exp += dExp
		p.lost += lost
		p.size += b.Bytes - a.Bytes
		if t.rid != "" && t.layer < len(st.Layers) {
			l := &st.Layers[t.layer]
			if dRecv > 0 {
				l.Streams++
			}
			l.Received += dRecv
			l.Lost += lost
			l.Switches += b.Switches - a.Switches
		}
		outPackets += float64(dRecv)
		outBytes += float64(b.Bytes - a.Bytes)
		jitters = append(jitters, s1.jitter[key]/1e6)
	}
	for _, p := range pairs {
		k := &st.Audio
		if p.video {
			k = &st.Video
		}
		k.Streams++
		k.Received += p.recv
		k.Lost += p.lost
		k.Expected += p.exp
		k.Bytes += p.size
		if p.exp >= 10 {
			if pct := 100 * float64(p.lost) / float64(p.exp); pct > k.WorstStreamLossPct {
				k.WorstStreamLossPct = pct
			}
		}
	}
	for i := range st.Layers {
		if l := &st.Layers[i]; st.Video.Received > 0 {
			l.ReceivedPct = 100 * float64(l.Received) / float64(st.Video.Received)
		}
	}
	for _, k := range []*ltKindStats{&st.Audio, &st.Video} {
		if k.Expected > 0 {
			k.LossPct = 100 * float64(k.Lost) / float64(k.Expected)
		}
	}
	if exp := st.Audio.Expected + st.Video.Expected; exp > 0 {
		st.LossPct = 100 * float64(st.Audio.Lost+st.Video.Lost) / float64(exp)
	}
	h := histDiff(s0.hist, s1.hist)
	st.Latency = histLatency(h)
	if len(jitters) > 0 {
		var sum, mx float64
		for _, j := range jitters {
			sum += j
			mx = max(mx, j)
		}
		st.Jitter = ltJitter{Mean: sum / float64(len(jitters)), Max: mx}
	}
	st.NACKsSent, st.PLIsSent = s1.nacksSent-s0.nacksSent, s1.plisSent-s0.plisSent
	st.NACKsReceived, st.PLIsReceived = s1.nacksRecv-s0.nacksRecv, s1.plisRecv-s0.plisRecv
	st.PacketsInPerSec, st.PacketsOutPerSec = inPackets/win, outPackets/win
	st.NominalInPerSec = float64(st.Publishers) * r.cfg.nominalPacketsPerSec()
	st.ForwardedMbps = outBytes * 8 / win / 1e6

	// Join times of this step's participants.
	var joins, joined, admitted []float64
	for _, c := range fresh {
		if ns := c.joinedNanos.Load(); ns > 0 {
			joined = append(joined, float64(ns)/1e6)
		}
		if ns := c.admittedNanos.Load(); ns > 0 {
			admitted = append(admitted, float64(ns)/1e6)
		}
		if c.failed.Load() && c.joinNanos.Load() == 0 {
			st.Join.Failed++
			continue
		}
		if ns := c.joinNanos.Load(); ns > 0 {
			joins = append(joins, float64(ns)/1e6)
		}
	}
	st.Join.Count = len(joins)
	sort.Float64s(joins)
	st.Join.P50, st.Join.P95, st.Join.P99 = nfloat(quantile(joins, 0.5)), nfloat(quantile(joins, 0.95)), nfloat(quantile(joins, 0.99))
	st.Join.Max = nfloat(quantile(joins, 1))
	sort.Float64s(joined)
	sort.Float64s(admitted)
	st.Join.JoinedP50, st.Join.AdmittedP50 = nfloat(quantile(joined, 0.5)), nfloat(quantile(admitted, 0.5))
	if os.Getenv("CONCORD_LOADTEST_DEBUG") != "" {
		for _, c := range fresh {
			fmt.Fprintf(r.stderr, "client %d room %d %s: joined %.0fms admitted %.0fms media %.0fms\n", c.idx, c.room.idx, c.tok.Role,
				float64(c.joinedNanos.Load())/1e6, float64(c.admittedNanos.Load())/1e6, float64(c.joinNanos.Load())/1e6)
		}
	}

	// CPU and memory.
	if s0.genOK && s1.genOK {
		st.Generator.CPUSeconds = s1.gen - s0.gen
		st.Generator.Cores = st.Generator.CPUSeconds / win
		st.Generator.Measured = true
	}
	if s0.machOK && s1.machOK && s1.total > s0.total {
		st.MachineBusy = float64(s1.busy-s0.busy) / float64(s1.total-s0.total)
	}
	st.MachineCPUs = runtime.NumCPU()
	if s0.srvOK && s1.srvOK && !r.info.Shared && st.Generator.Measured && r.info.Local {
		st.OtherCores = max(0, st.MachineBusy*float64(st.MachineCPUs)-(s1.srv.CPUSeconds-s0.srv.CPUSeconds)/win-st.Generator.Cores)
	}
	if s0.srvOK && s1.srvOK {
		sv := &st.Server
		sv.Measured, sv.Shared = true, r.info.Shared
		sv.CPUSeconds = s1.srv.CPUSeconds - s0.srv.CPUSeconds
		sv.Cores = sv.CPUSeconds / win
		sv.RSSBytes = s1.srv.RSSBytes
		sv.Goroutines = s1.srv.Goroutines
		if pk := inPackets + outPackets; pk > 0 {
			sv.MicrosPerPacket = sv.CPUSeconds * 1e6 / pk
		}
		if st.ForwardedMbps > 0 {
			sv.MilliCoresPerMbps = sv.Cores * 1000 / st.ForwardedMbps
		}
		if r.idleRSS > 0 && st.Participants > 0 {
			sv.IdleRSSBytes = r.idleRSS
			sv.RSSPerParticipant = (sv.RSSBytes - r.idleRSS) / float64(st.Participants)
		}
		if r.idlePrivate > 0 && s1.srv.Private > 0 && st.Participants > 0 {
			sv.PrivateBytes, sv.IdlePrivateBytes = s1.srv.Private, r.idlePrivate
			sv.PrivatePerParticipant = (s1.srv.Private - r.idlePrivate) / float64(st.Participants)
		}
		for k, v := range s1.srv.Concord {
			if sv.Metrics == nil {
				sv.Metrics = map[string]float64{}
			}
			sv.Metrics[k] = v - s0.srv.Concord[k]
		}
		sv.BandwidthPauses = sv.Metrics[bandwidthPausesMetric]
		sv.BandwidthPaused = s1.srv.Concord[bandwidthPausedMetric]
		if q, n := delayQuantiles(s0.srv.Delay, s1.srv.Delay, 0.5, 0.99); n > 0 {
			sv.ForwardDelay = &ltForwardDelay{P50Ms: q[0], P99Ms: q[1], Datagrams: n}
		}
	}
	return st
}

func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// evaluate marks whether a step held the limits.
func (r *loadRun) evaluate(s *ltStep) {
	var crossed []string
	if s.LossPct > r.cfg.MaxLossPct {
		crossed = append(crossed, fmt.Sprintf("loss %.2f%% > %.2f%%", s.LossPct, r.cfg.MaxLossPct))
	}
	if p99 := float64(s.Latency.P99); !math.IsNaN(p99) && p99 > r.cfg.MaxP99Ms {
		crossed = append(crossed, fmt.Sprintf("latency p99 %s > %s", fmtMs(p99), fmtMs(r.cfg.MaxP99Ms)))
	}
	if math.IsNaN(float64(s.Latency.P99)) {
		crossed = append(crossed, "no media received")
	}
	// CPU: what the server and the generator use of this machine's cores
	// (other processes' load shows in latency and in OtherCores).
	used := s.Server.Cores
	if !s.Server.Measured {
		used = 0
	}
	if !s.Server.Shared && r.info.Local && s.Generator.Measured {
		used += s.Generator.Cores
	}
	if limit := r.cfg.MaxCPU * float64(s.MachineCPUs); used > limit {
		crossed = append(crossed, fmt.Sprintf("CPU %.2f cores > %.2f", used, limit))
	}
	if s.NominalInPerSec > 0 && s.PacketsInPerSec < 0.95*s.NominalInPerSec {
		crossed = append(crossed, fmt.Sprintf("the generator sent %.0f%% of its nominal packets", 100*s.PacketsInPerSec/s.NominalInPerSec))
	}
	if s.Join.Failed > 0 {
		crossed = append(crossed, fmt.Sprintf("%d joins failed", s.Join.Failed))
	}
	if s.NotReady > 0 {
		crossed = append(crossed, fmt.Sprintf("%d participants received no media within %s", s.NotReady, r.cfg.JoinTimeout))
	}
	s.Crossed = crossed
	s.Held = len(crossed) == 0
}

// streamResults lists every stream of the last step's window.
func (r *loadRun) streamResults(res *ltResult) []ltStreamResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]ltStreamResult, 0, len(r.streams))
	for _, s := range r.streams {
		c, jit := s.snapshot()
		lost := uint64(0)
		if c.Expected > c.Unique {
			lost = c.Expected - c.Unique
		}
		kind := "audio"
		if s.pub.video {
			kind = "video"
		}
		sr := ltStreamResult{
			Room: s.sub.room.idx, Publisher: s.pub.client.idx, Subscriber: s.sub.idx, Kind: kind, Layer: s.pub.rid,
			Sent: s.pub.sent.Load(), Received: c.Received, Lost: lost, Duplicates: c.Dups, Late: c.Late, Pauses: c.Pauses,
			Switches: c.Switches, JitterMs: jit / 1e6,
		}
		if c.Expected > 0 {
			sr.LossPct = 100 * float64(lost) / float64(c.Expected)
		}
		out = append(out, sr)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Room != b.Room {
			return a.Room < b.Room
		}
		if a.Publisher != b.Publisher {
			return a.Publisher < b.Publisher
		}
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		if a.Subscriber != b.Subscriber {
			return a.Subscriber < b.Subscriber
		}
		return simulcastLayerIndex(a.Layer) < simulcastLayerIndex(b.Layer)
	})
	return out
}

// --- progress ----------------------------------------------------------------

func (r *loadRun) startProgress() {
	r.progressStop, r.progressDone = make(chan struct{}), make(chan struct{})
	go r.progress()
}

func (r *loadRun) stopProgress() {
	close(r.progressStop)
	<-r.progressDone
	r.clearProgress()
}

func (r *loadRun) clearProgress() {
	if r.progressLine && !r.cfg.Quiet {
		fmt.Fprint(r.stderr, "\r\033[K")
	}
}

// progress prints a status line every second on a terminal, every five
// seconds otherwise.
func (r *loadRun) progress() {
	defer close(r.progressDone)
	if r.cfg.Quiet {
		<-r.progressStop
		return
	}
	every := time.Second
	if !r.progressLine {
		every = 5 * time.Second
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	start := time.Now()
	var prevRecv, prevExp, prevUniq uint64
	prevHist := r.hist.snapshot()
	var prevSrv *ltServerStats
	prevAt := time.Now()
	lastScrape := time.Time{}
	srvText := ""
	for {
		select {
		case <-r.progressStop:
			return
		case <-tick.C:
		}
		now := time.Now()
		dt := now.Sub(prevAt).Seconds()
		prevAt = now
		r.mu.Lock()
		streams := make([]*ltStream, 0, len(r.streams))
		for _, s := range r.streams {
			streams = append(streams, s)
		}
		clients := slices.Clone(r.clients)
		rooms := len(r.rooms)
		r.mu.Unlock()
		var recv, exp, uniq uint64
		for _, s := range streams {
			c, _ := s.snapshot()
			recv, exp, uniq = recv+c.Received, exp+c.Expected, uniq+c.Unique
		}
		media := 0
		for _, c := range clients {
			if c.joinNanos.Load() > 0 {
				media++
			}
		}
		h := r.hist.snapshot()
		p99 := histQuantile(histDiff(prevHist, h), 0.99)
		prevHist = h
		loss := 0.0
		if de := exp - prevExp; de > 0 && de >= uniq-prevUniq {
			loss = 100 * float64(de-(uniq-prevUniq)) / float64(de)
		}
		rate := float64(recv-prevRecv) / dt
		prevRecv, prevExp, prevUniq = recv, exp, uniq
		if time.Since(lastScrape) >= 5*time.Second {
			ctx, cancel := context.WithTimeout(r.ctx, 2*time.Second)
			if s, ok, _ := r.tgt.Stats(ctx); ok {
				if prevSrv != nil && s.CPUSeconds >= prevSrv.CPUSeconds {
					srvText = fmt.Sprintf(" | server %.0f%% CPU, %.0f MB", 100*(s.CPUSeconds-prevSrv.CPUSeconds)/time.Since(lastScrape).Seconds(), s.RSSBytes/1e6)
				}
				prevSrv = &s
			}
			cancel()
			lastScrape = time.Now()
		}
		line := fmt.Sprintf("[%3.0fs] %s | rooms %d, %d/%d receiving | rx %.0f pkt/s, loss %.2f%%, p99 %s%s",
			now.Sub(start).Seconds(), r.phase.Load(), rooms, media, len(clients), rate, loss, fmtMs(p99), srvText)
		if r.progressLine {
			fmt.Fprintf(r.stderr, "\r\033[K%s", line)
		} else {
			fmt.Fprintln(r.stderr, line)
		}
	}
}

func fmtMs(ms float64) string {
	switch {
	case math.IsNaN(ms):
		return "-"
	case ms < 10:
		return fmt.Sprintf("%.2fms", ms)
	case ms < 100:
		return fmt.Sprintf("%.1fms", ms)
	default:
		return fmt.Sprintf("%.0fms", ms)
	}
}

func fmtCores(c float64, ok bool) string {
	if !ok {
		return "-"
	}
	return fmt.Sprintf("%.2f", c)
}

// startProfiles starts CPU profiles of the server and of the generator
// for one window; the function it returns waits for them and writes them
// into the report folder, with the server's heap profile.
func (r *loadRun) startProfiles(rooms int) func() {
	dir := r.cfg.Report
	if err := os.MkdirAll(dir, 0o755); err != nil {
		r.noteError("profile: " + errText(err))
		return nil
	}
	secs := max(1, int(r.cfg.Duration.Seconds()))
	var wg sync.WaitGroup
	if r.info.Admin != "" && !r.info.Shared {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Timeout: time.Duration(secs)*time.Second + 30*time.Second}
			for _, p := range []struct{ path, file string }{
				{fmt.Sprintf("/debug/pprof/profile?seconds=%d", secs), fmt.Sprintf("server-cpu-%drooms.pprof", rooms)},
				{"/debug/pprof/heap", fmt.Sprintf("server-heap-%drooms.pprof", rooms)},
			} {
				if err := fetchToFile(r.ctx, c, r.info.Admin+p.path, filepath.Join(dir, p.file)); err != nil {
					r.noteError("profile: " + errText(err))
				}
			}
		}()
	}
	name := fmt.Sprintf("generator-cpu-%drooms.pprof", rooms)
	if r.info.Shared {
		name = fmt.Sprintf("inprocess-cpu-%drooms.pprof", rooms)
	}
	f, err := os.Create(filepath.Join(dir, name))
	if err == nil {
		if err = pprof.StartCPUProfile(f); err != nil {
			f.Close()
			f = nil
		}
	}
	if err != nil {
		r.noteError("profile: " + errText(err))
	}
	return func() {
		if f != nil {
			pprof.StopCPUProfile()
			f.Close()
		}
		wg.Wait()
	}
}

func fetchToFile(ctx context.Context, c *http.Client, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

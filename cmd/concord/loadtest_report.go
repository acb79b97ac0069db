package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// nfloat is a float that is null in JSON when it is not a number (no
// sample was measured).
type nfloat float64

func (f nfloat) MarshalJSON() ([]byte, error) {
	v := float64(f)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, math.Round(v*1000)/1000, 'f', -1, 64), nil
}

func (f *nfloat) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*f = nfloat(math.NaN())
		return nil
	}
	v, err := strconv.ParseFloat(string(b), 64)
	*f = nfloat(v)
	return err
}

// ltResult is everything a load test reports.
type ltResult struct {
	Command      string           `json:"command"`
	Started      time.Time        `json:"started"`
	Machine      ltMachine        `json:"machine"`
	Config       *ltConfig        `json:"config"`
	Server       ltServerInfo     `json:"server"`
	IdleRSSBytes float64          `json:"serverIdleRssBytes,omitempty"`
	Steps        []ltStep         `json:"steps"`
	Floor        *ltFloor         `json:"floor,omitempty"`     // --floor, instead of steps
	HeldRooms    int              `json:"heldRooms,omitempty"` // ramp: the last step that held
	RampStop     string           `json:"rampStop,omitempty"`
	ModeSwitches uint64           `json:"modeSwitches,omitempty"`
	Foreign      uint64           `json:"foreignPackets,omitempty"`
	Errors       map[string]int   `json:"errors,omitempty"`
	Streams      []ltStreamResult `json:"streams"` // the last window's streams
	// ReceivePath counts, over the whole run, what the subscribers'
	// own receive path took and the feedback they sent themselves (nil
	// with --pion-receive).
	ReceivePath *ltReceivePath `json:"receivePath,omitempty"`
	// SendPath counts, over the whole run, what the publishers' own send
	// path sent (nil with --pion-send).
	SendPath *ltSendPath `json:"sendPath,omitempty"`

	// VideoCodecs counts the video tracks subscribers received, by the
	// codec the SFU negotiated for them.
	VideoCodecs map[string]int `json:"videoCodecsReceived,omitempty"`
}

type ltReceivePath struct {
	OwnPackets        uint64 `json:"ownPathPackets"`    // RTP taken from the socket
	TransportFeedback uint64 `json:"transportFeedback"` // transport-wide feedback packets sent
	ReceiverReports   uint64 `json:"receiverReports"`
}

type ltSendPath struct {
	OwnPackets    uint64 `json:"ownPathPackets"`  // RTP encrypted and sent by the publishers themselves
	PionPackets   uint64 `json:"pionPathPackets"` // RTP written through pion's write stream (before the pair was known)
	Retransmitted uint64 `json:"retransmitted"`   // packets sent again for the server's NACKs
	SenderReports uint64 `json:"senderReports"`
}

type ltMachine struct {
	CPUs          int    `json:"cpus"`
	CPUModel      string `json:"cpuModel,omitempty"`
	MemTotalBytes uint64 `json:"memTotalBytes,omitempty"`
	GoVersion     string `json:"goVersion"`
	OS            string `json:"os"`
	Arch          string `json:"arch"`
	// LoopbackDatagramMicros is the CPU time per datagram sent and
	// received over loopback in one process (loopbackCost): how fast
	// this machine's kernel is, for comparing runs across machines.
	LoopbackDatagramMicros float64 `json:"loopbackDatagramMicros,omitempty"`
}

// ltStep is one measurement window at one room count.
type ltStep struct {
	Rooms         int     `json:"rooms"`
	Participants  int     `json:"participants"`
	Publishers    int     `json:"publishers"`
	SubscribeOnly int     `json:"subscribeOnly"`
	WindowSeconds float64 `json:"windowSeconds"`

	Join    ltJoin      `json:"join"`
	Audio   ltKindStats `json:"audio"`
	Video   ltKindStats `json:"video"`
	LossPct float64     `json:"lossPct"`
	Latency ltLatency   `json:"latencyMs"`
	Jitter  ltJitter    `json:"jitterMs"`

	// Layers are the simulcast layers (--simulcast), lowest first.
	Layers []ltLayerStats `json:"videoLayers,omitempty"`

	NACKsSent     uint64 `json:"nacksSent"`     // by subscribers, packets asked for
	NACKsReceived uint64 `json:"nacksReceived"` // by publishers, from the server
	PLIsSent      uint64 `json:"plisSent"`
	PLIsReceived  uint64 `json:"plisReceived"`

	PacketsInPerSec  float64 `json:"serverPacketsInPerSec"`
	NominalInPerSec  float64 `json:"nominalPacketsInPerSec"` // what the publishers were configured to send
	PacketsOutPerSec float64 `json:"serverPacketsOutPerSec"`
	ForwardedMbps    float64 `json:"forwardedMbps"`

	Server      ltServerFigures `json:"server"`
	Generator   ltCPU           `json:"generator"`
	MachineBusy float64         `json:"machineBusy"` // fraction of all cores
	MachineCPUs int             `json:"machineCpus"`
	// OtherCores is the CPU the machine spent outside the server and the
	// generator (other processes), when both are measured here.
	OtherCores float64 `json:"otherCores"`

	NotReady int      `json:"notReady,omitempty"`
	Held     bool     `json:"held"`
	Crossed  []string `json:"crossed,omitempty"`
}

type ltJoin struct {
	Count  int `json:"count"`
	Failed int `json:"failed"`
	// Medians of the phases: socket open to "joined", to admitted from
	// the lobby.
	JoinedP50   nfloat `json:"joinedP50Ms"`
	AdmittedP50 nfloat `json:"admittedP50Ms"`
	P50         nfloat `json:"p50Ms"`
	P95         nfloat `json:"p95Ms"`
	P99         nfloat `json:"p99Ms"`
	Max         nfloat `json:"maxMs"`
}

type ltKindStats struct {
	Streams            int     `json:"streams"`
	Sent               uint64  `json:"sent"`     // by the publishers
	Expected           uint64  `json:"expected"` // summed over subscribers
	Received           uint64  `json:"received"`
	Lost               uint64  `json:"lost"`
	Bytes              uint64  `json:"bytes"`
	LossPct            float64 `json:"lossPct"`
	WorstStreamLossPct float64 `json:"worstStreamLossPct"`
}

// ltLayerStats is one simulcast layer over a step's window: what the
// publishers sent of it and what subscribers received (the SFU forwards
// each subscriber one layer at a time). Loss is counted per layer, on the
// layer's own packet counter; each switch of a subscriber to the layer
// starts a new run of it whose gap since the last is not loss.
type ltLayerStats struct {
	RID         string  `json:"rid"`
	Kbps        float64 `json:"kbps"`
	Sent        uint64  `json:"sent"`    // by the publishers
	Streams     int     `json:"streams"` // subscriber and publisher pairs that received some of it
	Received    uint64  `json:"received"`
	ReceivedPct float64 `json:"receivedPct"` // of all video packets received
	Lost        uint64  `json:"lost"`
	Switches    uint64  `json:"switchesTo"` // subscribers switched to it from another layer
}

type ltLatency struct {
	P50 nfloat `json:"p50"`
	P90 nfloat `json:"p90"`
	P99 nfloat `json:"p99"`
	Max nfloat `json:"max"`
}

type ltJitter struct {
	Mean float64 `json:"mean"`
	Max  float64 `json:"max"`
}

type ltCPU struct {
	Measured   bool    `json:"measured"`
	CPUSeconds float64 `json:"cpuSeconds"`
	Cores      float64 `json:"cores"`
}

type ltServerFigures struct {
	Measured          bool    `json:"measured"`
	Shared            bool    `json:"sharedWithGenerator,omitempty"`
	CPUSeconds        float64 `json:"cpuSeconds"`
	Cores             float64 `json:"cores"`
	RSSBytes          float64 `json:"rssBytes"`
	IdleRSSBytes      float64 `json:"idleRssBytes,omitempty"`
	RSSPerParticipant float64 `json:"rssPerParticipantBytes,omitempty"`
	// The same for anonymous memory alone (Linux servers): without the
	// binary's own pages, which the first participants bring in once.
	PrivateBytes          float64            `json:"privateBytes,omitempty"`
	IdlePrivateBytes      float64            `json:"idlePrivateBytes,omitempty"`
	PrivatePerParticipant float64            `json:"privatePerParticipantBytes,omitempty"`
	Goroutines            float64            `json:"goroutines,omitempty"`
	MicrosPerPacket       float64            `json:"cpuMicrosPerPacket"`
	MilliCoresPerMbps     float64            `json:"milliCoresPerForwardedMbps"`
	Metrics               map[string]float64 `json:"metrics,omitempty"` // concord_* deltas over the window
	// ForwardDelay is the server's own share of the forwarding latency
	// over the window: from a datagram's arrival at its media socket until
	// it had been handled and its fan-out sent (its histogram's
	// quantiles; nil when the server does not report it).
	ForwardDelay *ltForwardDelay `json:"forwardDelay,omitempty"`
	// BandwidthPauses are the times over the window the server paused a
	// subscriber's video because its estimated bandwidth could not carry
	// it; BandwidthPaused the tracks paused so at the window's end. Video
	// the server held back for bandwidth is counted lost by the
	// subscribers (a browser sees it the same way).
	BandwidthPauses float64 `json:"bandwidthPauses"`
	BandwidthPaused float64 `json:"bandwidthPausedTracks"`
}

type ltForwardDelay struct {
	P50Ms     float64 `json:"p50Ms"`
	P99Ms     float64 `json:"p99Ms"`
	Datagrams float64 `json:"datagrams"`
}

type ltStreamResult struct {
	Room       int     `json:"room"`
	Publisher  int     `json:"publisher"`
	Subscriber int     `json:"subscriber"`
	Kind       string  `json:"kind"`
	Layer      string  `json:"layer,omitempty"` // the simulcast layer's RID
	Sent       uint64  `json:"sent"`
	Received   uint64  `json:"received"`
	Lost       uint64  `json:"lost"`
	LossPct    float64 `json:"lossPct"`
	Duplicates uint64  `json:"duplicates,omitempty"`
	Late       uint64  `json:"late,omitempty"`
	Pauses     uint64  `json:"pauses,omitempty"`
	Switches   uint64  `json:"switchesTo,omitempty"` // the subscriber was switched to this layer
	JitterMs   float64 `json:"jitterMs"`
}

func (r *loadRun) newResult() *ltResult {
	return &ltResult{
		Started: time.Now().UTC().Truncate(time.Second),
		Machine: probeMachine(),
		Config:  r.cfg,
		Server:  r.info,
	}
}

// probeMachine describes this machine, its loopback cost measured.
func probeMachine() ltMachine {
	model, mem := machineInfo()
	loopback, _ := loopbackCost()
	return ltMachine{CPUs: runtime.NumCPU(), CPUModel: model, MemTotalBytes: mem, GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH,
		LoopbackDatagramMicros: loopback}
}

func writeJSON(w io.Writer, res *ltResult) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(res)
}

func mb(b float64) string { return fmt.Sprintf("%.1f MB", b/1e6) }

// writeTable prints the results for a person.
func writeTable(w io.Writer, res *ltResult, allStreams bool) {
	cfg := res.Config
	fmt.Fprintf(w, "Concord load test, %s\n", res.Started.Format(time.RFC3339))
	fmt.Fprintf(w, "machine: %d CPUs, %s, %.1f GB; %s %s/%s", res.Machine.CPUs, res.Machine.CPUModel, float64(res.Machine.MemTotalBytes)/(1<<30), res.Machine.GoVersion, res.Machine.OS, res.Machine.Arch)
	if us := res.Machine.LoopbackDatagramMicros; us > 0 {
		fmt.Fprintf(w, "; %.1f µs of CPU per loopback datagram", us)
	}
	fmt.Fprintln(w)
	srv := res.Server.Mode + " " + res.Server.URL
	if res.Floor != nil {
		srv = "none: the floor's relay at " + res.Server.URL
	}
	if res.Server.PID != 0 {
		srv += fmt.Sprintf(" (pid %d)", res.Server.PID)
	}
	if res.Server.Shared {
		srv += "; server CPU and memory include the generator's"
	}
	fmt.Fprintf(w, "server: %s\n", srv)
	media := []string{}
	if cfg.VideoKbps > 0 {
		media = append(media, videoText(cfg))
	}
	if cfg.Audio {
		media = append(media, fmt.Sprintf("Opus %d kbit/s", cfg.AudioKbps))
	}
	layout := fmt.Sprintf("%d participants (all publish)", cfg.Participants)
	if cfg.Pubs > 0 || cfg.Subs > 0 {
		layout = fmt.Sprintf("%d publishers + %d subscribe-only", cfg.Pubs, cfg.Subs)
	}
	secs := func(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
	caucus := ""
	if cfg.CaucusEveryS > 0 {
		caucus = fmt.Sprintf("; mode switch every %s (%d switches)", secs(cfg.CaucusEveryS), res.ModeSwitches)
	}
	joins := fmt.Sprintf("; joins %.0f/s", cfg.JoinRate)
	if res.Floor != nil {
		joins = "" // no one joins a relay
	}
	fmt.Fprintf(w, "load: rooms of %s; %s%s; window %s after %s warm-up%s\n\n",
		layout, strings.Join(media, " + "), joins, secs(cfg.DurationS), secs(cfg.WarmupS), caucus)

	if res.Floor != nil {
		writeFloorTable(w, res.Floor)
		return
	}
	if len(res.Steps) > 1 || cfg.Ramp {
		writeRampTable(w, res)
		fmt.Fprintln(w)
	}
	if len(res.Steps) == 0 {
		fmt.Fprintln(w, "no step was measured")
		return
	}
	s := res.Steps[len(res.Steps)-1]
	if cfg.Ramp {
		fmt.Fprintf(w, "last step (%d rooms):\n", s.Rooms)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "rooms\t%d (%d participants: %d publish, %d subscribe only)\n", s.Rooms, s.Participants, s.Publishers, s.SubscribeOnly)
	fmt.Fprintf(tw, "join time (socket open to first remote %s)\tp50 %s  p95 %s  p99 %s  max %s  (%d measured, %d failed)\n",
		firstKind(cfg), fmtMs(float64(s.Join.P50)), fmtMs(float64(s.Join.P95)), fmtMs(float64(s.Join.P99)), fmtMs(float64(s.Join.Max)), s.Join.Count, s.Join.Failed)
	fmt.Fprintf(tw, "join phases (p50)\tjoined %s, admitted %s, first media %s\n", fmtMs(float64(s.Join.JoinedP50)), fmtMs(float64(s.Join.AdmittedP50)), fmtMs(float64(s.Join.P50)))
	fmt.Fprintf(tw, "forwarding latency\tp50 %s  p90 %s  p99 %s  max %s\n", fmtMs(float64(s.Latency.P50)), fmtMs(float64(s.Latency.P90)), fmtMs(float64(s.Latency.P99)), fmtMs(float64(s.Latency.Max)))
	fmt.Fprintf(tw, "jitter\tmean %s  max %s\n", fmtMs(s.Jitter.Mean), fmtMs(s.Jitter.Max))
	fmt.Fprintf(tw, "loss\t%.3f%%\n", s.LossPct)
	if len(res.VideoCodecs) > 0 {
		var parts []string
		for _, mime := range slices.Sorted(maps.Keys(res.VideoCodecs)) {
			parts = append(parts, fmt.Sprintf("%s (%d tracks)", mime, res.VideoCodecs[mime]))
		}
		fmt.Fprintf(tw, "video received as\t%s\n", strings.Join(parts, ", "))
	}
	if len(s.Layers) > 0 {
		var parts []string
		var switches uint64
		for _, l := range s.Layers {
			parts = append(parts, fmt.Sprintf("%s %d (%.1f%%, %d lost)", l.RID, l.Received, l.ReceivedPct, l.Lost))
			switches += l.Switches
		}
		fmt.Fprintf(tw, "simulcast layers received (packets)\t%s; %d layer switches\n", strings.Join(parts, "  "), switches)
	}
	fmt.Fprintf(tw, "NACKs / PLIs\tsubscribers sent %d NACKed packets, %d PLIs; publishers got %d NACKed packets, %d PLIs\n", s.NACKsSent, s.PLIsSent, s.NACKsReceived, s.PLIsReceived)
	if sv := s.Server; sv.BandwidthPauses > 0 || sv.BandwidthPaused > 0 {
		fmt.Fprintf(tw, "video paused for bandwidth\t%.0f times by the server; %.0f subscriber tracks paused at the end\n", sv.BandwidthPauses, sv.BandwidthPaused)
	}
	fmt.Fprintf(tw, "server packets\tin %.0f/s (nominal %.0f/s)  out %.0f/s  forwarded %.2f Mbit/s\n", s.PacketsInPerSec, s.NominalInPerSec, s.PacketsOutPerSec, s.ForwardedMbps)
	if sv := s.Server; sv.Measured {
		fmt.Fprintf(tw, "server CPU\t%.2f s in %.1f s = %.2f cores (%.0f%% of the machine)\n", sv.CPUSeconds, s.WindowSeconds, sv.Cores, 100*sv.Cores/float64(max(1, s.MachineCPUs)))
		fmt.Fprintf(tw, "server CPU per packet\t%.2f µs per packet (in + out)\n", sv.MicrosPerPacket)
		if d := sv.ForwardDelay; d != nil {
			fmt.Fprintf(tw, "server forwarding delay\tp50 %.2fms  p99 %.2fms  (its own share: arrival at its socket to sent, %.0f datagrams)\n", d.P50Ms, d.P99Ms, d.Datagrams)
		}
		fmt.Fprintf(tw, "server CPU per Mbit/s\t%.2f milli-cores per forwarded Mbit/s\n", sv.MilliCoresPerMbps)
		mem := fmt.Sprintf("RSS %s", mb(sv.RSSBytes))
		if sv.IdleRSSBytes > 0 {
			mem += fmt.Sprintf(", idle %s, %s per participant", mb(sv.IdleRSSBytes), mb(sv.RSSPerParticipant))
			if sv.IdlePrivateBytes > 0 {
				mem += fmt.Sprintf(" (%s of it private memory, without the binary's pages)", mb(sv.PrivatePerParticipant))
			}
		}
		if sv.Goroutines > 0 {
			mem += fmt.Sprintf(", %.0f goroutines", sv.Goroutines)
		}
		fmt.Fprintf(tw, "server memory\t%s\n", mem)
	} else {
		fmt.Fprintf(tw, "server CPU and memory\tnot measured (give --metrics for a remote node)\n")
	}
	if g := s.Generator; g.Measured && !s.Server.Shared {
		fmt.Fprintf(tw, "generator CPU\t%.2f s = %.2f cores\n", g.CPUSeconds, g.Cores)
	}
	other := ""
	if s.Server.Measured && !s.Server.Shared && s.Generator.Measured && res.Server.Local {
		other = fmt.Sprintf("; other processes %.2f cores", s.OtherCores)
	}
	fmt.Fprintf(tw, "machine\t%.0f%% busy over %d CPUs%s\n", 100*s.MachineBusy, s.MachineCPUs, other)
	tw.Flush()

	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "kind\tstreams\tsent\treceived\tlost\tloss %\tworst stream %\tMbit/s\t")
	for _, k := range []struct {
		name string
		k    ltKindStats
	}{{"audio", s.Audio}, {"video", s.Video}} {
		if k.k.Streams == 0 && k.k.Sent == 0 {
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%.3f\t%.2f\t%.2f\t\n", k.name, k.k.Streams, k.k.Sent, k.k.Received, k.k.Lost, k.k.LossPct, k.k.WorstStreamLossPct, float64(k.k.Bytes)*8/s.WindowSeconds/1e6)
	}
	tw.Flush()
	if len(s.Crossed) > 0 {
		fmt.Fprintf(w, "\nlimits crossed: %s\n", strings.Join(s.Crossed, "; "))
	}
	if allStreams || len(res.Streams) <= 24 {
		fmt.Fprintf(w, "\nstreams (whole run, publisher -> subscriber):\n")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "room\tpub\tsub\tkind\tsent\treceived\tlost\tloss %\tjitter\t")
		for _, st := range res.Streams {
			kind := st.Kind
			if st.Layer != "" {
				kind += " " + st.Layer
			}
			fmt.Fprintf(tw, "%d\t%d\t%d\t%s\t%d\t%d\t%d\t%.2f\t%s\t\n", st.Room, st.Publisher, st.Subscriber, kind, st.Sent, st.Received, st.Lost, st.LossPct, fmtMs(st.JitterMs))
		}
		tw.Flush()
	} else {
		fmt.Fprintf(w, "\n%d streams; --streams or --json lists each\n", len(res.Streams))
	}
	if len(res.Errors) > 0 {
		keys := make([]string, 0, len(res.Errors))
		for k := range res.Errors {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		fmt.Fprintf(w, "\nerrors:\n")
		for _, k := range keys {
			fmt.Fprintf(w, "  %5d  %s\n", res.Errors[k], k)
		}
	}
}

// videoText describes the publishers' video for the "load:" line: codec,
// bit rate and frame rate, and the simulcast layers or "no simulcast".
func videoText(cfg *ltConfig) string {
	codec := "VP8"
	if cfg.isH264() {
		codec = "H.264"
	}
	if !cfg.Simulcast {
		return fmt.Sprintf("%s %d kbit/s at %d fps, no simulcast", codec, cfg.VideoKbps, cfg.FPS)
	}
	var rids, rates []string
	for _, l := range cfg.videoLayers() {
		rids = append(rids, l.rid)
		rates = append(rates, strconv.FormatFloat(float64(l.bps)/1000, 'f', -1, 64))
	}
	return fmt.Sprintf("%s simulcast %s at %s kbit/s, %d fps", codec, strings.Join(rids, "/"), strings.Join(rates, "/"), cfg.FPS)
}

func firstKind(cfg *ltConfig) string {
	if cfg.VideoKbps > 0 {
		return "video"
	}
	return "audio"
}

func writeRampTable(w io.Writer, res *ltResult) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "rooms\tparticipants\tserver cores\tgenerator cores\tother cores\tmachine busy\tloss %\tlatency p50\tp99\tserver's p99\tjoin p50\tp99\tserver RSS\tµs/packet\tmcores/Mbit/s\t\t")
	for _, s := range res.Steps {
		verdict := "held"
		if !s.Held {
			verdict = "crossed: " + strings.Join(s.Crossed, ", ")
		}
		serverP99 := "-" // the server does not report its share
		if d := s.Server.ForwardDelay; d != nil {
			serverP99 = fmtMs(d.P99Ms)
		}
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%.2f\t%.0f%%\t%.3f\t%s\t%s\t%s\t%s\t%s\t%s\t%.2f\t%.2f\t\t%s\n",
			s.Rooms, s.Participants, fmtCores(s.Server.Cores, s.Server.Measured), fmtCores(s.Generator.Cores, s.Generator.Measured && !s.Server.Shared),
			s.OtherCores, 100*s.MachineBusy, s.LossPct, fmtMs(float64(s.Latency.P50)), fmtMs(float64(s.Latency.P99)), serverP99,
			fmtMs(float64(s.Join.P50)), fmtMs(float64(s.Join.P99)), mb(s.Server.RSSBytes), s.Server.MicrosPerPacket, s.Server.MilliCoresPerMbps, verdict)
	}
	tw.Flush()
	if res.Config.Ramp {
		if res.HeldRooms > 0 {
			fmt.Fprintf(w, "held: %d rooms (%s)\n", res.HeldRooms, res.RampStop)
		} else {
			fmt.Fprintf(w, "no step held (%s)\n", res.RampStop)
		}
	}
}

// writeReport writes results.json, results.txt and the charts into dir.
func writeReport(dir string, res *ltResult) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var js bytes.Buffer
	if err := writeJSON(&js, res); err != nil {
		return err
	}
	var txt bytes.Buffer
	writeTable(&txt, res, true)
	xs := make([]float64, len(res.Steps))
	var srvCores, genCores, machCores, loss, lossA, lossV, p50, p90, p99 []float64
	for i, s := range res.Steps {
		xs[i] = float64(s.Rooms)
		srvCores = append(srvCores, nanUnless(s.Server.Cores, s.Server.Measured))
		genCores = append(genCores, nanUnless(s.Generator.Cores, s.Generator.Measured && !s.Server.Shared))
		machCores = append(machCores, s.MachineBusy*float64(s.MachineCPUs))
		loss, lossA, lossV = append(loss, s.LossPct), append(lossA, s.Audio.LossPct), append(lossV, s.Video.LossPct)
		p50, p90, p99 = append(p50, float64(s.Latency.P50)), append(p90, float64(s.Latency.P90)), append(p99, float64(s.Latency.P99))
	}
	cpus := float64(res.Machine.CPUs)
	files := map[string][]byte{
		"results.json": js.Bytes(),
		"results.txt":  txt.Bytes(),
		"cpu.svg": svgChart("CPU against rooms", "rooms", "cores", xs, []svgSeries{
			{"server", srvCores}, {"generator", genCores}, {"machine (all processes)", machCores},
		}, cpus, fmt.Sprintf("%.0f cores", cpus)),
		"loss.svg": svgChart("Packet loss against rooms", "rooms", "loss %", xs, []svgSeries{
			{"all", loss}, {"audio", lossA}, {"video", lossV},
		}, res.Config.MaxLossPct, fmt.Sprintf("limit %.1f%%", res.Config.MaxLossPct)),
		"latency.svg": svgChartScale("Forwarding latency against rooms", "rooms", "ms", xs, []svgSeries{
			{"p50", p50}, {"p90", p90}, {"p99", p99},
		}, res.Config.MaxP99Ms, fmt.Sprintf("p99 limit %s", fmtMs(res.Config.MaxP99Ms)), true),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func nanUnless(v float64, ok bool) float64 {
	if !ok {
		return math.NaN()
	}
	return v
}

type svgSeries struct {
	name string
	ys   []float64
}

var svgColors = []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd"}

// niceStep is a 1, 2 or 5 times a power of ten near span/n.
func niceStep(span float64, n int) float64 {
	if span <= 0 {
		return 1
	}
	raw := span / float64(n)
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}

func fmtTick(v float64) string {
	if v == math.Trunc(v) {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

// svgChart draws series against xs as lines with points, with a dashed
// limit line at limit (none when NaN).
func svgChart(title, xLabel, yLabel string, xs []float64, series []svgSeries, limit float64, limitLabel string) []byte {
	return svgChartScale(title, xLabel, yLabel, xs, series, limit, limitLabel, false)
}

// svgChartScale is svgChart, with a logarithmic y axis when logY (values
// at or below 0 are left out).
func svgChartScale(title, xLabel, yLabel string, xs []float64, series []svgSeries, limit float64, limitLabel string, logY bool) []byte {
	const W, H, L, R, T, B = 640.0, 360.0, 60.0, 170.0, 40.0, 50.0
	pw, ph := W-L-R, H-T-B
	// tf maps a value onto the drawn scale; NaN leaves it out.
	tf := func(y float64) float64 { return y }
	if logY {
		tf = func(y float64) float64 {
			if y <= 0 {
				return math.NaN()
			}
			return math.Log10(y)
		}
		yLabel += " (log scale)"
	}
	xmax := 1.0
	for _, x := range xs {
		xmax = max(xmax, x)
	}
	ymin, ymax := math.Inf(1), math.Inf(-1)
	see := func(y float64) {
		if y = tf(y); !math.IsNaN(y) && !math.IsInf(y, 0) {
			ymin, ymax = min(ymin, y), max(ymax, y)
		}
	}
	for _, s := range series {
		for _, y := range s.ys {
			see(y)
		}
	}
	if !math.IsNaN(limit) {
		see(limit)
	}
	var yticks []float64
	var ylabel func(float64) string
	if logY {
		if math.IsInf(ymin, 1) {
			ymin, ymax = 0, 1
		}
		ymin, ymax = math.Floor(ymin), math.Ceil(ymax)
		if ymax <= ymin {
			ymax = ymin + 1
		}
		for d := ymin; d <= ymax; d++ {
			yticks = append(yticks, d)
		}
		ylabel = func(v float64) string { return fmtTick(math.Pow(10, v)) }
	} else {
		ymin = 0
		if math.IsInf(ymax, -1) || ymax <= 0 {
			ymax = 1
		}
		ystep := niceStep(ymax, 5)
		ymax = math.Ceil(ymax/ystep) * ystep
		for y := 0.0; y <= ymax+ystep/2; y += ystep {
			yticks = append(yticks, y)
		}
		ylabel = fmtTick
	}
	xstep := niceStep(xmax, 8)
	xmax = math.Ceil(xmax/xstep) * xstep
	px := func(x float64) float64 { return L + x/xmax*pw }
	py := func(v float64) float64 { return T + ph - (v-ymin)/(ymax-ymin)*ph }
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="12">`+"\n", W, H, W, H)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%.0f" y="22" font-size="15" font-weight="bold">%s</text>`+"\n", L, html.EscapeString(title))
	for _, y := range yticks {
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#ddd"/>`, L, L+pw, py(y), py(y))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n", L-6, py(y)+4, ylabel(y))
	}
	for x := 0.0; x <= xmax+xstep/2; x += xstep {
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#eee"/>`, px(x), px(x), T, T+ph)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", px(x), T+ph+16, fmtTick(x))
	}
	fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="%.0f" height="%.0f" fill="none" stroke="#333"/>`+"\n", L, T, pw, ph)
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", L+pw/2, H-12, html.EscapeString(xLabel))
	fmt.Fprintf(&b, `<text transform="translate(16 %.1f) rotate(-90)" text-anchor="middle">%s</text>`+"\n", T+ph/2, html.EscapeString(yLabel))
	if lv := tf(limit); !math.IsNaN(lv) {
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#888" stroke-dasharray="6 4"/>`, L, L+pw, py(lv), py(lv))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end" fill="#666">%s</text>`+"\n", L+pw-4, py(lv)-4, html.EscapeString(limitLabel))
	}
	for i, s := range series {
		color := svgColors[i%len(svgColors)]
		var pts []string
		for j, y := range s.ys {
			v := tf(y)
			if j >= len(xs) || math.IsNaN(v) || math.IsInf(v, 0) {
				continue
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(xs[j]), py(v)))
		}
		if len(pts) > 1 {
			fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", color, strings.Join(pts, " "))
		}
		for _, p := range pts {
			x, y, _ := strings.Cut(p, ",")
			fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="3" fill="%s"/>`, x, y, color)
		}
		ly := T + 10 + float64(i)*18
		fmt.Fprintf(&b, "\n"+`<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="%s" stroke-width="2"/>`, L+pw+12, L+pw+32, ly, ly, color)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f">%s</text>`+"\n", L+pw+38, ly+4, html.EscapeString(s.name))
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}

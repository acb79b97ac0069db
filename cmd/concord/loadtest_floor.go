package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"golang.org/x/net/ipv4"
)

// --- the floor ----------------------------------------------------------------
//
// What do a workload's packets cost this machine before an SFU does
// anything with them? In small rooms most of the server's CPU per
// packet is the kernel's: a thread woken for each datagram, the system
// calls, loopback delivery to the receiving socket. Machines of one
// kind differ in it, and a virtual machine pays more for each wake-up
// than bare metal. "concord loadtest --floor" sends the workload's
// packets, at its pace and sizes, from one socket per participant
// through a bare relay in a child process: one goroutine reading one
// socket with recvmmsg, as the server's readers do, and sending each
// read's copies in one sendmmsg; no encryption, RTP, RTCP, signaling or
// congestion control. Its CPU per packet is a floor no forwarder in Go
// goes below on this machine, and the server's figure over it is what
// Concord itself costs.

// The first byte of a floor datagram: floorForward the relay forwards
// (audio and the top video layer), floorKeep it only receives (lower
// simulcast layers, which a subscriber of the SFU does not get either).
const (
	floorForward = 0xf0
	floorKeep    = 0x0f
)

// relayReadBatch is the most datagrams one recvmmsg of the floor's
// relay takes, as the server's readers take (media's readBatch).
const relayReadBatch = 16

// floorCounts are what the relay did, read by "mark".
type floorCounts struct {
	in, out, reads, sends atomic.Uint64
}

// floorStamp is where a floor datagram carries its send time (Unix
// nanoseconds, big-endian), after its mark.
const floorStamp = 1

// floorOverhead is what a real packet carries besides its payload: RTP's
// 12-byte header, a header extension and SRTP's 16-byte tag.
const floorOverhead = 12 + 8 + 16

// ltFloor is the result of --floor.
type ltFloor struct {
	Rooms         int     `json:"rooms"`
	Participants  int     `json:"participants"`
	Publishers    int     `json:"publishers"`
	WindowSeconds float64 `json:"windowSeconds"`

	Relay     ltFloorRelay `json:"relay"`
	Generator ltCPU        `json:"generator"`

	// Over the whole run: datagrams the publishers sent, the copies the
	// receivers should have had, and those they had.
	Sent     uint64  `json:"sent"`
	Expected uint64  `json:"expected"`
	Received uint64  `json:"received"`
	LossPct  float64 `json:"lossPct"`

	// Latency is the time from a publisher's send to a receiver's read,
	// over the window: the kernel's and the relay's share of what the
	// load test's end-to-end latency measures.
	Latency ltLatency `json:"latencyMs"`
}

// ltFloorRelay is the relay's work over the window.
type ltFloorRelay struct {
	Measured           bool    `json:"measured"`
	CPUSeconds         float64 `json:"cpuSeconds"`
	Cores              float64 `json:"cores"`
	PacketsInPerSec    float64 `json:"packetsInPerSec"`
	PacketsOutPerSec   float64 `json:"packetsOutPerSec"`
	CPUMicrosPerPacket float64 `json:"cpuMicrosPerPacket"` // received plus sent, as the server's
	ReadsPerSec        float64 `json:"readsPerSec"`        // recvmmsg calls that returned datagrams
	DatagramsPerRead   float64 `json:"datagramsPerRead"`
}

// The relay child's protocol: a relayHello line, then a relayReply line
// for each relayRequest line on its stdin, until stdin closes.
type relayHello struct {
	Addr  string `json:"addr,omitempty"`
	PID   int    `json:"pid,omitempty"`
	Error string `json:"error,omitempty"`
}

type relayRequest struct {
	Routes map[string][]string `json:"routes,omitempty"` // publisher's address: its receivers'
	Mark   bool                `json:"mark,omitempty"`   // read the counts
}

type relayReply struct {
	CPUSeconds float64 `json:"cpuSeconds"`
	CPUKnown   bool    `json:"cpuKnown"`
	In         uint64  `json:"in"`
	Out        uint64  `json:"out"`
	Reads      uint64  `json:"reads"`
	Sends      uint64  `json:"sends"`
	Error      string  `json:"error,omitempty"`
}

// runFloorRelay is "concord loadtest --internal-relay", the relay of
// --floor, on one processor: the cheapest way for Go to run one reader
// (the server drops to one processor at such loads too).
func runFloorRelay(stdin io.Reader, stdout io.Writer) int {
	runtime.GOMAXPROCS(1)
	enc := json.NewEncoder(stdout)
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		_ = enc.Encode(relayHello{Error: err.Error()})
		return 1
	}
	defer conn.Close()
	// Deep queues, as the server's sockets have.
	_ = conn.SetReadBuffer(8 << 20)
	_ = conn.SetWriteBuffer(8 << 20)
	if err := enc.Encode(relayHello{Addr: conn.LocalAddr().String(), PID: os.Getpid()}); err != nil {
		return 1
	}
	var relay *floorRelay
	var runErr error
	ended := make(chan struct{}) // closed when the relay stopped, runErr set
	sc := bufio.NewScanner(stdin)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var req relayRequest
		var rep relayReply
		err := json.Unmarshal(sc.Bytes(), &req)
		switch {
		case err != nil:
		case req.Routes != nil && relay != nil:
			err = errors.New("the routes are set already")
		case req.Routes != nil:
			var routes map[netip.AddrPort][]netip.AddrPort
			if routes, err = parseRoutes(req.Routes); err == nil {
				relay, err = newFloorRelay(conn, routes)
			}
			if err == nil {
				go func() {
					runErr = relay.run()
					close(ended)
				}()
			}
		case req.Mark && relay == nil:
			err = errors.New("no routes yet")
		case req.Mark:
			select {
			case <-ended:
				err = fmt.Errorf("the relay stopped: %w", runErr)
			default:
			}
			rep.CPUSeconds, rep.CPUKnown = selfCPUSeconds()
			rep.In, rep.Out = relay.in.Load(), relay.out.Load()
			rep.Reads, rep.Sends = relay.reads.Load(), relay.sends.Load()
		}
		if err != nil {
			rep.Error = err.Error()
		}
		if err := enc.Encode(rep); err != nil {
			return 1
		}
	}
	_ = conn.Close()
	if relay != nil {
		<-ended
	}
	return 0
}

func parseRoutes(in map[string][]string) (map[netip.AddrPort][]netip.AddrPort, error) {
	out := make(map[netip.AddrPort][]netip.AddrPort, len(in))
	for from, tos := range in {
		f, err := netip.ParseAddrPort(from)
		if err != nil {
			return nil, err
		}
		for _, to := range tos {
			t, err := netip.ParseAddrPort(to)
			if err != nil {
				return nil, err
			}
			out[f] = append(out[f], t)
		}
	}
	return out, nil
}

// floorChild is the relay child seen from the generator.
type floorChild struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
	hello relayHello
	done  chan error
}

func startFloorChild(ctx context.Context, stderr io.Writer) (*floorChild, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find the concord executable: %w", err)
	}
	cmd, stdin, stdout, err := startLtChild(exe, []string{"loadtest", "--internal-relay"}, stderr)
	if err != nil {
		return nil, fmt.Errorf("start the relay: %w", err)
	}
	c := &floorChild{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout), done: make(chan error, 1)}
	go func() { c.done <- cmd.Wait() }()
	err = c.call(ctx, nil, &c.hello)
	if err == nil && c.hello.Error != "" {
		err = errors.New(c.hello.Error)
	}
	if err != nil {
		c.close()
		return nil, fmt.Errorf("relay: %w", err)
	}
	return c, nil
}

// call writes req (none when nil) and reads one line into out.
func (c *floorChild) call(ctx context.Context, req *relayRequest, out any) error {
	if req != nil {
		b, err := json.Marshal(req)
		if err != nil {
			return err
		}
		if _, err := c.stdin.Write(append(b, '\n')); err != nil {
			return err
		}
	}
	got := make(chan error, 1)
	go func() {
		line, err := c.out.ReadBytes('\n')
		if err == nil {
			err = json.Unmarshal(line, out)
		}
		got <- err
	}()
	select {
	case err := <-got:
		return err
	case <-time.After(30 * time.Second):
		return errors.New("no answer within 30s")
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *floorChild) request(ctx context.Context, req relayRequest) (relayReply, error) {
	var rep relayReply
	err := c.call(ctx, &req, &rep)
	if err == nil && rep.Error != "" {
		err = errors.New(rep.Error)
	}
	if err != nil {
		return rep, fmt.Errorf("relay: %w", err)
	}
	return rep, nil
}

func (c *floorChild) close() {
	_ = c.stdin.Close()
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

// loadtestFloor runs --floor: cfg's rooms, every participant a socket,
// every publisher sending through the relay to the others of its room.
func loadtestFloor(ctx context.Context, cfg *ltConfig, stderr io.Writer) (*ltResult, error) {
	if !floorRelayOK {
		return nil, errors.New("--floor runs on Linux only")
	}
	relay, err := startFloorChild(ctx, stderr)
	if err != nil {
		return nil, err
	}
	defer relay.close()
	to, err := net.ResolveUDPAddr("udp4", relay.hello.Addr)
	if err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	res := &ltResult{Started: time.Now().UTC().Truncate(time.Second), Machine: probeMachine(), Config: cfg,
		Server: ltServerInfo{Mode: "floor", URL: "udp://" + relay.hello.Addr, PID: relay.hello.PID, Local: true}}

	perRoom, pubs := cfg.perRoom(), cfg.pubsPerRoom()
	var socks []*net.UDPConn
	defer func() {
		for _, c := range socks {
			_ = c.Close()
		}
	}()
	routes := make(map[string][]string)
	for range cfg.Rooms {
		room := make([]string, perRoom)
		for k := range room {
			c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				return nil, err
			}
			_ = c.SetReadBuffer(1 << 20)
			socks = append(socks, c)
			room[k] = c.LocalAddr().String()
		}
		for p := range pubs {
			for k, a := range room {
				if k != p {
					routes[room[p]] = append(routes[room[p]], a)
				}
			}
		}
	}
	if _, err := relay.request(ctx, relayRequest{Routes: routes}); err != nil {
		return nil, err
	}

	var received atomic.Uint64
	var latency ltHist
	var readers sync.WaitGroup
	for _, c := range socks {
		readers.Go(func() {
			buf := make([]byte, 2048)
			var n uint64
			for {
				k, err := c.Read(buf)
				if err != nil {
					received.Add(n)
					return
				}
				n++
				if k >= floorStamp+8 {
					latency.add(time.Now().UnixNano() - int64(binary.BigEndian.Uint64(buf[floorStamp:])))
				}
			}
		})
	}
	pubCtx, stopPubs := context.WithCancel(ctx)
	defer stopPubs()
	var sent, expected atomic.Uint64
	var publishers sync.WaitGroup
	for i, c := range socks {
		if i%perRoom < pubs {
			publishers.Go(func() { floorPublish(pubCtx, c, to, cfg, perRoom-1, &sent, &expected) })
		}
	}

	f := &ltFloor{Rooms: cfg.Rooms, Participants: cfg.Rooms * perRoom, Publishers: cfg.Rooms * pubs}
	err = func() error {
		if err := sleepCtx(ctx, cfg.Warmup+time.Second); err != nil {
			return err
		}
		a, err := relay.request(ctx, relayRequest{Mark: true})
		if err != nil {
			return err
		}
		g0, gok := selfCPUSeconds()
		lat0 := latency.snapshot()
		start := time.Now()
		if err := sleepCtx(ctx, cfg.Duration); err != nil {
			return err
		}
		b, err := relay.request(ctx, relayRequest{Mark: true})
		if err != nil {
			return err
		}
		g1, _ := selfCPUSeconds()
		lat := histDiff(lat0, latency.snapshot())
		f.Latency = histLatency(lat)
		win := time.Since(start).Seconds()
		f.WindowSeconds = win
		if gok {
			f.Generator = ltCPU{Measured: true, CPUSeconds: g1 - g0, Cores: (g1 - g0) / win}
		}
		in, out := float64(b.In-a.In), float64(b.Out-a.Out)
		rl := &f.Relay
		rl.PacketsInPerSec, rl.PacketsOutPerSec = in/win, out/win
		rl.ReadsPerSec = float64(b.Reads-a.Reads) / win
		if b.Reads > a.Reads {
			rl.DatagramsPerRead = in / float64(b.Reads-a.Reads)
		}
		if a.CPUKnown && b.CPUKnown {
			rl.Measured = true
			rl.CPUSeconds = b.CPUSeconds - a.CPUSeconds
			rl.Cores = rl.CPUSeconds / win
			if in+out > 0 {
				rl.CPUMicrosPerPacket = rl.CPUSeconds * 1e6 / (in + out)
			}
		}
		return nil
	}()
	stopPubs()
	publishers.Wait()
	_ = sleepCtx(ctx, 300*time.Millisecond) // the last copies in flight
	for _, c := range socks {
		_ = c.Close()
	}
	readers.Wait()
	if err != nil {
		return nil, err
	}
	f.Sent, f.Expected, f.Received = sent.Load(), expected.Load(), received.Load()
	if f.Expected > 0 && f.Received < f.Expected {
		f.LossPct = 100 * float64(f.Expected-f.Received) / float64(f.Expected)
	}
	res.Floor = f
	return res, nil
}

// floorPublish sends one publisher's audio and video frames, as the
// generator's publishers pace them, until ctx ends: a frame's packets
// (of every simulcast layer) leave in one sendmmsg, as from the
// publishers' own send path. Each forwarded datagram counts fanout
// copies in expected.
func floorPublish(ctx context.Context, c *net.UDPConn, to *net.UDPAddr, cfg *ltConfig, fanout int, sent, expected *atomic.Uint64) {
	var nSent, nForward uint64
	defer func() {
		sent.Add(nSent)
		expected.Add(nForward * uint64(fanout))
	}()
	datagram := func(payload int, mark byte) []byte {
		b := make([]byte, payload+floorOverhead)
		b[0] = mark
		return b
	}
	audio := datagram(max(cfg.AudioKbps*1000/8/50, trailerLen+4), floorForward)
	var frame []ipv4.Message
	var frameForward uint64
	layers := cfg.videoLayers()
	for i, l := range layers {
		bytes, packets := cfg.videoFrame(l.bps)
		mark := byte(floorKeep)
		if i == len(layers)-1 {
			mark = floorForward
		}
		each := (bytes + packets - 1) / packets
		for k := range packets {
			frame = append(frame, ipv4.Message{Buffers: [][]byte{datagram(min(each, bytes-k*each), mark)}, Addr: to})
			if mark == floorForward {
				frameForward++
			}
		}
	}
	pc := ipv4.NewPacketConn(c)

	// Participants join at different times: so do their clocks.
	if err := sleepCtx(ctx, rand.N(20*time.Millisecond)); err != nil {
		return
	}
	var audioTick, videoTick <-chan time.Time
	if cfg.Audio {
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		audioTick = t.C
	}
	if len(frame) > 0 {
		if err := sleepCtx(ctx, rand.N(time.Second/time.Duration(cfg.FPS))); err != nil {
			return
		}
		t := time.NewTicker(time.Second / time.Duration(cfg.FPS))
		defer t.Stop()
		videoTick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-audioTick:
			binary.BigEndian.PutUint64(audio[floorStamp:], uint64(time.Now().UnixNano()))
			if _, err := c.WriteToUDP(audio, to); err != nil {
				return
			}
			nSent++
			nForward++
		case <-videoTick:
			now := uint64(time.Now().UnixNano())
			for _, m := range frame {
				binary.BigEndian.PutUint64(m.Buffers[0][floorStamp:], now)
			}
			for off := 0; off < len(frame); {
				n, err := pc.WriteBatch(frame[off:], 0)
				if err != nil {
					return
				}
				off += n
			}
			nSent += uint64(len(frame))
			nForward += frameForward
		}
	}
}

// writeFloorTable prints the result of --floor.
func writeFloorTable(w io.Writer, f *ltFloor) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "floor\ta bare relay of the same packets: one goroutine, recvmmsg and sendmmsg; no encryption, RTP, RTCP or signaling\n")
	fmt.Fprintf(tw, "rooms\t%d (%d participants, %d publish)\n", f.Rooms, f.Participants, f.Publishers)
	fmt.Fprintf(tw, "relay packets/s\tin %.0f  out %.0f  (%.0f reads a second, %.2f datagrams each)\n",
		f.Relay.PacketsInPerSec, f.Relay.PacketsOutPerSec, f.Relay.ReadsPerSec, f.Relay.DatagramsPerRead)
	if f.Relay.Measured {
		fmt.Fprintf(tw, "relay CPU\t%.3f cores, %.2f µs per packet (received plus sent)\n", f.Relay.Cores, f.Relay.CPUMicrosPerPacket)
	} else {
		fmt.Fprintf(tw, "relay CPU\tnot known here\n")
	}
	if f.Generator.Measured {
		fmt.Fprintf(tw, "generator CPU\t%.3f cores\n", f.Generator.Cores)
	}
	fmt.Fprintf(tw, "latency (send to read)\tp50 %s  p90 %s  p99 %s  max %s\n", fmtMs(float64(f.Latency.P50)), fmtMs(float64(f.Latency.P90)), fmtMs(float64(f.Latency.P99)), fmtMs(float64(f.Latency.Max)))
	fmt.Fprintf(tw, "loss\t%.3f%%  (%d copies of %d)\n", f.LossPct, f.Received, f.Expected)
	_ = tw.Flush()
}

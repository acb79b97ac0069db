package media

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/transport/v5/packetio"
	"golang.org/x/sys/unix"
)

// TestSendersDontFragment: both sockets the SFU sends from mark their
// datagrams Don't Fragment without path-MTU bookkeeping, so the kernel
// gives them no IP identification (probeMTU).
func TestSendersDontFragment(t *testing.T) {
	c := newGroupConn(t)
	if err := c.openSender(); err != nil {
		t.Fatal(err)
	}
	var shared int
	var serr error
	if err := c.raw.Control(func(fd uintptr) {
		shared, serr = unix.GetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU_DISCOVER)
	}); err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	c.smu.RLock()
	sendOnly, err := unix.GetsockoptInt(c.sendFd, unix.IPPROTO_IP, unix.IP_MTU_DISCOVER)
	c.smu.RUnlock()
	if err != nil {
		t.Fatal(err)
	}
	if shared != unix.IP_PMTUDISC_PROBE || sendOnly != unix.IP_PMTUDISC_PROBE {
		t.Fatalf("IP_MTU_DISCOVER shared %d, send-only %d; want %d (IP_PMTUDISC_PROBE)",
			shared, sendOnly, unix.IP_PMTUDISC_PROBE)
	}
}

// TestRTCPReader: RTCP that comes at rideRate or faster is taken many
// datagrams a read, none lost or reordered: at the grid's instants while
// no media comes, after the media readers' reads while it does; once it
// stops, the RTCP reader stops polling, and a datagram that comes alone
// is read at once.
func TestRTCPReader(t *testing.T) {
	c := newGroupConn(t)
	var mu sync.Mutex
	var seen []byte
	got := make(chan struct{}, 1000)
	c.testRead = func(shard int, p []byte, _ netip.AddrPort) {
		if shard == 3 {
			mu.Lock()
			seen = append(seen, p[2])
			mu.Unlock()
			got <- struct{}{}
		}
	}
	if err := c.openReaders(2); err != nil {
		t.Fatal(err)
	}
	rtcp := c.rtcp.shard
	peer := loopbackUDP(t)
	local := c.LocalAddr().(*net.UDPAddr)
	next := 0
	send := func() {
		if _, err := peer.WriteToUDP([]byte{0x81, 205, byte(next)}, local); err != nil {
			t.Fatal(err)
		}
		next++
	}
	wait := func(n int) {
		t.Helper()
		for range n {
			select {
			case <-got:
			case <-time.After(5 * time.Second):
				t.Fatal("an RTCP datagram was not read")
			}
		}
	}
	inOrder := func() {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		for i, b := range seen {
			if b != byte(i) {
				t.Fatalf("datagram %d read as %d-th", b, i)
			}
		}
	}

	// Groups of five back to back, however late the sleeps between
	// them: at least rideMin within a tick, whatever the machine's load.
	const groups, group = 20, 5
	const burst = groups * group
	for range groups {
		for range group {
			send()
		}
		time.Sleep(5 * time.Millisecond)
	}
	wait(burst)
	inOrder()
	if p, r := rtcp.polls.Load(), rtcp.reads.Load(); p == 0 || r > burst/2 {
		t.Errorf("%d datagrams in groups of %d took %d reads, %d of them polls: not polled", burst, group, r, p)
	}

	riding := time.Now().Add(5 * time.Second)
	for c.rtcp.riding.Load() { // a poll finds nothing, and the polls stop
		if time.Now().After(riding) {
			t.Fatal("still polling a second after the last datagram")
		}
		time.Sleep(time.Millisecond)
	}
	reads, polls := rtcp.reads.Load(), rtcp.polls.Load()
	time.Sleep(5 * tickGrid)
	if p := rtcp.polls.Load(); p != polls {
		t.Errorf("%d polls while no RTCP came", p-polls)
	}
	for range 3 { // far apart: each read when it comes, no poll
		send()
		wait(1)
		time.Sleep(tickGrid)
	}
	if r, p := rtcp.reads.Load()-reads, rtcp.polls.Load()-polls; r != 3 || p != 0 {
		t.Errorf("3 lone datagrams took %d reads and %d polls, want 3 and none", r, p)
	}

	// With media: the media readers take the RTCP between the polls.
	media := loopbackUDP(t)
	reads, polls = rtcp.reads.Load(), rtcp.polls.Load()
	for i := range groups {
		for range group {
			send()
		}
		// Queued before the RTP that wakes a media reader.
		if _, err := media.WriteToUDP([]byte{0x80, 96, byte(i)}, local); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	wait(burst)
	inOrder()
	// Without the media readers' rides: a few reads before riding, and
	// one a poll.
	if r, p := rtcp.reads.Load()-reads, rtcp.polls.Load()-polls; r < p+groups/2 {
		t.Errorf("with media, %d RTCP datagrams took %d reads, %d of them polls: the media readers took none", burst, r, p)
	}
}

// TestRTCPRideBound: a media reader takes at most rideBatches reads of
// the RTCP socket at a time, however much waits there, and the RTCP
// reader's own turn takes it all.
func TestRTCPRideBound(t *testing.T) {
	c := newGroupConn(t)
	c.spill = packetio.NewBuffer() // what no connection takes goes there
	r, err := openRTCPReader(&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}, 1, c.newScratch())
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	sa, err := unix.Getsockname(r.fd)
	if err != nil {
		t.Fatal(err)
	}
	to := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: sa.(*unix.SockaddrInet4).Port}
	peer := loopbackUDP(t)
	const flood = 200
	for i := range flood {
		if _, err := peer.WriteToUDP([]byte{0x81, 201, byte(i)}, to); err != nil {
			t.Fatal(err)
		}
	}
	if !c.drainRTCP(r, false, rideBatches) {
		t.Fatal("closed")
	}
	if reads, taken := r.shard.reads.Load(), r.taken.Load(); reads != rideBatches || taken != rideBatches*readBatch {
		t.Fatalf("a ride took %d datagrams in %d reads, want %d in %d", taken, reads, rideBatches*readBatch, rideBatches)
	}
	if !c.drainRTCP(r, true, 0) {
		t.Fatal("closed")
	}
	if taken := r.taken.Load(); taken != flood {
		t.Fatalf("the RTCP reader's turn left %d of %d datagrams", flood-taken, flood)
	}
}

// TestReaderWaitsAfterEmpty: a media reader whose recvmmsg left its
// socket empty waits for the next datagram instead of asking the socket
// again (one recvmmsg per wake-up on a quiet socket), and a datagram
// that arrives while the reader handles the last one is still read at
// once, not when a later one comes.
func TestReaderWaitsAfterEmpty(t *testing.T) {
	c := newGroupConn(t)
	handled := make(chan string, 64)
	hold := make(chan struct{})
	c.testRead = func(_ int, p []byte, _ netip.AddrPort) {
		handled <- string(p[2:])
		if string(p[2:]) == "hold" {
			<-hold
		}
	}
	if err := c.openReaders(2); err != nil {
		t.Fatal(err)
	}
	peer := loopbackUDP(t)
	local := c.LocalAddr().(*net.UDPAddr)
	send := func(s string) {
		t.Helper()
		if _, err := peer.WriteToUDP(append([]byte{0x80, 96}, s...), local); err != nil {
			t.Fatal(err)
		}
	}
	next := func(want string) {
		t.Helper()
		select {
		case got := <-handled:
			if got != want {
				t.Fatalf("handled %q, want %q", got, want)
			}
		case <-time.After(3 * time.Second):
			t.Fatalf("%q not handled", want)
		}
	}
	calls := func() uint64 {
		var n uint64
		for _, s := range c.shards {
			n += s.polls.Load()
		}
		return n
	}

	// A datagram that arrives while the reader is busy with another.
	send("hold")
	next("hold")
	send("while held")
	time.Sleep(50 * time.Millisecond) // in the socket before the reader's next call
	close(hold)
	next("while held")

	// Lone datagrams: one call each.
	time.Sleep(50 * time.Millisecond)
	before := calls()
	const lone = 20
	for i := range lone {
		send(fmt.Sprint("lone ", i))
		next(fmt.Sprint("lone ", i))
	}
	time.Sleep(50 * time.Millisecond)
	if n := calls() - before; n > lone+2 {
		t.Errorf("%d lone datagrams took %d recvmmsg calls, want one each", lone, n)
	}
}

// TestRideGate: the media readers take a turn at the RTCP socket at
// most once every rideGap, and of readers asking at once, one goes.
func TestRideGate(t *testing.T) {
	var g rideGate
	start := time.Hour // well after the gate's zero
	if !g.take(start) {
		t.Fatal("the first turn was refused")
	}
	if g.take(start) || g.take(start+rideGap-1) {
		t.Fatal("a second turn within rideGap went")
	}
	if !g.take(start + rideGap) {
		t.Fatal("a turn rideGap after the last was refused")
	}
	var wg sync.WaitGroup
	var went atomic.Int32
	at := start + 3*rideGap
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				if g.take(at) {
					went.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if n := went.Load(); n != 1 {
		t.Fatalf("%d turns at one instant, want 1", n)
	}
}

// TestForwardDelay: the readers' sockets stamp each datagram's arrival,
// and the SFU counts the time from it until the datagram was handled and
// its fan-out sent: through real clients, every forwarded packet is
// counted, each within a few milliseconds on loopback.
func TestForwardDelay(t *testing.T) {
	for _, readers := range []int{1, 2} {
		t.Run(fmt.Sprintf("%d readers", readers), func(t *testing.T) { testForwardDelay(t, readers) })
	}
}

// testForwardDelay: with one reader pion's mux reads the socket (a
// one-core node's default), with more the readers do; both count.
func testForwardDelay(t *testing.T, readers int) {
	sfu := newTestSFU(t, Params{UDPReaders: readers})
	_, _, bob, _ := aliceToBob(t, sfu, clientOpts{}, 3)
	st := sfu.Stats()
	h := st.ForwardDelay
	if h.Count() < 40 {
		t.Fatalf("%d datagrams' delays counted after bob received %d packets", h.Count(), bob.packets("alice", "video")+bob.packets("alice", "audio"))
	}
	if mean := h.Sum / time.Duration(h.Count()); mean <= 0 || mean > 50*time.Millisecond {
		t.Errorf("mean delay %v over %d datagrams", mean, h.Count())
	}
	if over := h.Counts[len(DelayBounds)]; over != 0 {
		t.Errorf("%d datagrams took over %v", over, DelayBounds[len(DelayBounds)-1])
	}
}

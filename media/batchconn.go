package media

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pion/transport/v5/packetio"
)

// The SFU's UDP socket sends one fan-out's packets with one sendmmsg
// system call instead of a sendto per packet per subscriber: on a
// two-core node the system calls were the largest cost of forwarding.
//
// pion's ICE UDP mux writes every packet of every connection through
// this socket, from whichever goroutine produced it. A publisher's read
// loop opens a batch around its fan-out (hold), the writes made while
// any batch is open are copied into the pending batch, and the last
// fan-out to close its batch (release) sends what is pending. Writes
// made while no batch is open (ICE, DTLS, RTCP, retransmissions) go
// out at once, as before. A batch is also sent when it is full, or
// when a release finds it older than batchMaxAge, so overlapping
// fan-outs never hold a packet back for long.
const (
	batchSize   = 64                     // packets per sendmmsg
	batchMTU    = 1500                   // larger writes are sent alone
	batchMaxAge = 500 * time.Microsecond // longest a packet waits in a batch
)

// batchConn is a *net.UDPConn whose writes can be batched. It
// implements net.PacketConn and the netip.AddrPort methods pion's mux
// prefers (ice.AddrPortReaderWriter).
type batchConn struct {
	*net.UDPConn
	raw    syscall.RawConn // for the raw system calls (batchconn_linux.go)
	reader *rawReader
	// in takes the datagrams of connections whose pair is direct
	// (directin.go); set before the first read, nil in some tests.
	in *directFactory
	// readMu holds ReadFromAddrPort's loop, whose decryptions use
	// scratch (and spillBuf). pion's mux reads from one goroutine:
	// never contended.
	readMu  sync.Mutex
	scratch *inScratch
	// delay counts the datagrams' times from arrival to handled
	// (Stats.ForwardDelay) when pion's mux reads the socket itself.
	delay delayCounter

	// With several readers (openReaders, batchconn_linux.go): shards
	// are the sockets, the first being this one, each read by readLoop;
	// spill takes what they leave to pion's mux, framed with its source
	// address, and ReadFromAddrPort reads it. Nil spill: pion's mux
	// reads the socket itself.
	steered      bool // the group has its steering program
	shards       []*readShard
	rtcp         *rtcpReader // the RTCP socket's (batchconn_linux.go)
	spill        *packetio.Buffer
	spillBuf     []byte
	spillDropped atomic.Uint64 // datagrams the full spill buffer lost
	// testRead, in tests, sees each datagram a shard reads.
	testRead func(shard int, p []byte, from netip.AddrPort)

	smu    sync.RWMutex // held by sends on sendFd, taken to close it
	sendFd int          // the send-only socket; -1: none

	mu      sync.Mutex
	holders int        // fan-outs holding the batch open
	pending *sendBatch // nil when nothing waits
	since   int64      // when pending got its first packet, UnixNano
	free    []*sendBatch

	// Counters for tests and the benchmarks' figures.
	batches atomic.Uint64 // sendmmsg calls
	batched atomic.Uint64 // packets they carried
	direct  atomic.Uint64 // packets written alone
	dropped atomic.Uint64 // packets a failed send lost
	closed  atomic.Bool
}

// newBatchConn wraps c for batched writes.
func newBatchConn(c *net.UDPConn) *batchConn {
	raw, err := c.SyscallConn()
	if err != nil {
		panic(err) // a *net.UDPConn always has one
	}
	bc := &batchConn{UDPConn: c, raw: raw, reader: newRawReader(c), sendFd: -1}
	bc.scratch = bc.newScratch()
	return bc
}

// newScratch is the memory of one reader of c's sockets.
func (c *batchConn) newScratch() *inScratch {
	sc := newInScratch()
	sc.out = newOutbox(c)
	return sc
}

// hold opens a batch: writes wait for release (or a full batch). Nil
// is a conn that never batches.
func (c *batchConn) hold() {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.holders++
	c.mu.Unlock()
}

// release closes a batch, and sends what is pending when no other
// batch is open or the oldest packet has waited long enough.
func (c *batchConn) release() {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.holders--
	var b *sendBatch
	if c.pending != nil && (c.holders == 0 || time.Now().UnixNano()-c.since > int64(batchMaxAge)) {
		b, c.pending = c.pending, nil
	}
	c.mu.Unlock()
	if b != nil {
		c.send(b)
	}
}

// WriteToAddrPort queues p when a batch is open, and otherwise writes
// it at once. A queued packet's send error is counted, not returned:
// like any UDP datagram it may be lost.
func (c *batchConn) WriteToAddrPort(p []byte, to netip.AddrPort) (int, error) {
	if !to.Addr().Unmap().Is4() || len(p) > batchMTU {
		c.direct.Add(1)
		return c.UDPConn.WriteToUDPAddrPort(p, to)
	}
	c.mu.Lock()
	if c.holders == 0 {
		b := c.freeLocked()
		c.mu.Unlock()
		c.direct.Add(1)
		return c.writeNow(b, p, to)
	}
	if c.closed.Load() {
		c.mu.Unlock()
		return 0, net.ErrClosed
	}
	if c.pending == nil {
		c.pending = c.freeLocked()
		c.since = time.Now().UnixNano()
	}
	c.pending.add(p, to)
	var full *sendBatch
	if c.pending.n == batchSize {
		full, c.pending = c.pending, nil
	}
	c.mu.Unlock()
	if full != nil {
		c.send(full)
	}
	return len(p), nil
}

// freeLocked returns an empty batch; mu must be held.
func (c *batchConn) freeLocked() *sendBatch {
	if k := len(c.free); k > 0 {
		b := c.free[k-1]
		c.free = c.free[:k-1]
		return b
	}
	return newSendBatch()
}

// writeNow sends p alone, through b, which it returns to the free list.
func (c *batchConn) writeNow(b *sendBatch, p []byte, to netip.AddrPort) (int, error) {
	b.add(p, to)
	_, err := c.sendFrom(b, 0)
	c.recycle(b)
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// ReadFromAddrPort is pion's UDP mux's read. It returns the datagrams
// that in does not take itself (directin.go).
func (c *batchConn) ReadFromAddrPort(p []byte) (int, netip.AddrPort, error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	if c.spill != nil {
		return c.readSpill(p)
	}
	for {
		n, from, at, err := c.reader.read(p)
		c.scratch.setNow(time.Now())
		if err != nil || c.in == nil || !c.in.deliver(p[:n], from, c.scratch) {
			c.noteDelay(at) // handed to pion's mux
			return n, from, err
		}
		c.scratch.out.flush()
		c.noteDelay(at)
	}
}

// noteDelay counts, on a socket pion's mux reads (one reader), the time
// since a datagram that arrived at at (0: not stamped) was read, now
// that it is handled.
func (c *batchConn) noteDelay(at int64) {
	if at != 0 {
		c.delay.observe(time.Duration(time.Now().UnixNano() - at))
	}
}

// spillHeader is the source address written before each spilled
// datagram: the address's 16 bytes and the port.
const spillHeader = 18

// spillBytes bounds what waits for pion's mux, as its own buffers do.
const spillBytes = 1 << 20

// readShard is one of the sockets openReaders reads.
type readShard struct {
	conn    *net.UDPConn
	reader  *rawReader
	scratch *inScratch
	// reads counts the reads that returned datagrams; polls a media
	// reader's recvmmsg calls (whatever they returned) and the RTCP
	// reader's polls; for tests.
	reads, polls atomic.Uint64
	// delay counts the datagrams' times from arrival to handled
	// (Stats.ForwardDelay), where the socket stamps their arrival.
	delay delayCounter
}

// noteDelays counts, once the k datagrams of b are handled and what they
// forward sent, the time since each arrived.
func (s *readShard) noteDelays(b *recvBatch, k int) {
	var now int64
	for j := range k {
		at := b.arrival(j)
		if at == 0 {
			continue
		}
		if now == 0 {
			now = time.Now().UnixNano()
		}
		s.delay.observe(time.Duration(now - at))
	}
}

// forwardDelays sums the readers' delay counts.
func (c *batchConn) forwardDelays() DelayHistogram {
	var h DelayHistogram
	c.delay.addTo(&h)
	for _, s := range c.shards {
		s.delay.addTo(&h)
	}
	return h
}

// readBatch is how many datagrams a reader takes from its socket with
// one system call (recvmmsg on Linux).
const readBatch = 16

// readLoop reads shard i until the socket closes: what in does not take
// goes to the spill buffer for pion's mux. The fan-outs of the
// datagrams one call reads share one send batch: in small rooms a
// packet has one or two subscribers, and one sendmmsg then carries the
// copies of a few packets instead of each packet's own.
func (c *batchConn) readLoop(i int, s *readShard) {
	b := newRecvBatch()
	each := func(k int) bool {
		if !c.handle(i, s, b, k) {
			return false
		}
		c.rideRTCP()
		return true
	}
	for {
		err := s.reader.readEach(b, each, &s.polls)
		if err == nil || c.readEnded(err) {
			return // nil: pion's mux is closed
		}
	}
}

// readEnded reports whether a reader's error is the socket's close; any
// other error it waits a moment after, since the next read may not have
// it.
func (c *batchConn) readEnded(err error) bool {
	if c.closed.Load() || errors.Is(err, net.ErrClosed) {
		return true
	}
	time.Sleep(time.Millisecond)
	return false
}

// handle delivers the k datagrams of b that shard i read, and sends
// what their handling wrote. It reports false when pion's mux is
// closed.
func (c *batchConn) handle(i int, s *readShard, b *recvBatch, k int) bool {
	s.reads.Add(1)
	c.hold()
	s.scratch.setNow(time.Now())
	for j := range k {
		buf, n, from := b.datagram(j) // buf has room for spillHeader before the datagram
		p := buf[spillHeader : spillHeader+n]
		if c.testRead != nil {
			c.testRead(i, p, from)
		}
		if c.in != nil && c.in.deliver(p, from, s.scratch) {
			continue
		}
		a := from.Addr().As16()
		copy(buf, a[:])
		binary.BigEndian.PutUint16(buf[16:], from.Port())
		if _, err := c.spill.Write(buf[:spillHeader+n], nil); err != nil {
			if errors.Is(err, packetio.ErrFull) {
				c.spillDropped.Add(1) // pion's mux is behind
				continue
			}
			s.scratch.out.flush()
			c.release()
			return false // closed
		}
	}
	s.scratch.out.flush()
	s.noteDelays(b, k)
	c.release()
	return true
}

// readSpill returns the next datagram a reader left to pion's mux.
// readMu must be held.
func (c *batchConn) readSpill(p []byte) (int, netip.AddrPort, error) {
	for {
		n, _, err := c.spill.Read(c.spillBuf, nil)
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = net.ErrClosed
			}
			return 0, netip.AddrPort{}, &net.OpError{Op: "read", Net: "udp", Source: c.LocalAddr(), Err: err}
		}
		if n < spillHeader {
			continue
		}
		from := netip.AddrPortFrom(netip.AddrFrom16([16]byte(c.spillBuf[:16])).Unmap(), binary.BigEndian.Uint16(c.spillBuf[16:]))
		return copy(p, c.spillBuf[spillHeader:n]), from, nil
	}
}

// SetReadDeadline sets the deadline of ReadFromAddrPort.
func (c *batchConn) SetReadDeadline(t time.Time) error {
	if c.spill != nil {
		return c.spill.SetReadDeadline(t)
	}
	return c.UDPConn.SetReadDeadline(t)
}

// WriteTo is net.PacketConn's write, batched like WriteToAddrPort.
func (c *batchConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if a, ok := addr.(*net.UDPAddr); ok {
		return c.WriteToAddrPort(p, a.AddrPort())
	}
	return c.UDPConn.WriteTo(p, addr)
}

// Close closes the sockets; what is pending is dropped.
func (c *batchConn) Close() error {
	c.closed.Store(true)
	c.closeSender()
	err := c.UDPConn.Close()
	for _, s := range c.shards[min(1, len(c.shards)):] {
		_ = s.conn.Close()
	}
	c.closeRTCP()
	if c.spill != nil {
		_ = c.spill.Close()
	}
	return err
}

// send writes b with as few sendmmsg calls as the kernel allows, and
// returns it to the free list.
func (c *batchConn) send(b *sendBatch) {
	c.transmit(b)
	c.recycle(b)
}

// transmit writes b with as few sendmmsg calls as the kernel allows. A
// packet the kernel refuses is skipped.
func (c *batchConn) transmit(b *sendBatch) {
	c.batches.Add(1)
	c.batched.Add(uint64(b.n))
	for i := 0; i < b.n; {
		k, err := c.sendFrom(b, i)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				c.dropped.Add(uint64(b.n - i))
				break
			}
			if k <= 0 {
				k = 1 // the first message failed: skip it
				c.dropped.Add(1)
			}
		}
		i += k
	}
}

// recycle empties b and returns it to the free list.
func (c *batchConn) recycle(b *sendBatch) {
	b.n = 0
	c.mu.Lock()
	c.free = append(c.free, b)
	c.mu.Unlock()
}

// outbox is one socket reader's own send batch. The fan-outs a reader
// runs marshal and encrypt each subscriber's copy straight into its next
// slot (directOut.writeStream), without a lock and without another copy,
// and the reader sends it when it is full and once the datagrams of one
// read are handled (flush). The shared batch behind hold and release
// takes every other write.
type outbox struct {
	c *batchConn
	b *sendBatch
	cryptScratch
}

func newOutbox(c *batchConn) *outbox { return &outbox{c: c, b: newSendBatch()} }

// slot is the memory of the next packet, batchMTU bytes.
func (o *outbox) slot() []byte { return o.b.mem[o.b.n][:] }

// commit queues the slot's first n bytes for to (IPv4), and sends the
// batch when it is full.
func (o *outbox) commit(n int, to netip.AddrPort) {
	o.b.take(n, to)
	if o.b.n == batchSize {
		o.flush()
	}
}

// flush sends what the outbox holds.
func (o *outbox) flush() {
	if o.b.n > 0 {
		o.c.transmit(o.b)
		o.b.n = 0
	}
}

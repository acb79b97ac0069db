package media

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/pion/transport/v5/packetio"
	"golang.org/x/sys/unix"
)

// On Linux the SFU's socket is read and written with raw system calls:
// sendmmsg for batches, recvfrom for pion's mux. Raw means the Go
// scheduler is not told (no entersyscall): the socket is non-blocking,
// so a call never waits (a full send buffer or an empty receive queue
// is EAGAIN, and the wait is the netpoller's, as in package net).
//
// Told, the scheduler did two costly things the load test's kernel
// profile showed. Each system call made while every processor was idle
// woke the scheduler's monitor thread (sysmon), which then polled every
// 20 µs for a millisecond: with a fan-out every two milliseconds it
// never slept, and its wake-ups were 7 % of the server's CPU. And a
// fan-out's sendmmsg on loopback lasts long enough (the kernel delivers
// each datagram to its receiver within the call) for the monitor to
// take the processor from it and wake another thread.

// sendBatch is one sendmmsg's worth of packets, laid out as the kernel
// reads them, with the memory they are copied into.
type sendBatch struct {
	n     int
	hdrs  [batchSize]unix.Mmsghdr
	iovs  [batchSize]unix.Iovec
	names [batchSize]unix.RawSockaddrInet4
	mem   [batchSize][batchMTU]byte

	// The raw call's argument and results, and the function that makes
	// it, built once: a closure made per call would be allocated per
	// call.
	from  int
	sent  uintptr
	errno unix.Errno
	call  func(fd uintptr) bool
}

func newSendBatch() *sendBatch {
	b := &sendBatch{}
	for i := range b.hdrs {
		b.iovs[i].Base = &b.mem[i][0]
		b.names[i].Family = unix.AF_INET
		h := &b.hdrs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&b.names[i]))
		h.Namelen = unix.SizeofSockaddrInet4
		h.Iov = &b.iovs[i]
		h.SetIovlen(1)
	}
	b.call = func(fd uintptr) bool {
		for {
			b.sent, _, b.errno = unix.RawSyscall6(unix.SYS_SENDMMSG, fd,
				uintptr(unsafe.Pointer(&b.hdrs[b.from])), uintptr(b.n-b.from), 0, 0, 0)
			if b.errno != unix.EINTR {
				return b.errno != unix.EAGAIN // EAGAIN: wait until writable
			}
		}
	}
	return b
}

// add copies p, addressed to to (IPv4), into the next slot.
func (b *sendBatch) add(p []byte, to netip.AddrPort) {
	b.take(copy(b.mem[b.n][:], p), to)
}

// take queues the next slot's first n bytes, written in place, for to
// (IPv4).
func (b *sendBatch) take(n int, to netip.AddrPort) {
	i := b.n
	b.iovs[i].SetLen(n)
	b.names[i].Addr = to.Addr().Unmap().As4()
	setNetPort(&b.names[i].Port, to.Port())
	b.n++
}

// setNetPort and netPort write and read a sockaddr's port, which the
// kernel keeps in network byte order.
func setNetPort(p *uint16, port uint16) {
	b := (*[2]byte)(unsafe.Pointer(p))
	b[0], b[1] = byte(port>>8), byte(port)
}

func netPort(p *uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(p))
	return uint16(b[0])<<8 | uint16(b[1])
}

// sendFrom sends b's packets from the i-th with one sendmmsg, and
// returns how many the kernel took: through the send-only socket when
// there is one and it has room, else through the socket itself.
func (c *batchConn) sendFrom(b *sendBatch, i int) (int, error) {
	b.from = i
	c.smu.RLock()
	sent := c.sendFd >= 0 && b.call(uintptr(c.sendFd))
	c.smu.RUnlock()
	if !sent {
		if err := c.raw.Write(b.call); err != nil {
			return 0, err
		}
	}
	if b.errno != 0 {
		return 0, &net.OpError{Op: "sendmmsg", Net: "udp", Err: b.errno}
	}
	return int(b.sent), nil
}

// rawReader is the state of one socket's raw reads. One goroutine reads
// each socket; mu makes any other reader wait its turn.
type rawReader struct {
	mu    sync.Mutex
	raw   syscall.RawConn
	local net.Addr
	buf   []byte
	// read's recvmsg: the source address and the arrival stamp come
	// back beside the datagram.
	from  unix.RawSockaddrAny
	iov   unix.Iovec
	msg   unix.Msghdr
	ctrl  [ctrlWords]uint64
	n     uintptr
	errno unix.Errno
	call  func(fd uintptr) bool
}

func newRawReader(c *net.UDPConn) *rawReader {
	raw, err := c.SyscallConn()
	if err != nil {
		panic(err) // a *net.UDPConn always has one
	}
	_ = raw.Control(func(fd uintptr) {
		growReceiveBuffer(int(fd)) // every socket read gets a deep queue
		// Each datagram's arrival, for Stats.ForwardDelay: recvmmsg
		// and recvmsg return it beside the datagram.
		_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
	})
	r := &rawReader{raw: raw, local: c.LocalAddr()}
	r.msg.Name = (*byte)(unsafe.Pointer(&r.from))
	r.msg.Iov = &r.iov
	r.msg.SetIovlen(1)
	r.msg.Control = (*byte)(unsafe.Pointer(&r.ctrl[0]))
	r.call = func(fd uintptr) bool {
		r.iov.Base = nil
		if len(r.buf) > 0 {
			r.iov.Base = &r.buf[0]
		}
		r.iov.SetLen(len(r.buf))
		for {
			r.msg.Namelen = unix.SizeofSockaddrAny
			r.msg.SetControllen(ctrlWords * 8)
			r.msg.Flags = 0
			r.n, _, r.errno = unix.RawSyscall(unix.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&r.msg)), 0)
			if r.errno != unix.EINTR {
				return r.errno != unix.EAGAIN // EAGAIN: wait until readable
			}
		}
	}
	return r
}

// read reads one datagram, without allocating; at is its arrival, in
// Unix nanoseconds, 0 when the socket does not stamp arrivals.
func (r *rawReader) read(p []byte) (n int, from netip.AddrPort, at int64, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf = p
	err = r.raw.Read(r.call)
	r.buf = nil
	if err != nil {
		return 0, netip.AddrPort{}, 0, err
	}
	if r.errno != 0 {
		return 0, netip.AddrPort{}, 0, &net.OpError{Op: "read", Net: "udp", Source: r.local, Err: r.errno}
	}
	return int(r.n), SockaddrAddrPort(&r.from), arrivalStamp(&r.ctrl, int(r.msg.Controllen)), nil
}

// recvBatch is what one recvmmsg reads into: up to readBatch datagrams,
// each with spillHeader bytes free before it.
type recvBatch struct {
	hdrs  [readBatch]unix.Mmsghdr
	iovs  [readBatch]unix.Iovec
	names [readBatch]unix.RawSockaddrAny
	// ctrl receives each datagram's control message: its arrival time
	// (SCM_TIMESTAMPNS), on a socket that asked for it. Words, for the
	// alignment of the header and timespec read from them.
	ctrl  [readBatch][ctrlWords]uint64
	bufs  [readBatch][]byte
	n     uintptr
	errno unix.Errno
	call  func(fd uintptr) bool
	// each and loop are readEach's: each handles the n datagrams read,
	// reporting false to stop; stopped records that it did.
	each    func(n int) bool
	loop    func(fd uintptr) bool
	stopped bool
	calls   *atomic.Uint64 // counts loop's recvmmsg calls
}

func newRecvBatch() *recvBatch {
	b := &recvBatch{}
	for i := range b.hdrs {
		b.bufs[i] = make([]byte, spillHeader+receiveMTU)
		b.iovs[i].Base = &b.bufs[i][spillHeader]
		b.iovs[i].SetLen(receiveMTU)
		h := &b.hdrs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&b.names[i]))
		h.Control = (*byte)(unsafe.Pointer(&b.ctrl[i][0]))
		h.Iov = &b.iovs[i]
		h.SetIovlen(1)
	}
	b.call = func(fd uintptr) bool {
		for i := range b.hdrs {
			b.hdrs[i].Hdr.Namelen = unix.SizeofSockaddrAny
			b.hdrs[i].Hdr.SetControllen(ctrlWords * 8)
			b.hdrs[i].Hdr.Flags = 0
		}
		for {
			b.n, _, b.errno = unix.RawSyscall6(unix.SYS_RECVMMSG, fd,
				uintptr(unsafe.Pointer(&b.hdrs[0])), readBatch, unix.MSG_DONTWAIT, 0, 0)
			if b.errno != unix.EINTR {
				return b.errno != unix.EAGAIN // EAGAIN: wait until readable
			}
		}
	}
	b.loop = func(fd uintptr) bool {
		for {
			b.calls.Add(1)
			if !b.call(fd) {
				return false // nothing there: wait until readable
			}
			if b.errno != 0 {
				return true
			}
			if !b.each(int(b.n)) {
				b.stopped = true
				return true
			}
			if b.n < readBatch {
				// The socket was empty when recvmmsg returned: wait
				// rather than ask again. A datagram that arrived since
				// has left the poller's readiness set, which waiting
				// consumes at once.
				return false
			}
		}
	}
	return b
}

// readEach reads the socket, handing each batch to each, until each
// reports false (nil is returned) or a read fails; calls counts the
// recvmmsg calls. After a read that left the socket empty it waits for
// the next datagram without asking the socket again: on a quiet socket
// every wake-up takes one recvmmsg instead of two (the second returning
// EAGAIN). That needs one RawConn.Read across the reads, since each
// Read starts by clearing the poller's readiness: a datagram that came
// in while the last ones were handled would then wait for the next.
func (r *rawReader) readEach(b *recvBatch, each func(n int) bool, calls *atomic.Uint64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	b.each, b.calls, b.stopped = each, calls, false
	defer func() { b.each, b.calls = nil, nil }()
	for {
		if err := r.raw.Read(b.loop); err != nil {
			return err
		}
		if b.stopped {
			return nil
		}
		if b.errno != 0 {
			return &net.OpError{Op: "read", Net: "udp", Source: r.local, Err: b.errno}
		}
	}
}

// ctrlWords is the size of a datagram's control buffer in 8-byte words:
// one control message holding a timespec.
const ctrlWords = 4

// arrival is when datagram j arrived, in Unix nanoseconds, as the kernel
// stamped it; 0 when the socket does not stamp arrivals.
func (b *recvBatch) arrival(j int) int64 {
	return arrivalStamp(&b.ctrl[j], int(b.hdrs[j].Hdr.Controllen))
}

// arrivalStamp reads the arrival time from a datagram's control buffer
// of n bytes, 0 when it holds none.
func arrivalStamp(ctrl *[ctrlWords]uint64, n int) int64 {
	if n < unix.CmsgLen(int(unsafe.Sizeof(unix.Timespec{}))) {
		return 0
	}
	cm := (*unix.Cmsghdr)(unsafe.Pointer(&ctrl[0]))
	if cm.Level != unix.SOL_SOCKET || cm.Type != unix.SCM_TIMESTAMPNS {
		return 0
	}
	return (*unix.Timespec)(unsafe.Add(unsafe.Pointer(&ctrl[0]), unix.CmsgLen(0))).Nano()
}

// datagram returns the j-th datagram read: its buffer (the datagram at
// spillHeader), its length and its source.
func (b *recvBatch) datagram(j int) ([]byte, int, netip.AddrPort) {
	return b.bufs[j], int(b.hdrs[j].Len), SockaddrAddrPort(&b.names[j])
}

// SockaddrAddrPort is the source of a datagram recvmmsg or recvfrom
// returned (the zero AddrPort for a family other than IPv4 and IPv6).
// The load generator's own readers use it too.
func SockaddrAddrPort(sa *unix.RawSockaddrAny) netip.AddrPort {
	switch sa.Addr.Family {
	case unix.AF_INET:
		a := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), netPort(&a.Port))
	case unix.AF_INET6:
		a := (*unix.RawSockaddrInet6)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr).Unmap(), netPort(&a.Port))
	}
	return netip.AddrPort{}
}

// Reading on every core. With one reader, the socket's reader
// goroutine forwards every packet received over a direct pair
// (directin.go): one core's worth of forwarding per node, and STUN and
// DTLS wait behind it. With more, openReaders opens n more sockets in
// the SO_REUSEPORT group, each read and forwarded from by its own
// goroutine; a classic BPF program on the group steers each RTP
// datagram to one of them by a hash of its source address and ports,
// so that one remote's packets always meet the same reader, in order,
// every RTCP datagram to one more socket, the RTCP reader's (below),
// and everything else (STUN, DTLS) to the first socket, whose reader
// only passes it on: the control plane never waits for media. What the
// readers do not take goes to pion's mux through the spill buffer,
// which ReadFromAddrPort then reads instead of the socket.
//
// RTCP has a reader of its own because it comes at the receivers' pace,
// not the media's: in one room of 4 publishers and 70 subscribers, the
// subscribers' reports and transport-wide feedback were about 1 300 of
// the 1 550 datagrams the server received a second, most arriving
// alone and waking a reader (a thread leaving epoll_wait: a context
// switch, and in a virtual machine an expensive one). None of it needs
// handling within microseconds: a NACK's retransmission, a keyframe
// request or a report can wait a few milliseconds. So while RTCP comes
// at rideRate or faster, it rides on wake-ups the server has anyway:
// each media reader, once it has handled what it read, takes what the
// RTCP socket holds (rideRTCP), and the RTCP reader itself takes it at
// each instant of the tickGrid of the wall clock, when the periodic
// work (tick.go) wakes the process; while media flows, RTCP waits for
// the next media datagram. When RTCP comes slower (or at an instant
// no media reader took any), the RTCP reader waits for each datagram
// and handles it at once, and an idle server does not wake at all.
//
// RTCP is RFC 5761's: the second byte (the payload type and marker of
// RTP) 192-223, which WebRTC's RTP payload types never are.

// maxReaders bounds the sockets openReaders opens for media.
const maxReaders = 16

// skfNetOff is SKF_NET_OFF: a classic BPF load at skfNetOff+k reads
// the network header's byte k.
const skfNetOff = 0xfff00000 // -0x100000

// steering returns the program that picks a datagram's socket in a
// group whose first 2+n sockets read: RTP (first byte 128-191, RFC
// 7983; second byte, the payload type and marker, not 192-223, RFC
// 5761) goes to one of sockets 1 to n by a hash of the IPv4 source
// address and ports, RTCP to socket n+1, the rest to the first. A load
// past the datagram's end returns 0: the first.
func steering(n int) []unix.SockFilter {
	if n <= 0 {
		return []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: 0}}
	}
	return []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_B | unix.BPF_ABS, K: 0},                   // 0: A = payload[0]
		{Code: unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K, K: 128, Jt: 0, Jf: 14}, // 1: < 128: the first
		{Code: unix.BPF_JMP | unix.BPF_JGT | unix.BPF_K, K: 191, Jt: 13, Jf: 0}, // 2: > 191: the first
		{Code: unix.BPF_LD | unix.BPF_B | unix.BPF_ABS, K: 1},                   // 3: A = payload[1]
		{Code: unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K, K: 192, Jt: 0, Jf: 2},  // 4: < 192: RTP
		{Code: unix.BPF_JMP | unix.BPF_JGT | unix.BPF_K, K: 223, Jt: 1, Jf: 0},  // 5: > 223: RTP
		{Code: unix.BPF_RET | unix.BPF_K, K: uint32(n + 1)},                     // 6: RTCP
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: skfNetOff + 12},      // 7: A = source address
		{Code: unix.BPF_MISC | unix.BPF_TAX},                                    // 8: X = A
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: skfNetOff + 20},      // 9: A = ports (no IP options)
		{Code: unix.BPF_ALU | unix.BPF_XOR | unix.BPF_X},                        // 10: A ^= X
		{Code: unix.BPF_ALU | unix.BPF_MUL | unix.BPF_K, K: 0x9e3779b1},         // 11: Fibonacci hashing: the
		{Code: unix.BPF_ALU | unix.BPF_RSH | unix.BPF_K, K: 24},                 // 12: top byte mixes every bit
		{Code: unix.BPF_ALU | unix.BPF_MOD | unix.BPF_K, K: uint32(n)},          // 13: A %= n
		{Code: unix.BPF_ALU | unix.BPF_ADD | unix.BPF_K, K: 1},                  // 14: A += 1
		{Code: unix.BPF_RET | unix.BPF_A},                                       // 15: socket A
		{Code: unix.BPF_RET | unix.BPF_K, K: 0},                                 // 16: the first
	}
}

// steer attaches the steering program for n media readers (0: none)
// to the group.
func (c *batchConn) steer(n int) error {
	prog := steering(n)
	var serr error
	if err := c.raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptSockFprog(int(fd), unix.SOL_SOCKET, unix.SO_ATTACH_REUSEPORT_CBPF,
			&unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]})
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("media: steering program: %w", serr)
	}
	c.steered = true
	return nil
}

// openReaders opens n more sockets beside c (at most maxReaders) for
// media, steers the group's datagrams, and starts a reader on each
// socket, c's own included. It must run before the first read and
// before openSender (the send-only socket joins the group after the
// readers). n below 2 does nothing: pion's mux reads the socket, and
// forwards, itself.
func (c *batchConn) openReaders(n int) error {
	n = min(n, maxReaders)
	if n < 2 {
		return nil
	}
	local := c.LocalAddr().String()
	var conns []*net.UDPConn
	fail := func(err error) error {
		for _, uc := range conns {
			_ = uc.Close()
		}
		return fmt.Errorf("media: UDP readers: %w", err)
	}
	for range n {
		lc := reuseportListener()
		pc, err := lc.ListenPacket(context.Background(), "udp4", local)
		if err != nil {
			return fail(err)
		}
		uc, ok := pc.(*net.UDPConn)
		if !ok {
			_ = pc.Close()
			return fail(errors.New("not a UDP socket"))
		}
		conns = append(conns, uc)
	}
	r, err := openRTCPReader(c.LocalAddr().(*net.UDPAddr), n+1, c.newScratch())
	if err != nil {
		return fail(err)
	}
	if err := c.steer(n); err != nil {
		r.close()
		return fail(err)
	}
	c.rtcp = r
	c.spill = packetio.NewBuffer()
	c.spill.SetLimitSize(spillBytes)
	c.spillBuf = make([]byte, spillHeader+receiveMTU)
	c.shards = append(c.shards, &readShard{conn: c.UDPConn, reader: c.reader, scratch: c.scratch})
	for _, uc := range conns {
		c.shards = append(c.shards, &readShard{conn: uc, reader: newRawReader(uc), scratch: c.newScratch()})
	}
	for i, s := range c.shards {
		go c.readLoop(i, s)
	}
	go c.readRTCP(r)
	return nil
}

// rideRate is the RTCP datagrams a second at and above which RTCP
// rides on the media readers' wake-ups; rideMin is that many a tick.
const (
	rideRate = 100
	rideMin  = rideRate * int(tickGrid) / int(time.Second)
)

// rtcpReader reads the RTCP socket: its own goroutine (readRTCP), and
// while RTCP rides, the media readers (rideRTCP). The socket is not in
// Go's netpoller, whose epoll instance would have each datagram's
// arrival wake a thread, whether or not a goroutine waits for it: it
// is in an epoll instance of its own (ep, which is in the netpoller),
// watched for input only while the RTCP reader waits for a datagram.
type rtcpReader struct {
	// fdMu guards fd: held to read while the socket is used (for the
	// system calls on it), to write to close it; fd is -1 once closed.
	fdMu sync.RWMutex
	fd   int
	ep   *os.File // the epoll instance
	epRC syscall.RawConn
	// mu is held by whoever reads the socket and handles what it read,
	// with b, the shard's scratch, and watching.
	mu       sync.Mutex
	b        *recvBatch
	shard    *readShard // its scratch and counters
	index    int        // the socket's in its group, for testRead
	watching bool       // ep watches fd for input
	read     func(uintptr) bool
	riding   atomic.Bool
	gate     rideGate      // the media readers' turns
	taken    atomic.Uint64 // datagrams read, by whichever reader
}

// openRTCPReader opens the RTCP socket on local, in its SO_REUSEPORT
// group (whose index-th socket it becomes), and its epoll instance.
func openRTCPReader(local *net.UDPAddr, index int, scratch *inScratch) (*rtcpReader, error) {
	fd, err := groupSocket(local, growReceiveBuffer)
	if err != nil {
		return nil, fmt.Errorf("RTCP socket: %w", err)
	}
	r := &rtcpReader{fd: fd, b: newRecvBatch(), shard: &readShard{scratch: scratch}, index: index}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err == nil {
		err = unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{})
		if err == nil {
			err = unix.SetNonblock(epfd, true)
		}
		if err != nil {
			_ = unix.Close(epfd)
		}
	}
	if err != nil {
		r.close()
		return nil, fmt.Errorf("RTCP socket's epoll: %w", err)
	}
	r.ep = os.NewFile(uintptr(epfd), "rtcp-epoll") // non-blocking: in the netpoller
	if r.epRC, err = r.ep.SyscallConn(); err != nil {
		r.close()
		return nil, fmt.Errorf("RTCP socket's epoll: %w", err)
	}
	r.read = func(uintptr) bool { return r.b.call(uintptr(r.fd)) }
	return r, nil
}

// watch has ep watch the socket for input, or not; mu and fdMu (to
// read) must be held.
func (r *rtcpReader) watch(on bool) error {
	if r.watching == on {
		return nil
	}
	var ev unix.EpollEvent
	if on {
		ev.Events = unix.EPOLLIN
	}
	var err error
	if cerr := r.epRC.Control(func(epfd uintptr) { // (not ep.Fd(), which takes ep out of the netpoller)
		err = unix.EpollCtl(int(epfd), unix.EPOLL_CTL_MOD, r.fd, &ev)
	}); cerr != nil {
		return cerr
	}
	if err != nil {
		return err
	}
	r.watching = on
	return nil
}

// wait reads the socket, waiting for its first datagram; mu must be
// held.
func (r *rtcpReader) wait() (int, error) {
	r.fdMu.RLock()
	defer r.fdMu.RUnlock()
	if r.fd < 0 {
		return 0, net.ErrClosed
	}
	if err := r.watch(true); err != nil {
		return 0, err
	}
	if err := r.epRC.Read(r.read); err != nil {
		return 0, err
	}
	return r.result()
}

// try reads what the socket holds, without waiting: 0 when it holds
// none. mu must be held.
func (r *rtcpReader) try() (int, error) {
	r.fdMu.RLock()
	defer r.fdMu.RUnlock()
	if r.fd < 0 {
		return 0, net.ErrClosed
	}
	if r.b.call(uintptr(r.fd)); r.b.errno == unix.EAGAIN {
		return 0, nil
	}
	return r.result()
}

// result is what the last read returned.
func (r *rtcpReader) result() (int, error) {
	if r.b.errno != 0 {
		return 0, &net.OpError{Op: "read", Net: "udp", Err: r.b.errno}
	}
	return int(r.b.n), nil
}

// close closes the socket and its epoll instance; a waiting read
// returns net.ErrClosed.
func (r *rtcpReader) close() {
	if r.ep != nil {
		_ = r.ep.Close() // ends a wait, which lets fdMu go
	}
	r.fdMu.Lock()
	if r.fd >= 0 {
		_ = unix.Close(r.fd)
		r.fd = -1
	}
	r.fdMu.Unlock()
}

// readRTCP reads the RTCP socket until it closes (see rtcpReader).
func (c *batchConn) readRTCP(r *rtcpReader) {
	var since time.Time // the start of the tick the waits' count is of
	count := 0
	for {
		r.mu.Lock()
		k, err := r.wait()
		if err != nil {
			r.mu.Unlock()
			if c.readEnded(err) {
				return
			}
			continue
		}
		open := c.handle(r.index, r.shard, r.b, k)
		r.mu.Unlock()
		if !open {
			return
		}
		r.taken.Add(uint64(k))
		if now := r.shard.scratch.now; now.Sub(since) > tickGrid {
			since, count = now, 0
		}
		if count += k; count < rideMin {
			continue
		}
		// Ride: stop watching, so that arrivals wake no thread.
		r.mu.Lock()
		r.fdMu.RLock()
		err = r.watch(false)
		r.fdMu.RUnlock()
		r.mu.Unlock()
		r.riding.Store(err == nil)
		for r.riding.Load() {
			before := r.taken.Load()
			time.Sleep(gridPhase{period: tickGrid}.until(time.Now()))
			r.shard.polls.Add(1)
			if !c.drainRTCP(r, true, 0) {
				return
			}
			if r.taken.Load()-before < uint64(rideMin) {
				r.riding.Store(false)
			}
		}
		since, count = time.Time{}, 0
	}
}

// rideBatches bounds what a media reader takes of the RTCP socket at a
// time, so that a flood of RTCP (or of datagrams that look like it)
// holds its own media up by at most that many reads.
const rideBatches = 4

// rideRTCP is a media reader's turn at the RTCP socket once it has
// handled what it read: while RTCP rides, it takes what the socket
// holds (rideBatches reads at most), unless another reader is at it or
// a reader's turn came less than rideGap ago.
func (c *batchConn) rideRTCP() {
	if r := c.rtcp; r != nil && r.riding.Load() && r.gate.take(time.Since(rideEpoch)) {
		c.drainRTCP(r, false, rideBatches)
	}
}

// rideGap is the shortest time between two of the media readers' turns
// at the RTCP socket. With a turn on every wake-up, most found the
// socket empty: in 35 three-person rooms, 2 200 of the 2 800 tries a
// second were a recvmmsg that returned EAGAIN. RTCP waits at most this
// much longer for a reader (feedback comes every 100 ms; a NACK is
// answered a millisecond later).
const rideGap = time.Millisecond

// rideEpoch is the start of the monotonic clock rideGate reads.
var rideEpoch = time.Now()

// rideGate lets one turn through every rideGap, whichever reader asks.
type rideGate struct{ next atomic.Int64 }

// take reports whether a turn asked for at now (since rideEpoch) may go.
func (g *rideGate) take(now time.Duration) bool {
	n := g.next.Load()
	return int64(now) >= n && g.next.CompareAndSwap(n, int64(now+rideGap))
}

// drainRTCP reads and handles what the RTCP socket holds, without
// waiting, in at most reads reads (0: no bound); wait says whether to
// wait for a reader already at it. It reports false once the socket is
// closed.
func (c *batchConn) drainRTCP(r *rtcpReader, wait bool, reads int) bool {
	if wait {
		r.mu.Lock()
	} else if !r.mu.TryLock() {
		return true
	}
	defer r.mu.Unlock()
	for i := 1; ; i++ {
		k, err := r.try()
		if err != nil {
			return !c.readEnded(err)
		}
		if k > 0 {
			if !c.handle(r.index, r.shard, r.b, k) {
				return false
			}
			r.taken.Add(uint64(k))
		}
		if k < readBatch || i == reads {
			return true
		}
	}
}

// receiveBuffer is what the kernel may queue on each reading socket:
// a reader forwards what it reads before it reads again, so a reader
// held up (a long fan-out, a garbage collection, a busy machine) leans
// on its socket's queue. The default (rmem_default, 208 KiB: about 90
// full-size datagrams) is a few milliseconds of a busy node's media.
const receiveBuffer = 4 << 20

// growReceiveBuffer raises socket fd's receive buffer to receiveBuffer:
// with SO_RCVBUFFORCE when the process may (root, CAP_NET_ADMIN), else
// as far as net.core.rmem_max allows.
func growReceiveBuffer(fd int) {
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, receiveBuffer) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, receiveBuffer)
	}
}

// socketDrops is how many datagrams the kernel dropped on the sockets
// that read (their queues full, most of all), from SO_MEMINFO, and the
// readers dropped because pion's mux was behind.
func (c *batchConn) socketDrops() uint64 {
	raws := []syscall.RawConn{c.raw}
	for _, s := range c.shards[min(1, len(c.shards)):] {
		raws = append(raws, s.reader.raw)
	}
	total := c.spillDropped.Load()
	for _, raw := range raws {
		_ = raw.Control(func(fd uintptr) { total += socketDropped(int(fd)) })
	}
	if r := c.rtcp; r != nil {
		r.fdMu.RLock()
		if r.fd >= 0 {
			total += socketDropped(r.fd)
		}
		r.fdMu.RUnlock()
	}
	return total
}

// socketDropped is what the kernel dropped on socket fd (SO_MEMINFO).
func socketDropped(fd int) uint64 {
	var info [unix.SK_MEMINFO_VARS]uint32
	size := uint32(unsafe.Sizeof(info))
	_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_MEMINFO,
		uintptr(unsafe.Pointer(&info[0])), uintptr(unsafe.Pointer(&size)), 0)
	if errno == 0 && size > unix.SK_MEMINFO_DROPS*4 {
		return uint64(info[unix.SK_MEMINFO_DROPS])
	}
	return 0
}

// reuseportListener opens sockets with SO_REUSEPORT.
func reuseportListener() net.ListenConfig {
	return net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		}); err != nil {
			return err
		}
		return serr
	}}
}

// The send-only socket. The kernel frees a datagram sent on loopback at
// once, and every free tells the sending socket's waiters it has room
// again (sock_wfree). Package net registers its sockets with epoll for
// writability, so each of those notices went through epoll, and woke a
// thread waiting in it when there was one, for nothing: 3 % of the
// server's CPU in the load test, and part of the threads' wake-ups. A
// second socket, bound to the same address with SO_REUSEPORT and never
// registered with epoll, sends without them. Datagrams keep the same
// source address and port, and a classic BPF program on the group sends
// every datagram received to the first socket, pion's.

// listenUDP opens the SFU's UDP socket, with SO_REUSEPORT so that a
// send-only socket can share its address. A port in use by any other
// socket is still an error: SO_REUSEPORT would otherwise let a second
// server join the first one's port and silently receive nothing.
func listenUDP(addr string) (net.PacketConn, error) {
	if ua, err := net.ResolveUDPAddr("udp4", addr); err == nil && ua.Port != 0 {
		probe, err := net.ListenUDP("udp4", ua)
		if err != nil {
			return nil, err
		}
		_ = probe.Close()
	}
	lc := reuseportListener()
	pc, err := lc.ListenPacket(context.Background(), "udp4", addr)
	if err != nil {
		return nil, err
	}
	if uc, ok := pc.(*net.UDPConn); ok {
		if raw, err := uc.SyscallConn(); err == nil {
			_ = raw.Control(func(fd uintptr) { _ = probeMTU(int(fd)) })
		}
	}
	return pc, nil
}

// probeMTU sets a sending socket's datagrams' Don't Fragment bit
// without the kernel's path-MTU bookkeeping (IP_PMTUDISC_PROBE). By
// default (IP_PMTUDISC_WANT) the kernel may fragment an unconnected
// socket's datagrams, so it gives each one an IP identification from
// its shared, hashed counters (__ip_select_ident, 3 % of the server's
// CPU in the load test's fan-outs); a datagram that may not be
// fragmented gets none. WebRTC keeps its packets near 1 200 bytes (pion's
// DTLS and SCTP, browsers' RTP), under any interface's and path's MTU;
// the kernel now refuses a datagram larger than the interface's MTU
// (EMSGSIZE, a dropped packet in a batch) where it fragmented it before.
func probeMTU(fd int) error {
	return unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_PROBE)
}

// openSender opens the send-only socket beside c; it fails when c was
// not opened by listenUDP or the kernel refuses the steering program.
func (c *batchConn) openSender() error {
	local, ok := c.LocalAddr().(*net.UDPAddr)
	if !ok || local.IP.To4() == nil && local.IP != nil && !local.IP.IsUnspecified() {
		return fmt.Errorf("media: send-only socket: unexpected local address %v", c.LocalAddr())
	}
	if !c.steered { // every received datagram to the first socket
		if err := c.steer(0); err != nil {
			return err
		}
	}
	fd, err := groupSocket(local, func(fd int) { _ = probeMTU(fd) })
	if err != nil {
		return fmt.Errorf("media: send-only socket: %w", err)
	}
	c.smu.Lock()
	c.sendFd = fd
	c.smu.Unlock()
	return nil
}

// groupSocket opens a non-blocking IPv4 UDP socket, outside Go's
// netpoller, with SO_REUSEPORT, set up by prepare and bound to local:
// it joins local's group as its last socket.
func groupSocket(local *net.UDPAddr, prepare func(fd int)) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	sa := &unix.SockaddrInet4{Port: local.Port}
	if ip4 := local.IP.To4(); ip4 != nil {
		copy(sa.Addr[:], ip4)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
		_ = unix.Close(fd)
		return -1, err
	}
	prepare(fd)
	if err := unix.Bind(fd, sa); err != nil {
		_ = unix.Close(fd)
		return -1, fmt.Errorf("bind %v: %w", local, err)
	}
	return fd, nil
}

// closeSender closes the send-only socket, once no send uses it.
func (c *batchConn) closeSender() {
	c.smu.Lock()
	fd := c.sendFd
	c.sendFd = -1
	c.smu.Unlock()
	if fd >= 0 {
		_ = unix.Close(fd)
	}
}

// closeRTCP closes the RTCP reader's socket, if there is one.
func (c *batchConn) closeRTCP() {
	if c.rtcp != nil {
		c.rtcp.close()
	}
}

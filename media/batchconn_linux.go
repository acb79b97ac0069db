package media

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
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
	from  unix.RawSockaddrAny
	size  uint32
	n     uintptr
	errno unix.Errno
	call  func(fd uintptr) bool
}

func newRawReader(c *net.UDPConn) *rawReader {
	raw, err := c.SyscallConn()
	if err != nil {
		panic(err) // a *net.UDPConn always has one
	}
	growReceiveBuffer(raw) // every socket read gets a deep queue
	r := &rawReader{raw: raw, local: c.LocalAddr()}
	r.call = func(fd uintptr) bool {
		var p unsafe.Pointer
		if len(r.buf) > 0 {
			p = unsafe.Pointer(&r.buf[0])
		}
		for {
			r.size = unix.SizeofSockaddrAny
			r.n, _, r.errno = unix.RawSyscall6(unix.SYS_RECVFROM, fd, uintptr(p), uintptr(len(r.buf)), 0,
				uintptr(unsafe.Pointer(&r.from)), uintptr(unsafe.Pointer(&r.size)))
			if r.errno != unix.EINTR {
				return r.errno != unix.EAGAIN // EAGAIN: wait until readable
			}
		}
	}
	return r
}

// read reads one datagram, without allocating.
func (r *rawReader) read(p []byte) (int, netip.AddrPort, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf = p
	err := r.raw.Read(r.call)
	r.buf = nil
	if err != nil {
		return 0, netip.AddrPort{}, err
	}
	if r.errno != 0 {
		return 0, netip.AddrPort{}, &net.OpError{Op: "read", Net: "udp", Source: r.local, Err: r.errno}
	}
	return int(r.n), sockaddrAddrPort(&r.from), nil
}

// recvBatch is what one recvmmsg reads into: up to readBatch datagrams,
// each with spillHeader bytes free before it.
type recvBatch struct {
	hdrs  [readBatch]unix.Mmsghdr
	iovs  [readBatch]unix.Iovec
	names [readBatch]unix.RawSockaddrAny
	bufs  [readBatch][]byte
	n     uintptr
	errno unix.Errno
	call  func(fd uintptr) bool
}

func newRecvBatch() *recvBatch {
	b := &recvBatch{}
	for i := range b.hdrs {
		b.bufs[i] = make([]byte, spillHeader+receiveMTU)
		b.iovs[i].Base = &b.bufs[i][spillHeader]
		b.iovs[i].SetLen(receiveMTU)
		h := &b.hdrs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&b.names[i]))
		h.Iov = &b.iovs[i]
		h.SetIovlen(1)
	}
	b.call = func(fd uintptr) bool {
		for i := range b.hdrs {
			b.hdrs[i].Hdr.Namelen = unix.SizeofSockaddrAny
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
	return b
}

// readMany reads what the socket holds, up to readBatch datagrams,
// waiting for the first; it allocates nothing.
func (r *rawReader) readMany(b *recvBatch) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.raw.Read(b.call); err != nil {
		return 0, err
	}
	if b.errno != 0 {
		return 0, &net.OpError{Op: "read", Net: "udp", Source: r.local, Err: b.errno}
	}
	return int(b.n), nil
}

// datagram returns the j-th datagram read: its buffer (the datagram at
// spillHeader), its length and its source.
func (b *recvBatch) datagram(j int) ([]byte, int, netip.AddrPort) {
	return b.bufs[j], int(b.hdrs[j].Len), sockaddrAddrPort(&b.names[j])
}

// sockaddrAddrPort is a received datagram's source.
func sockaddrAddrPort(sa *unix.RawSockaddrAny) netip.AddrPort {
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
// goroutine; a classic BPF program on the group steers each RTP or
// RTCP datagram to one of them by a hash of its source address and
// ports, so that one remote's packets always meet the same reader, in
// order, and everything else (STUN, DTLS) to the first socket, whose
// reader only passes it on: the control plane never waits for media.
// What the readers do not take goes to pion's mux through the spill
// buffer, which ReadFromAddrPort then reads instead of the socket.

// maxReaders bounds the sockets openReaders opens.
const maxReaders = 16

// skfNetOff is SKF_NET_OFF: a classic BPF load at skfNetOff+k reads
// the network header's byte k.
const skfNetOff = 0xfff00000 // -0x100000

// steering returns the program that picks a datagram's socket in a
// group whose first 1+n sockets read: RTP and RTCP (first byte 128-191,
// RFC 7983) go to one of sockets 1 to n by a hash of the IPv4 source
// address and ports, the rest to the first. A load past the datagram's
// end returns 0: the first.
func steering(n int) []unix.SockFilter {
	if n <= 0 {
		return []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: 0}}
	}
	return []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_B | unix.BPF_ABS, K: 0},                   // 0: A = payload[0]
		{Code: unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K, K: 128, Jt: 0, Jf: 10}, // 1: < 128: the first
		{Code: unix.BPF_JMP | unix.BPF_JGT | unix.BPF_K, K: 191, Jt: 9, Jf: 0},  // 2: > 191: the first
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: skfNetOff + 12},      // 3: A = source address
		{Code: unix.BPF_MISC | unix.BPF_TAX},                                    // 4: X = A
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: skfNetOff + 20},      // 5: A = ports (no IP options)
		{Code: unix.BPF_ALU | unix.BPF_XOR | unix.BPF_X},                        // 6: A ^= X
		{Code: unix.BPF_ALU | unix.BPF_MUL | unix.BPF_K, K: 0x9e3779b1},         // 7: Fibonacci hashing: the
		{Code: unix.BPF_ALU | unix.BPF_RSH | unix.BPF_K, K: 24},                 // 8: top byte mixes every bit
		{Code: unix.BPF_ALU | unix.BPF_MOD | unix.BPF_K, K: uint32(n)},          // 9: A %= n
		{Code: unix.BPF_ALU | unix.BPF_ADD | unix.BPF_K, K: 1},                  // 10: A += 1
		{Code: unix.BPF_RET | unix.BPF_A},                                       // 11: socket A
		{Code: unix.BPF_RET | unix.BPF_K, K: 0},                                 // 12: the first
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
	if err := c.steer(n); err != nil {
		return fail(err)
	}
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
	return nil
}

// receiveBuffer is what the kernel may queue on each reading socket:
// a reader forwards what it reads before it reads again, so a reader
// held up (a long fan-out, a garbage collection, a busy machine) leans
// on its socket's queue. The default (rmem_default, 208 KiB: about 90
// full-size datagrams) is a few milliseconds of a busy node's media.
const receiveBuffer = 4 << 20

// growReceiveBuffer raises a socket's receive buffer to receiveBuffer:
// with SO_RCVBUFFORCE when the process may (root, CAP_NET_ADMIN), else
// as far as net.core.rmem_max allows.
func growReceiveBuffer(raw syscall.RawConn) {
	_ = raw.Control(func(fd uintptr) {
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, receiveBuffer) != nil {
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, receiveBuffer)
		}
	})
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
		_ = raw.Control(func(fd uintptr) {
			var info [unix.SK_MEMINFO_VARS]uint32
			size := uint32(unsafe.Sizeof(info))
			_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_SOCKET, unix.SO_MEMINFO,
				uintptr(unsafe.Pointer(&info[0])), uintptr(unsafe.Pointer(&size)), 0)
			if errno == 0 && size > unix.SK_MEMINFO_DROPS*4 {
				total += uint64(info[unix.SK_MEMINFO_DROPS])
			}
		})
	}
	return total
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
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("media: send-only socket: %w", err)
	}
	sa := &unix.SockaddrInet4{Port: local.Port}
	if ip4 := local.IP.To4(); ip4 != nil {
		copy(sa.Addr[:], ip4)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
		_ = unix.Close(fd)
		return fmt.Errorf("media: send-only socket: %w", err)
	}
	_ = probeMTU(fd)
	if err := unix.Bind(fd, sa); err != nil {
		_ = unix.Close(fd)
		return fmt.Errorf("media: send-only socket: bind %v: %w", local, err)
	}
	c.smu.Lock()
	c.sendFd = fd
	c.smu.Unlock()
	return nil
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

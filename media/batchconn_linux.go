package media

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"unsafe"

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
	i := b.n
	b.iovs[i].SetLen(copy(b.mem[i][:], p))
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

// rawReader is the state of the socket's raw reads. pion's mux reads
// from one goroutine; mu makes any other reader wait its turn.
type rawReader struct {
	mu    sync.Mutex
	buf   []byte
	from  unix.RawSockaddrAny
	size  uint32
	n     uintptr
	errno unix.Errno
	call  func(fd uintptr) bool
}

func newRawReader() *rawReader {
	r := &rawReader{}
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

// readOnce reads one datagram, without allocating.
func (c *batchConn) readOnce(p []byte) (int, netip.AddrPort, error) {
	r := c.reader
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf = p
	err := c.raw.Read(r.call)
	r.buf = nil
	if err != nil {
		return 0, netip.AddrPort{}, err
	}
	if r.errno != 0 {
		return 0, netip.AddrPort{}, &net.OpError{Op: "read", Net: "udp", Source: c.LocalAddr(), Err: r.errno}
	}
	var from netip.AddrPort
	switch r.from.Addr.Family {
	case unix.AF_INET:
		a := (*unix.RawSockaddrInet4)(unsafe.Pointer(&r.from))
		from = netip.AddrPortFrom(netip.AddrFrom4(a.Addr), netPort(&a.Port))
	case unix.AF_INET6:
		a := (*unix.RawSockaddrInet6)(unsafe.Pointer(&r.from))
		from = netip.AddrPortFrom(netip.AddrFrom16(a.Addr).Unmap(), netPort(&a.Port))
	}
	return int(r.n), from, nil
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
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		}); err != nil {
			return err
		}
		return serr
	}}
	return lc.ListenPacket(context.Background(), "udp4", addr)
}

// openSender opens the send-only socket beside c; it fails when c was
// not opened by listenUDP or the kernel refuses the steering program.
func (c *batchConn) openSender() error {
	local, ok := c.LocalAddr().(*net.UDPAddr)
	if !ok || local.IP.To4() == nil && local.IP != nil && !local.IP.IsUnspecified() {
		return fmt.Errorf("media: send-only socket: unexpected local address %v", c.LocalAddr())
	}
	// Every received datagram to the group's first socket (index 0).
	prog := []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: 0}}
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

package media

import (
	"net"
	"net/netip"
	"sync"
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
	port := (*[2]byte)(unsafe.Pointer(&b.names[i].Port))
	port[0], port[1] = byte(to.Port()>>8), byte(to.Port())
	b.n++
}

// sendFrom sends b's packets from the i-th with one sendmmsg, and
// returns how many the kernel took.
func (c *batchConn) sendFrom(b *sendBatch, i int) (int, error) {
	b.from = i
	if err := c.raw.Write(b.call); err != nil {
		return 0, err
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

// ReadFromAddrPort is the mux's allocation-free read.
func (c *batchConn) ReadFromAddrPort(p []byte) (int, netip.AddrPort, error) {
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
		port := (*[2]byte)(unsafe.Pointer(&a.Port))
		from = netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(port[0])<<8|uint16(port[1]))
	case unix.AF_INET6:
		a := (*unix.RawSockaddrInet6)(unsafe.Pointer(&r.from))
		port := (*[2]byte)(unsafe.Pointer(&a.Port))
		from = netip.AddrPortFrom(netip.AddrFrom16(a.Addr).Unmap(), uint16(port[0])<<8|uint16(port[1]))
	}
	return int(r.n), from, nil
}

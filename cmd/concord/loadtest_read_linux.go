//go:build linux

package main

import (
	"net"
	"net/netip"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/concord-odr/concord/media"
)

// ltReadBatch is the most datagrams one recvmmsg takes from an own
// path's socket.
const ltReadBatch = 8

// ltReader reads an own path's socket for pion's read loop, as the
// server's readers read theirs: one recvmmsg takes what is queued, the
// SRTP of the streams the client took goes to it (ltDirect), and when
// the call returned fewer datagrams than it could take, the socket was
// empty and the reader waits for the next one instead of asking again.
// Read one at a time through Go's poller, a wake-up took a read for
// each datagram and one more that found the socket empty: at 50
// three-person rooms, 57 000 reads a second for the 33 000 datagrams the
// subscribers received; 25 000 this way, and 11-22 % less of the
// generator's CPU.
type ltReader struct {
	conn    *ltConn
	raw     syscall.RawConn
	fn      func(fd uintptr) bool
	batch   *mmsgBatch
	pending []int // datagrams of the last read left for pion, by index
	next    int   // the next of them to return
	err     error // the last read's failure
}

// newLtReader returns c's reader, or nil to read through Go's poller.
func newLtReader(c *ltConn) *ltReader {
	raw, err := c.UDPConn.SyscallConn()
	if err != nil {
		return nil
	}
	r := &ltReader{conn: c, raw: raw, batch: newMmsgBatch(ltReadBatch), pending: make([]int, 0, ltReadBatch)}
	r.fn = r.read
	return r
}

// mmsgBatch is what one recvmmsg of the load test's own sockets reads
// into: up to len(hdrs) datagrams of at most 2048 bytes.
type mmsgBatch struct {
	hdrs  []unix.Mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrAny
	bufs  [][2048]byte
}

func newMmsgBatch(n int) *mmsgBatch {
	b := &mmsgBatch{hdrs: make([]unix.Mmsghdr, n), iovs: make([]unix.Iovec, n), names: make([]unix.RawSockaddrAny, n), bufs: make([][2048]byte, n)}
	for i := range b.hdrs {
		b.iovs[i].Base = &b.bufs[i][0]
		b.iovs[i].SetLen(len(b.bufs[i]))
		b.hdrs[i].Hdr.Iov = &b.iovs[i]
		b.hdrs[i].Hdr.SetIovlen(1)
		b.hdrs[i].Hdr.Name = (*byte)(unsafe.Pointer(&b.names[i]))
	}
	return b
}

// recv takes what the socket fd holds, without waiting: the number of
// datagrams read, or the call's error (EAGAIN: none were there).
func (b *mmsgBatch) recv(fd uintptr) (int, unix.Errno) {
	for i := range b.hdrs {
		b.hdrs[i].Hdr.Namelen = unix.SizeofSockaddrAny
		b.hdrs[i].Len = 0
	}
	for {
		n, _, errno := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.hdrs[0])), uintptr(len(b.hdrs)), unix.MSG_DONTWAIT, 0, 0)
		if errno != unix.EINTR {
			return int(n), errno
		}
	}
}

// datagram returns the j-th datagram read and its source.
func (b *mmsgBatch) datagram(j int) ([]byte, netip.AddrPort) {
	return b.payload(j), media.SockaddrAddrPort(&b.names[j])
}

// payload returns the j-th datagram read.
func (b *mmsgBatch) payload(j int) []byte { return b.bufs[j][:b.hdrs[j].Len] }

// read is the RawConn.Read callback: true once a datagram waits for pion
// or a read failed, false to wait until the socket has something.
func (r *ltReader) read(fd uintptr) bool {
	for {
		n, errno := r.batch.recv(fd)
		switch errno {
		case 0:
		case unix.EAGAIN:
			return false
		default:
			r.err = os.NewSyscallError("recvmmsg", errno)
			return true
		}
		d := r.conn.direct.Load()
		for j := range n {
			if d != nil && d.take(r.batch.payload(j)) {
				continue
			}
			r.pending = append(r.pending, j)
		}
		if len(r.pending) > 0 {
			return true
		}
		if n < ltReadBatch {
			return false // the socket was empty: wait rather than ask again
		}
	}
}

// readFrom returns the next datagram for pion.
func (r *ltReader) readFrom(b []byte) (int, netip.AddrPort, error) {
	for r.next >= len(r.pending) {
		r.pending, r.next = r.pending[:0], 0
		if err := r.raw.Read(r.fn); err != nil {
			return 0, netip.AddrPort{}, err
		}
		if err := r.err; err != nil {
			r.err = nil
			return 0, netip.AddrPort{}, &net.OpError{Op: "read", Net: "udp", Source: r.conn.LocalAddr(), Err: err}
		}
	}
	j := r.pending[r.next]
	r.next++
	p, from := r.batch.datagram(j)
	return copy(b, p), from, nil
}

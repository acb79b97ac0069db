//go:build linux

package main

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// relaySendMax is the most copies one sendmmsg of the relay sends (the
// kernel's UIO_MAXIOV).
const relaySendMax = 1024

// floorRelay forwards datagrams as cheaply as Go can on Linux: one
// goroutine reads its socket through Go's poller with recvmmsg, and
// when a call returns fewer datagrams than it could take, waits for the
// next rather than asking again (the server's readers do the same); the
// copies of what one call read leave in one sendmmsg.
type floorRelay struct {
	raw    syscall.RawConn
	routes map[netip.AddrPort][]unix.RawSockaddrInet4

	batch *mmsgBatch
	n     int  // datagrams the last read returned
	empty bool // the last read left the socket empty

	wh   []unix.Mmsghdr
	wiov []unix.Iovec
	sent int // of wh, by the flush in progress

	recvFn, sendFn func(fd uintptr) bool
	err            error

	floorCounts
}

func newFloorRelay(conn *net.UDPConn, routes map[netip.AddrPort][]netip.AddrPort) (*floorRelay, error) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return nil, err
	}
	r := &floorRelay{raw: raw, routes: make(map[netip.AddrPort][]unix.RawSockaddrInet4, len(routes)),
		batch: newMmsgBatch(relayReadBatch), wh: make([]unix.Mmsghdr, 0, relaySendMax), wiov: make([]unix.Iovec, relaySendMax)}
	for from, tos := range routes {
		sas := make([]unix.RawSockaddrInet4, 0, len(tos))
		for _, to := range tos {
			if !to.Addr().Is4() {
				return nil, fmt.Errorf("relay: %s is not an IPv4 address", to)
			}
			sa := unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: to.Addr().As4()}
			port := (*[2]byte)(unsafe.Pointer(&sa.Port))
			port[0], port[1] = byte(to.Port()>>8), byte(to.Port())
			sas = append(sas, sa)
		}
		r.routes[from] = sas
	}
	r.recvFn, r.sendFn = r.recv, r.send
	return r, nil
}

// run relays until the socket closes.
func (r *floorRelay) run() error {
	for {
		if err := r.raw.Read(r.recvFn); err != nil {
			return err
		}
		if r.err != nil {
			return r.err
		}
		r.in.Add(uint64(r.n))
		r.reads.Add(1)
		for j := range r.n {
			p, from := r.batch.datagram(j)
			if len(p) == 0 || p[0] != floorForward {
				continue
			}
			to := r.routes[from]
			for i := range to {
				if len(r.wh) == relaySendMax {
					if err := r.flush(); err != nil {
						return err
					}
				}
				k := len(r.wh)
				r.wh = r.wh[:k+1]
				r.wiov[k].Base = &p[0]
				r.wiov[k].SetLen(len(p))
				h := &r.wh[k]
				h.Hdr.Iov = &r.wiov[k]
				h.Hdr.SetIovlen(1)
				h.Hdr.Name = (*byte)(unsafe.Pointer(&to[i]))
				h.Hdr.Namelen = unix.SizeofSockaddrInet4
			}
		}
		if err := r.flush(); err != nil {
			return err
		}
	}
}

// recv is the RawConn.Read callback: false to wait until the socket has
// something.
func (r *floorRelay) recv(fd uintptr) bool {
	if r.empty {
		r.empty = false
		return false // the last read emptied the socket: wait, do not ask
	}
	n, errno := r.batch.recv(fd)
	switch errno {
	case 0:
		r.n, r.empty = n, n < relayReadBatch
		return true
	case unix.EAGAIN:
		return false
	default:
		r.err = os.NewSyscallError("recvmmsg", errno)
		return true
	}
}

// flush sends the copies queued in wh.
func (r *floorRelay) flush() error {
	if len(r.wh) == 0 {
		return nil
	}
	r.sent = 0
	err := r.raw.Write(r.sendFn)
	r.out.Add(uint64(r.sent))
	r.wh = r.wh[:0]
	if err == nil {
		err = r.err
	}
	return err
}

// send is the RawConn.Write callback.
func (r *floorRelay) send(fd uintptr) bool {
	for r.sent < len(r.wh) {
		n, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&r.wh[r.sent])), uintptr(len(r.wh)-r.sent), 0, 0, 0)
		switch errno {
		case 0:
			r.sent += int(n)
			r.sends.Add(1)
		case unix.EINTR:
		case unix.EAGAIN:
			return false
		case unix.ECONNREFUSED:
			r.sent++ // a receiver closed its socket: skip its copy
		default:
			r.err = os.NewSyscallError("sendmmsg", errno)
			return true
		}
	}
	return true
}

// floorRelayOK says the relay runs here.
const floorRelayOK = true

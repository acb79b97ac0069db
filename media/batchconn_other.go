//go:build !linux

package media

import (
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
)

// sendBatch holds packets to send; without sendmmsg they leave one by
// one.
type sendBatch struct {
	n    int
	to   [batchSize]netip.AddrPort
	size [batchSize]int
	mem  [batchSize][batchMTU]byte
}

func newSendBatch() *sendBatch { return &sendBatch{} }

func (b *sendBatch) add(p []byte, to netip.AddrPort) {
	b.take(copy(b.mem[b.n][:], p), to)
}

// take queues the next slot's first n bytes, written in place, for to.
func (b *sendBatch) take(n int, to netip.AddrPort) {
	b.size[b.n] = n
	b.to[b.n] = to
	b.n++
}

func (c *batchConn) sendFrom(b *sendBatch, i int) (int, error) {
	if _, err := c.UDPConn.WriteToUDPAddrPort(b.mem[i][:b.size[i]], b.to[i]); err != nil {
		return 0, err
	}
	return 1, nil
}

type rawReader struct{ c *net.UDPConn }

func newRawReader(c *net.UDPConn) *rawReader { return &rawReader{c: c} }

// read reads one datagram; its arrival is not stamped here (at 0).
func (r *rawReader) read(p []byte) (n int, from netip.AddrPort, at int64, err error) {
	n, from, err = r.c.ReadFromUDPAddrPort(p)
	return n, from, 0, err
}

// recvBatch holds one datagram: without recvmmsg they are read one by
// one.
type recvBatch struct {
	buf  []byte
	n    int
	from netip.AddrPort
}

func newRecvBatch() *recvBatch { return &recvBatch{buf: make([]byte, spillHeader+receiveMTU)} }

// readEach reads datagrams one by one, handing each to each, until each
// reports false (nil is returned) or a read fails.
func (r *rawReader) readEach(b *recvBatch, each func(n int) bool, calls *atomic.Uint64) error {
	for {
		calls.Add(1)
		n, from, err := r.c.ReadFromUDPAddrPort(b.buf[spillHeader:])
		if err != nil {
			return err
		}
		b.n, b.from = n, from
		if !each(1) {
			return nil
		}
	}
}

func (b *recvBatch) datagram(int) ([]byte, int, netip.AddrPort) { return b.buf, b.n, b.from }

func (c *batchConn) socketDrops() uint64 { return 0 }

type rtcpReader struct{}

func (c *batchConn) rideRTCP() {}

func (c *batchConn) closeRTCP() {}

// openReaders does nothing: pion's mux reads the socket itself.
func (c *batchConn) openReaders(int) error { return nil }

func listenUDP(addr string) (net.PacketConn, error) { return net.ListenPacket("udp4", addr) }

func (c *batchConn) openSender() error { return errors.ErrUnsupported }

func (c *batchConn) closeSender() {}

// arrival is when datagram j arrived: unknown without Linux's receive
// timestamps.
func (b *recvBatch) arrival(int) int64 { return 0 }

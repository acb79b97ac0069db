package media

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"
)

// TestBatchConn: writes made while a fan-out holds the socket leave
// together in one sendmmsg when it releases, in order and intact; a
// full batch leaves at once; writes made while nothing is held, and
// oversized ones, are written alone.
func TestBatchConn(t *testing.T) {
	uc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	c := newBatchConn(uc)
	defer c.Close()
	rx := loopbackUDP(t)
	if err := rx.SetReadBuffer(4 << 20); err != nil {
		t.Fatal(err)
	}
	to := rx.LocalAddr().(*net.UDPAddr).AddrPort()
	packet := func(i int) []byte {
		p := bytes.Repeat([]byte{byte(i)}, 100+i)
		return p
	}
	receive := func(n int) [][]byte {
		t.Helper()
		var got [][]byte
		buf := make([]byte, 2048)
		_ = rx.SetReadDeadline(time.Now().Add(2 * time.Second))
		for len(got) < n {
			k, err := rx.Read(buf)
			if err != nil {
				t.Fatalf("after %d of %d packets: %v", len(got), n, err)
			}
			got = append(got, append([]byte(nil), buf[:k]...))
		}
		return got
	}

	// Held: nothing leaves before release, then all in one call.
	c.hold()
	for i := range 10 {
		if n, err := c.WriteToAddrPort(packet(i), to); err != nil || n != len(packet(i)) {
			t.Fatalf("write %d: %d, %v", i, n, err)
		}
	}
	_ = rx.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := rx.Read(make([]byte, 2048)); err == nil {
		t.Fatal("a held packet left before release")
	}
	c.release()
	for i, p := range receive(10) {
		if !bytes.Equal(p, packet(i)) {
			t.Fatalf("packet %d arrived as %d bytes of %d", i, len(p), p[0])
		}
	}
	if b, n := c.batches.Load(), c.batched.Load(); b != 1 || n != 10 {
		t.Fatalf("%d sendmmsg calls carried %d packets, want 1 and 10", b, n)
	}

	// Two fan-outs overlapping: the last to release sends.
	c.hold()
	c.hold()
	_, _ = c.WriteToAddrPort(packet(1), to)
	c.release()
	_, _ = c.WriteToAddrPort(packet(2), to)
	if c.batches.Load() != 1 {
		t.Fatal("sent while another fan-out still held the batch")
	}
	c.release()
	receive(2)
	if b, n := c.batches.Load(), c.batched.Load(); b != 2 || n != 12 {
		t.Fatalf("%d calls, %d packets; want 2 and 12", b, n)
	}

	// A full batch leaves without waiting for release.
	c.hold()
	for i := range batchSize + 1 {
		_, _ = c.WriteToAddrPort(packet(i%200), to)
	}
	if c.batches.Load() != 3 {
		t.Fatalf("a full batch waited: %d calls", c.batches.Load())
	}
	c.release()
	receive(batchSize + 1)

	// Nothing held, or too big for a slot: written alone.
	direct := c.direct.Load()
	_, _ = c.WriteToAddrPort(packet(3), to)
	c.hold()
	big := make([]byte, batchMTU+1)
	if n, err := c.WriteToAddrPort(big, to); err != nil || n != len(big) {
		t.Fatalf("oversized write: %d, %v", n, err)
	}
	c.release()
	receive(2)
	if got := c.direct.Load() - direct; got != 2 {
		t.Fatalf("%d packets written alone, want 2", got)
	}
	if c.dropped.Load() != 0 {
		t.Fatalf("%d packets dropped", c.dropped.Load())
	}
}

// BenchmarkBatchConnWrite: one packet copied into a held batch, the
// batch sent by sendmmsg 16 packets at a time (a fan-out to 16
// subscribers), against one sendto per packet.
func BenchmarkBatchConnWrite(b *testing.B) {
	uc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	c := newBatchConn(uc)
	defer c.Close()
	rx := loopbackUDP(b)
	go func() { // drain, so the receiver's buffer never fills
		buf := make([]byte, 2048)
		for {
			if _, err := rx.Read(buf); err != nil {
				return
			}
		}
	}()
	to := rx.LocalAddr().(*net.UDPAddr).AddrPort()
	p := make([]byte, 1100)
	b.Run("sendmmsg-16", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if i%16 == 0 {
				c.hold()
			}
			_, _ = c.WriteToAddrPort(p, to)
			if i%16 == 15 {
				c.release()
			}
		}
	})
	b.Run("sendto", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = c.WriteToAddrPort(p, to)
		}
	})
}

// TestBatchConnRead: the mux's read returns each datagram with its
// sender's address, waits for one when none is queued, honours a read
// deadline, allocates nothing, and ends with net.ErrClosed on Close.
func TestBatchConnRead(t *testing.T) {
	uc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	c := newBatchConn(uc)
	tx := loopbackUDP(t)
	from := tx.LocalAddr().(*net.UDPAddr).AddrPort()
	to := c.LocalAddr().(*net.UDPAddr)
	buf := make([]byte, 2048)

	// Queued before the read, and sent while it waits.
	if _, err := tx.WriteToUDP([]byte("first"), to); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		_, _ = tx.WriteToUDP([]byte("second, after a wait"), to)
	}()
	for _, want := range []string{"first", "second, after a wait"} {
		n, a, err := c.ReadFromAddrPort(buf)
		if err != nil || string(buf[:n]) != want || a != from {
			t.Fatalf("read %q from %v (%v), want %q from %v", buf[:n], a, err, want, from)
		}
	}

	_ = c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, _, err := c.ReadFromAddrPort(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past its deadline: %v", err)
	}
	_ = c.SetReadDeadline(time.Time{})

	allocs := testing.AllocsPerRun(100, func() {
		_, _ = tx.WriteToUDP([]byte("x"), to)
		if _, _, err := c.ReadFromAddrPort(buf); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 0.5 { // tx's write may allocate its address
		t.Fatalf("%.1f allocations per read and write", allocs)
	}

	done := make(chan error, 1)
	go func() {
		_, _, err := c.ReadFromAddrPort(buf)
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	_ = c.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read after Close: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("a waiting read did not end on Close")
	}
}

// TestSendOnlySocket: with the send-only socket, datagrams leave from
// the shared socket's address, every datagram received still reaches
// the shared socket, and the port stays exclusive to this server.
func TestSendOnlySocket(t *testing.T) {
	c := newGroupConn(t)
	if err := c.openSender(); err != nil {
		if runtime.GOOS == "linux" {
			t.Fatal(err)
		}
		t.Skip("no send-only socket on", runtime.GOOS)
	}
	local := c.LocalAddr().(*net.UDPAddr)
	if _, err := listenUDP(local.String()); err == nil {
		t.Fatal("a second server could open the SFU's UDP port")
	}

	peer := loopbackUDP(t)
	to := peer.LocalAddr().(*net.UDPAddr).AddrPort()
	c.hold()
	for range 10 {
		_, _ = c.WriteToAddrPort([]byte("batched"), to)
	}
	c.release()
	_, _ = c.WriteToAddrPort([]byte("alone"), to)
	buf := make([]byte, 2048)
	_ = peer.SetReadDeadline(time.Now().Add(2 * time.Second))
	for i := range 11 {
		n, from, err := peer.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
		if from != local.AddrPort() {
			t.Fatalf("datagram %q came from %v, not the SFU's address %v", buf[:n], from, local)
		}
	}

	const n = 200 // within the default receive buffer
	for i := range n {
		if _, err := peer.WriteToUDP([]byte{byte(i)}, local); err != nil {
			t.Fatal(err)
		}
	}
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	for i := range n {
		k, _, err := c.ReadFromAddrPort(buf)
		if err != nil || k != 1 || buf[0] != byte(i) {
			t.Fatalf("received datagram %d of %d: %v", i, n, err)
		}
	}
}

// TestReaders: with several readers, each remote's RTP always meets the
// same media reader, the remotes are spread over them, RTCP goes to the
// RTCP reader, STUN and DTLS to the first socket, nothing reaches the
// send-only socket, and what no connection takes reaches pion's mux,
// with its source address.
func TestReaders(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("one reader on", runtime.GOOS)
	}
	for _, readers := range []int{2, 3} {
		t.Run(fmt.Sprintf("%d readers", readers), func(t *testing.T) { testReaders(t, readers) })
	}
}

func testReaders(t *testing.T, readers int) {
	c := newGroupConn(t)
	type seen struct {
		shard         int
		first, second byte
	}
	var mu sync.Mutex
	got := map[netip.AddrPort][]seen{}
	c.testRead = func(shard int, p []byte, from netip.AddrPort) {
		mu.Lock()
		got[from] = append(got[from], seen{shard, p[0], p[1]})
		mu.Unlock()
	}
	if err := c.openReaders(readers); err != nil {
		t.Fatal(err)
	}
	if err := c.openSender(); err != nil {
		t.Fatal(err)
	}
	local := c.LocalAddr().(*net.UDPAddr)

	const remotes, each = 24, 5
	want := map[string]netip.AddrPort{}
	for r := range remotes {
		peer := loopbackUDP(t)
		from := peer.LocalAddr().(*net.UDPAddr).AddrPort()
		for i := range each {
			p := fmt.Appendf([]byte{0x80, 96}, "rtp %d %d", r, i)
			want[string(p)] = from
			if _, err := peer.WriteToUDP(p, local); err != nil {
				t.Fatal(err)
			}
		}
		for _, typ := range []byte{200, 201, 205, 206} { // SR, RR, RTPFB, PSFB
			p := fmt.Appendf([]byte{0x81, typ}, "rtcp %d", r)
			want[string(p)] = from
			if _, err := peer.WriteToUDP(p, local); err != nil {
				t.Fatal(err)
			}
		}
		p := fmt.Appendf([]byte{0x00, 0x01}, "stun %d", r)
		want[string(p)] = from
		if _, err := peer.WriteToUDP(p, local); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 2048)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for range remotes * (each + 5) {
		n, from, err := c.ReadFromAddrPort(buf)
		if err != nil {
			t.Fatalf("read: %v (%d datagrams left)", err, len(want))
		}
		if w, ok := want[string(buf[:n])]; !ok || w != from {
			t.Fatalf("datagram %q from %v: not sent, or from %v", buf[:n], from, w)
		}
		delete(want, string(buf[:n]))
	}

	mu.Lock()
	defer mu.Unlock()
	used := map[int]int{}
	for from, ss := range got {
		media, rtcp := -1, 0
		for _, s := range ss {
			isRTCP := s.first >= 128 && s.second >= 192 && s.second <= 223
			switch {
			case s.first < 128 && s.shard != 0:
				t.Errorf("%v: STUN read by reader %d", from, s.shard)
			case isRTCP && s.shard != readers+1:
				t.Errorf("%v: RTCP type %d read by reader %d, not the RTCP reader %d", from, s.second, s.shard, readers+1)
			case isRTCP:
				rtcp++
			case s.first >= 128 && (s.shard == 0 || s.shard > readers):
				t.Errorf("%v: RTP read by reader %d, not a media reader", from, s.shard)
			case s.first >= 128 && media >= 0 && s.shard != media:
				t.Errorf("%v: RTP read by readers %d and %d", from, media, s.shard)
			case s.first >= 128:
				media = s.shard
			}
		}
		if rtcp != 4 {
			t.Errorf("%v: the readers saw %d of its 4 RTCP datagrams", from, rtcp)
		}
		used[media]++
	}
	if len(used) != readers {
		t.Errorf("remotes per media reader %v, want all %d readers used", used, readers)
	}
}

// TestSocketDrops: datagrams the kernel drops on a reading socket,
// its queue full, are counted.
func TestSocketDrops(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("no SO_MEMINFO on", runtime.GOOS)
	}
	c := newGroupConn(t)
	if d := c.socketDrops(); d != 0 {
		t.Fatalf("%d drops on a new socket", d)
	}
	if err := c.SetReadBuffer(4096); err != nil { // the kernel's minimum, about two datagrams
		t.Fatal(err)
	}
	peer := loopbackUDP(t)
	p := make([]byte, 1200)
	for range 50 {
		if _, err := peer.WriteToUDP(p, c.LocalAddr().(*net.UDPAddr)); err != nil {
			t.Fatal(err)
		}
	}
	if d := c.socketDrops(); d < 40 {
		t.Fatalf("%d drops counted of 50 datagrams sent to a full queue", d)
	}
}

// TestSpillDrops: what the readers leave to pion's mux while its
// buffer is full is dropped and counted, and reading goes on.
func TestSpillDrops(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("one reader on", runtime.GOOS)
	}
	c := newGroupConn(t)
	if err := c.openReaders(2); err != nil {
		t.Fatal(err)
	}
	c.spill.SetLimitSize(30) // one 21-byte datagram, framed
	peer := loopbackUDP(t)
	for i := range 20 {
		if _, err := peer.WriteToUDP([]byte{0, 1, byte(i)}, c.LocalAddr().(*net.UDPAddr)); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for c.socketDrops() < 19 {
		if time.Now().After(deadline) {
			t.Fatalf("%d of 20 datagrams counted dropped, want 19", c.socketDrops())
		}
		time.Sleep(10 * time.Millisecond)
	}
	buf := make([]byte, 100)
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, _, err := c.ReadFromAddrPort(buf); err != nil || n != 3 || buf[2] != 0 {
		t.Fatalf("read %v %v, want the first datagram", buf[:n], err)
	}
	if _, err := peer.WriteToUDP([]byte{0, 1, 99}, c.LocalAddr().(*net.UDPAddr)); err != nil {
		t.Fatal(err)
	}
	if n, _, err := c.ReadFromAddrPort(buf); err != nil || n != 3 || buf[2] != 99 {
		t.Fatalf("read %v %v after the drops, want the next datagram", buf[:n], err)
	}
}

// newGroupConn is the SFU's batchConn on a loopback socket of its own
// SO_REUSEPORT group (listenUDP), closed when the test ends.
func newGroupConn(t *testing.T) *batchConn {
	t.Helper()
	pc, err := listenUDP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := newBatchConn(pc.(*net.UDPConn))
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// loopbackUDP is a UDP socket on 127.0.0.1, closed when the test ends.
func loopbackUDP(tb testing.TB) *net.UDPConn {
	tb.Helper()
	uc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = uc.Close() })
	return uc
}

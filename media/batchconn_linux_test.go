package media

import (
	"testing"

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

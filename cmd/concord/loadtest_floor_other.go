//go:build !linux

package main

import (
	"errors"
	"net"
	"net/netip"
)

// The floor's relay reads and writes with recvmmsg and sendmmsg, as the
// server's readers do on Linux; elsewhere there is none.
type floorRelay struct{ floorCounts }

const floorRelayOK = false

func newFloorRelay(*net.UDPConn, map[netip.AddrPort][]netip.AddrPort) (*floorRelay, error) {
	return nil, errors.New("the floor's relay runs on Linux only")
}

func (*floorRelay) run() error { return nil }

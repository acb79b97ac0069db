//go:build !linux

package main

import "net/netip"

// ltReader batches reads on Linux; elsewhere an own path's socket is
// read one datagram at a time through Go's poller.
type ltReader struct{}

func newLtReader(*ltConn) *ltReader { return nil }

func (*ltReader) readFrom([]byte) (int, netip.AddrPort, error) { panic("no ltReader here") }

package main

import (
	"net"
	"time"
)

// Machines of the same kind differ: the sessions that measured Concord
// met some whose kernel took twice as long to pass a datagram as
// others', and the server's CPU per packet moved with it. loopbackCost
// puts a figure on that in every report, so that runs on two machines
// can be told apart from a change in the server.

// calibrationDatagrams is how many datagrams one pass of loopbackOnce
// takes: a tenth of a second or less on the machines measured.
// loopbackCost keeps the cheapest of calibrationPasses, the figure least
// disturbed by whatever else the machine did.
const (
	calibrationDatagrams = 10_000
	calibrationPasses    = 3
)

// loopbackCost is the CPU time, in microseconds, that this process (the
// kernel's work for it included) spends per 1100-byte UDP datagram one
// of its goroutines sends to another over loopback: the machine's cost
// of the system calls and network stack every forwarded packet goes
// through. ok is false where the process's CPU time is not known.
func loopbackCost() (micros float64, ok bool) {
	for range calibrationPasses {
		if us, passed := loopbackOnce(); passed && (!ok || us < micros) {
			micros, ok = us, true
		}
	}
	return micros, ok
}

func loopbackOnce() (micros float64, ok bool) {
	loop := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}
	rx, err := net.ListenUDP("udp4", loop)
	if err != nil {
		return 0, false
	}
	defer rx.Close()
	tx, err := net.ListenUDP("udp4", loop)
	if err != nil {
		return 0, false
	}
	defer tx.Close()

	// Sender and receiver take turns, a round of datagrams each, well
	// within the receiving socket's buffer: the figure is the system
	// calls and the stack's work, not goroutines waking each other.
	const round = 64
	sentRound, readRound := make(chan int), make(chan int)
	done := make(chan int, 1)
	go func() {
		buf := make([]byte, 2048)
		got := 0
		defer func() { done <- got }()
		for n := range sentRound {
			for range n {
				if _, err := rx.Read(buf); err != nil {
					return // a lost datagram: the deadline below
				}
				got++
			}
			readRound <- n
		}
	}()
	to := rx.LocalAddr().(*net.UDPAddr).AddrPort()
	p := make([]byte, 1100)
	start, ok := selfCPUSeconds()
	if ok {
		_ = rx.SetReadDeadline(time.Now().Add(5 * time.Second))
	send:
		for sent := 0; sent < calibrationDatagrams; sent += round {
			for range round {
				if _, err := tx.WriteToUDPAddrPort(p, to); err != nil {
					break send
				}
			}
			sentRound <- round
			<-readRound
		}
	}
	close(sentRound)
	got := <-done
	end, _ := selfCPUSeconds()
	if !ok || got < calibrationDatagrams {
		return 0, false
	}
	return (end - start) * 1e6 / float64(got), true
}

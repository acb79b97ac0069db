package media

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
)

// TestReceptionReport: the report block counts loss across a sequence
// number wrap-around, per interval and in total, and the jitter of
// packets whose transit time changes.
func TestReceptionReport(t *testing.T) {
	start := time.Unix(1000, 0)
	c := &feedbackConn{start: start, fb: NewReceiverFeedback(1)}
	s := &rxStream{ssrc: 7, stats: ReceptionStats{ClockRate: 90000}}
	at := start
	send := func(seq uint16, late time.Duration) {
		at = at.Add(10 * time.Millisecond)
		s.hdr = rtp.Header{SequenceNumber: seq, Timestamp: uint32(at.Sub(start).Seconds() * 90000)}
		c.record(s, &s.hdr, at.Add(late))
	}
	// 65530 ... 9 with 65533, 2 and 3 missing: 16 expected, 13 received.
	for seq := uint16(65530); seq != 10; seq++ {
		if seq == 65533 || seq == 2 || seq == 3 {
			at = at.Add(10 * time.Millisecond)
			continue
		}
		send(seq, 0)
	}
	r := s.stats.Report(s.ssrc)
	if r.LastSequenceNumber != 1<<16|9 || r.TotalLost != 3 || r.FractionLost != 3*256/16 || r.Jitter != 0 {
		t.Fatalf("first report %+v, want last 1<<16|9, lost 3, fraction 48, jitter 0", r)
	}
	for seq := uint16(10); seq < 20; seq++ {
		send(seq, 0)
	}
	send(20, 10*time.Millisecond) // 900 ticks late: jitter 900/16
	r = s.stats.Report(s.ssrc)
	if r.TotalLost != 3 || r.FractionLost != 0 || r.LastSequenceNumber != 1<<16|20 {
		t.Fatalf("second report %+v, want lost 3 in total and none in the interval", r)
	}
	if r.Jitter < 55 || r.Jitter > 57 {
		t.Fatalf("jitter %d, want 56", r.Jitter)
	}
	// A late, reordered packet counts as received but moves nothing back.
	send(15, 0)
	if r = s.stats.Report(s.ssrc); r.LastSequenceNumber != 1<<16|20 {
		t.Fatalf("a reordered packet moved the highest sequence number to %d", r.LastSequenceNumber)
	}
}

// TestPublisherFeedback: a publisher that stamps transport-wide sequence
// numbers, as browsers do, gets transport-wide feedback about ten times
// a second covering what it sends, and a receiver report for each of
// its streams about once a second, with no loss on a clean link.
func TestPublisherFeedback(t *testing.T) {
	t.Parallel()
	sfu := newTestSFU(t, Params{})
	room := sfu.NewRoom("feedback")
	defer room.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	feedbacks, reported := 0, 0
	reports := map[uint32][]rtcp.ReceptionReport{}
	pub := newTestClient(t, room, "pub", clientOpts{twccSend: true, pubRTCP: func(pkts []rtcp.Packet) {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range pkts {
			switch p := p.(type) {
			case *rtcp.TransportLayerCC:
				feedbacks++
				reported += int(p.PacketStatusCount)
			case *rtcp.ReceiverReport:
				for _, r := range p.Reports {
					reports[r.SSRC] = append(reports[r.SSRC], r)
				}
			}
		}
	}})
	a, v := pub.publish(ctx, true, true, 30)
	waitFor(t, 10*time.Second, "media at the SFU", func() bool { return a.count() > 0 && v.count() > 0 })
	time.Sleep(2500 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	// Each feedback reports the packets since the previous one; some
	// arrive on both RTCP readers (audio's and video's), so count loosely.
	sent := int(a.count() + v.count())
	t.Logf("%d feedback packets reporting %d packets (%d sent); reports %v", feedbacks, reported, sent, reports)
	if feedbacks < 10 {
		t.Fatalf("%d transport-wide feedback packets in 2.5 s, want about 25", feedbacks)
	}
	if reported < sent/2 {
		t.Fatalf("the feedback covers %d packets of %d sent", reported, sent)
	}
	// The published streams' SSRCs. Reports for any other stream are of
	// retransmissions (RTX), which exist only when the SFU had to NACK:
	// then the link was not clean, as on a loaded machine, and loss is
	// allowed.
	media := map[uint32]bool{}
	for _, s := range pub.pub.GetSenders() {
		for _, e := range s.GetParameters().Encodings {
			media[uint32(e.SSRC)] = true
		}
	}
	clean := true
	for ssrc := range reports {
		if !media[ssrc] {
			clean = false
		}
	}
	for ssrc := range media {
		if len(reports[ssrc]) == 0 {
			t.Fatalf("no receiver report for published stream %d (reports for %d streams)", ssrc, len(reports))
		}
	}
	if len(media) != 2 {
		t.Fatalf("%d published streams, want audio and video", len(media))
	}
	for ssrc, rs := range reports {
		if !media[ssrc] {
			continue
		}
		if len(rs) < 2 {
			t.Fatalf("stream %d: %d receiver reports in 2.5 s", ssrc, len(rs))
		}
		last := rs[len(rs)-1]
		if clean && (last.TotalLost != 0 || last.FractionLost != 0) {
			t.Fatalf("stream %d: loss reported on a clean link: %+v", ssrc, last)
		}
		if last.LastSequenceNumber == rs[0].LastSequenceNumber {
			t.Fatalf("stream %d: the highest sequence number did not move", ssrc)
		}
	}
}

// TestFeedbackAllocs: recording a received packet allocates nothing
// (pion's interceptors allocated attributes and a header per packet).
func TestFeedbackAllocs(t *testing.T) {
	c := &feedbackConn{factory: newFeedbackFactory(nil), start: time.Now(), fb: NewReceiverFeedback(1)}
	defer c.Close()
	info := &interceptor.StreamInfo{SSRC: 5, ClockRate: 90000,
		RTPHeaderExtensions: []interceptor.RTPHeaderExtension{{URI: sdp.TransportCCURI, ID: 3}}}
	var seq uint16
	pkt := &rtp.Packet{Header: rtp.Header{Version: 2, SSRC: 5}, Payload: make([]byte, 1000)}
	if err := pkt.Header.SetExtension(3, []byte{0, 0}); err != nil {
		t.Fatal(err)
	}
	raw := make([]byte, 1500)
	var ext [2]byte
	src := interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		seq++
		pkt.SequenceNumber = seq
		ext[0], ext[1] = byte(seq>>8), byte(seq)
		if err := pkt.Header.SetExtension(3, ext[:]); err != nil {
			return 0, a, err
		}
		n, err := pkt.MarshalTo(b)
		return n, a, err
	})
	r := c.BindRemoteStream(info, src)
	for range 1000 { // let the recorder's buffers grow
		_, _, _ = r.Read(raw, nil)
	}
	if allocs := testing.AllocsPerRun(1000, func() { _, _, _ = r.Read(raw, nil) }); allocs != 0 {
		t.Fatalf("recording a packet allocated %v times", allocs)
	}
}

// TestFeedbackWriteBlocksNoOne: a publisher over TCP whose RTCP write
// hangs (its phone stopped reading) does not hold up the feedback of the
// publishers over UDP, nor the shared socket, and gets only one write in
// flight at a time.
func TestFeedbackWriteBlocksNoOne(t *testing.T) {
	f := newFeedbackFactory(nil)
	var mu sync.Mutex
	writes := map[string]int{}
	gate := make(chan struct{})
	bind := func(id string, block bool) *feedbackConn {
		i, _ := f.NewInterceptor(id)
		c := i.(*feedbackConn)
		c.BindRTCPWriter(interceptor.RTCPWriterFunc(func(pkts []rtcp.Packet, _ interceptor.Attributes) (int, error) {
			mu.Lock()
			writes[id]++
			mu.Unlock()
			if block {
				<-gate
			}
			return 0, nil
		}))
		info := &interceptor.StreamInfo{SSRC: 9, ClockRate: 90000,
			RTPHeaderExtensions: []interceptor.RTPHeaderExtension{{URI: sdp.TransportCCURI, ID: 3}}}
		var seq uint16
		r := c.BindRemoteStream(info, interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
			seq++
			p := &rtp.Packet{Header: rtp.Header{Version: 2, SSRC: 9, SequenceNumber: seq}, Payload: []byte{1}}
			_ = p.Header.SetExtension(3, []byte{byte(seq >> 8), byte(seq)})
			n, err := p.MarshalTo(b)
			return n, a, err
		}))
		go func() { // a packet every 20 ms, so there is always feedback
			buf := make([]byte, 1500)
			for range 50 {
				_, _, _ = r.Read(buf, nil)
				time.Sleep(20 * time.Millisecond)
			}
		}()
		return c
	}
	tcp := bind("tcp", true)
	udp := bind("udp", false)
	f.setUDP("udp", true)
	defer tcp.Close()
	defer udp.Close()
	time.Sleep(10 * feedbackInterval)
	// Counted while the write still hangs: once it returns, the next
	// interval may rightly start another (CI saw 2 counted after it).
	mu.Lock()
	tcpWrites, udpWrites := writes["tcp"], writes["udp"]
	mu.Unlock()
	close(gate)
	if tcpWrites != 1 {
		t.Fatalf("%d writes to the stalled connection, want the one in flight", tcpWrites)
	}
	if udpWrites < 7 {
		t.Fatalf("the UDP connection got %d feedback writes in 10 intervals while the other was stalled", udpWrites)
	}
}

// byIDForTest returns the feedback interceptor of PeerConnection id.
func (f *feedbackFactory) byIDForTest(id string) *feedbackConn {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.byID[id]
}

// receivedForTest is the number of packets recorded for stream ssrc.
func (c *feedbackConn) receivedForTest(ssrc uint32) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.streams {
		if s.ssrc == ssrc {
			return int(s.stats.Received())
		}
	}
	return -1
}

// TestReceiverReportsSplit: blocks beyond the 31 one receiver report
// holds go in further reports, in order, each of the same sender.
func TestReceiverReportsSplit(t *testing.T) {
	blocks := make([]rtcp.ReceptionReport, 70)
	for i := range blocks {
		blocks[i].SSRC = uint32(i)
	}
	pkts := ReceiverReports([]rtcp.Packet{&rtcp.PictureLossIndication{}}, 9, blocks)
	if len(pkts) != 4 {
		t.Fatalf("%d packets, want the one given and 3 reports", len(pkts))
	}
	next := uint32(0)
	for i, want := range []int{31, 31, 8} {
		rr, ok := pkts[i+1].(*rtcp.ReceiverReport)
		if !ok || rr.SSRC != 9 || len(rr.Reports) != want {
			t.Fatalf("packet %d: %+v, want a report of sender 9 with %d blocks", i+1, pkts[i+1], want)
		}
		for _, b := range rr.Reports {
			if b.SSRC != next {
				t.Fatalf("block for %d where %d was next", b.SSRC, next)
			}
			next++
		}
	}
	if got := ReceiverReports(nil, 9, nil); len(got) != 0 {
		t.Errorf("no blocks gave %v", got)
	}
}

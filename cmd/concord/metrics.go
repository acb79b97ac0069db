package main

import (
	"errors"
	"time"

	"github.com/concord-odr/concord/cases"
	"github.com/concord-odr/concord/media"
	"github.com/prometheus/client_golang/prometheus"
)

// storeLatency returns the observer that records every case-store
// transaction's duration in reg, by operation and result (ok, or the
// case error code such as ECONFLICT, or "error").
func storeLatency(reg prometheus.Registerer) cases.StoreObserver {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "concord", Subsystem: "case_store", Name: "transaction_seconds",
		Help:    "Duration of case-store transactions, by operation (update, view) and result.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	}, []string{"op", "result"})
	reg.MustRegister(h)
	return func(op string, took time.Duration, err error) {
		h.WithLabelValues(op, storeResult(err)).Observe(took.Seconds())
	}
}

// storeResult keeps the result label's values few: ok, a case error code
// or "error".
func storeResult(err error) string {
	if err == nil {
		return "ok"
	}
	var ce *cases.Error
	if errors.As(err, &ce) && ce.Code != "" {
		return ce.Code
	}
	return "error"
}

// mediaCollector exports the SFU's counters (media.Stats) as the
// concord_media_* metrics. It is a custom collector rather than a set of
// prometheus counters the SFU would increment: the SFU keeps its counters
// per track, off any shared cache line, and a scrape sums them once,
// calling SFU.Stats a single time per Collect.
type mediaCollector struct {
	stats func() media.Stats

	rooms, peers, tracks          *prometheus.Desc
	packets, bytes, retransmitted *prometheus.Desc
	nacks, plis, dropped          *prometheus.Desc
	receiveDropped, forwardDelay  *prometheus.Desc
	bwPaused, bwPauses            *prometheus.Desc
}

// newMediaCollector returns the collector of stats, usually an SFU's
// Stats method.
func newMediaCollector(stats func() media.Stats) *mediaCollector {
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName("concord", "media", name), help, labels, nil)
	}
	return &mediaCollector{
		stats:         stats,
		rooms:         desc("rooms", "Media rooms open on this node."),
		peers:         desc("peers", "Participants connected to a media room on this node."),
		tracks:        desc("tracks", "Tracks published to the SFU, and subscribers' copies of them being forwarded (paused ones excluded).", "direction"),
		packets:       desc("packets_total", "Media packets received from publishers (in) and written to subscribers (out, retransmissions excluded).", "direction"),
		bytes:         desc("bytes_total", "RTP payload bytes received from publishers (in) and written to subscribers (out).", "direction"),
		retransmitted: desc("retransmitted_packets_total", "Packets sent to subscribers again, answering their NACKs."),
		nacks:         desc("nacks_total", "Sequence numbers reported lost: by subscribers to the SFU, and by the SFU to publishers.", "direction"),
		plis:          desc("plis_total", "Keyframe requests: PLIs and FIRs from subscribers, and the (throttled) PLIs the SFU sent publishers.", "direction"),
		bwPaused:      desc("bandwidth_paused_tracks", "Subscribers' video tracks held back now because the subscriber's estimated bandwidth cannot carry them (audio goes on)."),
		bwPauses:      desc("bandwidth_pauses_total", "Times a subscriber's video track was paused because its estimated bandwidth could not carry it."),
		dropped:       desc("dropped_packets_total", "Packets not forwarded or not retransmitted to a subscriber, by reason.", "reason"),
		receiveDropped: desc("received_dropped_packets_total",
			"Packets received and dropped before any track saw them: behind (the node is not keeping up: the kernel dropped datagrams on a full media socket, or a session's buffer was full), not_authentic (SRTP authentication failed, or a replay).", "reason"),
		forwardDelay: desc("forward_delay_seconds",
			"Time from a datagram's arrival at the media socket (the kernel's timestamp) until the SFU had handled it and sent what it forwards: the node's own share of the forwarding latency, its time queued in the socket included (Linux)."),
	}
}

// registerMediaMetrics registers the concord_media_* metrics of sfu in reg.
func registerMediaMetrics(reg prometheus.Registerer, sfu *media.SFU) {
	reg.MustRegister(newMediaCollector(sfu.Stats))
}

func (c *mediaCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.rooms, c.peers, c.tracks, c.packets, c.bytes, c.retransmitted, c.nacks, c.plis, c.bwPaused, c.bwPauses, c.dropped, c.receiveDropped, c.forwardDelay} {
		ch <- d
	}
}

func (c *mediaCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.stats()
	gauge := func(d *prometheus.Desc, v int, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(c.rooms, st.Rooms)
	gauge(c.peers, st.Peers)
	gauge(c.tracks, st.PublishedTracks, "published")
	gauge(c.tracks, st.ForwardedTracks, "forwarded")
	counter(c.packets, st.PacketsIn, "in")
	counter(c.packets, st.PacketsOut, "out")
	counter(c.bytes, st.BytesIn, "in")
	counter(c.bytes, st.BytesOut, "out")
	counter(c.retransmitted, st.Retransmitted)
	counter(c.nacks, st.NACKsIn, "from_subscribers")
	counter(c.nacks, st.NACKsOut, "to_publishers")
	counter(c.plis, st.PLIsIn, "from_subscribers")
	counter(c.plis, st.KeyframeRequests, "to_publishers")
	gauge(c.bwPaused, st.BandwidthPaused)
	counter(c.bwPauses, st.BandwidthPauses)
	st.Dropped.Each(func(reason string, n uint64) {
		counter(c.dropped, n, reason)
	})
	st.ReceiveDropped.Each(func(reason string, n uint64) {
		counter(c.receiveDropped, n, reason)
	})
	buckets := make(map[float64]uint64, len(media.DelayBounds))
	var cumulative uint64
	for i, b := range media.DelayBounds {
		cumulative += st.ForwardDelay.Counts[i]
		buckets[b.Seconds()] = cumulative
	}
	ch <- prometheus.MustNewConstHistogram(c.forwardDelay, st.ForwardDelay.Count(), st.ForwardDelay.Sum.Seconds(), buckets)
}

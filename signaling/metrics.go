package signaling

import "github.com/prometheus/client_golang/prometheus"

// Metrics counts what the signaling layer sees. A nil *Metrics counts
// nothing.
type Metrics struct {
	messages     *prometheus.CounterVec
	errors       *prometheus.CounterVec
	rooms        prometheus.Gauge
	participants prometheus.Gauge
	joins        *prometheus.CounterVec
	relays       prometheus.Gauge
}

// NewMetrics registers the signaling metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "concord", Subsystem: "signaling", Name: "messages_total",
			Help: "Signaling messages received, by type (unknown types count as bad).",
		}, []string{"type"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "concord", Subsystem: "signaling", Name: "errors_total",
			Help: "Error messages sent to clients, by code.",
		}, []string{"code"}),
		rooms: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "concord", Name: "rooms", Help: "Open rooms on this node.",
		}),
		participants: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "concord", Name: "participants", Help: "Connected participants on this node.",
		}),
		joins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "concord", Subsystem: "signaling", Name: "joins_total",
			Help: "Join attempts, by result (ok, resumed, refused; with several nodes, relayed and relay_failed).",
		}, []string{"result"}),
		relays: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "concord", Subsystem: "signaling", Name: "relays",
			Help: "Sockets this node relays to the node running their room (several nodes).",
		}),
	}
	reg.MustRegister(m.messages, m.errors, m.rooms, m.participants, m.joins, m.relays)
	return m
}

// knownTypes bounds the type label's values.
var knownTypes = map[string]bool{
	TypeJoin: true, TypeOffer: true, TypeAnswer: true, TypeCandidate: true, TypeLeave: true,
	TypeConsent: true, TypeAdmit: true, TypeAdmitAll: true, TypeRemove: true, TypeCheckIdentity: true,
	TypeIdentityChecked: true, TypeSetMode: true, TypeLetIntoCaucus: true, TypeAttachInterpreter: true,
	TypeMute: true, TypeUnmute: true, TypeAskUnmute: true, TypeLock: true, TypeChat: true, TypeNote: true, TypeRestartICE: true, TypeVideoQuality: true,
}

func (m *Metrics) message(typ string) {
	if m == nil {
		return
	}
	if !knownTypes[typ] {
		typ = "bad"
	}
	m.messages.WithLabelValues(typ).Inc()
}

func (m *Metrics) error(code string) {
	if m != nil {
		m.errors.WithLabelValues(code).Inc()
	}
}

func (m *Metrics) join(result string) {
	if m != nil {
		m.joins.WithLabelValues(result).Inc()
	}
}

func (m *Metrics) roomsDelta(d float64) {
	if m != nil {
		m.rooms.Add(d)
	}
}

func (m *Metrics) participantsDelta(d float64) {
	if m != nil {
		m.participants.Add(d)
	}
}

func (m *Metrics) relaysDelta(d float64) {
	if m != nil {
		m.relays.Add(d)
	}
}

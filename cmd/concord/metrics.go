package main

import (
	"errors"
	"time"

	"github.com/concord-odr/concord/cases"
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

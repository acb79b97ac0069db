package cases

import (
	"context"
	"time"
)

// StoreObserver is told how long each transaction of a Store took: op is
// "update" or "view", err what the transaction returned.
type StoreObserver func(op string, took time.Duration, err error)

// ObservedStore wraps s so that observe sees every transaction's
// duration, for the case-store latency metrics. It changes nothing else:
// fn receives s's own Tx.
func ObservedStore(s Store, observe StoreObserver) Store {
	if observe == nil {
		return s
	}
	return observedStore{s: s, observe: observe}
}

type observedStore struct {
	s       Store
	observe StoreObserver
}

func (o observedStore) Update(ctx context.Context, fn func(Tx) error) error {
	start := time.Now()
	err := o.s.Update(ctx, fn)
	o.observe("update", time.Since(start), err)
	return err
}

func (o observedStore) View(ctx context.Context, fn func(Tx) error) error {
	start := time.Now()
	err := o.s.View(ctx, fn)
	o.observe("view", time.Since(start), err)
	return err
}

func (o observedStore) Close() error { return o.s.Close() }

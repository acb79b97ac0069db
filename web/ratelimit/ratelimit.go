// Package ratelimit counts attempts per key in fixed time windows and
// says when a key has had its share: in process by default (Memory), in
// Redis when several server nodes must share the counts (Redis).
package ratelimit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"time"
)

// Rule is one limit: at most Limit attempts per key in each Window.
type Rule struct {
	// Name keeps the counts of different rules apart ("login-ip").
	Name   string
	Limit  int
	Window time.Duration
}

// Decision is the answer for one attempt.
type Decision struct {
	Allowed bool
	// Remaining is how many more attempts the window allows.
	Remaining int
	// RetryAfter is how long until the window ends; set when refused.
	RetryAfter time.Duration
}

// Limiter counts an attempt under a rule and decides on it.
type Limiter interface {
	Allow(ctx context.Context, rule Rule, key string) (Decision, error)
}

// hashKey bounds the size of keys built from client input (an address, a
// login name) and keeps them out of Redis in clear.
func hashKey(rule, key string) string {
	sum := sha256.Sum256([]byte(key))
	return rule + ":" + hex.EncodeToString(sum[:16])
}

// decide turns a window's count and remaining time into a Decision.
func decide(rule Rule, count int, left time.Duration) Decision {
	if left <= 0 {
		left = rule.Window
	}
	if count > rule.Limit {
		return Decision{Allowed: false, RetryAfter: left}
	}
	return Decision{Allowed: true, Remaining: rule.Limit - count}
}

// maxKeys is the most windows Memory keeps. When it is full of windows
// that have not ended, new keys are refused until some end: under a flood
// of distinct keys the limiter fails closed rather than growing.
const maxKeys = 200_000

// Memory is an in-process Limiter. Its zero value is not usable; call
// NewMemory.
type Memory struct {
	now func() time.Time

	mu        sync.Mutex
	windows   map[string]window
	lastSweep time.Time
}

type window struct {
	end   time.Time
	count int
}

var _ Limiter = (*Memory)(nil)

// NewMemory returns an in-process limiter; now may be nil.
func NewMemory(now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	return &Memory{now: now, windows: map[string]window{}}
}

// Allow counts one attempt of key under rule.
func (m *Memory) Allow(_ context.Context, rule Rule, key string) (Decision, error) {
	k := hashKey(rule.Name, key)
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if now.Sub(m.lastSweep) > time.Minute || len(m.windows) >= maxKeys {
		m.sweepLocked(now)
	}
	w, ok := m.windows[k]
	if !ok || !now.Before(w.end) {
		if len(m.windows) >= maxKeys {
			return Decision{RetryAfter: rule.Window}, nil
		}
		w = window{end: now.Add(rule.Window)}
	}
	w.count++
	m.windows[k] = w
	return decide(rule, w.count, w.end.Sub(now)), nil
}

// sweepLocked forgets the windows that have ended.
func (m *Memory) sweepLocked(now time.Time) {
	for k, w := range m.windows {
		if !now.Before(w.end) {
			delete(m.windows, k)
		}
	}
	m.lastSweep = now
}

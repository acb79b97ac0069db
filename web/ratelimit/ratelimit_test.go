package ratelimit

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/concord-odr/concord/signaling/cluster/redistest"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// checkLimiter runs the behaviour every Limiter shares. advance moves
// the limiter's time on (or waits for it).
func checkLimiter(t *testing.T, l Limiter, rule Rule, advance func(time.Duration)) {
	t.Helper()
	ctx := t.Context()
	for i := range rule.Limit {
		d, err := l.Allow(ctx, rule, "10.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		if !d.Allowed || d.Remaining != rule.Limit-i-1 {
			t.Fatalf("attempt %d: %+v", i+1, d)
		}
	}
	d, err := l.Allow(ctx, rule, "10.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if d.Allowed || d.RetryAfter <= 0 || d.RetryAfter > rule.Window {
		t.Fatalf("attempt over the limit: %+v", d)
	}
	// Another key and another rule count apart.
	if d, _ := l.Allow(ctx, rule, "10.0.0.2"); !d.Allowed {
		t.Fatalf("another key refused: %+v", d)
	}
	other := rule
	other.Name += "-other"
	if d, _ := l.Allow(ctx, other, "10.0.0.1"); !d.Allowed {
		t.Fatalf("another rule refused: %+v", d)
	}
	// A new window allows again.
	advance(rule.Window + 50*time.Millisecond)
	if d, _ := l.Allow(ctx, rule, "10.0.0.1"); !d.Allowed {
		t.Fatalf("new window refused: %+v", d)
	}
}

func TestMemory(t *testing.T) {
	c := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	m := NewMemory(c.Now)
	checkLimiter(t, m, Rule{Name: "login-ip", Limit: 3, Window: time.Minute}, c.Add)
}

func TestMemorySweeps(t *testing.T) {
	c := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	m := NewMemory(c.Now)
	rule := Rule{Name: "r", Limit: 1, Window: time.Second}
	for i := range 100 {
		_, _ = m.Allow(t.Context(), rule, fmt.Sprint(i))
	}
	c.Add(2 * time.Minute)
	_, _ = m.Allow(t.Context(), rule, "x")
	m.mu.Lock()
	n := len(m.windows)
	m.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d windows kept after they ended", n)
	}
}

// FuzzMemoryKeys: any key is counted, and the limit holds for it.
func FuzzMemoryKeys(f *testing.F) {
	for _, s := range []string{"", "10.0.0.1", "\x00", "alice@example.com", "2001:db8::/64"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		m := NewMemory(nil)
		rule := Rule{Name: "f", Limit: 2, Window: time.Hour}
		for i := range 3 {
			d, err := m.Allow(context.Background(), rule, key)
			if err != nil || d.Allowed != (i < 2) {
				t.Fatalf("attempt %d: %+v %v", i, d, err)
			}
		}
	})
}

func TestRedis(t *testing.T) {
	c := redistest.Client(t)
	l := NewRedis(RedisParams{Client: c, Prefix: redistest.Prefix(t, c)})
	rule := Rule{Name: "login-ip", Limit: 3, Window: 300 * time.Millisecond}
	checkLimiter(t, strict{l}, rule, time.Sleep)
}

// TestRedisShared: two limiters (two nodes) on one Redis share the count.
func TestRedisShared(t *testing.T) {
	c := redistest.Client(t)
	prefix := redistest.Prefix(t, c)
	a := NewRedis(RedisParams{Client: c, Prefix: prefix})
	b := NewRedis(RedisParams{Client: c, Prefix: prefix})
	rule := Rule{Name: "exchange-code", Limit: 4, Window: time.Minute}
	allowed := 0
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 10 {
		l := a
		if i%2 == 1 {
			l = b
		}
		wg.Go(func() {
			d, err := l.AllowStrict(t.Context(), rule, "code-1")
			if err != nil {
				t.Error(err)
				return
			}
			if d.Allowed {
				mu.Lock()
				allowed++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if allowed != 4 {
		t.Fatalf("%d attempts allowed across two nodes, want 4", allowed)
	}
	ttl, err := c.PTTL(t.Context(), prefix+hashKey(rule.Name, "code-1")).Result()
	if err != nil || ttl <= 0 || ttl > time.Minute {
		t.Fatalf("window key TTL = %v, %v", ttl, err)
	}
}

// TestRedisDownFallsBack: with Redis unreachable the limits still hold,
// counted in process.
func TestRedisDownFallsBack(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer c.Close()
	l := NewRedis(RedisParams{Client: c, Prefix: "x:"})
	if _, err := l.AllowStrict(t.Context(), Rule{Name: "r", Limit: 1, Window: time.Minute}, "k"); err == nil {
		t.Fatal("AllowStrict with Redis down did not fail")
	}
	rule := Rule{Name: "r", Limit: 2, Window: time.Minute}
	for i := range 3 {
		d, err := l.Allow(t.Context(), rule, "k")
		if err != nil || d.Allowed != (i < 2) {
			t.Fatalf("attempt %d with Redis down: %+v %v", i, d, err)
		}
	}
}

// strict makes the Redis limiter's errors visible to checkLimiter.
type strict struct{ r *Redis }

func (s strict) Allow(ctx context.Context, rule Rule, key string) (Decision, error) {
	return s.r.AllowStrict(ctx, rule, key)
}

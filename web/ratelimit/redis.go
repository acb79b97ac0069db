package ratelimit

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// allowScript counts one attempt in the window of KEYS[1], starting a
// window of ARGV[1] milliseconds on the first, and returns the count and
// the milliseconds left in the window.
var allowScript = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if n == 1 or ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
`)

// RedisParams configures a Redis limiter.
type RedisParams struct {
	Client redis.UniversalClient
	// Prefix starts every key the limiter writes ("concord:rl:").
	Prefix string
	Logger *slog.Logger
	// Timeout bounds one round trip; 0 means 500ms.
	Timeout time.Duration
	// Now is the clock of the in-process fallback; nil means time.Now.
	Now func() time.Time
}

// Redis is a Limiter whose counts live in Redis, shared by every node.
// When Redis does not answer it falls back to counting in process, so
// that an outage neither locks everyone out nor lifts the limits.
type Redis struct {
	p        RedisParams
	log      *slog.Logger
	fallback *Memory

	mu         sync.Mutex
	lastWarned time.Time
}

var _ Limiter = (*Redis)(nil)

// NewRedis returns a Redis limiter.
func NewRedis(p RedisParams) *Redis {
	if p.Logger == nil {
		p.Logger = slog.New(slog.DiscardHandler)
	}
	if p.Timeout <= 0 {
		p.Timeout = 500 * time.Millisecond
	}
	if p.Prefix == "" {
		p.Prefix = "concord:rl:"
	}
	return &Redis{p: p, log: p.Logger, fallback: NewMemory(p.Now)}
}

// Allow counts one attempt of key under rule in Redis.
func (r *Redis) Allow(ctx context.Context, rule Rule, key string) (Decision, error) {
	d, err := r.allow(ctx, rule, key)
	if err == nil {
		return d, nil
	}
	if ctx.Err() != nil {
		return Decision{}, ctx.Err()
	}
	r.warn(err)
	return r.fallback.Allow(ctx, rule, key)
}

// AllowStrict is Allow without the fallback: a Redis error is returned.
func (r *Redis) AllowStrict(ctx context.Context, rule Rule, key string) (Decision, error) {
	return r.allow(ctx, rule, key)
}

func (r *Redis) allow(ctx context.Context, rule Rule, key string) (Decision, error) {
	ctx, cancel := context.WithTimeout(ctx, r.p.Timeout)
	defer cancel()
	ms := rule.Window.Milliseconds()
	if ms < 1 {
		ms = 1
	}
	res, err := allowScript.Run(ctx, r.p.Client, []string{r.p.Prefix + hashKey(rule.Name, key)}, ms).Int64Slice()
	if err != nil {
		return Decision{}, fmt.Errorf("ratelimit: redis: %w", err)
	}
	if len(res) != 2 {
		return Decision{}, fmt.Errorf("ratelimit: redis: unexpected answer %v", res)
	}
	return decide(rule, int(res[0]), time.Duration(res[1])*time.Millisecond), nil
}

// warn logs a Redis failure at most once a minute.
func (r *Redis) warn(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.lastWarned) < time.Minute {
		return
	}
	r.lastWarned = time.Now()
	r.log.Warn("rate limits counted in process: Redis did not answer", "err", err)
}

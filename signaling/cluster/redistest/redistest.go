// Package redistest gives tests the test Redis: CONCORD_TEST_REDIS_URL, or
// redis://127.0.0.1:6379/0. An unreachable Redis skips the test, except
// with CI set, where it fails.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// URL returns the test Redis's URL once it answers.
func URL(t testing.TB) string {
	t.Helper()
	url, c := connect(t)
	_ = c.Close()
	return url
}

// Client returns a client of the test Redis, closed when the test ends.
func Client(t testing.TB) *redis.Client {
	t.Helper()
	_, c := connect(t)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func connect(t testing.TB) (string, *redis.Client) {
	t.Helper()
	url := os.Getenv("CONCORD_TEST_REDIS_URL")
	if url == "" {
		url = "redis://127.0.0.1:6379/0"
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("CONCORD_TEST_REDIS_URL: %v", err)
	}
	c := redis.NewClient(opt)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		_ = c.Close()
		if os.Getenv("CI") != "" {
			t.Fatalf("Redis unreachable in CI: %v", err)
		}
		t.Skipf("Redis unreachable (set CONCORD_TEST_REDIS_URL): %v", err)
	}
	return url, c
}

// Prefix returns a key prefix of the test's own, whose keys are deleted
// when the test ends.
func Prefix(t testing.TB, c *redis.Client) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix := "concord-test:" + hex.EncodeToString(b[:]) + ":"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if keys, _ := c.Keys(ctx, prefix+"*").Result(); len(keys) > 0 {
			_ = c.Del(ctx, keys...).Err()
		}
	})
	return prefix
}

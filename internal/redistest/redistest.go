// Package redistest gives tests the real Redis of the machine: TEST_REDIS_URL, default
// redis://127.0.0.1:6379/0. Redis is required (.ci/run starts it): a test that asks for it fails,
// naming the URL, when nothing answers there.
//
// Tests share that Redis, so each one works under a key prefix of its own (Prefix) and deletes
// only the keys under it when it ends.
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

// DefaultURL is the Redis tests use when TEST_REDIS_URL is unset.
const DefaultURL = "redis://127.0.0.1:6379/0"

// URL returns the test Redis's URL after checking that it answers; it fails the test otherwise.
func URL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("TEST_REDIS_URL")
	if u == "" {
		u = DefaultURL
	}
	c := client(t, u)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("redistest: Redis at %s does not answer (start it, or set TEST_REDIS_URL): %v", u, err)
	}
	return u
}

// Client returns a client of the test Redis, closed when the test ends.
func Client(t testing.TB) *redis.Client {
	t.Helper()
	return client(t, URL(t))
}

// Prefix returns a key prefix unique to this test; every key containing it is deleted when the
// test ends (the rate limiter's store puts its own "rate:" in front).
func Prefix(t testing.TB) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix := "lmtest:" + hex.EncodeToString(b[:]) + ":"
	DeleteAtCleanup(t, prefix)
	return prefix
}

// DeleteAtCleanup deletes every key containing part when the test ends: for tests whose keys are
// not under a Prefix of their own but unique anyway (they contain a user id of the test).
func DeleteAtCleanup(t testing.TB, part string) {
	t.Helper()
	c := Client(t)
	t.Cleanup(func() {
		ctx := context.Background()
		iter := c.Scan(ctx, 0, "*"+part+"*", 1000).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if len(keys) > 0 {
			_ = c.Del(ctx, keys...).Err()
		}
	})
}

func client(t testing.TB, u string) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(u)
	if err != nil {
		t.Fatalf("redistest: TEST_REDIS_URL %q: %v", u, err)
	}
	c := redis.NewClient(opts)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// DefaultRedisPrefix starts every key the Redis store writes (after redis_rate's own "rate:").
const DefaultRedisPrefix = "leadmarket:ratelimit:"

// Redis timeouts used unless REDIS_URL sets its own (dial_timeout, read_timeout, write_timeout,
// pool_timeout): a slow Redis must not hold requests for go-redis's default seconds.
const (
	redisDialTimeout = time.Second
	redisIOTimeout   = 250 * time.Millisecond
	redisPoolTimeout = 500 * time.Millisecond
)

// redisBackoff is how long the store stops asking Redis after a failure: during an outage,
// callers get ErrUnavailable at once instead of each waiting for a timeout.
const redisBackoff = time.Second

// ErrUnavailable is returned by the Redis store while it backs off after a failure.
var ErrUnavailable = errors.New("ratelimit: redis unavailable")

// Redis is the shared Limiter: every instance on the same Redis (and prefix) enforces one limit.
// It runs go-redis/redis_rate's GCRA script with a burst equal to the rate, one round trip per
// Allow, on Redis's clock.
type Redis struct {
	limiter *redis_rate.Limiter
	prefix  string
	// downUntil is when, in Unix nanoseconds, to ask Redis again after a failure.
	downUntil atomic.Int64
}

// NewRedis returns a Limiter on client whose keys start with prefix (DefaultRedisPrefix when
// empty; tests use their own).
func NewRedis(client *redis.Client, prefix string) *Redis {
	if prefix == "" {
		prefix = DefaultRedisPrefix
	}
	return &Redis{limiter: redis_rate.NewLimiter(client), prefix: prefix}
}

// DialRedis returns a client for rawURL (REDIS_URL: redis://[user:password@]host[:port][/db],
// rediss:// for TLS, unix://path), with short timeouts unless the URL sets them. It does not
// connect until first used.
func DialRedis(rawURL string) (*redis.Client, error) {
	opts, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	u, _ := url.Parse(rawURL) // ParseURL succeeded, so this does too
	q := u.Query()
	if !q.Has("dial_timeout") {
		opts.DialTimeout = redisDialTimeout
	}
	if !q.Has("read_timeout") {
		opts.ReadTimeout = redisIOTimeout
	}
	if !q.Has("write_timeout") {
		opts.WriteTimeout = redisIOTimeout
	}
	if !q.Has("pool_timeout") {
		opts.PoolTimeout = redisPoolTimeout
	}
	if !q.Has("dialer_retries") {
		opts.DialerRetries = 1
	}
	return redis.NewClient(opts), nil
}

// Allow implements Limiter. After a failure it returns ErrUnavailable for redisBackoff without
// asking Redis.
func (r *Redis) Allow(ctx context.Context, key string, limit Limit, n int) (Result, error) {
	if !limit.valid() || n < 1 {
		return Result{}, errInvalidLimit(limit)
	}
	if time.Now().UnixNano() < r.downUntil.Load() {
		return Result{}, ErrUnavailable
	}
	res, err := r.limiter.AllowN(ctx, r.prefix+key, redis_rate.Limit{Rate: limit.Rate, Burst: limit.Rate, Period: limit.Period}, n)
	if err != nil {
		if ctx.Err() == nil {
			r.downUntil.Store(time.Now().Add(redisBackoff).UnixNano())
		}
		return Result{}, err
	}
	out := Result{
		Allowed:   res.Allowed > 0,
		Limit:     limit.Rate,
		Remaining: res.Remaining,
		ResetAt:   time.Now().Add(max(res.ResetAfter, 0)),
	}
	if !out.Allowed {
		out.RetryAfter = max(res.RetryAfter, 0)
	}
	return out, nil
}

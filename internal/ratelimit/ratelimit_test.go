package ratelimit_test

import (
	"context"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/leadmarket/leadmarket/internal/dbtest"
	"github.com/leadmarket/leadmarket/internal/ratelimit"
	"github.com/leadmarket/leadmarket/internal/redistest"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Run(m)) }

// eachStore runs test against both stores: the same behaviour is required of each.
func eachStore(t *testing.T, test func(t *testing.T, l ratelimit.Limiter)) {
	t.Run("memory", func(t *testing.T) {
		t.Parallel()
		test(t, ratelimit.NewMemory(ratelimit.MemoryOptions{}))
	})
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		test(t, ratelimit.NewRedis(redistest.Client(t), redistest.Prefix(t)))
	})
}

func TestLimiter_BurstRefusalAndRefill(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, l ratelimit.Limiter) {
		ctx := context.Background()
		limit := ratelimit.Limit{Rate: 5, Period: 2 * time.Second} // one more every 400 ms
		start := time.Now()
		for i := range 5 {
			res, err := l.Allow(ctx, "k", limit, 1)
			require.NoError(t, err)
			require.True(t, res.Allowed, "call %d is within the burst", i+1)
			require.Equal(t, 5, res.Limit)
			require.Equal(t, 4-i, res.Remaining)
			require.Zero(t, res.RetryAfter)
			require.WithinDuration(t, start.Add(time.Duration(i+1)*400*time.Millisecond), res.ResetAt, 150*time.Millisecond)
		}
		res, err := l.Allow(ctx, "k", limit, 1)
		require.NoError(t, err)
		require.False(t, res.Allowed, "the 6th call in the window is refused")
		require.Zero(t, res.Remaining)
		require.Positive(t, res.RetryAfter)
		require.LessOrEqual(t, res.RetryAfter, 400*time.Millisecond)
		require.WithinDuration(t, start.Add(2*time.Second), res.ResetAt, 150*time.Millisecond)

		// A refused call costs nothing: after RetryAfter exactly one more is allowed.
		time.Sleep(res.RetryAfter + 30*time.Millisecond)
		res, err = l.Allow(ctx, "k", limit, 1)
		require.NoError(t, err)
		require.True(t, res.Allowed, "allowed again after the refill")
		require.Zero(t, res.Remaining)
		res, err = l.Allow(ctx, "k", limit, 1)
		require.NoError(t, err)
		require.False(t, res.Allowed)

		// Another key has a bucket of its own.
		res, err = l.Allow(ctx, "other", limit, 1)
		require.NoError(t, err)
		require.True(t, res.Allowed)
		require.Equal(t, 4, res.Remaining)
	})
}

func TestLimiter_ConcurrentCallersGetExactlyTheLimit(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, l ratelimit.Limiter) {
		var allowed atomic.Int64
		var wg sync.WaitGroup
		for range 40 {
			wg.Go(func() {
				res, err := l.Allow(context.Background(), "shared", ratelimit.PerMinute(10), 1)
				if err == nil && res.Allowed {
					allowed.Add(1)
				}
			})
		}
		wg.Wait()
		require.EqualValues(t, 10, allowed.Load())
	})
}

func TestLimiter_RefusesInvalidLimits(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, l ratelimit.Limiter) {
		_, err := l.Allow(context.Background(), "k", ratelimit.Limit{Rate: 0, Period: time.Minute}, 1)
		require.Error(t, err)
	})
}

// fakeClock is a settable clock for the memory store.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *fakeClock) Advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

func TestMemory_GCRAArithmetic(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{now: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}
	m := ratelimit.NewMemory(ratelimit.MemoryOptions{Now: clock.Now})
	ctx := context.Background()
	limit := ratelimit.PerMinute(10)
	for i := range 10 {
		res, err := m.Allow(ctx, "k", limit, 1)
		require.NoError(t, err)
		require.True(t, res.Allowed)
		require.Equal(t, 9-i, res.Remaining)
		require.Equal(t, clock.Now().Add(time.Duration(i+1)*6*time.Second), res.ResetAt)
	}
	clock.Advance(2 * time.Second)
	res, _ := m.Allow(ctx, "k", limit, 1)
	require.False(t, res.Allowed)
	require.Equal(t, 4*time.Second, res.RetryAfter, "one unit comes back 6 s after the burst")
	require.Equal(t, clock.Now().Add(58*time.Second), res.ResetAt)

	clock.Advance(4 * time.Second)
	res, _ = m.Allow(ctx, "k", limit, 1)
	require.True(t, res.Allowed)
	require.Zero(t, res.Remaining)

	// Idle for a whole period, the bucket is full again (and the sweep may forget it).
	clock.Advance(2 * time.Minute)
	res, _ = m.Allow(ctx, "k", limit, 1)
	require.True(t, res.Allowed)
	require.Equal(t, 9, res.Remaining)
}

func testPolicy(t *testing.T, l ratelimit.Limiter) *ratelimit.Policy {
	t.Helper()
	p, err := ratelimit.NewPolicy(l, map[ratelimit.Tier]ratelimit.Limit{
		ratelimit.TierPurchase: ratelimit.PerMinute(2),
		ratelimit.TierBrowse:   ratelimit.PerMinute(3),
		ratelimit.TierStandard: ratelimit.PerMinute(4),
	})
	require.NoError(t, err)
	return p
}

func TestPolicy_ChargesEachFieldAndStopsAtTheFirstRefusal(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, l ratelimit.Limiter) {
		ctx := context.Background()
		p := testPolicy(t, l)
		caller := ratelimit.CallerKey("u1", "10.0.0.1")
		require.Equal(t, "user:u1", caller)

		// One operation with a standard field and two browse fields (aliases, say): one unit of
		// standard, two of browse; the headers show browse, the tier with fewer left.
		d, err := p.Charge(ctx, caller, []ratelimit.Tier{ratelimit.TierStandard, ratelimit.TierBrowse, ratelimit.TierBrowse})
		require.NoError(t, err)
		require.True(t, d.Allowed)
		require.Equal(t, ratelimit.TierBrowse, d.Tier)
		require.Equal(t, 1, d.Result.Remaining)
		require.Equal(t, 3, d.Result.Limit)

		// No tier at all counts as standard.
		d, err = p.Charge(ctx, caller, nil)
		require.NoError(t, err)
		require.Equal(t, ratelimit.TierStandard, d.Tier)
		require.Equal(t, 2, d.Result.Remaining)

		// Two more browse fields than are left: refused whole, nothing taken.
		d, err = p.Charge(ctx, caller, []ratelimit.Tier{ratelimit.TierBrowse, ratelimit.TierBrowse})
		require.NoError(t, err)
		require.False(t, d.Allowed)
		d, err = p.Charge(ctx, caller, []ratelimit.Tier{ratelimit.TierBrowse})
		require.NoError(t, err)
		require.True(t, d.Allowed, "the refused operation took nothing")
		require.Zero(t, d.Result.Remaining)

		// Browse is exhausted: an operation touching browse and standard is refused by browse, and
		// standard is not charged for it.
		d, err = p.Charge(ctx, caller, []ratelimit.Tier{ratelimit.TierStandard, ratelimit.TierBrowse})
		require.NoError(t, err)
		require.False(t, d.Allowed)
		require.Equal(t, ratelimit.TierBrowse, d.Tier)
		require.Positive(t, d.Result.RetryAfter)
		d, err = p.Charge(ctx, caller, []ratelimit.Tier{ratelimit.TierStandard})
		require.NoError(t, err)
		require.True(t, d.Allowed)
		require.Equal(t, 1, d.Result.Remaining, "standard spent 2 units, not 3")

		// Another caller is not affected.
		d, err = p.Charge(ctx, ratelimit.CallerKey("", "10.0.0.1"), []ratelimit.Tier{ratelimit.TierBrowse})
		require.NoError(t, err)
		require.True(t, d.Allowed)
		require.Equal(t, 2, d.Result.Remaining)
	})
}

func TestCallerKey(t *testing.T) {
	t.Parallel()
	require.Equal(t, "user:u1", ratelimit.CallerKey("u1", "203.0.113.7"), "a signed-in caller is the user, wherever from")
	require.Equal(t, "ip:203.0.113.7", ratelimit.CallerKey("", "203.0.113.7"))
	require.Equal(t, "ip:2001:db8:1:2::/64", ratelimit.CallerKey("", "2001:db8:1:2:aaaa:bbbb:cccc:dddd"), "IPv6 by /64")
	require.Equal(t, ratelimit.CallerKey("", "2001:db8:1:2::1"), ratelimit.CallerKey("", "2001:db8:1:2::ffff"))
}

func TestNewPolicy_NeedsEveryTier(t *testing.T) {
	t.Parallel()
	_, err := ratelimit.NewPolicy(ratelimit.NewMemory(ratelimit.MemoryOptions{}), map[ratelimit.Tier]ratelimit.Limit{
		ratelimit.TierPurchase: ratelimit.PerMinute(10),
	})
	require.ErrorContains(t, err, "BROWSE")
}

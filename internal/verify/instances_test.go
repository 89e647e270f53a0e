package verify_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/leadmarket/leadmarket/internal/db"
	"github.com/leadmarket/leadmarket/internal/dbtest"
	"github.com/leadmarket/leadmarket/internal/jobs"
	"github.com/leadmarket/leadmarket/internal/verify"
)

// Two instances (each its own pool, slot limiter and River client, as two processes) verify one
// backlog together: the provider never has more calls in flight than VERIFY_CONCURRENCY, though
// each instance alone could make that many; the limit is reached (the calls do run in parallel),
// and both instances do their share.
func TestTwoInstances_NeverAboveTheLimit(t *testing.T) {
	t.Parallel()
	const limit = 3
	e := newEnv(t)
	ctx := context.Background()
	e.mv.setFallback(func(string) answer { return answer{Body: mvBody("ok"), Delay: 25 * time.Millisecond} })
	instance := func(key string) *verify.Service {
		pool, err := db.Open(ctx, e.dbURL, 10)
		require.NoError(t, err)
		t.Cleanup(func() { _ = pool.Close() })
		queue, err := jobs.NewQueue(pool.DB)
		require.NoError(t, err)
		svc := verify.NewService(pool, queue, e.options(func(o *verify.Options) {
			o.Concurrency, o.BatchSize, o.MillionVerifierAPIKey = limit, 10, key
		}))
		e.runner(svc)
		return svc
	}
	a := instance("instance-a")
	instance("instance-b")

	partnerID := dbtest.CreatePartner(t, e.db, dbtest.PartnerOpts{})
	ids := make([]string, 150)
	for i := range ids {
		ids[i], _ = e.pendingLead(partnerID, dbtest.LeadOpts{})
	}
	// Watch the slots held in PostgreSQL as the backlog drains.
	var maxSlots atomic.Int64
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			if n, err := verify.InFlight(ctx, e.db); err == nil && int64(n) > maxSlots.Load() {
				maxSlots.Store(int64(n))
			}
		}
	}()
	tx, err := e.db.BeginTx(ctx, nil)
	require.NoError(t, err)
	_, err = a.EnqueueTx(ctx, tx, ids)
	require.NoError(t, err)
	require.NoError(t, tx.Commit())
	waitFor(t, "every lead verified", func() bool {
		return scalar[int](t, e.db, "SELECT count(*) FROM leads WHERE partner_id = ? AND verification_status = 'VALID'", partnerID) == len(ids)
	})
	close(stop)
	<-watched

	require.EqualValues(t, len(ids), e.mv.totalCalls.Load(), "each lead checked once")
	require.LessOrEqual(t, e.mv.maxFlight.Load(), int64(limit), "never more calls in flight than the limit")
	require.Equal(t, int64(limit), e.mv.maxFlight.Load(), "the limit is reached: calls run in parallel")
	require.LessOrEqual(t, maxSlots.Load(), int64(limit))
	require.Positive(t, e.mv.callsWithKey("instance-a"), "instance a worked")
	require.Positive(t, e.mv.callsWithKey("instance-b"), "instance b worked")
	t.Logf("calls: a %d, b %d; most in flight %d; most slots held %d",
		e.mv.callsWithKey("instance-a"), e.mv.callsWithKey("instance-b"), e.mv.maxFlight.Load(), maxSlots.Load())
}

package ratelimit_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/leadmarket/leadmarket/internal/audit"
	"github.com/leadmarket/leadmarket/internal/dbtest"
	"github.com/leadmarket/leadmarket/internal/ratelimit"
	"github.com/leadmarket/leadmarket/internal/reqinfo"
)

func TestViolations_RecordedAndAbuseRaisedOncePerWindow(t *testing.T) {
	t.Parallel()
	db := dbtest.DB(t)
	u := dbtest.CreateUser(t, db, dbtest.UserOpts{})
	ctx := reqinfo.With(context.Background(), reqinfo.Info{IP: "203.0.113.7", RequestID: "req-1", Operation: "Buy"})
	s := ratelimit.NewViolations(db)
	v := ratelimit.Violation{CallerKey: ratelimit.CallerKey(u.ID, "203.0.113.7"), UserID: u.ID, IP: "203.0.113.7",
		Tier: ratelimit.TierPurchase, Operation: "Buy", Limit: 10}

	var raisedAt []int
	for i := 1; i <= ratelimit.AbuseThreshold+5; i++ {
		alerted, err := s.Record(ctx, v)
		require.NoError(t, err)
		if alerted {
			raisedAt = append(raisedAt, i)
		}
	}
	require.Equal(t, []int{ratelimit.AbuseThreshold}, raisedAt, "the 10th refusal raises the event, later ones do not")

	var rows []struct {
		UserID    string `bun:"user_id"`
		IP        string `bun:"ip"`
		Tier      string `bun:"tier"`
		Operation string `bun:"operation"`
		RateLimit int    `bun:"rate_limit"`
	}
	require.NoError(t, db.NewRaw("SELECT user_id, ip, tier, operation, rate_limit FROM rate_limit_violations WHERE caller_key = ?",
		v.CallerKey).Scan(ctx, &rows))
	require.Len(t, rows, ratelimit.AbuseThreshold+5)
	require.Equal(t, u.ID, rows[0].UserID)
	require.Equal(t, "203.0.113.7", rows[0].IP)
	require.Equal(t, "PURCHASE", rows[0].Tier)
	require.Equal(t, "Buy", rows[0].Operation)
	require.Equal(t, 10, rows[0].RateLimit)

	var events []struct {
		RiskLevel string         `bun:"risk_level"`
		IP        string         `bun:"ip"`
		Details   map[string]any `bun:"details,type:jsonb"`
	}
	require.NoError(t, db.NewRaw("SELECT risk_level, ip, details FROM security_events WHERE user_id = ? AND kind = ?",
		u.ID, ratelimit.AbuseEventKind).Scan(ctx, &events))
	require.Len(t, events, 1)
	require.Equal(t, audit.RiskHigh, events[0].RiskLevel)
	require.Equal(t, "203.0.113.7", events[0].IP)
	require.Equal(t, "PURCHASE", events[0].Details["tier"])

	// Once the window holds no alert any more, the next burst of refusals raises a new one.
	_, err := db.ExecContext(ctx, "UPDATE rate_limit_violations SET occurred_at = occurred_at - interval '11 minutes' WHERE caller_key = ?",
		v.CallerKey)
	require.NoError(t, err)
	raisedAt = nil
	for i := 1; i <= ratelimit.AbuseThreshold; i++ {
		alerted, err := s.Record(ctx, v)
		require.NoError(t, err)
		if alerted {
			raisedAt = append(raisedAt, i)
		}
	}
	require.Equal(t, []int{ratelimit.AbuseThreshold}, raisedAt)

	// Old refusals can be purged.
	n, err := ratelimit.PurgeViolations(ctx, db, time.Now().Add(-10*time.Minute))
	require.NoError(t, err)
	require.GreaterOrEqual(t, n, int64(ratelimit.AbuseThreshold+5))
}

func TestViolations_ConcurrentRefusalsRaiseOneEvent(t *testing.T) {
	t.Parallel()
	db := dbtest.DB(t)
	s := ratelimit.NewViolations(db)
	ip := "198.51.100.23"
	v := ratelimit.Violation{CallerKey: ratelimit.CallerKey("", ip) + ":" + uuid.NewString(), IP: ip, Tier: ratelimit.TierStandard, Limit: 100}
	var alerts atomic.Int64
	var wg sync.WaitGroup
	for range 3 * ratelimit.AbuseThreshold {
		wg.Go(func() {
			alerted, err := s.Record(context.Background(), v)
			if err != nil {
				t.Error(err)
			}
			if alerted {
				alerts.Add(1)
			}
		})
	}
	wg.Wait()
	// Refusals that met a check in progress skipped theirs; the next refusal checks again.
	alerted, err := s.Record(context.Background(), v)
	require.NoError(t, err)
	if alerted {
		alerts.Add(1)
	}
	require.EqualValues(t, 1, alerts.Load(), "one event however the refusals interleave")
}

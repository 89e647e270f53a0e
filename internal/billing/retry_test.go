package billing_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/leadmarket/leadmarket/internal/auth"
	"github.com/leadmarket/leadmarket/internal/billing"
	"github.com/leadmarket/leadmarket/internal/dbtest"
	"github.com/leadmarket/leadmarket/internal/page"
)

func TestNextAttemptAt_FollowsTheSchedule(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	want := []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute, time.Hour, 6 * time.Hour}
	for i, d := range want {
		require.Equal(t, at.Add(d), billing.NextAttemptAt(i+1, at), "after attempt %d", i+1)
	}
	require.True(t, billing.NextAttemptAt(6, at).IsZero(), "no retry after the fifth")
	require.Equal(t, 6, billing.MaxAttempts)
}

// A refund whose payment never arrives fails on every attempt: River schedules each retry on
// the schedule, the event is FAILED after the fifth retry, and an admin's retry processes it once
// the payment is there.
func TestWebhook_FailsAfterFifthRetryAndAdminRetryRecovers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	ws, _ := dbtest.CreateWorkspace(t, e.db, dbtest.WorkspaceOpts{})
	orderID, sessionID := e.order(ws, 100, 4900)
	runner := e.startRunner()
	refundID, refund := event("charge.refunded", charge("ch_fail", "pi_fail", 4900, 4900))
	require.Equal(t, http.StatusOK, e.deliver(refund, webhookSecret, time.Now()))
	jobID := scalar[int64](t, e.db, "SELECT job_id FROM stripe_events WHERE id = ?", refundID)

	for attempt := 1; attempt <= billing.MaxAttempts; attempt++ {
		var job struct {
			State       string    `bun:"state"`
			Attempt     int       `bun:"attempt"`
			AttemptedAt time.Time `bun:"attempted_at"`
			ScheduledAt time.Time `bun:"scheduled_at"`
		}
		require.Eventually(t, func() bool {
			err := e.db.NewRaw("SELECT state, attempt, attempted_at, scheduled_at FROM river_job WHERE id = ?", jobID).Scan(context.Background(), &job)
			return err == nil && job.Attempt == attempt && (job.State == "retryable" || job.State == "discarded")
		}, 10*time.Second, 10*time.Millisecond, "attempt %d", attempt)
		var ev struct {
			Status        string     `bun:"status"`
			Attempts      int        `bun:"attempts"`
			NextAttemptAt *time.Time `bun:"next_attempt_at"`
		}
		require.NoError(t, e.db.NewRaw("SELECT status, attempts, next_attempt_at FROM stripe_events WHERE id = ?", refundID).Scan(context.Background(), &ev))
		require.Equal(t, attempt, ev.Attempts)
		if attempt < billing.MaxAttempts {
			want := billing.RetrySchedule[attempt-1]
			require.Equal(t, "retryable", job.State)
			require.WithinDuration(t, job.AttemptedAt.Add(want), job.ScheduledAt, time.Millisecond, "River's retry %d", attempt)
			require.Equal(t, billing.StatusRetrying, ev.Status)
			require.WithinDuration(t, job.ScheduledAt, *ev.NextAttemptAt, time.Millisecond, "shown next attempt %d", attempt)
			e.retryNow(runner, jobID) // as if the delay had passed
			continue
		}
		require.Equal(t, "discarded", job.State)
		require.Equal(t, billing.StatusFailed, ev.Status)
		require.Nil(t, ev.NextAttemptAt)
	}
	require.Equal(t, billing.MaxAttempts, scalar[int](t, e.db,
		"SELECT count(*) FROM stripe_event_attempts WHERE event_id = ? AND error IS NOT NULL AND finished_at IS NOT NULL", refundID))

	// The payment shows up; an admin retries the failed event (in bulk) and it is processed.
	paid, body := event("checkout.session.completed", checkoutSession(sessionID, orderID, ws, "pi_fail", 4900, "paid"))
	require.Equal(t, http.StatusOK, e.deliver(body, webhookSecret, time.Now()))
	e.waitStatus(paid, billing.StatusProcessed)
	admin := dbtest.CreateUser(t, e.db, dbtest.UserOpts{IsPlatformAdmin: true})
	ctx := context.Background()
	adminCaller := &auth.Caller{UserID: admin.ID, IsPlatformAdmin: true, AAL: auth.AAL2}
	retried, err := e.app.Billing.RetryFailedEvents(ctx, adminCaller, time.Now().Add(-time.Hour))
	require.NoError(t, err)
	require.Len(t, retried, 1)
	require.Equal(t, refundID, retried[0].ID)
	e.waitStatus(refundID, billing.StatusProcessed)
	require.Equal(t, int64(0), e.balance(ws))

	// Retrying a processed event changes nothing.
	_, err = e.app.Billing.RetryEvent(ctx, adminCaller, refundID)
	require.NoError(t, err)
	_, err = e.app.Billing.RetryEvent(ctx, adminCaller, paid)
	require.NoError(t, err)
	time.Sleep(500 * time.Millisecond)
	require.Equal(t, int64(0), e.balance(ws))
	require.Equal(t, billing.StatusProcessed, scalar[string](t, e.db, "SELECT status FROM stripe_events WHERE id = ?", paid))
	require.Equal(t, 2, scalar[int](t, e.db, "SELECT count(*) FROM credit_ledger WHERE workspace_id = ?", ws))

	// Non-admins may not look or retry.
	_, err = e.app.Billing.RetryEvent(ctx, &auth.Caller{UserID: admin.ID}, refundID)
	require.Error(t, err)
	ten := 10
	_, err = e.app.Billing.ListEvents(ctx, &auth.Caller{UserID: admin.ID, IsPlatformAdmin: true},
		billing.EventFilter{}, page.Args{First: &ten})
	require.Error(t, err, "admins need aal2")
	evs, err := e.app.Billing.ListEvents(ctx, adminCaller, billing.EventFilter{Status: billing.StatusProcessed, Type: "charge.refunded"},
		page.Args{First: &ten})
	require.NoError(t, err)
	require.Len(t, evs.Items, 1)
	attempts, err := e.app.Billing.Attempts(ctx, []string{refundID})
	require.NoError(t, err)
	require.Len(t, attempts[refundID], billing.MaxAttempts+1)
	require.Nil(t, attempts[refundID][billing.MaxAttempts].Error)
}

// River deletes finished jobs after a while; a FAILED event whose job is gone is still replayed
// by the admin retry, in bulk too, without holding up the other events.
func TestWebhook_AdminRetryAfterRiverDeletedTheJob(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	ws, _ := dbtest.CreateWorkspace(t, e.db, dbtest.WorkspaceOpts{})
	orderID, sessionID := e.order(ws, 100, 4900)
	paid, body := event("checkout.session.completed", checkoutSession(sessionID, orderID, ws, "pi_gone", 4900, "paid"))
	require.Equal(t, http.StatusOK, e.deliver(body, webhookSecret, time.Now()))
	jobID := scalar[int64](t, e.db, "SELECT job_id FROM stripe_events WHERE id = ?", paid)
	// As a week later: the event FAILED, and River's cleaner has deleted its discarded job.
	_, err := e.db.ExecContext(context.Background(), "UPDATE stripe_events SET status = 'FAILED' WHERE id = ?", paid)
	require.NoError(t, err)
	_, err = e.db.ExecContext(context.Background(), "DELETE FROM river_job WHERE id = ?", jobID)
	require.NoError(t, err)

	admin := dbtest.CreateUser(t, e.db, dbtest.UserOpts{IsPlatformAdmin: true})
	retried, err := e.app.Billing.RetryFailedEvents(context.Background(),
		&auth.Caller{UserID: admin.ID, IsPlatformAdmin: true, AAL: auth.AAL2}, time.Now().Add(-time.Hour))
	require.NoError(t, err)
	require.Len(t, retried, 1)
	require.NotNil(t, retried[0].JobID)
	require.NotEqual(t, jobID, *retried[0].JobID)
	e.startRunner()
	e.waitStatus(paid, billing.StatusProcessed)
	require.Equal(t, int64(100), e.balance(ws))
}

// A process that dies during an event's last attempt leaves it PROCESSING, and River discards
// the job (attempts used up). The hourly clean-up marks such an event FAILED, so admins see and
// retry it; events with a live job, or too recent to tell, are left alone.
func TestFailAbandonedEvents(t *testing.T) {
	t.Parallel()
	e := newTxEnv(t, nil)
	ctx := context.Background()
	ws, _ := dbtest.CreateWorkspace(t, e.db, dbtest.WorkspaceOpts{})
	deliver := func(pi string) (eventID string, jobID int64) {
		orderID, sessionID := e.order(ws, 10, 490)
		id, body := event("checkout.session.completed", checkoutSession(sessionID, orderID, ws, pi, 490, "paid"))
		require.Equal(t, http.StatusOK, e.deliver(body, webhookSecret, time.Now()))
		return id, scalar[int64](t, e.db, "SELECT job_id FROM stripe_events WHERE id = ?", id)
	}
	exec := func(q string, args ...any) {
		_, err := e.db.ExecContext(ctx, q, args...)
		require.NoError(t, err)
	}
	abandoned, abandonedJob := deliver("pi_a")
	exec("UPDATE stripe_events SET status = 'PROCESSING', received_at = now() - interval '1 hour' WHERE id = ?", abandoned)
	exec("UPDATE river_job SET state = 'discarded', finalized_at = now() WHERE id = ?", abandonedJob)
	recent, recentJob := deliver("pi_b")
	exec("UPDATE stripe_events SET status = 'PROCESSING' WHERE id = ?", recent)
	exec("UPDATE river_job SET state = 'discarded', finalized_at = now() WHERE id = ?", recentJob)
	waiting, _ := deliver("pi_c") // its job is still available
	exec("UPDATE stripe_events SET received_at = now() - interval '1 hour' WHERE id = ?", waiting)

	n, err := e.app.Billing.FailAbandonedEvents(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	require.Equal(t, billing.StatusFailed, scalar[string](t, e.db, "SELECT status FROM stripe_events WHERE id = ?", abandoned))
	require.Equal(t, "PROCESSING", scalar[string](t, e.db, "SELECT status FROM stripe_events WHERE id = ?", recent))
	require.Equal(t, billing.StatusReceived, scalar[string](t, e.db, "SELECT status FROM stripe_events WHERE id = ?", waiting))
}

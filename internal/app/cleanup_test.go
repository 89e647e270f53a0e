package app_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/leadmarket/leadmarket/internal/app"
	"github.com/leadmarket/leadmarket/internal/config"
	"github.com/leadmarket/leadmarket/internal/dbtest"
	"github.com/leadmarket/leadmarket/internal/jobs"
)

// The leader schedules the clean-ups at start: expired idempotency keys, old rate-limit refusals
// and expired exports go, fresh ones stay.
func TestPeriodicCleanupsDeleteOnlyExpiredRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := dbtest.FreshDB(t)
	cfg, err := config.FromEnv(func(k string) (string, bool) { return map[string]string{"ENV": "test"}[k], k == "ENV" })
	require.NoError(t, err)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	a, err := app.Build(cfg, db, logger)
	require.NoError(t, err)
	u := dbtest.CreateUser(t, db, dbtest.UserOpts{})
	_, err = db.ExecContext(ctx, `INSERT INTO idempotency_keys (user_id, key, operation, request_hash, created_at) VALUES
		(?, 'old', 'op', 'h', now() - interval '25 hours'), (?, 'new', 'op', 'h', now() - interval '23 hours');
		INSERT INTO rate_limit_violations (caller_key, ip, tier, operation, rate_limit, occurred_at) VALUES
		('ip:127.0.0.1', '127.0.0.1', 'BROWSE', 'old', 60, now() - interval '31 days'),
		('ip:127.0.0.1', '127.0.0.1', 'BROWSE', 'new', 60, now() - interval '29 days')`, u.ID, u.ID)
	require.NoError(t, err)
	// Exports: one past its retention (its file goes with it), one within it.
	_, err = db.ExecContext(ctx, `INSERT INTO exports (kind, created_by, file_name, expires_at) VALUES
		('AUDIT_LOGS', ?, 'old.csv', now() - interval '1 minute'), ('AUDIT_LOGS', ?, 'new.csv', now() + interval '1 day');
		INSERT INTO export_chunks (export_id, seq, rows, data) SELECT id, 0, 0, '' FROM exports`, u.ID, u.ID)
	require.NoError(t, err)
	// A process running into a month whose audit partition is missing: the hourly job creates it.
	var nextMonth string
	require.NoError(t, db.NewRaw(`SELECT 'audit_logs_' || to_char(date_trunc('month', now() AT TIME ZONE 'UTC') + interval '1 month', 'YYYY_MM')`).
		Scan(ctx, &nextMonth))
	_, err = db.ExecContext(ctx, "DROP TABLE "+nextMonth)
	require.NoError(t, err)

	r, err := jobs.NewRunner(ctx, dbtest.URL(dbtest.NameOf(ctx, db)), a.Workers(), jobs.RunnerOptions{
		Concurrency: 2, PeriodicJobs: a.PeriodicJobs(), FetchPollInterval: 100 * time.Millisecond, Logger: logger})
	require.NoError(t, err)
	require.NoError(t, r.Start(ctx))
	t.Cleanup(func() { _ = r.Stop(context.Background()) })

	count := func(q string) int {
		var n int
		require.NoError(t, db.NewRaw(q).Scan(ctx, &n))
		return n
	}
	require.Eventually(t, func() bool {
		return count("SELECT count(*) FROM idempotency_keys") == 1 && count("SELECT count(*) FROM rate_limit_violations") == 1 &&
			count("SELECT count(*) FROM pg_class WHERE relname = '"+nextMonth+"'") == 1 &&
			count("SELECT count(*) FROM exports") == 1
	}, 20*time.Second, 100*time.Millisecond)
	require.Equal(t, 1, count("SELECT count(*) FROM exports WHERE file_name = 'new.csv'"))
	require.Equal(t, 1, count("SELECT count(*) FROM export_chunks"), "the expired export's file went with it")
	require.Equal(t, 1, count("SELECT count(*) FROM idempotency_keys WHERE key = 'new'"))
	require.Equal(t, 1, count("SELECT count(*) FROM rate_limit_violations WHERE operation = 'new'"))
}

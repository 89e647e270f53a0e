package jobs_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/leadmarket/leadmarket/internal/dbtest"
	"github.com/leadmarket/leadmarket/internal/jobs"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Run(m)) }

// A job that panics is reported through ReportPanicFunc with its kind, id and the stack of the
// panic, and River goes on retrying it as for an error.
func TestRunnerReportsPanics(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := dbtest.FreshDB(t)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	workers := river.NewWorkers()
	river.AddWorker(workers, jobs.NewCleanupWorker(map[string]jobs.CleanupFunc{
		"boom": func(context.Context) (int64, error) { panic("clean-up exploded") },
	}, logger))
	type report struct {
		kind  string
		id    int64
		v     any
		stack string
	}
	reports := make(chan report, 4)
	r, err := jobs.NewRunner(ctx, dbtest.URL(dbtest.NameOf(ctx, db)), workers, jobs.RunnerOptions{
		Concurrency: 1, FetchPollInterval: 100 * time.Millisecond, Logger: logger,
		ReportPanicFunc: func(_ context.Context, job *rivertype.JobRow, v any, stack string) {
			reports <- report{job.Kind, job.ID, v, stack}
		},
	})
	require.NoError(t, err)
	require.NoError(t, r.Start(ctx))
	t.Cleanup(func() { _ = r.Stop(context.Background()) })

	q, err := jobs.NewQueue(db.DB)
	require.NoError(t, err)
	tx, err := db.BeginTx(ctx, nil)
	require.NoError(t, err)
	res, err := q.InsertTx(ctx, tx, jobs.CleanupArgs{Name: "boom"}, nil)
	require.NoError(t, err)
	require.NoError(t, tx.Commit())

	select {
	case got := <-reports:
		require.Equal(t, "cleanup", got.kind)
		require.Equal(t, res.Job.ID, got.id)
		require.Equal(t, "clean-up exploded", got.v)
		require.Contains(t, got.stack, "jobs_test.TestRunnerReportsPanics")
	case <-time.After(30 * time.Second):
		t.Fatal("no panic reported")
	}
	require.Eventually(t, func() bool {
		job, err := r.Client().JobGet(ctx, res.Job.ID)
		return err == nil && job.State == rivertype.JobStateRetryable
	}, 10*time.Second, 50*time.Millisecond, "retried as for an error")
}

package jobs_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/internal/dbtest"
	"github.com/leadmarket/leadmarket/internal/jobs"
	"github.com/leadmarket/leadmarket/internal/metrics"
)

// outcomeArgs is a job that ends as its Outcome says.
type outcomeArgs struct {
	Outcome string `json:"outcome"`
}

func (outcomeArgs) Kind() string { return "metrics_test" }

type outcomeWorker struct {
	river.WorkerDefaults[outcomeArgs]
}

func (outcomeWorker) Work(_ context.Context, job *river.Job[outcomeArgs]) error {
	switch job.Args.Outcome {
	case "snooze":
		return river.JobSnooze(time.Hour)
	case "cancel":
		return river.JobCancel(errors.New("cancelled"))
	case "fail":
		return errors.New("failed")
	case "panic":
		panic("boom")
	}
	return nil
}

// value sums the samples of name whose labels include labels (a histogram's count).
func value(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	fams, err := g.Gather()
	require.NoError(t, err)
	v := 0.0
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if want, ok := labels[l.GetName()]; ok && want != l.GetValue() {
					continue series
				}
			}
			switch {
			case m.Counter != nil:
				v += m.GetCounter().GetValue()
			case m.Gauge != nil:
				v += m.GetGauge().GetValue()
			case m.Histogram != nil:
				v += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return v
}

// Every attempt a runner works is counted by its kind and the state it leaves the job in, and
// timed; the queue collector reports the backlog of a queue nobody works and of an empty one.
func TestRunnerRecordsJobsAndQueues(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := dbtest.FreshDB(t)
	q, err := jobs.NewQueue(db.DB)
	require.NoError(t, err)
	insert := func(outcome string, opts *river.InsertOpts) {
		require.NoError(t, db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			_, err := q.InsertTx(ctx, tx, outcomeArgs{Outcome: outcome}, opts)
			return err
		}))
	}
	m := metrics.New()
	m.Register(jobs.NewQueueCollector(db, []string{"idle"}, slog.New(slog.DiscardHandler)))
	g := m.Gatherer()

	// Two jobs wait in a queue no runner works, the older for about a minute.
	insert("ok", &river.InsertOpts{Queue: "idle"})
	insert("ok", &river.InsertOpts{Queue: "idle"})
	_, err = db.ExecContext(ctx, `UPDATE river_job SET scheduled_at = now() - interval '1 minute'
		WHERE id = (SELECT min(id) FROM river_job WHERE queue = 'idle')`)
	require.NoError(t, err)
	require.Equal(t, 2.0, value(t, g, "river_jobs_available", map[string]string{"queue": "idle"}))
	age := value(t, g, "river_queue_oldest_available_job_age_seconds", map[string]string{"queue": "idle"})
	require.InDelta(t, 60, age, 30)
	require.Zero(t, value(t, g, "river_jobs_available", map[string]string{"queue": river.QueueDefault}))
	require.Zero(t, value(t, g, "river_queue_oldest_available_job_age_seconds", map[string]string{"queue": river.QueueDefault}))

	for _, o := range []string{"ok", "ok", "snooze", "cancel"} {
		insert(o, nil)
	}
	insert("fail", &river.InsertOpts{MaxAttempts: 1})
	insert("panic", &river.InsertOpts{MaxAttempts: 1})
	insert("fail", &river.InsertOpts{MaxAttempts: 5})

	w := river.NewWorkers()
	river.AddWorker(w, outcomeWorker{})
	r, err := jobs.NewRunner(ctx, dbtest.URL(dbtest.NameOf(ctx, db)), w, jobs.RunnerOptions{
		Concurrency: 4, FetchPollInterval: 200 * time.Millisecond, Metrics: m, Logger: slog.New(slog.DiscardHandler),
	})
	require.NoError(t, err)
	require.NoError(t, r.Start(ctx))
	t.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = r.Stop(stopCtx)
	})
	kind := outcomeArgs{}.Kind()
	require.Eventually(t, func() bool {
		return value(t, g, "river_jobs_total", map[string]string{"kind": kind}) >= 7
	}, 30*time.Second, 50*time.Millisecond)
	for outcome, want := range map[string]float64{
		metrics.JobCompleted: 2, metrics.JobSnoozed: 1, metrics.JobCancelled: 1, metrics.JobDiscarded: 2, metrics.JobRetried: 1,
	} {
		require.Equal(t, want, value(t, g, "river_jobs_total", map[string]string{"kind": kind, "outcome": outcome}), outcome)
	}
	require.Equal(t, 7.0, value(t, g, "river_job_duration_seconds", map[string]string{"kind": kind}))
	require.Eventually(t, func() bool {
		var state rivertype.JobState
		require.NoError(t, db.NewRaw(`SELECT state FROM river_job WHERE queue = 'default' AND args->>'outcome' = 'panic'`).Scan(ctx, &state))
		return state == rivertype.JobStateDiscarded
	}, 10*time.Second, 50*time.Millisecond, "the panic still reaches River")
	require.Equal(t, 2.0, value(t, g, "river_jobs_available", map[string]string{"queue": "idle"}))
}

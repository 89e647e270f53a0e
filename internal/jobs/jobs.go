// Package jobs runs Leadmarket's background work on River: a Queue that inserts jobs in the
// caller's bun transaction (so a job exists if and only if the change that needs it commits), and
// a Runner that works them with retries. Several instances share the work through PostgreSQL.
package jobs

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/internal/db"
	"github.com/leadmarket/leadmarket/internal/metrics"
)

// Queue inserts jobs. It only inserts: working them is the Runner's job.
type Queue struct {
	client *river.Client[*sql.Tx]
}

// NewQueue returns a Queue on sqldb (bun's underlying *sql.DB). plugins see every insert (the
// tracing middleware, which keeps the inserting trace in the job's metadata).
func NewQueue(sqldb *sql.DB, plugins ...rivertype.Plugin) (*Queue, error) {
	c, err := river.NewClient(riverdatabasesql.New(sqldb), &river.Config{Plugins: plugins})
	if err != nil {
		return nil, fmt.Errorf("jobs: queue: %w", err)
	}
	return &Queue{client: c}, nil
}

// InsertTx inserts a job in tx; it becomes workable when tx commits.
func (q *Queue) InsertTx(ctx context.Context, tx bun.Tx, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error) {
	res, err := q.client.InsertTx(ctx, tx.Tx, args, opts)
	if err != nil {
		return nil, fmt.Errorf("jobs: insert %s: %w", args.Kind(), err)
	}
	return res, nil
}

// InsertManyTx inserts jobs in tx in one go; they become workable when tx commits.
func (q *Queue) InsertManyTx(ctx context.Context, tx bun.Tx, params []river.InsertManyParams) error {
	if len(params) == 0 {
		return nil
	}
	if _, err := q.client.InsertManyFastTx(ctx, tx.Tx, params); err != nil {
		return fmt.Errorf("jobs: insert %d %s: %w", len(params), params[0].Args.Kind(), err)
	}
	return nil
}

// RetryTx makes job id available to run again now, in tx. A job that exhausted its attempts gets
// one more.
func (q *Queue) RetryTx(ctx context.Context, tx bun.Tx, id int64) error {
	if _, err := q.client.JobRetryTx(ctx, tx.Tx, id); err != nil {
		return fmt.Errorf("jobs: retry %d: %w", id, err)
	}
	return nil
}

// RunnerOptions configure a Runner.
type RunnerOptions struct {
	// Concurrency is how many jobs run at once (WORKER_CONCURRENCY). Default 10.
	Concurrency int
	// Queues are queues worked besides River's default one, each with how many of its jobs run
	// at once (verification has its own, so that its backlog never holds up the default queue's
	// jobs). Default none.
	Queues map[string]int
	// PeriodicJobs are scheduled by whichever instance is leader.
	PeriodicJobs []*river.PeriodicJob
	// RescueStuckJobsAfter is how long a job may stay running before it is taken for the job of a
	// crashed process and run again. Default 10 minutes: far above every worker's Timeout, far
	// below River's default hour, so a webhook whose process died mid-work is retried soon.
	RescueStuckJobsAfter time.Duration
	// FetchPollInterval is how often idle workers look for jobs besides LISTEN/NOTIFY wake-ups.
	// Default River's (1s); tests shorten it.
	FetchPollInterval time.Duration
	Logger            *slog.Logger
	// Metrics records each job attempt (river_jobs_total, river_job_duration_seconds). Default
	// nil: nothing is recorded.
	Metrics *metrics.Metrics
	// Plugins are River plugins and middleware around every job (the tracing middleware,
	// telemetry.RiverPlugins). Default none.
	Plugins []rivertype.Plugin
	// ReportPanicFunc is told of a job that panicked (River recovers it and retries the job as
	// for an error), with the panicking goroutine's stack. Default nil: River only logs it.
	ReportPanicFunc func(ctx context.Context, job *rivertype.JobRow, v any, stack string)
}

// Runner works jobs.
type Runner struct {
	client *river.Client[pgx.Tx]
	pool   *pgxpool.Pool
}

// NewRunner connects a small pool to databaseURL and prepares a client working workers.
func NewRunner(ctx context.Context, databaseURL string, workers *river.Workers, o RunnerOptions) (*Runner, error) {
	if o.Concurrency <= 0 {
		o.Concurrency = 10
	}
	if o.RescueStuckJobsAfter <= 0 {
		o.RescueStuckJobsAfter = 10 * time.Minute
	}
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	queues := map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: o.Concurrency}}
	cfg.MaxConns = int32(o.Concurrency + 4)
	for name, n := range o.Queues {
		queues[name] = river.QueueConfig{MaxWorkers: max(n, 1)}
		cfg.MaxConns += int32(max(n, 1))
	}
	db.SetApplicationName(cfg.ConnConfig)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	var middleware []rivertype.Middleware
	if o.Metrics != nil {
		middleware = append(middleware, &workMetrics{m: o.Metrics})
	}
	c, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Middleware:           middleware,
		Queues:               queues,
		Workers:              workers,
		PeriodicJobs:         o.PeriodicJobs,
		FetchPollInterval:    o.FetchPollInterval,
		RescueStuckJobsAfter: o.RescueStuckJobsAfter,
		Logger:               o.Logger,
		Plugins:              o.Plugins,
		ErrorHandler:         panicReporter(o.ReportPanicFunc),
	})
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("jobs: runner: %w", err)
	}
	return &Runner{client: c, pool: pool}, nil
}

// Start starts working jobs in the background.
func (r *Runner) Start(ctx context.Context) error { return r.client.Start(ctx) }

// Stop stops fetching, waits for running jobs to finish (until ctx ends, then cancels them) and
// closes the pool.
func (r *Runner) Stop(ctx context.Context) error {
	defer r.pool.Close()
	if err := r.client.Stop(ctx); err != nil {
		stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return r.client.StopAndCancel(stopCtx)
	}
	return nil
}

// Client exposes the River client, for tests that inspect jobs.
func (r *Runner) Client() *river.Client[pgx.Tx] { return r.client }

// panicReporter is River's ErrorHandler that tells report of panics; errors are River's to log
// and retry. Nil when report is.
func panicReporter(report func(ctx context.Context, job *rivertype.JobRow, v any, stack string)) river.ErrorHandler {
	if report == nil {
		return nil
	}
	return reportPanics(report)
}

type reportPanics func(ctx context.Context, job *rivertype.JobRow, v any, stack string)

func (reportPanics) HandleError(context.Context, *rivertype.JobRow, error) *river.ErrorHandlerResult {
	return nil
}

func (f reportPanics) HandlePanic(ctx context.Context, job *rivertype.JobRow, v any, stack string) *river.ErrorHandlerResult {
	f(ctx, job, v, stack)
	return nil
}

package jobs

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/leadmarket/leadmarket/internal/metrics"
)

// workMetrics is River worker middleware that records every attempt this instance works:
// river_jobs_total{kind,outcome} and river_job_duration_seconds{kind}. The outcome is the state
// the attempt leaves the job in: completed, snoozed, cancelled, discarded (an error on the last
// attempt) or retried. A panic is an error to River, so it counts as retried or discarded too.
type workMetrics struct {
	river.MiddlewareDefaults
	m *metrics.Metrics
}

// Work implements rivertype.WorkerMiddleware.
func (w *workMetrics) Work(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) (err error) {
	start := time.Now()
	panicked := true
	defer func() {
		if panicked {
			err = errors.New("panic")
		}
		w.m.Job(job.Kind, jobOutcome(job, err), time.Since(start))
	}()
	err = doInner(ctx)
	panicked = false
	return err
}

// jobOutcome is the state an attempt that returned err leaves job in.
func jobOutcome(job *rivertype.JobRow, err error) string {
	var snooze *rivertype.JobSnoozeError
	var cancel *rivertype.JobCancelError
	switch {
	case err == nil:
		return metrics.JobCompleted
	case errors.As(err, &snooze):
		return metrics.JobSnoozed
	case errors.As(err, &cancel):
		return metrics.JobCancelled
	case job.Attempt >= job.MaxAttempts:
		return metrics.JobDiscarded
	}
	return metrics.JobRetried
}

// QueueStatsTimeout bounds the query a scrape of QueueCollector runs.
const QueueStatsTimeout = 2 * time.Second

// QueueCollector reports, at scrape time, each queue's available jobs (river_jobs_available)
// and the age of its oldest available job (river_queue_oldest_available_job_age_seconds, 0
// when there is none): one statement on River's fetch index, bounded by QueueStatsTimeout. When
// it fails (the database is slow or down) these two metrics are left out of the scrape and the
// failure is logged; the rest of the scrape is served.
type QueueCollector struct {
	db        *bun.DB
	queues    []string
	logger    *slog.Logger
	available *prometheus.Desc
	age       *prometheus.Desc
}

// NewQueueCollector returns the collector of queues (River's default queue is added) on db.
func NewQueueCollector(db *bun.DB, queues []string, logger *slog.Logger) *QueueCollector {
	qs := []string{river.QueueDefault}
	for _, q := range queues {
		if q != river.QueueDefault {
			qs = append(qs, q)
		}
	}
	if logger == nil {
		logger = slog.Default()
	}
	return &QueueCollector{
		db: db, queues: qs, logger: logger,
		available: prometheus.NewDesc("river_jobs_available", "Jobs available to work now, by queue.", []string{"queue"}, nil),
		age: prometheus.NewDesc("river_queue_oldest_available_job_age_seconds",
			"How long the oldest available job of a queue has waited (0 when none waits).", []string{"queue"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *QueueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.available
	ch <- c.age
}

// Collect implements prometheus.Collector.
func (c *QueueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), QueueStatsTimeout)
	defer cancel()
	var rows []struct {
		Queue     string  `bun:"queue"`
		Available int64   `bun:"available"`
		Age       float64 `bun:"age"`
	}
	err := c.db.NewRaw(`SELECT q.queue, j.available, coalesce(j.age, 0) AS age
		FROM unnest(?::text[]) AS q(queue)
		CROSS JOIN LATERAL (SELECT count(*) AS available,
				greatest(extract(epoch FROM now() - min(scheduled_at)), 0)::float8 AS age
			FROM river_job WHERE state = 'available' AND queue = q.queue) j`, pgdialect.Array(c.queues)).Scan(ctx, &rows)
	if err != nil {
		c.logger.Warn("metrics: river queue stats unavailable", "err", err)
		return
	}
	for _, r := range rows {
		ch <- prometheus.MustNewConstMetric(c.available, prometheus.GaugeValue, float64(r.Available), r.Queue)
		ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, r.Age, r.Queue)
	}
}

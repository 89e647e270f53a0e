package app

import (
	"log/slog"

	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/internal/config"
	"github.com/leadmarket/leadmarket/internal/jobs"
	"github.com/leadmarket/leadmarket/internal/metrics"
	"github.com/leadmarket/leadmarket/internal/verify"
)

// buildMetrics returns the service's Prometheus collectors, with the database pool's statistics
// and the job queues' backlog read at scrape time; nil when METRICS_ENABLED is false.
func buildMetrics(cfg config.Config, bdb *bun.DB, logger *slog.Logger) *metrics.Metrics {
	if !cfg.MetricsEnabled {
		return nil
	}
	m := metrics.New()
	m.Register(metrics.NewDBStatsCollector(bdb.DB), jobs.NewQueueCollector(bdb, []string{verify.Queue}, logger))
	return m
}

package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"time"

	"go.opentelemetry.io/otel"

	"github.com/leadmarket/leadmarket/internal/app"
	"github.com/leadmarket/leadmarket/internal/config"
	"github.com/leadmarket/leadmarket/internal/db"
	"github.com/leadmarket/leadmarket/internal/jobs"
	"github.com/leadmarket/leadmarket/internal/telemetry"
)

func serve(ctx context.Context, cfg config.Config, logger *slog.Logger, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	addr := fs.String("addr", cfg.HTTPAddr, "listen address (HTTP_ADDR)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	logger.Info("garbage collector", "gc_percent", app.TuneGC())
	tel, err := startTelemetry(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tel.Shutdown(stopCtx); err != nil {
			logger.Warn("telemetry", "err", err)
		}
	}()
	bdb, url, closeDB, err := openDatabase(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer closeDB()
	// The events broker LISTENs on a connection of its own to the same database.
	cfg.DatabaseURL = url
	opts := []app.Option{app.WithTelemetry(tel)}
	if cfg.DatabaseReadURL != "" {
		read, err := db.OpenRead(ctx, cfg.DatabaseReadURL, cfg.DBReadMaxConns, db.Options{})
		if err != nil {
			return fmt.Errorf("DATABASE_READ_URL: %w", err)
		}
		defer read.Close()
		opts = append(opts, app.WithReadDB(read))
		logger.Info("reads that tolerate lag go to the read database", "sticky", cfg.DatabaseReadSticky)
	}
	a, err := app.Build(cfg, bdb, logger, opts...)
	if err != nil {
		return err
	}
	logVerification(logger, a)
	// Listen first: an address that cannot be had stops start-up before any job is taken.
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("HTTP_ADDR: listen on %s: %w", *addr, err)
	}
	var metricsLn net.Listener
	if cfg.MetricsAddr != "" {
		if metricsLn, err = net.Listen("tcp", cfg.MetricsAddr); err != nil {
			_ = ln.Close()
			return fmt.Errorf("METRICS_ADDR: listen on %s: %w", cfg.MetricsAddr, err)
		}
	}
	closeListeners := func() {
		_ = ln.Close()
		if metricsLn != nil {
			_ = metricsLn.Close()
		}
	}
	runner, err := jobs.NewRunner(ctx, url, a.Workers(), jobs.RunnerOptions{
		Concurrency: cfg.WorkerConcurrency, Queues: a.Queues(), PeriodicJobs: a.PeriodicJobs(), Logger: logger,
		Metrics: a.Metrics,
		Plugins: tel.RiverPlugins(), ReportPanicFunc: tel.ReportJobPanic,
	})
	if err != nil {
		closeListeners()
		return err
	}
	// The runner outlives ctx: on a signal the HTTP server drains first, then running jobs finish.
	if err := runner.Start(context.WithoutCancel(ctx)); err != nil {
		closeListeners()
		return fmt.Errorf("start background jobs: %w", err)
	}
	metricsCtx, stopMetrics := context.WithCancel(ctx)
	defer stopMetrics()
	metricsDone := make(chan struct{})
	if metricsLn != nil {
		// /metrics on its own address: it stops with the server; failing, it is logged and the API
		// goes on.
		go func() {
			defer close(metricsDone)
			if err := a.Server.RunMetrics(metricsCtx, metricsLn); err != nil {
				logger.Error("metrics listener", "addr", cfg.MetricsAddr, "err", err)
			}
		}()
	} else {
		close(metricsDone)
	}
	serveErr := a.Server.Run(ctx, ln)
	stopMetrics()
	<-metricsDone
	stopCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := runner.Stop(stopCtx); err != nil {
		logger.Error("stop background jobs", "err", err)
	}
	return serveErr
}

// logVerification says once at start whether email verification runs: without an API key it is
// off, and new leads stay PENDING until one is set.
func logVerification(logger *slog.Logger, a *app.App) {
	if !a.Verify.Enabled() {
		logger.Warn("email verification is off: neither MILLIONVERIFIER_API_KEY nor ZEROBOUNCE_API_KEY is set; leads stay PENDING")
		return
	}
	logger.Info("email verification is on", "providers", a.Verify.Providers(), "concurrency", a.Verify.Concurrency())
}

// startTelemetry starts tracing (OTEL_EXPORTER_OTLP_ENDPOINT) and error reporting (SENTRY_DSN) as
// cfg says, and says at start which are on. nil (everything off) when neither is set.
func startTelemetry(ctx context.Context, cfg config.Config, logger *slog.Logger) (*telemetry.Telemetry, error) {
	tel, err := telemetry.New(ctx, app.TelemetryOptions(cfg))
	if err != nil {
		return nil, err
	}
	if tel.Tracing() {
		// The SDK's own failures (a collector that does not answer) go to the log, not to stderr.
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { logger.Warn("opentelemetry", "err", err) }))
		logger.Info("tracing is on", "otlp_endpoint", cmp.Or(cfg.OTLPTracesEndpoint, cfg.OTLPEndpoint))
	}
	if tel.Reporting() {
		logger.Info("error reporting to Sentry is on", "environment", cfg.SentryEnvironment)
	}
	return tel, nil
}

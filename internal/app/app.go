// Package app assembles Leadmarket's services into the HTTP server from explicit dependencies
// (a configuration and a database): cmd/leadmarket runs it, and the API tests run the very same
// assembly in process.
package app

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/riverqueue/river"
	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/graph"
	"github.com/leadmarket/leadmarket/graph/gqlhttp"
	"github.com/leadmarket/leadmarket/internal/audit"
	"github.com/leadmarket/leadmarket/internal/auth"
	"github.com/leadmarket/leadmarket/internal/billing"
	"github.com/leadmarket/leadmarket/internal/config"
	"github.com/leadmarket/leadmarket/internal/credit"
	"github.com/leadmarket/leadmarket/internal/db"
	"github.com/leadmarket/leadmarket/internal/events"
	"github.com/leadmarket/leadmarket/internal/export"
	"github.com/leadmarket/leadmarket/internal/httpserver"
	"github.com/leadmarket/leadmarket/internal/idempotency"
	"github.com/leadmarket/leadmarket/internal/ingest"
	"github.com/leadmarket/leadmarket/internal/jobs"
	"github.com/leadmarket/leadmarket/internal/live"
	"github.com/leadmarket/leadmarket/internal/marketplace"
	"github.com/leadmarket/leadmarket/internal/metrics"
	"github.com/leadmarket/leadmarket/internal/partner"
	"github.com/leadmarket/leadmarket/internal/pipeline"
	"github.com/leadmarket/leadmarket/internal/ratelimit"
	"github.com/leadmarket/leadmarket/internal/telemetry"
	"github.com/leadmarket/leadmarket/internal/user"
	"github.com/leadmarket/leadmarket/internal/verify"
	"github.com/leadmarket/leadmarket/internal/workspace"
)

// UserCacheTTL is how long a verified token's user is remembered between requests.
const UserCacheTTL = 30 * time.Second

// App is the assembled service: its HTTP server and the services background workers need.
type App struct {
	Server  *httpserver.Server
	Billing *billing.Service
	Ingest  *ingest.Service
	// Verify is email verification and bounce refunds; ingest enqueues an upload's leads with
	// its EnqueueTx.
	Verify *verify.Service
	// Exports writes the CSV exports its workers run.
	Exports *export.Service
	// Broker is the instance's events broker (its LISTEN connection); Live the subscriptions.
	Broker *events.Broker
	Live   *live.Service
	// Metrics are the Prometheus collectors (nil with METRICS_ENABLED=false); the job runner
	// records its jobs in them.
	Metrics *metrics.Metrics
	db      *bun.DB
	logger  *slog.Logger
}

// New returns the HTTP server for cfg on bdb; see Build.
func New(cfg config.Config, bdb *bun.DB, logger *slog.Logger, opts ...Option) *httpserver.Server {
	a, err := Build(cfg, bdb, logger, opts...)
	if err != nil {
		// Build fails only on invalid static wiring, never on input or the environment.
		panic(err)
	}
	return a.Server
}

// Option adds to what Build assembles.
type Option func(*options)

type options struct {
	read      *bun.DB
	telemetry *telemetry.Telemetry
}

// WithReadDB sends the reads that tolerate a replica's lag to read (DATABASE_READ_URL, opened
// with db.OpenRead; docs/scaling.md lists them), and readiness checks it. Without it every read
// goes to bdb.
func WithReadDB(read *bun.DB) Option {
	return func(o *options) { o.read = read }
}

// WithTelemetry traces the app's requests, operations, SQL statements, jobs and outgoing calls
// with t's tracer provider when tracing is on, and reports panics and INTERNAL errors with t.
// Without it (and with a nil t) nothing is traced or reported.
func WithTelemetry(t *telemetry.Telemetry) Option {
	return func(o *options) { o.telemetry = t }
}

// TelemetryOptions are the telemetry's options from cfg.
func TelemetryOptions(cfg config.Config) telemetry.Options {
	o := telemetry.Options{SentryDSN: cfg.SentryDSN, SentryEnvironment: cfg.SentryEnvironment}
	if cfg.TracingEnabled() {
		o.OTLPEndpoint, o.OTLPTracesEndpoint = cfg.OTLPEndpoint, cfg.OTLPTracesEndpoint
	}
	return o
}

// Build assembles the services and the HTTP server for cfg on bdb.
func Build(cfg config.Config, bdb *bun.DB, logger *slog.Logger, opts ...Option) (*App, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	tel := o.telemetry
	if tel.Tracing() {
		// A copy of bdb whose statements are traced; the caller's bdb is left as it was.
		bdb = bdb.WithQueryHook(tel.QueryHook())
	}
	queue, err := jobs.NewQueue(bdb.DB, tel.RiverPlugins()...)
	if err != nil {
		return nil, err
	}
	m := buildMetrics(cfg, bdb, logger)
	billingSvc := billing.NewService(bdb, queue, billing.Options{
		StripeSecretKey: cfg.StripeSecretKey, StripeAPIURL: cfg.StripeAPIURL, WebhookSecrets: cfg.StripeWebhookSecrets,
		Logger: logger, Metrics: m, InstrumentTransportFunc: instrumentTransport(tel),
	})
	verifyOpts := VerifyOptions(cfg, logger)
	verifyOpts.Metrics = m
	verifyOpts.InstrumentTransportFunc = instrumentTransport(tel)
	verifySvc := verify.NewService(bdb, queue, verifyOpts)
	ingestSvc := ingest.NewService(bdb, queue, ingest.ServiceOptions{
		MaxRows: cfg.MaxUploadRows, Retention: cfg.UploadRetention, Logger: logger, Metrics: m,
		EnqueueVerificationFunc: func(ctx context.Context, tx bun.Tx, leadIDs []string) error {
			_, err := verifySvc.EnqueueTx(ctx, tx, leadIDs)
			return err
		},
	})
	tiers := make([]partner.BonusTier, len(cfg.CommissionBonusTiers))
	for i, t := range cfg.CommissionBonusTiers {
		tiers[i] = partner.BonusTier{PassRate: t.PassRate, Points: t.Points}
	}
	broker := events.NewBroker(events.BrokerOptions{Buffer: cfg.WSSubscriberBuffer, Logger: logger, DatabaseURL: cfg.DatabaseURL,
		CatchUpWindow: cfg.WSCatchUpWindow})
	auditSvc := audit.NewService(bdb, workspace.RoleCheck(bdb))
	pipelineSvc := pipeline.NewService(bdb)
	exportSvc := export.NewService(bdb, queue, pipelineSvc, auditSvc, export.Options{Retention: cfg.ExportRetention, Logger: logger})
	res := &graph.Resolver{
		WorkspaceService:   workspace.NewService(bdb, workspace.Options{OpenBalanceFunc: credit.OpenBalance}),
		MarketplaceService: marketplace.NewService(bdb, partner.Commission{CreditValueCents: cfg.CreditValueCents, Tiers: tiers}, marketplace.Options{Metrics: m}),
		CreditService:      credit.NewService(bdb),
		PartnerService:     partner.NewService(bdb),
		AuditService:       auditSvc,
		LiveService:        live.NewService(bdb, broker, auditSvc, logger),
		BillingService:     billingSvc,
		IngestService:      ingestSvc,
		VerifyService:      verifySvc,
		PipelineService:    pipelineSvc,
		ExportService:      exportSvc,
	}
	authn := auth.NewAuthenticator(auth.NewTokens(cfg.JWTSecret, cfg.JWTSecretPrevious), user.NewStore(bdb), UserCacheTTL, cfg.AdminRequireMFA)
	guard, err := buildGuardrails(cfg, bdb)
	if err != nil {
		return nil, err
	}
	router, err := buildRouter(cfg, bdb, o.read, logger, &guard)
	if err != nil {
		return nil, err
	}
	gql := graph.NewHandler(res, graph.HandlerOptions{
		Production: cfg.IsProduction(), Logger: logger,
		RecordSecurityEventFunc: func(ctx context.Context, ev audit.SecurityEvent) error {
			return audit.RecordSecurity(ctx, bdb, ev)
		},
		Limits: guard.limits, RateLimits: guard.policy, RecordViolationFunc: guard.recordViolation,
		AllowedOrigins: cfg.CORSOrigins, Loaders: res, MaxUploadBytes: cfg.MaxUploadBytes,
		AuthenticateFunc: authn.Authenticate, Reads: router, Telemetry: tel,
		WS: graph.WSOptions{
			InitTimeout: cfg.WSInitTimeout, MaxSubscriptions: cfg.WSMaxSubscriptions,
			MaxConnectionsPerUser: cfg.WSMaxConnectionsPerUser,
		},
		Metrics: m, OperationNames: gqlhttp.NewOperationNames(cfg.MetricsOperationNames, 0, 0),
	})
	// The broker's LISTEN connection (its own, outside the pool) lives as long as the server.
	// Without DATABASE_URL (an app on a test's transaction) nothing commits, so nothing listens.
	if cfg.DatabaseURL != "" {
		brokerCtx, stopBroker := context.WithCancel(context.Background())
		go func() { _ = broker.Run(brokerCtx) }()
		guard.closers = append(guard.closers, func() error { stopBroker(); return nil })
	}
	srv := httpserver.New(httpserver.Options{
		Addr: cfg.HTTPAddr, Production: cfg.IsProduction(), Logger: logger, GraphQL: gql,
		StripeWebhook:   billingSvc.WebhookHandler(),
		MaxUploadBytes:  cfg.MaxUploadBytes,
		RejectionsCSV:   ingestSvc.RejectionsCSVHandler(),
		ExportDownload:  exportSvc.DownloadHandler(),
		Authenticator:   authn,
		ReadyFunc:       func(ctx context.Context) error { return readyWithReadDB(ctx, bdb, o.read) },
		ShutdownTimeout: cfg.ShutdownTimeout,
		TrustedProxies:  guard.trustedProxies,
		CORSOrigins:     cfg.CORSOrigins,
		CloseFuncs:      guard.closers,
		Metrics:         m,
		MetricsAddr:     cfg.MetricsAddr,
		Telemetry:       tel,
	})
	return &App{Server: srv, Billing: billingSvc, Ingest: ingestSvc, Verify: verifySvc, Exports: exportSvc, Broker: broker, Live: res.LiveService, Metrics: m, db: bdb, logger: logger}, nil
}

// instrumentTransport is the transport wrapper of outgoing calls (Stripe, the verification
// providers): tracing's when it is on, else none.
func instrumentTransport(t *telemetry.Telemetry) func(http.RoundTripper) http.RoundTripper {
	if !t.Tracing() {
		return nil
	}
	return t.Transport
}

// VerifyOptions are the verification service's options from cfg.
func VerifyOptions(cfg config.Config, logger *slog.Logger) verify.Options {
	return verify.Options{
		MillionVerifierAPIKey: cfg.MillionVerifierAPIKey, MillionVerifierURL: cfg.MillionVerifierURL,
		ZeroBounceAPIKey: cfg.ZeroBounceAPIKey, ZeroBounceURL: cfg.ZeroBounceURL,
		Concurrency: cfg.VerifyConcurrency, Timeout: cfg.VerifyTimeout, MaxAttempts: cfg.VerifyMaxAttempts,
		SweepInterval: cfg.VerifySweepInterval, RefundWindow: cfg.BounceRefundWindow, Logger: logger,
	}
}

// Workers returns the background workers of this app, for a jobs.Runner.
func (a *App) Workers() *river.Workers {
	w := river.NewWorkers()
	river.AddWorker(w, billing.NewEventWorker(a.Billing))
	river.AddWorker(w, ingest.NewWorker(a.Ingest))
	river.AddWorker(w, jobs.NewCleanupWorker(a.cleanups(), a.logger))
	a.Verify.Workers(w)
	river.AddWorker(w, export.NewWorker(a.Exports))
	return w
}

// PeriodicJobs returns the jobs the leader instance schedules: the hourly clean-ups, and the
// verification sweep when verification is on.
func (a *App) PeriodicJobs() []*river.PeriodicJob {
	return append(jobs.PeriodicCleanups(a.cleanups(), time.Hour), a.Verify.PeriodicJobs()...)
}

// Queues returns the queues besides River's default one and how many of their jobs this instance
// runs at once: verification's, as many as it has provider slots (each job keeps up to twice that
// many checks going, which share the slots).
func (a *App) Queues() map[string]int {
	return map[string]int{verify.Queue: a.Verify.Concurrency()}
}

// cleanups are the hourly clean-ups: idempotency keys past their 24 hours, rate-limit refusals
// past their retention and the rejected rows of uploads older than UPLOAD_RETENTION are deleted;
// Stripe events and lead uploads whose job ended without finishing them are marked FAILED; the
// audit log's partitions for the coming months are created; exports past their retention are
// deleted with their files.
func (a *App) cleanups() map[string]jobs.CleanupFunc {
	return map[string]jobs.CleanupFunc{
		"idempotency_keys": func(ctx context.Context) (int64, error) { return idempotency.Purge(ctx, a.db) },
		"rate_limit_violations": func(ctx context.Context) (int64, error) {
			return ratelimit.PurgeViolations(ctx, a.db, time.Now().Add(-ratelimit.ViolationRetention))
		},
		"abandoned_stripe_events": a.Billing.FailAbandonedEvents,
		"audit_partitions":        func(ctx context.Context) (int64, error) { return 0, audit.EnsurePartitions(ctx, a.db) },
		"lead_rejections":         a.Ingest.PurgeRejections,
		"abandoned_lead_uploads":  a.Ingest.FailAbandonedUploads,
		"expired_exports":         func(ctx context.Context) (int64, error) { return export.PurgeExpired(ctx, a.db) },
	}
}

// buildRouter returns the read router between bdb and read (nil: everything on bdb). With
// REDIS_URL set, callers' write positions are shared through Redis, so that a caller's next
// request on any instance reads their write.
func buildRouter(cfg config.Config, bdb, read *bun.DB, logger *slog.Logger, guard *guardrails) (*db.Router, error) {
	ro := db.RouterOptions{Sticky: cfg.DatabaseReadSticky, Logger: logger}
	if read != nil && cfg.RedisURL != "" {
		client, err := ratelimit.DialRedis(cfg.RedisURL)
		if err != nil {
			return nil, err
		}
		guard.closers = append(guard.closers, client.Close)
		ro.Marks = db.NewRedisMarks(client, "")
	}
	return db.NewRouter(bdb, read, ro), nil
}

// readyWithReadDB is Ready, and the read database (when there is one) answers.
func readyWithReadDB(ctx context.Context, bdb, read *bun.DB) error {
	if err := Ready(ctx, bdb); err != nil {
		return err
	}
	if read != nil {
		if err := read.PingContext(ctx); err != nil {
			return &httpserver.NotReady{Reason: "read database unreachable", Err: err}
		}
	}
	return nil
}

// Ready reports whether the database answers and every embedded migration is applied.
func Ready(ctx context.Context, bdb *bun.DB) error {
	if err := bdb.PingContext(ctx); err != nil {
		return &httpserver.NotReady{Reason: "database unreachable", Err: err}
	}
	pending, err := db.PendingMigrations(ctx, bdb)
	if err != nil {
		return &httpserver.NotReady{Reason: "migrations unknown", Err: err}
	}
	if len(pending) > 0 {
		return &httpserver.NotReady{Reason: "migrations pending", Err: errors.New(strings.Join(pending, ", "))}
	}
	return nil
}

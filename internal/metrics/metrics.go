// Package metrics holds Leadmarket's Prometheus collectors: one Metrics, built on a registry of
// its own by internal/app and handed to the services through their options. Every method is
// safe on a nil *Metrics and then does nothing, so code and tests that do not care about metrics
// pass none. The names are the contract of docs/operations.md and deploy/prometheus/alerts.yml:
// base units, _total counters, labels from small closed sets.
package metrics

import (
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Handler labels of the HTTP metrics: one per route of internal/httpserver, "other" for the rest.
const (
	HandlerGraphQL       = "graphql"
	HandlerWebhookStripe = "webhook_stripe"
	HandlerRejectionsCSV = "rejections_csv"
	HandlerExports       = "exports"
	HandlerHealth        = "health"
	HandlerReady         = "ready"
	HandlerMetrics       = "metrics"
	HandlerGraphiQL      = "graphiql"
	HandlerOther         = "other"
)

// Outcomes of a GraphQL operation (graphql_operations_total's outcome).
const (
	OutcomeOK    = "ok"
	OutcomeError = "error"
	// OutcomeRefused is an operation stopped before it executed: a guard, the rate limiter,
	// parsing or validation.
	OutcomeRefused = "refused"
)

// Statuses of webhook_events_total.
const (
	WebhookReceived     = "received"
	WebhookProcessed    = "processed"
	WebhookIgnored      = "ignored"
	WebhookRetried      = "retried"
	WebhookFailed       = "failed"
	WebhookBadSignature = "bad_signature"
)

// Outcomes of river_jobs_total, named after the state the attempt leaves the job in.
const (
	JobCompleted = "completed"
	JobRetried   = "retried"
	JobDiscarded = "discarded"
	JobSnoozed   = "snoozed"
	JobCancelled = "cancelled"
)

// Metrics are the service's collectors on their registry. The zero value is not usable: use New;
// a nil *Metrics records nothing.
type Metrics struct {
	registry *prometheus.Registry

	httpRequests *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec
	httpInFlight *prometheus.GaugeVec
	sqlPerReq    prometheus.Histogram

	gqlOperations  *prometheus.CounterVec
	gqlDuration    *prometheus.HistogramVec
	gqlErrors      *prometheus.CounterVec
	gqlGuard       *prometheus.CounterVec
	rateLimited    *prometheus.CounterVec
	subsActive     *prometheus.GaugeVec
	subsEvents     *prometheus.CounterVec
	webhookEvents  *prometheus.CounterVec
	webhookTime    *prometheus.HistogramVec
	webhookRetries *prometheus.CounterVec
	webhookFailed  *prometheus.CounterVec
	jobs           *prometheus.CounterVec
	jobDuration    *prometheus.HistogramVec
	creditsBought  prometheus.Counter
	creditsSpent   prometheus.Counter
	leadsIngested  prometheus.Counter
	leadsRejected  *prometheus.CounterVec
	verifyCalls    *prometheus.CounterVec
}

// New returns Metrics on a new registry that also holds the Go runtime and process collectors.
func New() *Metrics {
	m := &Metrics{registry: prometheus.NewRegistry()}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	histogram := func(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels)
	}
	m.httpRequests = counter("http_requests_total", "HTTP requests by handler, method and status code.", "handler", "method", "code")
	m.httpDuration = histogram("http_request_duration_seconds",
		"HTTP request latency by handler, method and status code (a WebSocket, code 101, lasts as long as its connection).",
		prometheus.DefBuckets, "handler", "method", "code")
	m.httpInFlight = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "http_requests_in_flight",
		Help: "HTTP requests being served by handler (open WebSockets included)."}, []string{"handler"})
	m.sqlPerReq = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "http_request_sql_statements",
		Help:    "SQL statements run by one /graphql request.",
		Buckets: []float64{0, 1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 50}})
	m.gqlOperations = counter("graphql_operations_total",
		"GraphQL operations by type, name (bounded: others are \"other\") and outcome (ok, error, refused).", "type", "name", "outcome")
	m.gqlDuration = histogram("graphql_operation_duration_seconds",
		"GraphQL query and mutation latency, from the request's start to its response, by type and name.", prometheus.DefBuckets, "type", "name")
	m.gqlErrors = counter("graphql_errors_total", "GraphQL errors in responses by extensions.code.", "code")
	m.gqlGuard = counter("graphql_guard_rejections_total", "GraphQL operations refused by a query guard, by rule.", "rule")
	m.rateLimited = counter("rate_limit_refusals_total", "Operations refused by the rate limiter (RATE_LIMITED), by tier.", "tier")
	m.subsActive = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "graphql_subscriptions_active",
		Help: "GraphQL subscriptions open on this instance by root field."}, []string{"field"})
	m.subsEvents = counter("graphql_subscription_events_total", "Events sent to GraphQL subscriptions by root field.", "field")
	m.webhookEvents = counter("webhook_events_total",
		"Stripe webhook events by type and status (received, processed, ignored, retried, failed, bad_signature).", "type", "status")
	m.webhookTime = histogram("webhook_event_processing_duration_seconds", "Processing time of one attempt at a Stripe event, by type.",
		[]float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}, "type")
	m.webhookRetries = counter("webhook_event_retries_total", "Failed attempts at a Stripe event that will be retried, by type.", "type")
	m.webhookFailed = counter("webhook_events_failed_total", "Stripe events that became FAILED, by type.", "type")
	m.jobs = counter("river_jobs_total", "Job attempts worked by this instance by kind and outcome.", "kind", "outcome")
	m.jobDuration = histogram("river_job_duration_seconds", "How long one job attempt ran, by kind.",
		[]float64{.005, .01, .05, .1, .5, 1, 5, 10, 30, 60, 120, 300, 600}, "kind")
	m.creditsBought = prometheus.NewCounter(prometheus.CounterOpts{Name: "credits_purchased_total", Help: "Credits granted by Stripe payments."})
	m.creditsSpent = prometheus.NewCounter(prometheus.CounterOpts{Name: "credits_spent_total", Help: "Credits spent on lead purchases."})
	m.leadsIngested = prometheus.NewCounter(prometheus.CounterOpts{Name: "leads_ingested_total", Help: "Leads inserted from partner uploads."})
	m.leadsRejected = counter("leads_rejected_total", "Uploaded rows rejected, by rejection reason.", "reason")
	m.verifyCalls = counter("verification_calls_total",
		"Email verification provider calls by provider and result (the verdict in lower case, or error).", "provider", "result")
	m.registry.MustRegister(
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.httpRequests, m.httpDuration, m.httpInFlight, m.sqlPerReq,
		m.gqlOperations, m.gqlDuration, m.gqlErrors, m.gqlGuard, m.rateLimited, m.subsActive, m.subsEvents,
		m.webhookEvents, m.webhookTime, m.webhookRetries, m.webhookFailed, m.jobs, m.jobDuration,
		m.creditsBought, m.creditsSpent, m.leadsIngested, m.leadsRejected, m.verifyCalls,
	)
	return m
}

// Register adds collectors of other packages (the database pool, the job queues) to the
// registry; it panics when one collides with a collector already registered (static wiring).
func (m *Metrics) Register(cs ...prometheus.Collector) {
	if m == nil {
		return
	}
	m.registry.MustRegister(cs...)
}

// Gatherer is the registry, for tests that read the metrics without HTTP.
func (m *Metrics) Gatherer() prometheus.Gatherer {
	if m == nil {
		return prometheus.NewRegistry()
	}
	return m.registry
}

// Handler serves the registry in Prometheus' text format (or OpenMetrics when asked); a
// collector that fails leaves its metrics out instead of failing the scrape. Nil Metrics: 404.
func (m *Metrics) Handler() http.Handler {
	if m == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// InstrumentHandler wraps h in promhttp's instrumenting middleware under the handler label name:
// http_requests_total, http_request_duration_seconds and http_requests_in_flight. promhttp's
// writer wrapper keeps the interfaces of the writer it wraps (http.Hijacker for WebSockets) and
// Unwrap. Nil Metrics: h itself.
func (m *Metrics) InstrumentHandler(name string, h http.Handler) http.Handler {
	if m == nil {
		return h
	}
	labels := prometheus.Labels{"handler": name}
	return promhttp.InstrumentHandlerInFlight(m.httpInFlight.With(labels),
		promhttp.InstrumentHandlerDuration(m.httpDuration.MustCurryWith(labels),
			promhttp.InstrumentHandlerCounter(m.httpRequests.MustCurryWith(labels), h)))
}

// SQLStatements records the statements one /graphql request ran.
func (m *Metrics) SQLStatements(n int64) {
	if m == nil {
		return
	}
	m.sqlPerReq.Observe(float64(n))
}

// GraphQLOperation counts an operation that ended with outcome.
func (m *Metrics) GraphQLOperation(opType, name, outcome string) {
	if m == nil {
		return
	}
	m.gqlOperations.WithLabelValues(opType, name, outcome).Inc()
}

// GraphQLDuration records how long an operation took.
func (m *Metrics) GraphQLDuration(opType, name string, d time.Duration) {
	if m == nil {
		return
	}
	m.gqlDuration.WithLabelValues(opType, name).Observe(d.Seconds())
}

// GraphQLError counts an error of a response by its extensions.code (empty: "UNKNOWN").
func (m *Metrics) GraphQLError(code string) {
	if m == nil {
		return
	}
	if code == "" {
		code = "UNKNOWN"
	}
	m.gqlErrors.WithLabelValues(code).Inc()
}

// GuardRejection counts an operation a guard refused under rule (depth, complexity, ...).
func (m *Metrics) GuardRejection(rule string) {
	if m == nil {
		return
	}
	m.gqlGuard.WithLabelValues(rule).Inc()
}

// RateLimitRefusal counts an operation the rate limiter refused; tier is the schema's tier name
// (PURCHASE, BROWSE, STANDARD), recorded as purchase, browse and default.
func (m *Metrics) RateLimitRefusal(tier string) {
	if m == nil {
		return
	}
	t := strings.ToLower(tier)
	if t == "standard" {
		t = "default"
	}
	m.rateLimited.WithLabelValues(t).Inc()
}

// SubscriptionStarted counts a subscription on field as open until the returned func is called
// (once; later calls do nothing).
func (m *Metrics) SubscriptionStarted(field string) (ended func()) {
	if m == nil {
		return func() {}
	}
	g := m.subsActive.WithLabelValues(field)
	g.Inc()
	var once sync.Once
	return func() { once.Do(g.Dec) }
}

// SubscriptionEvent counts an event sent to a subscription on field.
func (m *Metrics) SubscriptionEvent(field string) {
	if m == nil {
		return
	}
	m.subsEvents.WithLabelValues(field).Inc()
}

// WebhookEvent counts a Stripe event of type typ reaching status (WebhookReceived, ...).
func (m *Metrics) WebhookEvent(typ, status string) {
	if m == nil {
		return
	}
	m.webhookEvents.WithLabelValues(typ, status).Inc()
}

// WebhookAttempt records one processing attempt at an event of type typ that took d and ended in
// status (WebhookProcessed, WebhookIgnored, WebhookRetried or WebhookFailed): the event counter,
// the duration, and the retry or failure counter.
func (m *Metrics) WebhookAttempt(typ, status string, d time.Duration) {
	if m == nil {
		return
	}
	m.webhookEvents.WithLabelValues(typ, status).Inc()
	m.webhookTime.WithLabelValues(typ).Observe(d.Seconds())
	switch status {
	case WebhookRetried:
		m.webhookRetries.WithLabelValues(typ).Inc()
	case WebhookFailed:
		m.webhookFailed.WithLabelValues(typ).Inc()
	}
}

// WebhookEventsFailed counts n events of type typ marked FAILED outside a processing attempt
// (the clean-up of events whose job ended without finishing them).
func (m *Metrics) WebhookEventsFailed(typ string, n int) {
	if m == nil || n <= 0 {
		return
	}
	m.webhookEvents.WithLabelValues(typ, WebhookFailed).Add(float64(n))
	m.webhookFailed.WithLabelValues(typ).Add(float64(n))
}

// Job records one attempt at a job of kind that ran for d and ended in outcome (JobCompleted, ...).
func (m *Metrics) Job(kind, outcome string, d time.Duration) {
	if m == nil {
		return
	}
	m.jobs.WithLabelValues(kind, outcome).Inc()
	m.jobDuration.WithLabelValues(kind).Observe(d.Seconds())
}

// CreditsPurchased counts credits granted by a Stripe payment.
func (m *Metrics) CreditsPurchased(n int64) {
	if m == nil || n <= 0 {
		return
	}
	m.creditsBought.Add(float64(n))
}

// CreditsSpent counts credits spent on a purchase.
func (m *Metrics) CreditsSpent(n int64) {
	if m == nil || n <= 0 {
		return
	}
	m.creditsSpent.Add(float64(n))
}

// LeadsIngested counts leads an upload inserted.
func (m *Metrics) LeadsIngested(n int) {
	if m == nil || n <= 0 {
		return
	}
	m.leadsIngested.Add(float64(n))
}

// LeadsRejected counts n uploaded rows rejected for reason (a rejection code).
func (m *Metrics) LeadsRejected(reason string, n int) {
	if m == nil || n <= 0 {
		return
	}
	m.leadsRejected.WithLabelValues(reason).Add(float64(n))
}

// VerificationCall counts a provider call by its result: the verdict in lower case (valid,
// invalid, risky, unknown, ...) or "error" when the call failed.
func (m *Metrics) VerificationCall(provider, status string, failed bool) {
	if m == nil {
		return
	}
	result := "error"
	if !failed && status != "" {
		result = strings.ToLower(status)
	}
	m.verifyCalls.WithLabelValues(provider, result).Inc()
}

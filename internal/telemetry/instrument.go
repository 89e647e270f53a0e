package telemetry

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/riverqueue/river/rivertype"
	"github.com/riverqueue/rivercontrib/otelriver"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/extra/bunotel"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
)

// Metrics are Prometheus's (internal/metrics, promhttp); the instrumentation here only traces, so
// every library is given a no-op meter instead of the global one.
var noMeter = metricnoop.NewMeterProvider()

// HTTPHandler wraps next in a server span per request (otelhttp), continuing the caller's trace
// from its traceparent header. Health checks, /metrics and WebSocket upgrades (a socket would be
// one span for hours; each of its operations is a trace of its own) are not traced. With tracing
// off it returns next.
func (t *Telemetry) HTTPHandler(next http.Handler) http.Handler {
	if !t.Tracing() {
		return next
	}
	return otelhttp.NewHandler(next, "http.server",
		otelhttp.WithTracerProvider(t.sdk), otelhttp.WithPropagators(t.propagator), otelhttp.WithMeterProvider(noMeter),
		otelhttp.WithFilter(func(r *http.Request) bool {
			switch r.URL.Path {
			case "/healthz", "/readyz", "/metrics":
				return false
			}
			return !strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
		}),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return SpanName(r) }),
	)
}

// SpanName is a server span's name: the method and the route that served r ("POST /graphql",
// "GET /partners/uploads/{id}/rejections.csv"), or only the method before routing, so that ids in
// paths never make span names unbounded.
func SpanName(r *http.Request) string {
	if r.Pattern == "" {
		return r.Method
	}
	if _, path, ok := strings.Cut(r.Pattern, " "); ok {
		return r.Method + " " + path
	}
	return r.Method + " " + r.Pattern
}

// Transport wraps base (nil: http.DefaultTransport) in a client span per call (otelhttp) that
// sends the trace context on. The span's url.full has no query string: the providers take API
// keys and the address being verified there. With tracing off it returns base.
func (t *Telemetry) Transport(base http.RoundTripper) http.RoundTripper {
	if !t.Tracing() {
		return base
	}
	if base == nil {
		base = http.DefaultTransport
	}
	traced := otelhttp.NewTransport(restoreQuery{base},
		otelhttp.WithTracerProvider(t.sdk), otelhttp.WithPropagators(t.propagator), otelhttp.WithMeterProvider(noMeter),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method + " " + r.URL.Host }),
	)
	return hideQuery{traced}
}

type fullURLKey struct{}

// hideQuery hands otelhttp a request without its query string (so its span records none) and
// keeps the real URL in the context for restoreQuery, below otelhttp, to send.
type hideQuery struct{ next http.RoundTripper }

func (h hideQuery) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.RawQuery == "" {
		return h.next.RoundTrip(r)
	}
	full := r.URL
	shown := *r.URL
	shown.RawQuery, shown.ForceQuery = "", false
	r2 := r.WithContext(context.WithValue(r.Context(), fullURLKey{}, full))
	r2.URL = &shown
	return h.next.RoundTrip(r2)
}

// restoreQuery puts back the URL hideQuery hid.
type restoreQuery struct{ base http.RoundTripper }

func (h restoreQuery) RoundTrip(r *http.Request) (*http.Response, error) {
	if full, ok := r.Context().Value(fullURLKey{}).(*url.URL); ok {
		r2 := *r
		r2.URL = full
		return h.base.RoundTrip(&r2)
	}
	return h.base.RoundTrip(r)
}

// QueryHook is a bun query hook that traces each SQL statement (bunotel) run inside a trace — a
// request, a job — as a child span. Its db.statement is the statement before bun puts the
// arguments in (placeholders, no values), so no contact data reaches the spans. Statements
// outside any trace (the events broker's catch-up, start-up) make no spans of their own. Add it
// only when tracing is on (Tracing).
func (t *Telemetry) QueryHook() bun.QueryHook {
	return queryHook{bunotel.NewQueryHook(
		bunotel.WithTracerProvider(t.TracerProvider()), bunotel.WithMeterProvider(noMeter),
		bunotel.WithFormattedQueries(false),
	)}
}

// queryHook starts bunotel's span only under a parent. It deliberately has no Init method, so
// bunotel's database/sql pool metrics are not registered (the pool's metrics are Prometheus's).
type queryHook struct{ otel *bunotel.QueryHook }

func (h queryHook) BeforeQuery(ctx context.Context, e *bun.QueryEvent) context.Context {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ctx
	}
	return h.otel.BeforeQuery(ctx, e)
}

func (h queryHook) AfterQuery(ctx context.Context, e *bun.QueryEvent) {
	// Without a parent BeforeQuery started nothing, and bunotel ends only a span that records.
	if trace.SpanFromContext(ctx).IsRecording() {
		h.otel.AfterQuery(ctx, e)
	}
}

// RiverPlugins are the River plugins that trace jobs (otelriver): a river.work span per attempt
// and a river.insert_many span per insert, the inserting trace's context kept in the job's
// metadata and linked from its work spans. Nil with tracing off.
func (t *Telemetry) RiverPlugins() []rivertype.Plugin {
	if !t.Tracing() {
		return nil
	}
	return []rivertype.Plugin{otelriver.NewMiddleware(&otelriver.MiddlewareConfig{
		TracerProvider: t.sdk, MeterProvider: noMeter,
		EnableTracePropagation: true, EnableWorkSpanJobKindSuffix: true,
	})}
}

// ReportJobPanic reports a job that panicked, by kind and id (jobs.RunnerOptions.ReportPanicFunc).
func (t *Telemetry) ReportJobPanic(ctx context.Context, job *rivertype.JobRow, v any, stack string) {
	t.ReportPanic(ctx, v, Report{Stack: stack, Tags: map[string]string{
		"job_kind": job.Kind, "job_id": strconv.FormatInt(job.ID, 10), "job_attempt": strconv.Itoa(job.Attempt),
	}})
}

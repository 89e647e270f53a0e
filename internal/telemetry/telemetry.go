// Package telemetry is Leadmarket's tracing and error reporting: an OpenTelemetry TracerProvider
// that exports over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set, Sentry error reports when
// SENTRY_DSN is set, and the slog handler that puts the trace id in log lines.
//
// A nil *Telemetry is valid and is everything off: Tracing reports false, TracerProvider is
// OpenTelemetry's no-op provider and the Report methods do nothing. The packages that
// instrument themselves (httpserver, graph, jobs, the SQL hook) install nothing when tracing is
// off, so it costs nothing then.
//
// The OpenTelemetry SDK reads its own standard variables besides the endpoint, which
// internal/config reads: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES (the resource),
// OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG (default parentbased_always_on),
// OTEL_EXPORTER_OTLP_HEADERS, _TIMEOUT, _COMPRESSION, _CERTIFICATE (and their _TRACES_
// forms), OTEL_BSP_* (the batch processor) and the span limits. This is the one place outside
// internal/config that lets the environment in, and only the SDK's own variables.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/getsentry/sentry-go"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// ServiceName is the service.name of the spans unless OTEL_SERVICE_NAME (or service.name in
// OTEL_RESOURCE_ATTRIBUTES) names another.
const ServiceName = "leadmarket"

// Options configure New. The zero Options turn everything off.
type Options struct {
	// OTLPEndpoint is OTEL_EXPORTER_OTLP_ENDPOINT, the collector's base URL: spans are posted to
	// its /v1/traces. Empty (and OTLPTracesEndpoint empty): no tracing.
	OTLPEndpoint string
	// OTLPTracesEndpoint is OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, the full URL spans are posted to;
	// it wins over OTLPEndpoint. Default empty.
	OTLPTracesEndpoint string
	// SpanProcessor, when set, receives the spans instead of an OTLP exporter (tests give an
	// in-memory exporter's syncer). Default nil.
	SpanProcessor sdktrace.SpanProcessor
	// SentryDSN is SENTRY_DSN. Empty: no error reports.
	SentryDSN string
	// SentryEnvironment is SENTRY_ENVIRONMENT, the reports' environment. Default empty.
	SentryEnvironment string
	// SentryTransport replaces the Sentry client's HTTP transport (tests). Default nil: Sentry's.
	SentryTransport http.RoundTripper
}

// Tracing reports whether o turns tracing on.
func (o Options) Tracing() bool {
	return o.OTLPEndpoint != "" || o.OTLPTracesEndpoint != "" || o.SpanProcessor != nil
}

// Telemetry is the process's tracing and error reporting. Its methods are safe for concurrent
// use, and on a nil *Telemetry (everything off).
type Telemetry struct {
	sdk        *sdktrace.TracerProvider
	propagator propagation.TextMapPropagator
	sentry     *sentry.Client
}

// New returns the telemetry o asks for: nil, nil when o turns nothing on. Errors name the
// variable that caused them.
func New(ctx context.Context, o Options) (*Telemetry, error) {
	if !o.Tracing() && o.SentryDSN == "" {
		return nil, nil
	}
	t := &Telemetry{}
	if o.Tracing() {
		sdk, err := newTracerProvider(ctx, o)
		if err != nil {
			return nil, err
		}
		t.sdk = sdk
		// W3C trace context, and baggage beside it, as OpenTelemetry's default propagators.
		t.propagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	}
	if o.SentryDSN != "" {
		client, err := newSentryClient(o)
		if err != nil {
			_ = t.Shutdown(ctx)
			return nil, err
		}
		t.sentry = client
	}
	return t, nil
}

func newTracerProvider(ctx context.Context, o Options) (*sdktrace.TracerProvider, error) {
	res, err := resource.New(ctx,
		// Later detectors win: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override the default
		// service name.
		resource.WithAttributes(semconv.ServiceName(ServiceName)),
		resource.WithTelemetrySDK(),
		resource.WithHost(),
		resource.WithProcessPID(),
		resource.WithFromEnv(),
	)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	if o.SpanProcessor != nil {
		opts = append(opts, sdktrace.WithSpanProcessor(o.SpanProcessor))
	} else {
		endpoint, err := TracesURL(o.OTLPEndpoint, o.OTLPTracesEndpoint)
		if err != nil {
			return nil, err
		}
		// The other OTEL_EXPORTER_OTLP_* variables (headers, timeout, compression, certificates)
		// are read by the exporter itself.
		exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(endpoint))
		if err != nil {
			return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_ENDPOINT: %w", err)
		}
		opts = append(opts, sdktrace.WithBatcher(exp))
	}
	// The sampler is OTEL_TRACES_SAMPLER's, read by the SDK (default: parent-based, always on).
	return sdktrace.NewTracerProvider(opts...), nil
}

// TracesURL is where OTLP/HTTP spans go: traces as it is (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT),
// else base with /v1/traces appended to its path (OTEL_EXPORTER_OTLP_ENDPOINT), as the OTLP
// exporter specification says.
func TracesURL(base, traces string) (string, error) {
	name, raw := "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", traces
	if traces == "" {
		name, raw = "OTEL_EXPORTER_OTLP_ENDPOINT", base
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("%s: %q is not an http(s) URL such as http://127.0.0.1:4318", name, raw)
	}
	if traces == "" {
		u.Path = strings.TrimRight(u.Path, "/") + "/v1/traces"
	}
	return u.String(), nil
}

// Tracing reports whether spans are recorded and exported.
func (t *Telemetry) Tracing() bool { return t != nil && t.sdk != nil }

// TracerProvider is the provider spans start from: OpenTelemetry's no-op one when tracing is off.
func (t *Telemetry) TracerProvider() trace.TracerProvider {
	if !t.Tracing() {
		return noop.NewTracerProvider()
	}
	return t.sdk
}

// Propagator reads and writes trace context (W3C traceparent and tracestate, and baggage) in
// HTTP headers. With tracing off it propagates nothing.
func (t *Telemetry) Propagator() propagation.TextMapPropagator {
	if !t.Tracing() {
		return propagation.NewCompositeTextMapPropagator()
	}
	return t.propagator
}

// Shutdown exports the spans still buffered and sends the error reports still queued, waiting
// until ctx ends at most.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	var errs []error
	if t.sdk != nil {
		if err := t.sdk.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("telemetry: export the last spans: %w", err))
		}
	}
	if t.sentry != nil {
		timeout := 5 * time.Second
		if d, ok := ctx.Deadline(); ok {
			timeout = time.Until(d)
		}
		if !t.sentry.Flush(timeout) {
			errs = append(errs, errors.New("telemetry: send the last error reports: timed out"))
		}
	}
	return errors.Join(errs...)
}

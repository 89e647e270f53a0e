package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/leadmarket/leadmarket/internal/telemetry"
)

// inMemory returns telemetry whose spans go to the returned exporter as they end.
func inMemory(t *testing.T) (*telemetry.Telemetry, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tel, err := telemetry.New(context.Background(), telemetry.Options{SpanProcessor: sdktrace.NewSimpleSpanProcessor(exp)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	return tel, exp
}

// Nothing set: no telemetry at all, and every instrumentation hands back what it was given.
func TestOffIsNothing(t *testing.T) {
	t.Parallel()
	tel, err := telemetry.New(context.Background(), telemetry.Options{})
	require.NoError(t, err)
	require.Nil(t, tel)
	require.False(t, tel.Tracing())
	require.False(t, tel.Reporting())
	h := http.NewServeMux()
	require.Same(t, h, tel.HTTPHandler(h), "the handler itself, not a wrapper")
	base := &http.Transport{}
	require.Same(t, base, tel.Transport(base))
	require.Nil(t, tel.RiverPlugins())
	_, span := tel.TracerProvider().Tracer("x").Start(context.Background(), "x")
	require.False(t, span.SpanContext().IsValid(), "the no-op provider")
	tel.ReportError(context.Background(), io.EOF, telemetry.Report{})
	tel.ReportPanic(context.Background(), "boom", telemetry.Report{})
	require.NoError(t, tel.Shutdown(context.Background()))
}

func TestTracesURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ base, traces, want, err string }{
		{base: "http://127.0.0.1:4318", want: "http://127.0.0.1:4318/v1/traces"},
		{base: "https://collector.example/otlp/", want: "https://collector.example/otlp/v1/traces"},
		{base: "http://a:4318", traces: "http://b:4318/custom", want: "http://b:4318/custom"},
		{base: "127.0.0.1:4318", err: "OTEL_EXPORTER_OTLP_ENDPOINT"},
		{traces: "grpc://x", err: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"},
	} {
		got, err := telemetry.TracesURL(tc.base, tc.traces)
		if tc.err != "" {
			require.ErrorContains(t, err, tc.err)
			continue
		}
		require.NoError(t, err)
		require.Equal(t, tc.want, got)
	}
}

// With OTEL_EXPORTER_OTLP_ENDPOINT set, a traced request's span reaches the collector: an
// OTLP/HTTP protobuf POST to /v1/traces naming the service and the span, with the headers
// OTEL_EXPORTER_OTLP_HEADERS gives (the SDK reads that variable itself).
func TestExportsToTheCollector(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-collector-key=k1")
	var (
		mu       sync.Mutex
		requests []*coltrace.ExportTraceServiceRequest
		paths    []string
		keys     []string
	)
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req coltrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil || r.Header.Get("Content-Type") != "application/x-protobuf" {
			http.Error(w, "bad export", http.StatusBadRequest)
			return
		}
		mu.Lock()
		requests, paths, keys = append(requests, &req), append(paths, r.Method+" "+r.URL.Path), append(keys, r.Header.Get("X-Collector-Key"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		out, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
		_, _ = w.Write(out)
	}))
	defer collector.Close()

	tel, err := telemetry.New(context.Background(), telemetry.Options{OTLPEndpoint: collector.URL})
	require.NoError(t, err)
	require.True(t, tel.Tracing())
	mux := http.NewServeMux()
	mux.HandleFunc("GET /things/{id}", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
	srv := httptest.NewServer(tel.HTTPHandler(mux))
	defer srv.Close()
	res, err := http.Get(srv.URL + "/things/42")
	require.NoError(t, err)
	res.Body.Close()
	require.NoError(t, tel.Shutdown(context.Background()), "flushes the batch")

	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, []string{"POST /v1/traces"}, paths)
	require.Equal(t, []string{"k1"}, keys)
	var names []string
	var service string
	for _, rs := range requests[0].ResourceSpans {
		for _, a := range rs.Resource.Attributes {
			if a.Key == "service.name" {
				service = a.Value.GetStringValue()
			}
		}
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				names = append(names, s.Name)
			}
		}
	}
	require.Equal(t, "leadmarket", service)
	require.Equal(t, []string{"GET /things/{id}"}, names, "named after the route, not the path with its id")
}

// Every line logged inside a span names its trace and span; a line outside names none.
func TestLogLinesNameTheTrace(t *testing.T) {
	t.Parallel()
	tel, _ := inMemory(t)
	var buf bytes.Buffer
	logger := slog.New(telemetry.LogHandler(slog.NewJSONHandler(&buf, nil))).With("component", "test")
	ctx, span := tel.TracerProvider().Tracer("test").Start(context.Background(), "op")
	logger.InfoContext(ctx, "inside")
	span.End()
	logger.InfoContext(context.Background(), "outside")

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	require.Len(t, lines, 2)
	var inside, outside map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &inside))
	require.NoError(t, json.Unmarshal([]byte(lines[1]), &outside))
	require.Equal(t, span.SpanContext().TraceID().String(), inside["trace_id"])
	require.Equal(t, span.SpanContext().SpanID().String(), inside["span_id"])
	require.Equal(t, "test", inside["component"])
	require.NotContains(t, outside, "trace_id")
}

// An outgoing call is a client span that passes the trace on (traceparent) and records no query
// string, while the server still gets the whole URL.
func TestTransportHidesTheQuery(t *testing.T) {
	t.Parallel()
	tel, exp := inMemory(t)
	var gotQuery, gotTraceparent string
	provider := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotQuery, gotTraceparent = r.URL.RawQuery, r.Header.Get("Traceparent")
		_, _ = io.WriteString(w, `{"result":"ok"}`)
	}))
	defer provider.Close()
	client := &http.Client{Transport: tel.Transport(nil)}
	ctx, parent := tel.TracerProvider().Tracer("test").Start(context.Background(), "job")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, provider.URL+"/api/v3/?api=SECRETKEY&email=jane%40example.com", nil)
	require.NoError(t, err)
	res, err := client.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	parent.End()

	require.Equal(t, "api=SECRETKEY&email=jane%40example.com", gotQuery)
	require.Contains(t, gotTraceparent, parent.SpanContext().TraceID().String())
	var client1 tracetest.SpanStub
	for _, s := range exp.GetSpans() {
		if s.SpanKind == trace.SpanKindClient {
			client1 = s
		}
	}
	require.Equal(t, parent.SpanContext().SpanID(), client1.Parent.SpanID())
	for _, a := range client1.Attributes {
		require.NotContains(t, a.Value.String(), "SECRETKEY", a.Key)
		require.NotContains(t, a.Value.String(), "jane", a.Key)
	}
}

func TestScrub(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"lead jane.doe+x@acme-1234.example failed":                 "lead [email] failed",
		"call +14155552671 or (415) 555-2671 or 4155552671":        "call [phone] or [phone] or [phone]",
		"Authorization: Bearer abc.def.ghi":                        "Authorization: [token]",
		"token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl!": "token [token]!",
		"key sk_test_51Abc and whsec_abc123":                       "key [secret] and [secret]",
		"lead 6422b93b-8a85-5073-9ea4-cbb4167a7930 at 2026-12-01":  "lead 6422b93b-8a85-5073-9ea4-cbb4167a7930 at 2026-12-01",
	} {
		require.Equal(t, want, telemetry.Scrub(in), in)
	}
}

// Shutdown waits no longer than its context when the collector does not answer.
func TestShutdownIsBounded(t *testing.T) {
	t.Parallel()
	hang := make(chan struct{})
	collector := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-hang }))
	defer collector.Close()
	defer close(hang)
	tel, err := telemetry.New(context.Background(), telemetry.Options{OTLPEndpoint: collector.URL})
	require.NoError(t, err)
	_, span := tel.TracerProvider().Tracer("test").Start(context.Background(), "op")
	span.End()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_ = tel.Shutdown(ctx)
	require.Less(t, time.Since(start), 3*time.Second)
}

package telemetry_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/leadmarket/leadmarket/internal/telemetry"
)

// FakeSentry is a local Sentry endpoint: it takes the envelopes the SDK posts to
// /api/<project>/envelope/ and keeps their items.
type fakeSentry struct {
	*httptest.Server
	mu     sync.Mutex
	raw    []string
	events []map[string]any
}

func newFakeSentry(t *testing.T) *fakeSentry {
	t.Helper()
	f := &fakeSentry{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/api/42/envelope/" {
			http.NotFound(w, r)
			return
		}
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = zr
		}
		b, _ := io.ReadAll(body)
		f.mu.Lock()
		defer f.mu.Unlock()
		f.raw = append(f.raw, string(b))
		// An envelope: a header line, then per item a header line and a payload line.
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		sc.Scan()
		for sc.Scan() {
			var item struct{ Type string }
			_ = json.Unmarshal(sc.Bytes(), &item)
			if !sc.Scan() {
				break
			}
			if item.Type == "event" {
				var ev map[string]any
				if json.Unmarshal(sc.Bytes(), &ev) == nil {
					f.events = append(f.events, ev)
				}
			}
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(f.Close)
	return f
}

// DSN is the DSN that points the SDK at f.
func (f *fakeSentry) DSN() string {
	return strings.Replace(f.URL, "http://", "http://public@", 1) + "/42"
}

// Events returns the events received so far, and every envelope's text.
func (f *fakeSentry) Events() ([]map[string]any, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]map[string]any(nil), f.events...), strings.Join(f.raw, "\n")
}

// WaitEvents is Events once n events have arrived (failing after 5 s). Shutdown's flush can
// return before the last report has left: sentry-go v0.46's scheduler may have taken it from
// its buffer, and not yet handed it to the transport, when Flush finds both empty (seen in CI:
// no event after Shutdown returned).
func (f *fakeSentry) WaitEvents(t *testing.T, n int) ([]map[string]any, string) {
	t.Helper()
	require.Eventually(t, func() bool {
		events, _ := f.Events()
		return len(events) >= n
	}, 5*time.Second, 5*time.Millisecond, "%d events reach Sentry", n)
	return f.Events()
}

// An error report reaches Sentry with the request id, the operation, the user's id and the
// trace, and without the email address, phone number or token its message held.
func TestReportErrorReachesSentryScrubbed(t *testing.T) {
	t.Parallel()
	sentry := newFakeSentry(t)
	tel, err := telemetry.New(context.Background(), telemetry.Options{
		SentryDSN: sentry.DSN(), SentryEnvironment: "test", SpanProcessor: nopProcessor(),
	})
	require.NoError(t, err)
	ctx, span := tel.TracerProvider().Tracer("test").Start(context.Background(), "op")
	cause := fmt.Errorf("verify jane.doe@acme.example (+14155552671) with Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln: %w", errors.New("connection reset"))
	tel.ReportError(ctx, cause, telemetry.Report{RequestID: "req-123", Operation: "Buy", UserID: "user-1", Tags: map[string]string{"path": "purchaseLeads"}})
	tel.ReportPanic(ctx, "index out of range for jane.doe@acme.example", telemetry.Report{RequestID: "req-124"})
	span.End()
	require.NoError(t, tel.Shutdown(context.Background()))

	events, raw := sentry.WaitEvents(t, 2)
	require.Len(t, events, 2, raw)
	byRequest := map[string]map[string]any{}
	for _, ev := range events {
		tags := ev["tags"].(map[string]any)
		byRequest[tags["request_id"].(string)] = ev
		require.Equal(t, span.SpanContext().TraceID().String(), tags["trace_id"])
		require.Equal(t, span.SpanContext().TraceID().String(), ev["contexts"].(map[string]any)["trace"].(map[string]any)["trace_id"])
		require.Equal(t, "test", ev["environment"])
	}
	errEv, panicEv := byRequest["req-123"], byRequest["req-124"]
	require.NotNil(t, errEv, raw)
	require.NotNil(t, panicEv, raw)
	tags := errEv["tags"].(map[string]any)
	require.Equal(t, "Buy", tags["operation"])
	require.Equal(t, "purchaseLeads", tags["path"])
	require.Equal(t, map[string]any{"id": "user-1"}, errEv["user"])
	require.Equal(t, "error", errEv["level"])
	require.Equal(t, "fatal", panicEv["level"])
	require.Contains(t, raw, "connection reset")
	require.Contains(t, raw, "[email]")
	for _, secret := range []string{"jane.doe", "acme.example", "14155552671", "eyJhbGciOiJIUzI1NiJ9", "Bearer"} {
		require.NotContains(t, raw, secret)
	}
}

// What the SDK's integrations could add about a request (its body, cookies, credentials, query
// string) is removed before an event leaves.
func TestRequestDataNeverLeaves(t *testing.T) {
	t.Parallel()
	sentry := newFakeSentry(t)
	tel, err := telemetry.New(context.Background(), telemetry.Options{SentryDSN: sentry.DSN()})
	require.NoError(t, err)
	require.False(t, tel.Tracing(), "error reporting alone traces nothing")
	tel.ReportWithRequest(context.Background(), errors.New("boom"), httptest.NewRequest(http.MethodPost,
		"/graphql?token=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln&email=jane%40acme.example",
		strings.NewReader(`{"query":"mutation { login(email: \"jane@acme.example\") }"}`)))
	require.NoError(t, tel.Shutdown(context.Background()))
	events, raw := sentry.WaitEvents(t, 1)
	require.Len(t, events, 1, raw)
	require.Contains(t, raw, "/graphql")
	for _, secret := range []string{"jane", "eyJhbGciOiJIUzI1NiJ9", "secret-cookie", "Bearer", "mutation"} {
		require.NotContains(t, raw, secret)
	}
}

func nopProcessor() sdktrace.SpanProcessor {
	return sdktrace.NewSimpleSpanProcessor(tracetest.NewInMemoryExporter())
}

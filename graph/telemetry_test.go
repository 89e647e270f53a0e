package graph_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/leadmarket/leadmarket/graph"
	"github.com/leadmarket/leadmarket/graph/model"
	"github.com/leadmarket/leadmarket/internal/auth"
	"github.com/leadmarket/leadmarket/internal/httpserver"
	"github.com/leadmarket/leadmarket/internal/telemetry"
)

// The contact data and credentials the failing resolvers below put in their errors and panics.
const (
	secretEmail = "jane.doe@acme-secret.example"
	secretPhone = "+14155550199"
	goodToken   = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyLTEifQ.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg"
)

// faultyRoot is the real resolver root with marketplaceLeads failing without a code (an
// INTERNAL error) and lead panicking, each with contact data in what it says.
type faultyRoot struct{ *graph.Resolver }

func (r faultyRoot) Query() graph.QueryResolver { return faultyQuery{r.Resolver.Query()} }

type faultyQuery struct{ graph.QueryResolver }

func (faultyQuery) MarketplaceLeads(context.Context, *int, *string, *model.LeadFilter, *model.LeadOrder, *string) (*model.LeadConnection, error) {
	return nil, fmt.Errorf("load page for %s (%s): %w", secretEmail, secretPhone, errors.New("connection reset by peer"))
}

func (faultyQuery) Lead(context.Context, string) (*model.Lead, error) {
	panic("lead for " + secretEmail + " is nil")
}

type tokenAuthenticator struct{}

func (tokenAuthenticator) Authenticate(_ context.Context, header string) (*auth.Caller, error) {
	if header == "Bearer "+goodToken {
		return &auth.Caller{UserID: "user-1", Email: secretEmail}, nil
	}
	return nil, nil
}

// fakeSentry is a local Sentry endpoint keeping the events of the envelopes posted to
// /api/7/envelope/.
type fakeSentry struct {
	mu     sync.Mutex
	raw    strings.Builder
	events []map[string]any
}

func (f *fakeSentry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/api/7/envelope/" {
		http.NotFound(w, r)
		return
	}
	b, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.raw.Write(b)
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	sc.Scan() // the envelope's header
	for sc.Scan() {
		var item struct{ Type string }
		_ = json.Unmarshal(sc.Bytes(), &item)
		if !sc.Scan() {
			break
		}
		var ev map[string]any
		if item.Type == "event" && json.Unmarshal(sc.Bytes(), &ev) == nil {
			f.events = append(f.events, ev)
		}
	}
}

// An INTERNAL error and a resolver's panic, through the real HTTP server and GraphQL handler,
// reach a local Sentry endpoint once each, tagged with the request id the client was shown,
// the operation, the user's id and the trace; neither the contact data in the error and the
// panic, nor the token, nor the request's body leaves. The error presenter's log line carries the
// same trace id.
func TestInternalErrorsAndPanicsReachSentry(t *testing.T) {
	t.Parallel()
	sentry := &fakeSentry{}
	sentrySrv := httptest.NewServer(sentry)
	defer sentrySrv.Close()
	spans := tracetest.NewInMemoryExporter()
	tel, err := telemetry.New(context.Background(), telemetry.Options{
		SentryDSN:     strings.Replace(sentrySrv.URL, "http://", "http://public@", 1) + "/7",
		SpanProcessor: sdktrace.NewSimpleSpanProcessor(spans),
	})
	require.NoError(t, err)
	var logs bytes.Buffer
	var logMu sync.Mutex
	logger := slog.New(telemetry.LogHandler(slog.NewJSONHandler(lockedWriter{&logMu, &logs}, nil)))
	gql := graph.NewHandler(faultyRoot{&graph.Resolver{}}, graph.HandlerOptions{Logger: logger, Telemetry: tel})
	srv := httptest.NewServer(httpserver.New(httpserver.Options{
		Logger: logger, GraphQL: gql, Authenticator: tokenAuthenticator{}, Telemetry: tel,
	}).Handler())
	defer srv.Close()

	post := func(query string) (requestID string, body map[string]any) {
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/graphql", strings.NewReader(fmt.Sprintf(`{"query":%q}`, query)))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+goodToken)
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer res.Body.Close()
		require.NoError(t, json.NewDecoder(res.Body).Decode(&body))
		return res.Header.Get("X-Request-Id"), body
	}
	browseID, browse := post(`query Browse { marketplaceLeads(first: 5) { edges { node { id } } } }`)
	leadID, lead := post(`query OneLead { lead(id: "` + secretPhone + `") { id } }`)
	for id, body := range map[string]map[string]any{browseID: browse, leadID: lead} {
		errs := body["errors"].([]any)
		require.Len(t, errs, 1, body)
		ext := errs[0].(map[string]any)["extensions"].(map[string]any)
		require.Equal(t, "INTERNAL", ext["code"])
		require.Equal(t, id, ext["requestId"], "the client sees the request id the report is tagged with")
		require.Equal(t, "internal error", errs[0].(map[string]any)["message"])
	}
	// The operation and its root field are spans, the field's marked failed by its code alone.
	byName := map[string]tracetest.SpanStub{}
	servers := map[trace.TraceID]tracetest.SpanStub{}
	for _, s := range spans.GetSpans() {
		byName[s.Name] = s
		if s.Name == "POST /graphql" {
			servers[s.SpanContext.TraceID()] = s
		}
	}
	require.NoError(t, tel.Shutdown(context.Background()))
	require.Contains(t, byName, "query Browse")
	require.Contains(t, byName, "Query.marketplaceLeads")
	op, field := byName["query Browse"], byName["Query.marketplaceLeads"]
	require.Equal(t, op.SpanContext.SpanID(), field.Parent.SpanID(), "spans: %v", byName)
	require.Equal(t, servers[op.SpanContext.TraceID()].SpanContext.SpanID(), op.Parent.SpanID(), "under the request's span")
	require.Equal(t, codes.Error, field.Status.Code)
	require.Equal(t, "INTERNAL", field.Status.Description)
	require.NotContains(t, fmt.Sprint(field.Attributes, field.Events, op.Attributes), secretEmail)
	require.Contains(t, byName, "query OneLead")

	// Shutdown flushes the reports; on a loaded machine the fake's handler may still be storing
	// the last one when Flush returns.
	require.Eventually(t, func() bool {
		sentry.mu.Lock()
		defer sentry.mu.Unlock()
		return len(sentry.events) >= 2
	}, 5*time.Second, 20*time.Millisecond)
	sentry.mu.Lock()
	defer sentry.mu.Unlock()
	raw := sentry.raw.String()
	require.Len(t, sentry.events, 2, "one report each, the panic not again as an INTERNAL error: %s", raw)
	byRequest := map[string]map[string]any{}
	for _, ev := range sentry.events {
		tags := ev["tags"].(map[string]any)
		byRequest[tags["request_id"].(string)] = ev
		require.Equal(t, map[string]any{"id": "user-1"}, ev["user"])
		require.Regexp(t, "^[0-9a-f]{32}$", tags["trace_id"])
	}
	require.Equal(t, "Browse", byRequest[browseID]["tags"].(map[string]any)["operation"])
	require.Equal(t, "marketplaceLeads", byRequest[browseID]["tags"].(map[string]any)["path"])
	require.Equal(t, "error", byRequest[browseID]["level"])
	require.Equal(t, "OneLead", byRequest[leadID]["tags"].(map[string]any)["operation"])
	require.Equal(t, "fatal", byRequest[leadID]["level"])
	require.Contains(t, raw, "connection reset by peer")
	for _, secret := range []string{secretEmail, "acme-secret", "4155550199", goodToken, "eyJhbGciOiJIUzI1NiJ9", "marketplaceLeads(first"} {
		require.NotContains(t, raw, secret)
	}

	// The presenter's log line for the INTERNAL error names the trace the report names.
	logMu.Lock()
	defer logMu.Unlock()
	var found bool
	for line := range strings.Lines(logs.String()) {
		var l map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &l))
		if l["msg"] == "internal error" && l["request_id"] == browseID {
			found = true
			require.Equal(t, byRequest[browseID]["tags"].(map[string]any)["trace_id"], l["trace_id"])
		}
	}
	require.True(t, found, logs.String())
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

package httpserver

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/leadmarket/leadmarket/internal/metrics"
)

// Each route is counted under its handler label; a request no route takes is "other" and still
// gets the 404, or the 405 with Allow, it would get without metrics.
func TestRoutesAreCountedByHandler(t *testing.T) {
	m := metrics.New()
	srv := New(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), GraphQL: http.NotFoundHandler(),
		StripeWebhook: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }),
		Authenticator: noAuth{}, Metrics: m})
	do := func(method, path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader("{}")))
		return rec
	}
	require.Equal(t, http.StatusOK, do(http.MethodGet, "/healthz").Code)
	require.Equal(t, http.StatusOK, do(http.MethodPost, "/webhooks/stripe").Code)
	rec := do(http.MethodPost, "/healthz")
	require.Equal(t, http.StatusMethodNotAllowed, rec.Code)
	require.Contains(t, rec.Header().Get("Allow"), "GET")
	require.Equal(t, http.StatusNotFound, do(http.MethodGet, "/nowhere").Code)
	require.Equal(t, http.StatusOK, do(http.MethodGet, "/metrics").Code)

	want := `
# HELP http_requests_total HTTP requests by handler, method and status code.
# TYPE http_requests_total counter
http_requests_total{code="200",handler="health",method="get"} 1
http_requests_total{code="200",handler="metrics",method="get"} 1
http_requests_total{code="200",handler="webhook_stripe",method="post"} 1
http_requests_total{code="404",handler="other",method="get"} 1
http_requests_total{code="405",handler="other",method="post"} 1
`
	require.NoError(t, testutil.GatherAndCompare(m.Gatherer(), strings.NewReader(want), "http_requests_total"))
}

package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/leadmarket/leadmarket/internal/app"
	"github.com/leadmarket/leadmarket/internal/config"
	"github.com/leadmarket/leadmarket/internal/dbtest"
)

// serve says once at start whether email verification runs: off (and why) without a key.
func TestServeSaysWhetherVerificationRuns(t *testing.T) {
	for _, tc := range []struct {
		vars map[string]string
		want string
	}{
		{nil, "email verification is off: neither MILLIONVERIFIER_API_KEY nor ZEROBOUNCE_API_KEY is set; leads stay PENDING"},
		{map[string]string{"ZEROBOUNCE_API_KEY": "zb"}, "email verification is on"},
	} {
		cfg, err := config.FromEnv(func(k string) (string, bool) { v, ok := tc.vars[k]; return v, ok })
		require.NoError(t, err)
		var logs bytes.Buffer
		logger := slog.New(slog.NewTextHandler(&logs, nil))
		a, err := app.Build(cfg, dbtest.TxDB(t), logger)
		require.NoError(t, err)
		logVerification(logger, a)
		require.Equal(t, 1, strings.Count(logs.String(), "email verification"), logs.String())
		require.Contains(t, logs.String(), tc.want)
	}
}

// With OTEL_EXPORTER_OTLP_ENDPOINT set, serve's telemetry exports the spans of a request to that
// collector (OTLP/HTTP, POST /v1/traces), from the configuration alone; unset, there is none.
func TestServeExportsTracesWhenTheEndpointIsSet(t *testing.T) {
	var mu sync.Mutex
	var exported [][]byte
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/v1/traces" {
			b, _ := io.ReadAll(r.Body)
			mu.Lock()
			exported = append(exported, b)
			mu.Unlock()
		}
	}))
	defer collector.Close()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))

	cfg, err := config.FromEnv(func(string) (string, bool) { return "", false })
	require.NoError(t, err)
	tel, err := startTelemetry(context.Background(), cfg, logger)
	require.NoError(t, err)
	require.Nil(t, tel, "nothing set: no telemetry")

	cfg, err = config.FromEnv(func(k string) (string, bool) {
		v, ok := map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": collector.URL}[k]
		return v, ok
	})
	require.NoError(t, err)
	tel, err = startTelemetry(context.Background(), cfg, logger)
	require.NoError(t, err)
	a, err := app.Build(cfg, dbtest.TxDB(t), logger, app.WithTelemetry(tel))
	require.NoError(t, err)
	r := httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader(`{"query":"query Ping { __typename }"}`))
	r.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	a.Server.Handler().ServeHTTP(w, r)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	require.NoError(t, tel.Shutdown(context.Background()))

	mu.Lock()
	defer mu.Unlock()
	all := string(bytes.Join(exported, nil))
	require.Contains(t, all, "POST /graphql", "the request's span reached the collector")
	require.Contains(t, all, "query Ping")
	require.Contains(t, all, "leadmarket", "service.name")
}

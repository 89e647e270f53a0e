package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/leadmarket/leadmarket/internal/config"
	"github.com/leadmarket/leadmarket/internal/dbtest"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// serve with METRICS_ADDR answers /metrics there and not on HTTP_ADDR, stops both on its
// signal, and refuses to start when METRICS_ADDR cannot be had, naming it.
func TestServeMetricsAddr(t *testing.T) {
	ctx := context.Background()
	bdb := dbtest.FreshDB(t)
	httpAddr, metricsAddr := freeAddr(t), freeAddr(t)
	vars := map[string]string{"DATABASE_URL": dbtest.URL(dbtest.NameOf(ctx, bdb)), "HTTP_ADDR": httpAddr,
		"METRICS_ADDR": metricsAddr, "ENV": "test"}
	cfg, err := config.FromEnv(func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
	require.NoError(t, err)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))

	serveCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- serve(serveCtx, cfg, logger, nil) }()
	get := func(addr string) (int, string) {
		res, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return 0, err.Error()
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	require.Eventually(t, func() bool { code, _ := get(metricsAddr); return code == http.StatusOK }, 60*time.Second, 50*time.Millisecond)
	code, body := get(metricsAddr)
	require.Equal(t, http.StatusOK, code)
	require.True(t, strings.Contains(body, "db_pool_max_open_connections") && strings.Contains(body, "river_jobs_available"), body)
	code, _ = get(httpAddr)
	require.Equal(t, http.StatusNotFound, code, "with METRICS_ADDR, not on the main address")
	stop()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(60 * time.Second):
		t.Fatal("serve did not stop")
	}
	code, _ = get(metricsAddr)
	require.Zero(t, code, "the metrics listener stopped with the server")

	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer taken.Close()
	cfg.MetricsAddr, cfg.HTTPAddr = taken.Addr().String(), freeAddr(t)
	err = serve(ctx, cfg, logger, nil)
	require.ErrorContains(t, err, "METRICS_ADDR")
}

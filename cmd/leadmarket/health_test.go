package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/leadmarket/leadmarket/internal/httpserver"
)

// serveReady runs the real HTTP server (its /readyz) on a loopback port with ready as its
// ReadyFunc and returns the address.
func serveReady(t *testing.T, ready func(context.Context) error) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: httpserver.New(httpserver.Options{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), GraphQL: http.NotFoundHandler(), ReadyFunc: ready,
	}).Handler()}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// `leadmarket health` (the image's health check) succeeds on a ready server found through
// HTTP_ADDR, even a wildcard one, and fails with /readyz's reason on one that is not ready.
func TestHealth(t *testing.T) {
	ctx := context.Background()
	t.Setenv("LOG_LEVEL", "error")

	addr := serveReady(t, func(context.Context) error { return nil })
	_, port, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	t.Setenv("HTTP_ADDR", "0.0.0.0:"+port)
	var out bytes.Buffer
	require.NoError(t, run(ctx, []string{"health"}, &out, io.Discard))
	require.Equal(t, "ready\n", out.String())

	notReady := serveReady(t, func(context.Context) error {
		return &httpserver.NotReady{Reason: "migrations pending", Err: errors.New("20991231000001_x")}
	})
	err = run(ctx, []string{"health", "--url", "http://" + notReady + "/readyz"}, io.Discard, io.Discard)
	require.ErrorContains(t, err, "migrations pending")

	// Nothing listening: an error, not a hang (the port of a closed listener).
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := ln.Addr().String()
	require.NoError(t, ln.Close())
	require.Error(t, run(ctx, []string{"health", "--url", "http://" + closed + "/readyz"}, io.Discard, io.Discard))
}

func TestReadyURL(t *testing.T) {
	for addr, want := range map[string]string{
		"0.0.0.0:8080":   "http://127.0.0.1:8080/readyz",
		":8080":          "http://127.0.0.1:8080/readyz",
		"[::]:8080":      "http://127.0.0.1:8080/readyz",
		"10.0.0.5:9000":  "http://10.0.0.5:9000/readyz",
		"localhost:8080": "http://localhost:8080/readyz",
	} {
		got, err := readyURL(addr)
		require.NoError(t, err, addr)
		require.Equal(t, want, got, addr)
	}
	_, err := readyURL("8080")
	require.Error(t, err)
}

// Package httpserver serves Leadmarket over HTTP: /graphql, GraphiQL, health, readiness and
// metrics, with request ids, structured logs, authentication and graceful shutdown.
package httpserver

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/99designs/gqlgen/graphql/playground"

	"github.com/leadmarket/leadmarket/internal/metrics"
	"github.com/leadmarket/leadmarket/internal/telemetry"
)

// NotReady is a ReadyFunc error: Reason ("database unreachable") is what the public /readyz
// says; Err, with connection details, goes only to the log.
type NotReady struct {
	Reason string
	Err    error
}

func (e *NotReady) Error() string { return e.Reason + ": " + e.Err.Error() }
func (e *NotReady) Unwrap() error { return e.Err }

// Options configure the server.
type Options struct {
	// Addr is the listen address (HTTP_ADDR).
	Addr string
	// Production turns GraphiQL and the X-SQL-Statements debug header off.
	Production bool
	Logger     *slog.Logger
	// GraphQL serves /graphql.
	GraphQL http.Handler
	// StripeWebhook serves POST /webhooks/stripe; it is never rate limited. Nil: not served.
	StripeWebhook http.Handler
	// ExportDownload serves /exports/{file} (GET an export's CSV, file being "<id>.csv"), behind
	// CORS_ORIGINS and the same bearer-token authentication as /graphql: the handler finds the
	// caller in the request's context (auth.CallerFrom). Nil: not served.
	ExportDownload http.Handler
	// Authenticator turns the Authorization header into the request's caller.
	Authenticator Authenticator
	// ReadyFunc reports whether the service can take traffic (database reachable, migrations
	// current); nil means always ready. /readyz shows a NotReady's reason and nothing more of
	// an error; the whole error is logged.
	ReadyFunc func(ctx context.Context) error
	// ShutdownTimeout bounds graceful shutdown. Default 20s.
	ShutdownTimeout time.Duration
	// MaxBodyBytes limits a request body. Default 2 MiB.
	MaxBodyBytes int64
	// MaxUploadBytes limits the body of a multipart (file upload) request to /graphql
	// (MAX_UPLOAD_BYTES); the GraphQL handler answers 413 above it. Default 200 MiB.
	MaxUploadBytes int64
	// RejectionsCSV serves GET /partners/uploads/{id}/rejections.csv, authenticated like
	// /graphql. Nil: not served.
	RejectionsCSV http.Handler
	// TrustedProxies (TRUSTED_PROXIES) are the peers whose X-Forwarded-For names the client;
	// the client's IP is what audit entries record and anonymous rate limits are keyed by.
	// Default none: the direct peer is the client.
	TrustedProxies []netip.Prefix
	// CORSOrigins (CORS_ORIGINS) are the browser origins allowed to call /graphql; "*" allows
	// any. Default none.
	CORSOrigins []string
	// CloseFuncs run once Run has shut the server down (the rate limiter's Redis client).
	CloseFuncs []func() error
	// Metrics instruments every route (promhttp's middleware, handler label per route) and is
	// what /metrics serves. Default nil: no HTTP metrics, and /metrics answers 404.
	Metrics *metrics.Metrics
	// MetricsAddr is METRICS_ADDR. Set: /metrics is not on the main address, only on this one
	// (cmd/leadmarket listens on it and calls RunMetrics). Empty: /metrics is on the main address
	// outside production, and not served at all in production.
	MetricsAddr string
	// Telemetry traces each request (a server span continuing the caller's traceparent) when
	// tracing is on, and reports panics to Sentry. Default nil: neither.
	Telemetry *telemetry.Telemetry
}

// Server is the HTTP server.
type Server struct {
	opts    Options
	handler http.Handler
	// metricsHandler serves /metrics on MetricsAddr; nil without one.
	metricsHandler http.Handler
}

// New returns a Server.
func New(o Options) *Server {
	if o.ShutdownTimeout == 0 {
		o.ShutdownTimeout = 20 * time.Second
	}
	if o.MaxBodyBytes == 0 {
		o.MaxBodyBytes = 2 << 20
	}
	if o.MaxUploadBytes == 0 {
		o.MaxUploadBytes = 200 << 20
	}
	m := o.Metrics
	// routes knows every pattern, so that a request no route takes gets the 404 or 405 (with
	// Allow) it would get without the catch-all that counts it under handler="other".
	mux, routes := http.NewServeMux(), http.NewServeMux()
	handle := func(pattern, name string, h http.Handler) {
		mux.Handle(pattern, m.InstrumentHandler(name, h))
		routes.Handle(pattern, http.NotFoundHandler())
	}
	gql := authenticate(o.Authenticator, o.Logger)(o.GraphQL)
	handle("/graphql", metrics.HandlerGraphQL, cors(o.CORSOrigins)(limitBody(gql, o.MaxBodyBytes, o.MaxUploadBytes)))
	if o.RejectionsCSV != nil {
		handle("GET /partners/uploads/{id}/rejections.csv", metrics.HandlerRejectionsCSV, authenticate(o.Authenticator, o.Logger)(o.RejectionsCSV))
	}
	if o.StripeWebhook != nil {
		handle("POST /webhooks/stripe", metrics.HandlerWebhookStripe, o.StripeWebhook)
	}
	if o.ExportDownload != nil {
		// Any method: CORS answers a browser's preflight, the handler refuses all but GET and HEAD.
		handle("/exports/{file}", metrics.HandlerExports, cors(o.CORSOrigins)(authenticate(o.Authenticator, o.Logger)(o.ExportDownload)))
	}
	handle("GET /healthz", metrics.HandlerHealth, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}))
	handle("GET /readyz", metrics.HandlerReady, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o.ReadyFunc != nil {
			ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
			defer cancel()
			if err := o.ReadyFunc(ctx); err != nil {
				o.Logger.WarnContext(r.Context(), "not ready", "err", err)
				reason := "not ready"
				if nr := (*NotReady)(nil); errors.As(err, &nr) {
					reason = nr.Reason
				}
				writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "reason": reason})
				return
			}
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	}))
	if o.MetricsAddr == "" && !o.Production {
		handle("GET /metrics", metrics.HandlerMetrics, m.Handler())
	}
	if !o.Production {
		handle("GET /{$}", metrics.HandlerGraphiQL, withPageCSP(playground.Handler("Leadmarket GraphiQL", "/graphql"), "https://cdn.jsdelivr.net"))
	}
	mux.Handle("/", m.InstrumentHandler(metrics.HandlerOther, routes))
	s := &Server{opts: o, handler: o.Telemetry.HTTPHandler(requestContext(o, m)(securityHeaders(o.Production)(mux)))}
	if o.MetricsAddr != "" {
		metricsMux := http.NewServeMux()
		metricsMux.Handle("GET /metrics", m.InstrumentHandler(metrics.HandlerMetrics, m.Handler()))
		s.metricsHandler = metricsMux
	}
	return s
}

// MetricsHandler is what RunMetrics serves (/metrics alone), or nil when MetricsAddr is empty.
func (s *Server) MetricsHandler() http.Handler { return s.metricsHandler }

// RunMetrics serves /metrics alone on ln (the METRICS_ADDR listener) until ctx ends. Without
// MetricsAddr it refuses to run.
func (s *Server) RunMetrics(ctx context.Context, ln net.Listener) error {
	if s.metricsHandler == nil {
		_ = ln.Close()
		return errors.New("metrics: no METRICS_ADDR configured")
	}
	srv := &http.Server{Handler: s.metricsHandler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.opts.Logger.Info("serving metrics", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return err
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// limitBody bounds a request's body: a multipart one (a file upload) to uploadBytes, any other
// to bodyBytes.
func limitBody(next http.Handler, bodyBytes, uploadBytes int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		limit := bodyBytes
		if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "multipart/form-data" {
			limit = uploadBytes
		}
		r2 := *r
		r2.Body = http.MaxBytesReader(w, r.Body, limit)
		next.ServeHTTP(w, &r2)
	})
}

// Handler returns the server's whole handler, for in-process tests.
func (s *Server) Handler() http.Handler { return s.handler }

// Run serves on ln until ctx ends, then shuts down gracefully: it stops accepting, lets
// in-flight requests finish within ShutdownTimeout, and returns.
func (s *Server) Run(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	defer func() {
		for _, f := range s.opts.CloseFuncs {
			if err := f(); err != nil {
				s.opts.Logger.Error("close after shutdown", "err", err)
			}
		}
	}()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.opts.Logger.Info("serving", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.opts.Logger.Info("shutting down", "timeout", s.opts.ShutdownTimeout.String())
	shutdownCtx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return err
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

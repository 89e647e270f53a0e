package httpserver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/leadmarket/leadmarket/internal/apperr"
	"github.com/leadmarket/leadmarket/internal/auth"
	"github.com/leadmarket/leadmarket/internal/db"
	"github.com/leadmarket/leadmarket/internal/metrics"
	"github.com/leadmarket/leadmarket/internal/reqinfo"
	"github.com/leadmarket/leadmarket/internal/telemetry"
)

// Authenticator turns an Authorization header into a caller (nil, nil when there is none).
type Authenticator interface {
	Authenticate(ctx context.Context, header string) (*auth.Caller, error)
}

// StatementsHeader carries the number of SQL statements a request ran (outside production), for
// tests and benchmarks.
const StatementsHeader = "X-Sql-Statements"

// statusWriter records the status and stamps the statement count when the response starts:
// gqlgen writes its response after every resolver has finished, so the count is complete then.
type statusWriter struct {
	http.ResponseWriter
	status     int
	statements *atomic.Int64
	debug      bool
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
		if w.debug {
			w.Header().Set(StatementsHeader, strconv.FormatInt(w.statements.Load(), 10))
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController (and the WebSocket upgrade) reach the real writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// requestContext gives each request an id, its request info for audit entries (reqinfo), a
// statement counter, a recover guard (a panic is logged and reported to Sentry), a log line
// naming the operation the GraphQL layer noted and the user authentication found (and, through
// the logger's telemetry.LogHandler, the trace), its span's route, and metrics.
func requestContext(o Options, m *metrics.Metrics) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			id := r.Header.Get("X-Request-Id")
			if id == "" || len(id) > 100 {
				var b [8]byte
				_, _ = rand.Read(b[:])
				id = hex.EncodeToString(b[:])
			}
			w.Header().Set("X-Request-Id", id)
			var statements atomic.Int64
			ctx := reqinfo.With(r.Context(), reqinfo.Info{IP: clientIP(r, o.TrustedProxies), UserAgent: r.UserAgent(), RequestID: id})
			ctx, accessLog := reqinfo.WithAccessLog(ctx)
			ctx = db.WithStatementCounter(ctx, &statements)
			sw := &statusWriter{ResponseWriter: w, statements: &statements, debug: !o.Production}
			req := r.WithContext(ctx)
			defer func() {
				nameSpan(ctx, req)
				if v := recover(); v != nil {
					if v == http.ErrAbortHandler {
						panic(v)
					}
					o.Logger.ErrorContext(ctx, "panic", "panic", v, "request_id", id)
					o.Telemetry.ReportPanic(ctx, v, telemetry.Report{RequestID: id, Operation: accessLog.Operation(), UserID: accessLog.UserID()})
					if sw.status == 0 {
						writeJSON(sw, http.StatusInternalServerError, map[string]any{"errors": []map[string]any{{
							"message": "internal error", "extensions": map[string]any{"code": "INTERNAL", "requestId": id},
						}}})
					}
				}
				status := sw.status
				if status == 0 {
					status = http.StatusOK
				}
				elapsed := time.Since(start)
				if r.URL.Path == "/graphql" {
					m.SQLStatements(statements.Load())
				}
				if r.URL.Path != "/healthz" && r.URL.Path != "/metrics" {
					o.Logger.LogAttrs(ctx, slog.LevelInfo, "request", slog.String("request_id", id),
						slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Int("status", status),
						slog.Duration("duration", elapsed), slog.String("operation", accessLog.Operation()),
						slog.String("user_id", accessLog.UserID()), slog.Int64("sql_statements", statements.Load()))
				}
			}()
			next.ServeHTTP(sw, req)
		})
	}
}

// authenticate puts the caller in the context. A token that does not verify is not refused here:
// it is recorded, and fields that need a caller refuse with UNAUTHENTICATED (public fields, if any,
// still work). A failure to provision the user is an internal error.
func authenticate(a Authenticator, logger *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx := r.Context()
			header := r.Header.Get("Authorization")
			c, err := a.Authenticate(ctx, header)
			var ae *apperr.Error
			switch {
			case err == nil && c != nil:
				ctx = auth.WithCaller(ctx, c)
				reqinfo.NoteUser(ctx, c.UserID)
			case errors.Is(err, auth.ErrInvalidToken), errors.As(err, &ae):
				ctx = auth.WithAuthError(ctx, err)
			case err != nil:
				logger.ErrorContext(ctx, "authenticate", "err", err, "request_id", reqinfo.From(ctx).RequestID)
				writeJSON(w, http.StatusInternalServerError, map[string]any{"errors": []map[string]any{{
					"message": "internal error", "extensions": map[string]any{"code": "INTERNAL"},
				}}})
				return
			}
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
}

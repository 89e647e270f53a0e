package httpserver

import (
	"context"
	"net/http"
	"strings"

	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/leadmarket/leadmarket/internal/telemetry"
)

// nameSpan names the request's server span after the route that served req ("POST /graphql"),
// once the mux has matched it: otelhttp wraps the whole server and sees only the request before
// routing.
func nameSpan(ctx context.Context, req *http.Request) {
	span := trace.SpanFromContext(ctx)
	if req.Pattern == "" || !span.IsRecording() {
		return
	}
	route := req.Pattern
	if _, path, ok := strings.Cut(route, " "); ok {
		route = path
	}
	span.SetName(telemetry.SpanName(req))
	span.SetAttributes(semconv.HTTPRoute(route))
}

package graph

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/coder/websocket"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/validator/rules"

	"github.com/leadmarket/leadmarket/graph/gqlhttp"
	"github.com/leadmarket/leadmarket/graph/model"
	"github.com/leadmarket/leadmarket/internal/apperr"
	"github.com/leadmarket/leadmarket/internal/audit"
	"github.com/leadmarket/leadmarket/internal/auth"
	"github.com/leadmarket/leadmarket/internal/metrics"
	"github.com/leadmarket/leadmarket/internal/ratelimit"
	"github.com/leadmarket/leadmarket/internal/reqinfo"
	"github.com/leadmarket/leadmarket/internal/telemetry"
)

// HandlerOptions configure the GraphQL handler.
type HandlerOptions struct {
	// Production turns introspection and "Did you mean" suggestions off.
	Production bool
	Logger     *slog.Logger
	// RecordSecurityEventFunc records denials (UNAUTHENTICATED, FORBIDDEN) as security events.
	RecordSecurityEventFunc func(ctx context.Context, ev audit.SecurityEvent) error
	// Limits bound what one document may ask for (gqlhttp's guardrails). Zero fields take their
	// defaults.
	Limits gqlhttp.QueryLimits
	// RateLimits charges each operation to its caller's tiers (gqlhttp.RateLimiter). Default
	// nil: no rate limits.
	RateLimits *ratelimit.Policy
	// RecordViolationFunc records an operation refused by RateLimits. Default nil: refusals are
	// only logged.
	RecordViolationFunc func(ctx context.Context, v ratelimit.Violation) error
	// AllowedOrigins (CORS_ORIGINS) are the origins whose pages may open the WebSocket, besides
	// the API's own; "*" allows any. Default none.
	AllowedOrigins []string
	// APQCacheSize is how many automatic persisted queries are remembered. Default 1000.
	APQCacheSize int
	// Loaders are the services each operation's dataloaders batch through (loaders.go). Nil: no
	// dataloaders (relations are then not filled).
	Loaders *Resolver
	// AuthenticateFunc checks a token from connection_init's payload ("Bearer ..."), for sockets
	// whose upgrade request carried none. Default nil: only the upgrade header counts.
	AuthenticateFunc func(ctx context.Context, header string) (*auth.Caller, error)
	// WS bounds the WebSockets; zero fields take their defaults.
	WS WSOptions
	// MaxUploadBytes is the largest multipart (upload) request (MAX_UPLOAD_BYTES), 413 above it.
	// Default DefaultMaxUploadBytes.
	MaxUploadBytes int64
	// Reads routes each query's and mutation's reads (withReads). Default nil: every read goes
	// where the services' own handles point.
	Reads ReadRouter
	// Metrics records operations, errors, guard and rate-limit refusals and subscriptions
	// (gqlhttp.Metrics). Default nil: nothing is recorded.
	Metrics *metrics.Metrics
	// OperationNames bounds the operation name label of those metrics. Default nil: every named
	// operation is "other".
	OperationNames *gqlhttp.OperationNames
	// Telemetry traces operations and their root fields (gqlhttp.Tracing) when tracing is on,
	// and reports resolver panics and INTERNAL errors to Sentry. Default nil: neither.
	Telemetry *telemetry.Telemetry
}

// DefaultMaxUploadBytes is HandlerOptions.MaxUploadBytes when it is zero: MAX_UPLOAD_BYTES's
// default, 200 MiB.
const DefaultMaxUploadBytes = 200 << 20

// uploadMemoryBytes is the multipart transport's MaxMemory: a request below it is read into
// memory, a larger one has its file written to a temporary file (deleted when the request ends),
// so an upload costs the server little more memory than this whatever its size.
const uploadMemoryBytes = 1 << 20

// Handler serves GraphQL over HTTP (gqlhttp) and graphql-ws.
type Handler struct {
	http http.Handler
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.http.ServeHTTP(w, r) }

// NewHandler returns the GraphQL handler: GET (queries only) and POST over HTTP as the
// GraphQL-over-HTTP specification says, multipart POSTs, the graphql-ws WebSocket transport,
// automatic persisted queries, the query guardrails and rate limits, @auth, the error presenter
// and operation names in audit entries. r is normally a *Resolver; the executor benchmark passes
// one whose marketplaceLeads answers from memory.
func NewHandler(r ResolverRoot, o HandlerOptions) *Handler {
	cfg := Config{Resolvers: r}
	cfg.Directives.Auth = authDirective
	setComplexity(&cfg.Complexity)
	limits := o.Limits.WithDefaults()
	if o.APQCacheSize <= 0 {
		o.APQCacheSize = 1000
	}

	es := NewExecutableSchema(cfg)
	inputs, err := gqlhttp.NewInputRules(es.Schema(), listBounds)
	if err != nil {
		panic(err) // listBounds names a list the schema does not have: a programming error
	}
	srv := handler.New(es)
	ws := o.WS.withDefaults()
	sockets := newSocketCounter(ws.MaxConnectionsPerUser)
	srv.AddTransport(transport.Websocket{
		// KeepAlivePingInterval serves the legacy graphql-ws subprotocol only; PingPongInterval
		// is graphql-transport-ws's ping/pong.
		KeepAlivePingInterval: ws.PingInterval,
		PingPongInterval:      ws.PingInterval,
		InitFunc:              initSocket(o.AuthenticateFunc, sockets),
		CloseFunc:             releaseTokenExpiry,
		// The init timeout is protocolConn's (4408); gqlgen's would close 1002.
		Implementation: protocolImplementation{
			inner: transport.CoderWebsocketImplementation{
				AcceptOptions: websocket.AcceptOptions{OriginPatterns: originPatterns(o.AllowedOrigins)},
			},
			limits: wsLimits{initTimeout: ws.InitTimeout, maxSubscriptions: ws.MaxSubscriptions},
		},
	})
	srv.AddTransport(gqlhttp.Transport{MaxListValues: inputs.MaxBound()})
	if o.MaxUploadBytes <= 0 {
		o.MaxUploadBytes = DefaultMaxUploadBytes
	}
	srv.AddTransport(transport.MultipartForm{MaxUploadSize: o.MaxUploadBytes, MaxMemory: uploadMemoryBytes})
	queryCache := lru.New[*ast.QueryDocument](1000)
	srv.SetQueryCache(queryCache)
	srv.SetParserTokenLimit(limits.Tokens)
	if o.Production {
		srv.SetDisableSuggestion(true)
		srv.SetValidationRulesFn(gqlhttp.CapValidationErrors(gqlhttp.RulesWithoutSuggestions, limits.ValidationErrors))
	} else {
		srv.SetValidationRulesFn(gqlhttp.CapValidationErrors(rules.NewDefaultRules, limits.ValidationErrors))
		srv.Use(extension.Introspection{})
	}
	if o.Metrics != nil {
		srv.Use(&gqlhttp.Metrics{M: o.Metrics, Names: o.OperationNames})
	}
	// Extensions of one kind run in the order they are added (the guardrails' order: gqlhttp).
	srv.Use(gqlhttp.DocumentSizeGuard{MaxBytes: limits.DocumentBytes})
	srv.Use(extension.AutomaticPersistedQuery{Cache: lru.New[string](o.APQCacheSize)})
	srv.Use(gqlhttp.DocumentShapeGuard{Limits: limits, Cache: queryCache, Inputs: inputs})
	srv.Use(gqlhttp.OperationGuard{Introspection: !o.Production})
	srv.Use(extension.FixedComplexityLimit(limits.Complexity))
	if o.RateLimits != nil {
		srv.Use(&gqlhttp.RateLimiter{Policy: o.RateLimits, RecordViolationFunc: o.RecordViolationFunc, Logger: o.Logger, Metrics: o.Metrics})
	}
	if o.Telemetry.Tracing() {
		srv.Use(&gqlhttp.Tracing{TracerProvider: o.Telemetry.TracerProvider()})
	}
	srv.AroundOperations(gqlhttp.WithOperationInfo)
	if o.Loaders != nil {
		srv.AroundOperations(withLoaders(o.Loaders))
	}
	if o.Reads != nil {
		srv.AroundOperations(withReads(o.Reads))
	}
	srv.SetErrorPresenter(errorPresenter(o))
	srv.SetRecoverFunc(func(ctx context.Context, v any) error {
		ri := reqinfo.From(ctx)
		o.Logger.ErrorContext(ctx, "resolver panic", "panic", v, "request_id", ri.RequestID,
			"stack", string(debug.Stack()))
		o.Telemetry.ReportPanic(ctx, v, errorReport(ctx, ri))
		return errRecoveredPanic
	})
	return &Handler{http: withWSHolder(gqlhttp.Handler(srv, gqlhttp.Options{MaxUploadBytes: o.MaxUploadBytes, Metrics: o.Metrics}))}
}

// wsExpiryKey holds the cancel function of a WebSocket's token deadline.
type wsExpiryKey struct{}

// initSocket admits a WebSocket only for a signed-in caller (every root field needs one): the
// token of the upgrade request, else the one in connection_init's payload (Authorization or
// authorization, "Bearer ..."). A socket without a valid token, or over the user's socket
// limit, is closed 4403 or 4429. The socket is bounded by the caller's token: it is closed 4403
// when the token expires.
func initSocket(authenticate func(ctx context.Context, header string) (*auth.Caller, error), sockets *socketCounter) transport.WebsocketInitFunc {
	return func(ctx context.Context, p transport.InitPayload) (context.Context, *transport.InitPayload, error) {
		refuse := func(code int, reason string) (context.Context, *transport.InitPayload, error) {
			return transport.AppendCloseReason(transport.WithWebsocketCloseCode(ctx, code), reason), nil, errors.New(reason)
		}
		c := auth.CallerFrom(ctx)
		header := p.Authorization()
		if header == "" {
			header, _ = p["authorization"].(string)
		}
		if c == nil && header != "" && authenticate != nil {
			var err error
			if c, err = authenticate(ctx, header); err != nil || c == nil {
				return refuse(closeForbidden, "the access token is invalid or expired")
			}
			ctx = auth.WithCaller(ctx, c)
			reqinfo.NoteUser(ctx, c.UserID)
		}
		if c == nil {
			return refuse(closeForbidden, "sign in first")
		}
		if !c.ExpiresAt.IsZero() && !time.Now().Before(c.ExpiresAt) {
			return refuse(closeForbidden, "the access token expired")
		}
		if !sockets.take(c.UserID) {
			return refuse(closeTooManyInitRequests, "too many open sockets for this user")
		}
		conn := wsConnFrom(ctx)
		var once sync.Once
		release := func() { once.Do(func() { sockets.release(c.UserID) }) }
		var timer *time.Timer
		if !c.ExpiresAt.IsZero() && conn != nil {
			timer = time.AfterFunc(time.Until(c.ExpiresAt), func() { _ = conn.closeWith(closeForbidden, "the access token expired") })
		}
		cancel := func() {
			release()
			if timer != nil {
				timer.Stop()
			}
		}
		if conn != nil {
			conn.addOnClose(cancel)
		}
		return context.WithValue(ctx, wsExpiryKey{}, context.CancelFunc(cancel)), nil, nil
	}
}

// releaseTokenExpiry frees a closed WebSocket's token deadline.
func releaseTokenExpiry(ctx context.Context, _ int) {
	if cancel, ok := ctx.Value(wsExpiryKey{}).(context.CancelFunc); ok {
		cancel()
	}
}

// originPatterns turns CORS origins (https://app.example.com) into the host patterns the
// WebSocket library matches the Origin header against.
func originPatterns(origins []string) []string {
	var patterns []string
	for _, o := range origins {
		if o == "*" {
			patterns = append(patterns, "*")
			continue
		}
		if u, err := url.Parse(o); err == nil && u.Host != "" {
			patterns = append(patterns, u.Host)
		}
	}
	return patterns
}

// authDirective is @auth: a signed-in caller, and for requires: PLATFORM_ADMIN one whose
// platform-admin access counts (the MFA policy travels with the caller).
func authDirective(ctx context.Context, obj any, next graphql.Resolver, requires *model.Role) (any, error) {
	if err := auth.AuthErrorFrom(ctx); err != nil {
		return nil, &apperr.Error{Code: apperr.Unauthenticated, Message: "the access token is invalid or expired", Err: err}
	}
	c, err := auth.Require(ctx)
	if err != nil {
		return nil, err
	}
	if requires != nil && *requires == model.RolePlatformAdmin {
		if err := c.AdminAccess(); err != nil {
			return nil, err
		}
	}
	return next(ctx)
}

// errorPresenter maps errors to the client once: coded errors keep their message and code (and
// details such as leadIds in extensions); GraphQL's own errors pass through; anything else is
// "internal error" for the client and a log line with the request id for operators. Denials are
// recorded as security events.
func errorPresenter(o HandlerOptions) graphql.ErrorPresenterFunc {
	return func(ctx context.Context, err error) *gqlerror.Error {
		gerr := graphql.DefaultErrorPresenter(ctx, err)
		var ae *apperr.Error
		if errors.As(err, &ae) {
			gerr.Message = ae.Message
			gerr.Extensions = map[string]any{"code": string(ae.Code)}
			for k, v := range ae.Details {
				gerr.Extensions[k] = v
			}
			if ae.Code == apperr.Unauthenticated || ae.Code == apperr.Forbidden {
				recordDenial(ctx, o, gerr, ae)
			}
			return gerr
		}
		var ge *gqlerror.Error
		if errors.As(err, &ge) && ge.Unwrap() == nil {
			// Parse, validation and input-coercion errors: the client's to fix, safe to show.
			if gerr.Extensions == nil {
				gerr.Extensions = map[string]any{}
			}
			if _, ok := gerr.Extensions["code"]; !ok {
				gerr.Extensions["code"] = string(apperr.BadUserInput)
			}
			if gerr.Extensions["code"] == string(apperr.ComplexityLimitExceeded) {
				if st := extension.GetComplexityStats(ctx); st != nil {
					gerr.Extensions["cost"], gerr.Extensions["limit"] = st.Complexity, st.ComplexityLimit
				}
			}
			return gerr
		}
		ri := reqinfo.From(ctx)
		o.Logger.ErrorContext(ctx, "internal error", "err", err, "request_id", ri.RequestID, "operation", ri.Operation,
			"path", fmt.Sprint(gerr.Path))
		if !errors.Is(err, errRecoveredPanic) { // a panic was reported as one
			r := errorReport(ctx, ri)
			r.Tags = map[string]string{"path": gerr.Path.String()}
			o.Telemetry.ReportError(ctx, err, r)
		}
		gerr.Message = "internal error"
		gerr.Extensions = map[string]any{"code": string(apperr.Internal), "requestId": ri.RequestID}
		return gerr
	}
}

// errRecoveredPanic is what a resolver that panicked returns: the error presenter makes it
// INTERNAL like any uncoded error, without reporting it a second time.
var errRecoveredPanic = errors.New("internal error")

// errorReport names the operation ctx runs for an error report: its request, operation and
// caller.
func errorReport(ctx context.Context, ri reqinfo.Info) telemetry.Report {
	r := telemetry.Report{RequestID: ri.RequestID, Operation: ri.Operation}
	if c := auth.CallerFrom(ctx); c != nil {
		r.UserID = c.UserID
	}
	return r
}

func recordDenial(ctx context.Context, o HandlerOptions, gerr *gqlerror.Error, ae *apperr.Error) {
	if o.RecordSecurityEventFunc == nil {
		return
	}
	ev := audit.SecurityEvent{
		Kind: "access_denied", Risk: audit.RiskMedium,
		Details: map[string]any{"code": string(ae.Code), "message": ae.Message, "path": gerr.Path.String()},
	}
	if ae.Code == apperr.Unauthenticated {
		ev.Kind, ev.Risk = "unauthenticated", audit.RiskLow
		if ae.Err != nil {
			ev.Kind, ev.Risk = "invalid_token", audit.RiskMedium
		}
	}
	if c := auth.CallerFrom(ctx); c != nil {
		ev.UserID = c.UserID
	}
	if ws, ok := ae.Details["workspaceId"].(string); ok {
		ev.WorkspaceID = ws
	}
	if err := o.RecordSecurityEventFunc(context.WithoutCancel(ctx), ev); err != nil {
		o.Logger.ErrorContext(ctx, "record security event", "err", err)
	}
}

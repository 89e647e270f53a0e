package graph

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/leadmarket/leadmarket/graph/model"
	"github.com/leadmarket/leadmarket/internal/apperr"
	"github.com/leadmarket/leadmarket/internal/audit"
	"github.com/leadmarket/leadmarket/internal/auth"
)

// HandlerOptions configure the GraphQL handler.
type HandlerOptions struct {
	// Production turns introspection off.
	Production bool
	// AdminRequireMFA makes @auth(requires: PLATFORM_ADMIN) need an aal2 session.
	AdminRequireMFA bool
	Logger          *slog.Logger
	// RecordSecurityEventFunc records denials (UNAUTHENTICATED, FORBIDDEN) as security events.
	RecordSecurityEventFunc func(ctx context.Context, ev audit.SecurityEvent) error
}

// NewHandler returns the GraphQL handler: POST and GET (queries only) and the graphql-ws
// WebSocket transport, with @auth, the error presenter and operation names in audit entries.
func NewHandler(r *Resolver, o HandlerOptions) *handler.Server {
	cfg := Config{Resolvers: r}
	cfg.Directives.Auth = authDirective(o.AdminRequireMFA)
	srv := handler.New(NewExecutableSchema(cfg))
	srv.AddTransport(transport.Websocket{KeepAlivePingInterval: 10 * time.Second})
	srv.AddTransport(transport.Options{})
	srv.AddTransport(transport.GET{})
	srv.AddTransport(transport.POST{})
	srv.SetQueryCache(lru.New[*ast.QueryDocument](1000))
	if !o.Production {
		srv.Use(extension.Introspection{})
	}
	srv.AroundOperations(func(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
		oc := graphql.GetOperationContext(ctx)
		name := oc.OperationName
		if name == "" && oc.Operation != nil {
			name = string(oc.Operation.Operation)
		}
		audit.RequestInfoFrom(ctx).Operation = name
		return next(ctx)
	})
	srv.SetErrorPresenter(errorPresenter(o))
	srv.SetRecoverFunc(func(ctx context.Context, v any) error {
		o.Logger.ErrorContext(ctx, "resolver panic", "panic", v, "request_id", audit.RequestInfoFrom(ctx).RequestID,
			"stack", string(debug.Stack()))
		return errors.New("internal error")
	})
	return srv
}

func authDirective(requireMFA bool) func(ctx context.Context, obj any, next graphql.Resolver, requires *model.Role) (any, error) {
	return func(ctx context.Context, obj any, next graphql.Resolver, requires *model.Role) (any, error) {
		if err := auth.AuthErrorFrom(ctx); err != nil {
			return nil, &apperr.Error{Code: apperr.Unauthenticated, Message: "the access token is invalid or expired", Err: err}
		}
		if _, err := auth.Require(ctx); err != nil {
			return nil, err
		}
		if requires != nil && *requires == model.RolePlatformAdmin {
			if _, err := auth.RequirePlatformAdmin(ctx, requireMFA); err != nil {
				return nil, err
			}
		}
		return next(ctx)
	}
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
				gerr.Extensions["code"] = "BAD_USER_INPUT"
			}
			return gerr
		}
		ri := audit.RequestInfoFrom(ctx)
		o.Logger.ErrorContext(ctx, "internal error", "err", err, "request_id", ri.RequestID, "operation", ri.Operation,
			"path", fmt.Sprint(gerr.Path))
		gerr.Message = "internal error"
		gerr.Extensions = map[string]any{"code": string(apperr.Internal), "requestId": ri.RequestID}
		return gerr
	}
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

package graph

import (
	"context"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/leadmarket/leadmarket/internal/auth"
)

// ReadRouter decides where an operation's reads go (internal/db's Router).
type ReadRouter interface {
	// Session returns ctx for one operation of caller (a user id, "" when anonymous); writes is
	// true for a mutation.
	Session(ctx context.Context, caller string, writes bool) context.Context
	// Wrote records that caller's mutation has committed, so that their next reads see it.
	Wrote(ctx context.Context, caller string)
}

// withReads opens a read session for every query and mutation (subscriptions read the primary:
// their events are loaded by the ids that NOTIFY, sent on the primary's commit, carries) and,
// once a mutation's response is ready (its transactions committed), records the caller's write
// before the response leaves, so that the caller's next request reads it wherever it lands.
func withReads(r ReadRouter) graphql.OperationMiddleware {
	return func(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
		oc := graphql.GetOperationContext(ctx)
		if oc == nil || oc.Operation == nil || oc.Operation.Operation == ast.Subscription {
			return next(ctx)
		}
		caller := ""
		if c := auth.CallerFrom(ctx); c != nil {
			caller = c.UserID
		}
		writes := oc.Operation.Operation == ast.Mutation
		h := next(r.Session(ctx, caller, writes))
		if !writes {
			return h
		}
		return func(ctx context.Context) *graphql.Response {
			resp := h(ctx)
			r.Wrote(ctx, caller)
			return resp
		}
	}
}

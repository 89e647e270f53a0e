package gqlhttp

import (
	"cmp"
	"context"
	"errors"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/leadmarket/leadmarket/internal/apperr"
)

// Tracing is the gqlgen extension that traces GraphQL: a span per operation ("query Browse",
// with graphql.operation.type and .name) and, under it, a span per root field
// ("Query.marketplaceLeads"), whose SQL statements and calls are its children. Nested fields get
// no span of their own: dataloaders batch them, and a span per field would cost more than the
// field. Neither span records the document or the variables, which may hold contact data; an
// error is recorded by its code only. Add it only when tracing is on.
type Tracing struct {
	// TracerProvider starts the spans.
	TracerProvider trace.TracerProvider
	tracer         trace.Tracer
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationInterceptor
	graphql.RootFieldInterceptor
} = &Tracing{}

// ExtensionName implements graphql.HandlerExtension.
func (*Tracing) ExtensionName() string { return "Tracing" }

// Validate implements graphql.HandlerExtension.
func (t *Tracing) Validate(graphql.ExecutableSchema) error {
	if t.TracerProvider == nil {
		return errors.New("gqlhttp.Tracing: no TracerProvider")
	}
	t.tracer = t.TracerProvider.Tracer("github.com/leadmarket/leadmarket/graph/gqlhttp")
	return nil
}

// InterceptOperation implements graphql.OperationInterceptor: the operation's span lasts until
// its response is written (a subscription's, until its stream ends).
func (t *Tracing) InterceptOperation(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	oc := graphql.GetOperationContext(ctx)
	if oc == nil || oc.Operation == nil {
		return next(ctx)
	}
	op := oc.Operation
	name := string(op.Operation)
	if op.Name != "" {
		name += " " + op.Name
	}
	ctx, span := t.tracer.Start(ctx, name, trace.WithAttributes(
		attribute.String("graphql.operation.type", string(op.Operation)),
		attribute.String("graphql.operation.name", op.Name),
	))
	handler := next(ctx)
	stream := op.Operation == ast.Subscription
	ended := false
	return func(ctx context.Context) *graphql.Response {
		resp := handler(ctx)
		if ended {
			return resp
		}
		if resp != nil && len(resp.Errors) > 0 {
			codesOf := make([]string, 0, len(resp.Errors))
			for _, e := range resp.Errors {
				if c, ok := e.Extensions["code"].(string); ok {
					codesOf = append(codesOf, c)
				}
			}
			span.SetAttributes(attribute.StringSlice("graphql.error.codes", codesOf))
			span.SetStatus(codes.Error, "the response has errors")
		}
		if !stream || resp == nil {
			ended = true
			span.End()
		}
		return resp
	}
}

// InterceptRootField implements graphql.RootFieldInterceptor: a root field's span covers its
// resolver and everything under it (nested fields, their dataloaders' statements). Nested fields
// are never intercepted, so tracing adds nothing per nested field.
func (t *Tracing) InterceptRootField(ctx context.Context, next graphql.RootResolver) graphql.Marshaler {
	rfc := graphql.GetRootFieldContext(ctx)
	oc := graphql.GetOperationContext(ctx)
	if rfc == nil || oc == nil || oc.Operation == nil {
		return next(ctx)
	}
	object := rootObject[oc.Operation.Operation]
	ctx, span := t.tracer.Start(ctx, object+"."+rfc.Field.Name, trace.WithAttributes(
		attribute.String("graphql.field.parent", object),
		attribute.String("graphql.field.name", rfc.Field.Name),
	))
	defer span.End()
	res := next(ctx)
	// The field's errors, as the error presenter made them: by code only.
	var fieldCodes []string
	for _, e := range graphql.GetErrors(ctx) {
		if len(e.Path) > 0 && e.Path[0] == ast.PathName(rfc.Field.Alias) {
			c, _ := e.Extensions["code"].(string)
			fieldCodes = append(fieldCodes, cmp.Or(c, string(apperr.Internal)))
		}
	}
	if len(fieldCodes) > 0 {
		span.SetAttributes(attribute.StringSlice("graphql.error.codes", fieldCodes))
		span.SetStatus(codes.Error, fieldCodes[0])
	}
	return res
}

var rootObject = map[ast.Operation]string{ast.Query: "Query", ast.Mutation: "Mutation", ast.Subscription: "Subscription"}

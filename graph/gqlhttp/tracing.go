package gqlhttp

import (
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
	graphql.FieldInterceptor
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

// InterceptField implements graphql.FieldInterceptor for root fields only; any other field
// passes straight through.
func (t *Tracing) InterceptField(ctx context.Context, next graphql.Resolver) (any, error) {
	fc := graphql.GetFieldContext(ctx)
	if fc == nil || fc.Parent != nil || fc.Field.Field == nil {
		return next(ctx)
	}
	ctx, span := t.tracer.Start(ctx, fc.Object+"."+fc.Field.Name, trace.WithAttributes(
		attribute.String("graphql.field.parent", fc.Object),
		attribute.String("graphql.field.name", fc.Field.Name),
	))
	defer span.End()
	res, err := next(ctx)
	if err != nil {
		code := string(apperr.Internal)
		if ae := (*apperr.Error)(nil); errors.As(err, &ae) {
			code = string(ae.Code)
		}
		span.SetAttributes(attribute.String("graphql.error.code", code))
		span.SetStatus(codes.Error, code)
	}
	return res, err
}

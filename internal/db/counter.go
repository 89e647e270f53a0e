package db

import (
	"context"
	"sync/atomic"

	"github.com/uptrace/bun"
)

type counterKey struct{}

// WithStatementCounter returns a context whose SQL statements (through bun or QueryPrepared) are
// counted in n. The HTTP layer puts one on every request, so tests and benchmarks can read
// statements per request without counting other requests' work.
func WithStatementCounter(ctx context.Context, n *atomic.Int64) context.Context {
	return context.WithValue(ctx, counterKey{}, n)
}

// StatementCounterHook is a bun query hook that increments the counter in the query's context.
type StatementCounterHook struct{}

// BeforeQuery counts the statement.
func (StatementCounterHook) BeforeQuery(ctx context.Context, e *bun.QueryEvent) context.Context {
	if n := counterFrom(ctx); n != nil {
		n.Add(1)
	}
	return ctx
}

// counterFrom returns the statement counter of ctx, or nil.
func counterFrom(ctx context.Context) *atomic.Int64 {
	n, _ := ctx.Value(counterKey{}).(*atomic.Int64)
	return n
}

// AfterQuery does nothing.
func (StatementCounterHook) AfterQuery(context.Context, *bun.QueryEvent) {}

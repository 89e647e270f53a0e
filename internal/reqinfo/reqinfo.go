// Package reqinfo carries where a request came from (client IP, user agent, request id) and the
// GraphQL operation it runs, from the HTTP layer that learns the first three to the audit log,
// security events and log lines that record them.
//
// An Info is a value: once in a context it never changes. A layer that learns more (the GraphQL
// layer, the operation's name) derives a new context with WithOperation, so operations that share
// a connection (a WebSocket) neither race on nor borrow each other's info.
package reqinfo

import (
	"context"
	"sync/atomic"
)

// Info is where a change came from. The zero Info (no HTTP request: a job, a test) records as
// empty strings.
type Info struct {
	// IP is the client's address, X-Forwarded-For believed only from trusted proxies.
	IP string
	// UserAgent is the request's User-Agent header.
	UserAgent string
	// RequestID is the request's id, as the X-Request-Id response header says it.
	RequestID string
	// Operation names the GraphQL operation: its name, else its type ("query", "mutation").
	// Empty outside an operation.
	Operation string
}

type infoKey struct{}

// With returns ctx carrying info.
func With(ctx context.Context, info Info) context.Context {
	return context.WithValue(ctx, infoKey{}, info)
}

// From returns the info in ctx, or the zero Info.
func From(ctx context.Context) Info {
	info, _ := ctx.Value(infoKey{}).(Info)
	return info
}

// WithOperation returns ctx carrying a copy of ctx's info that names operation.
func WithOperation(ctx context.Context, operation string) context.Context {
	info := From(ctx)
	info.Operation = operation
	return With(ctx, info)
}

// AccessLog collects what the access log line of an HTTP request names but only an inner layer
// learns, after the line's context was built: the operation the request ran and who ran it. The
// HTTP layer makes one per request (WithAccessLog) and reads it when the request ends; the
// GraphQL layer writes the operation (NoteOperation), authentication the user (NoteUser). It is
// safe for concurrent use.
type AccessLog struct {
	operation atomic.Pointer[string]
	user      atomic.Pointer[string]
}

type accessLogKey struct{}

// WithAccessLog returns ctx carrying a new, empty AccessLog, and that AccessLog.
func WithAccessLog(ctx context.Context) (context.Context, *AccessLog) {
	l := &AccessLog{}
	return context.WithValue(ctx, accessLogKey{}, l), l
}

// Operation returns the operation noted for the request, or "" when none was.
func (l *AccessLog) Operation() string {
	if op := l.operation.Load(); op != nil {
		return *op
	}
	return ""
}

// NoteOperation records operation as what ctx's request ran, for its access log line. It does
// nothing when ctx has no AccessLog.
func NoteOperation(ctx context.Context, operation string) {
	if l, ok := ctx.Value(accessLogKey{}).(*AccessLog); ok {
		l.operation.Store(&operation)
	}
}

// UserID returns the id of the user noted for the request, or "" when none was.
func (l *AccessLog) UserID() string {
	if id := l.user.Load(); id != nil {
		return *id
	}
	return ""
}

// NoteUser records userID as who ctx's request runs for, for its access log line. It does
// nothing when ctx has no AccessLog.
func NoteUser(ctx context.Context, userID string) {
	if l, ok := ctx.Value(accessLogKey{}).(*AccessLog); ok {
		l.user.Store(&userID)
	}
}

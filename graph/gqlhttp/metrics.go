package gqlhttp

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/leadmarket/leadmarket/internal/apperr"
	"github.com/leadmarket/leadmarket/internal/metrics"
)

// Metrics is the gqlgen extension that records GraphQL operations in Prometheus:
//
//   - graphql_operations_total{type,name,outcome}: every operation once. outcome is ok, error
//     (it executed and its response carries an error) or refused (stopped before it executed:
//     a guard, the rate limiter, parsing, validation). A subscription counts when its first
//     response is sent.
//   - graphql_operation_duration_seconds{type,name}: queries and mutations, from the start of
//     the request to the response.
//   - graphql_errors_total{code}: each error of a response by extensions.code.
//   - graphql_guard_rejections_total{rule}: refusals by a query guard (GuardRule).
//   - graphql_subscriptions_active{field} and graphql_subscription_events_total{field}.
//
// type is query, mutation or subscription, or unknown for a document refused before it was
// parsed (its name is then "other"). name is bounded by Names. Add it before the guards, as a pointer.
type Metrics struct {
	// M receives the measurements; nil records nothing.
	M *metrics.Metrics
	// Names bounds the name label; nil: every name is "other" (anonymous ones "anonymous").
	Names *OperationNames
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationInterceptor
	graphql.ResponseInterceptor
} = &Metrics{}

// ExtensionName implements graphql.HandlerExtension.
func (*Metrics) ExtensionName() string { return "Metrics" }

// Validate implements graphql.HandlerExtension.
func (*Metrics) Validate(graphql.ExecutableSchema) error { return nil }

// executedKey marks the context of an operation that reached execution: its responses are
// counted by InterceptOperation's handler, not as refusals.
type executedKey struct{}

// metricsKey carries a subscription's Metrics to CountSubscriptionError.
type metricsKey struct{}

// CountSubscriptionError counts in graphql_errors_total an error a subscription ends with
// (transport.AddSubscriptionError, such as SUBSCRIBER_TOO_SLOW): gqlgen sends those after the
// last response, past the response handler this extension counts through.
func CountSubscriptionError(ctx context.Context, code string) {
	if m, ok := ctx.Value(metricsKey{}).(*metrics.Metrics); ok {
		m.GraphQLError(code)
	}
}

// InterceptOperation counts an operation that executes, with its outcome, duration, errors and,
// for a subscription, its time open and its events.
func (x *Metrics) InterceptOperation(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	oc := graphql.GetOperationContext(ctx)
	if x.M == nil || oc == nil || oc.Operation == nil {
		return next(ctx)
	}
	typ, name := string(oc.Operation.Operation), x.Names.Label(oc.Operation.Name)
	start := oc.Stats.OperationStart
	if start.IsZero() {
		start = time.Now()
	}
	execCtx := context.WithValue(ctx, executedKey{}, true)
	if oc.Operation.Operation == ast.Subscription {
		execCtx = context.WithValue(execCtx, metricsKey{}, x.M)
	}
	h := next(execCtx)
	if oc.Operation.Operation != ast.Subscription {
		return func(ctx context.Context) *graphql.Response {
			resp := h(ctx)
			x.M.GraphQLOperation(typ, name, x.outcome(resp))
			x.M.GraphQLDuration(typ, name, time.Since(start))
			return resp
		}
	}
	field := rootField(oc)
	ended := x.M.SubscriptionStarted(field)
	counted := false
	return func(ctx context.Context) *graphql.Response {
		resp := h(ctx)
		if resp == nil {
			ended()
			return nil
		}
		if !counted {
			counted = true
			x.M.GraphQLOperation(typ, name, x.outcome(resp))
		} else {
			x.countErrors(resp.Errors)
		}
		if len(resp.Data) > 0 && string(resp.Data) != "null" {
			x.M.SubscriptionEvent(field)
		}
		return resp
	}
}

// outcome counts resp's errors and says whether the operation went ok.
func (x *Metrics) outcome(resp *graphql.Response) string {
	if resp == nil || len(resp.Errors) == 0 {
		return metrics.OutcomeOK
	}
	x.countErrors(resp.Errors)
	return metrics.OutcomeError
}

func (x *Metrics) countErrors(errs gqlerror.List) {
	for _, e := range errs {
		x.M.GraphQLError(errorCode(e))
	}
}

// InterceptResponse counts the operations refused before execution (their response is the only
// thing the extension sees of them): the operation, its errors and the guard that refused it.
func (x *Metrics) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	resp := next(ctx)
	if x.M == nil || resp == nil || ctx.Value(executedKey{}) != nil {
		return resp
	}
	// Refused before it was parsed (a size or shape guard), the operation has no type, and no
	// name unless the request's operationName gave one.
	typ, name := "unknown", NameOther
	if oc := graphql.GetOperationContext(ctx); oc != nil {
		if oc.Operation != nil {
			typ, name = string(oc.Operation.Operation), x.Names.Label(oc.Operation.Name)
		} else if oc.OperationName != "" {
			name = x.Names.Label(oc.OperationName)
		}
	}
	x.M.GraphQLOperation(typ, name, metrics.OutcomeRefused)
	for _, e := range resp.Errors {
		code := errorCode(e)
		x.M.GraphQLError(code)
		if rule := GuardRule(code, e.Message); rule != "" {
			x.M.GuardRejection(rule)
		}
	}
	return resp
}

// GuardRule names the guard that refused an operation with an error of code and message, or ""
// when the error is not a guard's (rate limits have rate_limit_refusals_total).
func GuardRule(code, message string) string {
	switch apperr.Code(code) {
	case apperr.DocumentTooLarge:
		return "document_size"
	case apperr.RequestTooLarge:
		return "body_size"
	case apperr.DepthLimitExceeded:
		return "depth"
	case apperr.AliasLimitExceeded:
		return "aliases"
	case apperr.FieldLimitExceeded:
		return "fields"
	case apperr.ComplexityLimitExceeded:
		return "complexity"
	case apperr.TierLimitExceeded:
		return "tier_fields"
	case apperr.IntrospectionDisabled:
		return "introspection"
	case apperr.BatchingNotSupported:
		return "batching"
	}
	if code == errcode.ParseFailed && strings.HasPrefix(message, "exceeded token limit") {
		return "tokens"
	}
	return ""
}

// errorCode is an error's extensions.code.
func errorCode(e *gqlerror.Error) string {
	if e == nil {
		return ""
	}
	code, _ := e.Extensions["code"].(string)
	return code
}

// rootField is the first root field of a subscription (graphql-ws subscriptions have one).
func rootField(oc *graphql.OperationContext) string {
	for _, sel := range oc.Operation.SelectionSet {
		if f, ok := sel.(*ast.Field); ok {
			return f.Name
		}
	}
	return "other"
}

// countHTTPRefusal records a request refused before GraphQL saw it (writeHTTPError): its error
// code, and its guard (the body size) when a guard refused it.
func countHTTPRefusal(m *metrics.Metrics, code apperr.Code) {
	m.GraphQLError(string(code))
	if rule := GuardRule(string(code), ""); rule != "" {
		m.GuardRejection(rule)
	}
}

// Defaults of OperationNames.
const (
	// DefaultNameThreshold: a name is a label of its own once seen more than this many times.
	DefaultNameThreshold = 50
	// DefaultMaxLearnedNames is the most names learned that way.
	DefaultMaxLearnedNames = 100
	// maxNameLength: longer names are never a label.
	maxNameLength = 64
)

// Label values besides operation names.
const (
	NameOther     = "other"
	NameAnonymous = "anonymous"
)

// OperationNames bounds the name label of the GraphQL metrics: a name is its own label when it
// is in the allow-list (the operations the app and dashboards use) or has been seen more than
// Threshold times, up to MaxLearned learned names; any other name is "other", a missing one
// "anonymous". Candidates are counted in a table of at most 10 × MaxLearned names that is
// emptied when full, so a client sending endless distinct names costs bounded memory and adds no
// label; names that really recur come back over it. Safe for concurrent use.
type OperationNames struct {
	allow      map[string]bool
	threshold  int
	maxLearned int

	mu         sync.RWMutex
	learned    map[string]bool
	candidates map[string]int
}

// NewOperationNames returns the bound for allow (METRICS_OPERATION_NAMES) with threshold and
// maxLearned (zero or less: DefaultNameThreshold, DefaultMaxLearnedNames).
func NewOperationNames(allow []string, threshold, maxLearned int) *OperationNames {
	if threshold <= 0 {
		threshold = DefaultNameThreshold
	}
	if maxLearned <= 0 {
		maxLearned = DefaultMaxLearnedNames
	}
	n := &OperationNames{allow: map[string]bool{}, threshold: threshold, maxLearned: maxLearned,
		learned: map[string]bool{}, candidates: map[string]int{}}
	for _, a := range allow {
		if a = strings.TrimSpace(a); a != "" {
			n.allow[a] = true
		}
	}
	return n
}

// MaxLabels is the most distinct values Label returns: the allow-list, the learned names,
// "other" and "anonymous".
func (n *OperationNames) MaxLabels() int { return len(n.allow) + n.maxLearned + 2 }

// Label returns the label value for the operation name name, counting it towards being learned.
func (n *OperationNames) Label(name string) string {
	if name == "" {
		return NameAnonymous
	}
	if n == nil || len(name) > maxNameLength {
		return NameOther
	}
	if n.allow[name] {
		return name
	}
	n.mu.RLock()
	known, full := n.learned[name], len(n.learned) >= n.maxLearned
	n.mu.RUnlock()
	if known {
		return name
	}
	if full {
		return NameOther
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.learned[name] {
		return name
	}
	if len(n.learned) >= n.maxLearned {
		return NameOther
	}
	c := n.candidates[name] + 1
	if c > n.threshold {
		delete(n.candidates, name)
		n.learned[name] = true
		return name
	}
	if _, ok := n.candidates[name]; !ok && len(n.candidates) >= 10*n.maxLearned {
		clear(n.candidates)
	}
	n.candidates[name] = c
	return NameOther
}

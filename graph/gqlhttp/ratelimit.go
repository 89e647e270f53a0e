package gqlhttp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/leadmarket/leadmarket/internal/apperr"
	"github.com/leadmarket/leadmarket/internal/auth"
	"github.com/leadmarket/leadmarket/internal/metrics"
	"github.com/leadmarket/leadmarket/internal/ratelimit"
	"github.com/leadmarket/leadmarket/internal/reqinfo"
)

// RateLimiter enforces the schema's @rateLimit directive per operation, after validation and
// cost checks and before any resolver: each root field (each alias of one too) costs one unit of
// its tier (STANDARD without the directive), so aliases cannot multiply a limit. An operation
// asking for more fields of a tier than the tier allows at all is refused with
// TIER_LIMIT_EXCEEDED; if a tier is exhausted the operation is refused whole with 429,
// Retry-After and RATE_LIMITED, and the refusal is recorded. Responses carry RateLimit-Limit,
// RateLimit-Remaining, RateLimit-Reset (seconds) and RateLimit-Policy for the tier closest to
// refusing. Callers are the signed-in user, else the client IP (httpserver resolves it, trusting
// X-Forwarded-For only from TRUSTED_PROXIES).
//
// When the store fails (Redis down), operations are let through and the failure is logged: a
// limiter outage must not become an API outage.
//
// Use it as a pointer: Validate fills in what it reads from the schema.
type RateLimiter struct {
	// Policy charges the operations; required.
	Policy *ratelimit.Policy
	// RecordViolationFunc records an operation refused by Policy; its context names the
	// operation (reqinfo). Default nil: refusals are only logged.
	RecordViolationFunc func(ctx context.Context, v ratelimit.Violation) error
	// Logger logs refusals and limiter failures; required.
	Logger *slog.Logger
	// Metrics counts refusals in rate_limit_refusals_total{tier}. Default nil: not counted.
	Metrics *metrics.Metrics

	// tiers maps "Type.field" of root fields with @rateLimit to their tier.
	tiers map[string]ratelimit.Tier
	// roots maps an operation type to its root type's name.
	roots map[ast.Operation]string
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = &RateLimiter{}

// ExtensionName implements graphql.HandlerExtension.
func (*RateLimiter) ExtensionName() string { return "RateLimiter" }

// Validate reads each root field's @rateLimit tier from the schema.
func (rl *RateLimiter) Validate(es graphql.ExecutableSchema) error {
	s := es.Schema()
	rl.tiers, rl.roots = map[string]ratelimit.Tier{}, map[ast.Operation]string{}
	for op, def := range map[ast.Operation]*ast.Definition{ast.Query: s.Query, ast.Mutation: s.Mutation, ast.Subscription: s.Subscription} {
		if def == nil {
			continue
		}
		rl.roots[op] = def.Name
		for _, f := range def.Fields {
			d := f.Directives.ForName("rateLimit")
			if d == nil {
				continue
			}
			arg := d.Arguments.ForName("tier")
			if arg == nil || arg.Value == nil {
				return fmt.Errorf("@rateLimit on %s.%s has no tier", def.Name, f.Name)
			}
			t := ratelimit.Tier(arg.Value.Raw)
			if t != ratelimit.TierPurchase && t != ratelimit.TierBrowse && t != ratelimit.TierStandard {
				return fmt.Errorf("@rateLimit on %s.%s: unknown tier %q", def.Name, f.Name, t)
			}
			rl.tiers[def.Name+"."+f.Name] = t
		}
	}
	return nil
}

// tiersOf returns the tier of each of the operation's root fields, aliases counted one by one
// (skipped fields excluded).
func (rl *RateLimiter) tiersOf(opCtx *graphql.OperationContext) []ratelimit.Tier {
	root := rl.roots[opCtx.Operation.Operation]
	var tiers []ratelimit.Tier
	for _, f := range graphql.CollectFields(opCtx, opCtx.Operation.SelectionSet, []string{root}) {
		t, ok := rl.tiers[root+"."+f.Name]
		if !ok {
			t = ratelimit.TierStandard
		}
		tiers = append(tiers, t)
	}
	return tiers
}

// overTier returns a refusal when the operation asks for more fields of one tier than that tier
// allows in a whole period: waiting would never let it through.
func (rl *RateLimiter) overTier(tiers []ratelimit.Tier) *gqlerror.Error {
	counts := map[ratelimit.Tier]int{}
	for _, t := range tiers {
		counts[t]++
	}
	for t, n := range counts {
		if l := rl.Policy.Limit(t); n > l.Rate {
			return &gqlerror.Error{
				Message: fmt.Sprintf("the operation asks for %d %s fields; at most %d are allowed per %s",
					n, t, l.Rate, window(l.Period)),
				Extensions: map[string]any{"code": string(apperr.TierLimitExceeded), "tier": string(t), "fields": n, "limit": l.Rate},
			}
		}
	}
	return nil
}

// MutateOperationContext charges the operation's root fields to its caller, sets the RateLimit
// headers and refuses the operation when a tier is exhausted or asked for more than it allows.
func (rl *RateLimiter) MutateOperationContext(ctx context.Context, opCtx *graphql.OperationContext) *gqlerror.Error {
	ri := reqinfo.From(ctx)
	var userID string
	if c := auth.CallerFrom(ctx); c != nil {
		userID = c.UserID
	}
	caller := ratelimit.CallerKey(userID, ri.IP)
	tiers := rl.tiersOf(opCtx)
	if gerr := rl.overTier(tiers); gerr != nil {
		return gerr
	}
	d, err := rl.Policy.Charge(ctx, caller, tiers)
	if err != nil {
		rl.Logger.ErrorContext(ctx, "rate limiter unavailable: operation let through", "err", err,
			"request_id", ri.RequestID, "operation", operationName(opCtx.Operation))
		return nil
	}
	now := time.Now()
	limit := rl.Policy.Limit(d.Tier)
	resetIn := ceilSeconds(d.Result.ResetAt.Sub(now))
	ex := exchangeFrom(ctx)
	if ex != nil {
		h := ex.header
		h.Set("RateLimit-Limit", strconv.Itoa(d.Result.Limit))
		h.Set("RateLimit-Remaining", strconv.Itoa(d.Result.Remaining))
		h.Set("RateLimit-Reset", strconv.Itoa(resetIn))
		h.Set("RateLimit-Policy", fmt.Sprintf("%d;w=%d", limit.Rate, ceilSeconds(limit.Period)))
	}
	if d.Allowed {
		return nil
	}
	retryAfter := max(ceilSeconds(d.Result.RetryAfter), 1)
	rl.Metrics.RateLimitRefusal(string(d.Tier))
	if ex != nil {
		ex.refuse(http.StatusTooManyRequests)
		ex.header.Set("Retry-After", strconv.Itoa(retryAfter))
	}
	rl.Logger.WarnContext(ctx, "rate limited", "request_id", ri.RequestID, "caller", caller, "tier", string(d.Tier),
		"operation", operationName(opCtx.Operation), "limit", d.Result.Limit, "retry_after_s", retryAfter)
	if rl.RecordViolationFunc != nil {
		op := operationName(opCtx.Operation)
		v := ratelimit.Violation{CallerKey: caller, UserID: userID, IP: ri.IP, Tier: d.Tier, Operation: op, Limit: d.Result.Limit}
		// The refusal comes before WithOperationInfo runs: the security event it may raise names
		// the operation through a context of its own.
		recordCtx := reqinfo.WithOperation(context.WithoutCancel(ctx), op)
		if err := rl.RecordViolationFunc(recordCtx, v); errors.Is(err, ratelimit.ErrRecorderBusy) {
			rl.Logger.WarnContext(ctx, "rate-limit violation not recorded: recorder busy", "request_id", ri.RequestID)
		} else if err != nil {
			rl.Logger.ErrorContext(ctx, "record rate-limit violation", "err", err, "request_id", ri.RequestID)
		}
	}
	return &gqlerror.Error{
		Message: fmt.Sprintf("too many %s operations: %d per %s allowed; retry in %d s",
			d.Tier, limit.Rate, window(limit.Period), retryAfter),
		Extensions: map[string]any{
			"code":       string(apperr.RateLimited),
			"tier":       string(d.Tier),
			"retryAfter": retryAfter,
			"limit":      d.Result.Limit,
			"remaining":  d.Result.Remaining,
			"resetAt":    now.Add(time.Duration(resetIn) * time.Second).UTC().Format(time.RFC3339),
		},
	}
}

// ceilSeconds is d in whole seconds, rounded up, never negative.
func ceilSeconds(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int(math.Ceil(d.Seconds()))
}

func window(d time.Duration) string {
	switch d {
	case time.Minute:
		return "minute"
	case time.Hour:
		return "hour"
	}
	return d.String()
}

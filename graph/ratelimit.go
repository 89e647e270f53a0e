package graph

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
	"github.com/leadmarket/leadmarket/internal/audit"
	"github.com/leadmarket/leadmarket/internal/auth"
	"github.com/leadmarket/leadmarket/internal/ratelimit"
)

// rateLimiter enforces the schema's @rateLimit directive per operation, after validation and
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
type rateLimiter struct {
	policy *ratelimit.Policy
	// tiers maps "Type.field" of root fields with @rateLimit to their tier.
	tiers map[string]ratelimit.Tier
	// roots maps an operation type to its root type's name.
	roots               map[ast.Operation]string
	recordViolationFunc func(ctx context.Context, v ratelimit.Violation) error
	logger              *slog.Logger
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = &rateLimiter{}

func (*rateLimiter) ExtensionName() string { return "RateLimiter" }

// Validate reads each root field's @rateLimit tier from the schema.
func (rl *rateLimiter) Validate(es graphql.ExecutableSchema) error {
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
func (rl *rateLimiter) tiersOf(opCtx *graphql.OperationContext) []ratelimit.Tier {
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
func (rl *rateLimiter) overTier(tiers []ratelimit.Tier) *gqlerror.Error {
	counts := map[ratelimit.Tier]int{}
	for _, t := range tiers {
		counts[t]++
	}
	for t, n := range counts {
		if l := rl.policy.Limit(t); n > l.Rate {
			return &gqlerror.Error{
				Message: fmt.Sprintf("the operation asks for %d %s fields; at most %d are allowed per %s",
					n, t, l.Rate, window(l.Period)),
				Extensions: map[string]any{"code": codeTierLimitExceeded, "tier": string(t), "fields": n, "limit": l.Rate},
			}
		}
	}
	return nil
}

func (rl *rateLimiter) MutateOperationContext(ctx context.Context, opCtx *graphql.OperationContext) *gqlerror.Error {
	ri := audit.RequestInfoFrom(ctx)
	var userID string
	if c := auth.CallerFrom(ctx); c != nil {
		userID = c.UserID
	}
	caller := ratelimit.CallerKey(userID, ri.IP)
	tiers := rl.tiersOf(opCtx)
	if gerr := rl.overTier(tiers); gerr != nil {
		return gerr
	}
	d, err := rl.policy.Charge(ctx, caller, tiers)
	if err != nil {
		rl.logger.ErrorContext(ctx, "rate limiter unavailable: operation let through", "err", err,
			"request_id", ri.RequestID, "operation", operationName(opCtx.Operation))
		return nil
	}
	now := time.Now()
	limit := rl.policy.Limit(d.Tier)
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
	if ex != nil {
		ex.refuse(http.StatusTooManyRequests)
		ex.header.Set("Retry-After", strconv.Itoa(retryAfter))
	}
	rl.logger.WarnContext(ctx, "rate limited", "request_id", ri.RequestID, "caller", caller, "tier", string(d.Tier),
		"operation", operationName(opCtx.Operation), "limit", d.Result.Limit, "retry_after_s", retryAfter)
	if rl.recordViolationFunc != nil {
		v := ratelimit.Violation{CallerKey: caller, UserID: userID, IP: ri.IP, Tier: d.Tier, Operation: operationName(opCtx.Operation), Limit: d.Result.Limit}
		if err := rl.recordViolationFunc(context.WithoutCancel(ctx), v); errors.Is(err, ratelimit.ErrRecorderBusy) {
			rl.logger.WarnContext(ctx, "rate-limit violation not recorded: recorder busy", "request_id", ri.RequestID)
		} else if err != nil {
			rl.logger.ErrorContext(ctx, "record rate-limit violation", "err", err, "request_id", ri.RequestID)
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

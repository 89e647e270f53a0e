package app

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/graph/gqlhttp"
	"github.com/leadmarket/leadmarket/internal/config"
	"github.com/leadmarket/leadmarket/internal/httpserver"
	"github.com/leadmarket/leadmarket/internal/ratelimit"
)

// guardrails are the parts of the abuse protection built from the configuration.
type guardrails struct {
	limits gqlhttp.QueryLimits
	// policy is nil when RATE_LIMITS_ENABLED=false.
	policy          *ratelimit.Policy
	recordViolation func(ctx context.Context, v ratelimit.Violation) error
	trustedProxies  []netip.Prefix
	// closers release what was opened (the Redis client) after the server shuts down.
	closers []func() error
}

// buildGuardrails builds the query limits, the rate-limit policy on memory (REDIS_URL unset) or
// Redis, and the trusted proxies of cfg.
func buildGuardrails(cfg config.Config, bdb *bun.DB) (guardrails, error) {
	g := guardrails{
		limits: gqlhttp.QueryLimits{
			Complexity: cfg.ComplexityLimit, Depth: cfg.DepthLimit, Aliases: cfg.AliasLimit,
			Fields: cfg.FieldLimit, DocumentBytes: cfg.MaxDocumentBytes,
		},
	}
	var err error
	if g.trustedProxies, err = httpserver.ParseTrustedProxies(cfg.TrustedProxies); err != nil {
		return g, fmt.Errorf("TRUSTED_PROXIES: %w", err)
	}
	if !cfg.RateLimitsEnabled {
		return g, nil
	}
	var limiter ratelimit.Limiter = ratelimit.NewMemory(ratelimit.MemoryOptions{})
	if cfg.RedisURL != "" {
		client, err := ratelimit.DialRedis(cfg.RedisURL)
		if err != nil {
			return g, err
		}
		g.closers = append(g.closers, client.Close)
		limiter = ratelimit.NewRedis(client, "")
	}
	window := cfg.RateLimitWindow
	g.policy, err = ratelimit.NewPolicy(limiter, map[ratelimit.Tier]ratelimit.Limit{
		ratelimit.TierPurchase: {Rate: cfg.RateLimitPurchase, Period: window},
		ratelimit.TierBrowse:   {Rate: cfg.RateLimitBrowse, Period: window},
		ratelimit.TierStandard: {Rate: cfg.RateLimitStandard, Period: window},
	})
	if err != nil {
		return g, err
	}
	violations := ratelimit.NewViolations(bdb)
	g.recordViolation = func(ctx context.Context, v ratelimit.Violation) error {
		_, err := violations.Record(ctx, v)
		return err
	}
	return g, nil
}

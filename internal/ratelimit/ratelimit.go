// Package ratelimit limits how often each caller may run operations of each tier (DESIGN §7).
//
// A Limit is GCRA, the generic cell rate algorithm: a token bucket of Rate tokens that refills
// continuously at Rate per Period, so an idle caller may burst up to Rate operations at once and a
// busy one gets one more every Period/Rate. Two Limiter stores behave identically: Memory (one
// process; the default) and Redis (go-redis/redis_rate's GCRA script, shared by every instance on
// the same Redis). A Policy maps tiers to limits and charges an operation to every tier it
// touches; Violations records the operations refused.
package ratelimit

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// Tier is a class of operations with its own limit, named as in schema.graphqls' RateLimitTier.
type Tier string

// The tiers of the schema's @rateLimit directive.
const (
	// TierPurchase is for money-moving mutations. Default 10 per minute.
	TierPurchase Tier = "PURCHASE"
	// TierBrowse is for marketplace browsing and lead lookups. Default 60 per minute.
	TierBrowse Tier = "BROWSE"
	// TierStandard is for everything else. Default 100 per minute.
	TierStandard Tier = "STANDARD"
)

// Limit allows Rate operations per Period, with a burst of Rate: a caller idle for a Period may
// run Rate operations at once, then one more every Period/Rate.
type Limit struct {
	Rate   int
	Period time.Duration
}

// PerMinute returns a Limit of rate operations per minute.
func PerMinute(rate int) Limit { return Limit{Rate: rate, Period: time.Minute} }

func (l Limit) valid() bool { return l.Rate > 0 && l.Period > 0 && l.Period/time.Duration(l.Rate) > 0 }

// perSecond is the limit's sustained rate, to order limits from the tightest.
func (l Limit) perSecond() float64 { return float64(l.Rate) / l.Period.Seconds() }

// Result is the outcome of charging one operation to a key.
type Result struct {
	// Allowed reports whether the operation was charged; a refused one costs nothing.
	Allowed bool
	// Limit is the limit's Rate.
	Limit int
	// Remaining is how many more operations would be allowed right now.
	Remaining int
	// RetryAfter is how long a refused caller must wait for one operation to be allowed; 0 when
	// allowed.
	RetryAfter time.Duration
	// ResetAt is when the bucket is full again (Remaining = Limit) if the caller stays idle.
	ResetAt time.Time
}

// Limiter keeps the buckets. Memory and Redis are the two implementations; both follow the same
// GCRA arithmetic, so a Limit behaves the same in either.
type Limiter interface {
	// Allow charges n units to key under limit, all of them or (when the bucket holds fewer) none.
	// Errors: the store's own (Redis unreachable or timed out, ctx done); Memory never fails.
	Allow(ctx context.Context, key string, limit Limit, n int) (Result, error)
}

// CallerKey is what limits are keyed by: the signed-in user, else the client's IP address. An
// IPv6 client is keyed by its /64 network, the block one subscriber usually holds, so rotating
// addresses within it does not buy more operations.
func CallerKey(userID, ip string) string {
	if userID != "" {
		return "user:" + userID
	}
	if a, err := netip.ParseAddr(ip); err == nil && a.Is6() && !a.Is4In6() {
		if p, err := a.Prefix(64); err == nil {
			return "ip:" + p.String()
		}
	}
	return "ip:" + ip
}

// Policy is the limit of each tier, applied to callers through a Limiter.
type Policy struct {
	limiter Limiter
	limits  map[Tier]Limit
	// order lists the tiers from the tightest sustained rate to the loosest.
	order []Tier
}

// NewPolicy returns a Policy charging limiter with limits; it needs a valid Limit for each of
// TierPurchase, TierBrowse and TierStandard.
func NewPolicy(limiter Limiter, limits map[Tier]Limit) (*Policy, error) {
	p := &Policy{limiter: limiter, limits: map[Tier]Limit{}}
	for _, t := range []Tier{TierPurchase, TierBrowse, TierStandard} {
		l, ok := limits[t]
		if !ok || !l.valid() {
			return nil, fmt.Errorf("ratelimit: tier %s needs a positive rate and period (got %+v)", t, l)
		}
		p.limits[t] = l
		p.order = append(p.order, t)
	}
	slices.SortStableFunc(p.order, func(a, b Tier) int {
		switch ra, rb := p.limits[a].perSecond(), p.limits[b].perSecond(); {
		case ra < rb:
			return -1
		case ra > rb:
			return 1
		}
		return 0
	})
	return p, nil
}

// Limit returns the limit of tier (the Standard one for an unknown tier).
func (p *Policy) Limit(t Tier) Limit {
	if l, ok := p.limits[t]; ok {
		return l
	}
	return p.limits[TierStandard]
}

// Decision is the outcome of charging one operation.
type Decision struct {
	// Allowed reports whether every tier allowed the operation.
	Allowed bool
	// Tier is the tier that refused the operation; when allowed, the tier closest to refusing
	// (fewest remaining, then the tightest limit), whose Result the RateLimit headers show.
	Tier Tier
	// Result is that tier's result.
	Result Result
}

// Charge charges an operation of caller one unit per entry of tiers (one per root field: a tier
// listed three times costs three units; an empty list means one unit of TierStandard), the
// tightest limit first, and stops at the first tier that refuses: the operation is then refused
// whole, and the looser tiers are not charged (the tighter ones already charged keep their
// units, which GCRA returns within Period/Rate). Errors: the Limiter's.
func (p *Policy) Charge(ctx context.Context, caller string, tiers []Tier) (Decision, error) {
	var d Decision
	charged := false
	for _, t := range p.order {
		n := countOf(tiers, t)
		if n == 0 && (len(tiers) > 0 || t != TierStandard) {
			continue
		}
		n = max(n, 1)
		l := p.limits[t]
		res, err := p.limiter.Allow(ctx, string(t)+":"+caller, l, n)
		if err != nil {
			return Decision{}, fmt.Errorf("rate limit %s: %w", t, err)
		}
		if !res.Allowed {
			return Decision{Allowed: false, Tier: t, Result: res}, nil
		}
		// order is tightest first, so on equal remaining the first tier seen stays.
		if !charged || res.Remaining < d.Result.Remaining {
			d = Decision{Allowed: true, Tier: t, Result: res}
			charged = true
		}
	}
	if !charged {
		// Only unknown tiers were asked for: charge them as standard.
		return p.Charge(ctx, caller, nil)
	}
	return d, nil
}

func errInvalidLimit(l Limit) error {
	return fmt.Errorf("ratelimit: invalid limit %d per %s", l.Rate, l.Period)
}

// countOf is how many times t is listed in tiers.
func countOf(tiers []Tier, t Tier) int {
	n := 0
	for _, x := range tiers {
		if x == t {
			n++
		}
	}
	return n
}

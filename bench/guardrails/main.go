// Command guardrails measures what the rate limits cost (DESIGN §8): the browse benchmark's
// request — marketplaceLeads(first: 50) with two filters, nested partner and
// purchasedByMyWorkspace, walking pages through cursors — against three servers built by
// app.Build on the same seeded database, in the same run, at the same concurrency:
//
//   - off:    RATE_LIMITS_ENABLED=false;
//   - memory: rate limits on, in process memory;
//   - redis:  rate limits on, in Redis (-redis-url), so every request makes one Redis round trip.
//
// Limits are set so high that nothing is refused; every limited response is checked for its
// RateLimit headers, so the limiter demonstrably ran. The query cost guardrails (document size,
// shape, complexity) are part of every side, including off. The sides take turns for -rounds
// rounds (the order rotating each round), so drift of the machine hits them alike. It prints each
// round, then each side's total request rate, median p50 and p99 across rounds, and the cost of
// each limited side against off (targets: memory under 5 %, Redis under 15 %).
//
//	go run ./bench/guardrails [-duration 5s] [-rounds 3] [-concurrency 16] [-leads 100000] [-fresh]
//
// The database is lm_bench_guardrails on the server of -database-url (default
// BENCH_DATABASE_URL, else TEST_DATABASE_URL, else the local server); it is kept and reused while
// it holds -leads leads and its migrations are current (-fresh seeds it again).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/leadmarket/leadmarket/bench/internal/benchdb"
	"github.com/leadmarket/leadmarket/bench/internal/loadgen"
	"github.com/leadmarket/leadmarket/internal/ratelimit"
)

// options are the command's flags.
type options struct {
	loadgen.Flags
	redisURL string
	rounds   int
}

func main() {
	var o options
	o.Register(flag.CommandLine, benchdb.DefaultServerURL(), benchDatabase, 5*time.Second, time.Second)
	flag.StringVar(&o.redisURL, "redis-url", firstEnv("redis://127.0.0.1:6379/0", "REDIS_URL", "TEST_REDIS_URL"),
		"Redis of the redis side")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds; each measures every side once (in each, a side runs -duration)")
	flag.Parse()
	if o.Leads < pageSize || o.rounds < 1 || o.Concurrency < 1 || o.Pool < 2 || o.Pages < 1 || o.Duration <= 0 {
		fmt.Fprintln(os.Stderr, "guardrails: -leads must be at least 50; -rounds, -concurrency, -pages at least 1; -pool at least 2")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "guardrails:", err)
		os.Exit(1)
	}
}

func firstEnv(def string, names ...string) string {
	for _, n := range names {
		if v := os.Getenv(n); v != "" {
			return v
		}
	}
	return def
}

func run(ctx context.Context, o options) error {
	env, err := setUp(ctx, o)
	if err != nil {
		return err
	}
	defer env.close()

	fmt.Printf("guardrails benchmark: browse first %d with filters, %d pages per walk, %d leads; concurrency %d; %d rounds of %s per side (warm-up %s)\n",
		pageSize, o.Pages, o.Leads, o.Concurrency, o.rounds, o.Duration, o.Warmup)
	fmt.Printf("machine: %d CPUs, GOMAXPROCS %d, %s; %s; redis %s\n", runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version(),
		env.dbReport, o.redisURL)
	for _, s := range env.sides {
		if err := env.verify(ctx, s); err != nil {
			return fmt.Errorf("side %s: verification failed, nothing measured: %w", s.name, err)
		}
	}
	fmt.Println("verified: every side answers full pages; the memory and redis sides send RateLimit headers (limit", highLimit, "per minute)")

	results := map[string][]loadgen.Result{}
	for round := range o.rounds {
		order := slices.Clone(env.sides)
		for range round % len(order) { // rotate, so no side always runs first
			order = append(order[1:], order[0])
		}
		fmt.Printf("\nround %d\n%s\n", round+1, loadgen.Header)
		for _, s := range order {
			r := loadgen.Run(ctx, s.name, o.Concurrency, o.Warmup, o.Duration, env.worker(s))
			if err := ctx.Err(); err != nil {
				return err
			}
			fmt.Println(r)
			if r.FirstErr != nil {
				fmt.Printf("  first error: %v\n", r.FirstErr)
			}
			results[s.name] = append(results[s.name], r)
		}
	}

	fmt.Printf("\nsummary over %d rounds\n", o.rounds)
	fmt.Printf("%-8s %10s %10s %10s %8s %12s %12s\n", "side", "req/s", "p50", "p99", "errors", "cost vs off", "p50 vs off")
	base := summarise(results[sideOff])
	for _, s := range env.sides {
		sum := summarise(results[s.name])
		cost, p50 := "", ""
		if s.name != sideOff && base.rate > 0 {
			cost = fmt.Sprintf("%+.1f %%", 100*(1-sum.rate/base.rate))
			p50 = fmt.Sprintf("%.3fx", float64(sum.p50)/float64(base.p50))
		}
		fmt.Printf("%-8s %10.0f %10s %10s %8d %12s %12s\n", s.name, sum.rate, fmtLatency(sum.p50), fmtLatency(sum.p99), sum.errors, cost, p50)
	}
	mem, red := summarise(results[sideMemory]), summarise(results[sideRedis])
	fmt.Printf("ratios (req/s): memory/off %.3f (target >= 0.95: %s), redis/off %.3f (target >= 0.85: %s)\n",
		mem.rate/base.rate, verdict(mem.rate/base.rate >= 0.95), red.rate/base.rate, verdict(red.rate/base.rate >= 0.85))
	fmt.Println("note: client, servers and PostgreSQL share this machine's CPUs; Redis is on", o.redisURL)
	return limiterAlone(ctx, o, base.p50)
}

// limiterAlone measures what the rate limiter costs per operation without the rest of the
// request: Policy.Charge of one tier for a user, at the same concurrency, on each store, set
// against the p50 latency of a browse request without limits.
func limiterAlone(ctx context.Context, o options, offP50 time.Duration) error {
	rdbOpts, err := redis.ParseURL(o.redisURL)
	if err != nil {
		return err
	}
	rdb := redis.NewClient(rdbOpts)
	defer rdb.Close()
	limits := map[ratelimit.Tier]ratelimit.Limit{
		ratelimit.TierPurchase: ratelimit.PerMinute(highLimit), ratelimit.TierBrowse: ratelimit.PerMinute(highLimit),
		ratelimit.TierStandard: ratelimit.PerMinute(highLimit),
	}
	fmt.Printf("\nthe limiter alone: Policy.Charge(BROWSE) for %d callers, concurrency %d, 2s per store\n", o.Concurrency, o.Concurrency)
	fmt.Printf("%-8s %12s %10s %10s %22s\n", "store", "charges/s", "p50", "p99", "p50 / browse p50 (off)")
	for _, st := range []struct {
		name    string
		limiter ratelimit.Limiter
	}{
		{sideMemory, ratelimit.NewMemory(ratelimit.MemoryOptions{})},
		{sideRedis, ratelimit.NewRedis(rdb, fmt.Sprintf("leadmarket:bench:%d:", time.Now().UnixNano()))},
	} {
		p, err := ratelimit.NewPolicy(st.limiter, limits)
		if err != nil {
			return err
		}
		tiers := []ratelimit.Tier{ratelimit.TierBrowse}
		r := loadgen.Run(ctx, st.name, o.Concurrency, 200*time.Millisecond, 2*time.Second, func(ctx context.Context, w int) error {
			d, err := p.Charge(ctx, ratelimit.CallerKey(fmt.Sprintf("bench-user-%d", w), ""), tiers)
			if err == nil && !d.Allowed {
				err = errors.New("refused")
			}
			return err
		})
		if r.FirstErr != nil {
			return fmt.Errorf("limiter alone, %s: %w", st.name, r.FirstErr)
		}
		fmt.Printf("%-8s %12.0f %10s %10s %21.3f%%\n", st.name, r.Rate(), fmtLatency(r.Percentile(50)), fmtLatency(r.Percentile(99)),
			100*float64(r.Percentile(50))/float64(offP50))
	}
	return nil
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

// summary is one side over all rounds: its total rate and the median of its rounds' percentiles.
type summary struct {
	rate     float64
	p50, p99 time.Duration
	errors   int
}

func summarise(rs []loadgen.Result) summary {
	var s summary
	var requests int
	var elapsed time.Duration
	var p50s, p99s []time.Duration
	for _, r := range rs {
		requests += r.Requests
		elapsed += r.Elapsed
		s.errors += r.Errors
		p50s, p99s = append(p50s, r.Percentile(50)), append(p99s, r.Percentile(99))
	}
	s.rate = loadgen.Rate(requests, elapsed)
	slices.Sort(p50s)
	slices.Sort(p99s)
	if len(rs) > 0 {
		s.p50, s.p99 = p50s[len(p50s)/2], p99s[len(p99s)/2]
	}
	return s
}

func fmtLatency(d time.Duration) string {
	if d >= time.Millisecond {
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	}
	return d.String()
}

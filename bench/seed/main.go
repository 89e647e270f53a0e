// Command seed measures `leadmarket seed --demo --leads N`: the demo seed's rows per second
// beside a baseline measured in the same run on the same server, a plain INSERT ... SELECT
// generate_series of as many rows into a table shaped like leads (its columns, defaults, checks,
// generated columns and indexes, without the trigger and the foreign key), written in the seed's
// batches, two at a time as the seed writes them. It then runs the seed again, which finds every
// lead there and adds nothing, and prints how long that took.
//
//	go run ./bench/seed [-leads 100000]
//
// It creates the database lm_bench_seed on -database-url's server and drops it when done.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/url"
	"time"

	"github.com/uptrace/bun"
	"golang.org/x/sync/errgroup"

	"github.com/leadmarket/leadmarket/bench/internal/benchdb"
	"github.com/leadmarket/leadmarket/internal/seed"
)

const dbName = "lm_bench_seed"

// batch is the seed's batch of leads (seed.Demo's documentation: 50,000 a statement, two
// statements at a time), which the baseline copies so that both sides use the machine alike.
const batch = 50_000

func main() { benchdb.Main("bench/seed", run) }

func run() error {
	serverURL := flag.String("database-url", benchdb.DefaultServerURL(), "PostgreSQL server to create the benchmark database on")
	leads := flag.Int("leads", 100_000, "how many demo leads to seed (1000000 takes minutes)")
	flag.Parse()
	if *leads <= 0 {
		return fmt.Errorf("-leads must be positive, got %d", *leads)
	}
	ctx := context.Background()

	bdb, _, done, err := benchdb.Scratch(ctx, *serverURL, dbName, 4)
	if err != nil {
		return err
	}
	defer done()

	host := *serverURL
	if u, err := url.Parse(*serverURL); err == nil {
		host = u.Host
	}
	fmt.Printf("seed benchmark: %d leads into %s on %s; baseline first, then the seed, then the seed again\n",
		*leads, dbName, host)

	base, err := baseline(ctx, bdb, *leads)
	if err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	start := time.Now()
	res, err := seed.Demo(ctx, bdb, seed.Options{Leads: *leads})
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	first := time.Since(start)
	if res.Leads != *leads {
		return fmt.Errorf("seed: %d leads written, %d wanted", res.Leads, *leads)
	}
	start = time.Now()
	if _, err := seed.Demo(ctx, bdb, seed.Options{Leads: *leads}); err != nil {
		return fmt.Errorf("seed again: %w", err)
	}
	again := time.Since(start)

	fmt.Printf("%-44s %10s %10s %10s\n", "side", "rows", "time", "rows/s")
	row := func(name string, rows int, d time.Duration) {
		fmt.Printf("%-44s %10d %10s %10.0f\n", name, rows, d.Round(time.Millisecond), float64(rows)/d.Seconds())
	}
	row("baseline (INSERT ... SELECT generate_series)", *leads, base)
	row("seed --demo", res.Leads, first)
	fmt.Printf("%-44s %10d %10s\n", "seed --demo again (every lead there)", 0, again.Round(time.Millisecond))
	fmt.Printf("ratio seed/baseline (rows/s): %.2f\n", base.Seconds()/first.Seconds())
	return nil
}

// baseline writes n rows into bench_leads, a copy of leads' shape, and returns how long that
// took. Each row differs where leads' indexes would notice (hash key, e-mail, time, price,
// title, industry, country, seniority), so the indexes do the seed's work.
func baseline(ctx context.Context, bdb *bun.DB, n int) (time.Duration, error) {
	if _, err := bdb.ExecContext(ctx, "CREATE TABLE bench_leads (LIKE leads INCLUDING ALL)"); err != nil {
		return 0, err
	}
	var partnerID string
	if err := bdb.NewRaw("INSERT INTO partners (name) VALUES ('bench baseline') RETURNING id").Scan(ctx, &partnerID); err != nil {
		return 0, err
	}
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(2)
	for first := 1; first <= n; first += batch {
		last := min(first+batch-1, n)
		g.Go(func() error {
			_, err := bdb.ExecContext(gctx, `INSERT INTO bench_leads (partner_id, first_name, last_name, title, seniority,
				company_name, company_domain, industry, country, email, email_normalized, company_domain_normalized,
				phone_e164, hash_key, price_credits, verification_status, created_at)
			SELECT ?, 'Jane', 'Doe', 'Head of Sales ' || i % 40, (ARRAY['ENTRY','SENIOR','MANAGER','DIRECTOR','VP'])[1 + i % 5],
				'Acme ' || i % 500, 'acme' || i % 500 || '.example', 'Industry ' || i % 12, (ARRAY['US','GB','DE','FR'])[1 + i % 4],
				'lead.' || i || '@acme' || i % 500 || '.example', 'lead.' || i || '@acme' || i % 500 || '.example',
				'acme' || i % 500 || '.example', '+1415' || (2000000 + i % 8000000), md5(i::text), 1 + i % 50, 'VALID',
				'2026-11-01T00:00:00Z'::timestamptz - make_interval(secs => (i * 7919) % 7776000)
			FROM generate_series(?::int, ?::int) AS i`, partnerID, first, last)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

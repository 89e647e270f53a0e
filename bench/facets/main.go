// Command facets is the faceted-browse benchmark (issue 15): marketplaceLeads under random
// combinations of filters, its totalCount and marketplaceFacets, on a database of 100,000 and
// one of 1,000,000 demo leads, one request at a time through the real GraphQL handler over HTTP.
//
// For each size it prepares the database lm_bench_facets_100k or lm_bench_facets_1m on the server
// of -database-url (seed --demo's leads; kept between runs and reused when it holds exactly that
// many leads — the migrations it lacks are applied to its rows and timed, so a run after a
// migration measures the same rows), starts the server in process on a loopback port (app.New,
// rate limits so high that none refuses) and signs in as a seeded workspace owner. Then, with a
// generator seeded by -seed, it makes -combos combinations of 1 to 4 filters (industry, country,
// seniority, company size, verification status, a price range, a title word that does or does
// not occur; lists of 1 to 3 values), the two slow corners first, and for each of them
// in each order (NEWEST, PRICE_ASC, PRICE_DESC):
//
//   - page 1: marketplaceLeads(first: 50) with the lead fields, the nested partner and
//     purchasedByMyWorkspace; then pages 2, 3 and 4 through the end cursors (page 4 is three
//     cursors deep);
//   - page 1 again with totalCount selected (the count's cost is this minus page 1's);
//
// and once per combination marketplaceFacets(filter). Every answer is checked: each lead matches
// the filter, pages are in order without repeats, an exact totalCount agrees with a last page, and
// the facets agree with the exact totalCount where they count the same leads. It prints
// p50/p90/p99/max for each kind of request against the targets (pages: p50 < 10 ms, p99 < 100 ms,
// max < 250 ms at 1M; totalCount: p99 at most 20 ms above the page's; facets: p99 < 150 ms), and
// the five slowest pages with the shape of their plans (EXPLAIN ANALYZE of the SQL the browse
// builder produced, lead.ExplainSellable). A build without totalCount and marketplaceFacets (the
// code before them) is measured on pages only.
//
// The write cost of the indexes (-write-leads, default 100000; 0 skips it): seed --demo's rows/s
// into a fresh database with every migration, beside the same seed into one whose browse indexes
// (leads_sellable_*, leads_title_*) were dropped, in the same run.
//
//	go run ./bench/facets [-sizes 100000,1000000] [-combos 300] [-seed 15] [-write-leads 100000] [-fresh] [-samples FILE]
//
// Everything runs sequentially on loopback; seeding 1,000,000 leads takes minutes the first time.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"

	"github.com/leadmarket/leadmarket/bench/internal/benchdb"
)

type options struct {
	databaseURL string
	sizes       []int
	combos      int
	seed        uint64
	writeLeads  int
	fresh       bool
	slowest     int
	samples     string
}

func main() {
	var o options
	var sizes string
	flag.StringVar(&o.databaseURL, "database-url", benchdb.DefaultServerURL(), "PostgreSQL server to create the benchmark databases on")
	flag.StringVar(&sizes, "sizes", "100000,1000000", "comma-separated numbers of demo leads, one database each")
	flag.IntVar(&o.combos, "combos", 300, "how many filter combinations (each in 3 orders)")
	flag.Uint64Var(&o.seed, "seed", 15, "seed of the combinations' generator: the same seed, the same combinations")
	flag.IntVar(&o.writeLeads, "write-leads", 100_000, "leads seeded to measure the indexes' write cost (0: skip)")
	flag.BoolVar(&o.fresh, "fresh", false, "drop the benchmark databases and seed them again")
	flag.IntVar(&o.slowest, "slowest", 5, "how many of the slowest pages to print with their plans")
	flag.StringVar(&o.samples, "samples", "", "also write every measured request to this file, one per line (tab-separated: size, kind, ms, order, page, filter, totalCount)")
	flag.Parse()
	for _, s := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1000 {
			fmt.Fprintf(os.Stderr, "facets: -sizes: %q is not a number of leads of at least 1000\n", s)
			os.Exit(2)
		}
		o.sizes = append(o.sizes, n)
	}
	if o.combos < 2 || o.writeLeads < 0 {
		fmt.Fprintln(os.Stderr, "facets: -combos must be at least 2, -write-leads not negative")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	benchdb.Main("facets", func() error { return run(ctx, o) })
}

func run(ctx context.Context, o options) error {
	cs := combos(o.combos, o.seed)
	fmt.Printf("facets benchmark: %d combinations (seed %d) x %d orders, pages 1-4 of 50, page 1 with totalCount, facets once per combination; sequential\n",
		len(cs), o.seed, len(orders))
	failed := false
	for _, n := range o.sizes {
		r, err := measureSize(ctx, o, n, cs)
		if err != nil {
			return fmt.Errorf("%d leads: %w", n, err)
		}
		r.print(o.slowest)
		if o.samples != "" {
			if err := r.writeSamples(o.samples); err != nil {
				return err
			}
		}
		failed = failed || r.checkFailures > 0
	}
	if o.writeLeads > 0 {
		if err := writeCost(ctx, o); err != nil {
			return fmt.Errorf("write cost: %w", err)
		}
	}
	if failed {
		return fmt.Errorf("some answers failed their checks (see above)")
	}
	return nil
}

// dbName is the benchmark database of n leads.
func dbName(n int) string {
	switch {
	case n%1_000_000 == 0:
		return fmt.Sprintf("lm_bench_facets_%dm", n/1_000_000)
	case n%1000 == 0:
		return fmt.Sprintf("lm_bench_facets_%dk", n/1000)
	}
	return fmt.Sprintf("lm_bench_facets_%d", n)
}

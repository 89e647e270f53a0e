// Command browse is the browse benchmark (DESIGN §8): it measures marketplaceLeads through the
// whole server — HTTP, authentication, GraphQL, dataloaders, bun, JSON — against the same page
// fetched as hand-written SQL through pgx, side by side in one run, and prints both.
//
// It seeds (or reuses) a database of demo leads, starts the real server in process on a loopback
// port (app.New with ENV=development, so every response carries X-Sql-Statements), signs in as a
// seeded workspace owner and makes sure that workspace has bought a few of the browsed leads, so
// the masking and purchasedByMyWorkspace paths do real work. Then, for a fixed time per side and
// with the same number of concurrent workers:
//
//   - graphql-http: POST /graphql with marketplaceLeads(first: 50, filter: {countries, seniorities})
//     selecting lead fields, the nested partner and purchasedByMyWorkspace;
//   - raw-sql-pgx: the statements an optimal hand-written handler would run for the same page on a
//     pgxpool of the same size: the page query (same columns, same masking LATERAL join for the
//     same user, same filters, keyset on (created_at, id), LIMIT 51) and the page's partners by id.
//
// Each worker walks pages: it follows the end cursor for -pages pages, then starts again from the
// first, so first pages and keyset continuations are both measured. Before measuring, it checks
// that the GraphQL page has 50 edges, no errors, masked contact data on unbought leads only, and
// the same leads in the same order as the SQL page; it fails loudly otherwise.
//
// It prints requests per second, p50 and p99 latency, errors and SQL statements per request for
// each side, the ratio of the two request rates (target: at least 0.5 on a 2-core machine), and
// the statements of a 10- and a 100-lead page, which must not differ (dataloaders). Because the
// client, the server and PostgreSQL share the machine, it also prints the CPU time per request
// of this process, of the benchmark database's PostgreSQL processes (when they run on this
// machine) and of the whole machine (which includes anything else running), and this process's
// heap allocations per request: where the ratio comes from, and whether something else disturbed
// the run.
//
// Run it with `make bench-browse` or
//
//	go run ./bench/browse [-duration 10s] [-concurrency 16] [-leads 100000] [-fresh]
//
// -metrics-cost measures instead what the Prometheus metrics cost (issue 14): graphql-http against
// this server (metrics on, OpenTelemetry off) and against a second one with METRICS_ENABLED=false,
// interleaved over -rounds rounds, with both request rates and their ratio (`make bench-metrics`).
//
// To see where the GraphQL side spends its time: -cpuprofile and -memprofile profile its phases
// (server and client together), and -diagnose adds two sides: graphql-handler calls the server's
// handler in process, without network, HTTP client or response decoding; graphql-executor runs
// the operation through gqlgen's handler over the first page held in memory (executor.go), which
// shows what the GraphQL layer alone costs and so the highest ratio any server built on it could
// reach here.
//
// The database is lm_bench_browse on the server of -database-url (default BENCH_DATABASE_URL,
// else TEST_DATABASE_URL, else postgres://postgres@127.0.0.1:5432/test?sslmode=disable). It is
// kept between runs (-keep, default true) and reused when it holds exactly -leads leads and its
// migrations are current, which saves the seeding; -fresh drops and seeds it again; -keep=false
// drops it at the end. Everything runs on loopback and stops by itself.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"time"

	"github.com/leadmarket/leadmarket/bench/internal/benchdb"
	"github.com/leadmarket/leadmarket/bench/internal/loadgen"
)

// BenchDatabase is the name of the benchmark's database on that server.
const BenchDatabase = "lm_bench_browse"

// PageSize is the page size of the measured requests.
const PageSize = 50

// options are the command's flags.
type options struct {
	loadgen.Flags
	keep       bool
	cpuProfile string
	memProfile string
	diagnose   bool
	// metricsCost and rounds: the metrics-on vs. metrics-off mode (metricscost.go).
	metricsCost bool
	rounds      int
}

func main() {
	var o options
	o.Register(flag.CommandLine, benchdb.DefaultServerURL(), BenchDatabase, 10*time.Second, 2*time.Second)
	flag.BoolVar(&o.keep, "keep", true, "keep the benchmark database for the next run (false: drop it at the end)")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the measured GraphQL phase (server and client) to this file")
	flag.StringVar(&o.memProfile, "memprofile", "", "write an allocation profile of the GraphQL phases (server and client) to this file")
	flag.BoolVar(&o.diagnose, "diagnose", false, "also measure graphql-handler (the server's handler called in process, without network, HTTP client or response decoding) and graphql-executor (gqlgen alone, over a page in memory)")
	flag.BoolVar(&o.metricsCost, "metrics-cost", false, "instead of the sides: graphql-http against the server with Prometheus metrics on and against one with METRICS_ENABLED=false, interleaved in -rounds rounds sharing -duration per variant; prints both req/s and their ratio (target: cost < 3%)")
	flag.IntVar(&o.rounds, "rounds", 10, "rounds of -metrics-cost (each variant measured duration/rounds per round)")
	flag.Parse()
	if o.metricsCost && (o.rounds < 1 || o.Duration/time.Duration(max(o.rounds, 1)) < 100*time.Millisecond) {
		fmt.Fprintln(os.Stderr, "browse: -rounds must be at least 1, with at least 100ms of -duration per round")
		os.Exit(2)
	}
	if o.Leads < PageSize || o.Concurrency < 1 || o.Pool < 2 || o.Pages < 1 || o.Duration <= 0 || o.Warmup < 0 {
		fmt.Fprintln(os.Stderr, "browse: -leads must be at least 50, -concurrency and -pages at least 1, -pool at least 2, -duration positive")
		os.Exit(2)
	}

	if o.memProfile != "" {
		runtime.MemProfileRate = 64 << 10 // finer than the default, set before anything allocates much
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "browse:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	env, err := setUp(ctx, o)
	if err != nil {
		return err
	}
	defer env.close(ctx)

	fmt.Printf("browse benchmark: %d leads, concurrency %d, %s per side (warm-up %s), first %d, filters countries+seniorities, nested partner, %d pages per walk\n",
		o.Leads, o.Concurrency, o.Duration, o.Warmup, PageSize, o.Pages)
	fmt.Printf("machine: %d CPUs, GOMAXPROCS %d, %s; database pools %d connections per side\n",
		runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version(), o.Pool)
	fmt.Println(env.dbReport)
	fmt.Println(env.purchaseReport)

	if err := env.verify(ctx); err != nil {
		return fmt.Errorf("verification failed, nothing measured: %w", err)
	}
	small, err := env.statementsFor(ctx, 10)
	if err != nil {
		return err
	}
	large, err := env.statementsFor(ctx, 100)
	if err != nil {
		return err
	}
	fmt.Printf("sql statements per graphql request: first 10 -> %d, first 100 -> %d (must not grow with page size)\n", small, large)
	if o.metricsCost {
		return env.measureMetricsCost(ctx, o.rounds)
	}

	gql, err := env.measure(ctx, "graphql-http", env.newGraphQLWorker, o.cpuProfile)
	if err != nil {
		return err
	}
	if o.memProfile != "" {
		if err := writeAllocs(o.memProfile); err != nil {
			return err
		}
	}
	sides := []result{gql}
	if o.diagnose {
		h, err := env.measure(ctx, "graphql-handler", env.newHandlerWorker, "")
		if err != nil {
			return err
		}
		sides = append(sides, h)
		if err := env.startExecutor(ctx); err != nil {
			return err
		}
		x, err := env.measure(ctx, "graphql-executor", env.newExecutorWorker, "")
		if err != nil {
			return err
		}
		sides = append(sides, x)
	}
	raw, err := env.measure(ctx, "raw-sql-pgx", env.newRawWorker, "")
	if err != nil {
		return err
	}
	sides = append(sides, raw)

	fmt.Println()
	fmt.Printf("%-16s %9s %9s %9s %9s %7s  %s\n", "side", "requests", "req/s", "p50", "p99", "errors", "sql/request")
	for _, r := range sides {
		fmt.Printf("%-16s %9d %9.0f %9s %9s %7d  %s\n", r.side, r.requests, r.rate(), fmtLatency(r.percentile(50)),
			fmtLatency(r.percentile(99)), r.errors, r.statementsSummary())
	}
	fmt.Printf("\n%-16s %16s %16s %16s %16s\n", "per request", "process cpu", "postgres cpu", "machine cpu", "process allocs")
	for _, r := range sides {
		fmt.Printf("%-16s %16s %16s %16s %16s\n", r.side, r.cpuPerRequest(r.processCPU), r.cpuPerRequest(r.postgresCPU),
			r.cpuPerRequest(r.machineCPU), r.allocsPerRequest())
	}
	ratio := 0.0
	if raw.rate() > 0 {
		ratio = gql.rate() / raw.rate()
	}
	verdict := "met"
	if ratio < 0.5 {
		verdict = "NOT met"
	}
	fmt.Printf("ratio graphql/raw-sql (req/s): %.2f   (target >= 0.5: %s)\n", ratio, verdict)
	if x := sides[len(sides)-2]; x.side == "graphql-executor" {
		rawCPU, floor, pg := raw.msPerRequest(raw.machineCPU), x.msPerRequest(x.processCPU), gql.msPerRequest(gql.postgresCPU)
		if rawCPU > 0 && floor > 0 && pg > 0 {
			fmt.Printf("ceiling of the ratio with this executor: %.2f = raw-sql's machine CPU per request / (graphql-executor's\n"+
				"      CPU + graphql-http's PostgreSQL CPU per request), both sides keeping both CPUs busy\n", rawCPU/(floor+pg))
		}
	}
	for _, r := range sides {
		if r.firstErr != nil {
			fmt.Printf("first %s error: %v\n", r.side, r.firstErr)
		}
	}
	fmt.Println("note: the graphql side also authenticates the token (user cached), checks rate limits (so high that none")
	fmt.Println("      refuses) and the query's cost, builds opaque cursors, encodes JSON and goes through HTTP; its client")
	fmt.Println("      checks each response without decoding it. Client and server share this process and its CPUs with")
	fmt.Println("      PostgreSQL.")
	if o.cpuProfile != "" {
		fmt.Printf("cpu profile of the graphql phase: %s (go tool pprof -top %s)\n", o.cpuProfile, o.cpuProfile)
	}
	if o.memProfile != "" {
		fmt.Printf("allocation profile of the graphql phases: %s (go tool pprof -sample_index=alloc_space -top %s)\n", o.memProfile, o.memProfile)
	}
	return nil
}

// writeAllocs writes the allocations made so far to path: the set-up's few, then the GraphQL
// warm-up and measured phases'.
func writeAllocs(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("allocation profile: %w", err)
	}
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		_ = f.Close()
		return fmt.Errorf("allocation profile: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("allocation profile: %w", err)
	}
	return nil
}

func fmtLatency(d time.Duration) string {
	switch {
	case d >= 100*time.Millisecond:
		return d.Round(time.Millisecond).String()
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	default:
		return d.Round(time.Microsecond).String()
	}
}

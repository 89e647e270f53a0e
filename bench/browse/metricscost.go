package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"time"

	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/bench/internal/loadgen"
	"github.com/leadmarket/leadmarket/internal/app"
	"github.com/leadmarket/leadmarket/internal/config"
	"github.com/leadmarket/leadmarket/internal/db"
)

// metricsCostTarget is the most the Prometheus metrics may cost the browse request rate.
const metricsCostTarget = 0.03

// startMetricsOffServer runs a second server like the first but with METRICS_ENABLED=false, on
// a database pool of its own of the same size, and returns its /graphql endpoint. close stops it.
func (e *benchEnv) startMetricsOffServer(ctx context.Context) (endpoint string, closeFn func(), err error) {
	cfg, err := config.FromEnv(e.serverEnv(map[string]string{"METRICS_ENABLED": "false"}))
	if err != nil {
		return "", nil, fmt.Errorf("config: %w", err)
	}
	var bdb *bun.DB
	if bdb, err = db.Open(ctx, cfg.DatabaseURL, cfg.DBMaxConns); err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		_ = bdb.Close()
		return "", nil, fmt.Errorf("listen on loopback: %w", err)
	}
	srv := app.New(cfg, bdb, slog.New(slog.DiscardHandler))
	serveCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	served := make(chan error, 1)
	go func() { served <- srv.Run(serveCtx, ln) }()
	return "http://" + ln.Addr().String() + "/graphql", func() {
		stop()
		if err := <-served; err != nil {
			fmt.Fprintln(os.Stderr, "browse: metrics-off server:", err)
		}
		_ = bdb.Close()
	}, nil
}

// measureMetricsCost measures graphql-http against the server with metrics on (the benchmark's
// own server; OTel is off, as nothing sets OTEL_EXPORTER_OTLP_ENDPOINT) and against one with
// METRICS_ENABLED=false, in -rounds rounds of duration/rounds each, the two variants interleaved
// (on-off, then off-on, ...) so that a drift of the machine's load falls on both alike. It
// prints both request rates, their ratio and the cost against the 3% target.
func (e *benchEnv) measureMetricsCost(ctx context.Context, rounds int) error {
	offEndpoint, closeOff, err := e.startMetricsOffServer(ctx)
	if err != nil {
		return err
	}
	defer closeOff()
	onEndpoint := e.endpoint
	defer func() { e.endpoint = onEndpoint }()

	steps := make([]step, e.o.Concurrency)
	for i := range steps {
		steps[i] = e.newGraphQLWorker()
	}
	variants := []struct {
		name, endpoint string
	}{{"metrics-on", onEndpoint}, {"metrics-off", offEndpoint}}
	per := e.o.Duration / time.Duration(rounds)
	fmt.Printf("metrics cost: %d rounds of %s per variant, interleaved, after a warm-up of %s each ...\n", rounds, per, e.o.Warmup)
	for _, v := range variants {
		e.endpoint = v.endpoint
		if _, err := runFor(ctx, v.name, steps, e.o.Warmup); err != nil {
			return err
		}
	}
	var requests [2]int
	var elapsed [2]time.Duration
	var errs [2]int
	var cpu [2]time.Duration
	var allocs [2]uint64
	var ratios []float64
	for round := range rounds {
		order := []int{0, 1}
		if round%2 == 1 {
			order = []int{1, 0}
		}
		var rate [2]float64
		for _, i := range order {
			e.endpoint = variants[i].endpoint
			r, err := runFor(ctx, variants[i].name, steps, per)
			if err != nil {
				return err
			}
			requests[i] += r.requests
			elapsed[i] += r.elapsed
			errs[i] += r.errors
			cpu[i] += r.processCPU
			allocs[i] += r.allocs
			rate[i] = r.rate()
			if r.firstErr != nil {
				fmt.Printf("  first %s error: %v\n", variants[i].name, r.firstErr)
			}
		}
		ratio := 0.0
		if rate[1] > 0 {
			ratio = rate[0] / rate[1]
		}
		ratios = append(ratios, ratio)
		fmt.Printf("  round %2d: metrics-on %7.0f req/s, metrics-off %7.0f req/s, on/off %.3f\n", round+1, rate[0], rate[1], ratio)
	}
	on, off := loadgen.Rate(requests[0], elapsed[0]), loadgen.Rate(requests[1], elapsed[1])
	ratio := 0.0
	if off > 0 {
		ratio = on / off
	}
	slices.Sort(ratios)
	median := ratios[len(ratios)/2]
	if len(ratios)%2 == 0 {
		median = (ratios[len(ratios)/2-1] + ratios[len(ratios)/2]) / 2
	}
	fmt.Println()
	fmt.Printf("%-12s %9s %9s %7s %22s %22s\n", "variant", "requests", "req/s", "errors", "process cpu/request", "process allocs/request")
	var cpuPer, allocsPer [2]float64
	for i, v := range variants {
		if requests[i] > 0 {
			cpuPer[i] = float64(cpu[i].Microseconds()) / float64(requests[i])
			allocsPer[i] = float64(allocs[i]) / float64(requests[i])
		}
		fmt.Printf("%-12s %9d %9.0f %7d %20.0fµs %22.0f\n", v.name, requests[i], loadgen.Rate(requests[i], elapsed[i]), errs[i],
			cpuPer[i], allocsPer[i])
	}
	cost := 1 - ratio
	verdict := "met"
	if cost >= metricsCostTarget {
		verdict = "NOT met"
	}
	fmt.Printf("ratio metrics-on/metrics-off (req/s): %.3f over all rounds (median of rounds %.3f): cost %.1f%%   (target < %.0f%%: %s)\n",
		ratio, median, 100*cost, 100*metricsCostTarget, verdict)
	if cpuPer[1] > 0 {
		// CPU time per request counts only what this process spends (client and server), so it is
		// steadier than the request rate when other work shares the machine.
		fmt.Printf("process cpu per request metrics-on/metrics-off: %.3f (%+.1f%%); allocations per request %+.0f\n",
			cpuPer[0]/cpuPer[1], 100*(cpuPer[0]/cpuPer[1]-1), allocsPer[0]-allocsPer[1])
	}
	return nil
}

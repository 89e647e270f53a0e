package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/leadmarket/leadmarket/bench/internal/loadgen"
)

// result is what one side did in its measured time.
type result struct {
	side     string
	requests int
	errors   int
	firstErr error
	elapsed  time.Duration
	// latencies are the successful requests' latencies, sorted.
	latencies []time.Duration
	// statements and maxStatements sum and bound the SQL statements of successful requests;
	// unknownStatements counts requests whose count was not reported.
	statements, maxStatements, unknownStatements int
	// processCPU is the CPU time this process (client, server, pools) spent in the measured
	// phase; postgresCPU the time the benchmark database's server processes spent, or 0 where
	// they cannot be seen in /proc; machineCPU the whole machine's busy time (anything else that
	// ran included), or 0 where /proc/stat is not readable.
	processCPU, postgresCPU, machineCPU time.Duration
	// allocs are the heap allocations this process (client and server) made in the measured phase.
	allocs uint64
}

// rate is successful requests per second.
func (r result) rate() float64 { return loadgen.Rate(r.requests, r.elapsed) }

// percentile returns the latency below which p percent of the successful requests finished
// (nearest rank).
func (r result) percentile(p float64) time.Duration { return loadgen.Percentile(r.latencies, p) }

func (r result) statementsSummary() string {
	known := len(r.latencies) - r.unknownStatements
	if known <= 0 {
		return "unknown"
	}
	s := fmt.Sprintf("%.2f (max %d)", float64(r.statements)/float64(known), r.maxStatements)
	if r.unknownStatements > 0 {
		s += fmt.Sprintf(", %d unreported", r.unknownStatements)
	}
	return s
}

// workerStats is one worker's share of a result.
type workerStats struct {
	latencies                                    []time.Duration
	errors                                       int
	firstErr                                     error
	statements, maxStatements, unknownStatements int
}

// measure runs o.Concurrency workers of newStep for the warm-up, then for the measured duration,
// each worker keeping its page walk across both. With profile set, the measured phase is
// CPU-profiled into that file.
func (e *benchEnv) measure(ctx context.Context, side string, newStep func() step, profile string) (result, error) {
	steps := make([]step, e.o.Concurrency)
	for i := range steps {
		steps[i] = newStep()
	}
	fmt.Printf("%s: warming up %s, measuring %s ...\n", side, e.o.Warmup, e.o.Duration)
	if e.o.Warmup > 0 {
		if _, err := runFor(ctx, side, steps, e.o.Warmup); err != nil {
			return result{}, err
		}
	}
	stopProfile := func() error { return nil }
	if profile != "" {
		var err error
		if stopProfile, err = startCPUProfile(profile); err != nil {
			return result{}, err
		}
	}
	pgBefore := e.postgresCPU(ctx)
	r, err := runFor(ctx, side, steps, e.o.Duration)
	if perr := stopProfile(); err == nil {
		err = perr
	}
	if err != nil {
		return r, err
	}
	if pgBefore != nil {
		for pid, after := range e.postgresCPU(ctx) {
			r.postgresCPU += after - pgBefore[pid]
		}
	}
	return r, nil
}

// startCPUProfile CPU-profiles the process into a new file at path until the returned stop is
// called; stop reports whether the profile was written whole.
func startCPUProfile(path string) (stop func() error, err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() error {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		return nil
	}, nil
}

// postgresCPU returns the CPU time used so far by each server process of the benchmark
// database, by pid, or nil when they are not processes of this machine named postgres.
func (e *benchEnv) postgresCPU(ctx context.Context) map[int]time.Duration {
	rows, err := e.pool.Query(ctx, "SELECT pid FROM pg_stat_activity WHERE datname = $1", BenchDatabase)
	if err != nil {
		return nil
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return nil
	}
	out := make(map[int]time.Duration, len(pids))
	for _, pid := range pids {
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err != nil || !strings.HasPrefix(string(comm), "postgres") {
			return nil
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return nil
		}
		// Fields after the parenthesised command name: state is the first, utime the 12th, stime the 13th.
		i := strings.LastIndexByte(string(stat), ')')
		if i < 0 {
			return nil
		}
		fields := strings.Fields(string(stat[i+1:]))
		if len(fields) < 13 {
			return nil
		}
		utime, err1 := strconv.ParseInt(fields[11], 10, 64)
		stime, err2 := strconv.ParseInt(fields[12], 10, 64)
		if err1 != nil || err2 != nil {
			return nil
		}
		out[int(pid)] = time.Duration(utime+stime) * time.Second / clockTicks
	}
	return out
}

// runFor runs each step in its own goroutine, back to back, until d has passed; requests in
// flight at the deadline finish and count, and the elapsed time includes them.
func runFor(ctx context.Context, side string, steps []step, d time.Duration) (result, error) {
	stats := make([]workerStats, len(steps))
	procBefore, machineBefore, allocsBefore := processCPU(), machineBusy(), mallocs()
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for i, s := range steps {
		st := &stats[i]
		st.latencies = make([]time.Duration, 0, 4096)
		wg.Go(func() {
			for ctx.Err() == nil && time.Now().Before(deadline) {
				t0 := time.Now()
				n, err := s(ctx)
				lat := time.Since(t0)
				if err != nil {
					st.errors++
					if st.firstErr == nil {
						st.firstErr = err
					}
					continue
				}
				st.latencies = append(st.latencies, lat)
				if n < 0 {
					st.unknownStatements++
					continue
				}
				st.statements += n
				st.maxStatements = max(st.maxStatements, n)
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return result{}, err
	}
	r := result{side: side, elapsed: time.Since(start), processCPU: processCPU() - procBefore, allocs: mallocs() - allocsBefore}
	if machineBefore > 0 {
		r.machineCPU = machineBusy() - machineBefore
	}
	for _, st := range stats {
		r.latencies = append(r.latencies, st.latencies...)
		r.errors += st.errors
		if r.firstErr == nil {
			r.firstErr = st.firstErr
		}
		r.statements += st.statements
		r.maxStatements = max(r.maxStatements, st.maxStatements)
		r.unknownStatements += st.unknownStatements
	}
	r.requests = len(r.latencies)
	slices.Sort(r.latencies)
	return r, nil
}

// mallocs is the number of heap allocations this process has made.
func mallocs() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.Mallocs
}

// allocsPerRequest formats the allocations per successful request.
func (r result) allocsPerRequest() string {
	if r.requests == 0 {
		return "-"
	}
	return strconv.FormatUint(r.allocs/uint64(r.requests), 10)
}

// cpuPerRequest formats CPU time d per successful request in milliseconds.
func (r result) cpuPerRequest(d time.Duration) string {
	ms := r.msPerRequest(d)
	if ms == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fms", ms)
}

// msPerRequest is d spread over the successful requests, in milliseconds; 0 when either is
// unknown.
func (r result) msPerRequest(d time.Duration) float64 {
	if r.requests == 0 || d <= 0 {
		return 0
	}
	return float64(d) / float64(r.requests) / float64(time.Millisecond)
}

// processCPU returns the user and system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// machineBusy returns the busy (not idle, not iowait) CPU time of the whole machine from
// /proc/stat, or 0 where it cannot be read.
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	fields := strings.Fields(line)
	if len(fields) < 5 || fields[0] != "cpu" {
		return 0
	}
	var busy int64
	for i, f := range fields[1:] {
		v, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0
		}
		if i != 3 && i != 4 && i < 8 { // idle, iowait; guest time is already in user time
			busy += v
		}
	}
	return time.Duration(busy) * time.Second / clockTicks
}

// clockTicks is USER_HZ, the unit of /proc/stat: 100 on every Linux architecture Go supports.
const clockTicks = 100

// Package loadgen drives a request function at a fixed concurrency for a fixed time and
// summarises what happened: the shared engine of the benchmark commands.
package loadgen

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Result is what one measured run did.
type Result struct {
	Name      string
	Requests  int
	Errors    int
	FirstErr  error
	Elapsed   time.Duration
	latencies []time.Duration
}

// Rate is successful requests per second.
func (r Result) Rate() float64 { return Rate(r.Requests, r.Elapsed) }

// Percentile is the latency below which p percent of successful requests finished (nearest rank).
func (r Result) Percentile(p float64) time.Duration { return Percentile(r.latencies, p) }

// Rate is n per second of elapsed, or 0 when elapsed is not positive.
func Rate(n int, elapsed time.Duration) float64 {
	if elapsed <= 0 {
		return 0
	}
	return float64(n) / elapsed.Seconds()
}

// Percentile is the latency below which p percent of the sorted latencies lie (nearest rank), or
// 0 when there are none.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(p/100*float64(len(sorted))+0.5) - 1
	return sorted[min(max(rank, 0), len(sorted)-1)]
}

// String is one table row: name, req/s, p50, p99, errors.
func (r Result) String() string {
	return fmt.Sprintf("%-26s %10.0f %10s %10s %8d", r.Name, r.Rate(), r.Percentile(50).Round(time.Microsecond),
		r.Percentile(99).Round(time.Microsecond), r.Errors)
}

// Header is the table header matching String.
const Header = "side                           req/s        p50        p99   errors"

// Run calls fn from concurrency workers, first for warmup (not measured), then for duration.
// Each worker gets its index; fn returns an error for a failed request. Run stops by itself.
func Run(ctx context.Context, name string, concurrency int, warmup, duration time.Duration, fn func(ctx context.Context, worker int) error) Result {
	phase := func(d time.Duration, record bool) Result {
		deadline := time.Now().Add(d)
		var mu sync.Mutex
		res := Result{Name: name}
		var wg sync.WaitGroup
		start := time.Now()
		for w := range concurrency {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var lat []time.Duration
				var errs int
				var first error
				for time.Now().Before(deadline) && ctx.Err() == nil {
					t0 := time.Now()
					if err := fn(ctx, w); err != nil {
						errs++
						if first == nil {
							first = err
						}
						continue
					}
					if record {
						lat = append(lat, time.Since(t0))
					}
				}
				mu.Lock()
				res.latencies = append(res.latencies, lat...)
				res.Errors += errs
				if res.FirstErr == nil {
					res.FirstErr = first
				}
				mu.Unlock()
			}()
		}
		wg.Wait()
		res.Elapsed = time.Since(start)
		res.Requests = len(res.latencies)
		slices.Sort(res.latencies)
		return res
	}
	if warmup > 0 {
		phase(warmup, false)
	}
	return phase(duration, true)
}

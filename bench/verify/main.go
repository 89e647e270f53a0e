// Command verify measures the email verification pipeline: pending leads enqueued as a completed
// upload enqueues them, verified by River jobs through the PostgreSQL slot limiter against a fake
// MillionVerifier on loopback that answers after a fixed latency, each verdict written in its own
// transaction. The ceiling is the limit itself: at most -concurrency calls in flight, each taking
// -latency, so concurrency / latency verifications per second (5 / 20 ms = 250/s). Beside it, in
// the same run, it measures what -concurrency goroutines calling the fake in a loop get without
// any database, the ceiling this machine allows.
//
//	go run ./bench/verify [-leads 20000] [-latency 20ms] [-concurrency 5] [-instances 1]
//
// It prints verifications per second, the ratio to the limit (target: at least 0.8) and the most
// calls the fake ever had in flight (target: never above -concurrency). It creates the database
// lm_bench_verify on -database-url's server and drops it when done.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/riverqueue/river"
	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/bench/internal/benchdb"
	"github.com/leadmarket/leadmarket/internal/db"
	"github.com/leadmarket/leadmarket/internal/jobs"
	"github.com/leadmarket/leadmarket/internal/lead"
	"github.com/leadmarket/leadmarket/internal/verify"
)

const dbName = "lm_bench_verify"

func main() { benchdb.Main("bench/verify", run) }

func run() error {
	serverURL := flag.String("database-url", benchdb.DefaultServerURL(), "PostgreSQL server to create the benchmark database on")
	leads := flag.Int("leads", 20_000, "pending leads to verify")
	latency := flag.Duration("latency", 20*time.Millisecond, "how long the fake MillionVerifier takes to answer")
	concurrency := flag.Int("concurrency", 5, "VERIFY_CONCURRENCY: provider calls in flight across all instances")
	instances := flag.Int("instances", 1, "instances (River clients, pools and slot limiters) sharing the work")
	batch := flag.Int("batch", 100, "leads per verification job")
	flag.Parse()
	if *leads <= 0 || *concurrency <= 0 || *instances <= 0 || *latency <= 0 {
		return fmt.Errorf("-leads, -concurrency, -instances and -latency must be positive")
	}
	ctx := context.Background()
	bdb, dbURL, done, err := benchdb.Scratch(ctx, *serverURL, dbName, 4)
	if err != nil {
		return err
	}
	defer done()

	fake := newFake(*latency)
	defer fake.srv.Close()
	limit := float64(*concurrency) / latency.Seconds()
	fmt.Printf("verify benchmark: %d pending leads, fake MillionVerifier answering in %s, VERIFY_CONCURRENCY %d (%d instance(s)); limit %.0f verifications/s\n",
		*leads, *latency, *concurrency, *instances, limit)

	// The machine's ceiling: the fake called by as many goroutines as there are slots, no database.
	rawRate := rawCalls(fake, *concurrency, 2*time.Second)
	fake.reset()

	ids, err := insertLeads(ctx, bdb, *leads)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	var services []*verify.Service
	for range *instances {
		pool, err := db.Open(ctx, dbURL, 20)
		if err != nil {
			return err
		}
		defer pool.Close()
		queue, err := jobs.NewQueue(pool.DB)
		if err != nil {
			return err
		}
		svc := verify.NewService(pool, queue, verify.Options{
			MillionVerifierAPIKey: "bench", MillionVerifierURL: fake.srv.URL, Concurrency: *concurrency,
			BatchSize: *batch, Logger: logger,
		})
		w := river.NewWorkers()
		svc.Workers(w)
		r, err := jobs.NewRunner(ctx, dbURL, w, jobs.RunnerOptions{
			Concurrency: 2, Queues: map[string]int{verify.Queue: *concurrency}, Logger: logger,
		})
		if err != nil {
			return err
		}
		if err := r.Start(ctx); err != nil {
			return err
		}
		defer func() {
			stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = r.Stop(stopCtx)
		}()
		services = append(services, svc)
	}

	// Slots held in PostgreSQL, sampled while the backlog drains.
	var maxSlots atomic.Int64
	sampling, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-sampling:
				return
			case <-time.After(10 * time.Millisecond):
			}
			if n, err := verify.InFlight(ctx, bdb); err == nil && int64(n) > maxSlots.Load() {
				maxSlots.Store(int64(n))
			}
		}
	}()
	tx, err := bdb.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if _, err := services[0].EnqueueTx(ctx, tx, ids); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	start := time.Now()
	lastReport := start
	for {
		var pending int
		if err := bdb.NewRaw("SELECT count(*) FROM leads WHERE verification_status = 'PENDING'").Scan(ctx, &pending); err != nil {
			return err
		}
		if pending == 0 {
			break
		}
		if time.Since(lastReport) > 10*time.Second {
			lastReport = time.Now()
			fmt.Printf("  ... %d left after %s\n", pending, time.Since(start).Round(time.Second))
		}
		if time.Since(start) > 30*time.Minute {
			return fmt.Errorf("%d leads still pending after 30 minutes", pending)
		}
		time.Sleep(20 * time.Millisecond)
	}
	elapsed := time.Since(start)
	close(sampling)
	<-sampled

	var verdicts, calls int
	if err := bdb.NewRaw(`SELECT (SELECT count(*) FROM leads WHERE verified_at IS NOT NULL), (SELECT count(*) FROM lead_verifications)`).
		Scan(ctx, &verdicts, &calls); err != nil {
		return err
	}
	rate := float64(*leads) / elapsed.Seconds()
	ratio := rate / limit
	fmt.Printf("baseline: %d goroutines calling the fake in a loop, no database: %.0f calls/s (%.2f of the limit)\n",
		*concurrency, rawRate, rawRate/limit)
	fmt.Printf("pipeline: %d leads verified in %s: %.0f verifications/s; %d verdicts, %d provider calls (the fake saw %d)\n",
		*leads, elapsed.Round(time.Millisecond), rate, verdicts, calls, fake.calls.Load())
	fmt.Printf("ratio to the limit (%.0f/s): %.2f (target >= 0.80: %s); to the no-database baseline: %.2f\n",
		limit, ratio, verdict(ratio >= 0.8), rate/rawRate)
	fmt.Printf("most calls in flight at the fake: %d, most slots held in PostgreSQL: %d (target <= %d: %s)\n",
		fake.maxFlight.Load(), maxSlots.Load(), *concurrency, verdict(fake.maxFlight.Load() <= int64(*concurrency)))
	return nil
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

// fake is MillionVerifier as it documents itself, answering after latency, counting the calls in
// flight.
type fake struct {
	srv       *httptest.Server
	latency   time.Duration
	inFlight  atomic.Int64
	maxFlight atomic.Int64
	calls     atomic.Int64
}

func newFake(latency time.Duration) *fake {
	f := &fake{latency: latency}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := f.inFlight.Add(1)
		for m := f.maxFlight.Load(); n > m && !f.maxFlight.CompareAndSwap(m, n); m = f.maxFlight.Load() {
		}
		f.calls.Add(1)
		time.Sleep(f.latency)
		result, code := "ok", 1
		if strings.HasPrefix(r.URL.Query().Get("email"), "dead") {
			result, code = "invalid", 6
		}
		f.inFlight.Add(-1) // before the answer leaves: the caller frees its slot only after it
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"email":%q,"quality":"good","result":%q,"resultcode":%d,"subresult":%q,"free":false,"role":false,"didyoumean":"","credits":100000,"executiontime":0,"error":"","livemode":true}`,
			r.URL.Query().Get("email"), result, code, result)
	}))
	return f
}

func (f *fake) reset() {
	f.calls.Store(0)
	f.maxFlight.Store(0)
}

// rawCalls calls the fake from n goroutines for d and returns the calls per second.
func rawCalls(f *fake, n int, d time.Duration) float64 {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n}}
	var done atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range n {
		wg.Go(func() {
			for time.Since(start) < d {
				res, err := client.Get(f.srv.URL + "/api/v3/?api=bench&email=raw%40example.com&timeout=19")
				if err != nil {
					continue
				}
				_, _ = io.Copy(io.Discard, res.Body)
				_ = res.Body.Close()
				done.Add(1)
			}
		})
	}
	wg.Wait()
	return float64(done.Load()) / time.Since(start).Seconds()
}

// insertLeads writes n pending leads of one partner, one in ten with a dead address, set-based,
// and returns their ids.
func insertLeads(ctx context.Context, bdb *bun.DB, n int) ([]string, error) {
	var partnerID string
	if err := bdb.NewRaw("INSERT INTO partners (name) VALUES ('bench partner') RETURNING id").Scan(ctx, &partnerID); err != nil {
		return nil, fmt.Errorf("partner: %w", err)
	}
	if _, err := lead.InsertFrom(ctx, bdb, `SELECT gen_random_uuid(), ?::uuid, 'Jane', 'Doe', 'Head of Sales', 'DIRECTOR', '',
			'Acme', 'acme-' || i || '.example', 'SIZE_51_200', 'Software', 'US', '', '',
			e, '', '', e, 'acme-' || i || '.example', '', 5, 3, 'ACTIVE', 'PENDING', now(), now()
		FROM generate_series(1, ?) AS i,
			LATERAL (SELECT CASE WHEN i % 10 = 0 THEN 'dead' ELSE 'jane' END || '.' || i || '@acme-' || i || '.example' AS e) AS x`,
		partnerID, n); err != nil {
		return nil, err
	}
	var ids []string
	if err := bdb.NewRaw("SELECT id FROM leads WHERE partner_id = ? ORDER BY created_at, id", partnerID).Scan(ctx, &ids); err != nil {
		return nil, err
	}
	if len(ids) != n {
		return nil, fmt.Errorf("%d leads written, %d wanted", len(ids), n)
	}
	if err := lead.Analyze(ctx, bdb); err != nil {
		return nil, err
	}
	return ids, nil
}

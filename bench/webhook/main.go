// Command webhook measures Stripe webhook intake: the real POST /webhooks/stripe (verify the
// signature, store the event once, enqueue its River job in the same transaction, answer) beside
// a baseline handler that only verifies the signature and answers, both over HTTP on loopback at
// the same concurrency in the same run. Every request carries a new event, so every request
// stores and enqueues.
//
//	go run ./bench/webhook [-duration 10s] [-concurrency 16]
//
// It creates (and recreates) the database lm_bench_webhook on -database-url's server.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/leadmarket/leadmarket/bench/internal/benchdb"
	"github.com/leadmarket/leadmarket/bench/internal/loadgen"
	"github.com/leadmarket/leadmarket/internal/app"
	"github.com/leadmarket/leadmarket/internal/billing"
	"github.com/leadmarket/leadmarket/internal/config"
)

const secret = "whsec_bench_webhook_secret"

func main() { benchdb.Main("bench/webhook", run) }

func run() error {
	serverURL := flag.String("database-url", benchdb.DefaultServerURL(), "PostgreSQL server to create the benchmark database on")
	duration := flag.Duration("duration", 10*time.Second, "measured time per side")
	warmup := flag.Duration("warmup", 2*time.Second, "unmeasured warm-up per side")
	concurrency := flag.Int("concurrency", 16, "concurrent clients")
	flag.Parse()
	ctx := context.Background()

	dbURL, err := benchdb.Recreate(ctx, *serverURL, "lm_bench_webhook")
	if err != nil {
		return err
	}
	bdb, err := benchdb.OpenMigrated(ctx, dbURL, 20)
	if err != nil {
		return err
	}
	defer bdb.Close()
	vars := map[string]string{"ENV": "development", "STRIPE_WEBHOOK_SECRET": secret, "DB_MAX_CONNS": "20"}
	cfg, err := config.FromEnv(func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
	if err != nil {
		return err
	}
	a, err := app.Build(cfg, bdb, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return err
	}
	real := httptest.NewServer(a.Server.Handler())
	defer real.Close()
	baseline := httptest.NewServer(http.HandlerFunc(verifyOnly))
	defer baseline.Close()

	client := &http.Client{Transport: &http.Transport{MaxIdleConns: *concurrency * 2, MaxIdleConnsPerHost: *concurrency * 2}}
	var seq atomic.Int64
	drive := func(base string) func(ctx context.Context, _ int) error {
		return func(ctx context.Context, _ int) error {
			body := eventBody(seq.Add(1))
			signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret})
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/webhooks/stripe", strings.NewReader(string(body)))
			if err != nil {
				return err
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Stripe-Signature", signed.Header)
			res, err := client.Do(req)
			if err != nil {
				return err
			}
			_, _ = io.Copy(io.Discard, res.Body)
			_ = res.Body.Close()
			if res.StatusCode != http.StatusOK {
				return fmt.Errorf("status %d", res.StatusCode)
			}
			return nil
		}
	}

	fmt.Printf("webhook intake benchmark: concurrency %d, %s per side (after %s warm-up), a new checkout.session.completed per request\n",
		*concurrency, *duration, *warmup)
	base := loadgen.Run(ctx, "baseline (verify only)", *concurrency, *warmup, *duration, drive(baseline.URL))
	intake := loadgen.Run(ctx, "intake (verify+store+enqueue)", *concurrency, *warmup, *duration, drive(real.URL))
	fmt.Println(loadgen.Header)
	fmt.Println(base)
	fmt.Println(intake)
	for _, r := range []loadgen.Result{base, intake} {
		if r.FirstErr != nil {
			fmt.Printf("%s: first error: %v\n", r.Name, r.FirstErr)
		}
	}
	var stored, jobs int
	_ = bdb.NewRaw("SELECT count(*) FROM stripe_events").Scan(ctx, &stored)
	_ = bdb.NewRaw("SELECT count(*) FROM river_job WHERE kind = ?", billing.ProcessEventArgs{}.Kind()).Scan(ctx, &jobs)
	fmt.Printf("stored events: %d, queued jobs: %d (warm-up included)\n", stored, jobs)
	if base.Rate() > 0 {
		fmt.Printf("ratio intake/baseline (events/s): %.2f; p99 %s vs %s\n", intake.Rate()/base.Rate(),
			intake.Percentile(99).Round(time.Microsecond), base.Percentile(99).Round(time.Microsecond))
	}
	return nil
}

// verifyOnly is the baseline: the same signature check, then an answer.
func verifyOnly(w http.ResponseWriter, r *http.Request) {
	payload, err := io.ReadAll(http.MaxBytesReader(w, r.Body, billing.MaxWebhookBytes))
	if err == nil {
		_, err = webhook.ConstructEventWithOptions(payload, r.Header.Get("Stripe-Signature"), secret,
			webhook.ConstructEventOptions{Tolerance: billing.SignatureTolerance, IgnoreAPIVersionMismatch: true})
	}
	if err != nil {
		http.Error(w, `{"error":"bad signature"}`, http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"received":true}`))
}

func eventBody(n int64) []byte {
	id := fmt.Sprintf("evt_bench_%d_%d", time.Now().UnixNano(), n)
	b, _ := json.Marshal(map[string]any{
		"id": id, "object": "event", "api_version": stripe.APIVersion, "created": time.Now().Unix(), "livemode": false,
		"type": "checkout.session.completed", "pending_webhooks": 1,
		"data": map[string]any{"object": map[string]any{
			"id": fmt.Sprintf("cs_bench_%d", n), "object": "checkout.session", "amount_total": 4900, "currency": "usd",
			"payment_status": "paid", "status": "complete", "mode": "payment", "payment_intent": fmt.Sprintf("pi_bench_%d", n),
			"client_reference_id": "00000000-0000-4000-8000-000000000000",
		}},
	})
	return b
}

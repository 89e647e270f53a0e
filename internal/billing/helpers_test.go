package billing_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/webhook"
	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/internal/billing"
	"github.com/leadmarket/leadmarket/internal/config"
	"github.com/leadmarket/leadmarket/internal/dbtest"
	"github.com/leadmarket/leadmarket/internal/httpserver"
	"github.com/leadmarket/leadmarket/internal/jobs"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Run(m)) }

const webhookSecret = "whsec_test_secret_for_leadmarket"

// env is one installation of billing: a database, billing's service with its webhook behind the
// real HTTP server on a loopback port, and (on demand) a River runner working its jobs.
type env struct {
	t     *testing.T
	db    *bun.DB
	dbURL string // "" on the test's transaction, which a runner cannot see
	// app is what the application assembles of billing: the tests call its service directly.
	app    billingApp
	url    string
	cfg    config.Config
	logger *slog.Logger
}

// billingApp is billing as the application wires it: the service, and the workers of its jobs.
type billingApp struct {
	Billing *billing.Service
}

// Workers returns the workers a runner needs for billing's jobs.
func (a billingApp) Workers() *river.Workers {
	w := river.NewWorkers()
	river.AddWorker(w, billing.NewEventWorker(a.Billing))
	return w
}

// newEnv is an installation on a database of its own, for tests whose jobs a runner works (it
// needs their commits).
func newEnv(t *testing.T, vars map[string]string) *env {
	t.Helper()
	db := dbtest.FreshDB(t)
	e := newEnvOn(t, db, vars)
	e.dbURL = dbtest.URL(dbtest.NameOf(context.Background(), db))
	return e
}

// newTxEnv is an installation on the test's own transaction (dbtest.TxDB), rolled back when the
// test ends, for tests that run no jobs.
func newTxEnv(t *testing.T, vars map[string]string) *env {
	t.Helper()
	return newEnvOn(t, dbtest.TxDB(t), vars)
}

func newEnvOn(t *testing.T, db *bun.DB, vars map[string]string) *env {
	t.Helper()
	all := map[string]string{"ENV": "test", "JWT_SECRET": "billing-test-secret-0123456789abcdef",
		"STRIPE_WEBHOOK_SECRET": webhookSecret, "ADMIN_REQUIRE_MFA": "true"}
	for k, v := range vars {
		all[k] = v
	}
	cfg, err := config.FromEnv(func(k string) (string, bool) { v, ok := all[k]; return v, ok })
	require.NoError(t, err)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	queue, err := jobs.NewQueue(db.DB)
	require.NoError(t, err)
	svc := billing.NewService(db, queue, billing.Options{
		StripeSecretKey: cfg.StripeSecretKey, StripeAPIURL: cfg.StripeAPIURL, WebhookSecrets: cfg.StripeWebhookSecrets,
		Logger: logger,
	})
	proxies, err := httpserver.ParseTrustedProxies(cfg.TrustedProxies)
	require.NoError(t, err)
	// The HTTP server gives the webhook what it gives it in production: the client's address
	// (behind TRUSTED_PROXIES) and a request id.
	srv := httptest.NewServer(httpserver.New(httpserver.Options{
		Logger: logger, StripeWebhook: svc.WebhookHandler(), TrustedProxies: proxies,
	}).Handler())
	t.Cleanup(srv.Close)
	return &env{t: t, db: db, app: billingApp{Billing: svc}, url: srv.URL, cfg: cfg, logger: logger}
}

// startRunner works the environment's jobs until the test ends.
func (e *env) startRunner() *jobs.Runner {
	e.t.Helper()
	require.NotEmpty(e.t, e.dbURL, "a runner needs committed jobs: use newEnv, not newTxEnv")
	r, err := jobs.NewRunner(context.Background(), e.dbURL, e.app.Workers(), jobs.RunnerOptions{
		Concurrency: 4, FetchPollInterval: 100 * time.Millisecond, Logger: e.logger,
	})
	require.NoError(e.t, err)
	require.NoError(e.t, r.Start(context.Background()))
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = r.Stop(ctx)
	})
	return r
}

// order inserts a pending credit order for a package of credits at amount cents, linked to a
// checkout session, and returns its id and the session id.
func (e *env) order(workspaceID string, credits, amount int64) (orderID, sessionID string) {
	e.t.Helper()
	ctx := context.Background()
	var pkg, userID string
	require.NoError(e.t, e.db.NewRaw(`INSERT INTO credit_packages (name, credits, price_cents, currency) VALUES ('p', ?, ?, 'usd') RETURNING id`,
		credits, amount).Scan(ctx, &pkg))
	require.NoError(e.t, e.db.NewRaw(`SELECT user_id FROM workspace_members WHERE workspace_id = ? LIMIT 1`, workspaceID).Scan(ctx, &userID))
	sessionID = "cs_test_" + uuid.NewString()[:12]
	require.NoError(e.t, e.db.NewRaw(`INSERT INTO credit_orders (workspace_id, package_id, user_id, credits, amount_cents, currency, checkout_session_id)
		VALUES (?, ?, ?, ?, ?, 'usd', ?) RETURNING id`, workspaceID, pkg, userID, credits, amount, sessionID).Scan(ctx, &orderID))
	return orderID, sessionID
}

var eventSeq atomic.Int64

// event returns a Stripe event body of type typ with object as data.object, as Stripe documents it.
func event(typ string, object map[string]any) (id string, body []byte) {
	id = fmt.Sprintf("evt_test_%d_%s", eventSeq.Add(1), uuid.NewString()[:8])
	body, _ = json.Marshal(map[string]any{
		"id": id, "object": "event", "api_version": stripe.APIVersion, "created": time.Now().Unix(),
		"livemode": false, "pending_webhooks": 1, "type": typ,
		"request": map[string]any{"id": nil, "idempotency_key": nil},
		"data":    map[string]any{"object": object},
	})
	return id, body
}

func checkoutSession(sessionID, orderID, workspaceID, paymentIntent string, amount int64, paymentStatus string) map[string]any {
	return map[string]any{
		"id": sessionID, "object": "checkout.session", "mode": "payment", "status": "complete",
		"amount_subtotal": amount, "amount_total": amount, "currency": "usd", "client_reference_id": orderID,
		"metadata":       map[string]string{"order_id": orderID, "workspace_id": workspaceID},
		"payment_intent": paymentIntent, "payment_status": paymentStatus, "livemode": false,
	}
}

func charge(chargeID, paymentIntent string, amount, refunded int64) map[string]any {
	return map[string]any{
		"id": chargeID, "object": "charge", "amount": amount, "amount_captured": amount, "amount_refunded": refunded,
		"currency": "usd", "payment_intent": paymentIntent, "paid": true, "refunded": refunded == amount,
		"status": "succeeded", "livemode": false,
	}
}

// deliver posts body to the webhook signed with secret at ts and returns the status.
func (e *env) deliver(body []byte, secret string, ts time.Time) int {
	e.t.Helper()
	signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret, Timestamp: ts})
	return e.post(body, signed.Header)
}

func (e *env) post(body []byte, signature string) int {
	e.t.Helper()
	return e.postFrom(body, signature, "")
}

// postFrom posts as a trusted proxy forwarding for client (none when empty).
func (e *env) postFrom(body []byte, signature, client string) int {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.url+"/webhooks/stripe", bytes.NewReader(body))
	require.NoError(e.t, err)
	req.Header.Set("Content-Type", "application/json")
	if signature != "" {
		req.Header.Set("Stripe-Signature", signature)
	}
	if client != "" {
		req.Header.Set("X-Forwarded-For", client)
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(e.t, err)
	_, _ = io.Copy(io.Discard, res.Body)
	_ = res.Body.Close()
	return res.StatusCode
}

func scalar[T any](t *testing.T, db bun.IDB, query string, args ...any) T {
	t.Helper()
	var v T
	require.NoError(t, db.NewRaw(query, args...).Scan(context.Background(), &v))
	return v
}

// waitStatus waits until the event has status.
func (e *env) waitStatus(eventID, status string) {
	e.t.Helper()
	require.Eventually(e.t, func() bool {
		var s string
		_ = e.db.NewRaw("SELECT status FROM stripe_events WHERE id = ?", eventID).Scan(context.Background(), &s)
		return s == status
	}, 15*time.Second, 20*time.Millisecond, "event %s never became %s", eventID, status)
}

func (e *env) balance(workspaceID string) int64 {
	e.t.Helper()
	b := scalar[int64](e.t, e.db, "SELECT credits FROM credit_balances WHERE workspace_id = ?", workspaceID)
	sum := scalar[int64](e.t, e.db, "SELECT coalesce(sum(amount), 0) FROM credit_ledger WHERE workspace_id = ?", workspaceID)
	require.Equal(e.t, sum, b, "balance must equal the sum of the ledger")
	return b
}

// retryNow brings a failed job's next attempt forward to now, as if its retry delay had passed.
// It first waits for River to record the failure (the job leaves the running state).
func (e *env) retryNow(r *jobs.Runner, jobID int64) {
	e.t.Helper()
	require.Eventually(e.t, func() bool {
		j, err := r.Client().JobGet(context.Background(), jobID)
		return err == nil && (j.State == rivertype.JobStateRetryable || j.State == rivertype.JobStateDiscarded)
	}, 10*time.Second, 10*time.Millisecond)
	_, err := r.Client().JobRetry(context.Background(), jobID)
	require.NoError(e.t, err)
}

package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/webhook"
	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/internal/app"
	"github.com/leadmarket/leadmarket/internal/auth"
	"github.com/leadmarket/leadmarket/internal/config"
	"github.com/leadmarket/leadmarket/internal/dbtest"
)

// scrape is one /metrics answer, parsed.
type scrape map[string]*dto.MetricFamily

func scrapeMetrics(t *testing.T, url string) scrape {
	t.Helper()
	res, err := http.Get(url + "/metrics")
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(res.Body)
	require.NoError(t, err)
	return fams
}

// value is the value of the series of name whose labels include labels (a counter's or gauge's
// value, a histogram's count); found is false when there is no such series.
func (s scrape) value(name string, labels map[string]string) (v float64, found bool) {
	f := s[name]
	if f == nil {
		return 0, false
	}
series:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, want := range labels {
			if have[k] != want {
				continue series
			}
		}
		switch {
		case m.Counter != nil:
			v += m.GetCounter().GetValue()
		case m.Gauge != nil:
			v += m.GetGauge().GetValue()
		case m.Histogram != nil:
			v += float64(m.GetHistogram().GetSampleCount())
		}
		found = true
	}
	return v, found
}

func (s scrape) require(t *testing.T, want float64, name string, labels map[string]string) {
	t.Helper()
	v, found := s.value(name, labels)
	require.True(t, found, "no series %s%v", name, labels)
	require.Equal(t, want, v, "%s%v", name, labels)
}

// metricsAPI is the app built with Build (its services at hand) served on a loopback port.
type metricsAPI struct {
	*apiServer
	app *app.App
}

func newMetricsAPI(t *testing.T, db *bun.DB, env map[string]string) *metricsAPI {
	t.Helper()
	vars := map[string]string{"ENV": "test", "JWT_SECRET": testSecret}
	for k, v := range env {
		vars[k] = v
	}
	cfg, err := config.FromEnv(func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
	require.NoError(t, err)
	a, err := app.Build(cfg, db, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	srv := httptest.NewServer(a.Server.Handler())
	t.Cleanup(srv.Close)
	return &metricsAPI{apiServer: &apiServer{t: t, db: db, url: srv.URL, tokens: auth.NewTokens(cfg.JWTSecret)}, app: a}
}

const metricsWebhookSecret = "whsec_metrics_test"

// postWebhook posts body to the Stripe webhook, signed with secret unless it is empty.
func postWebhook(t *testing.T, url string, body []byte, secret string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+"/webhooks/stripe", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	sig := "t=1,v1=00"
	if secret != "" {
		sig = webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret, Timestamp: time.Now()}).Header
	}
	req.Header.Set("Stripe-Signature", sig)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, res.Body)
	_ = res.Body.Close()
	return res.StatusCode
}

// A browse, a purchase, a Stripe payment and refusals (a rate limit, a guard, a bad signature, a
// workspace that is not the caller's) are each counted in /metrics with their labels.
func TestMetricsCountWhatTheServiceDid(t *testing.T) {
	t.Parallel()
	db := dbtest.TxDB(t)
	api := newMetricsAPI(t, db, map[string]string{
		"STRIPE_WEBHOOK_SECRET": metricsWebhookSecret, "RATE_LIMIT_PURCHASE": "1",
		"METRICS_OPERATION_NAMES": "BrowseLeads,BuyLeads",
	})
	ctx := context.Background()
	ws, buyer := dbtest.CreateWorkspace(t, db, dbtest.WorkspaceOpts{Credits: 100})
	otherWS, _ := dbtest.CreateWorkspace(t, db, dbtest.WorkspaceOpts{})
	partnerID := dbtest.CreatePartner(t, db, dbtest.PartnerOpts{})
	leadID := dbtest.CreateLead(t, db, dbtest.LeadOpts{PartnerID: partnerID, PriceCredits: 7})
	tok := api.token(buyer, false)

	// A browse.
	res := api.do(tok, `query BrowseLeads { marketplaceLeads(first: 5) { edges { node { id } } } }`, nil)
	require.Empty(t, res.Errors)
	// A purchase of 7 credits.
	buy := `mutation BuyLeads($in: PurchaseLeadsInput!) { purchaseLeads(input: $in) { balance } }`
	res = api.do(tok, buy, map[string]any{"in": map[string]any{"workspaceId": ws, "leadIds": []string{leadID}, "idempotencyKey": "m1"}})
	require.Empty(t, res.Errors)
	// The purchase tier allows one per minute: the next is refused before it runs.
	res = api.do(tok, buy, map[string]any{"in": map[string]any{"workspaceId": ws, "leadIds": []string{leadID}, "idempotencyKey": "m2"}})
	require.Equal(t, "RATE_LIMITED", res.code())
	// A browse for a workspace that is not the caller's executes and fails FORBIDDEN.
	res = api.do(tok, fmt.Sprintf(`query BrowseLeads { marketplaceLeads(first: 5, workspaceId: %q) { edges { node { id } } } }`, otherWS), nil)
	require.Equal(t, "FORBIDDEN", res.code())
	// An operation deeper than DEPTH_LIMIT is refused by the shape guard.
	deep := "query Deep { " + strings.Repeat("marketplaceLeads { edges { node { partner { ", 3) + "id" + strings.Repeat(" } } } }", 3) + " }"
	res = api.do(tok, deep, nil)
	require.Equal(t, "DEPTH_LIMIT_EXCEEDED", res.code())

	// A Stripe payment for an order of 40 credits, and a delivery with a bad signature.
	var pkg, orderID string
	require.NoError(t, db.NewRaw(`INSERT INTO credit_packages (name, credits, price_cents, currency) VALUES ('m', 40, 1900, 'usd') RETURNING id`).Scan(ctx, &pkg))
	session := "cs_test_" + uuid.NewString()[:12]
	require.NoError(t, db.NewRaw(`INSERT INTO credit_orders (workspace_id, package_id, user_id, credits, amount_cents, currency, checkout_session_id)
		VALUES (?, ?, ?, 40, 1900, 'usd', ?) RETURNING id`, ws, pkg, buyer.ID, session).Scan(ctx, &orderID))
	eventID := "evt_metrics_" + uuid.NewString()[:8]
	body, err := json.Marshal(map[string]any{
		"id": eventID, "object": "event", "api_version": stripe.APIVersion, "created": time.Now().Unix(), "livemode": false,
		"type": "checkout.session.completed",
		"data": map[string]any{"object": map[string]any{
			"id": session, "object": "checkout.session", "mode": "payment", "status": "complete", "amount_total": 1900,
			"currency": "usd", "client_reference_id": orderID, "metadata": map[string]string{"order_id": orderID},
			"payment_status": "paid",
		}},
	})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, postWebhook(t, api.url, body, metricsWebhookSecret))
	require.Equal(t, http.StatusBadRequest, postWebhook(t, api.url, body, ""))
	// The job River would run: one attempt, which grants the credits.
	require.NoError(t, api.app.Billing.ProcessEvent(ctx, eventID, 1, 6, time.Now()))

	m := scrapeMetrics(t, api.url)
	gql := map[string]string{"handler": "graphql", "method": "post", "code": "200"}
	m.require(t, 4, "http_requests_total", gql) // browse, purchase, FORBIDDEN browse, deep (200 under application/json)
	m.require(t, 1, "http_requests_total", map[string]string{"handler": "graphql", "method": "post", "code": "429"})
	m.require(t, 5, "http_request_duration_seconds", map[string]string{"handler": "graphql"})
	m.require(t, 1, "http_requests_total", map[string]string{"handler": "webhook_stripe", "method": "post", "code": "200"})
	m.require(t, 1, "http_requests_total", map[string]string{"handler": "webhook_stripe", "method": "post", "code": "400"})
	m.require(t, 0, "http_requests_in_flight", map[string]string{"handler": "graphql"})

	m.require(t, 1, "graphql_operations_total", map[string]string{"type": "query", "name": "BrowseLeads", "outcome": "ok"})
	m.require(t, 1, "graphql_operations_total", map[string]string{"type": "query", "name": "BrowseLeads", "outcome": "error"})
	m.require(t, 1, "graphql_operations_total", map[string]string{"type": "mutation", "name": "BuyLeads", "outcome": "ok"})
	m.require(t, 1, "graphql_operations_total", map[string]string{"type": "mutation", "name": "BuyLeads", "outcome": "refused"})
	// Deep is refused before it is parsed: no type, no name.
	m.require(t, 1, "graphql_operations_total", map[string]string{"type": "unknown", "name": "other", "outcome": "refused"})
	m.require(t, 2, "graphql_operation_duration_seconds", map[string]string{"type": "query", "name": "BrowseLeads"})
	m.require(t, 1, "graphql_errors_total", map[string]string{"code": "RATE_LIMITED"})
	m.require(t, 1, "graphql_errors_total", map[string]string{"code": "FORBIDDEN"})
	m.require(t, 1, "graphql_errors_total", map[string]string{"code": "DEPTH_LIMIT_EXCEEDED"})
	m.require(t, 1, "graphql_guard_rejections_total", map[string]string{"rule": "depth"})
	m.require(t, 1, "rate_limit_refusals_total", map[string]string{"tier": "purchase"})

	m.require(t, 7, "credits_spent_total", nil)
	m.require(t, 40, "credits_purchased_total", nil)
	m.require(t, 1, "webhook_events_total", map[string]string{"type": "checkout.session.completed", "status": "received"})
	m.require(t, 1, "webhook_events_total", map[string]string{"type": "checkout.session.completed", "status": "processed"})
	m.require(t, 1, "webhook_events_total", map[string]string{"type": "unknown", "status": "bad_signature"})
	m.require(t, 1, "webhook_event_processing_duration_seconds", map[string]string{"type": "checkout.session.completed"})

	// The job queue as the database has it (the event's job waits: no runner on a test's
	// transaction), and the pool.
	var available int
	require.NoError(t, db.NewRaw(`SELECT count(*) FROM river_job WHERE state = 'available' AND queue = 'default'`).Scan(ctx, &available))
	require.Positive(t, available)
	m.require(t, float64(available), "river_jobs_available", map[string]string{"queue": "default"})
	m.require(t, 0, "river_jobs_available", map[string]string{"queue": "verify"})
	m.require(t, 0, "river_queue_oldest_available_job_age_seconds", map[string]string{"queue": "verify"})
	age, found := m.value("river_queue_oldest_available_job_age_seconds", map[string]string{"queue": "default"})
	require.True(t, found)
	require.GreaterOrEqual(t, age, 0.0)
	maxOpen, found := m.value("db_pool_max_open_connections", nil)
	require.True(t, found)
	require.Equal(t, float64(db.DB.Stats().MaxOpenConnections), maxOpen)
	for _, name := range []string{"db_pool_open_connections", "db_pool_in_use_connections", "db_pool_idle_connections",
		"db_pool_wait_count_total", "db_pool_wait_duration_seconds_total", "go_goroutines", "process_cpu_seconds_total"} {
		_, found := m.value(name, nil)
		require.True(t, found, name)
	}
	for name := range m {
		require.False(t, strings.HasPrefix(name, "leadmarket_"), "%s: the contract's names have no prefix", name)
	}
}

// A client sending 10,000 distinct operation names adds no label: each is "other", and the
// series of graphql_operations_total stay within the bound.
func TestMetricsOperationNamesAreBounded(t *testing.T) {
	t.Parallel()
	api := newMetricsAPI(t, dbtest.TxDB(t), map[string]string{"METRICS_OPERATION_NAMES": "Known", "RATE_LIMITS_ENABLED": "false"})
	h := api.app.Server.Handler() // in process: 10,000 requests without the network's cost
	send := func(name string) {
		req := httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader(`{"query":"query `+name+` { __typename }"}`))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	}
	for i := range 10_000 {
		send(fmt.Sprintf("Q%d_%s", i, uuid.NewString()[:4]))
	}
	send("Known")

	m := scrapeMetrics(t, api.url)
	m.require(t, 10_000, "graphql_operations_total", map[string]string{"type": "query", "name": "other", "outcome": "ok"})
	m.require(t, 1, "graphql_operations_total", map[string]string{"type": "query", "name": "Known", "outcome": "ok"})
	require.Len(t, m["graphql_operations_total"].GetMetric(), 2, "only other and the allow-listed name")
	require.Len(t, m["graphql_operation_duration_seconds"].GetMetric(), 2)
}

// With METRICS_ADDR, /metrics is served there only; without it, on the main address outside
// production and nowhere in production. METRICS_ENABLED=false serves none.
func TestMetricsAddr(t *testing.T) {
	t.Parallel()
	status := func(h http.Handler, path string) int {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code
	}
	build := func(env map[string]string) *app.App {
		vars := map[string]string{"JWT_SECRET": testSecret + testSecret, "STRIPE_SECRET_KEY": "sk_test_x", "STRIPE_WEBHOOK_SECRET": "whsec_x"}
		for k, v := range env {
			vars[k] = v
		}
		cfg, err := config.FromEnv(func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
		require.NoError(t, err)
		a, err := app.Build(cfg, dbtest.TxDB(t), slog.New(slog.NewTextHandler(io.Discard, nil)))
		require.NoError(t, err)
		return a
	}

	dev := build(map[string]string{"ENV": "development"})
	require.Equal(t, http.StatusOK, status(dev.Server.Handler(), "/metrics"))
	require.Nil(t, dev.Server.MetricsHandler())

	prod := build(map[string]string{"ENV": "production", "CORS_ORIGINS": "https://app.example.com"})
	require.Equal(t, http.StatusNotFound, status(prod.Server.Handler(), "/metrics"), "not served in production without METRICS_ADDR")
	require.Nil(t, prod.Server.MetricsHandler())

	for _, env := range []string{"development", "production"} {
		a := build(map[string]string{"ENV": env, "METRICS_ADDR": "127.0.0.1:0", "CORS_ORIGINS": "https://app.example.com"})
		require.Equal(t, http.StatusNotFound, status(a.Server.Handler(), "/metrics"), "%s: not on the main address", env)
		mh := a.Server.MetricsHandler()
		require.NotNil(t, mh)
		require.Equal(t, http.StatusOK, status(mh, "/metrics"), env)
		require.Equal(t, http.StatusNotFound, status(mh, "/graphql"), "%s: the metrics address serves /metrics alone", env)
	}

	// RunMetrics serves on a listener of its own and stops with its context.
	a := build(map[string]string{"ENV": "production", "METRICS_ADDR": "127.0.0.1:0", "CORS_ORIGINS": "https://app.example.com"})
	srv := httptest.NewUnstartedServer(nil)
	ln := srv.Listener
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Server.RunMetrics(ctx, ln) }()
	res, err := http.Get("http://" + ln.Addr().String() + "/metrics")
	require.NoError(t, err)
	b, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Contains(t, string(b), "db_pool_max_open_connections")
	cancel()
	require.NoError(t, <-done)

	off := build(map[string]string{"ENV": "development", "METRICS_ENABLED": "false"})
	require.Nil(t, off.Metrics)
	require.Equal(t, http.StatusNotFound, status(off.Server.Handler(), "/metrics"))
	require.Equal(t, http.StatusOK, status(off.Server.Handler(), "/healthz"))
}

// A subscription works through the instrumented handler (its writer still hijacks) and is
// counted while it is open, with its events; its socket is an HTTP request in flight until it
// closes, then a 101 of handler graphql.
func TestMetricsCountSubscriptions(t *testing.T) {
	t.Parallel()
	db := dbtest.FreshDB(t)
	inst := newLiveInstance(t, db, nil)
	admin := dbtest.CreateUser(t, db, dbtest.UserOpts{IsPlatformAdmin: true})
	ws, _ := dbtest.CreateWorkspace(t, db, dbtest.WorkspaceOpts{})

	sock := openWS(t, inst.api, inst.api.token(admin, true))
	sock.subscribe("a", `subscription { auditLogAdded { action } }`)
	field := map[string]string{"field": "auditLogAdded"}
	require.Eventually(t, func() bool {
		v, _ := scrapeMetrics(t, inst.api.url).value("graphql_subscriptions_active", field)
		return v == 1
	}, 10*time.Second, 20*time.Millisecond)
	record(t, db, ws, "test.metrics", true)
	msg := sock.next()
	require.Equal(t, "next", msg.Type)
	require.Contains(t, string(msg.Payload), "test.metrics")

	m := scrapeMetrics(t, inst.api.url)
	m.require(t, 1, "graphql_subscriptions_active", field)
	m.require(t, 1, "graphql_subscription_events_total", field)
	m.require(t, 1, "graphql_operations_total", map[string]string{"type": "subscription", "name": "anonymous", "outcome": "ok"})
	m.require(t, 1, "http_requests_in_flight", map[string]string{"handler": "graphql"})

	require.NoError(t, sock.c.Close(websocket.StatusNormalClosure, ""))
	require.Eventually(t, func() bool {
		m := scrapeMetrics(t, inst.api.url)
		active, _ := m.value("graphql_subscriptions_active", field)
		upgrades, _ := m.value("http_requests_total", map[string]string{"handler": "graphql", "method": "get", "code": "101"})
		inFlight, _ := m.value("http_requests_in_flight", map[string]string{"handler": "graphql"})
		return active == 0 && upgrades == 1 && inFlight == 0
	}, 10*time.Second, 20*time.Millisecond)
}

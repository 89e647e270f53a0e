package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/bench/internal/benchdb"
	"github.com/leadmarket/leadmarket/internal/app"
	"github.com/leadmarket/leadmarket/internal/config"
	"github.com/leadmarket/leadmarket/internal/db"
)

// benchSecret signs the benchmark's tokens; the server it starts uses nothing else.
const benchSecret = "leadmarket-browse-benchmark-secret-0123456789"

// rateLimitOff is the per-minute rate limit of every tier on the benchmark's server.
const rateLimitOff = "1000000000"

// wantPurchases is how many of the browsed leads the benchmark's workspace should own, so that
// the masking join and purchasedByMyWorkspace find something.
const wantPurchases = 6

// benchEnv is everything both sides run against: the seeded database, the in-process server
// with a client and a token, and the pgx pool of the raw side.
type benchEnv struct {
	o        options
	benchURL string
	bdb      *bun.DB
	pool     *pgxpool.Pool
	client   *http.Client
	endpoint string
	// handler is the server's whole handler, for the in-process diagnostic side.
	handler http.Handler
	// executor is gqlgen's handler over a page in memory, for the executor side (executor.go).
	executor  http.Handler
	stopServe context.CancelFunc
	served    chan error
	// token signs in as the workspace owner, userID and workspaceID are theirs.
	token       string
	userID      string
	workspaceID string

	dbReport       string
	purchaseReport string
}

// setUp prepares the database, starts the server and the pool, and makes sure the workspace owns
// some browsed leads. On error it releases what it started.
func setUp(ctx context.Context, o options) (_ *benchEnv, err error) {
	e := &benchEnv{o: o}
	defer func() {
		if err != nil {
			e.close(ctx)
		}
	}()
	prepared, owner, token, err := benchdb.PrepareOwner(ctx, benchdb.Options{ServerURL: o.DatabaseURL, Name: BenchDatabase,
		Leads: o.Leads, Fresh: o.Fresh, Log: os.Stderr, LogPrefix: "browse: "}, benchSecret)
	e.benchURL, e.dbReport = prepared.URL, prepared.Report // the URL also on error, for close to drop
	if err != nil {
		return nil, err
	}
	e.userID, e.workspaceID, e.token = owner.UserID, owner.WorkspaceID, token
	if err := e.startServer(ctx); err != nil {
		return nil, err
	}
	if err := e.startPool(ctx); err != nil {
		return nil, err
	}
	if err := e.ensurePurchases(ctx, owner.Email); err != nil {
		return nil, err
	}
	return e, nil
}

// startServer runs the real server (app.New, httpserver's Run) on a loopback port.
func (e *benchEnv) startServer(ctx context.Context) error {
	cfg, err := config.FromEnv(e.serverEnv(nil))
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if e.bdb, err = db.Open(ctx, cfg.DatabaseURL, cfg.DBMaxConns); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen on loopback: %w", err)
	}
	app.TuneGC() // as `leadmarket serve` does
	srv := app.New(cfg, e.bdb, slog.New(slog.DiscardHandler))
	e.handler = srv.Handler()
	serveCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	e.stopServe, e.served = stop, make(chan error, 1)
	go func() { e.served <- srv.Run(serveCtx, ln) }()
	e.endpoint = "http://" + ln.Addr().String() + "/graphql"
	e.client = &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			Proxy:               nil, // loopback only
			MaxIdleConns:        4 * e.o.Concurrency,
			MaxIdleConnsPerHost: 4 * e.o.Concurrency,
			IdleConnTimeout:     time.Minute,
			DisableCompression:  true,
		},
	}
	return nil
}

// serverEnv is the server's environment: the benchmark's variables, then extra.
func (e *benchEnv) serverEnv(extra map[string]string) func(string) (string, bool) {
	vars := map[string]string{
		"ENV": "development", "JWT_SECRET": benchSecret, "DATABASE_URL": e.benchURL,
		"DB_MAX_CONNS": strconv.Itoa(e.o.Pool), "HTTP_ADDR": "127.0.0.1:0", "LOG_LEVEL": "error",
		// One caller sends thousands of requests a minute: the limits stay on, so a request pays
		// for its check, but so high that none is refused.
		"RATE_LIMIT_BROWSE": rateLimitOff, "RATE_LIMIT_PURCHASE": rateLimitOff, "RATE_LIMIT_STANDARD": rateLimitOff,
	}
	for k, v := range extra {
		vars[k] = v
	}
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

// startPool opens the raw side's pgx pool, as large as the server's.
func (e *benchEnv) startPool(ctx context.Context) error {
	cfg, err := pgxpool.ParseConfig(e.benchURL)
	if err != nil {
		return fmt.Errorf("pgxpool config: %w", err)
	}
	cfg.MaxConns = int32(e.o.Pool)
	if e.pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return fmt.Errorf("pgxpool: %w", err)
	}
	if err := e.pool.Ping(ctx); err != nil {
		return fmt.Errorf("pgxpool: %w", err)
	}
	return nil
}

// ensurePurchases makes the workspace own wantPurchases leads of the first browsed pages, bought
// through the purchaseLeads mutation. It picks leads with maxBuyers above 1, which stay for sale
// (and so in the browsed pages) after one purchase.
func (e *benchEnv) ensurePurchases(ctx context.Context, email string) error {
	var owned int
	if err := e.bdb.NewRaw("SELECT count(*) FROM lead_purchases WHERE workspace_id = ?", e.workspaceID).Scan(ctx, &owned); err != nil {
		return fmt.Errorf("count purchases: %w", err)
	}
	if owned >= wantPurchases {
		e.purchaseReport = fmt.Sprintf("buyer: %s (workspace %s), which already owns %d leads", email, e.workspaceID, owned)
		return nil
	}
	const pickQuery = `query Pick($after: String) { marketplaceLeads(first: 50, after: $after, filter: ` + benchFilter + `) {
		edges { node { id maxBuyers priceCredits purchasedByMyWorkspace } } pageInfo { hasNextPage endCursor } } }`
	var picked []string
	var after *string
	for page := 0; page < 3 && len(picked) < wantPurchases-owned; page++ {
		var data struct {
			MarketplaceLeads struct {
				Edges []struct {
					Node struct {
						ID                     string `json:"id"`
						MaxBuyers              int    `json:"maxBuyers"`
						PurchasedByMyWorkspace bool   `json:"purchasedByMyWorkspace"`
					} `json:"node"`
				} `json:"edges"`
				PageInfo pageInfo `json:"pageInfo"`
			} `json:"marketplaceLeads"`
		}
		if _, err := e.graphql(ctx, pickQuery, map[string]any{"after": after}, &data); err != nil {
			return fmt.Errorf("browse to pick leads to buy: %w", err)
		}
		for i, edge := range data.MarketplaceLeads.Edges {
			if i%20 == 7 && edge.Node.MaxBuyers > 1 && !edge.Node.PurchasedByMyWorkspace && len(picked) < wantPurchases-owned {
				picked = append(picked, edge.Node.ID)
			}
		}
		if !data.MarketplaceLeads.PageInfo.HasNextPage {
			break
		}
		after = data.MarketplaceLeads.PageInfo.EndCursor
	}
	if len(picked) == 0 {
		return errors.New("found no lead to buy in the first browsed pages")
	}
	const buy = `mutation Buy($input: PurchaseLeadsInput!) { purchaseLeads(input: $input) { creditsSpent balance } }`
	var bought struct {
		PurchaseLeads struct {
			CreditsSpent int `json:"creditsSpent"`
			Balance      int `json:"balance"`
		} `json:"purchaseLeads"`
	}
	input := map[string]any{"workspaceId": e.workspaceID, "leadIds": picked,
		"idempotencyKey": "bench-browse-" + strconv.FormatInt(time.Now().UnixNano(), 36)}
	if _, err := e.graphql(ctx, buy, map[string]any{"input": input}, &bought); err != nil {
		return fmt.Errorf("buy %d leads: %w", len(picked), err)
	}
	e.purchaseReport = fmt.Sprintf("buyer: %s (workspace %s); bought %d browsed leads through purchaseLeads for %d credits, balance %d",
		email, e.workspaceID, len(picked), bought.PurchaseLeads.CreditsSpent, bought.PurchaseLeads.Balance)
	return nil
}

// close stops the server, closes the pools and, without -keep, drops the benchmark database.
func (e *benchEnv) close(ctx context.Context) {
	if e.stopServe != nil {
		e.stopServe()
		if err := <-e.served; err != nil {
			fmt.Fprintln(os.Stderr, "browse: server:", err)
		}
	}
	if e.client != nil {
		e.client.CloseIdleConnections()
	}
	if e.pool != nil {
		e.pool.Close()
	}
	if e.bdb != nil {
		_ = e.bdb.Close()
	}
	if e.o.keep || e.benchURL == "" {
		return
	}
	if err := benchdb.Drop(context.WithoutCancel(ctx), e.o.DatabaseURL, BenchDatabase); err != nil {
		fmt.Fprintln(os.Stderr, "browse:", err) // "drop lm_bench_browse: …" or "connect to …"
		return
	}
	fmt.Printf("database %s dropped (-keep=false)\n", BenchDatabase)
}

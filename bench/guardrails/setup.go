package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/bench/internal/benchdb"
	"github.com/leadmarket/leadmarket/internal/app"
	"github.com/leadmarket/leadmarket/internal/config"
	"github.com/leadmarket/leadmarket/internal/db"
)

const (
	benchDatabase = "lm_bench_guardrails"
	benchSecret   = "leadmarket-guardrails-benchmark-secret-0123456789"
	pageSize      = 50
	// highLimit is every tier's limit on the limited sides: far above what the run can reach.
	highLimit = 1_000_000_000
)

// Side names.
const (
	sideOff    = "off"
	sideMemory = "memory"
	sideRedis  = "redis"
)

// browseQuery is bench/browse's measured operation.
const browseQuery = `query Browse($after: String) { marketplaceLeads(first: 50, after: $after,
	filter: {countries: ["US", "GB", "DE"], seniorities: [DIRECTOR, VP, C_LEVEL]}) {
	edges { cursor node { id firstName lastName title companyName industry country priceCredits verificationStatus
		emailPreview email purchasedByMyWorkspace partner { id name } } }
	pageInfo { hasNextPage endCursor } } }`

// side is one server under test.
type side struct {
	name    string
	limited bool
	server  *httptest.Server
}

// benchEnv is the seeded database, the three servers and the client.
type benchEnv struct {
	o        options
	bdb      *bun.DB
	sides    []side
	client   *http.Client
	token    string
	dbReport string
}

func setUp(ctx context.Context, o options) (_ *benchEnv, err error) {
	e := &benchEnv{o: o}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	rdbOpts, err := redis.ParseURL(o.redisURL)
	if err != nil {
		return nil, fmt.Errorf("-redis-url: %w", err)
	}
	rdb := redis.NewClient(rdbOpts)
	err = rdb.Ping(ctx).Err()
	_ = rdb.Close()
	if err != nil {
		return nil, fmt.Errorf("redis at %s does not answer (start it, or pass -redis-url): %w", o.redisURL, err)
	}
	prepared, _, token, err := benchdb.PrepareOwner(ctx, benchdb.Options{ServerURL: o.DatabaseURL, Name: benchDatabase,
		Leads: o.Leads, Fresh: o.Fresh, Log: os.Stderr, LogPrefix: "guardrails: "}, benchSecret)
	if err != nil {
		return nil, err
	}
	e.dbReport, e.token = prepared.Report, token
	if e.bdb, err = db.Open(ctx, prepared.URL, o.Pool); err != nil {
		return nil, err
	}
	high := strconv.Itoa(highLimit)
	app.TuneGC() // as `leadmarket serve` does
	for _, s := range []struct {
		name string
		vars map[string]string
	}{
		{sideOff, map[string]string{"RATE_LIMITS_ENABLED": "false"}},
		{sideMemory, map[string]string{"RATE_LIMIT_PURCHASE": high, "RATE_LIMIT_BROWSE": high, "RATE_LIMIT_STANDARD": high}},
		{sideRedis, map[string]string{"RATE_LIMIT_PURCHASE": high, "RATE_LIMIT_BROWSE": high, "RATE_LIMIT_STANDARD": high,
			"REDIS_URL": o.redisURL}},
	} {
		vars := map[string]string{"ENV": "development", "JWT_SECRET": benchSecret, "DB_MAX_CONNS": strconv.Itoa(o.Pool), "LOG_LEVEL": "error"}
		for k, v := range s.vars {
			vars[k] = v
		}
		cfg, err := config.FromEnv(func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
		if err != nil {
			return nil, fmt.Errorf("config of %s: %w", s.name, err)
		}
		a, err := app.Build(cfg, e.bdb, slog.New(slog.DiscardHandler))
		if err != nil {
			return nil, fmt.Errorf("build %s: %w", s.name, err)
		}
		e.sides = append(e.sides, side{name: s.name, limited: s.name != sideOff, server: httptest.NewServer(a.Server.Handler())})
	}
	e.client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		Proxy: nil, MaxIdleConns: 4 * o.Concurrency, MaxIdleConnsPerHost: 4 * o.Concurrency,
		IdleConnTimeout: time.Minute, DisableCompression: true,
	}}
	return e, nil
}

func (e *benchEnv) close() {
	for _, s := range e.sides {
		s.server.Close()
	}
	if e.client != nil {
		e.client.CloseIdleConnections()
	}
	if e.bdb != nil {
		_ = e.bdb.Close()
	}
}

// page is what a worker decodes of a response.
type page struct {
	Data struct {
		MarketplaceLeads struct {
			Edges    []json.RawMessage `json:"edges"`
			PageInfo struct {
				HasNextPage bool    `json:"hasNextPage"`
				EndCursor   *string `json:"endCursor"`
			} `json:"pageInfo"`
		} `json:"marketplaceLeads"`
	} `json:"data"`
	Errors []struct {
		Message string `json:"message"`
	} `json:"errors"`
}

// browse fetches the page after after from side s into p; it fails on any status but 200, any
// GraphQL error, an empty page, or (on a limited side) missing RateLimit headers.
func (e *benchEnv) browse(ctx context.Context, s side, after *string, buf *bytes.Buffer, p *page) error {
	body, err := json.Marshal(map[string]any{"query": browseQuery, "variables": map[string]any{"after": after}})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.server.URL+"/graphql", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+e.token)
	res, err := e.client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	buf.Reset()
	if _, err := buf.ReadFrom(res.Body); err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d: %.200s", res.StatusCode, buf.String())
	}
	if s.limited && res.Header.Get("RateLimit-Remaining") == "" {
		return errors.New("no RateLimit-Remaining header on a limited side")
	}
	*p = page{}
	if err := json.Unmarshal(buf.Bytes(), p); err != nil {
		return err
	}
	if len(p.Errors) > 0 {
		return fmt.Errorf("graphql: %s", p.Errors[0].Message)
	}
	if len(p.Data.MarketplaceLeads.Edges) == 0 {
		return errors.New("empty page")
	}
	return nil
}

// worker returns loadgen's request function for side s: each worker walks -pages pages through
// cursors, then starts again from the first.
func (e *benchEnv) worker(s side) func(ctx context.Context, w int) error {
	type state struct {
		after *string
		page  int
		buf   bytes.Buffer
		p     page
	}
	states := make([]state, e.o.Concurrency)
	return func(ctx context.Context, w int) error {
		st := &states[w]
		if err := e.browse(ctx, s, st.after, &st.buf, &st.p); err != nil {
			st.after, st.page = nil, 0
			if ctx.Err() != nil {
				return nil // the run is stopping
			}
			return err
		}
		pi := st.p.Data.MarketplaceLeads.PageInfo
		if st.page+1 < e.o.Pages && pi.HasNextPage && pi.EndCursor != nil {
			st.after, st.page = pi.EndCursor, st.page+1
		} else {
			st.after, st.page = nil, 0
		}
		return nil
	}
}

// verify fetches a first page from s and checks it is full and, on a limited side, that the
// limiter answered with the configured limit.
func (e *benchEnv) verify(ctx context.Context, s side) error {
	var buf bytes.Buffer
	var p page
	if err := e.browse(ctx, s, nil, &buf, &p); err != nil {
		return err
	}
	if n := len(p.Data.MarketplaceLeads.Edges); n != pageSize {
		return fmt.Errorf("first page has %d leads, want %d", n, pageSize)
	}
	return nil
}

// Package db opens Leadmarket's PostgreSQL through bun over pgx/v5, applies the embedded
// migrations, runs the embedded default server when DATABASE_URL is unset, and counts statements
// per request.
package db

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
)

// Open connects to url with a pool of maxConns connections and checks the connection.
func Open(ctx context.Context, url string, maxConns int) (*bun.DB, error) {
	return OpenWith(ctx, url, Options{MaxConns: maxConns})
}

// Options configure OpenWith.
type Options struct {
	// MaxConns is the pool size. Default 10.
	MaxConns int
	// ApplicationName names the pool's connections in pg_stat_activity unless the URL names them
	// itself. Default ApplicationName.
	ApplicationName string
	// Tracer sees every statement pgx runs on the pool's connections (bun's and QueryPrepared's)
	// with the connection it runs on. Default none.
	Tracer pgx.QueryTracer
}

// OpenWith connects to url as o says and checks the connection. It runs no migrations.
func OpenWith(ctx context.Context, url string, o Options) (*bun.DB, error) {
	if o.MaxConns <= 0 {
		o.MaxConns = 10
	}
	if o.ApplicationName == "" {
		o.ApplicationName = ApplicationName
	}
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = o.ApplicationName
	}
	cfg.Tracer = o.Tracer
	// bun interpolates every argument into the SQL text itself, so each statement is unique text:
	// the simple protocol runs it in one round trip instead of pgx preparing (and caching) a
	// statement that is never reused.
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	sqldb := stdlib.OpenDB(*cfg)
	sqldb.SetMaxOpenConns(o.MaxConns)
	sqldb.SetMaxIdleConns(o.MaxConns)
	sqldb.SetConnMaxIdleTime(5 * time.Minute)
	bdb := bun.NewDB(sqldb, pgdialect.New()).WithQueryHook(StatementCounterHook{})
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := bdb.PingContext(pingCtx); err != nil {
		_ = bdb.Close()
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	return bdb, nil
}

// OpenRead connects to the read database (DATABASE_READ_URL, a replica of the primary) with a
// pool of maxConns connections named ReadApplicationName unless the URL names them; o's other
// fields as OpenWith. No migration runs on it: the primary's reach it by replication.
func OpenRead(ctx context.Context, url string, maxConns int, o Options) (*bun.DB, error) {
	o.MaxConns = maxConns
	if o.ApplicationName == "" {
		o.ApplicationName = ReadApplicationName
	}
	bdb, err := OpenWith(ctx, url, o)
	if err != nil {
		return nil, fmt.Errorf("read database: %w", err)
	}
	return bdb, nil
}

// ApplicationName is the application_name of Leadmarket's connections (unless the URL sets
// another): pg_stat_activity tells them apart, and the embedded server counts them to know
// whether another leadmarket process still uses it.
const ApplicationName = "leadmarket"

// ReadApplicationName is the application_name of the read database's connections (OpenRead).
const ReadApplicationName = "leadmarket-read"

// SetApplicationName gives cfg's connections ApplicationName unless the URL named one.
func SetApplicationName(cfg *pgx.ConnConfig) {
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = ApplicationName
	}
}

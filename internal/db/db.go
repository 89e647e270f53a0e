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
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	SetApplicationName(cfg)
	// bun interpolates every argument into the SQL text itself, so each statement is unique text:
	// the simple protocol runs it in one round trip instead of pgx preparing (and caching) a
	// statement that is never reused.
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	sqldb := stdlib.OpenDB(*cfg)
	sqldb.SetMaxOpenConns(maxConns)
	sqldb.SetMaxIdleConns(maxConns)
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

// ApplicationName is the application_name of Leadmarket's connections (unless the URL sets
// another): pg_stat_activity tells them apart, and the embedded server counts them to know
// whether another leadmarket process still uses it.
const ApplicationName = "leadmarket"

// SetApplicationName gives cfg's connections ApplicationName unless the URL named one.
func SetApplicationName(cfg *pgx.ConnConfig) {
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = ApplicationName
	}
}

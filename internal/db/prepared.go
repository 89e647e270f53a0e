package db

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/uptrace/bun"
)

// QueryPrepared runs query, written with PostgreSQL's $1, $2, … placeholders and args, as a
// prepared statement that pgx caches on the pooled connection, and hands the rows to scan.
//
// It is for the hot reads whose SQL has a fixed shape (the marketplace's browse): bun interpolates
// every argument into the SQL text, so PostgreSQL parses and plans each of its statements again,
// which for the browse query costs more than running it. A prepared statement is parsed once per
// connection and, after a few executions, runs on PostgreSQL's cached generic plan.
//
// The statement counts in the request's statement counter like bun's. scan must not keep the
// rows; QueryPrepared closes them. It does not join a transaction: use bun for reads in one.
func QueryPrepared(ctx context.Context, bdb *bun.DB, query string, args []any, scan func(pgx.Rows) error) error {
	if n := counterFrom(ctx); n != nil {
		n.Add(1)
	}
	conn, err := bdb.DB.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(driverConn any) error {
		// pgx's *stdlib.Conn, or a connection wrapping one the same way (dbtest.TxDB's).
		c, ok := driverConn.(interface{ Conn() *pgx.Conn })
		if !ok {
			return fmt.Errorf("db: connection is %T, not pgx's", driverConn)
		}
		// The mode in front of the arguments overrides the pool's simple protocol for this query.
		rows, err := c.Conn().Query(ctx, query, append([]any{pgx.QueryExecModeCacheStatement}, args...)...)
		if err != nil {
			return err
		}
		defer rows.Close()
		if err := scan(rows); err != nil {
			return err
		}
		rows.Close()
		return rows.Err()
	})
}

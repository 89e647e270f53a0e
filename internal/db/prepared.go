package db

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync/atomic"

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
	return withPgxConn(ctx, bdb, func(pc *pgx.Conn) error {
		// The mode in front of the arguments overrides the pool's simple protocol for this query.
		rows, err := pc.Query(ctx, query, append([]any{pgx.QueryExecModeCacheStatement}, args...)...)
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

// PlannedTx is a read-only transaction of ReadPlanned on one connection.
type PlannedTx struct {
	conn    *pgx.Conn
	counter *atomic.Int64
}

// ReadPlanned runs read in a read-only transaction on one pooled connection in which every
// statement is planned for the values it runs with (plan_cache_mode = force_custom_plan: its
// statements are still prepared once per connection, but a cached generic plan, which cannot
// know how rare a filter's values are, is never used), never compiled by JIT (jit = off: the
// reads it serves must answer in milliseconds, which compiling a plan alone can exceed) and
// never handed to parallel workers (max_parallel_workers_per_gather = 0: starting them costs
// more than such a read, and on a busy server they only queue for the same cores). It is
// for reads whose best plan depends on their values: the browse's candidate sets, counts and
// facets. The transaction is rolled back when read returns: it writes nothing.
func ReadPlanned(ctx context.Context, bdb *bun.DB, read func(PlannedTx) error) error {
	return readPlanned(ctx, bdb, "BEGIN READ ONLY", read)
}

// ReadSnapshot is ReadPlanned in one snapshot (REPEATABLE READ): every statement of read sees the
// same committed rows, for a read whose later statements depend on what its first ones found
// (the facets list the industries they found in the counts that follow). On a connection
// already in a transaction, that transaction's snapshot rules.
func ReadSnapshot(ctx context.Context, bdb *bun.DB, read func(PlannedTx) error) error {
	return readPlanned(ctx, bdb, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", read)
}

func readPlanned(ctx context.Context, bdb *bun.DB, begin string, read func(PlannedTx) error) error {
	return withPgxConn(ctx, bdb, func(pc *pgx.Conn) error {
		// On a connection already in a transaction (a test's, dbtest.TxDB), a savepoint takes
		// the transaction's place: rolling back to it undoes the settings and nothing else.
		end := "ROLLBACK"
		if pc.PgConn().TxStatus() != 'I' {
			begin, end = "SAVEPOINT read_planned", "ROLLBACK TO SAVEPOINT read_planned; RELEASE SAVEPOINT read_planned"
		}
		// One round trip: the simple protocol runs the statements as one message.
		if _, err := pc.Exec(ctx, begin+"; SET LOCAL plan_cache_mode = force_custom_plan; SET LOCAL jit = off; "+
			"SET LOCAL max_parallel_workers_per_gather = 0", pgx.QueryExecModeSimpleProtocol); err != nil {
			return err
		}
		t := PlannedTx{conn: pc, counter: counterFrom(ctx)}
		err := read(t)
		if _, endErr := pc.Exec(context.WithoutCancel(ctx), end, pgx.QueryExecModeSimpleProtocol); endErr != nil && err == nil {
			err = endErr
		}
		return err
	})
}

// Query runs query ($1, $2, … placeholders) with args as a statement prepared on the connection
// and hands the rows to scan, as QueryPrepared does.
func (t PlannedTx) Query(ctx context.Context, query string, args []any, scan func(pgx.Rows) error) error {
	if t.counter != nil {
		t.counter.Add(1)
	}
	rows, err := t.conn.Query(ctx, query, append([]any{pgx.QueryExecModeCacheStatement}, args...)...)
	if err != nil {
		return err
	}
	defer rows.Close()
	if err := scan(rows); err != nil {
		return err
	}
	rows.Close()
	return rows.Err()
}

// Default, as a value of SetAll, is a setting's value outside the transaction (SET LOCAL ... TO
// DEFAULT).
const Default = "DEFAULT"

// SetAll sets each planner or run-time setting of settings to its value (Default: its value
// outside the transaction) until the transaction ends (SET LOCAL), for the statements that
// follow, in one round trip. Names and values are the code's own, never a caller's input: one
// that is not a plain word or number is refused.
func (t PlannedTx) SetAll(ctx context.Context, settings map[string]string) error {
	if len(settings) == 0 {
		return nil
	}
	stmts := make([]string, 0, len(settings))
	for _, name := range slices.Sorted(maps.Keys(settings)) {
		value := settings[name]
		if !plainSetting(name, "abcdefghijklmnopqrstuvwxyz_") || !plainSetting(value, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._") {
			return fmt.Errorf("set %q to %q: not a plain setting", name, value)
		}
		stmts = append(stmts, "SET LOCAL "+name+" TO "+value)
	}
	// The simple protocol runs the statements as one message.
	_, err := t.conn.Exec(ctx, strings.Join(stmts, "; "), pgx.QueryExecModeSimpleProtocol)
	return err
}

// plainSetting reports whether s is made of the characters of allowed alone, and not empty.
func plainSetting(s, allowed string) bool {
	return s != "" && strings.Trim(s, allowed) == ""
}

// withPgxConn runs fn on the pgx connection under one of bdb's pooled connections: pgx's
// *stdlib.Conn, or a connection wrapping one the same way (dbtest.TxDB's).
func withPgxConn(ctx context.Context, bdb *bun.DB, fn func(*pgx.Conn) error) error {
	conn, err := bdb.DB.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(driverConn any) error {
		c, ok := driverConn.(interface{ Conn() *pgx.Conn })
		if !ok {
			return fmt.Errorf("db: connection is %T, not pgx's", driverConn)
		}
		return fn(c.Conn())
	})
}

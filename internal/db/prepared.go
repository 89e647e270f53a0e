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
	// set are the settings SetAll has given a value of its own in the transaction.
	set map[string]bool
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
		t := PlannedTx{conn: pc, counter: counterFrom(ctx), set: map[string]bool{}}
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

// Default, as a value of SetAll, is a setting's value outside the transaction.
const Default = "DEFAULT"

// SetAll sets each planner or run-time setting of settings to its value (Default: its value
// outside the transaction) until the transaction ends (SET LOCAL), for the statements that
// follow: the values in one prepared statement of set_config calls, and a setting given a value
// of its own earlier in the transaction back to Default by SET LOCAL ... TO DEFAULT (whose
// names are the code's own, never a caller's input: one that is not a plain name is refused).
func (t PlannedTx) SetAll(ctx context.Context, settings map[string]string) error {
	calls := make([]string, 0, len(settings))
	args := make([]any, 0, 2*len(settings))
	var defaults []string
	for _, name := range slices.Sorted(maps.Keys(settings)) { // one statement text per set of names
		if settings[name] == Default {
			if t.set[name] {
				if strings.Trim(name, "abcdefghijklmnopqrstuvwxyz_") != "" {
					return fmt.Errorf("set %q to its default: not a setting's name", name)
				}
				defaults = append(defaults, "SET LOCAL "+name+" TO DEFAULT")
			}
			continue
		}
		calls = append(calls, fmt.Sprintf("set_config($%d, $%d, true)", len(args)+1, len(args)+2))
		args = append(args, name, settings[name])
	}
	if len(calls) > 0 {
		if _, err := t.conn.Exec(ctx, "SELECT "+strings.Join(calls, ", "), args...); err != nil {
			return err
		}
	}
	if len(defaults) > 0 {
		if _, err := t.conn.Exec(ctx, strings.Join(defaults, "; "), pgx.QueryExecModeSimpleProtocol); err != nil {
			return err
		}
	}
	for name, v := range settings {
		t.set[name] = v != Default
	}
	return nil
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

package dbtest

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/leadmarket/leadmarket/internal/db"
)

// TxDB returns a handle on the package database whose every statement runs in one transaction
// of the test's own, rolled back when the test ends; every call in one test returns the same
// handle (a subtest has its own). It is TestTx for code that takes a *bun.DB
// (the app, a service, an HTTP handler): what the test and the code under it write is seen by
// them and by no other test, and nothing is left behind, so tests that need no commits share the
// package database instead of cloning one each.
//
// Inside, the handle has a single connection, which database/sql hands to one user at a time:
// concurrent requests and gqlgen's concurrent resolvers queue for it instead of interleaving on
// it. A transaction begun on the handle (bun's RunInTx) is a savepoint, and a statement outside
// one runs in a savepoint of its own, so a failing statement undoes only itself, as it would in
// autocommit, instead of aborting the test's transaction. db.QueryPrepared reaches the same
// connection (and so the same transaction) through the pgx connection the handle exposes.
//
// What a transaction cannot give, DB or FreshDB gives: commits that another connection sees
// (River workers, LISTEN/NOTIFY, a second pool), real concurrency (a row lock never makes anyone
// wait), and PostgreSQL's clock (now() is the test transaction's start for the whole test). Code
// that holds the handle's connection (an open transaction, unread rows) while it asks the handle
// for another statement waits for itself forever; outside tests it would have run that statement
// on a second connection, outside its transaction, which is a bug of its own.
func TxDB(t testing.TB) *bun.DB {
	t.Helper()
	txDBs.Lock()
	defer txDBs.Unlock()
	if h, ok := txDBs.of[t]; ok {
		return h
	}
	h := openTxDB(t)
	txDBs.of[t] = h
	t.Cleanup(func() {
		txDBs.Lock()
		delete(txDBs.of, t)
		txDBs.Unlock()
	})
	return h
}

// txDBs are the handles of the running tests.
var txDBs = struct {
	sync.Mutex
	of map[testing.TB]*bun.DB
}{of: map[testing.TB]*bun.DB{}}

func openTxDB(t testing.TB) *bun.DB {
	t.Helper()
	DB(t) // creates the package database
	cfg, err := pgx.ParseConfig(URL(pkgName))
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	db.SetApplicationName(cfg)
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol // as db.Open: bun interpolates arguments
	ctx := context.Background()
	raw, err := stdlib.GetConnector(*cfg).Connect(ctx)
	if err != nil {
		t.Fatalf("dbtest: connect: %v", err)
	}
	sc := raw.(*stdlib.Conn)
	if _, err := sc.Conn().Exec(ctx, "BEGIN"); err != nil {
		_ = sc.Close()
		t.Fatalf("dbtest: begin: %v", err)
	}
	c := &txConn{sc: sc}
	sqldb := sql.OpenDB(txConnector{c})
	// One connection, never closed while the test runs: it is the test's transaction.
	sqldb.SetMaxOpenConns(1)
	sqldb.SetMaxIdleConns(1)
	sqldb.SetConnMaxLifetime(0)
	sqldb.SetConnMaxIdleTime(0)
	bdb := bun.NewDB(sqldb, pgdialect.New()).WithQueryHook(db.StatementCounterHook{})
	t.Cleanup(func() {
		_ = sqldb.Close()
		// Closing the connection ends its transaction without a commit: everything is undone.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = sc.Conn().Close(ctx)
	})
	return bdb
}

// txConnector hands database/sql the test's one connection, again if database/sql closed it.
type txConnector struct{ c *txConn }

func (tc txConnector) Connect(context.Context) (driver.Conn, error) {
	if tc.c.sc.Conn().IsClosed() {
		return nil, errors.New("dbtest: the test transaction's connection is closed")
	}
	return tc.c, nil
}

func (tc txConnector) Driver() driver.Driver { return stdlib.GetDefaultDriver() }

// txConn is pgx's database/sql connection inside the test's transaction: transactions become
// savepoints, and statements outside one get a savepoint of their own.
type txConn struct {
	sc *stdlib.Conn
	// depth counts the savepoints begun through BeginTx and still open.
	depth int
}

var (
	_ driver.ConnBeginTx        = (*txConn)(nil)
	_ driver.ExecerContext      = (*txConn)(nil)
	_ driver.QueryerContext     = (*txConn)(nil)
	_ driver.ConnPrepareContext = (*txConn)(nil)
	_ driver.NamedValueChecker  = (*txConn)(nil)
	_ driver.SessionResetter    = (*txConn)(nil)
	_ driver.Validator          = (*txConn)(nil)
	_ driver.Pinger             = (*txConn)(nil)
)

// Conn returns the pgx connection, as *stdlib.Conn does, for db.QueryPrepared. What runs on it
// directly runs in the test's transaction without a savepoint of its own.
func (c *txConn) Conn() *pgx.Conn { return c.sc.Conn() }

// exec runs a statement of the harness's own. Statements run with their caller's values but not
// its cancellation: pgx closes a connection whose query is cancelled, and this one is the whole
// test's transaction. (database/sql still refuses to start a statement for a cancelled context.)
func (c *txConn) exec(ctx context.Context, sql string) error {
	_, err := c.sc.Conn().Exec(context.WithoutCancel(ctx), sql)
	return err
}

// Close keeps the connection: it is the test's transaction, closed by TxDB's cleanup.
func (c *txConn) Close() error { return nil }

func (c *txConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

// BeginTx opens a savepoint. Isolation levels and read-only mode cannot be set on one; they are
// refused rather than ignored.
func (c *txConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if sql.IsolationLevel(opts.Isolation) != sql.LevelDefault || opts.ReadOnly {
		return nil, fmt.Errorf("dbtest: TxDB cannot begin a %v read-only=%v transaction inside the test's", sql.IsolationLevel(opts.Isolation), opts.ReadOnly)
	}
	name := fmt.Sprintf("dbtest_tx_%d", c.depth+1)
	if err := c.exec(ctx, "SAVEPOINT "+name); err != nil {
		return nil, err
	}
	c.depth++
	return &savepointTx{c: c, name: name}, nil
}

// savepointTx is a transaction begun on the handle.
type savepointTx struct {
	c    *txConn
	name string
}

// Commit releases the savepoint. Like COMMIT of a transaction that a failed statement aborted,
// releasing fails then, and the savepoint's work is undone.
func (tx *savepointTx) Commit() error {
	tx.c.depth--
	err := tx.c.exec(context.Background(), "RELEASE SAVEPOINT "+tx.name)
	if err != nil {
		_ = tx.c.exec(context.Background(), "ROLLBACK TO SAVEPOINT "+tx.name+"; RELEASE SAVEPOINT "+tx.name)
	}
	return err
}

func (tx *savepointTx) Rollback() error {
	tx.c.depth--
	return tx.c.exec(context.Background(), "ROLLBACK TO SAVEPOINT "+tx.name+"; RELEASE SAVEPOINT "+tx.name)
}

// statementSavepoint is the savepoint a statement outside a transaction runs in.
const statementSavepoint = "dbtest_statement"

// beginStatement opens the statement's savepoint when no transaction is open; end closes it,
// undoing the statement if it failed.
func (c *txConn) beginStatement(ctx context.Context) (end func(failed bool) error, err error) {
	if c.depth > 0 {
		return func(bool) error { return nil }, nil
	}
	if err := c.exec(ctx, "SAVEPOINT "+statementSavepoint); err != nil {
		return nil, err
	}
	return func(failed bool) error {
		if failed {
			return c.exec(ctx, "ROLLBACK TO SAVEPOINT "+statementSavepoint+"; RELEASE SAVEPOINT "+statementSavepoint)
		}
		return c.exec(ctx, "RELEASE SAVEPOINT "+statementSavepoint)
	}, nil
}

func (c *txConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	end, err := c.beginStatement(ctx)
	if err != nil {
		return nil, err
	}
	res, err := c.sc.ExecContext(context.WithoutCancel(ctx), query, args)
	if eerr := end(err != nil); err == nil {
		err = eerr
	}
	return res, err
}

func (c *txConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	end, err := c.beginStatement(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := c.sc.QueryContext(context.WithoutCancel(ctx), query, args)
	if err != nil {
		_ = end(true)
		return nil, err
	}
	return &statementRows{Rows: rows, end: end}, nil
}

// statementRows closes its statement's savepoint once database/sql is done with the rows (it
// hands the connection to nobody else before).
type statementRows struct {
	driver.Rows
	end    func(failed bool) error
	failed bool
}

func (r *statementRows) Next(dest []driver.Value) error {
	err := r.Rows.Next(dest)
	if err != nil && !errors.Is(err, io.EOF) {
		r.failed = true
	}
	return err
}

func (r *statementRows) Close() error {
	err := r.Rows.Close()
	if eerr := r.end(r.failed || err != nil); err == nil {
		err = eerr
	}
	return err
}

func (c *txConn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

// PrepareContext prepares nothing on the server: the statement runs through ExecContext and
// QueryContext, in a savepoint like any other.
func (c *txConn) PrepareContext(_ context.Context, query string) (driver.Stmt, error) {
	return &txStmt{c: c, query: query}, nil
}

type txStmt struct {
	c     *txConn
	query string
}

func (s *txStmt) Close() error  { return nil }
func (s *txStmt) NumInput() int { return -1 }

func (s *txStmt) Exec(args []driver.Value) (driver.Result, error) {
	return s.c.ExecContext(context.Background(), s.query, named(args))
}

func (s *txStmt) Query(args []driver.Value) (driver.Rows, error) {
	return s.c.QueryContext(context.Background(), s.query, named(args))
}

func (s *txStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	return s.c.ExecContext(ctx, s.query, args)
}

func (s *txStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	return s.c.QueryContext(ctx, s.query, args)
}

func named(args []driver.Value) []driver.NamedValue {
	out := make([]driver.NamedValue, len(args))
	for i, a := range args {
		out[i] = driver.NamedValue{Ordinal: i + 1, Value: a}
	}
	return out
}

// CheckNamedValue lets every argument through to pgx, as *stdlib.Conn does.
func (c *txConn) CheckNamedValue(nv *driver.NamedValue) error { return c.sc.CheckNamedValue(nv) }

// ResetSession keeps the connection between uses. (*stdlib.Conn's would discard it for being in
// a transaction, which this one always is.)
func (c *txConn) ResetSession(context.Context) error {
	if c.sc.Conn().IsClosed() {
		return driver.ErrBadConn
	}
	return nil
}

func (c *txConn) IsValid() bool { return !c.sc.Conn().IsClosed() }

func (c *txConn) Ping(ctx context.Context) error { return c.sc.Ping(ctx) }

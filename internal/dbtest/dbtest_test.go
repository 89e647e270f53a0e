package dbtest_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"
	"golang.org/x/sync/errgroup"

	"github.com/leadmarket/leadmarket/internal/db"
	"github.com/leadmarket/leadmarket/internal/dbtest"
	"github.com/leadmarket/leadmarket/migrations"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Run(m)) }

// The package database has every table the migrations create (read from the migrations
// themselves), River's and bun's tables and this month's audit partition, and neither bun's
// migrator nor River's has anything left to apply.
func TestDBIsMigrated(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	bdb := dbtest.DB(t)
	createTable := regexp.MustCompile(`(?i)\bCREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?([a-z_][a-z0-9_]*)`)
	ups, err := fs.Glob(migrations.FS, "*.up.sql")
	require.NoError(t, err)
	var want []string
	for _, name := range ups {
		b, err := fs.ReadFile(migrations.FS, name)
		require.NoError(t, err)
		for _, m := range createTable.FindAllStringSubmatch(string(b), -1) {
			want = append(want, strings.ToLower(m[1]))
		}
	}
	require.Subset(t, want, []string{"users", "workspaces", "leads", "lead_purchases", "credit_ledger", "audit_logs",
		"security_events", "credit_orders", "stripe_events", "rate_limit_violations"}, "the migrations were read")
	var month string
	require.NoError(t, bdb.NewRaw(`SELECT 'audit_logs_' || to_char(now() AT TIME ZONE 'UTC', 'YYYY_MM')`).Scan(ctx, &month))
	want = append(want, month,
		"river_job", "river_leader", "river_queue", "river_migration", "river_notification", // River's (rivermigrate)
		"bun_migrations", "bun_migration_locks")
	var have []string
	require.NoError(t, bdb.NewRaw("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()").Scan(ctx, &have))
	for _, table := range want {
		require.Contains(t, have, table)
	}

	pending, err := db.PendingMigrations(ctx, bdb)
	require.NoError(t, err)
	require.Empty(t, pending)
	rm, err := rivermigrate.New(riverdatabasesql.New(bdb.DB), nil)
	require.NoError(t, err)
	res, err := rm.Validate(ctx, nil)
	require.NoError(t, err)
	require.True(t, res.OK, "River's migrations: %v", res.Messages)
}

func TestTestTxRollsBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	name := "dbtest rollback " + t.Name()
	t.Run("insert", func(t *testing.T) {
		tx := dbtest.TestTx(t)
		_, err := tx.ExecContext(ctx, "INSERT INTO partners (name) VALUES (?)", name)
		require.NoError(t, err)
		var n int
		require.NoError(t, tx.NewRaw("SELECT count(*) FROM partners WHERE name = ?", name).Scan(ctx, &n))
		require.Equal(t, 1, n, "visible inside the transaction")
	})
	var n int
	require.NoError(t, dbtest.DB(t).NewRaw("SELECT count(*) FROM partners WHERE name = ?", name).Scan(ctx, &n))
	require.Zero(t, n, "rolled back when the test ended")
}

func TestFreshDBIsItsOwn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fresh := dbtest.FreshDB(t)
	require.NotEqual(t, dbtest.NameOf(ctx, dbtest.DB(t)), dbtest.NameOf(ctx, fresh))
	_, err := fresh.ExecContext(ctx, "INSERT INTO partners (name) VALUES ('committed in a fresh db')")
	require.NoError(t, err)
	var n int
	require.NoError(t, fresh.NewRaw("SELECT count(*) FROM partners").Scan(ctx, &n))
	require.Equal(t, 1, n, "migrated and empty before this test's insert")
}

// What a TxDB handle writes, through statements, transactions and QueryPrepared, is visible
// through it and to nobody else, and gone when the test ends. A failing statement undoes only
// itself; a failing transaction only its own work.
func TestTxDBRollsBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	name := "dbtest txdb " + t.Name()
	count := func(t *testing.T, idb bun.IDB) int {
		var n int
		require.NoError(t, idb.NewRaw("SELECT count(*) FROM partners WHERE name LIKE ?", name+"%").Scan(ctx, &n))
		return n
	}
	t.Run("write", func(t *testing.T) {
		h := dbtest.TxDB(t)
		_, err := h.ExecContext(ctx, "INSERT INTO partners (name) VALUES (?)", name+" statement")
		require.NoError(t, err)
		require.NoError(t, h.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			_, err := tx.ExecContext(ctx, "INSERT INTO partners (name) VALUES (?)", name+" committed")
			return err
		}))
		failed := errors.New("undo")
		require.ErrorIs(t, h.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			if _, err := tx.ExecContext(ctx, "INSERT INTO partners (name) VALUES (?)", name+" rolled back"); err != nil {
				return err
			}
			return failed
		}), failed)
		_, err = h.ExecContext(ctx, "INSERT INTO no_such_table VALUES (1)")
		require.Error(t, err)
		require.Equal(t, 2, count(t, h), "the failed statement did not abort the test's transaction")

		var seen int
		require.NoError(t, db.QueryPrepared(ctx, h, "SELECT count(*) FROM partners WHERE name LIKE $1", []any{name + "%"},
			func(rows pgx.Rows) error {
				for rows.Next() {
					if err := rows.Scan(&seen); err != nil {
						return err
					}
				}
				return nil
			}))
		require.Equal(t, 2, seen, "prepared statements run in the same transaction")
		require.Zero(t, count(t, dbtest.DB(t)), "nothing is committed")
	})
	require.Zero(t, count(t, dbtest.DB(t)), "rolled back when the test ended")
}

// Concurrent users of one handle (as gqlgen's resolvers and parallel requests are) take turns on
// its connection: their transactions neither interleave nor fail.
func TestTxDBServesConcurrentUsers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := dbtest.TxDB(t)
	name := "dbtest concurrent " + t.Name()
	var g errgroup.Group
	for i := range 8 {
		g.Go(func() error {
			return h.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
				var id string
				if err := tx.NewRaw("INSERT INTO partners (name) VALUES (?) RETURNING id", fmt.Sprint(name, i)).Scan(ctx, &id); err != nil {
					return err
				}
				var n int
				return tx.NewRaw("SELECT count(*) FROM partners WHERE id = ?", id).Scan(ctx, &n)
			})
		})
		g.Go(func() error {
			var names []string
			return h.NewRaw("SELECT name FROM partners WHERE name LIKE ?", name+"%").Scan(ctx, &names)
		})
	}
	require.NoError(t, g.Wait())
	var n int
	require.NoError(t, h.NewRaw("SELECT count(*) FROM partners WHERE name LIKE ?", name+"%").Scan(ctx, &n))
	require.Equal(t, 8, n)
}

// A test's calls share one handle, so servers built in one test see each other's writes; a
// subtest has its own.
func TestTxDBIsTheTestsOwn(t *testing.T) {
	t.Parallel()
	h := dbtest.TxDB(t)
	require.Same(t, h, dbtest.TxDB(t))
	t.Run("subtest", func(t *testing.T) {
		require.NotSame(t, h, dbtest.TxDB(t))
	})
}

package dbtest_test

import (
	"context"
	"io/fs"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/stretchr/testify/require"

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

package dbtest_test

import (
	"context"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/leadmarket/leadmarket/internal/dbtest"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Run(m)) }

func TestDBIsMigrated(t *testing.T) {
	t.Parallel()
	var n int
	require.NoError(t, dbtest.DB(t).NewRaw("SELECT count(*) FROM leads").Scan(context.Background(), &n))
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

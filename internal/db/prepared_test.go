package db_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/internal/db"
)

func TestPlannedTx_SetAllSetsAndRestoresDefaults(t *testing.T) {
	t.Parallel()
	primary, _ := openPair(t)
	ctx := context.Background()
	setting := func(tx db.PlannedTx, name string) string {
		var v string
		require.NoError(t, tx.Query(ctx, "SELECT current_setting($1)", []any{name}, func(r pgx.Rows) error {
			for r.Next() {
				if err := r.Scan(&v); err != nil {
					return err
				}
			}
			return nil
		}))
		return v
	}
	var outside string
	require.NoError(t, primary.NewRaw("SELECT current_setting('random_page_cost')").Scan(ctx, &outside))
	require.NotEqual(t, "1.1", outside, "the server's own value")
	require.NoError(t, db.ReadPlanned(ctx, primary, func(tx db.PlannedTx) error {
		require.NoError(t, tx.SetAll(ctx, map[string]string{"random_page_cost": "1.1", "enable_seqscan": "off"}))
		require.Equal(t, "1.1", setting(tx, "random_page_cost"))
		require.Equal(t, "off", setting(tx, "enable_seqscan"))
		// Default: the value outside the transaction, whatever an earlier statement set.
		require.NoError(t, tx.SetAll(ctx, map[string]string{"random_page_cost": db.Default, "enable_seqscan": "on"}))
		require.Equal(t, outside, setting(tx, "random_page_cost"))
		require.Equal(t, "on", setting(tx, "enable_seqscan"))
		require.NoError(t, tx.SetAll(ctx, map[string]string{"random_page_cost": "1.1"}))
		// A value is an argument, never SQL; a name set back to its default is written in SQL and
		// must be a plain name.
		require.Error(t, tx.SetAll(ctx, map[string]string{"random_page_cost": "1; SELECT 1"}))
		require.Error(t, tx.SetAll(ctx, map[string]string{"random_page_cost; SELECT 1": "1"}))
		return nil
	}))
	// SET LOCAL: nothing outlives the transaction.
	var after string
	require.NoError(t, primary.NewRaw("SELECT current_setting('random_page_cost')").Scan(ctx, &after))
	require.Equal(t, outside, after)
}

func TestReadSnapshot_OneSnapshot(t *testing.T) {
	t.Parallel()
	primary, _ := openPair(t)
	ctx := context.Background()
	isolation := func(read func(context.Context, *bun.DB, func(db.PlannedTx) error) error) string {
		var v string
		require.NoError(t, read(ctx, primary, func(tx db.PlannedTx) error {
			return tx.Query(ctx, "SELECT current_setting('transaction_isolation') || ' ' || current_setting('transaction_read_only')", nil,
				func(r pgx.Rows) error {
					for r.Next() {
						if err := r.Scan(&v); err != nil {
							return err
						}
					}
					return nil
				})
		}))
		return v
	}
	require.Equal(t, "repeatable read on", isolation(db.ReadSnapshot))
	require.Equal(t, "read committed on", isolation(db.ReadPlanned))
}

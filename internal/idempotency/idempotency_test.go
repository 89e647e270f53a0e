package idempotency_test

import (
	"context"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/leadmarket/leadmarket/internal/dbtest"
	"github.com/leadmarket/leadmarket/internal/idempotency"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Run(m)) }

// Begin bounds its own wait for the key with a lock timeout, then gives the transaction back the
// connection's own setting, not PostgreSQL's built-in "no timeout".
func TestBegin_RestoresTheConnectionsLockTimeout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	bdb := dbtest.DB(t)
	conn, err := bdb.Conn(ctx)
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.ExecContext(ctx, "SET lock_timeout = '7s'")
	require.NoError(t, err)
	defer func() { _, _ = conn.ExecContext(ctx, "RESET lock_timeout") }()
	tx, err := conn.BeginTx(ctx, nil)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback() }()
	u := dbtest.CreateUser(t, tx, dbtest.UserOpts{})

	prev, err := idempotency.Begin(ctx, tx, idempotency.Key{UserID: u.ID, Key: "k-1", Operation: "test", Request: map[string]int{"n": 1}})
	require.NoError(t, err)
	require.Nil(t, prev)
	var setting string
	require.NoError(t, tx.QueryRowContext(ctx, "SHOW lock_timeout").Scan(&setting))
	require.Equal(t, "7s", setting)
}

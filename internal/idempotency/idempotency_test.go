package idempotency_test

import (
	"context"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/leadmarket/leadmarket/internal/apperr"
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

// A claim committed without a response (a two-step operation whose process died between its
// steps) answers IDEMPOTENCY_IN_PROGRESS while it may still be running, and is taken over once
// it is StaleAfter old; a completed key still replays however old (within Retention).
func TestBegin_StaleClaimIsTakenOver(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tx := dbtest.TestTx(t)
	u := dbtest.CreateUser(t, tx, dbtest.UserOpts{})
	key := func(k string) idempotency.Key {
		return idempotency.Key{UserID: u.ID, Key: k, Operation: "purchaseCredits", Request: map[string]int{"n": 1}}
	}
	// claim makes a key as Begin leaves it, then ages it and sets its response (nil: none yet).
	claim := func(k, age string, response *string) {
		_, err := idempotency.Begin(ctx, tx, key(k))
		require.NoError(t, err)
		_, err = tx.ExecContext(ctx, "UPDATE idempotency_keys SET created_at = now() - ?::interval, response = ? WHERE user_id = ? AND key = ?",
			age, response, u.ID, k)
		require.NoError(t, err)
	}
	done := `{"ok":true}`

	claim("running", "1 minute", nil)
	_, err := idempotency.Begin(ctx, tx, key("running"))
	require.True(t, apperr.Is(err, apperr.IdempotencyInProgress), "%v", err)

	claim("abandoned", "6 minutes", nil)
	stored, err := idempotency.Begin(ctx, tx, key("abandoned"))
	require.NoError(t, err)
	require.Nil(t, stored, "the abandoned claim is the caller's to redo")

	claim("done", "6 hours", &done)
	stored, err = idempotency.Begin(ctx, tx, key("done"))
	require.NoError(t, err)
	require.JSONEq(t, `{"ok":true}`, string(stored))

	// Release frees a pending claim at once, and never a completed one.
	claim("failed", "1 second", nil)
	require.NoError(t, idempotency.Release(ctx, tx, key("failed")))
	stored, err = idempotency.Begin(ctx, tx, key("failed"))
	require.NoError(t, err)
	require.Nil(t, stored)
	require.NoError(t, idempotency.Release(ctx, tx, key("done")))
	stored, err = idempotency.Begin(ctx, tx, key("done"))
	require.NoError(t, err)
	require.JSONEq(t, `{"ok":true}`, string(stored))
}

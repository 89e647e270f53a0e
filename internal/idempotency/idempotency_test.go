package idempotency_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

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

// Do claims, replays, runs and stores in the transaction it is given: a repeat replays the first
// result without running again, other input is refused, and a failed run leaves the key free.
func TestDo(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	bdb := dbtest.DB(t)
	u := dbtest.CreateUser(t, bdb, dbtest.UserOpts{})
	runs := 0
	do := func(key string, n int, fail error) (int, bool, error) {
		var res int
		var replayed bool
		err := bdb.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			var err error
			res, replayed, err = idempotency.Do(ctx, tx, idempotency.Key{UserID: u.ID, Key: key, Operation: "test", Request: n},
				func() (int, error) {
					runs++
					return n * 10, fail
				})
			return err
		})
		return res, replayed, err
	}

	res, replayed, err := do("k-do", 1, nil)
	require.NoError(t, err)
	require.Equal(t, 10, res)
	require.False(t, replayed)
	res, replayed, err = do("k-do", 1, nil)
	require.NoError(t, err)
	require.Equal(t, 10, res)
	require.True(t, replayed)
	require.Equal(t, 1, runs, "a replay does not run the work again")
	_, _, err = do("k-do", 2, nil)
	require.Equal(t, apperr.IdempotencyKeyReused, apperr.CodeOf(err))

	refused := apperr.New(apperr.InsufficientCredits, "no")
	_, _, err = do("k-fail", 3, refused)
	require.ErrorIs(t, err, refused)
	res, replayed, err = do("k-fail", 3, nil)
	require.NoError(t, err, "a refused request leaves its key free")
	require.Equal(t, 30, res)
	require.False(t, replayed)

	// An empty key runs unguarded, every time; a required one refuses it.
	runs = 0
	for range 2 {
		_, replayed, err = do("", 4, nil)
		require.NoError(t, err)
		require.False(t, replayed)
	}
	require.Equal(t, 2, runs)
	err = bdb.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		_, _, err := idempotency.Do(ctx, tx, idempotency.Key{UserID: u.ID, Operation: "test", Required: true},
			func() (int, error) { return 0, nil })
		return err
	})
	require.Equal(t, apperr.InvalidInput, apperr.CodeOf(err))
}

// DoTwoStep commits the claim with the first step, stores the result with the last, and releases
// the key when the step outside the transaction or the last transaction fails, so a retry runs
// the work again instead of waiting for IDEMPOTENCY_IN_PROGRESS.
func TestDoTwoStep(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	bdb := dbtest.DB(t)
	u := dbtest.CreateUser(t, bdb, dbtest.UserOpts{})
	prepared, finished := 0, 0
	run := func(key string, finishErr, recordErr error) (string, bool, error) {
		return idempotency.DoTwoStep(ctx, bdb, idempotency.Key{UserID: u.ID, Key: key, Operation: "two-step", Request: "in"},
			func(ctx context.Context, tx bun.Tx) (int, error) { prepared++; return prepared, nil },
			func(ctx context.Context, p int) (string, error) {
				finished++
				return fmt.Sprintf("result-%d", p), finishErr
			},
			func(ctx context.Context, tx bun.Tx, res string) error { return recordErr })
	}
	claimed := func(key string) bool {
		var n int
		require.NoError(t, bdb.NewRaw("SELECT count(*) FROM idempotency_keys WHERE user_id = ? AND key = ?", u.ID, key).Scan(ctx, &n))
		return n == 1
	}

	res, replayed, err := run("k-two", nil, nil)
	require.NoError(t, err)
	require.Equal(t, "result-1", res)
	require.False(t, replayed)
	res, replayed, err = run("k-two", nil, nil)
	require.NoError(t, err)
	require.Equal(t, "result-1", res)
	require.True(t, replayed)
	require.Equal(t, 1, finished, "a replay does not run the steps again")

	for name, errs := range map[string][2]error{
		"outside step fails": {errors.New("stripe down"), nil},
		"last step fails":    {nil, errors.New("database gone")},
	} {
		key := "k-" + name
		_, _, err := run(key, errs[0], errs[1])
		require.Error(t, err, name)
		require.False(t, claimed(key), "%s: the key is released", name)
		res, replayed, err := run(key, nil, nil)
		require.NoError(t, err, name)
		require.False(t, replayed, name)
		require.NotEmpty(t, res)
	}
}

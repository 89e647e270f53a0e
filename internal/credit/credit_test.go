package credit_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/internal/apperr"
	"github.com/leadmarket/leadmarket/internal/auth"
	"github.com/leadmarket/leadmarket/internal/credit"
	"github.com/leadmarket/leadmarket/internal/dbtest"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Run(m)) }

// ledgerSum is the sum of a workspace's ledger, which must always equal its balance.
func ledgerSum(t *testing.T, db bun.IDB, workspaceID string) int64 {
	t.Helper()
	var sum int64
	require.NoError(t, db.NewRaw("SELECT coalesce(sum(amount), 0) FROM credit_ledger WHERE workspace_id = ?", workspaceID).
		Scan(context.Background(), &sum))
	return sum
}

func TestApply(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tx := dbtest.TestTx(t)
	ws, _ := dbtest.CreateWorkspace(t, tx, dbtest.WorkspaceOpts{Credits: 100})
	entry := func(amount int64, ref string) credit.Entry {
		return credit.Entry{WorkspaceID: ws, Kind: credit.KindAdjustment, Amount: amount, Reference: ref}
	}
	balance := func() int64 {
		b, err := credit.Balance(ctx, tx, ws)
		require.NoError(t, err)
		require.Equal(t, b, ledgerSum(t, tx, ws), "balance and ledger disagree")
		return b
	}

	after, err := credit.Apply(ctx, tx, entry(-30, "r-1"))
	require.NoError(t, err)
	require.EqualValues(t, 70, after)
	require.EqualValues(t, 70, balance())

	t.Run("a reference applies once", func(t *testing.T) {
		_, err := credit.Apply(ctx, tx, entry(-30, "r-1"))
		require.ErrorIs(t, err, credit.ErrAlreadyApplied)
		// Even when the repeat could not have been covered, it is reported as applied.
		_, err = credit.Apply(ctx, tx, entry(-1000, "r-1"))
		require.ErrorIs(t, err, credit.ErrAlreadyApplied)
		require.EqualValues(t, 70, balance())
	})
	t.Run("a removal beyond the balance is refused with the figures", func(t *testing.T) {
		_, err := credit.Apply(ctx, tx, entry(-71, "r-2"))
		var ae *apperr.Error
		require.True(t, errors.As(err, &ae), "%v", err)
		require.Equal(t, apperr.InsufficientCredits, ae.Code)
		require.EqualValues(t, 71, ae.Details["required"])
		require.EqualValues(t, 70, ae.Details["balance"])
		require.EqualValues(t, 70, balance())
		// The refused reference is still free.
		after, err := credit.Apply(ctx, tx, entry(-70, "r-2"))
		require.NoError(t, err)
		require.EqualValues(t, 0, after)
	})
	t.Run("a clawback may go below zero", func(t *testing.T) {
		e := entry(-25, "r-3")
		e.Kind, e.AllowNegative = credit.KindClawback, true
		after, err := credit.Apply(ctx, tx, e)
		require.NoError(t, err)
		require.EqualValues(t, -25, after)
		require.EqualValues(t, -25, balance())
	})
	t.Run("an unknown workspace is NOT_FOUND, a zero movement INVALID_INPUT", func(t *testing.T) {
		_, err := credit.Apply(ctx, tx, credit.Entry{WorkspaceID: "00000000-0000-0000-0000-000000000000",
			Kind: credit.KindAdjustment, Amount: 5, Reference: "r-4"})
		require.True(t, apperr.Is(err, apperr.NotFound), "%v", err)
		_, err = credit.Apply(ctx, tx, entry(0, "r-5"))
		require.True(t, apperr.Is(err, apperr.InvalidInput), "%v", err)
	})
}

// The same reference applied by 10 transactions at once moves the credits once: the others fail
// (on the ledger's unique reference, or as already applied once the first has committed).
func TestApply_ConcurrentSameReference(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := dbtest.DB(t)
	ws, _ := dbtest.CreateWorkspace(t, db, dbtest.WorkspaceOpts{Credits: 10})

	const n = 10
	var wg sync.WaitGroup
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
				_, err := credit.Apply(ctx, tx, credit.Entry{WorkspaceID: ws, Kind: credit.KindPurchase, Amount: 50,
					Reference: "stripe:checkout:cs_same"})
				return err
			})
		})
	}
	close(start)
	wg.Wait()
	applied := 0
	for i, err := range errs {
		if err == nil {
			applied++
		} else {
			require.NotContains(t, fmt.Sprint(err), "panic", "transaction %d", i)
		}
	}
	require.Equal(t, 1, applied, "errors: %v", errs)
	b, err := credit.Balance(ctx, db, ws)
	require.NoError(t, err)
	require.EqualValues(t, 60, b)
	require.EqualValues(t, 60, ledgerSum(t, db, ws))
}

// Concurrent adjustments each record the balance before and after their own movement: new - old
// is the delta on every audit entry, and the entries chain up to the final balance.
func TestAdjust_ConcurrentAuditValues(t *testing.T) {
	t.Parallel()
	db := dbtest.DB(t)
	ws, _ := dbtest.CreateWorkspace(t, db, dbtest.WorkspaceOpts{})
	admin := dbtest.CreateUser(t, db, dbtest.UserOpts{IsPlatformAdmin: true})
	ctx := context.Background()
	adminCaller := &auth.Caller{UserID: admin.ID, IsPlatformAdmin: true, AAL: auth.AAL2}
	svc := credit.NewService(db)

	const n = 10
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, errs[i] = svc.Adjust(ctx, adminCaller, credit.AdjustInput{WorkspaceID: ws, Delta: 10, Reason: "goodwill"})
		})
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	var rows []struct {
		Old int64 `bun:"old"`
		New int64 `bun:"new"`
	}
	require.NoError(t, db.NewRaw(`SELECT (old_values->>'credits')::bigint AS old, (new_values->>'credits')::bigint AS new
		FROM audit_logs WHERE workspace_id = ? AND action = 'credits.adjusted' ORDER BY new`, ws).Scan(context.Background(), &rows))
	require.Len(t, rows, n)
	for i, r := range rows {
		require.EqualValues(t, 10*i, r.Old, "entry %d", i)
		require.EqualValues(t, 10*(i+1), r.New, "entry %d", i)
	}
}

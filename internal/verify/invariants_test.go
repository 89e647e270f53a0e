package verify_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/leadmarket/leadmarket/internal/apperr"
	"github.com/leadmarket/leadmarket/internal/auth"
	"github.com/leadmarket/leadmarket/internal/dbtest"
	"github.com/leadmarket/leadmarket/internal/marketplace"
	"github.com/leadmarket/leadmarket/internal/page"
	"github.com/leadmarket/leadmarket/internal/verify"
)

// Purchases, bounce reports, sweeps and re-verifications all at once, over leads whose addresses
// are half dead: afterwards no purchase is refunded twice, every purchase of a lead found
// INVALID is refunded (a purchase cannot slip in after the verdict unrefunded), none of a valid
// lead is, each refunded sale's commission is reversed once, every balance is the sum of its
// ledger and every partner's earnings the sum of its earnings ledger.
func TestInvariants_ConcurrentReportsSweepsAndPurchases(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	svc := e.service(func(o *verify.Options) { o.BatchSize = 3 })
	e.mv.setFallback(func(email string) answer {
		result := "ok"
		if strings.Contains(email, "dead") {
			result = "invalid"
		}
		return answer{Body: mvBody(result), Delay: time.Duration(1+rand.IntN(4)) * time.Millisecond}
	})
	partners := []string{dbtest.CreatePartner(t, e.db, dbtest.PartnerOpts{}), dbtest.CreatePartner(t, e.db, dbtest.PartnerOpts{CommissionRate: 0.2})}
	var leads []string
	dead := map[string]bool{}
	for i := range 14 {
		id, email := e.pendingLead(partners[i%2], dbtest.LeadOpts{PriceCredits: 3 + i%4, MaxBuyers: 3})
		if i%2 == 0 {
			// The address the providers are asked about decides: make it dead.
			email = fmt.Sprintf("dead-%d-%s", i, email)
			execSQL(t, e.db, "UPDATE leads SET email_normalized = ? WHERE id = ?", email, id)
			dead[id] = true
		}
		leads = append(leads, id)
	}
	buyers := make([]buyer, 6)
	for i := range buyers {
		buyers[i] = e.buyer(80)
	}
	admin := &auth.Caller{UserID: dbtest.CreateUser(t, e.db, dbtest.UserOpts{IsPlatformAdmin: true}).ID, IsPlatformAdmin: true, AAL: auth.AAL2}
	e.runner(svc)

	var wg sync.WaitGroup
	var mu sync.Mutex
	type sale struct {
		b        buyer
		purchase string
	}
	var bought []sale
	unexpected := func(err error) bool {
		switch apperr.CodeOf(err) {
		case apperr.NotFound, apperr.SoldOut, apperr.AlreadyPurchased, apperr.InsufficientCredits, apperr.InvalidInput:
			return false
		}
		return err != nil
	}
	deadline := time.Now().Add(1500 * time.Millisecond)
	for _, b := range buyers {
		wg.Go(func() { // a buyer buys and reports what it bought
			for time.Now().Before(deadline) {
				cart := []string{leads[rand.IntN(len(leads))]}
				res, err := e.marketplace().PurchaseLeads(ctx, b.caller, marketplace.PurchaseInput{WorkspaceID: b.ws, LeadIDs: cart, IdempotencyKey: uuid.NewString()})
				if unexpected(err) {
					t.Errorf("purchase: %v", err)
					return
				}
				if err == nil {
					mu.Lock()
					bought = append(bought, sale{b, res.Purchases[0].ID})
					mu.Unlock()
					if rand.IntN(2) == 0 {
						if _, err := svc.ReportBounce(ctx, b.caller, verify.ReportInput{PurchaseID: res.Purchases[0].ID, IdempotencyKey: uuid.NewString()}); err != nil {
							t.Errorf("report: %v", err)
							return
						}
					}
				}
				time.Sleep(time.Duration(rand.IntN(20)) * time.Millisecond)
			}
		})
	}
	wg.Go(func() { // the sweep, again and again
		for time.Now().Before(deadline) {
			if _, err := svc.Sweep(ctx); err != nil {
				t.Errorf("sweep: %v", err)
				return
			}
			time.Sleep(30 * time.Millisecond)
		}
	})
	wg.Go(func() { // an admin re-verifying
		for time.Now().Before(deadline) {
			if _, err := svc.Reverify(ctx, admin, []string{leads[rand.IntN(len(leads))], leads[rand.IntN(len(leads))]}); err != nil {
				t.Errorf("reverify: %v", err)
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	wg.Go(func() { // a second report of purchases already reported (other keys, other members)
		for time.Now().Before(deadline) {
			mu.Lock()
			var p sale
			if len(bought) > 0 {
				p = bought[rand.IntN(len(bought))]
			}
			mu.Unlock()
			if p.purchase != "" {
				if _, err := svc.ReportBounce(ctx, p.b.caller, verify.ReportInput{PurchaseID: p.purchase, IdempotencyKey: uuid.NewString()}); err != nil {
					t.Errorf("report again: %v", err)
					return
				}
			}
			time.Sleep(25 * time.Millisecond)
		}
	})
	wg.Wait()
	require.False(t, t.Failed())
	// A last sweep, then everything settles: every lead verified, every report resolved, no job left.
	_, err := svc.Sweep(ctx)
	require.NoError(t, err)
	waitFor(t, "everything settles", func() bool {
		return scalar[int](t, e.db, `SELECT (SELECT count(*) FROM leads WHERE verification_status = 'PENDING' OR verification_due_at IS NOT NULL)
			+ (SELECT count(*) FROM bounce_reports WHERE status = 'PENDING')
			+ (SELECT count(*) FROM river_job WHERE queue = 'verify' AND state NOT IN ('completed', 'cancelled', 'discarded'))`) == 0
	})
	require.NotEmpty(t, bought)

	for _, id := range leads {
		want := "VALID"
		if dead[id] {
			want = "INVALID"
		}
		require.Equal(t, want, e.state(id).Status)
	}
	var all []marketplace.PurchaseRecord
	require.NoError(t, e.db.NewRaw(`SELECT id, workspace_id, lead_id, buyer_user_id, credits_spent, created_at FROM lead_purchases`).Scan(ctx, &all))
	require.Len(t, all, len(bought))
	refunded := 0
	for _, p := range all {
		count, amount, accrual := e.reversal(p.ID)
		if dead[p.LeadID] {
			refunded++
			require.Equal(t, 1, e.refunds(p.ID), "purchase %s of a dead lead refunded once", p.ID)
			require.Equal(t, 1, count)
			require.Equal(t, -accrual, amount)
		} else {
			require.Zero(t, e.refunds(p.ID), "purchase %s of a valid lead kept", p.ID)
			require.Zero(t, count)
		}
	}
	for _, b := range buyers {
		balance(t, e.db, b.ws)
	}
	for _, p := range partners {
		var sums struct {
			Balance int64 `bun:"balance"`
			Ledger  int64 `bun:"ledger"`
		}
		require.NoError(t, e.db.NewRaw(`SELECT coalesce(sum(amount_cents), 0) AS ledger,
				coalesce(sum(amount_cents) FILTER (WHERE kind = 'ACCRUAL' AND NOT EXISTS (
					SELECT 1 FROM partner_earnings r WHERE r.reference = 'reversal:' || partner_earnings.lead_purchase_id)), 0) AS balance
			FROM partner_earnings WHERE partner_id = ?`, p).Scan(ctx, &sums))
		require.Equal(t, sums.Balance, sums.Ledger, "partner %s: earnings are the accruals of the sales that stand", p)
	}
	// Every report is settled as its lead's verdict says.
	hundred := 100
	for _, b := range buyers {
		rs, err := svc.Reports(ctx, b.caller, b.ws, page.Args{First: &hundred})
		require.NoError(t, err)
		for _, r := range rs.Items {
			want := verify.ReportDeclined
			if dead[r.LeadID] {
				want = verify.ReportRefunded
			}
			require.Equal(t, want, r.Status, "report %s", r.ID)
		}
	}
	t.Logf("%d purchases, %d refunded; %d provider calls", len(all), refunded, e.mv.totalCalls.Load())
}

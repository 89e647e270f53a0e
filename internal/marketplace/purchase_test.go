package marketplace_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/internal/apperr"
	"github.com/leadmarket/leadmarket/internal/auth"
	"github.com/leadmarket/leadmarket/internal/dbtest"
	"github.com/leadmarket/leadmarket/internal/events"
	"github.com/leadmarket/leadmarket/internal/marketplace"
	"github.com/leadmarket/leadmarket/internal/partner"
)

func newService(db *bun.DB) *marketplace.Service {
	return marketplace.NewService(db, partner.Commission{
		CreditValueCents: 40, Tiers: []partner.BonusTier{{PassRate: 0.90, Points: 2.5}, {PassRate: 0.95, Points: 5}},
	})
}

func caller(u dbtest.User) *auth.Caller { return &auth.Caller{UserID: u.ID, Email: u.Email} }

// scalar runs a one-value query.
func scalar[T any](t *testing.T, db bun.IDB, query string, args ...any) T {
	t.Helper()
	var v T
	require.NoError(t, db.NewRaw(query, args...).Scan(context.Background(), &v))
	return v
}

// requireLedgerMatchesBalance checks the credit invariant: balance = sum of the ledger.
func requireLedgerMatchesBalance(t *testing.T, db bun.IDB, workspaceID string) int64 {
	t.Helper()
	balance := scalar[int64](t, db, "SELECT credits FROM credit_balances WHERE workspace_id = ?", workspaceID)
	sum := scalar[int64](t, db, "SELECT coalesce(sum(amount), 0) FROM credit_ledger WHERE workspace_id = ?", workspaceID)
	require.Equal(t, sum, balance, "balance must equal the sum of the ledger")
	return balance
}

func TestPurchase_FiftyWorkspacesRaceForOneLead(t *testing.T) {
	t.Parallel()
	db := dbtest.DB(t)
	svc := newService(db)
	lead := dbtest.CreateLead(t, db, dbtest.LeadOpts{PartnerID: dbtest.CreatePartner(t, db, dbtest.PartnerOpts{}), MaxBuyers: 3})

	type buyer struct {
		ws    string
		owner dbtest.User
	}
	buyers := make([]buyer, 50)
	for i := range buyers {
		buyers[i].ws, buyers[i].owner = dbtest.CreateWorkspace(t, db, dbtest.WorkspaceOpts{Credits: 100})
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make([]error, len(buyers))
	for i, b := range buyers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, errs[i] = svc.PurchaseLeads(context.Background(), caller(b.owner), marketplace.PurchaseInput{
				WorkspaceID: b.ws, LeadIDs: []string{lead}, IdempotencyKey: fmt.Sprintf("race-%d", i),
			})
		}()
	}
	close(start)
	wg.Wait()

	var ok int
	for _, err := range errs {
		if err == nil {
			ok++
			continue
		}
		require.Equal(t, apperr.SoldOut, apperr.CodeOf(err), "unexpected error: %v", err)
	}
	require.Equal(t, 3, ok, "exactly max_buyers purchases succeed")
	require.Equal(t, 3, scalar[int](t, db, "SELECT buyers_count FROM leads WHERE id = ?", lead))
	require.Equal(t, 3, scalar[int](t, db, "SELECT count(*) FROM lead_purchases WHERE lead_id = ?", lead))
	require.Equal(t, 3, scalar[int](t, db, `SELECT count(*) FROM partner_earnings e JOIN lead_purchases p ON p.id = e.lead_purchase_id
		WHERE p.lead_id = ?`, lead), "one commission per sale")
	for _, b := range buyers {
		requireLedgerMatchesBalance(t, db, b.ws)
	}
}

func TestPurchase_TwentyCartsRaceForOneBalance(t *testing.T) {
	t.Parallel()
	db := dbtest.DB(t)
	svc := newService(db)
	partnerID := dbtest.CreatePartner(t, db, dbtest.PartnerOpts{})
	ws, owner := dbtest.CreateWorkspace(t, db, dbtest.WorkspaceOpts{Credits: 100})

	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make([]error, 20)
	for i := range errs {
		// Each cart: two distinct leads of 5 credits, 10 credits in all.
		ids := []string{
			dbtest.CreateLead(t, db, dbtest.LeadOpts{PartnerID: partnerID, PriceCredits: 5}),
			dbtest.CreateLead(t, db, dbtest.LeadOpts{PartnerID: partnerID, PriceCredits: 5}),
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, errs[i] = svc.PurchaseLeads(context.Background(), caller(owner), marketplace.PurchaseInput{
				WorkspaceID: ws, LeadIDs: ids, IdempotencyKey: fmt.Sprintf("cart-%d", i),
			})
		}()
	}
	close(start)
	wg.Wait()

	var ok int
	for _, err := range errs {
		if err == nil {
			ok++
			continue
		}
		require.Equal(t, apperr.InsufficientCredits, apperr.CodeOf(err), "unexpected error: %v", err)
	}
	require.Equal(t, 10, ok)
	require.Equal(t, int64(0), requireLedgerMatchesBalance(t, db, ws))
	require.Equal(t, 20, scalar[int](t, db, "SELECT count(*) FROM lead_purchases WHERE workspace_id = ?", ws))
	require.Equal(t, 10, scalar[int](t, db, "SELECT count(*) FROM credit_ledger WHERE workspace_id = ? AND kind = 'SPEND'", ws))
}

func TestPurchase_SameIdempotencyKeyTwentyTimesAtOnce(t *testing.T) {
	t.Parallel()
	db := dbtest.DB(t)
	svc := newService(db)
	partnerID := dbtest.CreatePartner(t, db, dbtest.PartnerOpts{})
	ws, owner := dbtest.CreateWorkspace(t, db, dbtest.WorkspaceOpts{Credits: 100})
	ids := []string{
		dbtest.CreateLead(t, db, dbtest.LeadOpts{PartnerID: partnerID, PriceCredits: 7}),
		dbtest.CreateLead(t, db, dbtest.LeadOpts{PartnerID: partnerID, PriceCredits: 3}),
	}
	in := marketplace.PurchaseInput{WorkspaceID: ws, LeadIDs: ids, IdempotencyKey: "same-key"}

	var wg sync.WaitGroup
	start := make(chan struct{})
	results := make([]*marketplace.PurchaseResult, 20)
	errs := make([]error, 20)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i], errs[i] = svc.PurchaseLeads(context.Background(), caller(owner), in)
		}()
	}
	close(start)
	wg.Wait()

	replayed := 0
	for i := range results {
		require.NoError(t, errs[i])
		require.Equal(t, results[0].CartID, results[i].CartID, "every reply is the first result")
		require.Equal(t, int64(90), results[i].Balance)
		require.Equal(t, int64(10), results[i].CreditsSpent)
		if results[i].Replayed {
			replayed++
		}
	}
	require.Equal(t, 19, replayed)
	require.Equal(t, 2, scalar[int](t, db, "SELECT count(*) FROM lead_purchases WHERE workspace_id = ?", ws))
	require.Equal(t, int64(90), requireLedgerMatchesBalance(t, db, ws))
	require.Equal(t, 1, scalar[int](t, db, "SELECT count(*) FROM audit_logs WHERE workspace_id = ? AND action = 'lead.purchased'", ws))
}

func TestPurchase_IdempotencyKeyRules(t *testing.T) {
	t.Parallel()
	db := dbtest.DB(t)
	svc := newService(db)
	ctx := context.Background()
	partnerID := dbtest.CreatePartner(t, db, dbtest.PartnerOpts{})
	ws, owner := dbtest.CreateWorkspace(t, db, dbtest.WorkspaceOpts{Credits: 100})
	a := dbtest.CreateLead(t, db, dbtest.LeadOpts{PartnerID: partnerID})
	b := dbtest.CreateLead(t, db, dbtest.LeadOpts{PartnerID: partnerID})

	first, err := svc.PurchaseLeads(ctx, caller(owner), marketplace.PurchaseInput{WorkspaceID: ws, LeadIDs: []string{a}, IdempotencyKey: "k1"})
	require.NoError(t, err)

	_, err = svc.PurchaseLeads(ctx, caller(owner), marketplace.PurchaseInput{WorkspaceID: ws, LeadIDs: []string{b}, IdempotencyKey: "k1"})
	require.Equal(t, apperr.IdempotencyKeyReused, apperr.CodeOf(err), "same key, other input: %v", err)

	again, err := svc.PurchaseLeads(ctx, caller(owner), marketplace.PurchaseInput{WorkspaceID: ws, LeadIDs: []string{a}, IdempotencyKey: "k1"})
	require.NoError(t, err)
	require.True(t, again.Replayed)
	require.Equal(t, first.CartID, again.CartID)

	// Without the key, buying the same lead again is refused as already bought.
	_, err = svc.PurchaseLeads(ctx, caller(owner), marketplace.PurchaseInput{WorkspaceID: ws, LeadIDs: []string{a}, IdempotencyKey: "k2"})
	require.Equal(t, apperr.AlreadyPurchased, apperr.CodeOf(err))

	// After 24 hours the key is forgotten and may guard a new request.
	_, err = db.ExecContext(ctx, "UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE user_id = ? AND key = 'k1'", owner.ID)
	require.NoError(t, err)
	fresh, err := svc.PurchaseLeads(ctx, caller(owner), marketplace.PurchaseInput{WorkspaceID: ws, LeadIDs: []string{b}, IdempotencyKey: "k1"})
	require.NoError(t, err)
	require.False(t, fresh.Replayed)
	require.NotEqual(t, first.CartID, fresh.CartID)
	require.Equal(t, int64(80), requireLedgerMatchesBalance(t, db, ws))
}

func TestPurchase_Refusals(t *testing.T) {
	t.Parallel()
	db := dbtest.DB(t)
	svc := newService(db)
	ctx := context.Background()
	partnerID := dbtest.CreatePartner(t, db, dbtest.PartnerOpts{})
	ws, owner := dbtest.CreateWorkspace(t, db, dbtest.WorkspaceOpts{Credits: 15})
	otherWS, _ := dbtest.CreateWorkspace(t, db, dbtest.WorkspaceOpts{Credits: 100})
	cheap := dbtest.CreateLead(t, db, dbtest.LeadOpts{PartnerID: partnerID, PriceCredits: 10})
	pricey := dbtest.CreateLead(t, db, dbtest.LeadOpts{PartnerID: partnerID, PriceCredits: 10})
	invalid := dbtest.CreateLead(t, db, dbtest.LeadOpts{PartnerID: partnerID, VerificationStatus: "INVALID"})
	inactive := dbtest.CreateLead(t, db, dbtest.LeadOpts{PartnerID: partnerID, Status: "INACTIVE"})
	soldOut := dbtest.CreateLead(t, db, dbtest.LeadOpts{PartnerID: partnerID, MaxBuyers: 1})
	_, err := db.ExecContext(ctx, "UPDATE leads SET buyers_count = 1 WHERE id = ?", soldOut)
	require.NoError(t, err)
	missing := "00000000-0000-4000-8000-000000000000"

	cases := []struct {
		name    string
		ws      string
		leads   []string
		code    apperr.Code
		leadIDs []string
	}{
		{"not a member", otherWS, []string{cheap}, apperr.Forbidden, nil},
		{"empty cart", ws, nil, apperr.InvalidInput, nil},
		{"duplicate lead", ws, []string{cheap, cheap}, apperr.InvalidInput, []string{cheap}},
		{"bad id", ws, []string{"nope"}, apperr.InvalidInput, []string{"nope"}},
		{"missing lead", ws, []string{cheap, missing}, apperr.NotFound, []string{missing}},
		{"invalid lead", ws, []string{invalid}, apperr.NotFound, []string{invalid}},
		{"inactive lead", ws, []string{inactive}, apperr.NotFound, []string{inactive}},
		{"sold out", ws, []string{cheap, soldOut}, apperr.SoldOut, []string{soldOut}},
		{"insufficient credits", ws, []string{cheap, pricey}, apperr.InsufficientCredits, nil},
	}
	for i, tc := range cases {
		_, err := svc.PurchaseLeads(ctx, caller(owner), marketplace.PurchaseInput{
			WorkspaceID: tc.ws, LeadIDs: tc.leads, IdempotencyKey: fmt.Sprintf("refusal-%d", i),
		})
		require.Equal(t, tc.code, apperr.CodeOf(err), "%s: %v", tc.name, err)
		if tc.leadIDs != nil {
			var ae *apperr.Error
			require.ErrorAs(t, err, &ae)
			require.ElementsMatch(t, tc.leadIDs, ae.Details["leadIds"], tc.name)
		}
	}
	// Nothing of the refused carts happened.
	require.Equal(t, int64(15), requireLedgerMatchesBalance(t, db, ws))
	require.Equal(t, 0, scalar[int](t, db, "SELECT count(*) FROM lead_purchases WHERE workspace_id = ?", ws))
	require.Equal(t, 0, scalar[int](t, db, "SELECT buyers_count FROM leads WHERE id = ?", cheap))
}

func TestPurchase_AccruesCommissionAndAudits(t *testing.T) {
	t.Parallel()
	db := dbtest.DB(t)
	svc := newService(db)
	ctx := context.Background()
	plain := dbtest.CreatePartner(t, db, dbtest.PartnerOpts{})                                    // 30 %
	good := dbtest.CreatePartner(t, db, dbtest.PartnerOpts{PassRate: 0.92})                       // 30 + 2.5 %
	best := dbtest.CreatePartner(t, db, dbtest.PartnerOpts{CommissionRate: 0.25, PassRate: 0.97}) // 25 + 5 %
	ws, owner := dbtest.CreateWorkspace(t, db, dbtest.WorkspaceOpts{Credits: 100})
	leads := map[string]string{
		plain: dbtest.CreateLead(t, db, dbtest.LeadOpts{PartnerID: plain, PriceCredits: 10}),
		good:  dbtest.CreateLead(t, db, dbtest.LeadOpts{PartnerID: good, PriceCredits: 10}),
		best:  dbtest.CreateLead(t, db, dbtest.LeadOpts{PartnerID: best, PriceCredits: 7}),
	}
	res, err := svc.PurchaseLeads(ctx, caller(owner), marketplace.PurchaseInput{
		WorkspaceID: ws, LeadIDs: []string{leads[plain], leads[good], leads[best]}, IdempotencyKey: "commission",
	})
	require.NoError(t, err)
	require.Equal(t, int64(27), res.CreditsSpent)
	require.Equal(t, int64(73), res.Balance)

	// value = credits x 40 cents; earning = value x rate, rounded half up.
	want := map[string]int64{plain: 120, good: 130, best: 84}
	for p, cents := range want {
		require.Equal(t, cents, scalar[int64](t, db, "SELECT amount_cents FROM partner_earnings WHERE partner_id = ?", p), p)
	}
	require.Equal(t, 1, scalar[int](t, db,
		"SELECT count(*) FROM audit_logs WHERE resource_id = ? AND action = 'lead.purchased' AND actor_user_id = ?", res.CartID, owner.ID))
}

func TestCommissionRate(t *testing.T) {
	t.Parallel()
	c := partner.Commission{CreditValueCents: 40, Tiers: []partner.BonusTier{{PassRate: 0.90, Points: 2.5}, {PassRate: 0.95, Points: 5}}}
	for _, tc := range []struct {
		base, pass float64
		want       int64
	}{{0.30, 0, 3000}, {0.30, 0.899, 3000}, {0.30, 0.90, 3250}, {0.30, 0.949, 3250}, {0.30, 0.95, 3500}, {0.30, 1, 3500}, {0.2, 0.96, 2500}} {
		require.Equal(t, tc.want, c.RateBasisPoints(tc.base, tc.pass), "base %v pass %v", tc.base, tc.pass)
	}
	value, earning := c.EarningCents(3, 3250)
	require.Equal(t, int64(120), value)
	require.Equal(t, int64(39), earning)
}

func TestPurchase_PublishesAnEventOnCommit(t *testing.T) {
	t.Parallel()
	db := dbtest.DB(t)
	svc := newService(db)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	partnerID := dbtest.CreatePartner(t, db, dbtest.PartnerOpts{})
	ws, owner := dbtest.CreateWorkspace(t, db, dbtest.WorkspaceOpts{Credits: 10})
	lead := dbtest.CreateLead(t, db, dbtest.LeadOpts{PartnerID: partnerID, PriceCredits: 4})

	got := make(chan events.Event, 100)
	ready := make(chan struct{})
	go func() {
		_ = events.ListenReady(ctx, dbtest.URL(dbtest.NameOf(ctx, db)), func() { close(ready) }, func(ev events.Event) { got <- ev })
	}()
	<-ready
	res, err := svc.PurchaseLeads(ctx, caller(owner), marketplace.PurchaseInput{WorkspaceID: ws, LeadIDs: []string{lead}, IdempotencyKey: "event"})
	require.NoError(t, err)
	for {
		select {
		case ev := <-got:
			var p struct {
				WorkspaceID, CartID string
				CreditsSpent        int
			}
			require.NoError(t, json.Unmarshal(ev.Payload, &p))
			if ev.Type != "lead.purchased" || p.CartID != res.CartID {
				continue // another test's purchase
			}
			require.Equal(t, ws, p.WorkspaceID)
			require.Equal(t, 4, p.CreditsSpent)
			return
		case <-ctx.Done():
			t.Fatal("no lead.purchased event")
		}
	}
}

package verify_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/leadmarket/leadmarket/internal/apperr"
	"github.com/leadmarket/leadmarket/internal/auth"
	"github.com/leadmarket/leadmarket/internal/dbtest"
	"github.com/leadmarket/leadmarket/internal/lead"
	"github.com/leadmarket/leadmarket/internal/marketplace"
	"github.com/leadmarket/leadmarket/internal/page"
	"github.com/leadmarket/leadmarket/internal/verify"
)

// buyer is a workspace with its owner.
type buyer struct {
	ws     string
	caller *auth.Caller
}

func (e *env) buyer(credits int64) buyer {
	e.t.Helper()
	ws, owner := dbtest.CreateWorkspace(e.t, e.db, dbtest.WorkspaceOpts{Credits: credits})
	return buyer{ws: ws, caller: &auth.Caller{UserID: owner.ID}}
}

// member adds a member to b's workspace and returns its caller.
func (e *env) member(b buyer) *auth.Caller {
	e.t.Helper()
	u := dbtest.CreateUser(e.t, e.db, dbtest.UserOpts{})
	dbtest.AddMember(e.t, e.db, b.ws, u.ID, "MEMBER")
	return &auth.Caller{UserID: u.ID}
}

// buy buys leadID for b and returns the purchase's id.
func (e *env) buy(b buyer, leadID string) string {
	e.t.Helper()
	res, err := e.marketplace().PurchaseLeads(context.Background(), b.caller, marketplace.PurchaseInput{
		WorkspaceID: b.ws, LeadIDs: []string{leadID}, IdempotencyKey: uuid.NewString(),
	})
	require.NoError(e.t, err)
	return res.Purchases[0].ID
}

func (e *env) refunds(purchaseID string) int {
	return scalar[int](e.t, e.db, "SELECT count(*) FROM credit_ledger WHERE reference = ? AND kind = 'REFUND'", verify.RefundReference(purchaseID))
}

// reversal is the commission reversal of a sale: how many there are and their amount, with the
// sale's accrual.
func (e *env) reversal(purchaseID string) (count int, amount, accrual int64) {
	var r struct {
		Count   int   `bun:"count"`
		Amount  int64 `bun:"amount"`
		Accrual int64 `bun:"accrual"`
	}
	require.NoError(e.t, e.db.NewRaw(`SELECT count(*) FILTER (WHERE kind = 'REVERSAL') AS count,
			coalesce(sum(amount_cents) FILTER (WHERE kind = 'REVERSAL'), 0) AS amount,
			coalesce(sum(amount_cents) FILTER (WHERE kind = 'ACCRUAL'), 0) AS accrual
		FROM partner_earnings WHERE lead_purchase_id = ?`, purchaseID).Scan(context.Background(), &r))
	return r.Count, r.Amount, r.Accrual
}

func (e *env) report(id string) verify.Report {
	e.t.Helper()
	var r verify.Report
	require.NoError(e.t, e.db.NewRaw(`SELECT id, purchase_id, workspace_id, lead_id, purchase_credits, purchased_at, status,
		credits_refunded, reason, created_at, resolved_at FROM bounce_reports WHERE id = ?`, id).Scan(context.Background(), &r))
	return r
}

func (e *env) waitReport(id, status string) verify.Report {
	e.t.Helper()
	waitFor(e.t, "report "+status, func() bool { return e.report(id).Status == status })
	return e.report(id)
}

// 20 concurrent reports of one purchase (the same key at the same moment, other keys, other
// members) make one report and one fresh check; the address is now invalid, so every workspace
// that bought the lead within the window is refunded once, each sale's commission reversed, and
// the lead is no longer sold. A buyer outside the window is not refunded and may not report.
func TestBounce_RefundedOnceForEveryBuyer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	svc := e.service()
	partnerID := dbtest.CreatePartner(t, e.db, dbtest.PartnerOpts{})
	leadID, email := e.pendingLead(partnerID, dbtest.LeadOpts{VerificationStatus: "VALID", PriceCredits: 10, MaxBuyers: 5})
	buyers := []buyer{e.buyer(100), e.buyer(100), e.buyer(100), e.buyer(100)}
	purchases := make([]string, len(buyers))
	for i, b := range buyers {
		purchases[i] = e.buy(b, leadID)
	}
	// The fourth bought it 40 days ago: outside the 30-day window.
	execSQL(t, e.db, "UPDATE lead_purchases SET created_at = now() - interval '40 days' WHERE id = ?", purchases[3])
	// The stored verdict says VALID; the address is dead now.
	e.mv.on(email, answer{Body: mvBody("invalid"), Delay: 30 * time.Millisecond})
	e.runner(svc)

	first := buyers[0]
	members := []*auth.Caller{first.caller, e.member(first), e.member(first)}
	reports := make([]verify.Report, 20)
	errs := make([]error, 20)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range 20 {
		wg.Go(func() {
			c, key := first.caller, "the-same-key"
			if i >= 10 {
				c, key = members[i%3], fmt.Sprintf("key-%d", i)
			}
			<-start
			reports[i], errs[i] = svc.ReportBounce(ctx, c, verify.ReportInput{PurchaseID: purchases[0], IdempotencyKey: key})
		})
	}
	close(start)
	wg.Wait()
	for i := range 20 {
		require.NoError(t, errs[i], "report %d", i)
		require.Equal(t, reports[0].ID, reports[i].ID, "report %d is the purchase's one report", i)
	}
	require.Equal(t, 1, scalar[int](t, e.db, "SELECT count(*) FROM bounce_reports WHERE purchase_id = ?", purchases[0]))
	require.Equal(t, 1, scalar[int](t, e.db, "SELECT count(*) FROM river_job WHERE kind = 'verify_bounce'"))

	r := e.waitReport(reports[0].ID, verify.ReportRefunded)
	require.EqualValues(t, 10, r.CreditsRefunded)
	require.NotNil(t, r.ResolvedAt)
	require.Equal(t, 1, e.mv.callsOf(email), "one fresh check for all the reports")
	require.Equal(t, lead.StatusInvalid, e.state(leadID).Status)

	for i, b := range buyers {
		count, amount, accrual := e.reversal(purchases[i])
		if i == 3 {
			require.Zero(t, e.refunds(purchases[i]), "outside the window: no refund")
			require.Zero(t, count)
			require.EqualValues(t, 90, balance(t, e.db, b.ws))
			continue
		}
		require.Equal(t, 1, e.refunds(purchases[i]), "buyer %d refunded once", i)
		require.EqualValues(t, 100, balance(t, e.db, b.ws), "buyer %d has its credits back", i)
		require.Equal(t, 1, count, "sale %d's commission reversed once", i)
		require.Equal(t, -accrual, amount)
	}
	var earnings struct {
		Balance int64 `bun:"balance"`
		Ledger  int64 `bun:"ledger"`
	}
	require.NoError(t, e.db.NewRaw(`SELECT coalesce(sum(amount_cents), 0) AS ledger,
			coalesce(sum(amount_cents) FILTER (WHERE lead_purchase_id = ?), 0) AS balance
		FROM partner_earnings WHERE partner_id = ?`, purchases[3], partnerID).Scan(ctx, &earnings))
	require.Equal(t, earnings.Balance, earnings.Ledger, "only the sale outside the window still earns")
	for action, want := range map[string]int{"credits.refunded": 3, "lead.invalidated": 1, "lead.bounce_reported": 1, "lead.bounce_resolved": 1} {
		require.Equal(t, want, scalar[int](t, e.db, `SELECT count(*) FROM audit_logs WHERE action = ?
			AND (resource_id = ANY(?::text[]) OR resource_id = ? OR resource_id = ?)`,
			action, pgdialect.Array(purchases), leadID, reports[0].ID), action)
	}

	// The lead is not for sale any more.
	late := e.buyer(100)
	_, err := e.marketplace().PurchaseLeads(ctx, late.caller, marketplace.PurchaseInput{WorkspaceID: late.ws, LeadIDs: []string{leadID}, IdempotencyKey: "x"})
	require.True(t, apperr.Is(err, apperr.NotFound), "%v", err)

	// Another buyer reporting now is told it was refunded, without a second refund or check.
	second, err := svc.ReportBounce(ctx, buyers[1].caller, verify.ReportInput{PurchaseID: purchases[1], IdempotencyKey: "k"})
	require.NoError(t, err)
	require.NotEqual(t, reports[0].ID, second.ID)
	require.Equal(t, verify.ReportRefunded, second.Status)
	require.EqualValues(t, 10, second.CreditsRefunded)
	require.NotNil(t, second.ResolvedAt)
	require.Equal(t, 1, e.mv.callsOf(email))
	require.Equal(t, 1, e.refunds(purchases[1]))
	require.EqualValues(t, 100, balance(t, e.db, buyers[1].ws))

	// Refused: outside the window, another workspace's purchase, a purchase that does not exist,
	// a key reused for another purchase, no key.
	_, err = svc.ReportBounce(ctx, buyers[3].caller, verify.ReportInput{PurchaseID: purchases[3], IdempotencyKey: "k"})
	require.True(t, apperr.Is(err, apperr.InvalidInput), "%v", err)
	var ae *apperr.Error
	require.ErrorAs(t, err, &ae)
	require.Equal(t, "REFUND_WINDOW_CLOSED", ae.Details["reason"])
	_, err = svc.ReportBounce(ctx, buyers[2].caller, verify.ReportInput{PurchaseID: purchases[0], IdempotencyKey: "k2"})
	require.True(t, apperr.Is(err, apperr.NotFound), "another workspace's purchase: %v", err)
	_, err = svc.ReportBounce(ctx, buyers[2].caller, verify.ReportInput{PurchaseID: uuid.NewString(), IdempotencyKey: "k3"})
	require.True(t, apperr.Is(err, apperr.NotFound), "%v", err)
	_, err = svc.ReportBounce(ctx, first.caller, verify.ReportInput{PurchaseID: purchases[1], IdempotencyKey: "the-same-key"})
	require.True(t, apperr.Is(err, apperr.IdempotencyKeyReused), "%v", err)
	_, err = svc.ReportBounce(ctx, buyers[2].caller, verify.ReportInput{PurchaseID: purchases[2]})
	require.True(t, apperr.Is(err, apperr.InvalidInput), "the key is required: %v", err)
	require.Equal(t, 1, e.refunds(purchases[2]))

	// The reports are listed for the buying workspace only.
	ten := 10
	p, err := svc.Reports(ctx, first.caller, first.ws, page.Args{First: &ten})
	require.NoError(t, err)
	require.Len(t, p.Items, 1)
	require.Equal(t, reports[0].ID, p.Items[0].ID)
	_, err = svc.Reports(ctx, buyers[2].caller, first.ws, page.Args{First: &ten})
	require.True(t, apperr.Is(err, apperr.Forbidden))
}

// A report of an address that is still fine is DECLINED with the verdict as its reason: nothing
// is refunded, and the fresh verdict stands. A check that fails every time is DECLINED as
// UNKNOWN after the last attempt.
func TestBounce_DeclinedForAValidAddress(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	svc := e.service(func(o *verify.Options) {
		o.MaxAttempts = 2
		o.Backoff = func(int) time.Duration { return 10 * time.Millisecond }
	})
	e.runner(svc)
	partnerID := dbtest.CreatePartner(t, e.db, dbtest.PartnerOpts{})
	b := e.buyer(100)

	validID, validEmail := e.pendingLead(partnerID, dbtest.LeadOpts{VerificationStatus: "VALID"})
	execSQL(t, e.db, "UPDATE leads SET verified_at = now() - interval '10 days' WHERE id = ?", validID)
	e.mv.on(validEmail, answer{Body: mvBody("ok")})
	purchase := e.buy(b, validID)
	r, err := svc.ReportBounce(ctx, b.caller, verify.ReportInput{PurchaseID: purchase, IdempotencyKey: "a"})
	require.NoError(t, err)
	require.Equal(t, verify.ReportPending, r.Status)
	require.Nil(t, r.ResolvedAt)
	r = e.waitReport(r.ID, verify.ReportDeclined)
	require.Equal(t, "VALID", *r.Reason)
	require.Zero(t, r.CreditsRefunded)
	require.Zero(t, e.refunds(purchase))
	require.EqualValues(t, 90, balance(t, e.db, b.ws))
	s := e.state(validID)
	require.Equal(t, lead.StatusValid, s.Status)
	require.WithinDuration(t, time.Now(), *s.VerifiedAt, time.Minute, "verified afresh")
	calls, err := verify.Calls(ctx, e.db, validID)
	require.NoError(t, err)
	require.Len(t, calls, 1)
	require.Equal(t, verify.PurposeBounce, calls[0].Purpose)
	// The same key again answers with the report as it is now.
	again, err := svc.ReportBounce(ctx, b.caller, verify.ReportInput{PurchaseID: purchase, IdempotencyKey: "a"})
	require.NoError(t, err)
	require.Equal(t, r.ID, again.ID)
	require.Equal(t, verify.ReportDeclined, again.Status)

	downID, downEmail := e.pendingLead(partnerID, dbtest.LeadOpts{VerificationStatus: "VALID"})
	e.mv.on(downEmail, answer{Status: http.StatusServiceUnavailable})
	e.zb.on(downEmail, answer{Status: http.StatusInternalServerError})
	purchase = e.buy(b, downID)
	r, err = svc.ReportBounce(ctx, b.caller, verify.ReportInput{PurchaseID: purchase, IdempotencyKey: "b"})
	require.NoError(t, err)
	r = e.waitReport(r.ID, verify.ReportDeclined)
	require.Contains(t, *r.Reason, "UNKNOWN: the address could not be verified")
	require.Contains(t, *r.Reason, "HTTP 500")
	require.Equal(t, 2, e.mv.callsOf(downEmail), "one call per attempt")
	require.Equal(t, lead.StatusValid, e.state(downID).Status, "a failed check changes no verdict")
	require.Zero(t, e.refunds(purchase))

	// With verification off, a report cannot be checked.
	off := verify.NewService(e.db, e.queue, verify.Options{Logger: quiet})
	_, err = off.ReportBounce(ctx, b.caller, verify.ReportInput{PurchaseID: purchase, IdempotencyKey: "c"})
	require.True(t, apperr.Is(err, apperr.Unavailable), "%v", err)
}

// The pipeline that finds an already-sold lead INVALID refunds its purchases within the window,
// as a bounce report would.
func TestSweep_RefundsASoldLeadFoundInvalid(t *testing.T) {
	t.Parallel()
	e := newTxEnv(t)
	ctx := context.Background()
	svc := e.service()
	partnerID := dbtest.CreatePartner(t, e.db, dbtest.PartnerOpts{})
	leadID, email := e.pendingLead(partnerID, dbtest.LeadOpts{PriceCredits: 7})
	e.mv.on(email, answer{Body: mvBody("disposable")})
	a, b := e.buyer(50), e.buyer(50)
	pa, pb := e.buy(a, leadID), e.buy(b, leadID)

	n, err := svc.Sweep(ctx)
	require.NoError(t, err)
	require.Positive(t, n)
	var raw []byte
	require.NoError(t, e.db.NewRaw(`SELECT args FROM river_job WHERE kind = 'verify_leads' AND args->>'token' = ?`,
		*e.state(leadID).Lease).Scan(ctx, &raw))
	var args verify.LeadsArgs
	require.NoError(t, json.Unmarshal(raw, &args))
	require.NoError(t, svc.VerifyLeads(ctx, args))

	require.Equal(t, lead.StatusInvalid, e.state(leadID).Status)
	for _, p := range []struct {
		b        buyer
		purchase string
	}{{a, pa}, {b, pb}} {
		require.Equal(t, 1, e.refunds(p.purchase))
		require.EqualValues(t, 50, balance(t, e.db, p.b.ws))
		count, amount, accrual := e.reversal(p.purchase)
		require.Equal(t, 1, count)
		require.Equal(t, -accrual, amount)
	}
	require.True(t, scalar[bool](t, e.db, `SELECT EXISTS (SELECT 1 FROM audit_logs WHERE action = 'lead.invalidated'
		AND resource_id = ? AND metadata->>'purpose' = 'PIPELINE')`, leadID))
}

// A report whose check job is gone (discarded after failures of our own) is enqueued again by the
// sweep, once however often the sweep runs, and never while its job lives.
func TestSweep_RequeuesStuckReports(t *testing.T) {
	t.Parallel()
	e := newTxEnv(t)
	ctx := context.Background()
	svc := e.service()
	partnerID := dbtest.CreatePartner(t, e.db, dbtest.PartnerOpts{})
	leadID, _ := e.pendingLead(partnerID, dbtest.LeadOpts{VerificationStatus: "VALID"})
	b := e.buyer(50)
	r, err := svc.ReportBounce(ctx, b.caller, verify.ReportInput{PurchaseID: e.buy(b, leadID), IdempotencyKey: "k"})
	require.NoError(t, err)
	jobs := func() int {
		return scalar[int](t, e.db, "SELECT count(*) FROM river_job WHERE kind = 'verify_bounce' AND args->>'report_id' = ?", r.ID)
	}
	require.Equal(t, 1, jobs())
	execSQL(t, e.db, "UPDATE bounce_reports SET created_at = now() - interval '2 hours' WHERE id = ?", r.ID)
	_, err = svc.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, jobs(), "its job lives: nothing enqueued")

	execSQL(t, e.db, "UPDATE river_job SET state = 'discarded', finalized_at = now() WHERE kind = 'verify_bounce' AND args->>'report_id' = ?", r.ID)
	for range 2 {
		_, err = svc.Sweep(ctx)
		require.NoError(t, err)
	}
	require.Equal(t, 2, jobs(), "enqueued again, once")
	require.Equal(t, 1, scalar[int](t, e.db, `SELECT count(*) FROM river_job WHERE kind = 'verify_bounce' AND args->>'report_id' = ?
		AND state = 'available'`, r.ID))
}

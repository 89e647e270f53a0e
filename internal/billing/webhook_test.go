package billing_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/leadmarket/leadmarket/internal/apperr"
	"github.com/leadmarket/leadmarket/internal/auth"
	"github.com/leadmarket/leadmarket/internal/billing"
	"github.com/leadmarket/leadmarket/internal/dbtest"
	"github.com/leadmarket/leadmarket/internal/marketplace"
	"github.com/leadmarket/leadmarket/internal/partner"
)

func TestWebhook_RefusesBadDeliveries(t *testing.T) {
	t.Parallel()
	e := newTxEnv(t, nil)
	_, body := event("checkout.session.completed", checkoutSession("cs_x", "", "", "pi_x", 100, "paid"))
	big := append(bytes.Repeat([]byte(" "), billing.MaxWebhookBytes), body...)
	cases := map[string]func() int{
		"no signature":    func() int { return e.post(body, "") },
		"bad signature":   func() int { return e.post(body, "t=123,v1=deadbeef") },
		"wrong secret":    func() int { return e.deliver(body, "whsec_someone_else", time.Now()) },
		"stale timestamp": func() int { return e.deliver(body, webhookSecret, time.Now().Add(-6*time.Minute)) },
		"oversized body":  func() int { return e.deliver(big, webhookSecret, time.Now()) },
		"not json":        func() int { return e.deliver([]byte("not json at all"), webhookSecret, time.Now()) },
		"not an event":    func() int { return e.deliver([]byte(`{"hello":"world"}`), webhookSecret, time.Now()) },
	}
	for name, deliver := range cases {
		require.Equal(t, http.StatusBadRequest, deliver(), name)
	}
	require.Zero(t, scalar[int](t, e.db, "SELECT count(*) FROM stripe_events"), "nothing refused is stored")
	require.Zero(t, scalar[int](t, e.db, "SELECT count(*) FROM river_job"))
	// One security event for the client's refusals of this minute: the endpoint is public, and a
	// flood of bad deliveries must not become a flood of rows.
	require.Equal(t, 1, scalar[int](t, e.db,
		"SELECT count(*) FROM security_events WHERE kind = 'stripe_webhook_rejected' AND risk_level = 'HIGH'"))
	for range 50 {
		require.Equal(t, http.StatusBadRequest, e.post(body, "t=123,v1=deadbeef"))
	}
	require.Equal(t, 1, scalar[int](t, e.db, "SELECT count(*) FROM security_events WHERE kind = 'stripe_webhook_rejected'"))
}

func TestWebhook_RefusalsRecordedPerClientAddress(t *testing.T) {
	t.Parallel()
	e := newTxEnv(t, map[string]string{"TRUSTED_PROXIES": "127.0.0.1/32"})
	_, body := event("checkout.session.completed", checkoutSession("cs_y", "", "", "pi_y", 100, "paid"))
	for _, client := range []string{"198.51.100.7", "203.0.113.9", "198.51.100.7", "2001:db8::1"} {
		require.Equal(t, http.StatusBadRequest, e.postFrom(body, "t=123,v1=deadbeef", client))
	}
	require.Equal(t, 3, scalar[int](t, e.db, "SELECT count(DISTINCT ip) FROM security_events WHERE kind = 'stripe_webhook_rejected'"))
	require.Equal(t, 3, scalar[int](t, e.db, "SELECT count(*) FROM security_events WHERE kind = 'stripe_webhook_rejected'"))
}

func TestWebhook_CompletedDeliveredHundredTimesGrantsOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	ws, _ := dbtest.CreateWorkspace(t, e.db, dbtest.WorkspaceOpts{Credits: 5})
	orderID, sessionID := e.order(ws, 500, 19900)
	evID, body := event("checkout.session.completed", checkoutSession(sessionID, orderID, ws, "pi_hundred", 19900, "paid"))
	e.startRunner()

	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			require.Equal(t, http.StatusOK, e.deliver(body, webhookSecret, time.Now()))
		}()
	}
	close(start)
	wg.Wait()
	for range 80 {
		require.Equal(t, http.StatusOK, e.deliver(body, webhookSecret, time.Now()))
	}
	e.waitStatus(evID, billing.StatusProcessed)

	// Stripe may also send async_payment_succeeded for the same session: still once.
	ev2, body2 := event("checkout.session.async_payment_succeeded", checkoutSession(sessionID, orderID, ws, "pi_hundred", 19900, "paid"))
	require.Equal(t, http.StatusOK, e.deliver(body2, webhookSecret, time.Now()))
	e.waitStatus(ev2, billing.StatusProcessed)

	require.Equal(t, int64(505), e.balance(ws))
	require.Equal(t, 1, scalar[int](t, e.db, "SELECT count(*) FROM credit_ledger WHERE workspace_id = ? AND kind = 'PURCHASE'", ws))
	require.Equal(t, 1, scalar[int](t, e.db, "SELECT count(*) FROM stripe_events WHERE id = ?", evID))
	require.Equal(t, 1, scalar[int](t, e.db, "SELECT count(*) FROM river_job WHERE args->>'event_id' = ?", evID))
	require.Equal(t, "PAID", scalar[string](t, e.db, "SELECT status FROM credit_orders WHERE id = ?", orderID))
	require.Equal(t, "pi_hundred", scalar[string](t, e.db, "SELECT payment_intent_id FROM credit_orders WHERE id = ?", orderID))
	require.Equal(t, 1, scalar[int](t, e.db, "SELECT count(*) FROM audit_logs WHERE resource_id = ? AND action = 'credits.purchased'", orderID))
}

func TestWebhook_RefundBeforeCompletionRetriesUntilPaid(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	ws, _ := dbtest.CreateWorkspace(t, e.db, dbtest.WorkspaceOpts{})
	orderID, sessionID := e.order(ws, 100, 4900)
	runner := e.startRunner()

	// Half the payment refunded, delivered before the payment's completion.
	refundID, refund := event("charge.refunded", charge("ch_early", "pi_early", 4900, 2450))
	require.Equal(t, http.StatusOK, e.deliver(refund, webhookSecret, time.Now()))
	e.waitStatus(refundID, billing.StatusRetrying)
	require.Contains(t, scalar[string](t, e.db, "SELECT last_error FROM stripe_events WHERE id = ?", refundID), "not processed yet")

	doneID, done := event("checkout.session.completed", checkoutSession(sessionID, orderID, ws, "pi_early", 4900, "paid"))
	require.Equal(t, http.StatusOK, e.deliver(done, webhookSecret, time.Now()))
	e.waitStatus(doneID, billing.StatusProcessed)
	require.Equal(t, int64(100), e.balance(ws))

	// The refund's next try (due a minute later; brought forward here) now succeeds.
	jobID := scalar[int64](t, e.db, "SELECT job_id FROM stripe_events WHERE id = ?", refundID)
	e.retryNow(runner, jobID)
	e.waitStatus(refundID, billing.StatusProcessed)
	require.Equal(t, int64(50), e.balance(ws), "half the credits clawed back")
	require.Equal(t, 50, scalar[int](t, e.db, "SELECT refunded_credits FROM credit_orders WHERE id = ?", orderID))
	require.Equal(t, 2, scalar[int](t, e.db, "SELECT attempts FROM stripe_events WHERE id = ?", refundID))
}

func TestWebhook_RefundsClawBackInProportionOnceEach(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	ws, owner := dbtest.CreateWorkspace(t, e.db, dbtest.WorkspaceOpts{})
	orderID, sessionID := e.order(ws, 300, 9000)
	e.startRunner()
	paid, body := event("checkout.session.completed", checkoutSession(sessionID, orderID, ws, "pi_parts", 9000, "paid"))
	require.Equal(t, http.StatusOK, e.deliver(body, webhookSecret, time.Now()))
	e.waitStatus(paid, billing.StatusProcessed)

	// The buyer spends 250 credits on a lead (its partner earns a commission), then the payment
	// is refunded in two parts, the second delivered first and each delivered twice.
	market := marketplace.NewService(e.db, partner.Commission{CreditValueCents: 40})
	lead := dbtest.CreateLead(t, e.db, dbtest.LeadOpts{PartnerID: dbtest.CreatePartner(t, e.db, dbtest.PartnerOpts{}), PriceCredits: 250})
	_, err := market.PurchaseLeads(context.Background(), &auth.Caller{UserID: owner.ID}, marketplace.PurchaseInput{
		WorkspaceID: ws, LeadIDs: []string{lead}, IdempotencyKey: "spend"})
	require.NoError(t, err)
	earned := scalar[int64](t, e.db, "SELECT sum(amount_cents) FROM partner_earnings")
	full, fullBody := event("charge.refunded", charge("ch_parts", "pi_parts", 9000, 9000))
	part, partBody := event("charge.refunded", charge("ch_parts", "pi_parts", 9000, 3000))
	for _, b := range [][]byte{fullBody, fullBody, partBody, partBody} {
		require.Equal(t, http.StatusOK, e.deliver(b, webhookSecret, time.Now()))
	}
	e.waitStatus(full, billing.StatusProcessed)
	e.waitStatus(part, billing.StatusProcessed)
	require.Equal(t, int64(50-300), e.balance(ws), "the whole purchase clawed back once, even below zero")
	require.Equal(t, 300, scalar[int](t, e.db, "SELECT refunded_credits FROM credit_orders WHERE id = ?", orderID))
	require.Equal(t, earned, scalar[int64](t, e.db, "SELECT sum(amount_cents) FROM partner_earnings"), "a clawback leaves earnings alone")

	// Below zero the workspace cannot buy until it is positive again.
	other := dbtest.CreateLead(t, e.db, dbtest.LeadOpts{PartnerID: dbtest.CreatePartner(t, e.db, dbtest.PartnerOpts{}), PriceCredits: 1})
	_, err = market.PurchaseLeads(context.Background(), &auth.Caller{UserID: owner.ID}, marketplace.PurchaseInput{
		WorkspaceID: ws, LeadIDs: []string{other}, IdempotencyKey: "after-refund"})
	require.Equal(t, apperr.InsufficientCredits, apperr.CodeOf(err))
}

func TestWebhook_AmountMismatchGrantsNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	ws, _ := dbtest.CreateWorkspace(t, e.db, dbtest.WorkspaceOpts{})
	orderID, sessionID := e.order(ws, 2000, 69900)
	e.startRunner()
	evID, body := event("checkout.session.completed", checkoutSession(sessionID, orderID, ws, "pi_cheap", 100, "paid"))
	require.Equal(t, http.StatusOK, e.deliver(body, webhookSecret, time.Now()))
	e.waitStatus(evID, billing.StatusProcessed)
	require.Equal(t, int64(0), e.balance(ws))
	require.Equal(t, "AMOUNT_MISMATCH", scalar[string](t, e.db, "SELECT status FROM credit_orders WHERE id = ?", orderID))
	require.Equal(t, 1, scalar[int](t, e.db, "SELECT count(*) FROM security_events WHERE kind = 'stripe_amount_mismatch' AND risk_level = 'CRITICAL'"))

	// Refunding that payment (the operator's way out) is processed at once: nothing to claw back.
	refundID, refund := event("charge.refunded", charge("ch_cheap", "pi_cheap", 100, 100))
	require.Equal(t, http.StatusOK, e.deliver(refund, webhookSecret, time.Now()))
	e.waitStatus(refundID, billing.StatusProcessed)
	require.Equal(t, int64(0), e.balance(ws))
	require.Equal(t, 1, scalar[int](t, e.db, "SELECT count(*) FROM audit_logs WHERE resource_id = ? AND action = 'credits.refund_without_credits'", orderID))

	// A session claiming another order than its own is refused the same way.
	other, otherSession := e.order(ws, 10, 500)
	ev2, body2 := event("checkout.session.completed", checkoutSession(otherSession, orderID, ws, "pi_other", 500, "paid"))
	require.Equal(t, http.StatusOK, e.deliver(body2, webhookSecret, time.Now()))
	e.waitStatus(ev2, billing.StatusProcessed)
	require.Equal(t, int64(0), e.balance(ws))
	require.Equal(t, "PENDING", scalar[string](t, e.db, "SELECT status FROM credit_orders WHERE id = ?", other))
}

func TestWebhook_AsyncPaymentsDisputesAndOtherTypes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	ws, _ := dbtest.CreateWorkspace(t, e.db, dbtest.WorkspaceOpts{})
	failing, failingSession := e.order(ws, 100, 4900)
	slow, slowSession := e.order(ws, 100, 4900)
	e.startRunner()
	send := func(typ string, obj map[string]any) string {
		id, body := event(typ, obj)
		require.Equal(t, http.StatusOK, e.deliver(body, webhookSecret, time.Now()))
		return id
	}
	// A delayed payment method: completed unpaid, then failed.
	e.waitStatus(send("checkout.session.completed", checkoutSession(failingSession, failing, ws, "pi_f", 4900, "unpaid")), billing.StatusProcessed)
	require.Equal(t, "PENDING", scalar[string](t, e.db, "SELECT status FROM credit_orders WHERE id = ?", failing))
	e.waitStatus(send("checkout.session.async_payment_failed", checkoutSession(failingSession, failing, ws, "pi_f", 4900, "unpaid")), billing.StatusProcessed)
	require.Equal(t, "FAILED", scalar[string](t, e.db, "SELECT status FROM credit_orders WHERE id = ?", failing))
	// Another: completed unpaid, then succeeded.
	e.waitStatus(send("checkout.session.completed", checkoutSession(slowSession, slow, ws, "pi_s", 4900, "unpaid")), billing.StatusProcessed)
	e.waitStatus(send("checkout.session.async_payment_succeeded", checkoutSession(slowSession, slow, ws, "pi_s", 4900, "paid")), billing.StatusProcessed)
	require.Equal(t, int64(100), e.balance(ws))

	dispute := send("charge.dispute.created", map[string]any{"id": "dp_1", "object": "dispute", "amount": 4900, "currency": "usd",
		"charge": "ch_s", "payment_intent": "pi_s", "reason": "fraudulent", "status": "needs_response"})
	e.waitStatus(dispute, billing.StatusProcessed)
	require.Equal(t, 1, scalar[int](t, e.db, "SELECT count(*) FROM security_events WHERE kind = 'stripe_dispute' AND risk_level = 'HIGH' AND workspace_id = ?", ws))
	require.Equal(t, 1, scalar[int](t, e.db, "SELECT count(*) FROM audit_logs WHERE action = 'payment.disputed' AND resource_id = 'dp_1'"))
	// A process that died after committing the dispute's effect, before marking the event
	// processed, leaves it PROCESSING; processed again, it has its effect once. (River marks the
	// job completed a moment after the event is PROCESSED; the replay needs it finished.)
	require.Eventually(t, func() bool {
		return scalar[string](t, e.db, "SELECT state FROM river_job WHERE args->>'event_id' = ?", dispute) == "completed"
	}, 10*time.Second, 10*time.Millisecond)
	_, err := e.db.ExecContext(context.Background(), "UPDATE stripe_events SET status = 'PROCESSING' WHERE id = ?", dispute)
	require.NoError(t, err)
	admin := dbtest.CreateUser(t, e.db, dbtest.UserOpts{IsPlatformAdmin: true})
	_, err = e.app.Billing.RetryEvent(context.Background(),
		&auth.Caller{UserID: admin.ID, IsPlatformAdmin: true, AAL: auth.AAL2}, dispute)
	require.NoError(t, err)
	e.waitStatus(dispute, billing.StatusProcessed)
	require.Equal(t, 1, scalar[int](t, e.db, "SELECT count(*) FROM security_events WHERE kind = 'stripe_dispute' AND workspace_id = ?", ws))
	require.Equal(t, 1, scalar[int](t, e.db, "SELECT count(*) FROM audit_logs WHERE action = 'payment.disputed' AND resource_id = 'dp_1'"))

	e.waitStatus(send("customer.created", map[string]any{"id": "cus_1", "object": "customer"}), billing.StatusIgnored)
}

func TestWebhook_StoredEventSurvivesAProcessThatDies(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	ws, _ := dbtest.CreateWorkspace(t, e.db, dbtest.WorkspaceOpts{})
	orderID, sessionID := e.order(ws, 100, 4900)
	// No runner yet: the process that answered the webhook stops before processing anything.
	evID, body := event("checkout.session.completed", checkoutSession(sessionID, orderID, ws, "pi_dies", 4900, "paid"))
	require.Equal(t, http.StatusOK, e.deliver(body, webhookSecret, time.Now()))
	require.Equal(t, billing.StatusReceived, scalar[string](t, e.db, "SELECT status FROM stripe_events WHERE id = ?", evID))
	require.Equal(t, "available", scalar[string](t, e.db, "SELECT state FROM river_job WHERE args->>'event_id' = ?", evID))

	// The next process to start works it.
	e.startRunner()
	e.waitStatus(evID, billing.StatusProcessed)
	require.Equal(t, int64(100), e.balance(ws))
}

// jsonb cannot hold \u0000, which a customer-entered field of a genuine event may carry: such an
// event is stored (the character replaced) and processed, not refused with 503 at every delivery
// until Stripe gives up.
func TestWebhook_EventWithNULCharacterIsStored(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	ws, _ := dbtest.CreateWorkspace(t, e.db, dbtest.WorkspaceOpts{})
	orderID, sessionID := e.order(ws, 100, 4900)
	e.startRunner()
	sess := checkoutSession(sessionID, orderID, ws, "pi_nul", 4900, "paid")
	sess["customer_details"] = map[string]any{"name": "Jo\x00e", "email": "jo@example.test"}
	evID, body := event("checkout.session.completed", sess)
	require.Contains(t, string(body), `\u0000`)
	require.Equal(t, http.StatusOK, e.deliver(body, webhookSecret, time.Now()))
	e.waitStatus(evID, billing.StatusProcessed)
	require.Equal(t, int64(100), e.balance(ws))
	require.Equal(t, "Jo\uFFFDe", scalar[string](t, e.db, "SELECT payload->'data'->'object'->'customer_details'->>'name' FROM stripe_events WHERE id = ?", evID))
}

// During a roll of the endpoint secret (STRIPE_WEBHOOK_SECRET=new,old) a delivery signed under
// either secret is accepted, and so is Stripe's own header of the roll, which carries one v1
// signature per secret; a signature under neither is refused.
func TestWebhook_RotatedSecretsBothVerify(t *testing.T) {
	t.Parallel()
	const oldSecret, newSecret = "whsec_old_endpoint_secret", "whsec_new_endpoint_secret"
	e := newTxEnv(t, map[string]string{"STRIPE_WEBHOOK_SECRET": newSecret + ", " + oldSecret})
	require.Equal(t, []string{newSecret, oldSecret}, e.cfg.StripeWebhookSecrets)
	stored := func(id string) int {
		return scalar[int](t, e.db, "SELECT count(*) FROM stripe_events WHERE id = ?", id)
	}

	for _, secret := range []string{oldSecret, newSecret} {
		id, body := event("customer.created", map[string]any{"id": "cus_" + secret[6:9], "object": "customer"})
		require.Equal(t, http.StatusOK, e.deliver(body, secret, time.Now()), secret)
		require.Equal(t, 1, stored(id), secret)
	}

	// Stripe's header during a roll: t=...,v1=<under the new secret>,v1=<under the old one>. It
	// verifies under either secret alone, in either order.
	now := time.Now()
	for name, secrets := range map[string][]string{
		"both configured": {newSecret, oldSecret}, "only the new one": {newSecret}, "only the old one": {oldSecret},
	} {
		id, body := event("customer.created", map[string]any{"id": "cus_roll", "object": "customer"})
		header := fmt.Sprintf("t=%d,v1=%x,v1=%x", now.Unix(), webhook.ComputeSignature(now, body, newSecret),
			webhook.ComputeSignature(now, body, oldSecret))
		only := newTxEnv(t, map[string]string{"STRIPE_WEBHOOK_SECRET": strings.Join(secrets, ",")})
		require.Equal(t, http.StatusOK, only.post(body, header), name)
		require.Equal(t, 1, scalar[int](t, only.db, "SELECT count(*) FROM stripe_events WHERE id = ?", id), name)
	}

	// Neither secret: refused and not stored, whether alone or beside a good secret's signature
	// that was computed over another body.
	id, body := event("customer.created", map[string]any{"id": "cus_x", "object": "customer"})
	require.Equal(t, http.StatusBadRequest, e.deliver(body, "whsec_someone_else", now))
	_, other := event("customer.created", map[string]any{"id": "cus_y", "object": "customer"})
	header := fmt.Sprintf("t=%d,v1=%x,v1=%x", now.Unix(), webhook.ComputeSignature(now, body, "whsec_someone_else"),
		webhook.ComputeSignature(now, other, newSecret))
	require.Equal(t, http.StatusBadRequest, e.post(body, header))
	// A stale header is refused under every secret.
	require.Equal(t, http.StatusBadRequest, e.deliver(body, oldSecret, now.Add(-6*time.Minute)))
	require.Zero(t, stored(id))
}

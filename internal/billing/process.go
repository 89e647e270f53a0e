package billing

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/riverqueue/river"
	"github.com/stripe/stripe-go/v76"
	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/internal/audit"
	"github.com/leadmarket/leadmarket/internal/credit"
	"github.com/leadmarket/leadmarket/internal/metrics"
)

// Event statuses.
const (
	StatusReceived   = "RECEIVED"
	StatusProcessing = "PROCESSING"
	StatusProcessed  = "PROCESSED"
	StatusRetrying   = "RETRYING"
	StatusFailed     = "FAILED"
	StatusIgnored    = "IGNORED"
)

// RetrySchedule is how long after a failed attempt the next one runs: the first try is at once,
// then 1 min, 5 min, 15 min, 1 h and 6 h; when the fifth retry fails the event is FAILED.
var RetrySchedule = []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute, time.Hour, 6 * time.Hour}

// NextAttemptAt is when the attempt after failed attempt number attempt (1-based) runs, counted
// from when that attempt started; zero when none follows.
func NextAttemptAt(attempt int, attemptedAt time.Time) time.Time {
	if attempt < 1 || attempt > len(RetrySchedule) {
		return time.Time{}
	}
	return attemptedAt.Add(RetrySchedule[attempt-1])
}

// EventWorker processes stored Stripe events on River.
type EventWorker struct {
	river.WorkerDefaults[ProcessEventArgs]
	svc *Service
}

// NewEventWorker returns the worker for svc.
func NewEventWorker(svc *Service) *EventWorker { return &EventWorker{svc: svc} }

// NextRetry follows RetrySchedule.
func (w *EventWorker) NextRetry(job *river.Job[ProcessEventArgs]) time.Time {
	at := NextAttemptAt(job.Attempt, attemptedAt(job))
	if at.IsZero() {
		return time.Now().Add(RetrySchedule[len(RetrySchedule)-1])
	}
	return at
}

// Timeout bounds one attempt.
func (w *EventWorker) Timeout(*river.Job[ProcessEventArgs]) time.Duration { return time.Minute }

// Work processes the event once; its effects are idempotent by the ledger's references.
func (w *EventWorker) Work(ctx context.Context, job *river.Job[ProcessEventArgs]) error {
	return w.svc.ProcessEvent(ctx, job.Args.EventID, job.Attempt, job.MaxAttempts, attemptedAt(job))
}

func attemptedAt(job *river.Job[ProcessEventArgs]) time.Time {
	if job.AttemptedAt != nil {
		return *job.AttemptedAt
	}
	return time.Now()
}

// errRetryLater is a processing failure expected to clear up (an out-of-order event).
var errRetryLater = errors.New("retry later")

// ProcessEvent runs one processing attempt of a stored event and records it: the event's status,
// attempt count, next attempt time and last error, and an entry in its attempt log. An event
// already PROCESSED or IGNORED is left as it is.
func (s *Service) ProcessEvent(ctx context.Context, eventID string, attempt, maxAttempts int, startedAt time.Time) error {
	began := time.Now()
	var ev struct {
		Type    string          `bun:"type"`
		Status  string          `bun:"status"`
		Payload json.RawMessage `bun:"payload"`
	}
	err := s.db.NewRaw(`UPDATE stripe_events SET status = CASE WHEN status IN ('PROCESSED', 'IGNORED') THEN status ELSE 'PROCESSING' END
		WHERE id = ? RETURNING type, status, payload`, eventID).Scan(ctx, &ev)
	if errors.Is(err, sql.ErrNoRows) {
		return river.JobCancel(fmt.Errorf("stripe event %s is not stored", eventID))
	}
	if err != nil {
		return fmt.Errorf("process %s: %w", eventID, err)
	}
	if ev.Status == StatusProcessed || ev.Status == StatusIgnored {
		return nil
	}
	if _, err := s.db.ExecContext(ctx, `UPDATE stripe_events SET attempts = attempts + 1 WHERE id = ?;
		INSERT INTO stripe_event_attempts (event_id, attempt, started_at) VALUES (?, ?, ?)
		ON CONFLICT (event_id, attempt) DO UPDATE SET started_at = EXCLUDED.started_at, finished_at = NULL, error = NULL`,
		eventID, eventID, attempt, startedAt); err != nil {
		return fmt.Errorf("process %s: %w", eventID, err)
	}
	var stripeEv stripe.Event
	if err := json.Unmarshal(ev.Payload, &stripeEv); err != nil {
		return s.finishAttempt(ctx, eventID, ev.Type, attempt, maxAttempts, startedAt, began, "", fmt.Errorf("decode event: %w", err))
	}
	status := StatusProcessed
	var fx effects
	err = s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		fx = effects{}
		handled, err := s.handle(ctx, tx, &stripeEv, &fx)
		if err != nil {
			return err
		}
		if !handled {
			status = StatusIgnored
		}
		return nil
	})
	if err == nil {
		s.opts.Metrics.CreditsPurchased(fx.creditsGranted)
	}
	return s.finishAttempt(ctx, eventID, ev.Type, attempt, maxAttempts, startedAt, began, status, err)
}

// effects are what an event's transaction did, counted once it has committed.
type effects struct {
	// creditsGranted are the credits a payment added to a balance.
	creditsGranted int64
}

// attemptStatuses are the webhook_events_total statuses of an attempt's outcomes.
var attemptStatuses = map[string]string{
	StatusProcessed: metrics.WebhookProcessed, StatusIgnored: metrics.WebhookIgnored,
	StatusRetrying: metrics.WebhookRetried, StatusFailed: metrics.WebhookFailed,
}

// finishAttempt records how an attempt at an event of type typ ended and returns the error River
// should see; the attempt began at began (for its duration).
func (s *Service) finishAttempt(ctx context.Context, eventID, typ string, attempt, maxAttempts int, startedAt, began time.Time, status string, procErr error) error {
	ctx = context.WithoutCancel(ctx)
	var next *time.Time
	var lastErr *string
	if procErr != nil {
		msg := procErr.Error()
		lastErr = &msg
		status = StatusFailed
		if attempt < maxAttempts {
			status = StatusRetrying
			if at := NextAttemptAt(attempt, startedAt); !at.IsZero() {
				next = &at
			}
		}
	}
	_, err := s.db.ExecContext(ctx, `UPDATE stripe_events SET status = ?, next_attempt_at = ?, last_error = ?,
			processed_at = CASE WHEN ? IN ('PROCESSED', 'IGNORED') THEN now() ELSE processed_at END
		WHERE id = ?;
		UPDATE stripe_event_attempts SET finished_at = now(), error = ? WHERE event_id = ? AND attempt = ?`,
		status, next, lastErr, status, eventID, lastErr, eventID, attempt)
	if err != nil {
		return errors.Join(procErr, fmt.Errorf("record attempt of %s: %w", eventID, err))
	}
	s.opts.Metrics.WebhookAttempt(typ, attemptStatuses[status], time.Since(began))
	if procErr != nil {
		s.opts.Logger.WarnContext(ctx, "stripe event processing failed", "event", eventID, "attempt", attempt,
			"status", status, "err", procErr)
	}
	return procErr
}

// handle applies an event's effect in tx; it reports false for event types Leadmarket ignores.
func (s *Service) handle(ctx context.Context, tx bun.Tx, ev *stripe.Event, fx *effects) (bool, error) {
	switch ev.Type {
	case "checkout.session.completed", "checkout.session.async_payment_succeeded":
		var sess stripe.CheckoutSession
		if err := json.Unmarshal(ev.Data.Raw, &sess); err != nil {
			return true, fmt.Errorf("decode checkout session: %w", err)
		}
		return true, s.checkoutPaid(ctx, tx, ev, &sess, fx)
	case "checkout.session.async_payment_failed":
		var sess stripe.CheckoutSession
		if err := json.Unmarshal(ev.Data.Raw, &sess); err != nil {
			return true, fmt.Errorf("decode checkout session: %w", err)
		}
		return true, s.checkoutFailed(ctx, tx, &sess)
	case "charge.refunded":
		var ch stripe.Charge
		if err := json.Unmarshal(ev.Data.Raw, &ch); err != nil {
			return true, fmt.Errorf("decode charge: %w", err)
		}
		return true, s.chargeRefunded(ctx, tx, &ch)
	case "charge.dispute.created":
		var d stripe.Dispute
		if err := json.Unmarshal(ev.Data.Raw, &d); err != nil {
			return true, fmt.Errorf("decode dispute: %w", err)
		}
		return true, s.disputeCreated(ctx, tx, &d)
	default:
		return false, nil
	}
}

// orderForSession finds and locks the order of a Checkout Session by its id, cross-checked with
// client_reference_id and metadata.order_id. ok is false (with a security event recorded) when
// the session names another order than the one it is linked to.
func (s *Service) orderForSession(ctx context.Context, tx bun.Tx, sess *stripe.CheckoutSession) (*Order, bool, error) {
	ref := sess.ClientReferenceID
	if ref == "" {
		ref = sess.Metadata["order_id"]
	}
	var o Order
	err := tx.NewRaw("SELECT "+orderColumns+" FROM credit_orders WHERE checkout_session_id = ? FOR UPDATE", sess.ID).Scan(ctx, &o)
	if errors.Is(err, sql.ErrNoRows) && ref != "" && uuid.Validate(ref) == nil {
		// The webhook can overtake the request that records the session id.
		err = tx.NewRaw("SELECT "+orderColumns+" FROM credit_orders WHERE id = ? FOR UPDATE", ref).Scan(ctx, &o)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, fmt.Errorf("%w: no order for checkout session %s", errRetryLater, sess.ID)
	}
	if err != nil {
		return nil, false, err
	}
	mismatch := (ref != "" && ref != o.ID) ||
		(o.CheckoutSessionID != nil && *o.CheckoutSessionID != sess.ID) ||
		(sess.Metadata["workspace_id"] != "" && sess.Metadata["workspace_id"] != o.WorkspaceID)
	if mismatch {
		return &o, false, audit.RecordSecurity(ctx, tx, audit.SecurityEvent{
			Kind: "stripe_order_mismatch", Risk: audit.RiskCritical, WorkspaceID: o.WorkspaceID,
			Details: map[string]any{"session": sess.ID, "clientReferenceId": ref, "orderId": o.ID},
		})
	}
	return &o, true, nil
}

func (s *Service) checkoutPaid(ctx context.Context, tx bun.Tx, ev *stripe.Event, sess *stripe.CheckoutSession, fx *effects) error {
	if sess.PaymentStatus != stripe.CheckoutSessionPaymentStatusPaid {
		return nil // completed but unpaid (a delayed method): async_payment_succeeded will follow
	}
	o, ok, err := s.orderForSession(ctx, tx, sess)
	if err != nil || !ok {
		return err
	}
	var pi *string
	if sess.PaymentIntent != nil && sess.PaymentIntent.ID != "" {
		pi = &sess.PaymentIntent.ID
	}
	if sess.AmountTotal != o.AmountCents || string(sess.Currency) != o.Currency {
		if o.Status == "PENDING" {
			// The payment intent is kept so that a refund of this payment is recognised.
			if _, err := tx.ExecContext(ctx, `UPDATE credit_orders SET status = 'AMOUNT_MISMATCH', updated_at = now(),
				payment_intent_id = coalesce(?, payment_intent_id) WHERE id = ?`, pi, o.ID); err != nil {
				return err
			}
		}
		return audit.RecordSecurity(ctx, tx, audit.SecurityEvent{
			Kind: "stripe_amount_mismatch", Risk: audit.RiskCritical, WorkspaceID: o.WorkspaceID,
			Details: map[string]any{"orderId": o.ID, "session": sess.ID, "event": ev.ID,
				"expectedAmount": o.AmountCents, "expectedCurrency": o.Currency,
				"paidAmount": sess.AmountTotal, "paidCurrency": string(sess.Currency)},
		})
	}
	balance, err := credit.Apply(ctx, tx, credit.Entry{
		WorkspaceID: o.WorkspaceID, Kind: credit.KindPurchase, Amount: o.Credits,
		Reference: "stripe:checkout:" + sess.ID, Description: fmt.Sprintf("%d credits bought (order %s)", o.Credits, o.ID),
	})
	if errors.Is(err, credit.ErrAlreadyApplied) {
		return nil
	}
	if err != nil {
		return err
	}
	fx.creditsGranted += o.Credits
	if _, err := tx.ExecContext(ctx, `UPDATE credit_orders SET status = 'PAID', paid_at = now(), updated_at = now(),
		payment_intent_id = coalesce(?, payment_intent_id), checkout_session_id = ? WHERE id = ?`, pi, sess.ID, o.ID); err != nil {
		return err
	}
	return audit.Record(ctx, tx, audit.Entry{
		ActorType: audit.ActorStripe, WorkspaceID: o.WorkspaceID, Action: "credits.purchased", ResourceType: "credit_order",
		ResourceID: o.ID, Old: map[string]any{"status": o.Status}, New: map[string]any{"status": "PAID", "credits": o.Credits, "balance": balance},
		Metadata: map[string]any{"stripeEvent": ev.ID, "session": sess.ID},
	})
}

func (s *Service) checkoutFailed(ctx context.Context, tx bun.Tx, sess *stripe.CheckoutSession) error {
	o, ok, err := s.orderForSession(ctx, tx, sess)
	if err != nil || !ok || o.Status != "PENDING" {
		return err
	}
	if _, err := tx.ExecContext(ctx, "UPDATE credit_orders SET status = 'FAILED', updated_at = now() WHERE id = ?", o.ID); err != nil {
		return err
	}
	return audit.Record(ctx, tx, audit.Entry{
		ActorType: audit.ActorStripe, WorkspaceID: o.WorkspaceID, Action: "credits.payment_failed", ResourceType: "credit_order",
		ResourceID: o.ID, Old: map[string]any{"status": o.Status}, New: map[string]any{"status": "FAILED"},
	})
}

// chargeRefunded claws back credits in proportion to the amount refunded so far. Refund events
// carry the charge's cumulative amount_refunded, so the clawback due is recomputed from it and
// only the difference to what was clawed back already is applied: each refund takes its share
// once, in any order. A refund for a payment not processed yet fails and is retried.
func (s *Service) chargeRefunded(ctx context.Context, tx bun.Tx, ch *stripe.Charge) error {
	if ch.PaymentIntent == nil || ch.PaymentIntent.ID == "" {
		return fmt.Errorf("charge %s has no payment intent", ch.ID)
	}
	var o Order
	err := tx.NewRaw("SELECT "+orderColumns+" FROM credit_orders WHERE payment_intent_id = ? FOR UPDATE", ch.PaymentIntent.ID).Scan(ctx, &o)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && o.Status == "PENDING") {
		return fmt.Errorf("%w: the payment of charge %s is not processed yet", errRetryLater, ch.ID)
	}
	if err != nil {
		return err
	}
	if o.Status != "PAID" {
		// A payment that granted no credits (its amount did not match the order): the refund
		// returns the money and there is nothing to claw back.
		return audit.Record(ctx, tx, audit.Entry{
			ActorType: audit.ActorStripe, WorkspaceID: o.WorkspaceID, Action: "credits.refund_without_credits", ResourceType: "credit_order",
			ResourceID: o.ID, Old: map[string]any{"status": o.Status}, Metadata: map[string]any{"charge": ch.ID, "amountRefunded": ch.AmountRefunded},
		})
	}
	if ch.Amount <= 0 {
		return fmt.Errorf("charge %s has no amount", ch.ID)
	}
	refunded := min(ch.AmountRefunded, ch.Amount)
	due := (o.Credits*refunded*2 + ch.Amount) / (2 * ch.Amount) // rounded half up
	delta := due - o.RefundedCredits
	if delta <= 0 {
		return nil
	}
	balance, err := credit.Apply(ctx, tx, credit.Entry{
		WorkspaceID: o.WorkspaceID, Kind: credit.KindClawback, Amount: -delta, AllowNegative: true,
		Reference:   "stripe:refund:" + ch.ID + ":" + strconv.FormatInt(refunded, 10),
		Description: fmt.Sprintf("refund of %d of %d %s (order %s)", refunded, ch.Amount, ch.Currency, o.ID),
	})
	if errors.Is(err, credit.ErrAlreadyApplied) {
		return nil
	}
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "UPDATE credit_orders SET refunded_credits = ?, updated_at = now() WHERE id = ?", due, o.ID); err != nil {
		return err
	}
	return audit.Record(ctx, tx, audit.Entry{
		ActorType: audit.ActorStripe, WorkspaceID: o.WorkspaceID, Action: "credits.clawed_back", ResourceType: "credit_order",
		ResourceID: o.ID, Old: map[string]any{"refundedCredits": o.RefundedCredits}, New: map[string]any{"refundedCredits": due, "balance": balance},
		Metadata: map[string]any{"charge": ch.ID, "amountRefunded": refunded}, Severity: audit.SeverityNotice,
	})
}

func (s *Service) disputeCreated(ctx context.Context, tx bun.Tx, d *stripe.Dispute) error {
	// Its audit entry marks the dispute as handled: processed again (after a process died
	// between this transaction and the event's status), it has no further effect.
	if handled, err := audit.HasEntry(ctx, tx, "payment.disputed", d.ID); err != nil || handled {
		return err
	}
	details := map[string]any{"dispute": d.ID, "amount": d.Amount, "currency": string(d.Currency), "reason": string(d.Reason)}
	var workspaceID, orderID string
	if d.PaymentIntent != nil && d.PaymentIntent.ID != "" {
		var o Order
		if err := tx.NewRaw("SELECT "+orderColumns+" FROM credit_orders WHERE payment_intent_id = ?", d.PaymentIntent.ID).Scan(ctx, &o); err == nil {
			workspaceID, orderID = o.WorkspaceID, o.ID
		} else if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
	}
	if d.Charge != nil {
		details["charge"] = d.Charge.ID
	}
	details["orderId"] = orderID
	if err := audit.RecordSecurity(ctx, tx, audit.SecurityEvent{
		Kind: "stripe_dispute", Risk: audit.RiskHigh, WorkspaceID: workspaceID, Details: details,
	}); err != nil {
		return err
	}
	return audit.Record(ctx, tx, audit.Entry{
		ActorType: audit.ActorStripe, WorkspaceID: workspaceID, Action: "payment.disputed", ResourceType: "stripe_dispute",
		ResourceID: d.ID, New: details, Severity: audit.SeverityWarning,
	})
}

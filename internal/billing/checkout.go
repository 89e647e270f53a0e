package billing

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/internal/apperr"
	"github.com/leadmarket/leadmarket/internal/audit"
	"github.com/leadmarket/leadmarket/internal/auth"
	"github.com/leadmarket/leadmarket/internal/idempotency"
	"github.com/leadmarket/leadmarket/internal/workspace"
)

// Order is a credit order: one Checkout Session for one package.
type Order struct {
	ID                string     `bun:"id" json:"id"`
	WorkspaceID       string     `bun:"workspace_id" json:"workspaceId"`
	PackageID         string     `bun:"package_id" json:"packageId"`
	Credits           int64      `bun:"credits" json:"credits"`
	AmountCents       int64      `bun:"amount_cents" json:"amountCents"`
	Currency          string     `bun:"currency" json:"currency"`
	Status            string     `bun:"status" json:"status"`
	CheckoutSessionID *string    `bun:"checkout_session_id" json:"checkoutSessionId"`
	PaymentIntentID   *string    `bun:"payment_intent_id" json:"paymentIntentId"`
	RefundedCredits   int64      `bun:"refunded_credits" json:"refundedCredits"`
	CreatedAt         time.Time  `bun:"created_at" json:"createdAt"`
	PaidAt            *time.Time `bun:"paid_at" json:"paidAt"`
}

const orderColumns = `id, workspace_id, package_id, credits, amount_cents, currency, status, checkout_session_id,
	payment_intent_id, refunded_credits, created_at, paid_at`

// CheckoutInput asks for a Checkout Session for a package.
type CheckoutInput struct {
	WorkspaceID    string `json:"workspaceId"`
	PackageID      string `json:"packageId"`
	SuccessURL     string `json:"successUrl"`
	CancelURL      string `json:"cancelUrl"`
	IdempotencyKey string `json:"-"`
}

// Checkout is a started purchase of credits.
type Checkout struct {
	CheckoutURL string `json:"checkoutUrl"`
	SessionID   string `json:"sessionId"`
	Order       Order  `json:"order"`
}

// PurchaseCredits records a pending order for the package and creates its Stripe Checkout
// Session; the amount comes from the package on the server. Workspace owners and admins only:
// anybody else is FORBIDDEN before any other answer (so a stranger learns nothing, not even
// whether Stripe is configured), and a replayed idempotency key is authorised as well.
// Errors: FORBIDDEN, INVALID_INPUT, NOT_FOUND (package), UNAVAILABLE (Stripe not configured or
// failing), IDEMPOTENCY_KEY_REUSED, IDEMPOTENCY_IN_PROGRESS.
func (s *Service) PurchaseCredits(ctx context.Context, c *auth.Caller, in CheckoutInput) (*Checkout, error) {
	if _, err := workspace.RequireRole(ctx, s.db, in.WorkspaceID, c.UserID, workspace.RoleOwner, workspace.RoleAdmin); err != nil {
		return nil, err
	}
	if s.stripe == nil {
		return nil, apperr.New(apperr.Unavailable, "buying credits is not available: Stripe is not configured")
	}
	for name, u := range map[string]string{"successUrl": in.SuccessURL, "cancelUrl": in.CancelURL} {
		if p, err := url.Parse(u); err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" || len(u) > 2000 {
			return nil, apperr.New(apperr.InvalidInput, "%s must be an absolute http(s) URL", name)
		}
	}
	if err := apperr.CheckID(in.PackageID); err != nil {
		return nil, err
	}
	key := idempotency.Key{UserID: c.UserID, Key: in.IdempotencyKey, Operation: "purchaseCredits", Request: in}
	out, _, err := idempotency.DoTwoStep(ctx, s.db, key,
		func(ctx context.Context, tx bun.Tx) (Order, error) { return s.startOrder(ctx, tx, c, in) },
		func(ctx context.Context, order Order) (*Checkout, error) { return s.createSession(ctx, c, in, order) },
		func(ctx context.Context, tx bun.Tx, co *Checkout) error {
			// The session exists at Stripe now: it is recorded even if the client has gone away.
			_, err := tx.ExecContext(ctx, `UPDATE credit_orders SET checkout_session_id = ?, updated_at = now() WHERE id = ?`,
				co.SessionID, co.Order.ID)
			return err
		})
	if err != nil {
		// An order whose session could not be recorded stays pending: a payment of its session is
		// still matched by the webhook.
		return nil, fmt.Errorf("purchase credits: %w", err)
	}
	return out, nil
}

// startOrder records a pending order for the package, in the transaction that claims the
// idempotency key. Workspace owners and admins only.
func (s *Service) startOrder(ctx context.Context, tx bun.Tx, c *auth.Caller, in CheckoutInput) (Order, error) {
	if _, err := workspace.RequireRole(ctx, tx, in.WorkspaceID, c.UserID, workspace.RoleOwner, workspace.RoleAdmin); err != nil {
		return Order{}, err
	}
	var order Order
	err := tx.NewRaw(`INSERT INTO credit_orders (workspace_id, package_id, user_id, credits, amount_cents, currency)
		SELECT ?, p.id, ?, p.credits, p.price_cents, p.currency FROM credit_packages p WHERE p.id = ? AND p.active
		RETURNING `+orderColumns, in.WorkspaceID, c.UserID, in.PackageID).Scan(ctx, &order)
	if errors.Is(err, sql.ErrNoRows) {
		return Order{}, apperr.New(apperr.NotFound, "credit package %s is not on sale", in.PackageID)
	}
	if err != nil {
		return Order{}, err
	}
	return order, audit.Record(ctx, tx, audit.Entry{
		ActorUserID: c.UserID, WorkspaceID: in.WorkspaceID, Action: "credits.checkout_started", ResourceType: "credit_order",
		ResourceID: order.ID, New: map[string]any{"packageId": in.PackageID, "credits": order.Credits,
			"amountCents": order.AmountCents, "currency": order.Currency},
	})
}

// createSession creates the order's Stripe Checkout Session for the package's server-side price.
// An order whose session could not be created is marked FAILED. Errors: UNAVAILABLE.
func (s *Service) createSession(ctx context.Context, c *auth.Caller, in CheckoutInput, order Order) (*Checkout, error) {
	params := &stripe.CheckoutSessionParams{
		Mode:              stripe.String(string(stripe.CheckoutSessionModePayment)),
		SuccessURL:        stripe.String(in.SuccessURL),
		CancelURL:         stripe.String(in.CancelURL),
		ClientReferenceID: stripe.String(order.ID),
		CustomerEmail:     stripe.String(c.Email),
		LineItems: []*stripe.CheckoutSessionLineItemParams{{
			Quantity: stripe.Int64(1),
			PriceData: &stripe.CheckoutSessionLineItemPriceDataParams{
				Currency:   stripe.String(order.Currency),
				UnitAmount: stripe.Int64(order.AmountCents),
				ProductData: &stripe.CheckoutSessionLineItemPriceDataProductDataParams{
					Name: stripe.String(fmt.Sprintf("%d Leadmarket credits", order.Credits)),
				},
			},
		}},
		PaymentIntentData: &stripe.CheckoutSessionPaymentIntentDataParams{
			Metadata: map[string]string{"order_id": order.ID, "workspace_id": order.WorkspaceID},
		},
	}
	params.AddMetadata("order_id", order.ID)
	params.AddMetadata("workspace_id", order.WorkspaceID)
	// Stripe's own idempotency: a retried create of this order returns the same session.
	params.SetIdempotencyKey("leadmarket-order-" + order.ID)
	params.Context = ctx
	sess, err := s.stripe.CheckoutSessions.New(params)
	if err != nil {
		s.opts.Logger.ErrorContext(ctx, "stripe checkout session", "err", err, "order", order.ID)
		s.abandonOrder(ctx, order.ID)
		return nil, &apperr.Error{Code: apperr.Unavailable, Message: "the payment provider is unavailable; try again", Err: err}
	}
	if sess.URL == "" {
		s.opts.Logger.ErrorContext(ctx, "stripe checkout session without a URL", "session", sess.ID, "order", order.ID)
		s.abandonOrder(ctx, order.ID)
		return nil, apperr.New(apperr.Unavailable, "the payment provider is unavailable; try again")
	}
	order.CheckoutSessionID = &sess.ID
	return &Checkout{CheckoutURL: sess.URL, SessionID: sess.ID, Order: order}, nil
}

// abandonOrder marks an order whose session could not be created as failed.
func (s *Service) abandonOrder(ctx context.Context, orderID string) {
	ctx = context.WithoutCancel(ctx)
	if _, err := s.db.ExecContext(ctx, "UPDATE credit_orders SET status = 'FAILED', updated_at = now() WHERE id = ?", orderID); err != nil {
		s.opts.Logger.ErrorContext(ctx, "abandon order", "err", err, "order", orderID)
	}
}

// OrderFor returns an order to the owners and admins of its workspace (and platform admins, with
// an aal2 session unless MFA is optional); nil when there is no such order or the caller may not
// see it, so a caller cannot tell the two apart. Errors: INVALID_INPUT.
func (s *Service) OrderFor(ctx context.Context, c *auth.Caller, id string) (*Order, error) {
	if err := apperr.CheckID(id); err != nil {
		return nil, err
	}
	var o Order
	err := s.db.NewSelect().TableExpr("credit_orders AS o").ColumnExpr(orderColumns).Where("o.id = ?", id).Scan(ctx, &o)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("order %s: %w", id, err)
	}
	err = workspace.RequireMemberOrAdmin(ctx, s.db, o.WorkspaceID, c, workspace.RoleOwner, workspace.RoleAdmin)
	if apperr.Is(err, apperr.Forbidden) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &o, nil
}

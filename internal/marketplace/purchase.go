package marketplace

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/leadmarket/leadmarket/internal/apperr"
	"github.com/leadmarket/leadmarket/internal/audit"
	"github.com/leadmarket/leadmarket/internal/auth"
	"github.com/leadmarket/leadmarket/internal/credit"
	"github.com/leadmarket/leadmarket/internal/db"
	"github.com/leadmarket/leadmarket/internal/events"
	"github.com/leadmarket/leadmarket/internal/idempotency"
	"github.com/leadmarket/leadmarket/internal/lead"
	"github.com/leadmarket/leadmarket/internal/partner"
	"github.com/leadmarket/leadmarket/internal/pipeline"
	"github.com/leadmarket/leadmarket/internal/workspace"
)

// MaxCartSize is the most leads one purchase may hold.
const MaxCartSize = 100

// PurchaseInput is a cart: the leads a workspace buys at once.
type PurchaseInput struct {
	WorkspaceID    string   `json:"workspaceId"`
	LeadIDs        []string `json:"leadIds"`
	IdempotencyKey string   `json:"-"`
}

// Purchase is one lead bought.
type Purchase struct {
	ID           string    `json:"id"`
	LeadID       string    `json:"leadId"`
	CreditsSpent int64     `json:"creditsSpent"`
	CreatedAt    time.Time `json:"createdAt"`
}

// PurchaseResult is what a cart cost; it is also the stored response replayed for a repeated
// idempotency key.
type PurchaseResult struct {
	CartID       string     `json:"cartId"`
	WorkspaceID  string     `json:"workspaceId"`
	Purchases    []Purchase `json:"purchases"`
	CreditsSpent int64      `json:"creditsSpent"`
	Balance      int64      `json:"balance"`
	// Replayed is true when the result is the stored one of an earlier request with the same key.
	Replayed bool `json:"-"`
}

// PurchaseLeads buys a cart for a workspace, all or nothing, in one transaction: each lead is
// locked (in id order, so concurrent carts cannot deadlock) and must still be for sale, not
// bought by this workspace before, and below its maxBuyers; the credits are debited in the same
// statement that checks them; each lead joins the workspace's pipeline at NEW; the partners'
// commissions accrue; an audit entry and an event are written. Errors: FORBIDDEN, INVALID_INPUT, NOT_FOUND, SOLD_OUT, ALREADY_PURCHASED,
// INSUFFICIENT_CREDITS, IDEMPOTENCY_KEY_REUSED, IDEMPOTENCY_IN_PROGRESS — each naming the leads
// concerned in extensions.leadIds where it is about leads.
func (s *Service) PurchaseLeads(ctx context.Context, c *auth.Caller, in PurchaseInput) (*PurchaseResult, error) {
	ids, err := cartIDs(in.LeadIDs)
	if err != nil {
		return nil, err
	}
	in.LeadIDs = ids
	var res *PurchaseResult
	err = s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := workspace.RoleOf(ctx, tx, in.WorkspaceID, c.UserID); err != nil {
			return err
		}
		key := idempotency.Key{UserID: c.UserID, Key: in.IdempotencyKey, Operation: "purchaseLeads", Request: in, Required: true}
		var err error
		var replayed bool
		if res, replayed, err = idempotency.Do(ctx, tx, key, func() (*PurchaseResult, error) { return s.buy(ctx, tx, c, in) }); err != nil {
			return err
		}
		res.Replayed = replayed
		return nil
	})
	if err != nil {
		if db.IsUniqueViolation(err, "lead_purchases_workspace_id_lead_id_key") {
			return nil, apperr.New(apperr.AlreadyPurchased, "the workspace already bought some of these leads").With("leadIds", in.LeadIDs)
		}
		return nil, fmt.Errorf("purchase leads: %w", err)
	}
	if !res.Replayed {
		s.metrics.CreditsSpent(res.CreditsSpent)
	}
	return res, nil
}

func (s *Service) buy(ctx context.Context, tx bun.Tx, c *auth.Caller, in PurchaseInput) (*PurchaseResult, error) {
	locked, err := lead.Lock(ctx, tx, in.LeadIDs)
	if err != nil {
		return nil, err
	}
	found := make(map[string]bool, len(locked))
	var unavailable, soldOut []string
	var total int64
	// The cart as locked: its lead ids with the prices the credits are debited for.
	ids, prices := make([]string, len(locked)), make([]int64, len(locked))
	for i, l := range locked {
		found[l.ID] = true
		switch {
		case !l.IsForSale:
			unavailable = append(unavailable, l.ID)
		case l.IsSoldOut:
			soldOut = append(soldOut, l.ID)
		}
		total += l.PriceCredits
		ids[i], prices[i] = l.ID, l.PriceCredits
	}
	for _, id := range in.LeadIDs {
		if !found[id] {
			unavailable = append(unavailable, id)
		}
	}
	if len(unavailable) > 0 {
		slices.Sort(unavailable)
		return nil, apperr.New(apperr.NotFound, "%d of these leads do not exist or are not for sale", len(unavailable)).
			With("leadIds", unavailable)
	}
	// The leads are locked, so a purchase of them committed by another cart of this workspace is
	// visible here and cannot appear before this transaction ends.
	var owned []string
	if err := tx.NewRaw("SELECT lead_id FROM lead_purchases WHERE workspace_id = ? AND lead_id IN (?) ORDER BY lead_id",
		in.WorkspaceID, bun.List(in.LeadIDs)).Scan(ctx, &owned); err != nil {
		return nil, fmt.Errorf("owned leads: %w", err)
	}
	if len(owned) > 0 {
		return nil, apperr.New(apperr.AlreadyPurchased, "the workspace already bought %d of these leads", len(owned)).
			With("leadIds", owned)
	}
	if len(soldOut) > 0 {
		return nil, apperr.New(apperr.SoldOut, "%d of these leads are sold out", len(soldOut)).With("leadIds", soldOut)
	}

	cartID := uuid.NewString()
	balance, err := credit.Apply(ctx, tx, credit.Entry{
		WorkspaceID: in.WorkspaceID, Kind: credit.KindSpend, Amount: -total, Reference: "cart:" + cartID,
		Description: fmt.Sprintf("%d leads", len(locked)), ActorUserID: c.UserID,
	})
	if err != nil {
		var ae *apperr.Error
		if errors.As(err, &ae) && ae.Code == apperr.InsufficientCredits {
			return nil, ae.With("leadIds", in.LeadIDs)
		}
		return nil, err
	}
	if err := lead.AddBuyers(ctx, tx, ids); err != nil {
		return nil, err
	}
	var purchases []Purchase
	if err := tx.NewRaw(`INSERT INTO lead_purchases (cart_id, workspace_id, lead_id, buyer_user_id, credits_spent)
		SELECT ?, ?, cart.lead_id, ?, cart.price_credits FROM unnest(?::uuid[], ?::bigint[]) AS cart(lead_id, price_credits)
		ORDER BY cart.lead_id
		RETURNING id, lead_id, credits_spent, created_at`,
		cartID, in.WorkspaceID, c.UserID, pgdialect.Array(ids), pgdialect.Array(prices)).Scan(ctx, &purchases); err != nil {
		return nil, fmt.Errorf("record purchases: %w", err)
	}
	bought := make([]pipeline.Purchase, len(purchases))
	for i, p := range purchases {
		bought[i] = pipeline.Purchase{ID: p.ID, WorkspaceID: in.WorkspaceID, LeadID: p.LeadID, CreditsSpent: p.CreditsSpent,
			PurchasedAt: p.CreatedAt}
	}
	if err := pipeline.AddPurchases(ctx, tx, bought); err != nil {
		return nil, err
	}
	partnerOf := make(map[string]string, len(locked))
	for _, l := range locked {
		partnerOf[l.ID] = l.PartnerID
	}
	sales := make([]partner.Sale, len(purchases))
	for i, p := range purchases {
		sales[i] = partner.Sale{PurchaseID: p.ID, PartnerID: partnerOf[p.LeadID], Credits: p.CreditsSpent}
	}
	if err := s.commission.Accrue(ctx, tx, sales); err != nil {
		return nil, err
	}
	if err := audit.Record(ctx, tx, audit.Entry{
		ActorUserID: c.UserID, WorkspaceID: in.WorkspaceID, Action: "lead.purchased", ResourceType: "cart",
		ResourceID: cartID, New: map[string]any{"leadIds": in.LeadIDs, "creditsSpent": total, "balance": balance},
	}); err != nil {
		return nil, err
	}
	if err := events.Publish(ctx, tx, PurchasedEvent, map[string]any{
		"id": cartID, "workspaceId": in.WorkspaceID, "cartId": cartID, "leads": len(purchases), "creditsSpent": total,
	}); err != nil {
		return nil, err
	}
	return &PurchaseResult{
		CartID: cartID, WorkspaceID: in.WorkspaceID, Purchases: purchases, CreditsSpent: total, Balance: balance,
	}, nil
}

// cartIDs validates a cart's lead ids: 1 to MaxCartSize distinct UUIDs. Errors: INVALID_INPUT.
func cartIDs(ids []string) ([]string, error) {
	if len(ids) == 0 || len(ids) > MaxCartSize {
		return nil, apperr.New(apperr.InvalidInput, "a cart holds 1 to %d leads", MaxCartSize)
	}
	out := make([]string, 0, len(ids))
	seen := make(map[string]bool, len(ids))
	for _, raw := range ids {
		u, err := uuid.Parse(strings.TrimSpace(raw))
		if err != nil {
			return nil, apperr.New(apperr.InvalidInput, "%q is not a lead id", raw).With("leadIds", []string{raw})
		}
		id := u.String()
		if seen[id] {
			return nil, apperr.New(apperr.InvalidInput, "lead %s is in the cart twice", id).With("leadIds", []string{id})
		}
		seen[id] = true
		out = append(out, id)
	}
	slices.Sort(out)
	return out, nil
}

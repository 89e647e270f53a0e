package partner

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/leadmarket/leadmarket/internal/auth"
	"github.com/leadmarket/leadmarket/internal/page"
)

// Earning is one entry of a partner's commission ledger.
type Earning struct {
	ID             int64     `bun:"id"`
	Kind           string    `bun:"kind"`
	AmountCents    int64     `bun:"amount_cents"`
	SaleValueCents int64     `bun:"sale_value_cents"`
	Rate           float64   `bun:"rate"`
	LeadPurchaseID *string   `bun:"lead_purchase_id"`
	CreatedAt      time.Time `bun:"created_at"`
}

// Balance is what a partner has earned.
type Balance struct {
	BalanceCents int64 `bun:"balance_cents"`
	SalesCount   int   `bun:"sales_count"`
}

// EarningPages are the page sizes of a partner's earnings.
var EarningPages = page.Bounds{Default: 25, Max: 100}

// Earnings returns a page of a partner's earnings, newest first, to its members and platform
// admins. Errors: FORBIDDEN, INVALID_INPUT.
func (s *Service) Earnings(ctx context.Context, c *auth.Caller, partnerID string, args page.Args) (page.Page[Earning], error) {
	if err := RequireMemberOrAdmin(ctx, s.db, partnerID, c); err != nil {
		return page.Page[Earning]{}, err
	}
	limit, after, err := page.Open(args, EarningPages, page.Serial.Valid)
	if err != nil {
		return page.Page[Earning]{}, err
	}
	q := s.db.NewSelect().TableExpr("partner_earnings").
		Column("id", "kind", "amount_cents", "sale_value_cents", "rate", "lead_purchase_id", "created_at").
		Where("partner_id = ?", partnerID).OrderExpr("id DESC").Limit(int64(limit + 1))
	if after != nil {
		q.Where("id < ?", after.ID)
	}
	var es []Earning
	if err := q.Scan(ctx, &es); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return page.Page[Earning]{}, fmt.Errorf("earnings of %s: %w", partnerID, err)
	}
	return page.New(es, limit, func(e Earning) any { return page.Serial{ID: e.ID} }), nil
}

// BalanceOf returns a partner's earnings balance to its members and platform admins.
// Errors: FORBIDDEN, INVALID_INPUT.
func (s *Service) BalanceOf(ctx context.Context, c *auth.Caller, partnerID string) (Balance, error) {
	if err := RequireMemberOrAdmin(ctx, s.db, partnerID, c); err != nil {
		return Balance{}, err
	}
	var b Balance
	err := s.db.NewRaw(`SELECT coalesce(sum(amount_cents), 0) AS balance_cents,
		count(*) FILTER (WHERE kind = 'ACCRUAL') - count(*) FILTER (WHERE kind = 'REVERSAL') AS sales_count
		FROM partner_earnings WHERE partner_id = ?`, partnerID).Scan(ctx, &b)
	if err != nil {
		return Balance{}, fmt.Errorf("balance of %s: %w", partnerID, err)
	}
	return b, nil
}

package partner

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/leadmarket/leadmarket/internal/apperr"
	"github.com/leadmarket/leadmarket/internal/auth"
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

// requireReader allows the partner's members and platform admins (with an aal2 session when
// ADMIN_REQUIRE_MFA). Errors: FORBIDDEN (reason MFA_REQUIRED for an admin without aal2 reading a
// partner it is not a member of), INVALID_INPUT.
func (s *Service) requireReader(ctx context.Context, c *auth.Caller, partnerID string) error {
	if err := apperr.CheckID(partnerID); err != nil {
		return err
	}
	return c.MemberOrAdmin(s.requireMFA, func() error {
		var ok bool
		if err := s.db.NewRaw("SELECT EXISTS (SELECT 1 FROM partner_members WHERE partner_id = ? AND user_id = ?)",
			partnerID, c.UserID).Scan(ctx, &ok); err != nil {
			return fmt.Errorf("partner membership: %w", err)
		}
		if !ok {
			return apperr.New(apperr.Forbidden, "only the partner's members see its earnings")
		}
		return nil
	})
}

// Earnings returns up to first entries (at most 100) of a partner's earnings older than the
// cursor after, newest first, and whether more follow. Errors: FORBIDDEN, INVALID_INPUT.
func (s *Service) Earnings(ctx context.Context, c *auth.Caller, partnerID string, first int, after string) ([]Earning, bool, error) {
	if err := s.requireReader(ctx, c, partnerID); err != nil {
		return nil, false, err
	}
	if first < 1 {
		return nil, false, apperr.New(apperr.InvalidInput, "first must be at least 1")
	}
	first = min(first, 100)
	q := s.db.NewSelect().TableExpr("partner_earnings").
		Column("id", "kind", "amount_cents", "sale_value_cents", "rate", "lead_purchase_id", "created_at").
		Where("partner_id = ?", partnerID).OrderExpr("id DESC").Limit(int64(first + 1))
	if after != "" {
		before, err := strconv.ParseInt(after, 10, 64)
		if err != nil || before <= 0 {
			return nil, false, apperr.New(apperr.InvalidInput, "after is not a cursor of this list")
		}
		q.Where("id < ?", before)
	}
	var es []Earning
	if err := q.Scan(ctx, &es); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, false, fmt.Errorf("earnings of %s: %w", partnerID, err)
	}
	if len(es) > first {
		return es[:first], true, nil
	}
	return es, false, nil
}

// BalanceOf returns a partner's earnings balance. Errors: FORBIDDEN, INVALID_INPUT.
func (s *Service) BalanceOf(ctx context.Context, c *auth.Caller, partnerID string) (Balance, error) {
	if err := s.requireReader(ctx, c, partnerID); err != nil {
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

package partner

import (
	"context"
	"fmt"
	"math"

	"github.com/uptrace/bun"
)

// BonusTier raises the commission by Points percentage points for a partner whose verification
// pass rate is at least PassRate.
type BonusTier struct {
	PassRate float64
	Points   float64
}

// Commission turns sales into partner earnings.
type Commission struct {
	// CreditValueCents is what one credit is worth (CREDIT_VALUE_CENTS, default 40).
	CreditValueCents int64
	// Tiers are the pass-rate bonuses (COMMISSION_BONUS_TIERS); the highest tier reached applies.
	Tiers []BonusTier
}

// RateBasisPoints returns the commission rate in basis points (1/100 of a percent) for a partner
// with base rate and verification pass rate: base plus the highest bonus tier reached, never more
// than the whole sale (10,000).
func (c Commission) RateBasisPoints(base, passRate float64) int64 {
	var bonus float64
	for _, t := range c.Tiers {
		if passRate+1e-9 >= t.PassRate && t.Points > bonus {
			bonus = t.Points
		}
	}
	return min(int64(math.Round(base*10_000+bonus*100)), 10_000)
}

// EarningCents returns the commission in cents on a sale of credits at rateBP basis points,
// rounded half up.
func (c Commission) EarningCents(credits int64, rateBP int64) (saleValue, earning int64) {
	saleValue = credits * c.CreditValueCents
	return saleValue, (saleValue*rateBP + 5_000) / 10_000
}

// Sale is one lead sold: the purchase that made it, the lead's partner and its price.
type Sale struct {
	PurchaseID string
	PartnerID  string
	Credits    int64
}

type earningRow struct {
	bun.BaseModel `bun:"table:partner_earnings"`

	PartnerID      string  `bun:"partner_id"`
	LeadPurchaseID string  `bun:"lead_purchase_id"`
	Kind           string  `bun:"kind"`
	SaleValueCents int64   `bun:"sale_value_cents"`
	Rate           float64 `bun:"rate"`
	AmountCents    int64   `bun:"amount_cents"`
	Reference      string  `bun:"reference"`
}

// Accrue writes the commission of each sale to the earnings ledger in one statement, at each
// partner's current rate. Call it in the purchase's transaction; the reference "sale:<purchase>"
// makes a sale accrue at most once.
func (c Commission) Accrue(ctx context.Context, tx bun.IDB, sales []Sale) error {
	if len(sales) == 0 {
		return nil
	}
	ids := make([]string, 0, len(sales))
	for _, s := range sales {
		ids = append(ids, s.PartnerID)
	}
	ps, err := byIDsIn(ctx, tx, ids)
	if err != nil {
		return err
	}
	byID := make(map[string]Partner, len(ps))
	for _, p := range ps {
		byID[p.ID] = p
	}
	rows := make([]earningRow, 0, len(sales))
	for _, s := range sales {
		p, ok := byID[s.PartnerID]
		if !ok {
			return fmt.Errorf("accrue commission: partner %s not found", s.PartnerID)
		}
		rate := c.RateBasisPoints(p.CommissionRate, p.VerificationPassRate)
		value, amount := c.EarningCents(s.Credits, rate)
		rows = append(rows, earningRow{
			PartnerID: s.PartnerID, LeadPurchaseID: s.PurchaseID, Kind: "ACCRUAL",
			SaleValueCents: value, Rate: float64(rate) / 10_000, AmountCents: amount, Reference: "sale:" + s.PurchaseID,
		})
	}
	if _, err := tx.NewInsert().Model(&rows).Exec(ctx); err != nil {
		return fmt.Errorf("accrue commission: %w", err)
	}
	return nil
}

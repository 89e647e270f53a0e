package partner

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
)

// Reversal is the reversal of one sale's commission.
type Reversal struct {
	PartnerID      string `bun:"partner_id"`
	LeadPurchaseID string `bun:"lead_purchase_id"`
	// AmountCents is negative: the accrual's amount taken back.
	AmountCents int64 `bun:"amount_cents"`
}

// ReverseSales takes back the commission each of purchaseIDs accrued (Accrue's "sale:<purchase>"
// entry): a REVERSAL entry of the accrual's negative amount, at its rate and sale value, with the
// reference "reversal:<purchase>", so a sale is reversed at most once whatever asks for it (a
// refund, a bounce). Sales without an accrual, or reversed already, are left as they are. Call it
// in the transaction of the refund; it returns the reversals it wrote.
func ReverseSales(ctx context.Context, tx bun.IDB, purchaseIDs []string) ([]Reversal, error) {
	if len(purchaseIDs) == 0 {
		return nil, nil
	}
	refs := make([]string, len(purchaseIDs))
	for i, id := range purchaseIDs {
		refs[i] = "sale:" + id
	}
	var rs []Reversal
	err := tx.NewRaw(`INSERT INTO partner_earnings
			(partner_id, lead_purchase_id, kind, sale_value_cents, rate, amount_cents, reference)
		SELECT e.partner_id, e.lead_purchase_id, 'REVERSAL', e.sale_value_cents, e.rate, -e.amount_cents,
			'reversal:' || e.lead_purchase_id
		FROM partner_earnings AS e WHERE e.reference = ANY(?::text[]) AND e.kind = 'ACCRUAL'
		ORDER BY e.reference
		ON CONFLICT (reference) DO NOTHING
		RETURNING partner_id, lead_purchase_id, amount_cents`, pgdialect.Array(refs)).Scan(ctx, &rs)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("reverse sales: %w", err)
	}
	return rs, nil
}

// PassRate is a partner's verification pass rate: valid / verified of its leads.
type PassRate struct {
	PartnerID string
	Rate      float64
}

// PassRateLockClass is the first key of the transaction advisory locks LockForPassRates takes
// (the second is a hash of the partner's id).
const PassRateLockClass int32 = 0x70617373 // "pass"

// LockForPassRates serialises pass-rate refreshes of partnerIDs until tx ends (transaction
// advisory locks, taken in id order). A refresh takes them before it counts, so refreshes of one
// partner run one after the other and the last to write is the last to have counted: a slower
// one cannot write an older count over a newer one. They are not row locks: sales and refunds,
// whose earnings entries lock the partner's row for their foreign key, never wait for a refresh,
// nor a refresh for them.
func LockForPassRates(ctx context.Context, tx bun.IDB, partnerIDs []string) error {
	if len(partnerIDs) == 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(?, hashtext(id)) FROM unnest(?::text[]) AS id ORDER BY id`,
		PassRateLockClass, pgdialect.Array(partnerIDs)); err != nil {
		return fmt.Errorf("lock pass rates: %w", err)
	}
	return nil
}

// SetPassRates stores each partner's verification pass rate (partners.verification_pass_rate, to
// four places, within 0..1): the rate Accrue charges the bonus tiers by on every later sale. The
// update takes no lock a sale's or a refund's foreign key check waits for.
func SetPassRates(ctx context.Context, tx bun.IDB, rates []PassRate) error {
	if len(rates) == 0 {
		return nil
	}
	ids, values := make([]string, len(rates)), make([]float64, len(rates))
	for i, r := range rates {
		ids[i], values[i] = r.PartnerID, math.Round(min(max(r.Rate, 0), 1)*10_000)/10_000
	}
	if _, err := tx.ExecContext(ctx, `UPDATE partners AS p SET verification_pass_rate = r.rate
		FROM unnest(?::uuid[], ?::numeric[]) AS r(id, rate) WHERE p.id = r.id`,
		pgdialect.Array(ids), pgdialect.Array(values)); err != nil {
		return fmt.Errorf("set pass rates: %w", err)
	}
	return nil
}

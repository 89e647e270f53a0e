package credit

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"
)

// PurchasedToday sums the credits bought today (UTC day): the ledger's PURCHASE entries.
func PurchasedToday(ctx context.Context, db bun.IDB) (int64, error) {
	var n int64
	if err := db.NewRaw(`SELECT coalesce(sum(amount), 0) FROM credit_ledger WHERE kind = 'PURCHASE'
		AND created_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'`).Scan(ctx, &n); err != nil {
		return 0, fmt.Errorf("credits purchased today: %w", err)
	}
	return n, nil
}

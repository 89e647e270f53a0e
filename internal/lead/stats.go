package lead

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"
)

// Stats are the leads' figures on the admins' live dashboard.
type Stats struct {
	// Active counts the leads ACTIVE and not INVALID (for sale, sold out or not).
	Active int `bun:"active"`
	// VerificationPending counts the leads whose verification_status is PENDING.
	VerificationPending int `bun:"verification_pending"`
}

// CountStats returns the leads' dashboard figures in one scan.
func CountStats(ctx context.Context, db bun.IDB) (Stats, error) {
	var s Stats
	if err := db.NewRaw(`SELECT count(*) FILTER (WHERE status = 'ACTIVE' AND verification_status <> 'INVALID') AS active,
			count(*) FILTER (WHERE verification_status = 'PENDING') AS verification_pending FROM leads`).Scan(ctx, &s); err != nil {
		return Stats{}, fmt.Errorf("lead stats: %w", err)
	}
	return s, nil
}

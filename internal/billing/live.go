package billing

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
)

// FailedEvent is the event type of a Stripe event become FAILED, published with its id by the
// stripe_events trigger in the transaction that fails it (whichever statement does).
const FailedEvent = "webhook.failed"

// Failure is a Stripe event that became FAILED, and when.
type Failure struct {
	Event
	FailedAt time.Time `bun:"failed_at"`
}

// FailuresByIDs returns the FAILED events among ids, oldest failure first.
func FailuresByIDs(ctx context.Context, db bun.IDB, ids []string) ([]Failure, error) {
	var out []Failure
	if err := db.NewRaw("SELECT "+eventColumns+", failed_at FROM stripe_events WHERE id = ANY(?::text[]) AND status = ? ORDER BY failed_at, id",
		pgdialect.Array(ids), StatusFailed).Scan(ctx, &out); err != nil {
		return nil, fmt.Errorf("failed stripe events by id: %w", err)
	}
	return out, nil
}

// FailuresAfter returns up to limit events that became FAILED at or after since, oldest first.
func FailuresAfter(ctx context.Context, db bun.IDB, since time.Time, limit int) ([]Failure, error) {
	var out []Failure
	if err := db.NewRaw("SELECT "+eventColumns+", failed_at FROM stripe_events WHERE failed_at >= ? AND status = ? ORDER BY failed_at, id LIMIT ?",
		since, StatusFailed, limit).Scan(ctx, &out); err != nil {
		return nil, fmt.Errorf("failed stripe events after %s: %w", since, err)
	}
	return out, nil
}

// CountFailed counts the events FAILED now (marketplaceStats.webhookEventsFailed).
func CountFailed(ctx context.Context, db bun.IDB) (int, error) {
	var n int
	if err := db.NewRaw("SELECT count(*) FROM stripe_events WHERE status = ?", StatusFailed).Scan(ctx, &n); err != nil {
		return 0, fmt.Errorf("count failed stripe events: %w", err)
	}
	return n, nil
}

package marketplace

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
)

// PurchasedEvent is the event type of a cart bought, published with the cart's id.
const PurchasedEvent = "lead.purchased"

// CartEvent is one cart bought: what leadPurchased delivers.
type CartEvent struct {
	CartID       string
	WorkspaceID  string
	Purchases    []Purchase
	CreditsSpent int64
	OccurredAt   time.Time
}

type purchaseRow struct {
	ID           string    `bun:"id"`
	CartID       string    `bun:"cart_id"`
	WorkspaceID  string    `bun:"workspace_id"`
	LeadID       string    `bun:"lead_id"`
	CreditsSpent int64     `bun:"credits_spent"`
	CreatedAt    time.Time `bun:"created_at"`
}

// CartsByIDs returns the carts with the given ids (the ids PurchasedEvent carries), oldest first.
func CartsByIDs(ctx context.Context, db bun.IDB, cartIDs []string) ([]CartEvent, error) {
	var rows []purchaseRow
	if err := db.NewRaw(`SELECT id, cart_id, workspace_id, lead_id, credits_spent, created_at FROM lead_purchases
		WHERE cart_id = ANY(?::uuid[]) ORDER BY created_at, cart_id, id`, pgdialect.Array(cartIDs)).Scan(ctx, &rows); err != nil {
		return nil, fmt.Errorf("carts by id: %w", err)
	}
	return carts(rows), nil
}

// CartsAfter returns the carts bought at or after since, oldest first, up to limit purchases
// (and the whole of the last cart, which a page never cuts): the catch-up of leadPurchased.
func CartsAfter(ctx context.Context, db bun.IDB, since time.Time, limit int) ([]CartEvent, error) {
	var rows []purchaseRow
	if err := db.NewRaw(`SELECT id, cart_id, workspace_id, lead_id, credits_spent, created_at FROM lead_purchases
		WHERE created_at >= ? ORDER BY created_at, cart_id, id LIMIT ?`, since, limit).Scan(ctx, &rows); err != nil {
		return nil, fmt.Errorf("carts after %s: %w", since, err)
	}
	if len(rows) == limit && limit > 0 {
		last := rows[len(rows)-1].CartID
		for len(rows) > 0 && rows[len(rows)-1].CartID == last {
			rows = rows[:len(rows)-1]
		}
		var rest []purchaseRow
		if err := db.NewRaw(`SELECT id, cart_id, workspace_id, lead_id, credits_spent, created_at FROM lead_purchases
			WHERE cart_id = ? ORDER BY id`, last).Scan(ctx, &rest); err != nil {
			return nil, fmt.Errorf("carts after %s: %w", since, err)
		}
		rows = append(rows, rest...)
	}
	return carts(rows), nil
}

func carts(rows []purchaseRow) []CartEvent {
	var out []CartEvent
	index := map[string]int{}
	for _, r := range rows {
		i, ok := index[r.CartID]
		if !ok {
			i = len(out)
			index[r.CartID] = i
			out = append(out, CartEvent{CartID: r.CartID, WorkspaceID: r.WorkspaceID, OccurredAt: r.CreatedAt})
		}
		out[i].Purchases = append(out[i].Purchases, Purchase{ID: r.ID, LeadID: r.LeadID, CreditsSpent: r.CreditsSpent, CreatedAt: r.CreatedAt})
		out[i].CreditsSpent += r.CreditsSpent
	}
	return out
}

// DayStats are today's sales (UTC day) on the admins' live dashboard.
type DayStats struct {
	LeadsSold    int   `bun:"leads_sold"`
	Purchases    int   `bun:"purchases"`
	CreditsSpent int64 `bun:"credits_spent"`
}

// CountToday returns today's sales figures: distinct leads sold, carts, credits spent.
func CountToday(ctx context.Context, db bun.IDB) (DayStats, error) {
	var s DayStats
	if err := db.NewRaw(`SELECT count(DISTINCT lead_id) AS leads_sold, count(DISTINCT cart_id) AS purchases,
			coalesce(sum(credits_spent), 0) AS credits_spent FROM lead_purchases
		WHERE created_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'`).Scan(ctx, &s); err != nil {
		return DayStats{}, fmt.Errorf("sales today: %w", err)
	}
	return s, nil
}

package marketplace

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"
)

// PurchaseRecord is one row of lead_purchases: a workspace's purchase of one lead.
type PurchaseRecord struct {
	ID           string    `bun:"id"`
	WorkspaceID  string    `bun:"workspace_id"`
	LeadID       string    `bun:"lead_id"`
	BuyerUserID  string    `bun:"buyer_user_id"`
	CreditsSpent int64     `bun:"credits_spent"`
	CreatedAt    time.Time `bun:"created_at"`
}

const purchaseColumns = "p.id, p.workspace_id, p.lead_id, p.buyer_user_id, p.credits_spent, p.created_at"

// PurchaseByID returns the purchase with id, or nil when there is none. It does not check who
// asks: the caller decides whether the purchase's workspace may be shown (a bounce report checks
// membership of it).
func PurchaseByID(ctx context.Context, db bun.IDB, id string) (*PurchaseRecord, error) {
	var p PurchaseRecord
	err := db.NewRaw("SELECT "+purchaseColumns+" FROM lead_purchases AS p WHERE p.id = ?::uuid", id).Scan(ctx, &p)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("purchase %s: %w", id, err)
	}
	return &p, nil
}

// PurchasesOfLead returns the purchases of leadID made at since or later, in workspace id order:
// the order a refund of them all takes the workspaces' balances in, so that two such refunds
// cannot deadlock.
func PurchasesOfLead(ctx context.Context, db bun.IDB, leadID string, since time.Time) ([]PurchaseRecord, error) {
	var ps []PurchaseRecord
	err := db.NewRaw("SELECT "+purchaseColumns+` FROM lead_purchases AS p
		WHERE p.lead_id = ?::uuid AND p.created_at >= ? ORDER BY p.workspace_id`, leadID, since).Scan(ctx, &ps)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("purchases of lead %s: %w", leadID, err)
	}
	return ps, nil
}

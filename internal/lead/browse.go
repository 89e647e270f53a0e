package lead

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/internal/apperr"
)

// Orders of ListSellable.
const (
	OrderNewest    = "NEWEST"
	OrderPriceAsc  = "PRICE_ASC"
	OrderPriceDesc = "PRICE_DESC"
)

// Filter narrows a list of leads; every non-empty field must match.
type Filter struct {
	Industries           []string
	Countries            []string
	Seniorities          []string
	CompanySizes         []string
	TitleContains        string
	VerificationStatuses []string
	MinPriceCredits      *int
	MaxPriceCredits      *int
	CreatedAfter         *time.Time
	PartnerIDs           []string
}

// Viewer is whose purchases count as "mine", and so unmask contact data: one workspace, or every
// workspace of a user.
type Viewer struct {
	UserID      string
	WorkspaceID string
}

// Position is a keyset position: a list continues after the row with these sort values. Time is
// the lead's creation (OrderNewest) or the purchase's time (ListPurchased); Price the lead's price
// (OrderPriceAsc, OrderPriceDesc); ID the lead's id, or the purchase's for ListPurchased.
type Position struct {
	Time  time.Time
	Price int
	ID    string
}

// SellableQuery is one page request of ListSellable.
type SellableQuery struct {
	Viewer Viewer
	Filter Filter
	// Order is OrderNewest, OrderPriceAsc or OrderPriceDesc; there is no default.
	Order string
	// After is where the page starts; nil: at the beginning.
	After *Position
	// Limit is how many rows to return at most (a caller asks for one more than its page to learn
	// whether another follows).
	Limit int
}

// ListSellable returns up to q.Limit sellable leads in q.Order after q.After, masked for q.Viewer.
// It is one prepared statement, on db rather than a transaction (db.QueryPrepared), whose text
// matches the browse indexes' partial predicate. Errors: INVALID_INPUT for a bad filter or an
// unknown order.
func ListSellable(ctx context.Context, bdb *bun.DB, q SellableQuery) ([]Lead, error) {
	lq := visibleLeads(q.Viewer)
	lq.and(Sellable)
	if err := lq.filter(q.Filter); err != nil {
		return nil, err
	}
	after := q.After
	var orderBy string
	switch q.Order {
	case OrderNewest:
		if after != nil {
			lq.and("(l.created_at, l.id) < (?::timestamptz, ?::uuid)", after.Time, after.ID)
		}
		orderBy = "l.created_at DESC, l.id DESC"
	case OrderPriceAsc:
		if after != nil {
			lq.and("(l.price_credits, l.id) > (?::bigint, ?::uuid)", int64(after.Price), after.ID)
		}
		orderBy = "l.price_credits ASC, l.id ASC"
	case OrderPriceDesc:
		if after != nil {
			lq.and("(l.price_credits, l.id) < (?::bigint, ?::uuid)", int64(after.Price), after.ID)
		}
		orderBy = "l.price_credits DESC, l.id DESC"
	default:
		return nil, apperr.New(apperr.InvalidInput, "unknown order %q", q.Order)
	}
	// Room for the whole page: no regrowth while scanning.
	leads, err := lq.run(ctx, bdb, orderBy, q.Limit, make([]Lead, 0, q.Limit))
	if err != nil {
		return nil, fmt.Errorf("browse leads: %w", err)
	}
	return leads, nil
}

// ListPurchased returns up to limit leads that workspaceID bought, newest purchase first after
// after (the purchase's time and id; nil: from the newest), with contact data, PurchasedAt and
// PurchaseID. The caller checks that the workspace's data may be shown. Errors: INVALID_INPUT for
// a bad filter.
func ListPurchased(ctx context.Context, bdb *bun.DB, workspaceID string, f Filter, after *Position, limit int) ([]Lead, error) {
	q := purchasedLeads(workspaceID)
	if after != nil {
		q.and("(p.created_at, p.id) < (?::timestamptz, ?::uuid)", after.Time, after.ID)
	}
	if err := q.filter(f); err != nil {
		return nil, err
	}
	leads, err := q.run(ctx, bdb, "p.created_at DESC, p.id DESC", limit, make([]Lead, 0, limit))
	if err != nil {
		return nil, fmt.Errorf("leads of workspace %s: %w", workspaceID, err)
	}
	return leads, nil
}

// Visible returns the lead with id if v may see it: it is sellable, or one of v's workspaces bought
// it. It returns (nil, nil) otherwise, so a caller cannot tell a hidden lead from a missing one.
// Errors: INVALID_INPUT for a malformed id.
func Visible(ctx context.Context, bdb *bun.DB, v Viewer, id string) (*Lead, error) {
	if err := apperr.CheckID(id); err != nil {
		return nil, err
	}
	q := visibleLeads(v)
	q.and("l.id = ?::uuid", id)
	q.and("(" + Sellable + ") OR b.lead_id IS NOT NULL")
	leads, err := q.run(ctx, bdb, "", 0, nil)
	if err != nil {
		return nil, fmt.Errorf("lead %s: %w", id, err)
	}
	if len(leads) == 0 {
		return nil, nil
	}
	return &leads[0], nil
}

// ByIDs returns the leads with ids as v sees them (masked unless bought), whatever their status:
// it serves relations such as a purchase's lead. Unknown ids are left out. Errors: INVALID_INPUT
// for a malformed id.
func ByIDs(ctx context.Context, bdb *bun.DB, v Viewer, ids []string) ([]Lead, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	for _, id := range ids {
		if err := apperr.CheckID(id); err != nil {
			return nil, err
		}
	}
	q := visibleLeads(v)
	q.and("l.id = ANY(?::uuid[])", ids)
	leads, err := q.run(ctx, bdb, "", 0, make([]Lead, 0, len(ids)))
	if err != nil {
		return nil, fmt.Errorf("leads by ids: %w", err)
	}
	return leads, nil
}

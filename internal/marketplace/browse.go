// Package marketplace is where buyers find and buy leads: browsing with filters and keyset
// pagination, a workspace's bought leads, and the all-or-nothing purchase of a cart.
package marketplace

import (
	"context"

	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/internal/auth"
	"github.com/leadmarket/leadmarket/internal/db"
	"github.com/leadmarket/leadmarket/internal/lead"
	"github.com/leadmarket/leadmarket/internal/metrics"
	"github.com/leadmarket/leadmarket/internal/page"
	"github.com/leadmarket/leadmarket/internal/partner"
	"github.com/leadmarket/leadmarket/internal/workspace"
)

// Orders of a browse (lead's).
const (
	OrderNewest    = lead.OrderNewest
	OrderPriceAsc  = lead.OrderPriceAsc
	OrderPriceDesc = lead.OrderPriceDesc
)

// LeadPages are the page sizes of browsing and of a workspace's leads.
var LeadPages = page.Bounds{Default: 25, Max: 100}

// Filter narrows a browse; every non-empty field must match.
type Filter = lead.Filter

// BrowseParams is one page request of marketplaceLeads.
type BrowseParams struct {
	// Page is the page asked for, within LeadPages.
	Page   page.Args
	Filter Filter
	// Order is OrderNewest (default), OrderPriceAsc or OrderPriceDesc.
	Order string
	// WorkspaceID, when set, is the only workspace whose purchases unmask contact data; the
	// caller must be a member. Unset: any of the caller's workspaces.
	WorkspaceID string
	// Count asks for the filter's Total too (totalCount is selected): Browse returns it where
	// the page's own reads counted it (lead.SellableQuery.Count), and CountSellable otherwise.
	Count bool
}

// Page is one page of leads with the cursor after each.
type Page = page.Page[lead.Lead]

// Viewer is whose purchases count as "mine": one workspace, or every workspace of a user.
type Viewer = lead.Viewer

// Service runs the marketplace.
type Service struct {
	db         *bun.DB
	commission partner.Commission
	metrics    *metrics.Metrics
}

// Options configure a Service beyond its commission.
type Options struct {
	// Metrics counts the credits purchases spend (credits_spent_total). Default nil: not counted.
	Metrics *metrics.Metrics
}

// NewService returns a Service on db that accrues partner commissions with commission; opts, at
// most one, are its Options (none: the defaults).
func NewService(db *bun.DB, commission partner.Commission, opts ...Options) *Service {
	s := &Service{db: db, commission: commission}
	if len(opts) > 0 {
		s.metrics = opts[0].Metrics
	}
	return s
}

// reader is the database of the reads that tolerate a replica's lag: browse, lead lookups, a
// workspace's bought leads, and the counts beside them. In a query operation with a read
// database it is the replica, unless the caller's own write may not have reached it yet
// (db.Router); otherwise, and in every transaction, the primary. Access checks (workspace.RoleOf)
// read the primary, so that a member removed a moment ago is refused at once.
func (s *Service) reader(ctx context.Context) *bun.DB { return db.Reader(ctx, s.db) }

// ViewerFor returns the viewer for caller, checking membership of workspaceID when it is set.
// Errors: FORBIDDEN, INVALID_INPUT.
func (s *Service) ViewerFor(ctx context.Context, c *auth.Caller, workspaceID string) (Viewer, error) {
	if workspaceID != "" {
		if _, err := workspace.RoleOf(ctx, s.db, workspaceID, c.UserID); err != nil {
			return Viewer{}, err
		}
	}
	return Viewer{UserID: c.UserID, WorkspaceID: workspaceID}, nil
}

// Browse returns a page of sellable leads for v and, with p.Count, the filter's Total (nil
// without). Errors: INVALID_INPUT for a bad page size, cursor, order or filter.
func (s *Service) Browse(ctx context.Context, v Viewer, p BrowseParams) (Page, *Total, error) {
	if p.Order == "" {
		p.Order = OrderNewest
	}
	limit, after, err := page.Open(p.Page, LeadPages, cursorOf(p.Order))
	if err != nil {
		return Page{}, nil, err
	}
	leads, total, err := lead.ListSellable(ctx, s.reader(ctx), lead.SellableQuery{
		Viewer: v, Filter: p.Filter, Order: p.Order, After: position(after), Limit: limit + 1, Count: p.Count,
	})
	if err != nil {
		return Page{}, nil, err
	}
	if p.Count && total == nil {
		t, err := s.CountSellable(ctx, p.Filter)
		if err != nil {
			return Page{}, nil, err
		}
		total = &t
	}
	return page.New(leads, limit, func(l lead.Lead) any {
		return cursor{Order: p.Order, Time: l.CreatedAt, Price: l.PriceCredits, ID: l.ID}
	}), total, nil
}

// MyLeads returns the leads a workspace bought, newest purchase first, with contact data.
// Errors: FORBIDDEN for non-members, INVALID_INPUT.
func (s *Service) MyLeads(ctx context.Context, c *auth.Caller, workspaceID string, args page.Args, f Filter) (Page, error) {
	if _, err := workspace.RoleOf(ctx, s.db, workspaceID, c.UserID); err != nil {
		return Page{}, err
	}
	limit, cur, err := page.Open(args, LeadPages, cursorOf("PURCHASED"))
	if err != nil {
		return Page{}, err
	}
	leads, err := lead.ListPurchased(ctx, s.reader(ctx), workspaceID, f, position(cur), limit+1)
	if err != nil {
		return Page{}, err
	}
	return page.New(leads, limit, func(l lead.Lead) any {
		return cursor{Order: "PURCHASED", Time: l.PurchasedAt, ID: l.PurchaseID}
	}), nil
}

// Lead returns the lead with id if v may see it: it is sellable, or one of v's workspaces bought
// it. It returns (nil, nil) otherwise, so a caller cannot tell a hidden lead from a missing one.
func (s *Service) Lead(ctx context.Context, v Viewer, id string) (*lead.Lead, error) {
	return lead.Visible(ctx, s.reader(ctx), v, id)
}

// LeadsByIDs returns the leads with ids as v sees them (masked unless bought), whatever their
// status: it serves relations such as a purchase's lead. Unknown ids are left out.
func (s *Service) LeadsByIDs(ctx context.Context, v Viewer, ids []string) ([]lead.Lead, error) {
	return lead.ByIDs(ctx, s.reader(ctx), v, ids)
}

// position is c as lead's keyset position; nil (the first page) when c is.
func position(c *cursor) *lead.Position {
	if c == nil {
		return nil
	}
	return &lead.Position{Time: c.Time, Price: c.Price, ID: c.ID}
}

// Total is how many leads a list holds: exact up to lead.ExactCountLimit, an estimate above.
type Total = lead.Total

// Facets are the counts of each facet's values (lead.Facets).
type Facets = lead.Facets

// CountSellable returns how many sellable leads match f (lead.CountSellable: exact up to 10,000,
// an estimate above). Errors: INVALID_INPUT for a bad filter.
func (s *Service) CountSellable(ctx context.Context, f Filter) (Total, error) {
	return lead.CountSellable(ctx, s.reader(ctx), f)
}

// CountMyLeads returns how many leads workspaceID bought that match f, counted as CountSellable
// counts. Errors: FORBIDDEN for non-members, INVALID_INPUT.
func (s *Service) CountMyLeads(ctx context.Context, c *auth.Caller, workspaceID string, f Filter) (Total, error) {
	if _, err := workspace.RoleOf(ctx, s.db, workspaceID, c.UserID); err != nil {
		return Total{}, err
	}
	return lead.CountPurchased(ctx, s.reader(ctx), workspaceID, f)
}

// Facets returns, for f, how many sellable leads each value of each facet would give, each
// facet's counts under every filter but its own (lead.FacetsOf). Errors: INVALID_INPUT for a bad
// filter.
func (s *Service) Facets(ctx context.Context, f Filter) (Facets, error) {
	return lead.FacetsOf(ctx, s.reader(ctx), f)
}

// Package marketplace is where buyers find and buy leads: browsing with filters and keyset
// pagination, a workspace's bought leads, and the all-or-nothing purchase of a cart.
package marketplace

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/internal/apperr"
	"github.com/leadmarket/leadmarket/internal/auth"
	"github.com/leadmarket/leadmarket/internal/db"
	"github.com/leadmarket/leadmarket/internal/lead"
	"github.com/leadmarket/leadmarket/internal/partner"
	"github.com/leadmarket/leadmarket/internal/workspace"
)

// Orders of a browse.
const (
	OrderNewest    = "NEWEST"
	OrderPriceAsc  = "PRICE_ASC"
	OrderPriceDesc = "PRICE_DESC"
)

// Page sizes.
const (
	DefaultPageSize = 25
	MaxPageSize     = 100
)

// Filter narrows a browse; every non-empty field must match.
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

// BrowseParams is one page request of marketplaceLeads.
type BrowseParams struct {
	// First is the page size: DefaultPageSize when nil, at most MaxPageSize.
	First  *int
	After  string
	Filter Filter
	// Order is OrderNewest (default), OrderPriceAsc or OrderPriceDesc.
	Order string
	// WorkspaceID, when set, is the only workspace whose purchases unmask contact data; the
	// caller must be a member. Unset: any of the caller's workspaces.
	WorkspaceID string
}

// Page is one page of leads with the cursor after each.
type Page struct {
	Leads       []lead.Lead
	Cursors     []string
	HasNextPage bool
}

// Viewer is whose purchases count as "mine": one workspace, or every workspace of a user.
type Viewer struct {
	UserID      string
	WorkspaceID string
}

// Service runs the marketplace.
type Service struct {
	db         *bun.DB
	commission partner.Commission
}

// NewService returns a Service on db that accrues partner commissions with commission.
func NewService(db *bun.DB, commission partner.Commission) *Service {
	return &Service{db: db, commission: commission}
}

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

// Browse returns a page of sellable leads for v. Errors: INVALID_INPUT for a bad page size,
// cursor, order or filter.
func (s *Service) Browse(ctx context.Context, v Viewer, p BrowseParams) (Page, error) {
	limit, err := pageSize(p.First)
	if err != nil {
		return Page{}, err
	}
	if p.Order == "" {
		p.Order = OrderNewest
	}
	after, err := decodeCursor(p.After, p.Order)
	if err != nil {
		return Page{}, err
	}
	q := s.selectLeads(v).Where(lead.Sellable)
	if err := applyFilter(q, p.Filter); err != nil {
		return Page{}, err
	}
	switch p.Order {
	case OrderNewest:
		if after != nil {
			q.Where("(l.created_at, l.id) < (?, ?)", after.Time, after.ID)
		}
		q.OrderExpr("l.created_at DESC, l.id DESC")
	case OrderPriceAsc:
		if after != nil {
			q.Where("(l.price_credits, l.id) > (?, ?)", after.Price, after.ID)
		}
		q.OrderExpr("l.price_credits ASC, l.id ASC")
	case OrderPriceDesc:
		if after != nil {
			q.Where("(l.price_credits, l.id) < (?, ?)", after.Price, after.ID)
		}
		q.OrderExpr("l.price_credits DESC, l.id DESC")
	default:
		return Page{}, apperr.New(apperr.InvalidInput, "unknown order %q", p.Order)
	}
	leads := make([]lead.Lead, 0, limit+1) // room for the whole page: no regrowth while scanning
	if err := q.Limit(int64(limit+1)).Scan(ctx, &leads); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return Page{}, fmt.Errorf("browse leads: %w", err)
	}
	return paginate(leads, limit, func(l lead.Lead) cursor {
		return cursor{Order: p.Order, Time: l.CreatedAt, Price: l.PriceCredits, ID: l.ID}
	}), nil
}

// MyLeads returns the leads a workspace bought, newest purchase first, with contact data.
// Errors: FORBIDDEN for non-members, INVALID_INPUT.
func (s *Service) MyLeads(ctx context.Context, c *auth.Caller, workspaceID string, first *int, after string, f Filter) (Page, error) {
	if _, err := workspace.RoleOf(ctx, s.db, workspaceID, c.UserID); err != nil {
		return Page{}, err
	}
	limit, err := pageSize(first)
	if err != nil {
		return Page{}, err
	}
	cur, err := decodeCursor(after, "PURCHASED")
	if err != nil {
		return Page{}, err
	}
	q := s.db.NewSelect().TableExpr("lead_purchases AS p").
		Join("JOIN leads AS l ON l.id = p.lead_id").
		ColumnExpr(leadColumns).
		ColumnExpr("true AS contact_visible, l.email, l.phone, l.linkedin_url").
		ColumnExpr("p.created_at AS purchased_at, p.id AS purchase_id").
		Where("p.workspace_id = ?", workspaceID).
		OrderExpr("p.created_at DESC, p.id DESC")
	if cur != nil {
		q.Where("(p.created_at, p.id) < (?, ?)", cur.Time, cur.ID)
	}
	if err := applyFilter(q, f); err != nil {
		return Page{}, err
	}
	leads := make([]lead.Lead, 0, limit+1)
	if err := q.Limit(int64(limit+1)).Scan(ctx, &leads); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return Page{}, fmt.Errorf("leads of workspace %s: %w", workspaceID, err)
	}
	return paginate(leads, limit, func(l lead.Lead) cursor {
		return cursor{Order: "PURCHASED", Time: l.PurchasedAt, ID: l.PurchaseID}
	}), nil
}

// Lead returns the lead with id if v may see it: it is sellable, or one of v's workspaces bought
// it. It returns (nil, nil) otherwise, so a caller cannot tell a hidden lead from a missing one.
func (s *Service) Lead(ctx context.Context, v Viewer, id string) (*lead.Lead, error) {
	if err := apperr.CheckID(id); err != nil {
		return nil, err
	}
	var l lead.Lead
	err := s.selectLeads(v).Where("l.id = ?", id).Where("("+lead.Sellable+") OR b.lead_id IS NOT NULL").Scan(ctx, &l)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lead %s: %w", id, err)
	}
	return &l, nil
}

// LeadsByIDs returns the leads with ids as v sees them (masked unless bought), whatever their
// status: it serves relations such as a purchase's lead. Unknown ids are left out.
func (s *Service) LeadsByIDs(ctx context.Context, v Viewer, ids []string) ([]lead.Lead, error) {
	var leads []lead.Lead
	if len(ids) == 0 {
		return leads, nil
	}
	if err := s.selectLeads(v).Where("l.id IN (?)", bun.In(ids)).Scan(ctx, &leads); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("leads by ids: %w", err)
	}
	return leads, nil
}

const leadColumns = `l.id, l.partner_id, l.first_name, l.last_name, l.title, l.seniority, l.department,
	l.company_name, l.company_domain, l.company_size, l.industry, l.country, l.region, l.city, l.price_credits,
	l.max_buyers, l.buyers_count, l.verification_status, l.status, l.email_preview, l.phone_preview, l.created_at`

// selectLeads selects leads as v sees them: contact columns are blanked in SQL unless one of v's
// workspaces bought the lead, so unbought contact data never leaves the database.
func (s *Service) selectLeads(v Viewer) *bun.SelectQuery {
	bought := s.db.NewSelect().TableExpr("lead_purchases AS p").Column("p.lead_id").
		Where("p.lead_id = l.id").Limit(1)
	scopePurchases(bought, v)
	return s.db.NewSelect().TableExpr("leads AS l").
		Join("LEFT JOIN LATERAL (?) AS b ON true", bought).
		ColumnExpr(leadColumns).
		ColumnExpr(`b.lead_id IS NOT NULL AS contact_visible,
			CASE WHEN b.lead_id IS NOT NULL THEN l.email ELSE '' END AS email,
			CASE WHEN b.lead_id IS NOT NULL THEN l.phone_e164 ELSE '' END AS phone,
			CASE WHEN b.lead_id IS NOT NULL THEN l.linkedin_url ELSE '' END AS linkedin_url`)
}

func scopePurchases(q *bun.SelectQuery, v Viewer) {
	if v.WorkspaceID != "" {
		q.Where("p.workspace_id = ?", v.WorkspaceID)
	} else {
		q.Where("p.workspace_id IN (SELECT m.workspace_id FROM workspace_members AS m WHERE m.user_id = ?)", v.UserID)
	}
}

func applyFilter(q *bun.SelectQuery, f Filter) error {
	if len(f.Industries) > 0 {
		q.Where("l.industry IN (?)", bun.In(f.Industries))
	}
	if len(f.Countries) > 0 {
		upper := make([]string, len(f.Countries))
		for i, c := range f.Countries {
			upper[i] = strings.ToUpper(strings.TrimSpace(c))
		}
		q.Where("l.country IN (?)", bun.In(upper))
	}
	if len(f.Seniorities) > 0 {
		q.Where("l.seniority IN (?)", bun.In(f.Seniorities))
	}
	if len(f.CompanySizes) > 0 {
		q.Where("l.company_size IN (?)", bun.In(f.CompanySizes))
	}
	if t := strings.TrimSpace(f.TitleContains); t != "" {
		if len(t) > 100 {
			return apperr.New(apperr.InvalidInput, "titleContains has at most 100 characters")
		}
		q.Where("l.title ILIKE ?", "%"+likeEscaper.Replace(t)+"%")
	}
	if len(f.VerificationStatuses) > 0 {
		q.Where("l.verification_status IN (?)", bun.In(f.VerificationStatuses))
	}
	if f.MinPriceCredits != nil {
		q.Where("l.price_credits >= ?", *f.MinPriceCredits)
	}
	if f.MaxPriceCredits != nil {
		q.Where("l.price_credits <= ?", *f.MaxPriceCredits)
	}
	if f.MinPriceCredits != nil && f.MaxPriceCredits != nil && *f.MinPriceCredits > *f.MaxPriceCredits {
		return apperr.New(apperr.InvalidInput, "minPriceCredits is above maxPriceCredits")
	}
	if f.CreatedAfter != nil {
		q.Where("l.created_at > ?", *f.CreatedAfter)
	}
	if len(f.PartnerIDs) > 0 {
		for _, id := range f.PartnerIDs {
			if err := apperr.CheckID(id); err != nil {
				return err
			}
		}
		q.Where("l.partner_id IN (?)", bun.In(f.PartnerIDs))
	}
	return nil
}

var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

func pageSize(first *int) (int, error) {
	if first == nil {
		return DefaultPageSize, nil
	}
	if *first < 1 {
		return 0, apperr.New(apperr.InvalidInput, "first must be at least 1")
	}
	return min(*first, MaxPageSize), nil
}

func paginate(leads []lead.Lead, limit int, cursorOf func(lead.Lead) cursor) Page {
	var p Page
	p.Leads, p.Cursors, p.HasNextPage = db.Paginate(leads, limit, func(l lead.Lead) any { return cursorOf(l) })
	return p
}

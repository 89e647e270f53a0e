package pipeline

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/leadmarket/leadmarket/internal/apperr"
	"github.com/leadmarket/leadmarket/internal/auth"
	"github.com/leadmarket/leadmarket/internal/lead"
	"github.com/leadmarket/leadmarket/internal/page"
	"github.com/leadmarket/leadmarket/internal/user"
	"github.com/leadmarket/leadmarket/internal/workspace"
)

// Orders of a workspace's leads.
const (
	// OrderPurchasedNewest is the newest purchase first (the default).
	OrderPurchasedNewest = "PURCHASED_NEWEST"
	// OrderPurchasedOldest is the oldest purchase first.
	OrderPurchasedOldest = "PURCHASED_OLDEST"
	// OrderUpdatedNewest is the most recently changed first.
	OrderUpdatedNewest = "UPDATED_NEWEST"
)

// LeadPages are the page sizes of a workspace's leads.
var LeadPages = page.Bounds{Default: 50, Max: 200}

// ListParams is one page request of a workspace's leads.
type ListParams struct {
	WorkspaceID string
	// Page is the page asked for, within LeadPages.
	Page   page.Args
	Filter Filter
	// Order is one of the Order constants; empty means OrderPurchasedNewest.
	Order string
}

// Position is the keyset position after a row in an order: the row's time in that order (the
// purchase's, or its last change's) and its id. Clients see it only as page's opaque cursor.
type Position struct {
	Order string    `json:"o"`
	Time  time.Time `json:"t"`
	ID    string    `json:"i"`
}

// positionOf returns w's position in order.
func positionOf(order string, w WorkspaceLead) Position {
	p := Position{Order: order, Time: w.PurchasedAt, ID: w.ID}
	if order == OrderUpdatedNewest {
		p.Time = w.UpdatedAt
	}
	return p
}

// List returns a page of the workspace's leads that p.Filter matches, in p.Order, each with its
// lead (full contact data). Members of the workspace only. Errors: FORBIDDEN, INVALID_INPUT for a
// bad page, cursor, order or filter.
func (s *Service) List(ctx context.Context, c *auth.Caller, p ListParams) (page.Page[WorkspaceLead], error) {
	if _, err := workspace.RoleOf(ctx, s.db, p.WorkspaceID, c.UserID); err != nil {
		return page.Page[WorkspaceLead]{}, err
	}
	if p.Order == "" {
		p.Order = OrderPurchasedNewest
	}
	if _, _, err := orderBy(p.Order); err != nil {
		return page.Page[WorkspaceLead]{}, err
	}
	limit, after, err := page.Open(p.Page, LeadPages, func(pos Position) bool {
		return pos.Order == p.Order && apperr.CheckID(pos.ID) == nil && apperr.CheckTime("after", pos.Time) == nil
	})
	if err != nil {
		return page.Page[WorkspaceLead]{}, err
	}
	f, err := p.Filter.check()
	if err != nil {
		return page.Page[WorkspaceLead]{}, err
	}
	rows, err := s.Read(ctx, p.WorkspaceID, Selection{Filter: &f}, p.Order, after, limit+1)
	if err != nil {
		return page.Page[WorkspaceLead]{}, err
	}
	return page.New(rows, limit, func(w WorkspaceLead) any { return positionOf(p.Order, w) }), nil
}

// orderBy returns the ORDER BY of order and the keyset condition of a position in it.
// Errors: INVALID_INPUT for an unknown order.
func orderBy(order string) (by, after string, err error) {
	switch order {
	case OrderPurchasedNewest:
		return "w.purchased_at DESC, w.id DESC", "(w.purchased_at, w.id) < (?::timestamptz, ?::uuid)", nil
	case OrderPurchasedOldest:
		return "w.purchased_at ASC, w.id ASC", "(w.purchased_at, w.id) > (?::timestamptz, ?::uuid)", nil
	case OrderUpdatedNewest:
		return "w.updated_at DESC, w.id DESC", "(w.updated_at, w.id) < (?::timestamptz, ?::uuid)", nil
	}
	return "", "", apperr.New(apperr.InvalidInput, "unknown order %q", order)
}

// workspaceLeadColumns are the columns of WorkspaceLead, on alias w.
const workspaceLeadColumns = `w.id, w.workspace_id, w.lead_id, w.credits_spent, w.purchased_at, w.status,
	w.assignee_user_id, w.tags, w.deleted_at, w.updated_at`

// Read returns up to limit leads of workspaceID that sel selects, in order after the position
// after (nil: from the start), each with its lead: two statements for any limit. It checks no
// access — List and an export's creation did — so it serves the export job too.
// Errors: INVALID_INPUT for a bad selection or order.
func (s *Service) Read(ctx context.Context, workspaceID string, sel Selection, order string, after *Position, limit int) ([]WorkspaceLead, error) {
	sel, err := sel.check(false)
	if err != nil {
		return nil, err
	}
	by, afterCond, err := orderBy(order)
	if err != nil {
		return nil, err
	}
	keyset := bun.SafeQuery("true")
	if after != nil {
		keyset = bun.SafeQuery(afterCond, after.Time, after.ID)
	}
	rows := make([]WorkspaceLead, 0, limit)
	if err := s.db.NewRaw("SELECT "+workspaceLeadColumns+"\nFROM workspace_leads AS w WHERE w.workspace_id = ?::uuid AND ? AND ?"+
		"\nORDER BY "+by+" LIMIT "+strconv.Itoa(limit), workspaceID, sel.where(), keyset).Scan(ctx, &rows); err != nil {
		return nil, fmt.Errorf("leads of workspace %s: %w", workspaceID, err)
	}
	if len(rows) == 0 {
		return rows, nil
	}
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.LeadID
	}
	leads, err := lead.PurchasedByIDs(ctx, s.db, workspaceID, ids)
	if err != nil {
		return nil, err
	}
	byID := make(map[string]lead.Lead, len(leads))
	for _, l := range leads {
		byID[l.ID] = l
	}
	for i := range rows {
		l, ok := byID[rows[i].LeadID]
		if !ok {
			return nil, fmt.Errorf("workspace lead %s: lead %s is not one the workspace bought", rows[i].ID, rows[i].LeadID)
		}
		rows[i].Lead = l
	}
	return rows, nil
}

// Count returns how many leads of workspaceID sel selects. It checks no access, like Read.
// Errors: INVALID_INPUT for a bad selection.
func (s *Service) Count(ctx context.Context, workspaceID string, sel Selection) (int, error) {
	sel, err := sel.check(false)
	if err != nil {
		return 0, err
	}
	var n int
	if err := s.db.NewRaw("SELECT count(*) FROM workspace_leads AS w WHERE w.workspace_id = ?::uuid AND ?",
		workspaceID, sel.where()).Scan(ctx, &n); err != nil {
		return 0, fmt.Errorf("count leads of workspace %s: %w", workspaceID, err)
	}
	return n, nil
}

// CheckSelection validates a selection for an export of workspaceID's leads: ids or a filter or
// neither (the whole list), never both. It returns it in the form Read and Count take.
// Errors: INVALID_INPUT.
func CheckSelection(sel Selection) (Selection, error) { return sel.check(false) }

// Users returns the users with ids, in no particular order (unknown ids are left out): the batch
// behind the assignee loader.
func (s *Service) Users(ctx context.Context, ids []string) ([]user.User, error) {
	return user.ByIDs(ctx, s.db, ids)
}

// Purchase is a lead purchase as its workspace lead starts from.
type Purchase struct {
	ID           string
	WorkspaceID  string
	LeadID       string
	CreditsSpent int64
	PurchasedAt  time.Time
}

// AddPurchases puts the leads of purchases on their workspaces' lists, at NEW and unassigned, in
// one statement; call it in the purchases' transaction.
func AddPurchases(ctx context.Context, tx bun.IDB, purchases []Purchase) error {
	if len(purchases) == 0 {
		return nil
	}
	n := len(purchases)
	ids, wss, leads := make([]string, n), make([]string, n), make([]string, n)
	credits, times := make([]int64, n), make([]time.Time, n)
	for i, p := range purchases {
		ids[i], wss[i], leads[i], credits[i], times[i] = p.ID, p.WorkspaceID, p.LeadID, p.CreditsSpent, p.PurchasedAt
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO workspace_leads (id, workspace_id, lead_id, credits_spent, purchased_at, updated_at)
		SELECT p.id, p.workspace_id, p.lead_id, p.credits_spent, p.purchased_at, p.purchased_at
		FROM unnest(?::uuid[], ?::uuid[], ?::uuid[], ?::integer[], ?::timestamptz[]) AS p(id, workspace_id, lead_id, credits_spent, purchased_at)`,
		pgdialect.Array(ids), pgdialect.Array(wss), pgdialect.Array(leads), pgdialect.Array(credits), pgdialect.Array(times)); err != nil {
		return fmt.Errorf("add purchases to the pipeline: %w", err)
	}
	return nil
}

// PositionOf returns w's keyset position in order, the after of the rows that follow it.
func PositionOf(order string, w WorkspaceLead) Position { return positionOf(order, w) }

package pipeline

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/leadmarket/leadmarket/internal/apperr"
	"github.com/leadmarket/leadmarket/internal/auth"
	"github.com/leadmarket/leadmarket/internal/db"
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

// orderBy returns the ORDER BY of order and the keyset condition of a position in it, on its two
// placeholders. Errors: INVALID_INPUT for an unknown order.
func orderBy(order string) (by string, after func(t, id string) string, err error) {
	switch order {
	case OrderPurchasedNewest:
		return "w.purchased_at DESC, w.id DESC", func(t, id string) string {
			return "(w.purchased_at, w.id) < (" + t + "::timestamptz, " + id + "::uuid)"
		}, nil
	case OrderPurchasedOldest:
		return "w.purchased_at ASC, w.id ASC", func(t, id string) string {
			return "(w.purchased_at, w.id) > (" + t + "::timestamptz, " + id + "::uuid)"
		}, nil
	case OrderUpdatedNewest:
		return "w.updated_at DESC, w.id DESC", func(t, id string) string {
			return "(w.updated_at, w.id) < (" + t + "::timestamptz, " + id + "::uuid)"
		}, nil
	}
	return "", nil, apperr.New(apperr.InvalidInput, "unknown order %q", order)
}

// workspaceLeadColumns are the columns of WorkspaceLead, on alias w, in the order scan reads them.
const workspaceLeadColumns = `w.id, w.workspace_id, w.lead_id, w.credits_spent, w.purchased_at, w.status,
	w.assignee_user_id, w.tags, w.deleted_at, w.updated_at`

// readSQL is the one statement that reads a workspace's leads with their leads: sel's rows of
// workspaceID in order after the position after, at most limit (0: all), joined with the leads the
// workspace bought (lead.JoinPurchased). Its text depends only on the shape of the request, so it
// runs as a prepared statement.
func readSQL(workspaceID string, sel Selection, order string, after *Position, limit int) (string, []any, error) {
	sel, err := sel.check(false)
	if err != nil {
		return "", nil, err
	}
	by, afterCond, err := orderBy(order)
	if err != nil {
		return "", nil, err
	}
	a := &sqlArgs{dollar: true}
	j := lead.JoinPurchased("w.lead_id", "w.workspace_id")
	var b strings.Builder
	b.WriteString("SELECT " + workspaceLeadColumns + ",\n\t" + j.Columns + "\nFROM workspace_leads AS w\n\t" + j.Joins)
	b.WriteString("\nWHERE w.workspace_id = " + a.add(workspaceID) + "::uuid AND " + sel.cond(a))
	if after != nil {
		b.WriteString(" AND " + afterCond(a.add(after.Time), a.add(after.ID)))
	}
	b.WriteString("\nORDER BY " + by)
	if limit > 0 {
		// In the text, not a parameter: the planner sees a page's size and walks the list's index.
		b.WriteString("\nLIMIT " + strconv.Itoa(limit))
	}
	return b.String(), a.args, nil
}

// scanRow reads one row of readSQL into w.
func scanRow(rows pgx.Rows, w *WorkspaceLead) error {
	var assignee *string
	dest := append([]any{&w.ID, &w.WorkspaceID, &w.LeadID, &w.CreditsSpent, &w.PurchasedAt, &w.Status, &assignee,
		&w.Tags, &w.DeletedAt, &w.UpdatedAt}, w.Lead.PurchasedDest()...)
	if err := rows.Scan(dest...); err != nil {
		return err
	}
	w.AssigneeUserID = ""
	if assignee != nil {
		w.AssigneeUserID = *assignee
	}
	if w.Tags == nil {
		w.Tags = []string{}
	}
	return nil
}

// Read returns up to limit leads of workspaceID that sel selects, in order after the position
// after (nil: from the start), each with its lead: one statement for any limit. It checks no
// access — List and an export's creation did. Errors: INVALID_INPUT for a bad selection or order.
func (s *Service) Read(ctx context.Context, workspaceID string, sel Selection, order string, after *Position, limit int) ([]WorkspaceLead, error) {
	query, args, err := readSQL(workspaceID, sel, order, after, limit)
	if err != nil {
		return nil, err
	}
	rows := make([]WorkspaceLead, 0, limit)
	err = db.QueryPrepared(ctx, s.db, query, args, func(r pgx.Rows) error {
		for r.Next() {
			var w WorkspaceLead
			if err := scanRow(r, &w); err != nil {
				return err
			}
			rows = append(rows, w)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("leads of workspace %s: %w", workspaceID, err)
	}
	return rows, nil
}

// Stream calls fn with each lead of workspaceID that sel selects, in order after the position
// after (nil: from the start), each with its lead, read by one statement as it arrives — as a
// COPY would read them, with PostgreSQL's plan for the whole list rather than a lookup per lead.
// fn's w, its tags included, is only valid until fn returns: the next row reuses it. An error from
// fn stops the stream and is returned. It checks
// no access, like Read. It holds a connection until it returns: fn must not wait for one of the
// same *bun.DB's connections that only it could free.
func (s *Service) Stream(ctx context.Context, workspaceID string, sel Selection, order string, after *Position,
	fn func(w *WorkspaceLead) error,
) error {
	query, args, err := readSQL(workspaceID, sel, order, after, 0)
	if err != nil {
		return err
	}
	return db.QueryPrepared(ctx, s.db, query, args, func(r pgx.Rows) error {
		var w WorkspaceLead
		for r.Next() {
			w = WorkspaceLead{Tags: w.Tags[:0]} // scanning may reuse the tags' array
			if err := scanRow(r, &w); err != nil {
				return fmt.Errorf("leads of workspace %s: %w", workspaceID, err)
			}
			if err := fn(&w); err != nil {
				return err
			}
		}
		return nil
	})
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

// AssigneeIDs returns the distinct users workspaceID's leads are assigned to, for a reader of the
// whole list that shows them (an export) and looks them up once.
func (s *Service) AssigneeIDs(ctx context.Context, workspaceID string) ([]string, error) {
	var ids []string
	if err := s.db.NewRaw(`SELECT DISTINCT w.assignee_user_id::text FROM workspace_leads AS w
		WHERE w.workspace_id = ?::uuid AND w.assignee_user_id IS NOT NULL`, workspaceID).Scan(ctx, &ids); err != nil {
		return nil, fmt.Errorf("assignees of workspace %s: %w", workspaceID, err)
	}
	return ids, nil
}

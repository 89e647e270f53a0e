package export

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/internal/apperr"
	"github.com/leadmarket/leadmarket/internal/audit"
	"github.com/leadmarket/leadmarket/internal/auth"
	"github.com/leadmarket/leadmarket/internal/page"
	"github.com/leadmarket/leadmarket/internal/pipeline"
	"github.com/leadmarket/leadmarket/internal/reqinfo"
	"github.com/leadmarket/leadmarket/internal/workspace"
)

// LeadsInput asks for an export of a workspace's leads: those of Selection's ids, those its filter
// matches, or (neither) the whole list; Columns in their order (none: DefaultLeadColumns).
type LeadsInput struct {
	WorkspaceID string
	pipeline.Selection
	Columns []string
}

// params is an export's request as its job reads it.
type params struct {
	// Selection and Columns are a workspace leads export's.
	Selection *pipeline.Selection `json:"selection,omitempty"`
	Columns   []string            `json:"columns,omitempty"`
	// AuditFilter is an audit log export's.
	AuditFilter *audit.Filter `json:"auditFilter,omitempty"`
	// RequestedFrom is where the request came from, for the EXPORT audit entry the job writes.
	RequestedFrom reqinfo.Info `json:"requestedFrom"`
}

// ExportWorkspaceLeads queues an export of a workspace's leads with full contact data. Members of
// the workspace. Errors: FORBIDDEN, INVALID_INPUT (both ids and a filter, too many ids, a bad
// filter, an unknown column).
func (s *Service) ExportWorkspaceLeads(ctx context.Context, c *auth.Caller, in LeadsInput) (*Export, error) {
	sel, err := pipeline.CheckSelection(in.Selection)
	if err != nil {
		return nil, err
	}
	cols, err := checkColumns(in.Columns)
	if err != nil {
		return nil, err
	}
	return s.create(ctx, KindWorkspaceLeads, in.WorkspaceID, c, params{Selection: &sel, Columns: cols},
		func(ctx context.Context, tx bun.Tx) error {
			_, err := workspace.RoleOf(ctx, tx, in.WorkspaceID, c.UserID)
			return err
		})
}

// ExportAuditLogs queues an export of the audit entries f matches, newest first, under the audit
// log's own access rule (audit.Service.CheckAccess): platform admins any, workspace owners and
// admins their workspace's (f.WorkspaceID). Errors: FORBIDDEN, INVALID_INPUT.
func (s *Service) ExportAuditLogs(ctx context.Context, c *auth.Caller, f audit.Filter) (*Export, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	if err := s.audit.CheckAccess(ctx, c, f); err != nil {
		return nil, err
	}
	return s.create(ctx, KindAuditLogs, f.WorkspaceID, c, params{AuditFilter: &f}, nil)
}

// create stores an export and queues its job in one transaction, after check (nil: none).
func (s *Service) create(ctx context.Context, kind, workspaceID string, c *auth.Caller, p params,
	check func(ctx context.Context, tx bun.Tx) error,
) (*Export, error) {
	p.RequestedFrom = reqinfo.From(ctx)
	now := time.Now().UTC()
	name := strings.ToLower(strings.ReplaceAll(kind, "_", "-")) + "-" + now.Format("20060102-150405") + ".csv"
	pj, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("export %s: %w", strings.ToLower(kind), err)
	}
	var e Export
	err = s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if check != nil {
			if err := check(ctx, tx); err != nil {
				return err
			}
		}
		var ws any // SQL NULL: a platform-wide audit log export
		if workspaceID != "" {
			ws = workspaceID
		}
		if err := tx.NewRaw(`INSERT INTO exports (kind, workspace_id, created_by, params, file_name, expires_at)
			VALUES (?, ?::uuid, ?, ?::jsonb, ?, now() + ?::interval)
			RETURNING `+exportColumns, kind, ws, c.UserID, string(pj), name,
			fmt.Sprintf("%d seconds", int64(s.opts.Retention.Seconds()))).Scan(ctx, &e); err != nil {
			return fmt.Errorf("store export: %w", err)
		}
		_, err := s.queue.InsertTx(ctx, tx, Args{ExportID: e.ID}, nil)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("export %s: %w", strings.ToLower(kind), err)
	}
	return &e, nil
}

// exportColumns are the columns of Export.
const exportColumns = `id, kind, coalesce(workspace_id::text, '') AS workspace_id, created_by, file_name, status, rows_total,
	rows_done, bytes, coalesce(error_code, '') AS error_code, created_at, completed_at, expires_at`

// Get returns the export with id if c may see it, else nil: its creator (while still a member of
// its workspace), the owners and admins of its workspace, and platform-admin access.
// Errors: INVALID_INPUT for a malformed id.
func (s *Service) Get(ctx context.Context, c *auth.Caller, id string) (*Export, error) {
	e, allowed, err := s.visible(ctx, c, id)
	if err != nil || !allowed {
		return nil, err
	}
	return e, nil
}

// visible returns the export with id (nil if there is none) and whether c may see it.
func (s *Service) visible(ctx context.Context, c *auth.Caller, id string) (*Export, bool, error) {
	if err := apperr.CheckID(id); err != nil {
		return nil, false, err
	}
	var e Export
	err := s.db.NewRaw("SELECT "+exportColumns+" FROM exports WHERE id = ?", id).Scan(ctx, &e)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("export %s: %w", id, err)
	}
	if c.AdminAccess() == nil {
		return &e, true, nil
	}
	if c == nil {
		return &e, false, nil
	}
	if e.WorkspaceID == "" {
		return &e, e.CreatedBy == c.UserID, nil
	}
	role, err := workspace.RoleOf(ctx, s.db, e.WorkspaceID, c.UserID)
	if apperr.Is(err, apperr.Forbidden) {
		return &e, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return &e, e.CreatedBy == c.UserID || role == workspace.RoleOwner || role == workspace.RoleAdmin, nil
}

// ExportPages are the page sizes of a list of exports.
var ExportPages = page.Bounds{Default: 25, Max: 100}

// List returns a page of the exports c may see, newest first: those it created, of workspaceID
// only when that is set (c must be a member); every export of workspaceID for its owners and
// admins; everyone's (of workspaceID when set) with platform-admin access.
// Errors: FORBIDDEN, INVALID_INPUT.
func (s *Service) List(ctx context.Context, c *auth.Caller, workspaceID string, args page.Args) (page.Page[Export], error) {
	all := c.AdminAccess() == nil
	if workspaceID != "" && !all {
		role, err := workspace.RoleOf(ctx, s.db, workspaceID, c.UserID)
		if err != nil {
			return page.Page[Export]{}, err
		}
		all = role == workspace.RoleOwner || role == workspace.RoleAdmin
	}
	limit, after, err := page.Open(args, ExportPages, func(p page.TimeID) bool { return apperr.CheckID(p.I) == nil && p.ValidTime() })
	if err != nil {
		return page.Page[Export]{}, err
	}
	q := s.db.NewSelect().TableExpr("exports").ColumnExpr(exportColumns).
		OrderExpr("created_at DESC, id DESC").Limit(int64(limit + 1))
	if !all {
		q.Where("created_by = ?", c.UserID)
	}
	if workspaceID != "" {
		q.Where("workspace_id = ?", workspaceID)
	}
	if after != nil {
		q.Where("(created_at, id) < (?, ?)", after.T, after.I)
	}
	var es []Export
	if err := q.Scan(ctx, &es); err != nil {
		return page.Page[Export]{}, fmt.Errorf("exports: %w", err)
	}
	return page.New(es, limit, func(e Export) any { return page.TimeID{T: e.CreatedAt, I: e.ID} }), nil
}

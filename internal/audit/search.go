package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/internal/apperr"
	"github.com/leadmarket/leadmarket/internal/auth"
	"github.com/leadmarket/leadmarket/internal/db"
	"github.com/leadmarket/leadmarket/internal/page"
)

// Log is an audit entry as stored: Record writes one, Search reads them. Empty ids and nil
// values are SQL NULL.
type Log struct {
	bun.BaseModel `bun:"table:audit_logs"`

	ID           string          `bun:"id,scanonly"`
	OccurredAt   time.Time       `bun:"occurred_at,scanonly"`
	ActorUserID  string          `bun:"actor_user_id,nullzero"`
	ActorType    string          `bun:"actor_type"`
	WorkspaceID  string          `bun:"workspace_id,nullzero"`
	Action       string          `bun:"action"`
	ResourceType string          `bun:"resource_type"`
	ResourceID   string          `bun:"resource_id"`
	OldValues    json.RawMessage `bun:"old_values,type:jsonb,nullzero"`
	NewValues    json.RawMessage `bun:"new_values,type:jsonb,nullzero"`
	Metadata     json.RawMessage `bun:"metadata,type:jsonb,nullzero"`
	Severity     string          `bun:"severity"`
	IP           string          `bun:"ip"`
	UserAgent    string          `bun:"user_agent"`
	RequestID    string          `bun:"request_id"`
	Operation    string          `bun:"operation"`
}

// Filter narrows a search of the audit log.
type Filter struct {
	WorkspaceID    string
	ActorUserID    string
	Action         string
	ResourceType   string
	ResourceID     string
	Severity       string
	OccurredAfter  *time.Time
	OccurredBefore *time.Time
}

// Service searches the audit log with access checks.
type Service struct {
	db *bun.DB
	// requireRole is the workspaces' own membership check.
	requireRole RoleCheck
}

// RoleCheck returns nil when userID holds one of roles in workspaceID, FORBIDDEN when not (or when
// the workspace does not exist), INVALID_INPUT for a malformed id. The workspace package, which
// writes audit entries and so cannot be imported here, provides it.
type RoleCheck func(ctx context.Context, workspaceID, userID string, roles ...string) error

// NewService returns a Service on db whose workspace-scoped searches ask requireRole.
func NewService(db *bun.DB, requireRole RoleCheck) *Service {
	return &Service{db: db, requireRole: requireRole}
}

// LogPages are the page sizes of an audit log search.
var LogPages = page.Bounds{Default: 50, Max: 200}

// Search returns a page of the entries matching f, newest first. Platform admins (with an aal2
// session unless MFA is optional) see every entry; workspace owners and admins only their
// workspace's, and must name it in f.WorkspaceID. Errors: FORBIDDEN, INVALID_INPUT.
func (s *Service) Search(ctx context.Context, c *auth.Caller, f Filter, args page.Args) (page.Page[Log], error) {
	if err := s.CheckAccess(ctx, c, f); err != nil {
		return page.Page[Log]{}, err
	}
	limit, after, err := page.Open(args, LogPages, func(p page.TimeID) bool { return apperr.CheckID(p.I) == nil && p.ValidTime() })
	if err != nil {
		return page.Page[Log]{}, err
	}
	// A search may lag the log by a replica's delay (db.Reader): what the admin did just now is
	// read from the primary.
	logs, err := List(ctx, db.Reader(ctx, s.db), f, after, limit+1)
	if err != nil {
		return page.Page[Log]{}, err
	}
	return page.New(logs, limit, func(l Log) any { return page.TimeID{T: l.OccurredAt, I: l.ID} }), nil
}

// CheckAccess returns nil when c may read the entries f asks for, Search's rule: platform admins
// (with an aal2 session unless MFA is optional) any; workspace owners and admins their
// workspace's, named in f.WorkspaceID. An export of the audit log is allowed by the same rule.
// Errors: FORBIDDEN, INVALID_INPUT.
func (s *Service) CheckAccess(ctx context.Context, c *auth.Caller, f Filter) error {
	return c.MemberOrAdmin(func() error {
		if f.WorkspaceID == "" {
			return apperr.New(apperr.Forbidden, "name the workspace whose audit log you want (filter.workspaceId)")
		}
		return s.requireRole(ctx, f.WorkspaceID, c.UserID, "OWNER", "ADMIN")
	})
}

// Validate refuses a filter whose ids or times cannot reach SQL. Errors: INVALID_INPUT.
func (f Filter) Validate() error {
	for _, id := range []string{f.WorkspaceID, f.ActorUserID} {
		if id != "" {
			if err := apperr.CheckID(id); err != nil {
				return err
			}
		}
	}
	for _, t := range []struct {
		name string
		at   *time.Time
	}{{"occurredAfter", f.OccurredAfter}, {"occurredBefore", f.OccurredBefore}} {
		if t.at != nil {
			if err := apperr.CheckTime(t.name, *t.at); err != nil {
				return err
			}
		}
	}
	return nil
}

// List returns up to limit entries matching f, newest first, after the position after (nil: from
// the newest). It checks no access (CheckAccess does): Search pages through it, and an audit log
// export streams the whole of a filter through it, chunk after chunk, each in one statement.
// Errors: INVALID_INPUT for a bad filter.
func List(ctx context.Context, db bun.IDB, f Filter, after *page.TimeID, limit int) ([]Log, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	q := f.where(db.NewSelect().TableExpr("audit_logs").
		Column("id", "occurred_at", "actor_user_id", "actor_type", "workspace_id", "action", "resource_type",
			"resource_id", "old_values", "new_values", "metadata", "severity", "ip", "user_agent", "request_id", "operation").
		OrderExpr("occurred_at DESC, id DESC").Limit(int64(limit)))
	if after != nil {
		q.Where("(occurred_at, id) < (?, ?)", after.T, after.I)
	}
	logs := make([]Log, 0, limit)
	if err := q.Scan(ctx, &logs); err != nil {
		return nil, fmt.Errorf("search audit log: %w", err)
	}
	return logs, nil
}

// Count returns how many entries match f; like List, it checks no access.
// Errors: INVALID_INPUT for a bad filter.
func Count(ctx context.Context, db bun.IDB, f Filter) (int, error) {
	if err := f.Validate(); err != nil {
		return 0, err
	}
	var n int
	if err := f.where(db.NewSelect().TableExpr("audit_logs").ColumnExpr("count(*)")).Scan(ctx, &n); err != nil {
		return 0, fmt.Errorf("count audit log: %w", err)
	}
	return n, nil
}

// where adds f's conditions to q.
func (f Filter) where(q *bun.SelectQuery) *bun.SelectQuery {
	for _, w := range []struct {
		col, val string
	}{{"workspace_id", f.WorkspaceID}, {"actor_user_id", f.ActorUserID}, {"action", f.Action},
		{"resource_type", f.ResourceType}, {"resource_id", f.ResourceID}, {"severity", f.Severity}} {
		if w.val != "" {
			q.Where("? = ?", bun.Ident(w.col), w.val)
		}
	}
	if f.OccurredAfter != nil {
		q.Where("occurred_at > ?", *f.OccurredAfter)
	}
	if f.OccurredBefore != nil {
		q.Where("occurred_at < ?", *f.OccurredBefore)
	}
	return q
}

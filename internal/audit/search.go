package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/internal/apperr"
	"github.com/leadmarket/leadmarket/internal/auth"
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
	if err := c.MemberOrAdmin(func() error {
		if f.WorkspaceID == "" {
			return apperr.New(apperr.Forbidden, "name the workspace whose audit log you want (filter.workspaceId)")
		}
		return s.requireRole(ctx, f.WorkspaceID, c.UserID, "OWNER", "ADMIN")
	}); err != nil {
		return page.Page[Log]{}, err
	}
	limit, after, err := page.Open(args, LogPages, func(p page.TimeID) bool { return apperr.CheckID(p.I) == nil && p.ValidTime() })
	if err != nil {
		return page.Page[Log]{}, err
	}
	q := s.db.NewSelect().TableExpr("audit_logs").
		Column("id", "occurred_at", "actor_user_id", "actor_type", "workspace_id", "action", "resource_type",
			"resource_id", "old_values", "new_values", "metadata", "severity", "ip", "user_agent", "request_id", "operation").
		OrderExpr("occurred_at DESC, id DESC").Limit(int64(limit + 1))
	for _, w := range []struct {
		col, val string
	}{{"workspace_id", f.WorkspaceID}, {"actor_user_id", f.ActorUserID}, {"action", f.Action},
		{"resource_type", f.ResourceType}, {"resource_id", f.ResourceID}, {"severity", f.Severity}} {
		if w.val == "" {
			continue
		}
		if w.col == "workspace_id" || w.col == "actor_user_id" {
			if err := apperr.CheckID(w.val); err != nil {
				return page.Page[Log]{}, err
			}
		}
		q.Where("? = ?", bun.Ident(w.col), w.val)
	}
	for _, t := range []struct {
		name, cond string
		at         *time.Time
	}{{"occurredAfter", "occurred_at > ?", f.OccurredAfter}, {"occurredBefore", "occurred_at < ?", f.OccurredBefore}} {
		if t.at == nil {
			continue
		}
		if err := apperr.CheckTime(t.name, *t.at); err != nil {
			return page.Page[Log]{}, err
		}
		q.Where(t.cond, *t.at)
	}
	if after != nil {
		q.Where("(occurred_at, id) < (?, ?)", after.T, after.I)
	}
	var logs []Log
	if err := q.Scan(ctx, &logs); err != nil {
		return page.Page[Log]{}, fmt.Errorf("search audit log: %w", err)
	}
	return page.New(logs, limit, func(l Log) any { return page.TimeID{T: l.OccurredAt, I: l.ID} }), nil
}

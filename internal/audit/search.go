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
)

// Log is an audit entry as read back.
type Log struct {
	ID           string          `bun:"id"`
	OccurredAt   time.Time       `bun:"occurred_at"`
	ActorUserID  *string         `bun:"actor_user_id"`
	ActorType    string          `bun:"actor_type"`
	WorkspaceID  *string         `bun:"workspace_id"`
	Action       string          `bun:"action"`
	ResourceType string          `bun:"resource_type"`
	ResourceID   string          `bun:"resource_id"`
	OldValues    json.RawMessage `bun:"old_values"`
	NewValues    json.RawMessage `bun:"new_values"`
	Metadata     json.RawMessage `bun:"metadata"`
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
	// requireMFA is ADMIN_REQUIRE_MFA, for platform admins' unrestricted searches.
	requireMFA bool
	// requireRole is the workspaces' own membership check.
	requireRole RoleCheck
}

// RoleCheck returns nil when userID holds one of roles in workspaceID, FORBIDDEN when not (or when
// the workspace does not exist), INVALID_INPUT for a malformed id. The workspace package, which
// writes audit entries and so cannot be imported here, provides it.
type RoleCheck func(ctx context.Context, workspaceID, userID string, roles ...string) error

// NewService returns a Service on db whose workspace-scoped searches ask requireRole.
func NewService(db *bun.DB, requireMFA bool, requireRole RoleCheck) *Service {
	return &Service{db: db, requireMFA: requireMFA, requireRole: requireRole}
}

type logCursor struct {
	T time.Time `json:"t"`
	I string    `json:"i"`
}

// Search returns up to first entries (at most 200) matching f after the cursor after, newest
// first, and whether more follow. Platform admins (with an aal2 session when ADMIN_REQUIRE_MFA) see
// every entry; workspace owners and admins only their workspace's, and must name it in
// f.WorkspaceID. Errors: FORBIDDEN, INVALID_INPUT.
func (s *Service) Search(ctx context.Context, c *auth.Caller, f Filter, first int, after string) ([]Log, []string, bool, error) {
	if err := c.MemberOrAdmin(s.requireMFA, func() error {
		if f.WorkspaceID == "" {
			return apperr.New(apperr.Forbidden, "name the workspace whose audit log you want (filter.workspaceId)")
		}
		return s.requireRole(ctx, f.WorkspaceID, c.UserID, "OWNER", "ADMIN")
	}); err != nil {
		return nil, nil, false, err
	}
	if first < 1 {
		return nil, nil, false, apperr.New(apperr.InvalidInput, "first must be at least 1")
	}
	first = min(first, 200)
	q := s.db.NewSelect().TableExpr("audit_logs").
		Column("id", "occurred_at", "actor_user_id", "actor_type", "workspace_id", "action", "resource_type",
			"resource_id", "old_values", "new_values", "metadata", "severity", "ip", "user_agent", "request_id", "operation").
		OrderExpr("occurred_at DESC, id DESC").Limit(int64(first + 1))
	for _, w := range []struct {
		col, val string
	}{{"workspace_id", f.WorkspaceID}, {"actor_user_id", f.ActorUserID}, {"action", f.Action},
		{"resource_type", f.ResourceType}, {"resource_id", f.ResourceID}, {"severity", f.Severity}} {
		if w.val == "" {
			continue
		}
		if w.col == "workspace_id" || w.col == "actor_user_id" {
			if err := apperr.CheckID(w.val); err != nil {
				return nil, nil, false, err
			}
		}
		q.Where("? = ?", bun.Ident(w.col), w.val)
	}
	if f.OccurredAfter != nil {
		if err := apperr.CheckTime("occurredAfter", *f.OccurredAfter); err != nil {
			return nil, nil, false, err
		}
		q.Where("occurred_at > ?", *f.OccurredAfter)
	}
	if f.OccurredBefore != nil {
		if err := apperr.CheckTime("occurredBefore", *f.OccurredBefore); err != nil {
			return nil, nil, false, err
		}
		q.Where("occurred_at < ?", *f.OccurredBefore)
	}
	if after != "" {
		var cur logCursor
		if !db.DecodeCursor(after, &cur) || apperr.CheckID(cur.I) != nil || apperr.CheckTime("after", cur.T) != nil {
			return nil, nil, false, apperr.New(apperr.InvalidInput, "after is not a cursor of this list")
		}
		q.Where("(occurred_at, id) < (?, ?)", cur.T, cur.I)
	}
	var logs []Log
	if err := q.Scan(ctx, &logs); err != nil {
		return nil, nil, false, fmt.Errorf("search audit log: %w", err)
	}
	logs, cursors, more := db.Paginate(logs, first, func(l Log) any { return logCursor{T: l.OccurredAt, I: l.ID} })
	return logs, cursors, more, nil
}

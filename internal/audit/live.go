package audit

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/leadmarket/leadmarket/internal/apperr"
	"github.com/leadmarket/leadmarket/internal/auth"
	"github.com/leadmarket/leadmarket/internal/db"
	"github.com/leadmarket/leadmarket/internal/page"
)

// logColumns are an audit entry's columns as Log scans them.
var logColumns = []string{"id", "occurred_at", "actor_user_id", "actor_type", "workspace_id", "action", "resource_type",
	"resource_id", "old_values", "new_values", "metadata", "severity", "ip", "user_agent", "request_id", "operation"}

// LogsByIDs returns the entries with the given ids (the ids AddedEvent carries), oldest first.
// When from is not zero the entries occurred between from and to (the times AddedEvent carries
// too): audit_logs is partitioned by occurred_at, and the bound lets PostgreSQL plan and read
// the one partition (and its primary key) that holds them instead of every partition's index.
func LogsByIDs(ctx context.Context, db bun.IDB, ids []string, from, to time.Time) ([]Log, error) {
	var logs []Log
	q := db.NewSelect().TableExpr("audit_logs").Column(logColumns...).Where("id = ANY(?::uuid[])", pgdialect.Array(ids))
	if !from.IsZero() {
		q.Where("occurred_at BETWEEN ? AND ?", from, to)
	}
	if err := q.OrderExpr("occurred_at, id").Scan(ctx, &logs); err != nil {
		return nil, fmt.Errorf("audit entries by id: %w", err)
	}
	return logs, nil
}

// LogsAfter returns up to limit entries written at or after since, oldest first: a subscriber's
// catch-up after a lost LISTEN connection.
func LogsAfter(ctx context.Context, db bun.IDB, since time.Time, limit int) ([]Log, error) {
	var logs []Log
	if err := db.NewSelect().TableExpr("audit_logs").Column(logColumns...).Where("occurred_at >= ?", since).
		OrderExpr("occurred_at, id").Limit(int64(limit)).Scan(ctx, &logs); err != nil {
		return nil, fmt.Errorf("audit entries after %s: %w", since, err)
	}
	return logs, nil
}

// CanWatch returns nil when c may follow the entries f selects: the access rule of Search.
// Errors: FORBIDDEN, INVALID_INPUT.
func (s *Service) CanWatch(ctx context.Context, c *auth.Caller, f Filter) error {
	return c.MemberOrAdmin(func() error {
		if f.WorkspaceID == "" {
			return apperr.New(apperr.Forbidden, "name the workspace whose audit log you want (filter.workspaceId)")
		}
		if err := apperr.CheckID(f.WorkspaceID); err != nil {
			return err
		}
		return s.requireRole(ctx, f.WorkspaceID, c.UserID, "OWNER", "ADMIN")
	})
}

// Matches reports whether l passes f's conditions (in memory, as Search does them in SQL).
func (f Filter) Matches(l Log) bool {
	for _, w := range []struct{ want, got string }{
		{f.WorkspaceID, l.WorkspaceID}, {f.ActorUserID, l.ActorUserID}, {f.Action, l.Action},
		{f.ResourceType, l.ResourceType}, {f.ResourceID, l.ResourceID}, {f.Severity, l.Severity},
	} {
		if w.want != "" && w.want != w.got {
			return false
		}
	}
	if f.OccurredAfter != nil && !l.OccurredAt.After(*f.OccurredAfter) {
		return false
	}
	if f.OccurredBefore != nil && !l.OccurredAt.Before(*f.OccurredBefore) {
		return false
	}
	return true
}

// Security is a security event as stored.
type Security struct {
	ID          string         `bun:"id"`
	OccurredAt  time.Time      `bun:"occurred_at"`
	Kind        string         `bun:"kind"`
	RiskLevel   string         `bun:"risk_level"`
	UserID      string         `bun:"user_id,nullzero"`
	WorkspaceID string         `bun:"workspace_id,nullzero"`
	IP          string         `bun:"ip"`
	UserAgent   string         `bun:"user_agent"`
	RequestID   string         `bun:"request_id"`
	Operation   string         `bun:"operation"`
	Details     map[string]any `bun:"details,type:jsonb"`
}

var securityColumns = []string{"id", "occurred_at", "kind", "risk_level", "user_id", "workspace_id", "ip", "user_agent",
	"request_id", "operation", "details"}

// riskRank orders risk levels; unknown ones rank 0.
var riskRank = map[string]int{RiskLow: 1, RiskMedium: 2, RiskHigh: 3, RiskCritical: 4}

// AtLeast reports whether risk is min or higher.
func AtLeast(risk, min string) bool { return riskRank[risk] >= riskRank[min] }

// SecurityEventsByIDs returns the security events with the given ids, oldest first.
func SecurityEventsByIDs(ctx context.Context, db bun.IDB, ids []string) ([]Security, error) {
	var out []Security
	if err := db.NewSelect().TableExpr("security_events").Column(securityColumns...).Where("id = ANY(?::uuid[])", pgdialect.Array(ids)).
		OrderExpr("occurred_at, id").Scan(ctx, &out); err != nil {
		return nil, fmt.Errorf("security events by id: %w", err)
	}
	return out, nil
}

// SecurityEventsAfter returns up to limit security events raised at or after since, oldest first.
func SecurityEventsAfter(ctx context.Context, db bun.IDB, since time.Time, limit int) ([]Security, error) {
	var out []Security
	if err := db.NewSelect().TableExpr("security_events").Column(securityColumns...).Where("occurred_at >= ?", since).
		OrderExpr("occurred_at, id").Limit(int64(limit)).Scan(ctx, &out); err != nil {
		return nil, fmt.Errorf("security events after %s: %w", since, err)
	}
	return out, nil
}

// SecurityFilter narrows a search of the security events.
type SecurityFilter struct {
	Kind           string
	MinRisk        string
	UserID         string
	WorkspaceID    string
	OccurredAfter  *time.Time
	OccurredBefore *time.Time
}

// SecurityPages are the page sizes of a security event search.
var SecurityPages = page.Bounds{Default: 50, Max: 200}

// SearchSecurity returns a page of the security events matching f, newest first; platform
// admins only. Errors: FORBIDDEN, INVALID_INPUT.
func (s *Service) SearchSecurity(ctx context.Context, c *auth.Caller, f SecurityFilter, args page.Args) (page.Page[Security], error) {
	if err := c.AdminAccess(); err != nil {
		return page.Page[Security]{}, err
	}
	limit, after, err := page.Open(args, SecurityPages, func(p page.TimeID) bool { return apperr.CheckID(p.I) == nil && p.ValidTime() })
	if err != nil {
		return page.Page[Security]{}, err
	}
	q := db.Reader(ctx, s.db).NewSelect().TableExpr("security_events").Column(securityColumns...).
		OrderExpr("occurred_at DESC, id DESC").Limit(int64(limit + 1))
	if f.Kind != "" {
		q.Where("kind = ?", f.Kind)
	}
	if f.MinRisk != "" {
		var levels []string
		for l := range riskRank {
			if AtLeast(l, f.MinRisk) {
				levels = append(levels, l)
			}
		}
		q.Where("risk_level = ANY(?::text[])", pgdialect.Array(levels))
	}
	for _, w := range []struct{ col, val string }{{"user_id", f.UserID}, {"workspace_id", f.WorkspaceID}} {
		if w.val == "" {
			continue
		}
		if err := apperr.CheckID(w.val); err != nil {
			return page.Page[Security]{}, err
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
			return page.Page[Security]{}, err
		}
		q.Where(t.cond, *t.at)
	}
	if after != nil {
		q.Where("(occurred_at, id) < (?, ?)", after.T, after.I)
	}
	var out []Security
	if err := q.Scan(ctx, &out); err != nil {
		return page.Page[Security]{}, fmt.Errorf("search security events: %w", err)
	}
	return page.New(out, limit, func(e Security) any { return page.TimeID{T: e.OccurredAt, I: e.ID} }), nil
}

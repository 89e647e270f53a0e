// Package audit writes and searches the append-only audit log and the security events: who did
// what, when, where and why. Entries are written in the transaction of the change they record.
package audit

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/internal/reqinfo"
)

// Actor types.
const (
	ActorUser          = "USER"
	ActorPlatformAdmin = "PLATFORM_ADMIN"
	ActorPartner       = "PARTNER"
	ActorSystem        = "SYSTEM"
	ActorStripe        = "STRIPE"
)

// Severities.
const (
	SeverityInfo     = "INFO"
	SeverityNotice   = "NOTICE"
	SeverityWarning  = "WARNING"
	SeverityCritical = "CRITICAL"
)

// Risk levels of security events.
const (
	RiskLow      = "LOW"
	RiskMedium   = "MEDIUM"
	RiskHigh     = "HIGH"
	RiskCritical = "CRITICAL"
)

// Entry is one audit record. Action is a typed verb such as "lead.purchased"; Old and New are the
// changed values (any JSON-encodable value).
type Entry struct {
	ActorUserID  string
	ActorType    string
	WorkspaceID  string
	Action       string
	ResourceType string
	ResourceID   string
	Old          any
	New          any
	Metadata     map[string]any
	// Severity defaults to INFO.
	Severity string
}

type auditRow struct {
	bun.BaseModel `bun:"table:audit_logs"`

	ActorUserID  *string        `bun:"actor_user_id"`
	ActorType    string         `bun:"actor_type"`
	WorkspaceID  *string        `bun:"workspace_id"`
	Action       string         `bun:"action"`
	ResourceType string         `bun:"resource_type"`
	ResourceID   string         `bun:"resource_id"`
	OldValues    any            `bun:"old_values,type:jsonb"`
	NewValues    any            `bun:"new_values,type:jsonb"`
	Metadata     map[string]any `bun:"metadata,type:jsonb"`
	Severity     string         `bun:"severity"`
	IP           string         `bun:"ip"`
	UserAgent    string         `bun:"user_agent"`
	RequestID    string         `bun:"request_id"`
	Operation    string         `bun:"operation"`
}

// Record writes e with the request info of ctx (reqinfo). Call it with the transaction of the
// change.
func Record(ctx context.Context, db bun.IDB, e Entry) error {
	ri := reqinfo.From(ctx)
	row := auditRow{
		ActorUserID:  nullable(e.ActorUserID),
		ActorType:    e.ActorType,
		WorkspaceID:  nullable(e.WorkspaceID),
		Action:       e.Action,
		ResourceType: e.ResourceType,
		ResourceID:   e.ResourceID,
		OldValues:    e.Old,
		NewValues:    e.New,
		Metadata:     e.Metadata,
		Severity:     e.Severity,
		IP:           ri.IP,
		UserAgent:    ri.UserAgent,
		RequestID:    ri.RequestID,
		Operation:    ri.Operation,
	}
	if row.ActorType == "" {
		row.ActorType = ActorUser
	}
	if row.Severity == "" {
		row.Severity = SeverityInfo
	}
	if row.Metadata == nil {
		row.Metadata = map[string]any{}
	}
	if _, err := db.NewInsert().Model(&row).Exec(ctx); err != nil {
		return fmt.Errorf("audit %s: %w", e.Action, err)
	}
	return nil
}

// SecurityEvent is a security-relevant happening: a denial, a bad token, a bad signature.
type SecurityEvent struct {
	Kind        string
	Risk        string
	UserID      string
	WorkspaceID string
	Details     map[string]any
}

type securityRow struct {
	bun.BaseModel `bun:"table:security_events"`

	Kind        string         `bun:"kind"`
	RiskLevel   string         `bun:"risk_level"`
	UserID      *string        `bun:"user_id"`
	WorkspaceID *string        `bun:"workspace_id"`
	IP          string         `bun:"ip"`
	UserAgent   string         `bun:"user_agent"`
	RequestID   string         `bun:"request_id"`
	Operation   string         `bun:"operation"`
	Details     map[string]any `bun:"details,type:jsonb"`
}

// RecordSecurity writes ev with the request info of ctx (reqinfo).
func RecordSecurity(ctx context.Context, db bun.IDB, ev SecurityEvent) error {
	ri := reqinfo.From(ctx)
	row := securityRow{
		Kind: ev.Kind, RiskLevel: ev.Risk, UserID: nullable(ev.UserID), WorkspaceID: nullable(ev.WorkspaceID),
		IP: ri.IP, UserAgent: ri.UserAgent, RequestID: ri.RequestID, Operation: ri.Operation, Details: ev.Details,
	}
	if row.RiskLevel == "" {
		row.RiskLevel = RiskMedium
	}
	if row.Details == nil {
		row.Details = map[string]any{}
	}
	if _, err := db.NewInsert().Model(&row).Exec(ctx); err != nil {
		return fmt.Errorf("security event %s: %w", ev.Kind, err)
	}
	return nil
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

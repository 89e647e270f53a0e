// Package audit writes and searches the append-only audit log and the security events: who did
// what, when, where and why. Entries are written in the transaction of the change they record.
package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

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

// Record writes e with the request info of ctx (reqinfo). Call it with the transaction of the
// change.
func Record(ctx context.Context, db bun.IDB, e Entry) error {
	ri := reqinfo.From(ctx)
	row := Log{
		ActorUserID: e.ActorUserID, ActorType: e.ActorType, WorkspaceID: e.WorkspaceID, Action: e.Action,
		ResourceType: e.ResourceType, ResourceID: e.ResourceID, Severity: e.Severity,
		IP: ri.IP, UserAgent: ri.UserAgent, RequestID: ri.RequestID, Operation: ri.Operation,
	}
	if row.ActorType == "" {
		row.ActorType = ActorUser
	}
	if row.Severity == "" {
		row.Severity = SeverityInfo
	}
	if e.Metadata == nil {
		e.Metadata = map[string]any{}
	}
	for _, v := range []struct {
		to   *json.RawMessage
		from any
	}{{&row.OldValues, e.Old}, {&row.NewValues, e.New}, {&row.Metadata, e.Metadata}} {
		if v.from == nil {
			continue // SQL NULL: nothing recorded
		}
		b, err := json.Marshal(v.from)
		if err != nil {
			return fmt.Errorf("audit %s: encode values: %w", e.Action, err)
		}
		*v.to = b
	}
	// The insert also publishes AddedEvent with the entry's id (the audit_logs_added trigger):
	// auditLogAdded subscribers get it when, and only if, the change commits.
	if _, err := db.NewInsert().Model(&row).Exec(ctx); err != nil {
		return fmt.Errorf("audit %s: %w", e.Action, err)
	}
	return nil
}

// AddedEvent is the event type of a new audit entry, published with its id by the insert of
// Record (the audit_logs_added trigger).
const AddedEvent = "audit.added"

// SecurityRaisedEvent is the event type of a new security event, published with its id by the
// insert of RecordSecurity (the security_events_raised trigger).
const SecurityRaisedEvent = "security.raised"

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

	ID          string         `bun:"id,scanonly"`
	OccurredAt  time.Time      `bun:"occurred_at,scanonly"`
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

// RecordSecurity writes ev with the request info of ctx (reqinfo).
func RecordSecurity(ctx context.Context, db bun.IDB, ev SecurityEvent) error {
	ri := reqinfo.From(ctx)
	row := securityRow{
		Kind: ev.Kind, RiskLevel: ev.Risk, UserID: ev.UserID, WorkspaceID: ev.WorkspaceID,
		IP: ri.IP, UserAgent: ri.UserAgent, RequestID: ri.RequestID, Operation: ri.Operation, Details: ev.Details,
	}
	if row.RiskLevel == "" {
		row.RiskLevel = RiskMedium
	}
	if row.Details == nil {
		row.Details = map[string]any{}
	}
	// The insert also publishes SecurityRaisedEvent with the event's id (the
	// security_events_raised trigger).
	if _, err := db.NewInsert().Model(&row).Exec(ctx); err != nil {
		return fmt.Errorf("security event %s: %w", ev.Kind, err)
	}
	return nil
}

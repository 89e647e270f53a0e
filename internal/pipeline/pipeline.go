// Package pipeline is where a workspace works the leads it bought (DESIGN §7): each purchase is a
// workspace lead with a pipeline status, an assignee and tags, which members list with filters and
// change in bulk — thousands at once, each operation one set-based SQL statement with a reason for
// every lead it skipped, one audit entry and an event. It owns the workspace_leads table; the
// marketplace adds a row in every purchase's transaction (AddPurchases), and the leads' own data
// is read through internal/lead.
package pipeline

import (
	"time"

	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/internal/lead"
)

// Pipeline statuses.
const (
	StatusNew       = "NEW"
	StatusContacted = "CONTACTED"
	StatusQualified = "QUALIFIED"
	StatusWon       = "WON"
	StatusLost      = "LOST"
)

// Statuses are the pipeline statuses in pipeline order.
var Statuses = []string{StatusNew, StatusContacted, StatusQualified, StatusWon, StatusLost}

// Reasons a bulk operation skips a lead (BulkSkip.reason). They are outcomes for single leads,
// not errors: the operation goes on with the others.
const (
	// SkipNotFound: no lead of the workspace has this id (it may be another workspace's).
	SkipNotFound = "NOT_FOUND"
	// SkipInvalidTransition: the pipeline does not allow the move from the lead's status.
	SkipInvalidTransition = "INVALID_TRANSITION"
	// SkipAlreadyDeleted: the lead was deleted from the list (for a delete, or any change other
	// than a restore).
	SkipAlreadyDeleted = "ALREADY_DELETED"
	// SkipTagLimit: the lead would have more than MaxTags tags.
	SkipTagLimit = "TAG_LIMIT"
	// SkipUnchanged: the lead already is as asked.
	SkipUnchanged = "UNCHANGED"
)

// WorkspaceLead is a lead a workspace bought, as the workspace works it. ID is the purchase's id.
type WorkspaceLead struct {
	ID           string    `bun:"id"`
	WorkspaceID  string    `bun:"workspace_id"`
	LeadID       string    `bun:"lead_id"`
	CreditsSpent int       `bun:"credits_spent"`
	PurchasedAt  time.Time `bun:"purchased_at"`
	Status       string    `bun:"status"`
	// AssigneeUserID is empty when nobody is assigned.
	AssigneeUserID string `bun:"assignee_user_id"`
	// Tags are distinct, trimmed, lower-case and sorted.
	Tags []string `bun:"tags,array"`
	// DeletedAt is set while the lead is deleted from the workspace's list.
	DeletedAt *time.Time `bun:"deleted_at"`
	UpdatedAt time.Time  `bun:"updated_at"`

	// Lead is the lead itself with full contact data, as lead.PurchasedByIDs reads it.
	Lead lead.Lead `bun:"-"`
}

// Service runs workspaces' pipelines.
type Service struct {
	db *bun.DB
}

// NewService returns a Service on db.
func NewService(db *bun.DB) *Service {
	return &Service{db: db}
}

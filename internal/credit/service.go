package credit

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/internal/apperr"
	"github.com/leadmarket/leadmarket/internal/audit"
	"github.com/leadmarket/leadmarket/internal/auth"
	"github.com/leadmarket/leadmarket/internal/idempotency"
	"github.com/leadmarket/leadmarket/internal/page"
	"github.com/leadmarket/leadmarket/internal/workspace"
)

// Service answers credit questions with access checks and makes admin adjustments.
type Service struct {
	db *bun.DB
}

// NewService returns a Service on db.
func NewService(db *bun.DB) *Service {
	return &Service{db: db}
}

// BalanceFor returns a workspace's balance to its members and platform admins.
// Errors: FORBIDDEN, INVALID_INPUT, NOT_FOUND.
func (s *Service) BalanceFor(ctx context.Context, c *auth.Caller, workspaceID string) (int64, error) {
	if err := workspace.RequireMemberOrAdmin(ctx, s.db, workspaceID, c); err != nil {
		return 0, err
	}
	return Balance(ctx, s.db, workspaceID)
}

// TransactionPages are the page sizes of a workspace's ledger.
var TransactionPages = page.Bounds{Default: 25, Max: 100}

// TransactionsFor returns a page of a workspace's ledger, newest first, to its members and
// platform admins. Errors: FORBIDDEN, INVALID_INPUT.
func (s *Service) TransactionsFor(ctx context.Context, c *auth.Caller, workspaceID string, args page.Args) (page.Page[Transaction], error) {
	if err := workspace.RequireMemberOrAdmin(ctx, s.db, workspaceID, c); err != nil {
		return page.Page[Transaction]{}, err
	}
	limit, after, err := page.Open(args, TransactionPages, page.Serial.Valid)
	if err != nil {
		return page.Page[Transaction]{}, err
	}
	var beforeID int64
	if after != nil {
		beforeID = after.ID
	}
	txs, err := Transactions(ctx, s.db, workspaceID, beforeID, limit+1)
	if err != nil {
		return page.Page[Transaction]{}, err
	}
	return page.New(txs, limit, func(t Transaction) any { return page.Serial{ID: t.ID} }), nil
}

// AdjustInput is a platform admin's manual credit change.
type AdjustInput struct {
	WorkspaceID    string `json:"workspaceId"`
	Delta          int64  `json:"delta"`
	Reason         string `json:"reason"`
	IdempotencyKey string `json:"-"`
}

// Adjust adds or removes credits as a platform admin, with an audit entry in the same
// transaction. Errors: FORBIDDEN (not a platform admin, or no aal2 when MFA is required),
// INVALID_INPUT, NOT_FOUND, INSUFFICIENT_CREDITS, IDEMPOTENCY_KEY_REUSED, IDEMPOTENCY_IN_PROGRESS.
func (s *Service) Adjust(ctx context.Context, c *auth.Caller, in AdjustInput) (int64, error) {
	if err := c.AdminAccess(); err != nil {
		return 0, err
	}
	in.Reason = strings.TrimSpace(in.Reason)
	if in.Delta == 0 || in.Delta > 1_000_000 || in.Delta < -1_000_000 {
		return 0, apperr.New(apperr.InvalidInput, "delta must be between -1000000 and 1000000 and not zero")
	}
	if in.Reason == "" || len(in.Reason) > 500 {
		return 0, apperr.New(apperr.InvalidInput, "a reason of 1 to 500 characters is required")
	}
	if err := apperr.CheckID(in.WorkspaceID); err != nil {
		return 0, err
	}
	var balance int64
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		key := idempotency.Key{UserID: c.UserID, Key: in.IdempotencyKey, Operation: "adjustCredits", Request: in}
		var err error
		balance, _, err = idempotency.Do(ctx, tx, key, func() (int64, error) { return s.adjust(ctx, tx, c, in) })
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("adjust credits of %s: %w", in.WorkspaceID, err)
	}
	return balance, nil
}

// adjust makes an admin's adjustment and its audit entry in tx, returning the balance after it.
func (s *Service) adjust(ctx context.Context, tx bun.Tx, c *auth.Caller, in AdjustInput) (int64, error) {
	ref := "adjustment:" + uuid.NewString()
	balance, err := Apply(ctx, tx, Entry{
		WorkspaceID: in.WorkspaceID, Kind: KindAdjustment, Amount: in.Delta, Reference: ref,
		Description: in.Reason, ActorUserID: c.UserID,
	})
	if err != nil {
		return 0, err
	}
	return balance, audit.Record(ctx, tx, audit.Entry{
		ActorUserID: c.UserID, ActorType: audit.ActorPlatformAdmin, WorkspaceID: in.WorkspaceID,
		Action: "credits.adjusted", ResourceType: "credit_balance", ResourceID: in.WorkspaceID,
		// The balance before is derived from the update's own result: a separate read could see
		// another adjustment's state.
		Old: map[string]any{"credits": balance - in.Delta}, New: map[string]any{"credits": balance},
		Metadata: map[string]any{"reason": in.Reason, "delta": in.Delta, "reference": ref},
		Severity: audit.SeverityNotice,
	})
}

package credit

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/internal/apperr"
	"github.com/leadmarket/leadmarket/internal/audit"
	"github.com/leadmarket/leadmarket/internal/auth"
	"github.com/leadmarket/leadmarket/internal/idempotency"
	"github.com/leadmarket/leadmarket/internal/workspace"
)

// Service answers credit questions with access checks and makes admin adjustments.
type Service struct {
	db *bun.DB
	// requireMFA is ADMIN_REQUIRE_MFA.
	requireMFA bool
}

// NewService returns a Service on db; requireMFA makes adjustments need an aal2 session.
func NewService(db *bun.DB, requireMFA bool) *Service {
	return &Service{db: db, requireMFA: requireMFA}
}

// BalanceFor returns a workspace's balance to its members and platform admins.
// Errors: FORBIDDEN, INVALID_INPUT, NOT_FOUND.
func (s *Service) BalanceFor(ctx context.Context, c *auth.Caller, workspaceID string) (int64, error) {
	if err := workspace.RequireReader(ctx, s.db, workspaceID, c, s.requireMFA); err != nil {
		return 0, err
	}
	return Balance(ctx, s.db, workspaceID)
}

// TransactionsFor returns a page of a workspace's ledger to its members and platform admins:
// up to first entries after the cursor after, and whether more follow.
// Errors: FORBIDDEN, INVALID_INPUT.
func (s *Service) TransactionsFor(ctx context.Context, c *auth.Caller, workspaceID string, first int, after string) ([]Transaction, bool, error) {
	if err := workspace.RequireReader(ctx, s.db, workspaceID, c, s.requireMFA); err != nil {
		return nil, false, err
	}
	var beforeID int64
	if after != "" {
		var err error
		if beforeID, err = strconv.ParseInt(after, 10, 64); err != nil || beforeID <= 0 {
			return nil, false, apperr.New(apperr.InvalidInput, "after is not a cursor of this list")
		}
	}
	if first < 1 {
		return nil, false, apperr.New(apperr.InvalidInput, "first must be at least 1")
	}
	first = min(first, 100)
	txs, err := Transactions(ctx, s.db, workspaceID, beforeID, first+1)
	if err != nil {
		return nil, false, err
	}
	if len(txs) > first {
		return txs[:first], true, nil
	}
	return txs, false, nil
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
func (s *Service) Adjust(ctx context.Context, in AdjustInput) (int64, error) {
	c, err := auth.RequirePlatformAdmin(ctx, s.requireMFA)
	if err != nil {
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
	err = s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		key := idempotency.Key{UserID: c.UserID, Key: in.IdempotencyKey, Operation: "adjustCredits", Request: in}
		if in.IdempotencyKey != "" {
			stored, err := idempotency.Begin(ctx, tx, key)
			if err != nil {
				return err
			}
			if stored != nil {
				return json.Unmarshal(stored, &balance)
			}
		}
		ref := "adjustment:" + uuid.NewString()
		var err error
		if balance, err = Apply(ctx, tx, Entry{
			WorkspaceID: in.WorkspaceID, Kind: KindAdjustment, Amount: in.Delta, Reference: ref,
			Description: in.Reason, ActorUserID: c.UserID,
		}); err != nil {
			return err
		}
		if err := audit.Record(ctx, tx, audit.Entry{
			ActorUserID: c.UserID, ActorType: audit.ActorPlatformAdmin, WorkspaceID: in.WorkspaceID,
			Action: "credits.adjusted", ResourceType: "credit_balance", ResourceID: in.WorkspaceID,
			// The balance before is derived from the update's own result: a separate read could see
			// another adjustment's state.
			Old: map[string]any{"credits": balance - in.Delta}, New: map[string]any{"credits": balance},
			Metadata: map[string]any{"reason": in.Reason, "delta": in.Delta, "reference": ref},
			Severity: audit.SeverityNotice,
		}); err != nil {
			return err
		}
		if in.IdempotencyKey != "" {
			return idempotency.Complete(ctx, tx, key, balance)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("adjust credits of %s: %w", in.WorkspaceID, err)
	}
	return balance, nil
}

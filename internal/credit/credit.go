// Package credit keeps workspaces' credits: an append-only ledger of entries, each with a unique
// business reference, and a balance row that always equals the ledger's sum.
package credit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/internal/apperr"
)

// Ledger entry kinds.
const (
	KindPurchase   = "PURCHASE"
	KindSpend      = "SPEND"
	KindRefund     = "REFUND"
	KindClawback   = "CLAWBACK"
	KindAdjustment = "ADJUSTMENT"
)

// Entry is one ledger movement. Amount is signed: positive adds credits.
type Entry struct {
	WorkspaceID string
	Kind        string
	Amount      int64
	// Reference is the business reference (e.g. "cart:<id>", "stripe:checkout:<id>") that makes
	// the entry happen at most once.
	Reference   string
	Description string
	ActorUserID string
	// AllowNegative lets a removal take the balance below zero (clawbacks); otherwise a removal
	// larger than the balance fails with INSUFFICIENT_CREDITS.
	AllowNegative bool
}

// Transaction is a ledger entry as read back.
type Transaction struct {
	ID           int64     `bun:"id"`
	Kind         string    `bun:"kind"`
	Amount       int64     `bun:"amount"`
	BalanceAfter int64     `bun:"balance_after"`
	Reference    string    `bun:"reference"`
	Description  string    `bun:"description"`
	CreatedAt    time.Time `bun:"created_at"`
}

// ErrAlreadyApplied is returned by Apply when an entry with the same reference exists: the
// movement already happened and nothing was changed.
var ErrAlreadyApplied = errors.New("credit entry already applied")

// Apply moves credits and writes the ledger entry in tx, returning the balance after it.
// Errors: ErrAlreadyApplied; INSUFFICIENT_CREDITS; NOT_FOUND when the workspace has no balance.
// Two transactions applying one reference at once: one commits, the other fails on the ledger's
// unique reference, so the movement happens once.
func Apply(ctx context.Context, tx bun.IDB, e Entry) (int64, error) {
	if e.Amount == 0 {
		return 0, apperr.New(apperr.InvalidInput, "a credit movement cannot be zero")
	}
	var balance int64
	// One statement moves the credits unless the reference was applied before and, for a removal
	// that must be covered, unless the balance is short: concurrent spends cannot both pass a
	// check and overdraw. Why nothing moved is asked only when nothing did.
	floor := "NULL"
	if e.Amount < 0 && !e.AllowNegative {
		floor = "0"
	}
	err := tx.NewRaw(`UPDATE credit_balances SET credits = credits + ?, updated_at = now()
		WHERE workspace_id = ? AND (credits + ? >= `+floor+` OR `+floor+` IS NULL)
		AND NOT EXISTS (SELECT 1 FROM credit_ledger WHERE reference = ?) RETURNING credits`,
		e.Amount, e.WorkspaceID, e.Amount, e.Reference).Scan(ctx, &balance)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, refusal(ctx, tx, e)
	}
	if err != nil {
		return 0, fmt.Errorf("apply %s: %w", e.Reference, err)
	}
	var actor *string
	if e.ActorUserID != "" {
		actor = &e.ActorUserID
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO credit_ledger
		(workspace_id, kind, amount, balance_after, reference, description, actor_user_id) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		e.WorkspaceID, e.Kind, e.Amount, balance, e.Reference, e.Description, actor); err != nil {
		return 0, fmt.Errorf("apply %s: %w", e.Reference, err)
	}
	return balance, nil
}

// refusal says why Apply moved nothing: ErrAlreadyApplied, NOT_FOUND or INSUFFICIENT_CREDITS.
func refusal(ctx context.Context, tx bun.IDB, e Entry) error {
	var applied bool
	if err := tx.NewRaw("SELECT EXISTS (SELECT 1 FROM credit_ledger WHERE reference = ?)", e.Reference).Scan(ctx, &applied); err != nil {
		return fmt.Errorf("apply %s: %w", e.Reference, err)
	}
	if applied {
		return ErrAlreadyApplied
	}
	current, err := Balance(ctx, tx, e.WorkspaceID)
	if err != nil {
		return err
	}
	return apperr.New(apperr.InsufficientCredits, "this needs %d credits; the workspace has %d", -e.Amount, current).
		With("required", -e.Amount).With("balance", current)
}

// Applied reports whether the entry with reference has been applied.
func Applied(ctx context.Context, db bun.IDB, reference string) (bool, error) {
	var applied bool
	if err := db.NewRaw("SELECT EXISTS (SELECT 1 FROM credit_ledger WHERE reference = ?)", reference).Scan(ctx, &applied); err != nil {
		return false, fmt.Errorf("ledger entry %s: %w", reference, err)
	}
	return applied, nil
}

// OpenBalance gives a workspace its balance row, with 0 credits, in the transaction that creates
// the workspace; it leaves an existing row as it is. Every workspace has one: Apply and Balance
// answer NOT_FOUND without it.
func OpenBalance(ctx context.Context, db bun.IDB, workspaceID string) error {
	if _, err := db.ExecContext(ctx, `INSERT INTO credit_balances (workspace_id) VALUES (?)
		ON CONFLICT (workspace_id) DO NOTHING`, workspaceID); err != nil {
		return fmt.Errorf("open balance of %s: %w", workspaceID, err)
	}
	return nil
}

// Balance returns a workspace's credits. Errors: NOT_FOUND when it has no balance row.
func Balance(ctx context.Context, db bun.IDB, workspaceID string) (int64, error) {
	var credits int64
	err := db.NewRaw("SELECT credits FROM credit_balances WHERE workspace_id = ?", workspaceID).Scan(ctx, &credits)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, apperr.New(apperr.NotFound, "workspace %s not found", workspaceID)
	}
	if err != nil {
		return 0, fmt.Errorf("balance of %s: %w", workspaceID, err)
	}
	return credits, nil
}

// Transactions returns up to limit ledger entries of a workspace older than beforeID (0: from the
// newest), newest first.
func Transactions(ctx context.Context, db bun.IDB, workspaceID string, beforeID int64, limit int) ([]Transaction, error) {
	q := db.NewSelect().TableExpr("credit_ledger").
		Column("id", "kind", "amount", "balance_after", "reference", "description", "created_at").
		Where("workspace_id = ?", workspaceID).OrderExpr("id DESC").Limit(int64(limit))
	if beforeID > 0 {
		q = q.Where("id < ?", beforeID)
	}
	var txs []Transaction
	if err := q.Scan(ctx, &txs); err != nil {
		return nil, fmt.Errorf("transactions of %s: %w", workspaceID, err)
	}
	return txs, nil
}

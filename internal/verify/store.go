package verify

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/leadmarket/leadmarket/internal/lead"
)

// callRow is a row of lead_verifications: one provider call.
type callRow struct {
	bun.BaseModel `bun:"table:lead_verifications"`

	LeadID      string `bun:"lead_id"`
	PartnerID   string `bun:"partner_id"`
	CheckID     string `bun:"check_id"`
	Purpose     string `bun:"purpose"`
	Provider    string `bun:"provider"`
	Attempt     int    `bun:"attempt"`
	Status      string `bun:"status,nullzero"`
	Error       string `bun:"error,nullzero"`
	Raw         string `bun:"raw,nullzero"`
	LatencyMS   int64  `bun:"latency_ms"`
	CheckFailed bool   `bun:"check_failed"`
}

// insertCalls keeps the calls of one attempt at l.
func insertCalls(ctx context.Context, tx bun.IDB, l lead.ToVerify, purpose string, attempt int, out Outcome) error {
	if len(out.Calls) == 0 {
		return nil
	}
	checkID := uuid.NewString()
	rows := make([]callRow, len(out.Calls))
	for i, c := range out.Calls {
		rows[i] = callRow{
			LeadID: l.ID, PartnerID: l.PartnerID, CheckID: checkID, Purpose: purpose, Provider: c.Provider,
			Attempt: attempt, Status: c.Status, Raw: string(c.Raw), LatencyMS: c.Latency.Milliseconds(),
			CheckFailed: out.Status == "",
		}
		if c.Err != nil {
			rows[i].Error = truncate(c.Err.Error(), 1000)
		}
	}
	if _, err := tx.NewInsert().Model(&rows).Exec(ctx); err != nil {
		return fmt.Errorf("keep verification calls: %w", err)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// CallRecord is a kept provider call, as read back.
type CallRecord struct {
	ID          int64     `bun:"id"`
	LeadID      string    `bun:"lead_id"`
	CheckID     string    `bun:"check_id"`
	Purpose     string    `bun:"purpose"`
	Provider    string    `bun:"provider"`
	Attempt     int       `bun:"attempt"`
	Status      *string   `bun:"status"`
	Error       *string   `bun:"error"`
	Raw         *string   `bun:"raw"`
	LatencyMS   int64     `bun:"latency_ms"`
	CheckFailed bool      `bun:"check_failed"`
	CreatedAt   time.Time `bun:"created_at"`
}

// Calls returns the kept provider calls of leadID, oldest first.
func Calls(ctx context.Context, db bun.IDB, leadID string) ([]CallRecord, error) {
	var cs []CallRecord
	err := db.NewRaw(`SELECT id, lead_id, check_id, purpose, provider, attempt, status, error, raw::text AS raw,
			latency_ms, check_failed, created_at
		FROM lead_verifications WHERE lead_id = ? ORDER BY id`, leadID).Scan(ctx, &cs)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("verification calls of %s: %w", leadID, err)
	}
	return cs, nil
}

// partnersVerifiedSince returns the partners of the leads given a verdict by a call since since.
func partnersVerifiedSince(ctx context.Context, db bun.IDB, since time.Time) ([]string, error) {
	var ids []string
	err := db.NewRaw(`SELECT DISTINCT partner_id FROM lead_verifications WHERE created_at >= ? AND status IS NOT NULL`, since).
		Scan(ctx, &ids)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("partners verified since %s: %w", since, err)
	}
	return ids, nil
}

// Bounce report statuses.
const (
	ReportPending  = "PENDING"
	ReportRefunded = "REFUNDED"
	ReportDeclined = "DECLINED"
)

// Report is a buyer's bounce report of a purchase.
type Report struct {
	ID          string `bun:"id" json:"id"`
	PurchaseID  string `bun:"purchase_id" json:"purchaseId"`
	WorkspaceID string `bun:"workspace_id" json:"workspaceId"`
	LeadID      string `bun:"lead_id" json:"leadId"`
	ReportedBy  string `bun:"reported_by" json:"reportedBy"`
	// PurchaseCredits and PurchasedAt are the purchase's: what it cost and when.
	PurchaseCredits int64     `bun:"purchase_credits" json:"purchaseCredits"`
	PurchasedAt     time.Time `bun:"purchased_at" json:"purchasedAt"`
	// Status is ReportPending, ReportRefunded or ReportDeclined.
	Status          string `bun:"status" json:"status"`
	CreditsRefunded int64  `bun:"credits_refunded" json:"creditsRefunded"`
	// Reason is the verdict that declined the report, or what refunded it; nil while PENDING.
	Reason     *string    `bun:"reason" json:"reason"`
	CreatedAt  time.Time  `bun:"created_at" json:"createdAt"`
	ResolvedAt *time.Time `bun:"resolved_at" json:"resolvedAt"`
}

const reportColumns = `id, purchase_id, workspace_id, lead_id, coalesce(reported_by::text, '') AS reported_by,
	purchase_credits, purchased_at, status, credits_refunded, reason, created_at, resolved_at`

// reportByID returns the report with id, or nil.
func reportByID(ctx context.Context, db bun.IDB, id string) (*Report, error) {
	var r Report
	err := db.NewRaw("SELECT "+reportColumns+" FROM bounce_reports WHERE id = ?", id).Scan(ctx, &r)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("bounce report %s: %w", id, err)
	}
	return &r, nil
}

// insertReport writes r (PENDING, or REFUNDED with its reason when r says so) unless its purchase
// has a report already; it returns the purchase's report and whether it is the one written now.
// Two reports of one purchase at once: the second waits for the first's transaction and gets its
// report.
func insertReport(ctx context.Context, tx bun.IDB, r Report) (Report, bool, error) {
	var out Report
	refunded := r.Status == ReportRefunded
	err := tx.NewRaw(`INSERT INTO bounce_reports (purchase_id, workspace_id, lead_id, reported_by, purchase_credits, purchased_at,
			status, credits_refunded, reason, resolved_at)
		VALUES (?, ?, ?, ?, ?, ?, CASE WHEN ? THEN 'REFUNDED' ELSE 'PENDING' END, CASE WHEN ? THEN ? ELSE 0 END,
			?, CASE WHEN ? THEN now() END)
		ON CONFLICT (purchase_id) DO NOTHING RETURNING `+reportColumns,
		r.PurchaseID, r.WorkspaceID, r.LeadID, r.ReportedBy, r.PurchaseCredits, r.PurchasedAt,
		refunded, refunded, r.PurchaseCredits, r.Reason, refunded).Scan(ctx, &out)
	if err == nil {
		return out, true, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return Report{}, false, fmt.Errorf("write bounce report: %w", err)
	}
	if err := tx.NewRaw("SELECT "+reportColumns+" FROM bounce_reports WHERE purchase_id = ?", r.PurchaseID).Scan(ctx, &out); err != nil {
		return Report{}, false, fmt.Errorf("bounce report of purchase %s: %w", r.PurchaseID, err)
	}
	return out, false, nil
}

// refundReports marks the pending reports of purchaseIDs REFUNDED with each purchase's credits.
func refundReports(ctx context.Context, tx bun.IDB, purchaseIDs []string, reason string) error {
	if len(purchaseIDs) == 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `UPDATE bounce_reports SET status = 'REFUNDED', credits_refunded = purchase_credits,
			reason = ?, resolved_at = now()
		WHERE purchase_id = ANY(?::uuid[]) AND status = 'PENDING'`, reason, pgdialect.Array(purchaseIDs)); err != nil {
		return fmt.Errorf("refund bounce reports: %w", err)
	}
	return nil
}

// declineReports marks the pending reports of leadID's purchases DECLINED with reason, and returns
// their ids.
func declineReports(ctx context.Context, tx bun.IDB, leadID, reason string) ([]Report, error) {
	var rs []Report
	err := tx.NewRaw(`UPDATE bounce_reports SET status = 'DECLINED', reason = ?, resolved_at = now()
		WHERE lead_id = ? AND status = 'PENDING' RETURNING `+reportColumns, reason, leadID).Scan(ctx, &rs)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("decline bounce reports: %w", err)
	}
	return rs, nil
}

// declineReport marks report id DECLINED with reason when it is still pending.
func declineReport(ctx context.Context, tx bun.IDB, id, reason string) error {
	if _, err := tx.ExecContext(ctx, `UPDATE bounce_reports SET status = 'DECLINED', reason = ?, resolved_at = now()
		WHERE id = ? AND status = 'PENDING'`, reason, id); err != nil {
		return fmt.Errorf("decline bounce report %s: %w", id, err)
	}
	return nil
}

package verify

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/internal/apperr"
	"github.com/leadmarket/leadmarket/internal/audit"
	"github.com/leadmarket/leadmarket/internal/auth"
	"github.com/leadmarket/leadmarket/internal/credit"
	"github.com/leadmarket/leadmarket/internal/events"
	"github.com/leadmarket/leadmarket/internal/idempotency"
	"github.com/leadmarket/leadmarket/internal/lead"
	"github.com/leadmarket/leadmarket/internal/marketplace"
	"github.com/leadmarket/leadmarket/internal/page"
	"github.com/leadmarket/leadmarket/internal/partner"
	"github.com/leadmarket/leadmarket/internal/workspace"
)

// RefundReference is the ledger reference of the refund of a purchase whose lead was found
// INVALID: one per purchase, whoever reported it and however often.
func RefundReference(purchaseID string) string { return "bounce:" + purchaseID }

// Event types published in the transaction of the change.
const (
	// EventLeadRefunded: a lead found INVALID had its purchases refunded.
	EventLeadRefunded = "lead.bounce_refunded"
	// EventReportCreated: a buyer reported a bounce.
	EventReportCreated = "bounce_report.created"
	// EventReportResolved: a bounce report was refunded or declined.
	EventReportResolved = "bounce_report.resolved"
)

// refundedReason is the reason of a REFUNDED report.
const refundedReason = "the address was found invalid; the purchase's credits were refunded"

// refundCause says what found a lead INVALID, for the audit log.
type refundCause struct {
	Purpose string
	// ReportID is the bounce report whose check found it; empty for the pipeline.
	ReportID string
	// ReportedPurchaseID is that report's purchase: refunded even when its purchase has just
	// left the window since it was reported within it.
	ReportedPurchaseID string
}

// refunded is one purchase refunded.
type refunded struct {
	PurchaseID  string `json:"purchaseId"`
	WorkspaceID string `json:"workspaceId"`
	Credits     int64  `json:"credits"`
}

// refundLead refunds, in tx, every purchase of leadID made within the refund window (and the
// reported one), each once: a REFUND of its credits with reference RefundReference, the
// reversal of its partner's commission, an audit entry; the purchases' pending bounce reports
// become REFUNDED, and an event tells of it. The caller has given the lead its INVALID verdict in
// tx (lead.SetVerdict), which holds the lead's row: a refund of the same lead waits for tx, and a
// purchase of it then finds it not for sale. It returns the purchases it refunded now.
func (s *Service) refundLead(ctx context.Context, tx bun.Tx, leadID, previous string, cause refundCause) ([]refunded, error) {
	ps, err := marketplace.PurchasesOfLead(ctx, tx, leadID, time.Now().Add(-s.o.RefundWindow))
	if err != nil {
		return nil, err
	}
	if cause.ReportedPurchaseID != "" && !slices.ContainsFunc(ps, func(p marketplace.PurchaseRecord) bool { return p.ID == cause.ReportedPurchaseID }) {
		p, err := marketplace.PurchaseByID(ctx, tx, cause.ReportedPurchaseID)
		if err != nil {
			return nil, err
		}
		if p != nil {
			ps = append(ps, *p)
			// Balances are taken in workspace order, as by every refund of a lead.
			slices.SortFunc(ps, func(a, b marketplace.PurchaseRecord) int { return strings.Compare(a.WorkspaceID, b.WorkspaceID) })
		}
	}
	// The balances first (in workspace order), the partner's earnings last: a refund then never
	// waits for a lock while it holds the partner's row (which its earnings' foreign key locks),
	// as a sale takes its buyer's balance before its earnings too.
	var done []refunded
	settled := make([]string, 0, len(ps))
	balances := map[string]int64{}
	for _, p := range ps {
		settled = append(settled, p.ID)
		balance, err := credit.Apply(ctx, tx, credit.Entry{
			WorkspaceID: p.WorkspaceID, Kind: credit.KindRefund, Amount: p.CreditsSpent, Reference: RefundReference(p.ID),
			Description: "lead " + leadID + " found invalid",
		})
		if errors.Is(err, credit.ErrAlreadyApplied) {
			continue
		}
		if err != nil {
			return nil, err
		}
		balances[p.ID] = balance
		done = append(done, refunded{PurchaseID: p.ID, WorkspaceID: p.WorkspaceID, Credits: p.CreditsSpent})
	}
	ids := make([]string, len(done))
	for i, d := range done {
		ids[i] = d.PurchaseID
	}
	reversals, err := partner.ReverseSales(ctx, tx, ids)
	if err != nil {
		return nil, err
	}
	reversed := map[string]int64{}
	for _, r := range reversals {
		reversed[r.LeadPurchaseID] += r.AmountCents
	}
	for _, d := range done {
		balance := balances[d.PurchaseID]
		if err := audit.Record(ctx, tx, audit.Entry{
			ActorType: audit.ActorSystem, WorkspaceID: d.WorkspaceID, Action: "credits.refunded",
			ResourceType: "lead_purchase", ResourceID: d.PurchaseID, Severity: audit.SeverityNotice,
			Old: map[string]any{"credits": balance - d.Credits}, New: map[string]any{"credits": balance},
			Metadata: map[string]any{
				"reason": "lead found invalid", "leadId": leadID, "reference": RefundReference(d.PurchaseID), "refunded": d.Credits,
				"purpose": cause.Purpose, "bounceReportId": cause.ReportID, "partnerEarningReversedCents": reversed[d.PurchaseID],
			},
		}); err != nil {
			return nil, err
		}
	}
	if err := refundReports(ctx, tx, settled, refundedReason); err != nil {
		return nil, err
	}
	if len(done) == 0 {
		return nil, nil
	}
	if err := audit.Record(ctx, tx, audit.Entry{
		ActorType: audit.ActorSystem, Action: "lead.invalidated", ResourceType: "lead", ResourceID: leadID,
		Severity: audit.SeverityNotice, Old: map[string]any{"verificationStatus": previous},
		New:      map[string]any{"verificationStatus": lead.StatusInvalid},
		Metadata: map[string]any{"purpose": cause.Purpose, "bounceReportId": cause.ReportID, "refunds": done},
	}); err != nil {
		return nil, err
	}
	if err := events.Publish(ctx, tx, EventLeadRefunded, map[string]any{"leadId": leadID, "refunds": done}); err != nil {
		return nil, err
	}
	return done, nil
}

// ReportInput is a buyer's bounce report.
type ReportInput struct {
	PurchaseID     string `json:"purchaseId"`
	IdempotencyKey string `json:"-"`
}

// BounceArgs is the job that re-checks a reported address and settles the report.
type BounceArgs struct {
	ReportID string `json:"report_id"`
}

// Kind names the job.
func (BounceArgs) Kind() string { return "verify_bounce" }

// InsertOpts puts the job on Queue ahead of the pipeline's.
func (BounceArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: Queue, Priority: priorityBounce}
}

// BounceWorker works BounceArgs jobs.
type BounceWorker struct {
	river.WorkerDefaults[BounceArgs]
	svc *Service
}

// NewBounceWorker returns the worker of svc's bounce reports.
func NewBounceWorker(svc *Service) *BounceWorker { return &BounceWorker{svc: svc} }

// NextRetry waits Options.Backoff after a failed check.
func (w *BounceWorker) NextRetry(job *river.Job[BounceArgs]) time.Time {
	return time.Now().Add(w.svc.o.Backoff(job.Attempt))
}

// Timeout bounds one check: two provider calls, the wait for a slot and the refunds.
func (w *BounceWorker) Timeout(*river.Job[BounceArgs]) time.Duration {
	return 4*w.svc.o.Timeout + time.Minute
}

// Work settles the report.
func (w *BounceWorker) Work(ctx context.Context, job *river.Job[BounceArgs]) error {
	return w.svc.ResolveReport(ctx, job.Args.ReportID, job.Attempt, job.MaxAttempts)
}

// ReportBounce records a buyer's report that the address of a purchased lead bounced, and
// enqueues its check: the address is verified again now (a fresh provider call, not the stored
// verdict); if it is INVALID, every purchase of the lead within BOUNCE_REFUND_WINDOW is refunded,
// this one included; otherwise the report is DECLINED with the verdict as its reason. Members of
// the buying workspace only, within the window of the purchase, once per purchase: a purchase
// reported already (by anyone, with any key) answers with its report. The same idempotency key
// sent again, even at the same moment, returns the same report, as it stands now.
// Errors: NOT_FOUND (no such purchase, or another workspace's), INVALID_INPUT (a bad id or key;
// reason REFUND_WINDOW_CLOSED past the window), IDEMPOTENCY_KEY_REUSED, IDEMPOTENCY_IN_PROGRESS,
// UNAVAILABLE when verification is off.
func (s *Service) ReportBounce(ctx context.Context, c *auth.Caller, in ReportInput) (Report, error) {
	if c == nil {
		return Report{}, apperr.New(apperr.Unauthenticated, "sign in to do this")
	}
	if err := apperr.CheckID(in.PurchaseID); err != nil {
		return Report{}, err
	}
	if !s.Enabled() {
		return Report{}, apperr.New(apperr.Unavailable, "email verification is off: bounce reports cannot be checked now")
	}
	var r Report
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		key := idempotency.Key{UserID: c.UserID, Key: in.IdempotencyKey, Operation: "reportLeadBounce", Request: in, Required: true}
		var err error
		r, _, err = idempotency.Do(ctx, tx, key, func() (Report, error) { return s.report(ctx, tx, c, in) })
		return err
	})
	if err != nil {
		return Report{}, fmt.Errorf("report bounce of purchase %s: %w", in.PurchaseID, err)
	}
	// A replay answers with the report as it is now, not as it was when first answered.
	now, err := reportByID(ctx, s.db, r.ID)
	if err != nil || now == nil {
		return r, err
	}
	return *now, nil
}

func (s *Service) report(ctx context.Context, tx bun.Tx, c *auth.Caller, in ReportInput) (Report, error) {
	notFound := apperr.New(apperr.NotFound, "purchase %s not found", in.PurchaseID)
	p, err := marketplace.PurchaseByID(ctx, tx, in.PurchaseID)
	if err != nil {
		return Report{}, err
	}
	if p == nil {
		return Report{}, notFound
	}
	// Another workspace's purchase is not there for the caller: its existence is not disclosed.
	if _, err := workspace.RoleOf(ctx, tx, p.WorkspaceID, c.UserID); err != nil {
		if apperr.Is(err, apperr.Forbidden) {
			return Report{}, notFound
		}
		return Report{}, err
	}
	if p.CreatedAt.Before(time.Now().Add(-s.o.RefundWindow)) {
		return Report{}, apperr.New(apperr.InvalidInput, "a bounce can be reported within %s of the purchase; this one was made %s",
			windowText(s.o.RefundWindow), p.CreatedAt.UTC().Format(time.DateOnly)).With("reason", "REFUND_WINDOW_CLOSED")
	}
	// A purchase refunded already (its lead was found INVALID since) needs no check: its report
	// is settled as it is written.
	refunded, err := credit.Applied(ctx, tx, RefundReference(p.ID))
	if err != nil {
		return Report{}, err
	}
	rep := Report{
		PurchaseID: p.ID, WorkspaceID: p.WorkspaceID, LeadID: p.LeadID, ReportedBy: c.UserID,
		PurchaseCredits: p.CreditsSpent, PurchasedAt: p.CreatedAt, Status: ReportPending,
	}
	if refunded {
		reason := refundedReason
		rep.Status, rep.Reason = ReportRefunded, &reason
	}
	r, created, err := insertReport(ctx, tx, rep)
	if err != nil || !created {
		return r, err
	}
	if !refunded {
		if _, err := s.queue.InsertTx(ctx, tx, BounceArgs{ReportID: r.ID}, s.bounceJobOpts()); err != nil {
			return Report{}, err
		}
	}
	if err := audit.Record(ctx, tx, audit.Entry{
		ActorUserID: c.UserID, WorkspaceID: p.WorkspaceID, Action: "lead.bounce_reported", ResourceType: "bounce_report",
		ResourceID: r.ID, New: map[string]any{"purchaseId": p.ID, "leadId": p.LeadID, "status": r.Status},
	}); err != nil {
		return Report{}, err
	}
	if err := events.Publish(ctx, tx, EventReportCreated, map[string]any{
		"reportId": r.ID, "workspaceId": p.WorkspaceID, "purchaseId": p.ID,
	}); err != nil {
		return Report{}, err
	}
	return r, nil
}

// bounceJobOpts are the options of a report's check: on Queue ahead of the pipeline, retried up
// to VERIFY_MAX_ATTEMPTS times, and one live job per report, so that the sweep can enqueue the
// report of a job that died of our own failures without ever checking a report twice at once.
func (s *Service) bounceJobOpts() *river.InsertOpts {
	return &river.InsertOpts{
		Queue: Queue, Priority: priorityBounce, MaxAttempts: s.o.MaxAttempts,
		UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: []rivertype.JobState{
			rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRetryable,
			rivertype.JobStateRunning, rivertype.JobStateScheduled,
		}},
	}
}

// requeueStuckReports enqueues the check of every report still PENDING since before since whose
// job is gone (discarded after database failures, or lost): a report is settled, never left.
// Reports whose job lives are skipped by the job's uniqueness. It returns how many it enqueued.
func (s *Service) requeueStuckReports(ctx context.Context, since time.Time) (int, error) {
	var ids []string
	if err := s.db.NewRaw("SELECT id FROM bounce_reports WHERE status = 'PENDING' AND created_at < ? ORDER BY created_at LIMIT 1000", since).
		Scan(ctx, &ids); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("stuck bounce reports: %w", err)
	}
	n := 0
	for _, id := range ids {
		err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			res, err := s.queue.InsertTx(ctx, tx, BounceArgs{ReportID: id}, s.bounceJobOpts())
			if err == nil && !res.UniqueSkippedAsDuplicate {
				n++
			}
			return err
		})
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// windowText renders the refund window for people: in days when it is whole days.
func windowText(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%d days", d/(24*time.Hour))
	}
	return d.String()
}

// ResolveReport settles report reportID with a fresh check of its lead's address: INVALID
// refunds every purchase of the lead within the window (lead.SetVerdict, refundLead); another
// verdict declines the lead's pending reports with it as the reason, and stands as the lead's
// status. A check that fails is retried (attempt of maxAttempts, River's job attempts); when the
// last fails, the report is DECLINED as UNKNOWN with the error. A report that is not pending any
// more (settled with another report of the lead) is left alone.
func (s *Service) ResolveReport(ctx context.Context, reportID string, attempt, maxAttempts int) error {
	r, err := reportByID(ctx, s.db, reportID)
	if err != nil {
		return err
	}
	if r == nil || r.Status != ReportPending {
		return nil
	}
	l, err := lead.ForCheck(ctx, s.db, r.LeadID)
	if err != nil {
		return err
	}
	if l == nil {
		return river.JobCancel(fmt.Errorf("bounce report %s: lead %s is gone", reportID, r.LeadID))
	}
	var out Outcome
	if err := s.limiter.Do(ctx, func() { out = s.chain.Check(ctx, l.Email) }); err != nil {
		return err
	}
	if out.Interrupted {
		return out.Err
	}
	recordCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	err = s.db.RunInTx(recordCtx, nil, func(ctx context.Context, tx bun.Tx) error {
		var reason string
		switch {
		case out.Status == lead.StatusInvalid:
			v, err := lead.SetVerdict(ctx, tx, l.ID, "", out.Status)
			if err != nil {
				return err
			}
			if _, err := s.refundLead(ctx, tx, l.ID, v.Previous, refundCause{
				Purpose: PurposeBounce, ReportID: r.ID, ReportedPurchaseID: r.PurchaseID,
			}); err != nil {
				return err
			}
		case out.Status != "":
			if _, err := lead.SetVerdict(ctx, tx, l.ID, "", out.Status); err != nil {
				return err
			}
			reason = out.Status
			if _, err := declineReports(ctx, tx, l.ID, reason); err != nil {
				return err
			}
		case attempt >= maxAttempts:
			reason = lead.StatusUnknown + ": the address could not be verified: " + truncate(out.Err.Error(), 500)
			if err := declineReport(ctx, tx, r.ID, reason); err != nil {
				return err
			}
		}
		if err := insertCalls(ctx, tx, *l, PurposeBounce, attempt, out); err != nil {
			return err
		}
		if out.Status == "" && attempt < maxAttempts {
			return nil
		}
		now, err := reportByID(ctx, tx, r.ID)
		if err != nil {
			return err
		}
		if err := audit.Record(ctx, tx, audit.Entry{
			ActorType: audit.ActorSystem, WorkspaceID: r.WorkspaceID, Action: "lead.bounce_resolved",
			ResourceType: "bounce_report", ResourceID: r.ID, Old: map[string]any{"status": ReportPending},
			New:      map[string]any{"status": now.Status, "creditsRefunded": now.CreditsRefunded, "reason": now.Reason},
			Metadata: map[string]any{"purchaseId": r.PurchaseID, "leadId": r.LeadID, "verdict": out.Status},
		}); err != nil {
			return err
		}
		return events.Publish(ctx, tx, EventReportResolved, map[string]any{
			"reportId": r.ID, "workspaceId": r.WorkspaceID, "status": now.Status,
		})
	})
	if err != nil {
		return fmt.Errorf("resolve bounce report %s: %w", reportID, err)
	}
	if out.Status == "" && attempt < maxAttempts {
		return fmt.Errorf("bounce report %s: check failed: %w", reportID, out.Err)
	}
	if out.Status != "" {
		return s.refreshPassRates(recordCtx, []string{l.PartnerID})
	}
	return nil
}

// ReportPages are the page sizes of a workspace's bounce reports.
var ReportPages = page.Bounds{Default: 25, Max: 100}

// Reports returns a page of a workspace's bounce reports, newest first, to its members and
// platform admins. Errors: FORBIDDEN, INVALID_INPUT.
func (s *Service) Reports(ctx context.Context, c *auth.Caller, workspaceID string, args page.Args) (page.Page[Report], error) {
	if err := workspace.RequireMemberOrAdmin(ctx, s.db, workspaceID, c); err != nil {
		return page.Page[Report]{}, err
	}
	limit, after, err := page.Open(args, ReportPages, func(p page.TimeID) bool {
		return p.ValidTime() && apperr.CheckID(p.I) == nil
	})
	if err != nil {
		return page.Page[Report]{}, err
	}
	q := s.db.NewSelect().TableExpr("bounce_reports").ColumnExpr(reportColumns).
		Where("workspace_id = ?", workspaceID).OrderExpr("created_at DESC, id DESC").Limit(int64(limit + 1))
	if after != nil {
		q = q.Where("(created_at, id) < (?, ?::uuid)", after.T, after.I)
	}
	var rs []Report
	if err := q.Scan(ctx, &rs); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return page.Page[Report]{}, fmt.Errorf("bounce reports of %s: %w", workspaceID, err)
	}
	return page.New(rs, limit, func(r Report) any { return page.TimeID{T: r.CreatedAt, I: r.ID} }), nil
}

package ingest

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/internal/apperr"
	"github.com/leadmarket/leadmarket/internal/audit"
	"github.com/leadmarket/leadmarket/internal/auth"
	"github.com/leadmarket/leadmarket/internal/db"
	"github.com/leadmarket/leadmarket/internal/lead"
	"github.com/leadmarket/leadmarket/internal/page"
	"github.com/leadmarket/leadmarket/internal/partner"
)

// UploadPages are the page sizes of a partner's uploads.
var UploadPages = page.Bounds{Default: 25, Max: 100}

// RejectionPages are the page sizes of an upload's rejections.
var RejectionPages = page.Bounds{Default: 50, Max: 500}

// visible returns the upload if c may see it (the partner's members, platform admins), else nil;
// an existing upload hidden from c is recorded as a denied access. Errors: INVALID_INPUT for an
// id that is not one.
func (s *Service) visible(ctx context.Context, c *auth.Caller, id string) (*Upload, error) {
	if err := apperr.CheckID(id); err != nil {
		return nil, err
	}
	u, err := getUpload(ctx, s.db, id)
	if err != nil || u == nil {
		return nil, err
	}
	err = partner.RequireMemberOrAdmin(ctx, s.db, u.PartnerID, c)
	if apperr.Is(err, apperr.Forbidden) {
		// Whether the upload exists is not disclosed, but the probe is a security event.
		ev := audit.SecurityEvent{Kind: "access_denied", Risk: audit.RiskMedium,
			Details: map[string]any{"resourceType": "lead_upload", "resourceId": id, "reason": apperr.CodeOf(err)}}
		if c != nil {
			ev.UserID = c.UserID
		}
		if err := audit.RecordSecurity(context.WithoutCancel(ctx), s.db, ev); err != nil {
			return nil, err
		}
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return u, nil
}

// Get returns an upload to its partner's members and platform admins; nil for anyone else, as
// for an upload that does not exist. Errors: INVALID_INPUT.
func (s *Service) Get(ctx context.Context, c *auth.Caller, id string) (*Upload, error) {
	return s.visible(ctx, c, id)
}

// uploadCursor is the keyset position of an upload in its partner's list: newest first.
type uploadCursor = page.TimeID

// List returns a page of a partner's uploads, newest first, to its members and platform admins.
// Errors: FORBIDDEN, INVALID_INPUT.
func (s *Service) List(ctx context.Context, c *auth.Caller, partnerID string, args page.Args) (page.Page[Upload], error) {
	if err := partner.RequireMemberOrAdmin(ctx, s.db, partnerID, c); err != nil {
		return page.Page[Upload]{}, err
	}
	limit, after, err := page.Open(args, UploadPages, func(p uploadCursor) bool { return p.ValidTime() && apperr.CheckID(p.I) == nil })
	if err != nil {
		return page.Page[Upload]{}, err
	}
	q := s.db.NewSelect().TableExpr("lead_uploads AS u").ColumnExpr(uploadColumns).
		Where("u.partner_id = ?", partnerID).OrderExpr("u.created_at DESC, u.id DESC").Limit(int64(limit + 1))
	if after != nil {
		q.Where("(u.created_at, u.id) < (?, ?)", after.T, after.I)
	}
	var us []Upload
	if err := q.Scan(ctx, &us); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return page.Page[Upload]{}, fmt.Errorf("uploads of %s: %w", partnerID, err)
	}
	return page.New(us, limit, func(u Upload) any { return uploadCursor{T: u.CreatedAt, I: u.ID} }), nil
}

// StoredRejection is a rejected row as LeadRejection shows it.
type StoredRejection struct {
	RowNumber int    `bun:"row_number"`
	Reason    Reason `bun:"reason"`
	// Field is empty when the rejection is about the whole row.
	Field  string `bun:"field"`
	Detail string `bun:"detail"`
	// Raw is the row's values keyed by the file's columns (Header.RawMap).
	Raw map[string]string `bun:"raw,type:jsonb"`
	// DuplicateOfLeadID is set for DUPLICATE_SAME_PARTNER only.
	DuplicateOfLeadID *string `bun:"duplicate_of_lead_id"`
}

// rejectionCursor is the keyset position of a rejection: its row number.
type rejectionCursor struct {
	R int `json:"r"`
}

// IsReason reports whether r is one of the rejection reasons.
func IsReason(r Reason) bool {
	switch r {
	case ReasonInvalidEmail, ReasonMissingFields, ReasonInvalidValue, ReasonMalformedRow,
		ReasonDuplicateInFile, ReasonDuplicateSamePartner, ReasonDuplicateCrossPartner:
		return true
	}
	return false
}

// Reasons lists every rejection reason, in the order of enum RejectionReason.
func Reasons() []Reason {
	return []Reason{ReasonInvalidEmail, ReasonMissingFields, ReasonInvalidValue, ReasonMalformedRow,
		ReasonDuplicateInFile, ReasonDuplicateSamePartner, ReasonDuplicateCrossPartner}
}

// Rejections returns a page of an upload's rejected rows in row order, of one reason when reason
// is not empty, to those who may see the upload (Get); for others, and for an upload whose
// rejections were purged, the page is empty. Errors: INVALID_INPUT.
func (s *Service) Rejections(ctx context.Context, c *auth.Caller, uploadID string, reason Reason, args page.Args) (page.Page[StoredRejection], error) {
	limit, after, err := page.Open(args, RejectionPages, func(p rejectionCursor) bool { return p.R > 0 })
	if err != nil {
		return page.Page[StoredRejection]{}, err
	}
	if reason != "" && !IsReason(reason) {
		return page.Page[StoredRejection]{}, apperr.New(apperr.InvalidInput, "%q is not a rejection reason", reason)
	}
	u, err := s.visible(ctx, c, uploadID)
	if err != nil || u == nil {
		return page.Page[StoredRejection]{}, err
	}
	q := s.db.NewSelect().TableExpr("lead_rejections AS r").
		ColumnExpr("r.row_number, r.reason, r.field, r.detail, r.raw, r.duplicate_of_lead_id").
		Where("r.upload_id = ?", uploadID).OrderExpr("r.row_number").Limit(int64(limit + 1))
	if reason != "" {
		q.Where("r.reason = ?", string(reason))
	}
	if after != nil {
		q.Where("r.row_number > ?", after.R)
	}
	var rs []StoredRejection
	if err := q.Scan(ctx, &rs); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return page.Page[StoredRejection]{}, fmt.Errorf("rejections of %s: %w", uploadID, err)
	}
	return page.New(rs, limit, func(r StoredRejection) any { return rejectionCursor{R: r.RowNumber} }), nil
}

// ReasonCount is how many rows were rejected for one reason.
type ReasonCount struct {
	Reason Reason
	Count  int64
}

// Stats is a partner's supply at a glance.
type Stats struct {
	// LeadsTotal, LeadsActive and LeadsSold count the partner's leads: all, those for sale
	// (ACTIVE and not found INVALID) and those bought at least once.
	LeadsTotal, LeadsActive, LeadsSold int64
	// Uploads counts the partner's uploads, dry runs left out, whatever their status.
	Uploads int64
	// RowsRejected counts the rows of those uploads that were not accepted.
	RowsRejected int64
	// RejectionsByReason splits RowsRejected by reason, every reason listed (Reasons' order).
	RejectionsByReason []ReasonCount
	// VerificationPassRate is valid / verified of the partner's leads; nil until one is verified.
	VerificationPassRate *float64
}

// Stats returns a partner's stats to its members and platform admins. Dry runs are left out of
// the upload figures: they are checks, not supply. The counts of rejections outlive the purge
// of the rejections themselves. Errors: FORBIDDEN, INVALID_INPUT.
func (s *Service) Stats(ctx context.Context, c *auth.Caller, partnerID string) (Stats, error) {
	if err := partner.RequireMemberOrAdmin(ctx, s.db, partnerID, c); err != nil {
		return Stats{}, err
	}
	// Counts a replica's lag behind are fine, and the partner's own upload reads the primary for
	// a while after it (db.Reader); access is checked on the primary.
	return statsOf(ctx, db.Reader(ctx, s.db), partnerID)
}

func statsOf(ctx context.Context, db bun.IDB, partnerID string) (Stats, error) {
	var st Stats
	leads, err := lead.CountsOf(ctx, db, partnerID)
	if err != nil {
		return st, err
	}
	st.LeadsTotal, st.LeadsActive, st.LeadsSold = leads.Total, leads.ForSale, leads.Sold
	var up struct {
		Uploads  int64           `bun:"uploads"`
		Rejected int64           `bun:"rejected"`
		ByReason json.RawMessage `bun:"by_reason"`
	}
	if err := db.NewRaw(`SELECT count(*) AS uploads, coalesce(sum(u.duplicate_count + u.invalid_count), 0) AS rejected,
			(SELECT coalesce(jsonb_object_agg(key, total), '{}') FROM (
				SELECT r.key, sum(r.value::bigint) AS total
				FROM lead_uploads AS x, jsonb_each_text(x.rejection_counts) AS r
				WHERE x.partner_id = ? AND NOT x.dry_run GROUP BY r.key) AS t) AS by_reason
		FROM lead_uploads AS u WHERE u.partner_id = ? AND NOT u.dry_run`, partnerID, partnerID).Scan(ctx, &up); err != nil {
		return st, fmt.Errorf("upload stats of %s: %w", partnerID, err)
	}
	st.Uploads, st.RowsRejected = up.Uploads, up.Rejected
	byReason := map[string]int64{}
	if err := json.Unmarshal(up.ByReason, &byReason); err != nil {
		return st, fmt.Errorf("upload stats of %s: %w", partnerID, err)
	}
	for _, r := range Reasons() {
		st.RejectionsByReason = append(st.RejectionsByReason, ReasonCount{Reason: r, Count: byReason[string(r)]})
	}
	vs, err := lead.VerificationCounts(ctx, db, []string{partnerID})
	if err != nil {
		return st, err
	}
	if len(vs) == 1 && vs[0].Verified > 0 {
		rate := float64(vs[0].Valid) / float64(vs[0].Verified)
		st.VerificationPassRate = &rate
	}
	return st, nil
}

// PurgeRejections deletes the rejections of uploads created more than Options.Retention ago
// (UPLOAD_RETENTION) and returns how many went; their uploads and counts stay, marked purged.
// The hourly clean-up runs it.
func (s *Service) PurgeRejections(ctx context.Context) (int64, error) {
	res, err := s.db.ExecContext(ctx, `WITH old AS (
			UPDATE lead_uploads SET rejections_purged_at = now(), updated_at = now()
			WHERE created_at < ? AND rejections_purged_at IS NULL AND status IN ('COMPLETED', 'FAILED')
			RETURNING id)
		DELETE FROM lead_rejections AS r USING old WHERE r.upload_id = old.id`, time.Now().Add(-s.opts.Retention))
	if err != nil {
		return 0, fmt.Errorf("purge rejections: %w", err)
	}
	return res.RowsAffected()
}

package verify

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/leadmarket/leadmarket/internal/auth"
	"github.com/leadmarket/leadmarket/internal/lead"
)

// ProviderCount is a provider's calls and failed calls over the last 24 hours.
type ProviderCount struct {
	Provider string `bun:"provider"`
	Calls    int64  `bun:"calls"`
	Failures int64  `bun:"failures"`
}

// Stats are the pipeline's figures for admins.
type Stats struct {
	// Pending counts the leads without a verdict yet.
	Pending int64
	// InFlight counts the provider calls in flight right now, across every instance.
	InFlight int64
	// VerifiedLast24h counts the leads given a verdict in the last 24 hours.
	VerifiedLast24h int64
	// ByStatus counts every lead by verification status, each status listed.
	ByStatus []lead.StatusCount
	// ByProvider counts each provider's calls and failed calls of the last 24 hours, both listed.
	ByProvider []ProviderCount
	// FailuresLast24h counts the failed attempts of the last 24 hours: checks no provider could
	// answer (each retried with backoff, the last one making the lead UNKNOWN).
	FailuresLast24h int64
}

// Stats returns the pipeline's figures. Platform admins only. Errors: FORBIDDEN.
func (s *Service) Stats(ctx context.Context, c *auth.Caller) (Stats, error) {
	if err := c.AdminAccess(); err != nil {
		return Stats{}, err
	}
	var st Stats
	var err error
	if st.ByStatus, err = lead.CountByVerificationStatus(ctx, s.db); err != nil {
		return st, err
	}
	for _, sc := range st.ByStatus {
		if sc.Status == lead.StatusPending {
			st.Pending = sc.Count
		}
	}
	inFlight, err := InFlight(ctx, s.db)
	if err != nil {
		return st, err
	}
	st.InFlight = int64(inFlight)
	since := time.Now().Add(-24 * time.Hour)
	if st.VerifiedLast24h, err = lead.CountVerifiedSince(ctx, s.db, since); err != nil {
		return st, err
	}
	var rows []ProviderCount
	if err := s.db.NewRaw(`SELECT provider, count(*) AS calls, count(*) FILTER (WHERE error IS NOT NULL) AS failures
		FROM lead_verifications WHERE created_at > ? GROUP BY provider`, since).Scan(ctx, &rows); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return st, fmt.Errorf("verification calls: %w", err)
	}
	by := map[string]ProviderCount{}
	for _, r := range rows {
		by[r.Provider] = r
	}
	for _, p := range []string{ProviderMillionVerifier, ProviderZeroBounce} {
		pc := by[p]
		pc.Provider = p
		st.ByProvider = append(st.ByProvider, pc)
	}
	if err := s.db.NewRaw(`SELECT count(DISTINCT check_id) FROM lead_verifications WHERE created_at > ? AND check_failed`, since).
		Scan(ctx, &st.FailuresLast24h); err != nil {
		return st, fmt.Errorf("failed verifications: %w", err)
	}
	return st, nil
}

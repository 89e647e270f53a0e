package partner

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/internal/apperr"
	"github.com/leadmarket/leadmarket/internal/auth"
)

// RequireMember returns nil when userID is a member of partnerID: the one check of who works for
// a partner, for every service that acts on a partner's behalf (earnings, uploads, stats).
// Errors: FORBIDDEN (also for a partner that does not exist, which callers must not be able to
// tell apart), INVALID_INPUT.
func RequireMember(ctx context.Context, db bun.IDB, partnerID, userID string) error {
	if err := apperr.CheckID(partnerID); err != nil {
		return err
	}
	var ok bool
	if err := db.NewRaw("SELECT EXISTS (SELECT 1 FROM partner_members WHERE partner_id = ? AND user_id = ?)",
		partnerID, userID).Scan(ctx, &ok); err != nil {
		return fmt.Errorf("partner membership: %w", err)
	}
	if !ok {
		return apperr.New(apperr.Forbidden, "only the partner's members may do this").With("partnerId", partnerID)
	}
	return nil
}

// RequireMemberOrAdmin allows the partner's members and callers with platform-admin access (with
// an aal2 session unless MFA is optional). Errors: FORBIDDEN (reason MFA_REQUIRED for an admin
// without aal2 that is not a member), INVALID_INPUT.
func RequireMemberOrAdmin(ctx context.Context, db bun.IDB, partnerID string, c *auth.Caller) error {
	if err := apperr.CheckID(partnerID); err != nil {
		return err
	}
	return c.MemberOrAdmin(func() error { return RequireMember(ctx, db, partnerID, c.UserID) })
}

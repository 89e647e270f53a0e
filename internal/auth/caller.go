package auth

import (
	"context"
	"time"

	"github.com/leadmarket/leadmarket/internal/apperr"
)

// Caller is the authenticated user behind a request.
type Caller struct {
	UserID          string
	Email           string
	IsPlatformAdmin bool
	// AAL is the token's authenticator assurance level ("aal1", "aal2").
	AAL string
	// ExpiresAt is when the token expires; a WebSocket opened with it is closed then.
	ExpiresAt time.Time
	// MFAOptional is the MFA policy, settled when the caller is authenticated: true when
	// ADMIN_REQUIRE_MFA is off, so platform-admin access counts without an aal2 session. Zero
	// (the default of a caller built by hand): platform-admin access needs aal2.
	MFAOptional bool
}

// HasMFA reports whether the caller's session passed multi-factor authentication.
func (c *Caller) HasMFA() bool { return c != nil && c.AAL == AAL2 }

type callerKey struct{}

type authErrKey struct{}

// WithCaller returns ctx carrying c.
func WithCaller(ctx context.Context, c *Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFrom returns the caller in ctx, or nil for an anonymous request.
func CallerFrom(ctx context.Context) *Caller {
	c, _ := ctx.Value(callerKey{}).(*Caller)
	return c
}

// WithAuthError records that the request presented credentials that failed, so fields that need
// a caller refuse with that error rather than as anonymous.
func WithAuthError(ctx context.Context, err error) context.Context {
	return context.WithValue(ctx, authErrKey{}, err)
}

// AuthErrorFrom returns the credential error recorded in ctx, if any.
func AuthErrorFrom(ctx context.Context) error {
	err, _ := ctx.Value(authErrKey{}).(error)
	return err
}

// Require returns the caller, or UNAUTHENTICATED when there is none.
func Require(ctx context.Context) (*Caller, error) {
	if c := CallerFrom(ctx); c != nil {
		return c, nil
	}
	return nil, apperr.New(apperr.Unauthenticated, "sign in to do this")
}

// MemberOrAdmin allows c when member (its membership check, run only when needed) passes, or when
// c may use platform-admin access. An admin refused by both gets the admin refusal (MFA_REQUIRED,
// say), which says what would let it in.
func (c *Caller) MemberOrAdmin(member func() error) error {
	adminErr := c.AdminAccess()
	if adminErr == nil {
		return nil
	}
	err := member()
	if c.IsPlatformAdmin && apperr.Is(err, apperr.Forbidden) {
		return adminErr
	}
	return err
}

// AdminAccess returns nil when c may use platform-admin access (reading or changing what is not
// its own): a platform admin, with an aal2 session unless MFAOptional. Errors: FORBIDDEN, with
// reason MFA_REQUIRED for an admin without aal2.
func (c *Caller) AdminAccess() error {
	if c == nil || !c.IsPlatformAdmin {
		return apperr.New(apperr.Forbidden, "platform admins only")
	}
	if !c.MFAOptional && !c.HasMFA() {
		return apperr.New(apperr.Forbidden, "this needs a session with multi-factor authentication (aal2)").
			With("reason", string(apperr.MFARequired))
	}
	return nil
}

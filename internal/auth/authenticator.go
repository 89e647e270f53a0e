package auth

import (
	"context"
	"strings"
	"sync"
	"time"
)

// Provisioner finds or creates the user behind a verified token ("users are provisioned on first
// sight"). It returns the user's id and whether it is a platform admin.
type Provisioner interface {
	Provision(ctx context.Context, subject, email string) (userID string, isPlatformAdmin bool, err error)
}

// Authenticator turns an Authorization header into a Caller.
type Authenticator struct {
	tokens   *Tokens
	users    Provisioner
	cacheTTL time.Duration
	// mfaOptional is !ADMIN_REQUIRE_MFA, stamped on every caller.
	mfaOptional bool
	mu          sync.Mutex
	cache       map[string]cachedUser
	lastPurge   time.Time
}

type cachedUser struct {
	id      string
	email   string
	isAdmin bool
	expires time.Time
}

// NewAuthenticator returns an Authenticator. Provisioned users are cached for cacheTTL (0: no
// cache) so a request does not cost a users lookup; a changed admin flag shows after at most
// that long. requireMFA (ADMIN_REQUIRE_MFA) is the MFA policy every caller it returns carries
// (Caller.MFAOptional), so access checks need no policy of their own.
func NewAuthenticator(tokens *Tokens, users Provisioner, cacheTTL time.Duration, requireMFA bool) *Authenticator {
	return &Authenticator{tokens: tokens, users: users, cacheTTL: cacheTTL, mfaOptional: !requireMFA, cache: map[string]cachedUser{}}
}

// Authenticate returns the caller for header ("Bearer <jwt>"); (nil, nil) when header is empty.
// Errors: ErrInvalidToken for a token that does not verify; provisioning errors as they are.
func (a *Authenticator) Authenticate(ctx context.Context, header string) (*Caller, error) {
	header = strings.TrimSpace(header)
	if header == "" {
		return nil, nil
	}
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return nil, ErrInvalidToken
	}
	claims, err := a.tokens.Verify(strings.TrimSpace(token))
	if err != nil {
		return nil, err
	}
	key := claims.Subject + "\x00" + claims.Email
	now := time.Now()
	if a.cacheTTL > 0 {
		a.mu.Lock()
		u, hit := a.cache[key]
		a.mu.Unlock()
		if hit && now.Before(u.expires) {
			return &Caller{UserID: u.id, Email: u.email, IsPlatformAdmin: u.isAdmin, AAL: claims.AAL, ExpiresAt: claims.expiry(),
				MFAOptional: a.mfaOptional}, nil
		}
	}
	id, isAdmin, err := a.users.Provision(ctx, claims.Subject, claims.Email)
	if err != nil {
		return nil, err
	}
	if a.cacheTTL > 0 {
		a.mu.Lock()
		if now.Sub(a.lastPurge) > a.cacheTTL {
			for k, v := range a.cache {
				if now.After(v.expires) {
					delete(a.cache, k)
				}
			}
			a.lastPurge = now
		}
		a.cache[key] = cachedUser{id: id, email: claims.Email, isAdmin: isAdmin, expires: now.Add(a.cacheTTL)}
		a.mu.Unlock()
	}
	return &Caller{UserID: id, Email: claims.Email, IsPlatformAdmin: isAdmin, AAL: claims.AAL, ExpiresAt: claims.expiry(),
		MFAOptional: a.mfaOptional}, nil
}

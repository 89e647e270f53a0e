// Package auth verifies and issues the HS256 JWTs callers present (Supabase-compatible claims
// sub, email and optional aal), and carries the authenticated caller through the context.
package auth

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// AAL2 is the authenticator assurance level of a session that passed multi-factor authentication.
const AAL2 = "aal2"

// Claims are the JWT claims Leadmarket reads: Supabase Auth's sub, email and aal.
type Claims struct {
	Email string `json:"email"`
	AAL   string `json:"aal,omitempty"`
	Role  string `json:"role,omitempty"`
	jwt.RegisteredClaims
}

// expiry is the token's exp (zero when it has none, which Verify does not accept).
func (c *Claims) expiry() time.Time {
	if c.ExpiresAt == nil {
		return time.Time{}
	}
	return c.ExpiresAt.Time
}

// Tokens signs and verifies HS256 tokens with one secret.
type Tokens struct {
	secret []byte
}

// NewTokens returns Tokens for secret (JWT_SECRET).
func NewTokens(secret string) *Tokens { return &Tokens{secret: []byte(secret)} }

// Issue returns a signed token for subject and email, valid for ttl; mfa sets aal2.
func (t *Tokens) Issue(subject, email string, mfa bool, ttl time.Duration) (string, error) {
	now := time.Now()
	c := Claims{
		Email: strings.ToLower(strings.TrimSpace(email)),
		AAL:   "aal1",
		Role:  "authenticated",
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   subject,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
	}
	if mfa {
		c.AAL = AAL2
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(t.secret)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return s, nil
}

// ErrInvalidToken is returned for any token that does not verify: bad signature, wrong
// algorithm, expired, not yet valid, or missing sub or email.
var ErrInvalidToken = errors.New("invalid token")

// Verify checks token's signature (HS256 only), expiry and required claims.
func (t *Tokens) Verify(token string) (*Claims, error) {
	var c Claims
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return t.secret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(30*time.Second),
	)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	if c.Subject == "" || strings.TrimSpace(c.Email) == "" {
		return nil, fmt.Errorf("%w: sub and email are required", ErrInvalidToken)
	}
	c.Email = strings.ToLower(strings.TrimSpace(c.Email))
	return &c, nil
}

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

// Tokens signs HS256 tokens with the current secret and verifies them with it or a previous
// one, so that a secret can be rotated without signing anybody out.
type Tokens struct {
	secret   []byte
	previous [][]byte
}

// NewTokens returns Tokens that sign with secret (JWT_SECRET) and also accept tokens signed
// with any of previous (JWT_SECRET_PREVIOUS; empty ones are ignored).
func NewTokens(secret string, previous ...string) *Tokens {
	t := &Tokens{secret: []byte(secret)}
	for _, p := range previous {
		if p != "" && p != secret {
			t.previous = append(t.previous, []byte(p))
		}
	}
	return t
}

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

// Verify checks token's signature (HS256 only, under the current secret or a previous one),
// expiry and required claims.
func (t *Tokens) Verify(token string) (*Claims, error) {
	c, err := t.parse(token, t.secret)
	for _, p := range t.previous {
		if !errors.Is(err, jwt.ErrTokenSignatureInvalid) {
			break
		}
		c, err = t.parse(token, p)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	if c.Subject == "" || strings.TrimSpace(c.Email) == "" {
		return nil, fmt.Errorf("%w: sub and email are required", ErrInvalidToken)
	}
	c.Email = strings.ToLower(strings.TrimSpace(c.Email))
	return c, nil
}

// parse verifies token under secret; a signature that does not match is
// jwt.ErrTokenSignatureInvalid, which Verify tries the previous secrets on.
func (t *Tokens) parse(token string, secret []byte) (*Claims, error) {
	var c Claims
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return secret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(30*time.Second),
	)
	return &c, err
}

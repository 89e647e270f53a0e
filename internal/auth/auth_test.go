package auth_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/leadmarket/leadmarket/internal/apperr"
	"github.com/leadmarket/leadmarket/internal/auth"
)

func TestVerify(t *testing.T) {
	tokens := auth.NewTokens("secret-secret-secret-secret-secret")
	good, err := tokens.Issue("sub-1", " Jane@Example.COM ", true, time.Minute)
	require.NoError(t, err)
	c, err := tokens.Verify(good)
	require.NoError(t, err)
	require.Equal(t, "sub-1", c.Subject)
	require.Equal(t, "jane@example.com", c.Email)
	require.Equal(t, auth.AAL2, c.AAL)

	expired, _ := tokens.Issue("sub-1", "j@example.com", false, -time.Minute)
	noEmail, _ := tokens.Issue("sub-1", "", false, time.Minute)
	other, _ := auth.NewTokens("other-other-other-other-other-other").Issue("sub-1", "j@example.com", false, time.Minute)
	noExp, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "s", "email": "j@example.com"}).
		SignedString([]byte("secret-secret-secret-secret-secret"))
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "s", "email": "j@example.com", "exp": time.Now().Add(time.Hour).Unix()}).
		SignedString(jwt.UnsafeAllowNoneSignatureType)
	for name, tok := range map[string]string{"expired": expired, "no email": noEmail, "other secret": other, "no exp": noExp, "alg none": none, "garbage": "a.b.c"} {
		_, err := tokens.Verify(tok)
		require.ErrorIs(t, err, auth.ErrInvalidToken, name)
	}
}

type fakeUsers struct{ calls int }

func (f *fakeUsers) Provision(_ context.Context, subject, email string) (string, bool, error) {
	f.calls++
	if email == "taken@example.com" {
		return "", false, apperr.New(apperr.Forbidden, "taken")
	}
	return "user-" + subject, false, nil
}

func TestAuthenticatorCachesProvisioning(t *testing.T) {
	tokens := auth.NewTokens("secret-secret-secret-secret-secret")
	users := &fakeUsers{}
	a := auth.NewAuthenticator(tokens, users, time.Minute, true)
	tok, _ := tokens.Issue("s1", "a@example.com", false, time.Minute)
	for range 3 {
		c, err := a.Authenticate(context.Background(), "Bearer "+tok)
		require.NoError(t, err)
		require.Equal(t, "user-s1", c.UserID)
	}
	require.Equal(t, 1, users.calls)

	c, err := a.Authenticate(context.Background(), "")
	require.NoError(t, err)
	require.Nil(t, c)
	for _, h := range []string{"Basic abc", "Bearer", "Bearer not-a-token"} {
		_, err := a.Authenticate(context.Background(), h)
		require.True(t, errors.Is(err, auth.ErrInvalidToken), h)
	}
	taken, _ := tokens.Issue("s2", "taken@example.com", false, time.Minute)
	_, err = a.Authenticate(context.Background(), "Bearer "+taken)
	require.Equal(t, apperr.Forbidden, apperr.CodeOf(err))
}

func TestVerify_PreviousSecretDuringRotation(t *testing.T) {
	const oldSecret, newSecret = "old-secret-old-secret-old-secret-00", "new-secret-new-secret-new-secret-00"
	before := auth.NewTokens(oldSecret)
	rotated := auth.NewTokens(newSecret, oldSecret)
	oldTok, err := before.Issue("sub-1", "j@example.com", false, time.Minute)
	require.NoError(t, err)
	newTok, err := rotated.Issue("sub-2", "k@example.com", false, time.Minute)
	require.NoError(t, err)

	c, err := rotated.Verify(oldTok)
	require.NoError(t, err, "a token signed with the previous secret still verifies")
	require.Equal(t, "sub-1", c.Subject)
	c, err = rotated.Verify(newTok)
	require.NoError(t, err)
	require.Equal(t, "sub-2", c.Subject)

	// New tokens are signed with the current secret: the current secret alone verifies them, the
	// previous one does not.
	_, err = auth.NewTokens(newSecret).Verify(newTok)
	require.NoError(t, err)
	_, err = before.Verify(newTok)
	require.ErrorIs(t, err, auth.ErrInvalidToken)

	// Neither secret: refused. An expired token of the previous secret is refused too.
	stranger, _ := auth.NewTokens("third-secret-third-secret-third-00").Issue("sub-3", "x@example.com", false, time.Minute)
	_, err = rotated.Verify(stranger)
	require.ErrorIs(t, err, auth.ErrInvalidToken)
	expiredOld, _ := before.Issue("sub-1", "j@example.com", false, -time.Minute)
	_, err = rotated.Verify(expiredOld)
	require.ErrorIs(t, err, auth.ErrInvalidToken)

	// After the rotation the previous secret is removed, and its tokens stop verifying.
	_, err = auth.NewTokens(newSecret).Verify(oldTok)
	require.ErrorIs(t, err, auth.ErrInvalidToken)
}

package app_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/leadmarket/leadmarket/internal/auth"
	"github.com/leadmarket/leadmarket/internal/dbtest"
)

// During a rotation (JWT_SECRET new, JWT_SECRET_PREVIOUS old) the API accepts tokens signed with
// either secret; a token signed with neither is UNAUTHENTICATED.
func TestJWTSecretRotation(t *testing.T) {
	t.Parallel()
	const previous = "the-previous-jwt-secret-0123456789abcdef"
	api := newAPI(t, map[string]string{"JWT_SECRET_PREVIOUS": previous})
	u := dbtest.CreateUser(t, api.db, dbtest.UserOpts{})
	issue := func(secret string) string {
		tok, err := auth.NewTokens(secret).Issue(u.Subject, u.Email, false, time.Hour)
		require.NoError(t, err)
		return tok
	}
	const me = "{ me { email } }"
	for name, tok := range map[string]string{"current": issue(testSecret), "previous": issue(previous)} {
		res := api.do(tok, me, nil)
		require.Empty(t, res.Errors, name)
		require.Contains(t, string(res.Data), u.Email, name)
	}
	require.Equal(t, "UNAUTHENTICATED", api.do(issue("neither-secret-neither-secret-012345"), me, nil).code())

	// Once the previous secret is removed its tokens stop working.
	after := newAPI(t, nil)
	require.Equal(t, "UNAUTHENTICATED", after.do(issue(previous), me, nil).code())
	require.Empty(t, after.do(issue(testSecret), me, nil).Errors)
}

// purchaseCredits checks the caller's role before anything else: a stranger to the workspace,
// or a plain member, is FORBIDDEN even though Stripe is not configured here (and even with input
// that is otherwise wrong); an owner learns that buying credits is UNAVAILABLE.
func TestPurchaseCreditsAuthorisesFirst(t *testing.T) {
	t.Parallel()
	api := newAPI(t, nil) // no STRIPE_SECRET_KEY
	ws, owner := dbtest.CreateWorkspace(t, api.db, dbtest.WorkspaceOpts{})
	stranger := dbtest.CreateUser(t, api.db, dbtest.UserOpts{})
	member := dbtest.CreateUser(t, api.db, dbtest.UserOpts{})
	dbtest.AddMember(t, api.db, ws, member.ID, "MEMBER")
	const mutation = `mutation($in: PurchaseCreditsInput!) { purchaseCredits(input: $in) { checkoutUrl } }`
	in := func(successURL string) map[string]any {
		return map[string]any{"in": map[string]any{"workspaceId": ws, "packageId": "00000000-0000-0000-0000-000000000001",
			"successUrl": successURL, "cancelUrl": "https://app.example.com/cancel"}}
	}
	for _, u := range []dbtest.User{stranger, member} {
		require.Equal(t, "FORBIDDEN", api.do(api.token(u, false), mutation, in("https://app.example.com/ok")).code(), u.Email)
		require.Equal(t, "FORBIDDEN", api.do(api.token(u, false), mutation, in("not a url")).code(), u.Email)
	}
	require.Equal(t, "UNAVAILABLE", api.do(api.token(owner, false), mutation, in("https://app.example.com/ok")).code())
}

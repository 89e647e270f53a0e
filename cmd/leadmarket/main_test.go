package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/leadmarket/leadmarket/internal/auth"
	"github.com/leadmarket/leadmarket/internal/config"
	"github.com/leadmarket/leadmarket/internal/dbtest"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Run(m)) }

func TestHelp(t *testing.T) {
	for _, arg := range []string{"help", "-h", "--help"} {
		var out, errs bytes.Buffer
		require.NoError(t, run(context.Background(), []string{arg}, &out, &errs), arg)
		require.Contains(t, out.String(), "usage: leadmarket", arg)
	}
}

// `seed --demo --json` prints the shape the README promises: every user with all five keys,
// workspaceId and partnerId null where the user has none.
func TestSeedJSONShape(t *testing.T) {
	ctx := context.Background()
	bdb := dbtest.FreshDB(t)
	t.Setenv("DATABASE_URL", dbtest.URL(dbtest.NameOf(ctx, bdb)))
	t.Setenv("LOG_LEVEL", "error")
	var out, errs bytes.Buffer
	require.NoError(t, run(ctx, []string{"seed", "--demo", "--leads", "60", "--json"}, &out, &errs), errs.String())
	var got struct {
		Users []map[string]any `json:"users"`
	}
	require.NoError(t, json.Unmarshal(out.Bytes(), &got), out.String())
	require.NotEmpty(t, got.Users)
	var admins, partners int
	for _, u := range got.Users {
		for _, k := range []string{"email", "role", "workspaceId", "partnerId", "token"} {
			require.Contains(t, u, k, "%v", u)
		}
		require.NotEmpty(t, u["token"])
		if u["workspaceId"] == nil && u["partnerId"] == nil {
			admins++
		}
		if u["partnerId"] != nil {
			partners++
		}
	}
	require.Equal(t, 1, admins, "the platform admin has neither")
	require.Equal(t, 5, partners)
}

// `token --admin` for a user who already signed in (under their identity provider's subject)
// prints a token for that account, which the server accepts, not one for a new subject.
func TestTokenAdminKeepsTheUsersSubject(t *testing.T) {
	ctx := context.Background()
	bdb := dbtest.FreshDB(t)
	t.Setenv("DATABASE_URL", dbtest.URL(dbtest.NameOf(ctx, bdb)))
	t.Setenv("LOG_LEVEL", "error")
	_, err := bdb.ExecContext(ctx, "INSERT INTO users (auth_subject, email) VALUES ('supabase-jane', 'jane@example.test')")
	require.NoError(t, err)
	var out, errs bytes.Buffer
	require.NoError(t, run(ctx, []string{"token", "--email", "Jane@Example.test", "--admin", "--mfa"}, &out, &errs), errs.String())
	claims, err := auth.NewTokens(config.DevJWTSecret).Verify(strings.TrimSpace(out.String()))
	require.NoError(t, err)
	require.Equal(t, "supabase-jane", claims.Subject)
	require.Equal(t, auth.AAL2, claims.AAL)
	var admin bool
	require.NoError(t, bdb.NewRaw("SELECT is_platform_admin FROM users WHERE email = 'jane@example.test'").Scan(ctx, &admin))
	require.True(t, admin)
}

// During a rotation `token` signs with JWT_SECRET, never with JWT_SECRET_PREVIOUS.
func TestTokenSignsWithTheCurrentSecret(t *testing.T) {
	const current, previous = "the-current-jwt-secret-0123456789abcdef", "the-previous-jwt-secret-0123456789abcde"
	t.Setenv("JWT_SECRET", current)
	t.Setenv("JWT_SECRET_PREVIOUS", previous)
	t.Setenv("LOG_LEVEL", "error")
	var out, errs bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"token", "--email", "jane@example.test"}, &out, &errs), errs.String())
	tok := strings.TrimSpace(out.String())
	_, err := auth.NewTokens(current).Verify(tok)
	require.NoError(t, err)
	_, err = auth.NewTokens(previous).Verify(tok)
	require.ErrorIs(t, err, auth.ErrInvalidToken)
}

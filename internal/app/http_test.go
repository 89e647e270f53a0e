package app_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/leadmarket/leadmarket/internal/app"
	"github.com/leadmarket/leadmarket/internal/dbtest"
)

func get(t *testing.T, rawURL string, header http.Header) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	require.NoError(t, err)
	for k, v := range header {
		req.Header[k] = v
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var body map[string]any
	_ = json.Unmarshal(b, &body)
	return res.StatusCode, body
}

func TestHealthAndReadiness(t *testing.T) {
	t.Parallel()
	api := newAPI(t, nil)
	status, _ := get(t, api.url+"/healthz", nil)
	require.Equal(t, http.StatusOK, status)
	status, body := get(t, api.url+"/readyz", nil)
	require.Equal(t, http.StatusOK, status, "%v", body)
	status, _ = get(t, api.url+"/metrics", nil)
	require.Equal(t, http.StatusOK, status)

	// A database missing a migration is not ready.
	fresh := dbtest.FreshDB(t)
	_, err := fresh.ExecContext(context.Background(), "DELETE FROM bun_migrations")
	require.NoError(t, err)
	require.ErrorContains(t, app.Ready(context.Background(), fresh), "migrations pending")
}

func TestGraphQLOverGET(t *testing.T) {
	t.Parallel()
	api := newAPI(t, nil)
	u := dbtest.CreateUser(t, api.db, dbtest.UserOpts{})
	// GraphQL-Preflight: a GET runs only with a header a cross-site page cannot send (CSRF).
	auth := http.Header{"Authorization": {"Bearer " + api.token(u, false)}, "GraphQL-Preflight": {"1"}}

	status, body := get(t, api.url+"/graphql?query="+url.QueryEscape("{ me { email } }"), auth)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, u.Email, body["data"].(map[string]any)["me"].(map[string]any)["email"])

	status, body = get(t, api.url+"/graphql?query="+url.QueryEscape(`mutation { createWorkspace(name: "via GET") { id } }`), auth)
	require.NotEqual(t, http.StatusOK, status, "a mutation over GET does not run: %v", body)
	var n int
	require.NoError(t, api.db.NewRaw("SELECT count(*) FROM workspaces WHERE created_by = ?", u.ID).Scan(context.Background(), &n))
	require.Zero(t, n)
}

func TestLedgerAndAuditAreAppendOnly(t *testing.T) {
	t.Parallel()
	tx := dbtest.TestTx(t)
	ctx := context.Background()
	ws, _ := dbtest.CreateWorkspace(t, tx, dbtest.WorkspaceOpts{Credits: 10})
	for _, stmt := range []string{
		"UPDATE credit_ledger SET amount = 1000 WHERE workspace_id = ?",
		"DELETE FROM credit_ledger WHERE workspace_id = ?",
	} {
		_, err := tx.ExecContext(ctx, "SAVEPOINT s")
		require.NoError(t, err)
		_, err = tx.ExecContext(ctx, stmt, ws)
		require.ErrorContains(t, err, "append-only", stmt)
		_, err = tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT s")
		require.NoError(t, err)
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO audit_logs (actor_type, action, resource_type) VALUES ('SYSTEM', 'test', 'test')`)
	require.NoError(t, err)
	var partition string
	require.NoError(t, tx.NewRaw("SELECT tableoid::regclass::text FROM audit_logs WHERE action = 'test'").Scan(ctx, &partition))
	require.Regexp(t, `^audit_logs_\d{4}_\d{2}$`, partition, "entries land in their month's partition")
	_, err = tx.ExecContext(ctx, "UPDATE audit_logs SET action = 'changed' WHERE action = 'test'")
	require.ErrorContains(t, err, "append-only")
}

package app_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/leadmarket/leadmarket/internal/app"
	"github.com/leadmarket/leadmarket/internal/auth"
	"github.com/leadmarket/leadmarket/internal/config"
	"github.com/leadmarket/leadmarket/internal/dbtest"
	"github.com/leadmarket/leadmarket/internal/export"
)

// newAppAPI is newAPI with the assembled app, whose export jobs a test runs itself, on a database
// of its own: an export job reads on one connection while it commits on another.
func newAppAPI(t *testing.T) (*apiServer, *app.App) {
	t.Helper()
	vars := map[string]string{"ENV": "test", "JWT_SECRET": testSecret, "ADMIN_REQUIRE_MFA": "true"}
	cfg, err := config.FromEnv(func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
	require.NoError(t, err)
	db := dbtest.FreshDB(t)
	a, err := app.Build(cfg, db, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	srv := httptest.NewServer(a.Server.Handler())
	t.Cleanup(srv.Close)
	return &apiServer{t: t, db: db, url: srv.URL, tokens: auth.NewTokens(cfg.JWTSecret)}, a
}

// fetch requests path on the API with token ("" for none) and returns the status and body.
func (s *apiServer) fetch(method, path, token string) (int, http.Header, []byte) {
	s.t.Helper()
	req, err := http.NewRequest(method, s.url+path, nil)
	require.NoError(s.t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(s.t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(s.t, err)
	return res.StatusCode, res.Header, b
}

type exportNode struct {
	ID, Kind, Status string
	RowsTotal        *int
	RowsDone         int
	DownloadURL      *string
	WorkspaceID      *string
}

const exportFields = `id kind status rowsTotal rowsDone downloadUrl workspaceId`

// From the mutation to the downloaded file over HTTP, with the bearer token; another workspace's
// owner gets 404s, a caller without a valid token 401.
func TestExportOverHTTP(t *testing.T) {
	t.Parallel()
	api, a := newAppAPI(t)
	db := api.db
	ws, owner := dbtest.CreateWorkspace(t, db, dbtest.WorkspaceOpts{})
	member := dbtest.CreateUser(t, db, dbtest.UserOpts{})
	dbtest.AddMember(t, db, ws, member.ID, "MEMBER")
	leads := dbtest.CreatePurchasedLeads(t, db, ws, 5, dbtest.PurchasesOpts{})
	_, otherOwner := dbtest.CreateWorkspace(t, db, dbtest.WorkspaceOpts{})
	tok, mtok, otok := api.token(owner, false), api.token(member, false), api.token(otherOwner, false)

	_, res := api.bulk(tok, bulkStatus, "bulkUpdateLeadStatus", map[string]any{"workspaceId": ws, "ids": leads[:2], "status": "CONTACTED"})
	require.Empty(t, res.Errors)
	var created struct{ ExportWorkspaceLeads exportNode }
	api.do(mtok, `mutation($in: ExportWorkspaceLeadsInput!) { exportWorkspaceLeads(input: $in) { `+exportFields+` } }`,
		map[string]any{"in": map[string]any{"workspaceId": ws, "filter": map[string]any{"statuses": []string{"NEW"}},
			"columns": []string{"ID", "EMAIL", "STATUS"}}}).decode(t, &created)
	e := created.ExportWorkspaceLeads
	require.Equal(t, "QUEUED", e.Status)
	require.Equal(t, "WORKSPACE_LEADS", e.Kind)
	require.Nil(t, e.DownloadURL)
	require.Nil(t, e.RowsTotal)
	code, _, _ := api.fetch(http.MethodGet, export.DownloadPath(e.ID), mtok)
	require.Equal(t, http.StatusConflict, code, "not written yet")

	require.NoError(t, export.NewWorker(a.Exports).Work(context.Background(), &river.Job[export.Args]{
		JobRow: &rivertype.JobRow{Attempt: 1, MaxAttempts: export.MaxAttempts}, Args: export.Args{ExportID: e.ID}}))

	var got struct{ Export *exportNode }
	api.do(mtok, `query($id: ID!) { export(id: $id) { `+exportFields+` } }`, map[string]any{"id": e.ID}).decode(t, &got)
	require.Equal(t, "COMPLETED", got.Export.Status)
	require.Equal(t, 3, got.Export.RowsDone)
	require.Equal(t, 3, *got.Export.RowsTotal)
	require.Equal(t, export.DownloadPath(e.ID), *got.Export.DownloadURL)
	var list struct {
		Exports struct{ Edges []struct{ Node exportNode } }
	}
	api.do(mtok, `query($ws: ID) { exports(workspaceId: $ws) { edges { node { id } } } }`, map[string]any{"ws": ws}).decode(t, &list)
	require.Len(t, list.Exports.Edges, 1)

	code, h, body := api.fetch(http.MethodGet, *got.Export.DownloadURL, mtok)
	require.Equal(t, http.StatusOK, code, string(body))
	require.Contains(t, h.Get("Content-Disposition"), "attachment; filename=workspace-leads-")
	records, err := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(body, []byte("\xEF\xBB\xBF")))).ReadAll()
	require.NoError(t, err)
	require.Equal(t, []string{"id", "email", "status"}, records[0])
	require.Len(t, records, 4)
	var exported []string
	for _, r := range records[1:] {
		require.Equal(t, "NEW", r[2])
		exported = append(exported, r[0])
	}
	require.Equal(t, leads[2:], exported)

	// Another workspace's owner: no export, a 404; no token or a bad one: 401.
	api.do(otok, `query($id: ID!) { export(id: $id) { id } }`, map[string]any{"id": e.ID}).decode(t, &got)
	require.Nil(t, got.Export)
	code, _, _ = api.fetch(http.MethodGet, *exportOf(t, api, mtok, e.ID).DownloadURL, otok)
	require.Equal(t, http.StatusNotFound, code)
	code, h, _ = api.fetch(http.MethodGet, export.DownloadPath(e.ID), "")
	require.Equal(t, http.StatusUnauthorized, code)
	require.Contains(t, h.Get("WWW-Authenticate"), "Bearer")
	code, _, _ = api.fetch(http.MethodGet, export.DownloadPath(e.ID), "not-a-token")
	require.Equal(t, http.StatusUnauthorized, code)
	code, _, _ = api.fetch(http.MethodPost, export.DownloadPath(e.ID), mtok)
	require.Equal(t, http.StatusMethodNotAllowed, code)
	res = api.do(otok, `mutation($in: ExportWorkspaceLeadsInput!) { exportWorkspaceLeads(input: $in) { id } }`,
		map[string]any{"in": map[string]any{"workspaceId": ws}})
	require.Equal(t, "FORBIDDEN", res.code())

	// The audit log: owners and admins of the workspace, naming it.
	res = api.do(mtok, `mutation($ws: ID) { exportAuditLogs(filter: {workspaceId: $ws}) { id } }`, map[string]any{"ws": ws})
	require.Equal(t, "FORBIDDEN", res.code())
	var audited struct{ ExportAuditLogs exportNode }
	api.do(tok, `mutation($ws: ID) { exportAuditLogs(filter: {workspaceId: $ws}) { `+exportFields+` } }`, map[string]any{"ws": ws}).
		decode(t, &audited)
	require.Equal(t, "AUDIT_LOGS", audited.ExportAuditLogs.Kind)
	require.Equal(t, ws, *audited.ExportAuditLogs.WorkspaceID)
}

// exportOf reads an export as token sees it, failing when it is null.
func exportOf(t *testing.T, api *apiServer, token, id string) exportNode {
	t.Helper()
	var got struct{ Export *exportNode }
	api.do(token, `query($id: ID!) { export(id: $id) { `+exportFields+` } }`, map[string]any{"id": id}).decode(t, &got)
	require.NotNil(t, got.Export)
	return *got.Export
}

package app_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/internal/app"
	"github.com/leadmarket/leadmarket/internal/auth"
	"github.com/leadmarket/leadmarket/internal/config"
	"github.com/leadmarket/leadmarket/internal/dbtest"
	"github.com/leadmarket/leadmarket/internal/httpserver"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Run(m)) }

const testSecret = "test-secret-for-the-api-tests-0123456789"

// apiServer is the real handler on a loopback port.
type apiServer struct {
	t      *testing.T
	db     *bun.DB
	url    string
	tokens *auth.Tokens
}

// newAPI serves the app on the test's own transaction (dbtest.TxDB): what the test writes,
// directly or through the API, is rolled back when it ends. The servers of one test share it.
func newAPI(t *testing.T, env map[string]string) *apiServer {
	t.Helper()
	vars := map[string]string{"ENV": "test", "JWT_SECRET": testSecret, "ADMIN_REQUIRE_MFA": "true"}
	for k, v := range env {
		vars[k] = v
	}
	cfg, err := config.FromEnv(func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
	require.NoError(t, err)
	db := dbtest.TxDB(t)
	srv := httptest.NewServer(app.New(cfg, db, slog.New(slog.NewTextHandler(io.Discard, nil))).Handler())
	t.Cleanup(srv.Close)
	return &apiServer{t: t, db: db, url: srv.URL, tokens: auth.NewTokens(cfg.JWTSecret)}
}

func (s *apiServer) token(u dbtest.User, mfa bool) string {
	tok, err := s.tokens.Issue(u.Subject, u.Email, mfa, time.Hour)
	require.NoError(s.t, err)
	return tok
}

type gqlError struct {
	Message    string         `json:"message"`
	Path       []any          `json:"path"`
	Extensions map[string]any `json:"extensions"`
}

type gqlResponse struct {
	Data       json.RawMessage `json:"data"`
	Errors     []gqlError      `json:"errors"`
	Status     int             `json:"-"`
	Statements int             `json:"-"`
}

// code returns the first error's extensions.code, or "".
func (r gqlResponse) code() string {
	if len(r.Errors) == 0 {
		return ""
	}
	c, _ := r.Errors[0].Extensions["code"].(string)
	return c
}

// decode unmarshals data into v, failing on any error in the response.
func (r gqlResponse) decode(t *testing.T, v any) {
	t.Helper()
	require.Empty(t, r.Errors, "unexpected errors")
	require.NoError(t, json.Unmarshal(r.Data, v))
}

// do posts a GraphQL request with token ("" for none).
func (s *apiServer) do(token, query string, vars map[string]any) gqlResponse {
	s.t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, err := http.NewRequest(http.MethodPost, s.url+"/graphql", bytes.NewReader(body))
	require.NoError(s.t, err)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(s.t, err)
	defer res.Body.Close()
	var out gqlResponse
	b, _ := io.ReadAll(res.Body)
	require.NoError(s.t, json.Unmarshal(b, &out), "body: %s", b)
	out.Status = res.StatusCode
	out.Statements, _ = strconv.Atoi(res.Header.Get(httpserver.StatementsHeader))
	return out
}

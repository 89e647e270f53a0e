package app_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/stretchr/testify/require"

	"github.com/leadmarket/leadmarket/internal/dbtest"
)

const (
	acceptJSON            = "application/json"
	acceptGraphQLResponse = "application/graphql-response+json"
)

// hostileDocuments are documents built to cost a server as much as possible, each with the code
// it is refused with.
func hostileDocuments() []struct{ name, body, code string } {
	var aliases, bomb strings.Builder
	aliases.WriteString("{ ")
	for i := range 101 {
		fmt.Fprintf(&aliases, "a%d: me { id } ", i)
	}
	aliases.WriteString("}")
	bomb.WriteString("query { ...F0 }\n")
	for i := range 30 {
		fmt.Fprintf(&bomb, "fragment F%d on Query { ...F%d ...F%d }\n", i, i+1, i+1)
	}
	bomb.WriteString("fragment F30 on Query { me { id } }")
	doc := func(q string) string { b, _ := json.Marshal(map[string]any{"query": q}); return string(b) }
	batch := make([]map[string]any, 100)
	for i := range batch {
		batch[i] = map[string]any{"query": "{ me { id } }"}
	}
	batchBody, _ := json.Marshal(batch)
	return []struct{ name, body, code string }{
		{"depth 50", doc(strings.Repeat("{ me ", 50) + strings.Repeat("} ", 50)), "DEPTH_LIMIT_EXCEEDED"},
		{"101 aliases", doc(aliases.String()), "ALIAS_LIMIT_EXCEEDED"},
		{"500 duplicated fields", doc("{ me { " + strings.Repeat("id ", 500) + "} }"), "FIELD_LIMIT_EXCEEDED"},
		{"circular fragment", doc("query { ...A } fragment A on Query { me { id } ...B } fragment B on Query { ...A }"), "GRAPHQL_VALIDATION_FAILED"},
		{"first: 100000", doc("{ marketplaceLeads(first: 100000) { edges { node { id } } } }"), "COMPLEXITY_LIMIT_EXCEEDED"},
		{"10 directives on one field", doc("{ me " + strings.Repeat("@include(if: true) ", 10) + "{ id } }"), "DIRECTIVE_LIMIT_EXCEEDED"},
		{"10 unknown directives on one field", doc("{ me " + unknownDirectives(10) + "{ id } }"), "DIRECTIVE_LIMIT_EXCEEDED"},
		{"500 copies of one field", doc("{ " + strings.Repeat("__typename ", 500) + "}"), "DUPLICATE_LIMIT_EXCEEDED"},
		{"one fragment spread 400 times", doc("{ " + strings.Repeat("...F ", 400) + "} fragment F on Query { __typename }"), "DUPLICATE_LIMIT_EXCEEDED"},
		{"1 MiB document", doc("{ me { id } }\n#" + strings.Repeat("x", 1<<20)), "DOCUMENT_TOO_LARGE"},
		{"batch of 100 operations", string(batchBody), "BATCHING_NOT_SUPPORTED"},
		{"fragment bomb (2^30 spreads)", doc(bomb.String()), "FIELD_LIMIT_EXCEEDED"},
		{"token flood", doc("{ " + strings.Repeat("a ", 30_000) + "}"), "GRAPHQL_PARSE_FAILED"},
		// Validation checks fragments nobody spreads, quadratically in their fields: they are
		// measured too, alone and together.
		{"unused fragment of 9,000 fields", doc("query { __typename } fragment F on Query { " + strings.Repeat("me ", 9000) + "}"), "FIELD_LIMIT_EXCEEDED"},
		{"25 unused fragments of 300 fields", doc("query { __typename } " + unusedFragments(25, 300)), "FIELD_LIMIT_EXCEEDED"},
	}
}

// unknownDirectives writes n directives the schema does not have.
func unknownDirectives(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "@nope%d ", i)
	}
	return b.String()
}

// unusedFragments writes n fragments of fields fields each, none of them spread.
func unusedFragments(n, fields int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "fragment U%d on User { %s} ", i, strings.Repeat("id ", fields))
	}
	return b.String()
}

func TestGuardrails_HostileDocumentsAreRefusedCheaply(t *testing.T) {
	t.Parallel()
	api := newAPI(t, nil)
	u := dbtest.CreateUser(t, api.db, dbtest.UserOpts{})
	tok := api.token(u, false)
	for _, d := range hostileDocuments() {
		for _, accept := range []string{acceptJSON, acceptGraphQLResponse} {
			start := time.Now()
			res := api.send(http.MethodPost, "/graphql", http.Header{
				"Content-Type": {"application/json"}, "Accept": {accept}, "Authorization": {"Bearer " + tok},
			}, []byte(d.body))
			elapsed := time.Since(start)
			require.Equal(t, d.code, res.gql.code(), "%s (%s): %.300s", d.name, accept, res.body)
			require.False(t, res.hasData, "%s: refused before execution", d.name)
			require.Less(t, elapsed, time.Second, "%s took %s", d.name, elapsed)
			want := http.StatusOK // application/json: a request error is still a 200
			switch {
			case d.code == "DOCUMENT_TOO_LARGE":
				want = http.StatusRequestEntityTooLarge
			case d.code == "BATCHING_NOT_SUPPORTED", accept == acceptGraphQLResponse:
				want = http.StatusBadRequest
			}
			require.Equal(t, want, res.status, "%s (%s)", d.name, accept)
			require.True(t, strings.HasPrefix(res.header.Get("Content-Type"), accept), "%s: %s", d.name, res.header.Get("Content-Type"))
			require.Empty(t, res.header.Get("RateLimit-Remaining"), "%s: refused before it was charged", d.name)
		}
	}

	// The refusals say what they measured.
	res := api.postJSON(tok, nil, "{ marketplaceLeads(first: 100000) { edges { node { id } } } }", nil)
	ext := res.gql.Errors[0].Extensions
	require.EqualValues(t, 100000*3+1, ext["cost"], "first x (edges + node + id), plus the connection")
	require.EqualValues(t, 5000, ext["limit"])
	res = api.postJSON(tok, nil, strings.Repeat("{ me ", 12)+strings.Repeat("} ", 12), nil)
	require.EqualValues(t, 12, res.gql.Errors[0].Extensions["depth"])
	require.EqualValues(t, 10, res.gql.Errors[0].Extensions["limit"])

	// The limits are configurable.
	for _, tc := range []struct{ env, query, code string }{
		{"COMPLEXITY_LIMIT", "{ marketplaceLeads(first: 10) { edges { node { id } } } }", "COMPLEXITY_LIMIT_EXCEEDED"},
		{"DEPTH_LIMIT", "{ me { workspaces { workspace { id } } } }", "DEPTH_LIMIT_EXCEEDED"},
		{"ALIAS_LIMIT", "{ a: me { id } b: me { id } c: me { id } d: me { id } }", "ALIAS_LIMIT_EXCEEDED"},
		{"FIELD_LIMIT", "{ me { id email isPlatformAdmin } }", "FIELD_LIMIT_EXCEEDED"},
		{"MAX_DOCUMENT_BYTES", "{ me { id } } # " + strings.Repeat("x", 30), "DOCUMENT_TOO_LARGE"},
	} {
		strict := newAPI(t, map[string]string{tc.env: "3"})
		if tc.env == "COMPLEXITY_LIMIT" || tc.env == "MAX_DOCUMENT_BYTES" {
			strict = newAPI(t, map[string]string{tc.env: "30"})
		}
		require.Equal(t, tc.code, strict.postJSON(tok, nil, tc.query, nil).gql.code(), tc.env)
		require.Empty(t, strict.postJSON(tok, nil, "{ me { id } }", nil).gql.Errors, tc.env)
	}
}

func TestGraphQLOverHTTP_StatusCodesFollowTheSpec(t *testing.T) {
	t.Parallel()
	api := newAPI(t, nil)
	u := dbtest.CreateUser(t, api.db, dbtest.UserOpts{})
	bearer := "Bearer " + api.token(u, false)
	post := func(accept, body string) httpResult {
		h := http.Header{"Content-Type": {"application/json"}, "Authorization": {bearer}}
		if accept != "" {
			h.Set("Accept", accept)
		}
		return api.send(http.MethodPost, "/graphql", h, []byte(body))
	}
	cases := []struct {
		name, accept, body string
		status             int
		contentType, code  string
		hasData            bool
	}{
		{"ok, no Accept", "", `{"query":"{ me { id } }"}`, 200, acceptJSON, "", true},
		{"ok, graphql-response+json", acceptGraphQLResponse, `{"query":"{ me { id } }"}`, 200, acceptGraphQLResponse, "", true},
		{"ok, preferred by q", "application/json;q=0.5, application/graphql-response+json", `{"query":"{ me { id } }"}`, 200, acceptGraphQLResponse, "", true},
		{"ok, wildcard", "*/*", `{"query":"{ me { id } }"}`, 200, acceptJSON, "", true},
		{"validation error, json", acceptJSON, `{"query":"{ me { nope } }"}`, 200, acceptJSON, "GRAPHQL_VALIDATION_FAILED", false},
		{"validation error, graphql-response+json", acceptGraphQLResponse, `{"query":"{ me { nope } }"}`, 400, acceptGraphQLResponse, "GRAPHQL_VALIDATION_FAILED", false},
		{"parse error, graphql-response+json", acceptGraphQLResponse, `{"query":"{ me { "}`, 400, acceptGraphQLResponse, "GRAPHQL_PARSE_FAILED", false},
		{"bad variables, graphql-response+json", acceptGraphQLResponse, `{"query":"query($n: Int!) { marketplaceLeads(first: $n) { pageInfo { hasNextPage } } }","variables":{"n":"x"}}`, 400, acceptGraphQLResponse, "GRAPHQL_VALIDATION_FAILED", false},
		{"unknown operation name", acceptGraphQLResponse, `{"query":"query A { me { id } }","operationName":"B"}`, 400, acceptGraphQLResponse, "GRAPHQL_VALIDATION_FAILED", false},
		{"field error, graphql-response+json", acceptGraphQLResponse, `{"query":"{ creditBalance(workspaceId: \"00000000-0000-4000-8000-000000000000\") { credits } }"}`, 200, acceptGraphQLResponse, "FORBIDDEN", true},
		{"body not JSON", acceptJSON, `{"query":`, 400, acceptJSON, "BAD_REQUEST", false},
		{"query not a string", acceptGraphQLResponse, `{"query":42}`, 400, acceptGraphQLResponse, "BAD_REQUEST", false},
		{"variables not an object", acceptJSON, `{"query":"{ me { id } }","variables":[1]}`, 400, acceptJSON, "BAD_REQUEST", false},
		{"no query", acceptJSON, `{"operationName":"x"}`, 400, acceptJSON, "BAD_REQUEST", false},
		{"unsupported Accept", "text/html", `{"query":"{ me { id } }"}`, 406, acceptJSON, "NOT_ACCEPTABLE", false},
		{"JSON refused by name, wildcard", "application/json;q=0, */*", `{"query":"{ me { id } }"}`, 200, acceptGraphQLResponse, "", true},
		{"both refused by name", "application/json;q=0, application/graphql-response+json;q=0, */*", `{"query":"{ me { id } }"}`, 406, acceptJSON, "NOT_ACCEPTABLE", false},
	}
	for _, tc := range cases {
		res := post(tc.accept, tc.body)
		require.Equal(t, tc.status, res.status, "%s: %s", tc.name, res.body)
		require.True(t, strings.HasPrefix(res.header.Get("Content-Type"), tc.contentType), "%s: %s", tc.name, res.header.Get("Content-Type"))
		require.Equal(t, tc.code, res.gql.code(), "%s: %s", tc.name, res.body)
		require.Equal(t, tc.hasData, res.hasData, "%s: %s", tc.name, res.body)
	}

	// A malformed Content-Type parameter does not hide application/json, and an Upgrade to another
	// protocol than WebSocket is declined, not handed to the WebSocket transport.
	for name, h := range map[string]http.Header{
		"malformed charset": {"Content-Type": {"application/json; charset"}},
		"upgrade to h2c":    {"Content-Type": {"application/json"}, "Upgrade": {"h2c"}, "Connection": {"Upgrade"}},
	} {
		h.Set("Authorization", bearer)
		res := api.send(http.MethodPost, "/graphql", h, []byte(`{"query":"{ me { id } }"}`))
		require.Equal(t, http.StatusOK, res.status, "%s: %s", name, res.body)
		require.True(t, res.hasData, "%s: %s", name, res.body)
	}

	// Request shapes the server does not take.
	for name, tc := range map[string]struct {
		method, contentType string
		status              int
		code                string
	}{
		"no content type": {http.MethodPost, "", 415, "UNSUPPORTED_MEDIA_TYPE"},
		"application/xml": {http.MethodPost, "application/xml", 415, "UNSUPPORTED_MEDIA_TYPE"},
		"text/plain":      {http.MethodPost, "text/plain", 415, "UNSUPPORTED_MEDIA_TYPE"},
		"PUT":             {http.MethodPut, "application/json", 405, "METHOD_NOT_ALLOWED"},
		"DELETE":          {http.MethodDelete, "", 405, "METHOD_NOT_ALLOWED"},
	} {
		h := http.Header{}
		if tc.contentType != "" {
			h.Set("Content-Type", tc.contentType)
		}
		res := api.send(tc.method, "/graphql", h, []byte(`{"query":"{ __typename }"}`))
		require.Equal(t, tc.status, res.status, name)
		require.Equal(t, tc.code, res.gql.code(), name)
	}
}

func TestGraphQLOverHTTP_MutationsNeverRunOverGET(t *testing.T) {
	t.Parallel()
	api := newAPI(t, nil)
	u := dbtest.CreateUser(t, api.db, dbtest.UserOpts{})
	h := http.Header{"Authorization": {"Bearer " + api.token(u, false)}, "GraphQL-Preflight": {"1"}}
	for _, accept := range []string{acceptJSON, acceptGraphQLResponse} {
		h.Set("Accept", accept)
		res := api.send(http.MethodGet, "/graphql?query="+url.QueryEscape(`mutation { createWorkspace(name: "via GET") { id } }`), h, nil)
		require.Equal(t, http.StatusMethodNotAllowed, res.status, "%s", res.body)
		require.Equal(t, "POST", res.header.Get("Allow"))
		require.Equal(t, "METHOD_NOT_ALLOWED", res.gql.code())
		require.False(t, res.hasData)
	}
	var n int
	require.NoError(t, api.db.NewRaw("SELECT count(*) FROM workspaces WHERE created_by = ?", u.ID).Scan(context.Background(), &n))
	require.Zero(t, n)
}

func TestGraphQLOverHTTP_CSRFNeedsAPreflightedRequest(t *testing.T) {
	t.Parallel()
	api := newAPI(t, nil)
	u := dbtest.CreateUser(t, api.db, dbtest.UserOpts{})
	bearer := "Bearer " + api.token(u, false)
	get := "/graphql?query=" + url.QueryEscape("{ me { id } }")

	// A GET with no preflight-forcing header is what an <img> or a link sends: refused.
	res := api.send(http.MethodGet, get, http.Header{"Authorization": {bearer}}, nil)
	require.Equal(t, http.StatusBadRequest, res.status)
	require.Equal(t, "CSRF_PREFLIGHT_REQUIRED", res.gql.code())
	for name, h := range map[string]http.Header{
		"GraphQL-Preflight":        {"GraphQL-Preflight": {"1"}},
		"Apollo-Require-Preflight": {"Apollo-Require-Preflight": {"true"}},
		"JSON content type":        {"Content-Type": {"application/json"}},
	} {
		h.Set("Authorization", bearer)
		res := api.send(http.MethodGet, get, h, nil)
		require.Equal(t, http.StatusOK, res.status, "%s: %s", name, res.body)
		require.Empty(t, res.gql.Errors, name)
	}

	// A form-encoded POST (what an HTML form sends cross-site) is refused and does not run.
	form := url.Values{"query": {`mutation { createWorkspace(name: "csrf") { id } }`}}.Encode()
	res = api.send(http.MethodPost, "/graphql", http.Header{
		"Content-Type": {"application/x-www-form-urlencoded"}, "Authorization": {bearer}, "GraphQL-Preflight": {"1"},
	}, []byte(form))
	require.Equal(t, http.StatusUnsupportedMediaType, res.status)
	var n int
	require.NoError(t, api.db.NewRaw("SELECT count(*) FROM workspaces WHERE created_by = ?", u.ID).Scan(context.Background(), &n))
	require.Zero(t, n)

	// Multipart (uploads) needs the header too.
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	require.NoError(t, mw.WriteField("operations", `{"query":"{ me { id } }"}`))
	require.NoError(t, mw.WriteField("map", `{}`))
	require.NoError(t, mw.Close())
	h := http.Header{"Content-Type": {mw.FormDataContentType()}, "Authorization": {bearer}}
	res = api.send(http.MethodPost, "/graphql", h, body.Bytes())
	require.Equal(t, http.StatusBadRequest, res.status, "%s", res.body)
	require.Equal(t, "CSRF_PREFLIGHT_REQUIRED", res.gql.code())
	h.Set("GraphQL-Preflight", "1")
	res = api.send(http.MethodPost, "/graphql", h, body.Bytes())
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	require.Empty(t, res.gql.Errors)
}

func TestGraphQLOverHTTP_AutomaticPersistedQueries(t *testing.T) {
	t.Parallel()
	api := newAPI(t, nil)
	u := dbtest.CreateUser(t, api.db, dbtest.UserOpts{})
	bearer := "Bearer " + api.token(u, false)
	query := "query PersistedMe { me { id } }"
	sum := sha256.Sum256([]byte(query))
	ext := map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": hex.EncodeToString(sum[:])}}
	post := func(body map[string]any) httpResult {
		b, _ := json.Marshal(body)
		return api.send(http.MethodPost, "/graphql", http.Header{"Content-Type": {"application/json"}, "Authorization": {bearer}}, b)
	}
	require.Equal(t, "PERSISTED_QUERY_NOT_FOUND", post(map[string]any{"extensions": ext}).gql.code(), "unknown hash: send the query")
	res := post(map[string]any{"query": query, "extensions": ext})
	require.Empty(t, res.gql.Errors)
	res = post(map[string]any{"extensions": ext})
	require.Empty(t, res.gql.Errors, "%s", res.body)
	require.Contains(t, string(res.gql.Data), u.ID)

	// Over GET too, so CDNs can cache the short URL.
	extJSON, _ := json.Marshal(ext)
	res = api.send(http.MethodGet, "/graphql?extensions="+url.QueryEscape(string(extJSON)),
		http.Header{"Authorization": {bearer}, "GraphQL-Preflight": {"1"}}, nil)
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	require.Contains(t, string(res.gql.Data), u.ID)

	// A hash that does not match the query is refused.
	bad := map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": strings.Repeat("0", 64)}}
	require.NotEmpty(t, post(map[string]any{"query": query, "extensions": bad}).gql.Errors)
}

// productionEnv is a valid ENV=production configuration.
var productionEnv = map[string]string{
	"ENV": "production", "STRIPE_SECRET_KEY": "sk_test_x", "STRIPE_WEBHOOK_SECRET": "whsec_x",
}

func TestProduction_NoIntrospectionSuggestionsOrGraphiQL(t *testing.T) {
	t.Parallel()
	prod, dev := newAPI(t, productionEnv), newAPI(t, nil)
	u := dbtest.CreateUser(t, prod.db, dbtest.UserOpts{})
	tok := prod.token(u, false)

	for _, q := range []string{
		"{ __schema { types { name } } }",
		`{ __type(name: "Lead") { name fields { name } } }`,
		"query { ...Intro } fragment Intro on Query { __schema { queryType { name } } }",
	} {
		res := prod.postJSON(tok, http.Header{"Accept": {acceptGraphQLResponse}}, q, nil)
		require.Equal(t, http.StatusBadRequest, res.status, q)
		require.Equal(t, "INTROSPECTION_DISABLED", res.gql.code(), q)
		require.False(t, res.hasData)
		require.Empty(t, dev.postJSON(tok, nil, q, nil).gql.Errors, "development keeps introspection: %s", q)
	}
	require.Empty(t, prod.postJSON(tok, nil, "{ __typename me { __typename } }", nil).gql.Errors, "__typename is not introspection")

	// No "Did you mean" in production; development keeps the help.
	for _, q := range []string{
		"{ mee { id } }",
		"{ marketplaceLeads(frist: 1) { pageInfo { hasNextPage } } }",
		"{ marketplaceLeads(orderBy: NEWESTT) { pageInfo { hasNextPage } } }",
		"query { ...F } fragment F on Qurey { me { id } }",
		"{ me { emial } }",
	} {
		prodRes, devRes := prod.postJSON(tok, nil, q, nil), dev.postJSON(tok, nil, q, nil)
		require.NotEmpty(t, prodRes.gql.Errors, q)
		require.NotContains(t, string(prodRes.body), "Did you mean", q)
		require.Contains(t, string(devRes.body), "Did you mean", q)
	}

	// GraphiQL only outside production, with a CSP that allows its own inline script only.
	status, _ := get(t, prod.url+"/", nil)
	require.Equal(t, http.StatusNotFound, status)
	res := dev.send(http.MethodGet, "/", nil, nil)
	require.Equal(t, http.StatusOK, res.status)
	csp := res.header.Get("Content-Security-Policy")
	require.Contains(t, csp, "script-src 'sha256-")
	require.NotContains(t, csp, "'unsafe-eval'")
	require.Contains(t, csp, "frame-ancestors 'none'")
	require.Contains(t, string(res.body), "<script>")
}

func TestSecurityHeadersAndCORS(t *testing.T) {
	t.Parallel()
	prod := newAPI(t, withEnv(productionEnv, map[string]string{"CORS_ORIGINS": "https://app.example.com"}))
	dev := newAPI(t, nil)
	for name, api := range map[string]*apiServer{"production": prod, "development": dev} {
		for _, path := range []string{"/graphql", "/healthz", "/webhooks/stripe"} {
			res := api.send(http.MethodPost, path, http.Header{"Content-Type": {"application/json"}}, []byte(`{"query":"{ __typename }"}`))
			require.Equal(t, "nosniff", res.header.Get("X-Content-Type-Options"), path)
			require.Equal(t, "no-referrer", res.header.Get("Referrer-Policy"), path)
			require.Equal(t, "DENY", res.header.Get("X-Frame-Options"), path)
			require.Contains(t, res.header.Get("Content-Security-Policy"), "default-src 'none'", path)
			if name == "production" {
				require.Contains(t, res.header.Get("Strict-Transport-Security"), "max-age=", path)
			} else {
				require.Empty(t, res.header.Get("Strict-Transport-Security"), "no HSTS over development's plain HTTP")
			}
		}
	}

	// A preflight from the allowed origin learns what it may send; any other origin is refused.
	preflight := func(origin string) httpResult {
		return prod.send(http.MethodOptions, "/graphql", http.Header{
			"Origin": {origin}, "Access-Control-Request-Method": {"POST"},
			"Access-Control-Request-Headers": {"authorization, content-type"},
		}, nil)
	}
	res := preflight("https://app.example.com")
	require.Equal(t, http.StatusNoContent, res.status)
	require.Equal(t, "https://app.example.com", res.header.Get("Access-Control-Allow-Origin"))
	require.Contains(t, res.header.Get("Access-Control-Allow-Headers"), "Authorization")
	require.Contains(t, res.header.Get("Access-Control-Allow-Headers"), "GraphQL-Preflight")
	require.Contains(t, res.header.Get("Access-Control-Allow-Methods"), "POST")
	res = preflight("https://evil.example.net")
	require.Equal(t, http.StatusForbidden, res.status)
	require.Empty(t, res.header.Get("Access-Control-Allow-Origin"))

	// Responses to the allowed origin let its script read the rate-limit headers; others get no
	// CORS headers, so the browser hides the response.
	res = prod.postJSON("", http.Header{"Origin": {"https://app.example.com"}}, "{ __typename }", nil)
	require.Equal(t, "https://app.example.com", res.header.Get("Access-Control-Allow-Origin"))
	require.Contains(t, res.header.Get("Access-Control-Expose-Headers"), "RateLimit-Remaining")
	require.Contains(t, res.header.Get("Access-Control-Expose-Headers"), "Retry-After")
	require.NotEmpty(t, res.header.Get("RateLimit-Remaining"))
	res = prod.postJSON("", http.Header{"Origin": {"https://evil.example.net"}}, "{ __typename }", nil)
	require.Empty(t, res.header.Get("Access-Control-Allow-Origin"))
}

func TestWebSocketAcceptsOnlyAllowedOrigins(t *testing.T) {
	t.Parallel()
	api := newAPI(t, map[string]string{"CORS_ORIGINS": "https://app.example.com"})
	wsURL := "ws" + strings.TrimPrefix(api.url, "http") + "/graphql"
	dial := func(origin string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, res, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{
			Subprotocols: []string{"graphql-transport-ws"},
			HTTPHeader:   http.Header{"Origin": {origin}},
		})
		if res != nil && res.Body != nil {
			_ = res.Body.Close()
		}
		if err == nil {
			_ = c.Close(websocket.StatusNormalClosure, "")
		}
		return err
	}
	require.NoError(t, dial("https://app.example.com"))
	require.NoError(t, dial(api.url), "the API's own origin")
	require.Error(t, dial("https://evil.example.net"), "a page elsewhere cannot open the socket")
}

// PostgreSQL's text cannot hold U+0000: a string with one, in a variable or in the document,
// is refused as INVALID_INPUT before anything runs, never an internal error.
func TestNULCharactersAreRefused(t *testing.T) {
	t.Parallel()
	api := newAPI(t, nil)
	ws, owner := dbtest.CreateWorkspace(t, api.db, dbtest.WorkspaceOpts{Credits: 10})
	admin := dbtest.CreateUser(t, api.db, dbtest.UserOpts{IsPlatformAdmin: true})
	lead := dbtest.CreateLead(t, api.db, dbtest.LeadOpts{PartnerID: dbtest.CreatePartner(t, api.db, dbtest.PartnerOpts{})})
	tok, adminTok := api.token(owner, false), api.token(admin, true)
	for name, tc := range map[string]struct {
		token, query string
		vars         map[string]any
	}{
		"idempotency key": {tok, `mutation($in: PurchaseLeadsInput!) { purchaseLeads(input: $in) { balance } }`,
			map[string]any{"in": map[string]any{"workspaceId": ws, "leadIds": []string{lead}, "idempotencyKey": "a\x00b"}}},
		"adjustment reason": {adminTok, `mutation($ws: ID!, $r: String!) { adjustCredits(workspaceId: $ws, delta: 5, reason: $r) { credits } }`,
			map[string]any{"ws": ws, "r": "goodwill\x00"}},
		"workspace name in a variable":   {tok, `mutation($n: String!) { createWorkspace(name: $n) { id } }`, map[string]any{"n": "\x00"}},
		"workspace name in the document": {tok, `mutation { createWorkspace(name: "Umbrella\u0000") { id } }`, nil},
		"browse filter in a list":        {tok, `query($i: [String!]) { marketplaceLeads(filter: {industries: $i}) { pageInfo { hasNextPage } } }`, map[string]any{"i": []string{"SaaS", "x\x00"}}},
		"browse filter in the document":  {tok, `{ marketplaceLeads(filter: {industries: ["SaaS", "x\u0000"]}) { pageInfo { hasNextPage } } }`, nil},
	} {
		res := api.do(tc.token, tc.query, tc.vars)
		require.Equal(t, "INVALID_INPUT", res.code(), "%s: %+v", name, res.Errors)
		require.Contains(t, res.Errors[0].Message, "NUL", name)
	}
	var credits, workspaces int
	require.NoError(t, api.db.NewRaw("SELECT credits FROM credit_balances WHERE workspace_id = ?", ws).Scan(context.Background(), &credits))
	require.Equal(t, 10, credits)
	require.NoError(t, api.db.NewRaw("SELECT count(*) FROM workspace_members WHERE user_id = ?", owner.ID).Scan(context.Background(), &workspaces))
	require.Equal(t, 1, workspaces)
	// A string without NUL in the same place still works.
	require.Empty(t, api.do(tok, `mutation($n: String!) { createWorkspace(name: $n) { id } }`, map[string]any{"n": "Umbrella"}).Errors)
}

// wsMessage is a graphql-transport-ws message.
type wsMessage struct {
	ID      string          `json:"id,omitempty"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// wsClient is a graphql-transport-ws connection to the API, initialised. Its messages are read
// by one goroutine (started by the first read), so that waiting for a message with a deadline of
// its own (quiet) does not close the socket, as a cancelled read of coder/websocket does.
type wsClient struct {
	t   *testing.T
	ctx context.Context
	c   *websocket.Conn

	pumpOnce sync.Once
	in       chan wsRead
	err      error
}

type wsRead struct {
	m   wsMessage
	err error
}

// openWS connects with token, sends connection_init and expects the ack; everything it does
// gives up after 10 s.
func openWS(t *testing.T, api *apiServer, token string) *wsClient {
	t.Helper()
	return openWSWithin(t, api, token, 10*time.Second)
}

// openWSWithin is openWS for a socket whose reads and writes give up after d.
func openWSWithin(t *testing.T, api *apiServer, token string, d time.Duration) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	c, res, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(api.url, "http")+"/graphql", &websocket.DialOptions{
		Subprotocols: []string{"graphql-transport-ws"},
		HTTPHeader:   http.Header{"Authorization": {"Bearer " + token}},
	})
	require.NoError(t, err)
	if res != nil && res.Body != nil {
		_ = res.Body.Close()
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	ws := &wsClient{t: t, ctx: ctx, c: c}
	require.NoError(t, ws.send(wsMessage{Type: "connection_init"}))
	m, err := ws.read()
	require.NoError(t, err)
	require.Equal(t, "connection_ack", m.Type)
	return ws
}

func (w *wsClient) send(m wsMessage) error { return wsjson.Write(w.ctx, w.c, m) }

// messages returns the channel of the socket's messages; it is closed after the read error,
// which w.err then holds.
func (w *wsClient) messages() <-chan wsRead {
	w.pumpOnce.Do(func() {
		w.in = make(chan wsRead, 64)
		go func() {
			defer close(w.in)
			for {
				var m wsMessage
				err := wsjson.Read(w.ctx, w.c, &m)
				w.in <- wsRead{m, err}
				if err != nil {
					return
				}
			}
		}()
	})
	return w.in
}

func (w *wsClient) read() (wsMessage, error) {
	r, ok := <-w.messages()
	if !ok {
		return wsMessage{}, w.err
	}
	if r.err != nil {
		w.err = r.err
	}
	return r.m, r.err
}

// query runs one operation (a query: one result, then complete) and returns its result.
func (w *wsClient) query(id, query string) string {
	w.t.Helper()
	body, err := json.Marshal(map[string]string{"query": query})
	require.NoError(w.t, err)
	require.NoError(w.t, w.send(wsMessage{ID: id, Type: "subscribe", Payload: body}))
	m, err := w.read()
	require.NoError(w.t, err)
	require.Equal(w.t, "next", m.Type, string(m.Payload))
	done, err := w.read()
	require.NoError(w.t, err)
	require.Equal(w.t, wsMessage{ID: id, Type: "complete"}, done)
	return string(m.Payload)
}

// A WebSocket is authenticated once, at the upgrade; it is closed when that token expires, so an
// expired token cannot keep running operations over an open socket.
func TestWebSocketClosesWhenTheTokenExpires(t *testing.T) {
	t.Parallel()
	api := newAPI(t, nil)
	u := dbtest.CreateUser(t, api.db, dbtest.UserOpts{})
	tok, err := api.tokens.Issue(u.Subject, u.Email, false, 2*time.Second)
	require.NoError(t, err)
	ws := openWS(t, api, tok)

	// While the token is valid, operations run as its user.
	require.Contains(t, ws.query("1", "{ me { id } }"), u.ID)

	// At expiry the server ends the connection with a close frame (the client's own 10 s timeout
	// is not what ends it); nothing sent afterwards runs.
	var closeErr websocket.CloseError
	for {
		if _, err := ws.read(); err != nil {
			require.ErrorAs(t, err, &closeErr, "the socket outlived its token: %v", err)
			break
		}
	}
	// issue 12: graphql-transport-ws's 4403 Forbidden (was 1000), so a graphql-ws client retries
	// with a fresh token.
	require.Equal(t, websocket.StatusCode(4403), closeErr.Code)
	require.Error(t, ws.send(wsMessage{ID: "2", Type: "subscribe", Payload: json.RawMessage(`{"query":"{ me { id } }"}`)}))
}

// Each operation over a WebSocket has its own dataloaders: the second sees a partner renamed
// after the first, instead of what the first cached for the life of the connection.
func TestWebSocketOperationsDoNotShareLoaders(t *testing.T) {
	t.Parallel()
	api := newAPI(t, nil)
	partnerID := dbtest.CreatePartner(t, api.db, dbtest.PartnerOpts{})
	lead := dbtest.CreateLead(t, api.db, dbtest.LeadOpts{PartnerID: partnerID})
	u := dbtest.CreateUser(t, api.db, dbtest.UserOpts{})
	ws := openWS(t, api, api.token(u, false))
	q := `{ lead(id: "` + lead + `") { partner { name } } }`

	require.NotContains(t, ws.query("1", q), "Renamed Partner")
	_, err := api.db.ExecContext(context.Background(), "UPDATE partners SET name = 'Renamed Partner' WHERE id = ?", partnerID)
	require.NoError(t, err)
	require.Contains(t, ws.query("2", q), "Renamed Partner")
}

// Operations sent over one WebSocket run side by side; each audit entry names its own operation.
func TestWebSocketOperationsKeepTheirOwnNames(t *testing.T) {
	t.Parallel()
	api := newAPI(t, nil)
	u := dbtest.CreateUser(t, api.db, dbtest.UserOpts{})
	ws := openWS(t, api, api.token(u, false))
	const n = 10
	for i := range n {
		for j, q := range []string{
			fmt.Sprintf(`mutation Create%d { createWorkspace(name: "ws %d") { id } }`, i, i),
			fmt.Sprintf(`query Other%d { me { id } }`, i),
		} {
			body, err := json.Marshal(map[string]string{"query": q})
			require.NoError(t, err)
			require.NoError(t, ws.send(wsMessage{ID: fmt.Sprintf("%d-%d", i, j), Type: "subscribe", Payload: body}))
		}
	}
	for range 4 * n { // a result and a complete for each
		_, err := ws.read()
		require.NoError(t, err)
	}
	var ops []string
	require.NoError(t, api.db.NewRaw(`SELECT operation FROM audit_logs WHERE actor_user_id = ? AND action = 'workspace.created'
		ORDER BY operation`, u.ID).Scan(context.Background(), &ops))
	require.Len(t, ops, n)
	for _, op := range ops {
		require.True(t, strings.HasPrefix(op, "Create"), "a workspace.created entry names %q", op)
	}
}

// A WebSocket without a valid token is closed at its connection_init: every root field needs a
// caller, so an anonymous socket could only hold a connection open. graph's InitFunc refuses it
// with the reason "sign in first" and, since issue 12, the protocol's 4403 Forbidden (it was
// gqlgen's 1000), before any connection_ack.
func TestWebSocketNeedsASignedInCaller(t *testing.T) {
	t.Parallel()
	api := newAPI(t, nil)
	for name, header := range map[string]http.Header{
		"no token":  {},
		"bad token": {"Authorization": {"Bearer not-a-token"}},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, res, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(api.url, "http")+"/graphql", &websocket.DialOptions{
			Subprotocols: []string{"graphql-transport-ws"}, HTTPHeader: header,
		})
		require.NoError(t, err, name)
		if res != nil && res.Body != nil {
			_ = res.Body.Close()
		}
		require.NoError(t, wsjson.Write(ctx, c, wsMessage{Type: "connection_init"}), name)
		var m wsMessage
		err = wsjson.Read(ctx, c, &m)
		var closeErr websocket.CloseError
		require.ErrorAs(t, err, &closeErr, "%s: got %+v", name, m)
		require.Equal(t, websocket.StatusCode(4403), closeErr.Code, name)
		require.Equal(t, "sign in first", closeErr.Reason, name)
		_ = c.CloseNow()
		cancel()
	}
}

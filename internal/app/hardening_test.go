package app_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

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

// Validation answers at most 10 errors and one saying there were more, in development and in
// production alike; fewer errors are all reported.
func TestValidationErrorsAreCapped(t *testing.T) {
	t.Parallel()
	dev, prod := newAPI(t, nil), newAPI(t, productionEnv)
	u := dbtest.CreateUser(t, dev.db, dbtest.UserOpts{})
	var fields, directives strings.Builder
	for i := range 300 {
		fmt.Fprintf(&fields, "nope%d ", i)
	}
	for i := range 60 {
		fmt.Fprintf(&directives, "__typename%d @nope%d @nope%d ", i, i, i+1)
	}
	for name, api := range map[string]*apiServer{"development": dev, "production": prod} {
		for what, q := range map[string]string{
			"300 unknown fields":              "{ " + fields.String() + "}",
			"120 unknown directives":          "{ " + directives.String() + "}",
			"errors of several rules at once": "query($a: Int, $b: Int) { " + fields.String() + " me(x: 1) { nope } }",
		} {
			res := api.postJSON(api.token(u, false), nil, q, nil)
			require.Equal(t, "GRAPHQL_VALIDATION_FAILED", res.gql.code(), "%s, %s: %.300s", name, what, res.body)
			require.Len(t, res.gql.Errors, 11, "%s, %s", name, what)
			require.Equal(t, "too many validation errors: only the first 10 are reported", res.gql.Errors[10].Message)
			require.Equal(t, "GRAPHQL_VALIDATION_FAILED", res.gql.Errors[10].Extensions["code"])
		}
		res := api.postJSON(api.token(u, false), nil, "{ nope1 nope2 nope3 }", nil)
		require.Len(t, res.gql.Errors, 3, name)
	}
}

// GraphQL's Int is 32-bit: larger values, and numbers that are not integers, are INVALID_INPUT
// saying what is wrong, as literals and as variables, at the top level and inside input objects.
func TestIntInputsAre32Bit(t *testing.T) {
	t.Parallel()
	api := newAPI(t, nil)
	ws, owner := dbtest.CreateWorkspace(t, api.db, dbtest.WorkspaceOpts{Credits: 10})
	admin := dbtest.CreateUser(t, api.db, dbtest.UserOpts{IsPlatformAdmin: true})
	tok, adminTok := api.token(owner, false), api.token(admin, true)
	const browse = `query($first: Int, $filter: LeadFilter, $min: Int) {
		marketplaceLeads(first: $first, filter: $filter) { pageInfo { hasNextPage } }
		cheap: marketplaceLeads(filter: {minPriceCredits: $min}) { pageInfo { hasNextPage } } }`
	for name, tc := range map[string]struct {
		query string
		vars  map[string]any
		want  string
	}{
		"literal first": {`{ marketplaceLeads(first: 99999999999) { pageInfo { hasNextPage } } }`, nil,
			"first: Int cannot represent non 32-bit signed integer value: 99999999999"},
		"literal in a filter": {`{ marketplaceLeads(filter: {maxPriceCredits: 2147483648}) { pageInfo { hasNextPage } } }`, nil,
			"filter.maxPriceCredits: Int cannot represent non 32-bit signed integer value: 2147483648"},
		"variable first": {browse, map[string]any{"first": 99999999999}, "first: Int cannot represent non 32-bit signed integer value: 99999999999"},
		"1e300 in a filter variable": {browse, map[string]any{"filter": map[string]any{"minPriceCredits": 1e300}},
			"filter.minPriceCredits: Int cannot represent non 32-bit signed integer value: 1e+300"},
		"1e300 as a variable in a literal filter": {browse, map[string]any{"min": 1e300},
			"filter.minPriceCredits: Int cannot represent non 32-bit signed integer value: 1e+300"},
		"a fraction":         {browse, map[string]any{"min": 1.5}, "filter.minPriceCredits: Int cannot represent non-integer value: 1.5"},
		"a numeric string":   {browse, map[string]any{"first": "99999999999"}, "first: Int cannot represent non 32-bit signed integer value: 99999999999"},
		"below -2^31":        {browse, map[string]any{"min": -2147483649}, "non 32-bit signed integer value: -2147483649"},
		"a mutation's delta": {`mutation($ws: ID!) { adjustCredits(workspaceId: $ws, delta: 99999999999, reason: "x") { credits } }`, map[string]any{"ws": ws}, "delta: Int cannot"},
	} {
		tk := tok
		if strings.HasPrefix(name, "a mutation") {
			tk = adminTok
		}
		res := api.postJSON(tk, nil, tc.query, tc.vars)
		require.Equal(t, "INVALID_INPUT", res.gql.code(), "%s: %.300s", name, res.body)
		require.Contains(t, res.gql.Errors[0].Message, tc.want, name)
		require.False(t, res.hasData, "%s: refused before execution", name)
	}
	var credits int
	require.NoError(t, api.db.NewRaw("SELECT credits FROM credit_balances WHERE workspace_id = ?", ws).Scan(t.Context(), &credits))
	require.Equal(t, 10, credits)

	// A literal that is no integer at all is validation's to refuse, and it says why.
	res := api.postJSON(tok, nil, `{ marketplaceLeads(filter: {minPriceCredits: 1e300}) { pageInfo { hasNextPage } } }`, nil)
	require.Equal(t, "GRAPHQL_VALIDATION_FAILED", res.gql.code())
	require.Contains(t, res.gql.Errors[0].Message, "Int cannot represent non-integer value: 1e300")

	// The 32-bit bounds themselves are Ints.
	for _, vars := range []map[string]any{
		{"first": 20, "min": -2147483648, "filter": map[string]any{"maxPriceCredits": 2147483647}},
		{"first": json.Number("5"), "min": "0"},
	} {
		res := api.postJSON(tok, nil, browse, vars)
		require.Empty(t, res.gql.Errors, "%v: %.300s", vars, res.body)
	}
}

// A string that is not UTF-8 is refused like one with a NUL, in a variable, in the document, in
// a GET request's variables and over a WebSocket; encoding/json would otherwise have turned it
// into U+FFFD.
func TestInvalidUTF8IsRefusedLikeNUL(t *testing.T) {
	t.Parallel()
	api := newAPI(t, nil)
	_, owner := dbtest.CreateWorkspace(t, api.db, dbtest.WorkspaceOpts{})
	tok := api.token(owner, false)
	headers := http.Header{"Content-Type": {"application/json"}, "Authorization": {"Bearer " + tok}}
	const create = `mutation($n: String!) { createWorkspace(name: $n) { id } }`
	bodies := map[string]string{
		"NUL in a variable":               `{"query": "` + create + `", "variables": {"n": "Umbrella\u0000"}}`,
		"invalid bytes in a variable":     "{\"query\": \"" + create + "\", \"variables\": {\"n\": \"Umbrella\xff\xfe\"}}",
		"a lone high surrogate":           `{"query": "` + create + `", "variables": {"n": "Umbrella\ud800"}}`,
		"a lone low surrogate":            `{"query": "` + create + `", "variables": {"n": "\udc00Umbrella"}}`,
		"a high surrogate before another": `{"query": "` + create + `", "variables": {"n": "\ud800\ud800"}}`,
		"invalid bytes in a filter list":  "{\"query\": \"query($i: [String!]) { marketplaceLeads(filter: {industries: $i}) { pageInfo { hasNextPage } } }\", \"variables\": {\"i\": [\"SaaS\", \"\xc3\"]}}",
		"invalid bytes in the document":   "{\"query\": \"mutation { createWorkspace(name: \\\"Umbrella\xff\\\") { id } }\"}",
	}
	for name, body := range bodies {
		res := api.send(http.MethodPost, "/graphql", headers, []byte(body))
		require.Equal(t, "INVALID_INPUT", res.gql.code(), "%s: %.300s", name, res.body)
		require.Equal(t, "strings must be valid UTF-8 and cannot contain the NUL character (U+0000)", res.gql.Errors[0].Message, name)
		require.Equal(t, http.StatusOK, res.status, name)
		require.False(t, res.hasData, name)
	}
	get := func(vars string) httpResult {
		q := url.Values{"query": {`query($t: String) { marketplaceLeads(filter: {titleContains: $t}) { pageInfo { hasNextPage } } }`},
			"variables": {vars}}
		return api.send(http.MethodGet, "/graphql?"+q.Encode(), http.Header{"Authorization": {"Bearer " + tok}, "GraphQL-Preflight": {"1"}}, nil)
	}
	require.Equal(t, "INVALID_INPUT", get("{\"t\": \"ceo\xff\"}").gql.code())
	require.Equal(t, "INVALID_INPUT", get(`{"t": "ceo\ud83d"}`).gql.code())
	require.Empty(t, get(`{"t": "ceo \ud83d\ude00 \\ud800"}`).gql.Errors, "a surrogate pair, and an escaped backslash before u, are fine")

	// Valid UTF-8 beyond ASCII, escaped or not, still works, and nothing refused was created.
	for _, name := range []string{`"Zürich \u00e9 \ud83d\ude00"`, `"東京"`} {
		res := api.send(http.MethodPost, "/graphql", headers, []byte(`{"query": "`+create+`", "variables": {"n": `+name+`}}`))
		require.Empty(t, res.gql.Errors, "%s: %.300s", name, res.body)
	}
	var workspaces int
	require.NoError(t, api.db.NewRaw("SELECT count(*) FROM workspace_members WHERE user_id = ?", owner.ID).Scan(t.Context(), &workspaces))
	require.Equal(t, 3, workspaces, "the first and the two created just now")

	// Over a WebSocket the subscribe is refused with an error message and the socket stays open.
	ws := openWS(t, api, tok)
	require.NoError(t, ws.send(wsMessage{ID: "1", Type: "subscribe",
		Payload: json.RawMessage(`{"query": "query($t: String) { marketplaceLeads(filter: {titleContains: $t}) { pageInfo { hasNextPage } } }", "variables": {"t": "\udfff"}}`)}))
	m, err := ws.read()
	require.NoError(t, err)
	require.Equal(t, "error", m.Type)
	require.Contains(t, string(m.Payload), "INVALID_INPUT")
	require.Contains(t, ws.query("2", "{ me { id } }"), owner.ID)
}

// Every list input holds at most 100 values unless the schema's list bounds give it another
// (bulk ids 10,000, reverifyLeads 1,000); more is INVALID_INPUT naming the argument, refused
// before validation and coercion walk the values.
func TestListInputsAreBounded(t *testing.T) {
	t.Parallel()
	api := newAPI(t, nil)
	ws, owner := dbtest.CreateWorkspace(t, api.db, dbtest.WorkspaceOpts{})
	admin := dbtest.CreateUser(t, api.db, dbtest.UserOpts{IsPlatformAdmin: true})
	tok, adminTok := api.token(owner, false), api.token(admin, true)
	countries := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = "US"
		}
		return out
	}
	ids := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = uuid.NewString()
		}
		return out
	}
	const byFilter = `query($f: LeadFilter) { marketplaceLeads(filter: $f) { pageInfo { hasNextPage } } }`
	const byList = `query($c: [String!]) { marketplaceLeads(filter: {countries: $c}) { pageInfo { hasNextPage } } }`
	literal := `{ marketplaceLeads(filter: {industries: ["` + strings.Join(countries(101), `","`) + `"]}) { pageInfo { hasNextPage } } }`
	const bulk = `mutation($in: BulkDeleteLeadsInput!) { bulkDeleteLeads(input: $in) { requested } }`
	const reverify = `mutation($ids: [ID!]!) { reverifyLeads(leadIds: $ids) }`
	for name, tc := range map[string]struct {
		token, query string
		vars         map[string]any
		argument     string
		limit        int
	}{
		"300,000 countries in a filter variable": {tok, byFilter, map[string]any{"f": map[string]any{"countries": countries(300_000)}}, "filter.countries", 100},
		"300,000 countries in a list variable":   {tok, byList, map[string]any{"c": countries(300_000)}, "filter.countries", 100},
		"101 countries":                          {tok, byList, map[string]any{"c": countries(101)}, "filter.countries", 100},
		"101 industries in the document":         {tok, literal, nil, "filter.industries", 100},
		"101 partner ids":                        {tok, byFilter, map[string]any{"f": map[string]any{"partnerIds": ids(101)}}, "filter.partnerIds", 100},
		"10,001 bulk ids":                        {tok, bulk, map[string]any{"in": map[string]any{"workspaceId": ws, "ids": ids(10_001)}}, "input.ids", 10_000},
		"101 tags in a bulk filter": {tok, bulk, map[string]any{"in": map[string]any{"workspaceId": ws,
			"filter": map[string]any{"tagsAny": countries(101)}}}, "input.filter.tagsAny", 100},
		"1,001 leads to verify again": {adminTok, reverify, map[string]any{"ids": ids(1001)}, "leadIds", 1000},
	} {
		start := time.Now()
		res := api.postJSON(tc.token, nil, tc.query, tc.vars)
		elapsed := time.Since(start)
		require.Equal(t, "INVALID_INPUT", res.gql.code(), "%s: %.300s", name, res.body)
		require.Contains(t, res.gql.Errors[0].Message, tc.argument+" takes at most ", name)
		require.Equal(t, tc.argument, res.gql.Errors[0].Extensions["argument"], name)
		require.EqualValues(t, tc.limit, res.gql.Errors[0].Extensions["limit"], name)
		require.False(t, res.hasData, name)
		require.Less(t, elapsed, time.Second, "%s took %s", name, elapsed)
		t.Logf("%s: refused in %s", name, elapsed)
	}

	// At the bound the values go through to the service, whose own rules still hold.
	require.Empty(t, api.postJSON(tok, nil, byList, map[string]any{"c": countries(100)}).gql.Errors)
	res := api.postJSON(tok, nil, bulk, map[string]any{"in": map[string]any{"workspaceId": ws, "ids": ids(10_000)}})
	require.Empty(t, res.gql.Errors, "%.300s", res.body)
}

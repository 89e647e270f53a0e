package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/leadmarket/leadmarket/internal/dbtest"
	"github.com/leadmarket/leadmarket/internal/ratelimit"
	"github.com/leadmarket/leadmarket/internal/redistest"
)

// httpResult is a raw HTTP exchange with /graphql: the status, the headers and the decoded body.
type httpResult struct {
	status int
	header http.Header
	body   []byte
	gql    gqlResponse
	// hasData reports whether the body had a data entry at all (request errors have none).
	hasData bool
}

// send makes one HTTP request to the server.
func (s *apiServer) send(method, path string, header http.Header, body []byte) httpResult {
	s.t.Helper()
	req, err := http.NewRequest(method, s.url+path, bytes.NewReader(body))
	require.NoError(s.t, err)
	for k, v := range header {
		req.Header[k] = v
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(s.t, err)
	defer res.Body.Close()
	out := httpResult{status: res.StatusCode, header: res.Header}
	out.body, err = io.ReadAll(res.Body)
	require.NoError(s.t, err)
	var probe map[string]json.RawMessage
	if json.Unmarshal(out.body, &probe) == nil {
		_, out.hasData = probe["data"]
		_ = json.Unmarshal(out.body, &out.gql)
	}
	out.gql.Status = res.StatusCode
	return out
}

// postJSON posts a GraphQL request as JSON with token ("" for none) and extra headers.
func (s *apiServer) postJSON(token string, header http.Header, query string, vars map[string]any) httpResult {
	s.t.Helper()
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	require.NoError(s.t, err)
	h := http.Header{"Content-Type": {"application/json"}}
	for k, v := range header {
		h[k] = v
	}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	return s.send(http.MethodPost, "/graphql", h, body)
}

// rateLimitStores are the two stores every rate-limit test runs on; env completes the
// configuration of each.
func rateLimitStores(t *testing.T) map[string]map[string]string {
	return map[string]map[string]string{
		"memory": {},
		"redis":  {"REDIS_URL": redistest.URL(t)},
	}
}

func withEnv(base map[string]string, more map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range more {
		out[k] = v
	}
	return out
}

// tierCase is one tier's operation for the rate-limit tests: op returns the request for the
// n-th call of user (it may need data of its own).
type tierCase struct {
	tier  string
	limit int
	setUp func(t *testing.T, api *apiServer, u dbtest.User) (call func(n int) (string, map[string]any))
}

var tierCases = []tierCase{
	{tier: "PURCHASE", limit: 2, setUp: func(t *testing.T, api *apiServer, u dbtest.User) func(int) (string, map[string]any) {
		ws, _ := dbtest.CreateWorkspace(t, api.db, dbtest.WorkspaceOpts{Owner: &u, Credits: 1000})
		partnerID := dbtest.CreatePartner(t, api.db, dbtest.PartnerOpts{})
		var leads []string
		for range 4 {
			leads = append(leads, dbtest.CreateLead(t, api.db, dbtest.LeadOpts{PartnerID: partnerID, PriceCredits: 1}))
		}
		return func(n int) (string, map[string]any) {
			return `mutation Buy($in: PurchaseLeadsInput!) { purchaseLeads(input: $in) { creditsSpent } }`,
				map[string]any{"in": map[string]any{"workspaceId": ws, "leadIds": []string{leads[n]}, "idempotencyKey": uuid.NewString()}}
		}
	}},
	{tier: "BROWSE", limit: 3, setUp: func(*testing.T, *apiServer, dbtest.User) func(int) (string, map[string]any) {
		return func(int) (string, map[string]any) {
			return `query Browse { marketplaceLeads(first: 1) { edges { node { id } } } }`, nil
		}
	}},
	{tier: "STANDARD", limit: 4, setUp: func(*testing.T, *apiServer, dbtest.User) func(int) (string, map[string]any) {
		return func(int) (string, map[string]any) { return `query Me { me { id } }`, nil }
	}},
}

// tierEnv is a configuration with small limits and a short window, so a test exhausts a tier in a
// few calls and sees it refill within seconds (one operation back every window/limit).
var tierEnv = map[string]string{
	"RATE_LIMIT_PURCHASE": "2", "RATE_LIMIT_BROWSE": "3", "RATE_LIMIT_STANDARD": "4", "RATE_LIMIT_WINDOW": "4s",
}

// requireRateLimited checks the refusal's shape: 429, Retry-After, the error's extensions, no data.
func requireRateLimited(t *testing.T, res httpResult, tier string, limit int) int {
	t.Helper()
	require.Equal(t, http.StatusTooManyRequests, res.status, "%s", res.body)
	retry, err := strconv.Atoi(res.header.Get("Retry-After"))
	require.NoError(t, err, "Retry-After is whole seconds")
	require.Positive(t, retry)
	require.False(t, res.hasData, "refused before execution: no data entry")
	require.Len(t, res.gql.Errors, 1)
	ext := res.gql.Errors[0].Extensions
	require.Equal(t, "RATE_LIMITED", ext["code"])
	require.Equal(t, tier, ext["tier"])
	require.EqualValues(t, retry, ext["retryAfter"])
	require.EqualValues(t, limit, ext["limit"])
	require.EqualValues(t, 0, ext["remaining"])
	resetAt, err := time.Parse(time.RFC3339, ext["resetAt"].(string))
	require.NoError(t, err)
	require.True(t, resetAt.After(time.Now().Add(-time.Second)), "resetAt is in the future: %s", resetAt)
	require.Equal(t, strconv.Itoa(limit), res.header.Get("RateLimit-Limit"))
	require.Equal(t, "0", res.header.Get("RateLimit-Remaining"))
	return retry
}

func TestRateLimits_EachTierRefusesTheCallOverItsLimitUntilItRefills(t *testing.T) {
	t.Parallel()
	for store, storeEnv := range rateLimitStores(t) {
		for _, tc := range tierCases {
			t.Run(store+"/"+tc.tier, func(t *testing.T) {
				t.Parallel()
				api := newAPI(t, withEnv(tierEnv, storeEnv))
				user := dbtest.CreateUser(t, api.db, dbtest.UserOpts{})
				other := dbtest.CreateUser(t, api.db, dbtest.UserOpts{})
				if store == "redis" {
					redistest.DeleteAtCleanup(t, user.ID)
					redistest.DeleteAtCleanup(t, other.ID)
				}
				call, otherCall := tc.setUp(t, api, user), tc.setUp(t, api, other)
				tok, otherTok := api.token(user, false), api.token(other, false)

				for n := range tc.limit {
					q, vars := call(n)
					res := api.postJSON(tok, nil, q, vars)
					require.Equal(t, http.StatusOK, res.status, "call %d: %s", n+1, res.body)
					require.Empty(t, res.gql.Errors, "call %d", n+1)
					require.Equal(t, strconv.Itoa(tc.limit), res.header.Get("RateLimit-Limit"))
					require.Equal(t, strconv.Itoa(tc.limit-n-1), res.header.Get("RateLimit-Remaining"), "call %d", n+1)
					// GCRA: each operation holds window/limit of the bucket until it drips back.
					reset, err := strconv.Atoi(res.header.Get("RateLimit-Reset"))
					require.NoError(t, err)
					require.InDelta(t, math.Ceil(float64(n+1)*4/float64(tc.limit)), reset, 1, "call %d", n+1)
					require.Equal(t, fmt.Sprintf("%d;w=4", tc.limit), res.header.Get("RateLimit-Policy"))
				}
				q, vars := call(tc.limit)
				retry := requireRateLimited(t, api.postJSON(tok, nil, q, vars), tc.tier, tc.limit)
				require.LessOrEqual(t, retry, 2, "one operation comes back every window/limit")

				// Nothing ran: the refused purchase bought nothing.
				if tc.tier == "PURCHASE" {
					var bought int
					require.NoError(t, api.db.NewRaw(`SELECT count(*) FROM lead_purchases p JOIN workspace_members m
						ON m.workspace_id = p.workspace_id WHERE m.user_id = ?`, user.ID).Scan(context.Background(), &bought))
					require.Equal(t, tc.limit, bought)
				}
				// The refusal is recorded.
				var recorded int
				require.NoError(t, api.db.NewRaw(`SELECT count(*) FROM rate_limit_violations WHERE user_id = ? AND tier = ?
					AND ip = '127.0.0.1' AND operation <> ''`, user.ID, tc.tier).Scan(context.Background(), &recorded))
				require.Equal(t, 1, recorded)

				// Another user has a bucket of their own.
				oq, ovars := otherCall(0)
				res := api.postJSON(otherTok, nil, oq, ovars)
				require.Equal(t, http.StatusOK, res.status, "%s", res.body)
				require.Empty(t, res.gql.Errors)

				// After Retry-After, the caller may run one more.
				time.Sleep(time.Duration(retry) * time.Second)
				q, vars = call(tc.limit)
				res = api.postJSON(tok, nil, q, vars)
				require.Equal(t, http.StatusOK, res.status, "%s", res.body)
				require.Empty(t, res.gql.Errors)
			})
		}
	}
}

func TestRateLimits_OneUnitPerRootFieldAndHeadersForTheTightest(t *testing.T) {
	t.Parallel()
	api := newAPI(t, tierEnv)
	u := dbtest.CreateUser(t, api.db, dbtest.UserOpts{})
	tok := api.token(u, false)
	// Two STANDARD root fields and one BROWSE field: two units of STANDARD, one of BROWSE. Both
	// have 2 left; the headers show the tighter, BROWSE.
	res := api.postJSON(tok, nil, `{ me { id } creditPackages { id } marketplaceLeads(first: 1) { edges { node { id } } } }`, nil)
	require.Empty(t, res.gql.Errors)
	require.Equal(t, "3", res.header.Get("RateLimit-Limit"))
	require.Equal(t, "2", res.header.Get("RateLimit-Remaining"))
	res = api.postJSON(tok, nil, `{ me { id } }`, nil)
	require.Equal(t, "4", res.header.Get("RateLimit-Limit"))
	require.Equal(t, "1", res.header.Get("RateLimit-Remaining"), "three STANDARD fields so far")

	// A skipped root field does not count.
	res = api.postJSON(tok, nil, `query($no: Boolean!) { me { id } marketplaceLeads(first: 1) @include(if: $no) { edges { node { id } } } }`,
		map[string]any{"no": false})
	require.Empty(t, res.gql.Errors)
	require.Equal(t, "4", res.header.Get("RateLimit-Limit"))
	require.Equal(t, "0", res.header.Get("RateLimit-Remaining"))

	// Requests refused before they are valid operations are not charged and carry no headers.
	res = api.postJSON(tok, nil, `{ me { nope } }`, nil)
	require.Equal(t, "GRAPHQL_VALIDATION_FAILED", res.gql.code())
	require.Empty(t, res.header.Get("RateLimit-Remaining"))
}

// Aliases do not multiply a limit: each aliased root field costs a unit, and an operation asking
// for more fields of a tier than the tier allows at all is refused before anything runs.
func TestRateLimits_AliasesCountOneByOne(t *testing.T) {
	t.Parallel()
	api := newAPI(t, tierEnv)
	ws, owner := dbtest.CreateWorkspace(t, api.db, dbtest.WorkspaceOpts{Credits: 100})
	partner := dbtest.CreatePartner(t, api.db, dbtest.PartnerOpts{})
	tok := api.token(owner, false)
	cart := func(key string) map[string]any {
		return map[string]any{"workspaceId": ws, "idempotencyKey": key,
			"leadIds": []string{dbtest.CreateLead(t, api.db, dbtest.LeadOpts{PartnerID: partner, PriceCredits: 1})}}
	}
	const buy3 = `mutation($a: PurchaseLeadsInput!, $b: PurchaseLeadsInput!, $c: PurchaseLeadsInput!) {
		a: purchaseLeads(input: $a) { balance } b: purchaseLeads(input: $b) { balance } c: purchaseLeads(input: $c) { balance } }`
	res := api.postJSON(tok, nil, buy3, map[string]any{"a": cart("a1"), "b": cart("b1"), "c": cart("c1")})
	require.Equal(t, "TIER_LIMIT_EXCEEDED", res.gql.code(), "%s", res.body)
	require.False(t, res.hasData)
	var bought int
	require.NoError(t, api.db.NewRaw("SELECT count(*) FROM lead_purchases WHERE workspace_id = ?", ws).Scan(context.Background(), &bought))
	require.Zero(t, bought)

	// Two aliased purchases use up the PURCHASE limit of 2; the next purchase is refused.
	const buy2 = `mutation($a: PurchaseLeadsInput!, $b: PurchaseLeadsInput!) {
		a: purchaseLeads(input: $a) { balance } b: purchaseLeads(input: $b) { balance } }`
	res = api.postJSON(tok, nil, buy2, map[string]any{"a": cart("a2"), "b": cart("b2")})
	require.Empty(t, res.gql.Errors, "%s", res.body)
	require.Equal(t, "0", res.header.Get("RateLimit-Remaining"))
	res = api.postJSON(tok, nil, `mutation($a: PurchaseLeadsInput!) { purchaseLeads(input: $a) { balance } }`,
		map[string]any{"a": cart("a3")})
	requireRateLimited(t, res, "PURCHASE", 2)
}

func TestRateLimits_AnonymousCallersAreKeyedByClientIP(t *testing.T) {
	t.Parallel()
	anonymous := func(api *apiServer, forwardedFor string) httpResult {
		h := http.Header{}
		if forwardedFor != "" {
			h.Set("X-Forwarded-For", forwardedFor)
		}
		return api.postJSON("", h, `{ __typename }`, nil)
	}

	// Behind a trusted proxy, X-Forwarded-For names the client: each address has its bucket, and
	// what a client writes in front of the proxy's entry is not believed.
	api := newAPI(t, map[string]string{"RATE_LIMIT_STANDARD": "1", "TRUSTED_PROXIES": "127.0.0.1/32, 10.0.0.0/8"})
	require.Equal(t, http.StatusOK, anonymous(api, "198.51.100.1").status)
	require.Equal(t, http.StatusTooManyRequests, anonymous(api, "198.51.100.1").status)
	require.Equal(t, http.StatusTooManyRequests, anonymous(api, "203.0.113.9, 198.51.100.1").status, "a spoofed first hop changes nothing")
	require.Equal(t, http.StatusTooManyRequests, anonymous(api, "198.51.100.1, 10.1.2.3").status, "trusted hops are skipped")
	require.Equal(t, http.StatusOK, anonymous(api, "198.51.100.2").status)
	var ips []string
	require.NoError(t, api.db.NewRaw(`SELECT DISTINCT ip FROM rate_limit_violations WHERE caller_key = 'ip:198.51.100.1'`).
		Scan(context.Background(), &ips))
	require.Equal(t, []string{"198.51.100.1"}, ips)

	// Without trusted proxies the peer is the client, whatever X-Forwarded-For says.
	direct := newAPI(t, map[string]string{"RATE_LIMIT_STANDARD": "1"})
	require.Equal(t, http.StatusOK, anonymous(direct, "198.51.100.3").status)
	require.Equal(t, http.StatusTooManyRequests, anonymous(direct, "198.51.100.4").status)
}

func TestRateLimits_RepeatedRefusalsRaiseOneSecurityEvent(t *testing.T) {
	t.Parallel()
	api := newAPI(t, map[string]string{"RATE_LIMIT_STANDARD": "1"})
	u := dbtest.CreateUser(t, api.db, dbtest.UserOpts{})
	tok := api.token(u, false)
	require.Equal(t, http.StatusOK, api.postJSON(tok, nil, `{ me { id } }`, nil).status)
	for range ratelimit.AbuseThreshold + 3 {
		require.Equal(t, http.StatusTooManyRequests, api.postJSON(tok, nil, `query Scrape { me { id } }`, nil).status)
	}
	ctx := context.Background()
	var refusals, events int
	require.NoError(t, api.db.NewRaw(`SELECT count(*) FROM rate_limit_violations WHERE user_id = ? AND operation = 'Scrape'`, u.ID).
		Scan(ctx, &refusals))
	require.Equal(t, ratelimit.AbuseThreshold+3, refusals)
	var ev struct {
		RiskLevel string `bun:"risk_level"`
		Operation string `bun:"operation"`
		IP        string `bun:"ip"`
	}
	require.NoError(t, api.db.NewRaw(`SELECT count(*) FROM security_events WHERE user_id = ? AND kind = 'rate_limit_abuse'`, u.ID).
		Scan(ctx, &events))
	require.Equal(t, 1, events, "raised once per window, not on every refusal")
	require.NoError(t, api.db.NewRaw(`SELECT risk_level, operation, ip FROM security_events WHERE user_id = ? AND kind = 'rate_limit_abuse'`,
		u.ID).Scan(ctx, &ev))
	require.Equal(t, "HIGH", ev.RiskLevel)
	require.Equal(t, "Scrape", ev.Operation)
	require.Equal(t, "127.0.0.1", ev.IP)
}

func TestRateLimits_StripeWebhookIsNeverLimited(t *testing.T) {
	t.Parallel()
	for store, storeEnv := range rateLimitStores(t) {
		t.Run(store, func(t *testing.T) {
			t.Parallel()
			// Behind a trusted proxy with a client address of the test's own, so the Redis bucket
			// is not shared with any other test.
			id := uuid.New()
			client := fmt.Sprintf("198.18.%d.%d", id[0], id[1]) // 198.18.0.0/15: benchmarking addresses
			api := newAPI(t, withEnv(storeEnv, map[string]string{
				"RATE_LIMIT_PURCHASE": "1", "RATE_LIMIT_BROWSE": "1", "RATE_LIMIT_STANDARD": "1", "TRUSTED_PROXIES": "127.0.0.1",
			}))
			if store == "redis" {
				redistest.DeleteAtCleanup(t, "ip:"+client)
			}
			h := http.Header{"X-Forwarded-For": {client}}
			api.postJSON("", h, `{ __typename }`, nil)
			require.Equal(t, http.StatusTooManyRequests, api.postJSON("", h, `{ __typename }`, nil).status, "the caller is limited on /graphql")
			for range 20 {
				res := api.send(http.MethodPost, "/webhooks/stripe", http.Header{
					"Content-Type": {"application/json"}, "Stripe-Signature": {"t=1,v1=bad"}, "X-Forwarded-For": {client},
				}, []byte(`{"id":"evt_x","type":"charge.refunded"}`))
				require.NotEqual(t, http.StatusTooManyRequests, res.status)
				require.Less(t, res.status, 500)
				require.Empty(t, res.header.Get("RateLimit-Limit"))
			}
		})
	}
}

func TestRateLimits_ThreeInstancesOnOneRedisEnforceOneLimit(t *testing.T) {
	t.Parallel()
	env := map[string]string{"REDIS_URL": redistest.URL(t)} // the default PURCHASE limit: 10 a minute
	instances := []*apiServer{newAPI(t, env), newAPI(t, env), newAPI(t, env)}
	db := instances[0].db
	ws, buyer := dbtest.CreateWorkspace(t, db, dbtest.WorkspaceOpts{Credits: 1000})
	redistest.DeleteAtCleanup(t, buyer.ID)
	partnerID := dbtest.CreatePartner(t, db, dbtest.PartnerOpts{})
	tok := instances[0].token(buyer, false)
	buy := `mutation($in: PurchaseLeadsInput!) { purchaseLeads(input: $in) { creditsSpent } }`
	for n := range 11 {
		lead := dbtest.CreateLead(t, db, dbtest.LeadOpts{PartnerID: partnerID, PriceCredits: 1})
		res := instances[n%3].postJSON(tok, nil, buy,
			map[string]any{"in": map[string]any{"workspaceId": ws, "leadIds": []string{lead}, "idempotencyKey": uuid.NewString()}})
		if n < 10 {
			require.Equal(t, http.StatusOK, res.status, "purchase %d on instance %d: %s", n+1, n%3, res.body)
			require.Empty(t, res.gql.Errors)
			require.Equal(t, strconv.Itoa(9-n), res.header.Get("RateLimit-Remaining"), "one bucket for all instances")
			continue
		}
		requireRateLimited(t, res, "PURCHASE", 10)
	}
	var bought int
	require.NoError(t, db.NewRaw("SELECT count(*) FROM lead_purchases WHERE workspace_id = ?", ws).Scan(context.Background(), &bought))
	require.Equal(t, 10, bought, "10 purchases a minute in total, not 30")
}

func TestRateLimits_AnUnreachableRedisLetsOperationsThrough(t *testing.T) {
	t.Parallel()
	api := newAPI(t, map[string]string{"REDIS_URL": "redis://127.0.0.1:1/0", "RATE_LIMIT_STANDARD": "1"})
	u := dbtest.CreateUser(t, api.db, dbtest.UserOpts{})
	tok := api.token(u, false)
	for range 3 {
		res := api.postJSON(tok, nil, `{ me { id } }`, nil)
		require.Equal(t, http.StatusOK, res.status, "%s", res.body)
		require.Empty(t, res.gql.Errors)
		require.Empty(t, res.header.Get("RateLimit-Limit"))
	}
}

func TestRateLimits_Off(t *testing.T) {
	t.Parallel()
	api := newAPI(t, map[string]string{"RATE_LIMITS_ENABLED": "false", "RATE_LIMIT_STANDARD": "1"})
	u := dbtest.CreateUser(t, api.db, dbtest.UserOpts{})
	for range 3 {
		res := api.postJSON(api.token(u, false), nil, `{ me { id } }`, nil)
		require.Equal(t, http.StatusOK, res.status)
		require.Empty(t, res.header.Get("RateLimit-Limit"))
	}
	require.False(t, strings.Contains(string(api.postJSON("", nil, `{ __typename }`, nil).body), "RATE_LIMITED"))
}

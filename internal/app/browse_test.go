package app_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/leadmarket/leadmarket/internal/dbtest"
)

type browseLead struct {
	ID, Industry, Country, Seniority, CompanySize, Title, VerificationStatus string
	PriceCredits                                                             int
	CreatedAt                                                                time.Time
}

type browsePage struct {
	MarketplaceLeads struct {
		Edges []struct {
			Cursor string
			Node   browseLead
		}
		PageInfo struct {
			HasNextPage bool
			EndCursor   *string
		}
	}
}

const browseQuery = `query($first: Int, $after: String, $filter: LeadFilter, $order: LeadOrder) {
	marketplaceLeads(first: $first, after: $after, filter: $filter, orderBy: $order) {
		edges { cursor node { id industry country seniority companySize title verificationStatus priceCredits createdAt
			partner { id name } purchasedByMyWorkspace emailPreview email } }
		pageInfo { hasNextPage endCursor } } }`

// walk pages through marketplaceLeads and returns the ids in order; between pages it calls
// between(page number).
func walk(t *testing.T, api *apiServer, tok string, first int, filter map[string]any, order string, between func(int)) []string {
	t.Helper()
	var ids []string
	var after any
	for page := 0; page < 100; page++ {
		var p browsePage
		api.do(tok, browseQuery, map[string]any{"first": first, "after": after, "filter": filter, "order": order}).decode(t, &p)
		require.LessOrEqual(t, len(p.MarketplaceLeads.Edges), first)
		for _, e := range p.MarketplaceLeads.Edges {
			ids = append(ids, e.Node.ID)
		}
		if !p.MarketplaceLeads.PageInfo.HasNextPage {
			return ids
		}
		require.Len(t, p.MarketplaceLeads.Edges, first, "a page before the last is full")
		after = *p.MarketplaceLeads.PageInfo.EndCursor
		if between != nil {
			between(page)
		}
	}
	t.Fatal("pagination did not end")
	return nil
}

func TestBrowse_FiltersOrdersAndPagination(t *testing.T) {
	t.Parallel()
	// The walks below browse far more than 60 pages a minute.
	api := newAPI(t, map[string]string{"RATE_LIMIT_BROWSE": "100000"})
	db := api.db
	_, buyer := dbtest.CreateWorkspace(t, db, dbtest.WorkspaceOpts{})
	tok := api.token(buyer, false)
	partnerID := dbtest.CreatePartner(t, db, dbtest.PartnerOpts{})
	otherPartner := dbtest.CreatePartner(t, db, dbtest.PartnerOpts{})

	industries := []string{"Software", "Fintech", "Retail"}
	countries := []string{"US", "GB", "DE", "FR"}
	seniorities := []string{"DIRECTOR", "VP", "MANAGER"}
	sizes := []string{"SIZE_11_50", "SIZE_201_500"}
	titles := []string{"Head of Sales", "VP Marketing", "Sales Manager", "CTO"}
	statuses := []string{"VALID", "PENDING", "CATCH_ALL"}
	base := time.Now().Add(-time.Hour).Truncate(time.Microsecond)
	var all []browseLead
	for i := range 37 {
		l := browseLead{
			Industry: industries[i%3], Country: countries[i%4], Seniority: seniorities[i%3], CompanySize: sizes[i%2],
			Title: titles[i%4], VerificationStatus: statuses[i%3], PriceCredits: 1 + (i*7)%20,
			// Some leads share a timestamp, so the id breaks ties in the keyset.
			CreatedAt: base.Add(time.Duration(i/2) * time.Second),
		}
		l.ID = dbtest.CreateLead(t, db, dbtest.LeadOpts{
			PartnerID: partnerID, Industry: l.Industry, Country: l.Country, Seniority: l.Seniority, CompanySize: l.CompanySize,
			Title: l.Title, VerificationStatus: l.VerificationStatus, PriceCredits: l.PriceCredits, CreatedAt: l.CreatedAt,
		})
		all = append(all, l)
	}
	// Never listed: not sellable, or another partner's (outside the partner filter).
	dbtest.CreateLead(t, db, dbtest.LeadOpts{PartnerID: partnerID, VerificationStatus: "INVALID"})
	dbtest.CreateLead(t, db, dbtest.LeadOpts{PartnerID: partnerID, Status: "INACTIVE"})
	soldOut := dbtest.CreateLead(t, db, dbtest.LeadOpts{PartnerID: partnerID, MaxBuyers: 1})
	_, err := db.ExecContext(context.Background(), "UPDATE leads SET buyers_count = 1 WHERE id = ?", soldOut)
	require.NoError(t, err)
	dbtest.CreateLead(t, db, dbtest.LeadOpts{PartnerID: otherPartner})

	newest := func(a, b browseLead) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	}
	priceAsc := func(a, b browseLead) int {
		if a.PriceCredits != b.PriceCredits {
			return a.PriceCredits - b.PriceCredits
		}
		return strings.Compare(a.ID, b.ID)
	}
	expect := func(keep func(browseLead) bool, cmp func(a, b browseLead) int) []string {
		var ls []browseLead
		for _, l := range all {
			if keep(l) {
				ls = append(ls, l)
			}
		}
		slices.SortFunc(ls, cmp)
		ids := make([]string, len(ls))
		for i, l := range ls {
			ids[i] = l.ID
		}
		return ids
	}
	mine := []string{partnerID}
	cases := []struct {
		name   string
		filter map[string]any
		keep   func(browseLead) bool
	}{
		{"partner only", map[string]any{}, func(browseLead) bool { return true }},
		{"industries", map[string]any{"industries": []string{"Software", "Retail"}}, func(l browseLead) bool { return l.Industry != "Fintech" }},
		{"countries", map[string]any{"countries": []string{"gb", "DE"}}, func(l browseLead) bool { return l.Country == "GB" || l.Country == "DE" }},
		{"seniorities", map[string]any{"seniorities": []string{"VP"}}, func(l browseLead) bool { return l.Seniority == "VP" }},
		{"company sizes", map[string]any{"companySizes": []string{"SIZE_11_50"}}, func(l browseLead) bool { return l.CompanySize == "SIZE_11_50" }},
		{"title text", map[string]any{"titleContains": "sales"}, func(l browseLead) bool { return strings.Contains(strings.ToLower(l.Title), "sales") }},
		{"verification", map[string]any{"verificationStatuses": []string{"VALID", "CATCH_ALL"}}, func(l browseLead) bool { return l.VerificationStatus != "PENDING" }},
		{"price range", map[string]any{"minPriceCredits": 5, "maxPriceCredits": 12}, func(l browseLead) bool { return l.PriceCredits >= 5 && l.PriceCredits <= 12 }},
		{"created after", map[string]any{"createdAfter": base.Add(10 * time.Second).Format(time.RFC3339Nano)}, func(l browseLead) bool { return l.CreatedAt.After(base.Add(10 * time.Second)) }},
		{"combined", map[string]any{"industries": []string{"Software"}, "countries": []string{"US", "DE"}, "minPriceCredits": 2},
			func(l browseLead) bool {
				return l.Industry == "Software" && (l.Country == "US" || l.Country == "DE") && l.PriceCredits >= 2
			}},
	}
	for _, tc := range cases {
		tc.filter["partnerIds"] = mine
		for _, first := range []int{4, 100} {
			require.Equal(t, expect(tc.keep, newest), walk(t, api, tok, first, tc.filter, "NEWEST", nil), "%s, first %d", tc.name, first)
		}
	}
	filter := map[string]any{"partnerIds": mine}
	require.Equal(t, expect(func(browseLead) bool { return true }, priceAsc), walk(t, api, tok, 5, filter, "PRICE_ASC", nil))
	desc := expect(func(browseLead) bool { return true }, func(a, b browseLead) int { return -priceAsc(a, b) })
	require.Equal(t, desc, walk(t, api, tok, 5, filter, "PRICE_DESC", nil))

	// Leads added (and one sold out) between pages neither repeat nor hide any lead of the walk.
	var added []string
	got := walk(t, api, tok, 6, filter, "NEWEST", func(page int) {
		added = append(added, dbtest.CreateLead(t, db, dbtest.LeadOpts{PartnerID: partnerID}))
	})
	want := expect(func(browseLead) bool { return true }, newest)
	require.Equal(t, want, got, "no duplicates or gaps while leads are added")
	require.NotEmpty(t, added)
	sort.Strings(got)
	require.Len(t, slices.Compact(got), len(want))
}

func TestBrowse_StatementsDoNotGrowWithPageSize(t *testing.T) {
	t.Parallel()
	api := newAPI(t, nil)
	db := api.db
	ws, buyer := dbtest.CreateWorkspace(t, db, dbtest.WorkspaceOpts{Credits: 1000})
	tok := api.token(buyer, false)
	var partners []string
	for range 4 {
		partners = append(partners, dbtest.CreatePartner(t, db, dbtest.PartnerOpts{}))
	}
	var leads []string
	for i := range 105 {
		leads = append(leads, dbtest.CreateLead(t, db, dbtest.LeadOpts{PartnerID: partners[i%4], Industry: "StatementCount"}))
	}
	res := api.do(tok, `mutation($in: PurchaseLeadsInput!) { purchaseLeads(input: $in) { balance } }`,
		map[string]any{"in": map[string]any{"workspaceId": ws, "leadIds": leads[:3], "idempotencyKey": "stmts"}})
	require.Empty(t, res.Errors)

	count := func(first int) int {
		res := api.do(tok, browseQuery, map[string]any{"first": first, "filter": map[string]any{"partnerIds": partners}})
		var p browsePage
		res.decode(t, &p)
		require.Len(t, p.MarketplaceLeads.Edges, first)
		require.Positive(t, res.Statements)
		return res.Statements
	}
	ten, hundred := count(10), count(100)
	t.Logf("SQL statements: page of 10 = %d, page of 100 = %d", ten, hundred)
	require.Equal(t, ten, hundred)
	require.LessOrEqual(t, hundred, 4, "page query, partners batch, purchased batch (and a user lookup when uncached)")
}

func TestBrowse_BadArguments(t *testing.T) {
	t.Parallel()
	api := newAPI(t, nil)
	u := dbtest.CreateUser(t, api.db, dbtest.UserOpts{})
	tok := api.token(u, false)
	for name, vars := range map[string]map[string]any{
		"first zero":         {"first": 0},
		"bad cursor":         {"after": "definitely-not-a-cursor"},
		"cursor of an order": {"after": "eyJvIjoiUFJJQ0VfQVNDIiwicCI6MSwiaSI6IjAwMDAwMDAwLTAwMDAtNDAwMC04MDAwLTAwMDAwMDAwMDAwMCJ9"},
		"bad partner id":     {"filter": map[string]any{"partnerIds": []string{"x"}}},
		"inverted prices":    {"filter": map[string]any{"minPriceCredits": 9, "maxPriceCredits": 2}},
	} {
		res := api.do(tok, browseQuery, vars)
		require.Equal(t, "INVALID_INPUT", res.code(), name)
	}
	res := api.do(tok, browseQuery, map[string]any{"order": "SIDEWAYS"})
	require.NotEmpty(t, res.Errors)
	require.NotEqual(t, "INTERNAL", res.code())

	// Prices at and past the ends of a 32-bit Int are answered or refused, never an internal error.
	for _, price := range []int64{2147483647, -2147483648, 3000000000, -9000000000} {
		res := api.do(tok, browseQuery, map[string]any{"filter": map[string]any{"minPriceCredits": price}})
		require.NotEqual(t, "INTERNAL", res.code(), "minPriceCredits %d", price)
		res = api.do(tok, browseQuery, map[string]any{"filter": map[string]any{"maxPriceCredits": price}})
		require.NotEqual(t, "INTERNAL", res.code(), "maxPriceCredits %d", price)
	}

	// first above 100 is capped, not refused, while the cost it announces (first x what each edge
	// selects) stays under COMPLEXITY_LIMIT; above it the query is refused before it runs.
	var p browsePage
	api.do(tok, `query($first: Int) { marketplaceLeads(first: $first) { edges { node { id } } } }`,
		map[string]any{"first": 150}).decode(t, &p)
	require.LessOrEqual(t, len(p.MarketplaceLeads.Edges), 100)
	require.Equal(t, "COMPLEXITY_LIMIT_EXCEEDED", api.do(tok, browseQuery, map[string]any{"first": 5000}).code())
	_ = fmt.Sprint
}

// Arguments PostgreSQL would choke on are the client's mistake: INVALID_INPUT, never INTERNAL.
// Ids in forms the uuid library takes but PostgreSQL does not, times outside PostgreSQL's
// range, cursors carrying such values, invalid UTF-8 in a GET request, a number cursor with junk.
func TestBadArguments_AreCodedNotInternal(t *testing.T) {
	t.Parallel()
	api := newAPI(t, nil)
	ws, owner := dbtest.CreateWorkspace(t, api.db, dbtest.WorkspaceOpts{})
	admin := dbtest.CreateUser(t, api.db, dbtest.UserOpts{IsPlatformAdmin: true})
	lead := dbtest.CreateLead(t, api.db, dbtest.LeadOpts{PartnerID: dbtest.CreatePartner(t, api.db, dbtest.PartnerOpts{})})
	tok, adminTok := api.token(owner, false), api.token(admin, true)
	cursor := func(json string) string { return base64.RawURLEncoding.EncodeToString([]byte(json)) }
	const year0 = "0000-01-01T00:00:00Z"
	for name, tc := range map[string]struct {
		token, query string
		vars         map[string]any
	}{
		"urn lead id":        {tok, `query($id: ID!) { lead(id: $id) { id } }`, map[string]any{"id": "urn:uuid:" + lead}},
		"urn workspace id":   {tok, `query($ws: ID!) { creditBalance(workspaceId: $ws) { credits } }`, map[string]any{"ws": "urn:uuid:" + ws}},
		"urn partner id":     {tok, browseQuery, map[string]any{"filter": map[string]any{"partnerIds": []string{"urn:uuid:" + lead}}}},
		"urn in a cursor":    {tok, browseQuery, map[string]any{"after": cursor(`{"o":"NEWEST","t":"2026-01-01T00:00:00Z","i":"urn:uuid:` + lead + `"}`)}},
		"year 0 in a cursor": {tok, browseQuery, map[string]any{"after": cursor(`{"o":"NEWEST","t":"` + year0 + `","i":"` + lead + `"}`)}},
		"ledger cursor junk": {tok, `query($ws: ID!, $a: String) { creditTransactions(workspaceId: $ws, after: $a) { edges { node { id } } } }`,
			map[string]any{"ws": ws, "a": "5abc"}},
		"audit year 0": {adminTok, `query($t: Time) { auditLogs(filter: {occurredAfter: $t}) { edges { node { id } } } }`,
			map[string]any{"t": year0}},
		"audit cursor year 0": {adminTok, `query($a: String) { auditLogs(after: $a) { edges { node { id } } } }`,
			map[string]any{"a": cursor(`{"t":"` + year0 + `","i":"` + lead + `"}`)}},
		"events year 0": {adminTok, `query($t: Time) { webhookEvents(filter: {receivedAfter: $t}) { edges { node { id } } } }`,
			map[string]any{"t": year0}},
		"event cursor with NUL": {adminTok, `query($a: String) { webhookEvents(after: $a) { edges { node { id } } } }`,
			map[string]any{"a": cursor(`{"t":"2026-01-01T00:00:00Z","i":"evt_1\u0000"}`)}},
	} {
		res := api.do(tc.token, tc.query, tc.vars)
		require.Equal(t, "INVALID_INPUT", res.code(), "%s: %+v", name, res.Errors)
	}

	// Invalid UTF-8 can only arrive in a GET request's query string.
	q := url.Values{"query": {`{ marketplaceLeads(filter: {titleContains: "a` + "\xff" + `b"}) { edges { cursor } } }`}}
	res := api.send(http.MethodGet, "/graphql?"+q.Encode(),
		http.Header{"Authorization": {"Bearer " + tok}, "GraphQL-Preflight": {"1"}}, nil)
	require.Equal(t, "INVALID_INPUT", res.gql.code(), "%s", res.body)

	// A title of 100 characters is taken, however many bytes they are.
	res2 := api.do(tok, browseQuery, map[string]any{"filter": map[string]any{"titleContains": strings.Repeat("営", 100)}})
	require.Empty(t, res2.Errors)
}

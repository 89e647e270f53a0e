package app_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/leadmarket/leadmarket/internal/dbtest"
)

type facetCount struct {
	Value   string
	Count   int
	IsExact bool
}

// TestBrowse_TotalCountAndFacetsOverHTTP: totalCount and marketplaceFacets through the real
// handler with real tokens — counted only when selected, the faceting rule (a facet's counts
// ignore its own filter), myLeads' count of the workspace's own purchases, and access.
func TestBrowse_TotalCountAndFacetsOverHTTP(t *testing.T) {
	t.Parallel()
	api := newAPI(t, nil)
	db := api.db
	ws, buyer := dbtest.CreateWorkspace(t, db, dbtest.WorkspaceOpts{Credits: 1000})
	tok := api.token(buyer, false)
	partnerID := dbtest.CreatePartner(t, db, dbtest.PartnerOpts{})
	var ids []string
	for i, l := range []struct{ industry, country string }{
		{"Software", "US"}, {"Software", "DE"}, {"Fintech", "US"}, {"Fintech", "US"}, {"Retail", "SE"},
	} {
		ids = append(ids, dbtest.CreateLead(t, db, dbtest.LeadOpts{PartnerID: partnerID, Industry: l.industry,
			Country: l.country, Seniority: []string{"VP", "DIRECTOR"}[i%2], MaxBuyers: 3}))
	}
	dbtest.CreateLead(t, db, dbtest.LeadOpts{PartnerID: partnerID, Industry: "Software", VerificationStatus: "INVALID"})

	const counted = `query($filter: LeadFilter) { marketplaceLeads(first: 2, filter: $filter) {
		totalCount { value isExact } edges { node { id } } } }`
	const uncounted = `query($filter: LeadFilter) { marketplaceLeads(first: 2, filter: $filter) { edges { node { id } } } }`
	filter := map[string]any{"partnerIds": []string{partnerID}, "industries": []string{"Software", "Fintech"}}
	var page struct {
		MarketplaceLeads struct {
			TotalCount struct {
				Value   int
				IsExact bool
			}
			Edges []struct{ Node struct{ ID string } }
		}
	}
	res := api.do(tok, counted, map[string]any{"filter": filter})
	res.decode(t, &page)
	require.Equal(t, 4, page.MarketplaceLeads.TotalCount.Value, "the whole list, not the page of 2")
	require.True(t, page.MarketplaceLeads.TotalCount.IsExact)
	require.Len(t, page.MarketplaceLeads.Edges, 2)
	without := api.do(tok, uncounted, map[string]any{"filter": filter})
	require.Empty(t, without.Errors)
	require.Less(t, without.Statements, res.Statements, "no count unless totalCount is selected")

	const facetsQuery = `query($filter: LeadFilter) { marketplaceFacets(filter: $filter) {
		industries { value count isExact } countries { value count isExact } seniorities { value count isExact }
		companySizes { value count isExact } verificationStatuses { value count isExact } } }`
	var facets struct {
		MarketplaceFacets struct {
			Industries, Countries, Seniorities, CompanySizes, VerificationStatuses []facetCount
		}
	}
	api.do(tok, facetsQuery, map[string]any{"filter": map[string]any{"partnerIds": []string{partnerID},
		"industries": []string{"Fintech"}, "countries": []string{"US"}}}).decode(t, &facets)
	f := facets.MarketplaceFacets
	// Industries ignore the industry filter (US leads: Software 1, Fintech 2); countries ignore
	// the country filter (Fintech leads: US 2); the rest apply both (the two Fintech US leads).
	require.Equal(t, []facetCount{{"Fintech", 2, true}, {"Software", 1, true}, {"Retail", 0, true}}, nonEmptyOr(f.Industries, "Retail"))
	require.Equal(t, []facetCount{{"US", 2, true}}, nonEmptyOr(f.Countries, ""))
	require.Equal(t, []facetCount{{"DIRECTOR", 1, true}, {"VP", 1, true}}, nonEmptyOr(f.Seniorities, ""))
	require.Len(t, f.Seniorities, 8, "every seniority is listed")
	require.Len(t, f.VerificationStatuses, 5, "every status but INVALID")

	// myLeads counts the workspace's own purchases.
	buy := api.do(tok, `mutation($in: PurchaseLeadsInput!) { purchaseLeads(input: $in) { balance } }`,
		map[string]any{"in": map[string]any{"workspaceId": ws, "leadIds": ids[:2], "idempotencyKey": "facets-count"}})
	require.Empty(t, buy.Errors)
	var mine struct {
		MyLeads struct {
			TotalCount struct {
				Value   int
				IsExact bool
			}
		}
	}
	api.do(tok, `query($ws: ID!) { myLeads(workspaceId: $ws, first: 1) { totalCount { value isExact } } }`,
		map[string]any{"ws": ws}).decode(t, &mine)
	require.Equal(t, 2, mine.MyLeads.TotalCount.Value)
	require.True(t, mine.MyLeads.TotalCount.IsExact)

	// Access as marketplaceLeads: signed-in callers only; a bad filter is the caller's mistake.
	require.Equal(t, "UNAUTHENTICATED", api.do("", facetsQuery, nil).code())
	require.Equal(t, "INVALID_INPUT", api.do(tok, facetsQuery, map[string]any{"filter": map[string]any{
		"minPriceCredits": 9, "maxPriceCredits": 2}}).code())
	other := dbtest.CreateUser(t, db, dbtest.UserOpts{})
	res = api.do(api.token(other, false), `query($ws: ID!) { myLeads(workspaceId: $ws) { totalCount { value } } }`,
		map[string]any{"ws": ws})
	require.Equal(t, "FORBIDDEN", res.code())
}

// nonEmptyOr returns the counts above zero, and keep's count whatever it is, in their order.
func nonEmptyOr(cs []facetCount, keep string) []facetCount {
	var out []facetCount
	for _, c := range cs {
		if c.Count > 0 || c.Value == keep {
			out = append(out, c)
		}
	}
	return out
}

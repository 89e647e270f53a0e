package lead_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/leadmarket/leadmarket/internal/dbtest"
	"github.com/leadmarket/leadmarket/internal/lead"
	"github.com/leadmarket/leadmarket/internal/seed"
)

// The demo's industries and countries (the facets' values at 1M).
var (
	demoIndustries = []string{"Education", "Energy", "Fintech", "Healthcare", "Insurance", "Logistics", "Manufacturing",
		"Media", "Real Estate", "Retail", "Software", "Telecom"}
	demoCountries = []string{"AU", "CA", "DE", "ES", "FR", "GB", "IN", "NL", "SE", "US"}
)

func TestEnumerate_ListsTheColumnsBeforeAFilterWhereThatReadsLess(t *testing.T) {
	for _, tc := range []struct {
		name    string
		f       lead.Filter
		matches int
		titles  []int32
		want    []string
	}{
		// leads_sellable_country_counts_idx at each seniority: the sizes and the status bound it.
		{"countries, sizes and a status", lead.Filter{Countries: []string{"AU", "NL"}, CompanySizes: []string{"SIZE_501_1000", "UNKNOWN"},
			VerificationStatuses: []string{"PENDING"}}, 47_000, nil, []string{"seniority"}},
		// leads_sellable_seniority_counts_idx at each seniority and status: 40 descents, where
		// the industry's index at each country (and the empty one) and seniority takes 88.
		{"an industry and a size", lead.Filter{Industries: []string{"Media"}, CompanySizes: []string{"SIZE_51_200"}}, 10_000, nil,
			[]string{"seniority", "verification_status"}},
		// The title's index at each industry and country: the seniority bounds it.
		{"many of a title word's leads", lead.Filter{TitleContains: "manager", Seniorities: []string{"SENIOR"}}, 20_000, []int32{1, 2, 3},
			[]string{"industry", "country"}},
		// Few of them: the title's ranges with the seniority tested cost less than 429 descents.
		{"few of a title word's leads", lead.Filter{TitleContains: "manager", Seniorities: []string{"SENIOR"}}, 1_000, []int32{1, 2, 3}, nil},
		// A filter that is the first column of an index, or of none, lists nothing.
		{"an industry", lead.Filter{Industries: []string{"Media"}}, 80_000, nil, nil},
		{"countries and seniorities", lead.Filter{Countries: []string{"DE"}, Seniorities: []string{"VP", "OWNER"}}, 20_000, nil, nil},
		{"nothing", lead.Filter{}, 1_000_000, nil, nil},
		// A title word of more titles than titleRanges is no index condition: nothing bounds.
		{"a title word tested by its text", lead.Filter{TitleContains: "manager", Seniorities: []string{"SENIOR"}}, 20_000, nil, nil},
	} {
		require.Equal(t, tc.want, lead.Enumerated(tc.f, demoIndustries, demoCountries, tc.matches, tc.titles), tc.name)
	}
	// Dear descents list nothing; free ones every column before the last filtered one (and the
	// price, which only bounds a read after every facet).
	f := lead.Filter{Countries: []string{"AU", "NL"}, CompanySizes: []string{"SIZE_501_1000"}, VerificationStatuses: []string{"PENDING"}}
	restore := lead.SetDescentNanos(1 << 40)
	require.Empty(t, lead.Enumerated(f, demoIndustries, demoCountries, 47_000, nil))
	restore()
	restore = lead.SetDescentNanos(0)
	f.MinPriceCredits = intp(20)
	require.Len(t, lead.Enumerated(f, demoIndustries, demoCountries, 47_000, nil), 2, "the other two facets, then the price bounds")
	restore()
}

// TestFacets_EnumeratedReadsAgreeWithBruteForce checks the facets' exact counts read with every
// value of the columns before a filter listed (enumerate), on leads some of which have no
// industry or no country: a listing that left out the empty value would not count them. Not
// parallel: it sets the package's sampling thresholds, which the parallel tests read.
func TestFacets_EnumeratedReadsAgreeWithBruteForce(t *testing.T) {
	ctx := context.Background()
	bdb := dbtest.FreshDB(t)
	_, err := seed.Demo(ctx, bdb, seed.Options{Leads: 12_000})
	require.NoError(t, err)
	_, err = bdb.ExecContext(ctx, `UPDATE leads SET industry = '' WHERE id IN (SELECT id FROM leads ORDER BY id LIMIT 400);
		UPDATE leads SET country = '' WHERE id IN (SELECT id FROM leads ORDER BY id DESC LIMIT 400)`)
	require.NoError(t, err)
	_, err = bdb.ExecContext(ctx, "VACUUM ANALYZE leads")
	require.NoError(t, err)
	var all []demoLead
	require.NoError(t, bdb.NewRaw(`SELECT id, industry, country, seniority, company_size, verification_status, title,
		price_credits AS price, created_at, (status = 'ACTIVE' AND verification_status <> 'INVALID' AND buyers_count < max_buyers) AS sellable
		FROM leads`).Scan(ctx, &all))
	empty := 0
	for _, l := range all {
		if l.Sellable && (l.Industry == "" || l.Country == "") {
			empty++
		}
	}
	require.Greater(t, empty, 500, "sellable leads without an industry or a country")

	// The sampling path of a table of millions, every count index-only.
	defer lead.SetFacetSampling(1000, 500, 0)()
	defer lead.SetIndexOnlyRows(0)()
	filters := []lead.Filter{
		{Countries: []string{"DE", "US"}, CompanySizes: []string{"SIZE_11_50"}, VerificationStatuses: []string{"VALID"}},
		{Industries: []string{"Software"}, CompanySizes: []string{"SIZE_51_200", "SIZE_1_10"}},
		{Seniorities: []string{"MANAGER"}, VerificationStatuses: []string{"VALID", "PENDING"}, MinPriceCredits: intp(5)},
		{CompanySizes: []string{"SIZE_201_500"}, MaxPriceCredits: intp(30)},
		{TitleContains: "manager", Seniorities: []string{"MANAGER", "SENIOR"}},
		{Countries: []string{"SE"}, Seniorities: []string{"ENTRY"}, Industries: []string{"Telecom"}},
		{MinPriceCredits: intp(10), MaxPriceCredits: intp(20)},
	}
	// Descents free (every column listed that can be, the empty industry and country among
	// them), at their measured cost, and dear (nothing listed).
	for _, nanos := range []int64{0, 8_000, 1 << 40} {
		restore := lead.SetDescentNanos(nanos)
		for _, f := range filters {
			sampledFacets(t, ctx, bdb, all, f, nanos)
		}
		restore()
	}
}

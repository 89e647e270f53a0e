package lead_test

import (
	"cmp"
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/internal/apperr"
	"github.com/leadmarket/leadmarket/internal/dbtest"
	"github.com/leadmarket/leadmarket/internal/lead"
	"github.com/leadmarket/leadmarket/internal/seed"
)

// demoLead is a lead as the brute-force side sees it.
type demoLead struct {
	ID, Industry, Country, Seniority, CompanySize, VerificationStatus, Title string
	Price                                                                    int
	CreatedAt                                                                time.Time
	Sellable                                                                 bool
}

// matches is the filter applied in Go, row by row; skip leaves out the filter on that facet.
func matches(f lead.Filter, l demoLead, skip string) bool {
	in := func(vs []string, v string, facet string) bool {
		return facet == skip || len(vs) == 0 || slices.ContainsFunc(vs, func(s string) bool { return strings.EqualFold(s, v) })
	}
	return l.Sellable && in(f.Industries, l.Industry, "industry") && in(f.Countries, l.Country, "country") &&
		in(f.Seniorities, l.Seniority, "seniority") && in(f.CompanySizes, l.CompanySize, "company_size") &&
		in(f.VerificationStatuses, l.VerificationStatus, "verification_status") &&
		(f.MinPriceCredits == nil || l.Price >= *f.MinPriceCredits) && (f.MaxPriceCredits == nil || l.Price <= *f.MaxPriceCredits) &&
		strings.Contains(strings.ToLower(l.Title), strings.ToLower(f.TitleContains))
}

func intp(n int) *int { return &n }

// TestFacetedBrowse_AgreesWithBruteForce seeds 12,000 demo leads (more than ExactCountLimit and
// more than one walk of the ordered index) into a database of its own and checks browse pages,
// totalCount and the facets of several filters against the same filters applied in Go.
func TestFacetedBrowse_AgreesWithBruteForce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	bdb := dbtest.FreshDB(t)
	res, err := seed.Demo(ctx, bdb, seed.Options{Leads: 12_000})
	require.NoError(t, err)
	_, err = bdb.ExecContext(ctx, "ANALYZE leads")
	require.NoError(t, err)
	// A heap row as dear as ten thousand index rows: on these 12,000 leads a longer walk then
	// runs wherever the first walk found some matches, as it does at a million by default.
	defer lead.SetLongWalkHeapCost(10_000)()
	var userID string
	for _, u := range res.Users {
		if u.Role == seed.RoleWorkspaceOwner {
			userID = u.UserID
		}
	}
	var all []demoLead
	require.NoError(t, bdb.NewRaw(`SELECT id, industry, country, seniority, company_size, verification_status, title,
		price_credits AS price, created_at, (status = 'ACTIVE' AND verification_status <> 'INVALID' AND buyers_count < max_buyers) AS sellable
		FROM leads`).Scan(ctx, &all))
	require.Len(t, all, 12_000)

	filters := []struct {
		name string
		f    lead.Filter
		// candidates: the walk of WalkRows rows cannot fill a page, the candidate set answers.
		candidates bool
		// longWalk: the first walk found some matches but not a page, a longer one runs.
		longWalk bool
	}{
		{"rare facets", lead.Filter{Countries: []string{"se"}, Seniorities: []string{"ENTRY"}, Industries: []string{"Telecom"}}, true, false},
		{"facets a longer walk fills", lead.Filter{Countries: []string{"SE"}, Seniorities: []string{"VP"}}, false, true},
		{"title and seniority that never meet", lead.Filter{Seniorities: []string{"SENIOR"}, TitleContains: "Sales"}, true, false},
		{"absent title word", lead.Filter{TitleContains: "Plumber"}, true, false},
		{"common facets", lead.Filter{Industries: []string{"Software", "Fintech"}, VerificationStatuses: []string{"VALID"}}, false, false},
		{"title word and price range", lead.Filter{TitleContains: "manager", MinPriceCredits: intp(3), MaxPriceCredits: intp(20)}, false, false},
		{"size and country", lead.Filter{CompanySizes: []string{"SIZE_5001_PLUS"}, Countries: []string{"DE", "SE"}}, false, false},
		{"title word without trigrams", lead.Filter{TitleContains: "vp", CompanySizes: []string{"SIZE_11_50"}}, false, false},
		{"nothing", lead.Filter{}, false, false},
	}
	orders := map[string]func(a, b demoLead) int{
		lead.OrderNewest:    func(a, b demoLead) int { return cmp.Or(b.CreatedAt.Compare(a.CreatedAt), strings.Compare(b.ID, a.ID)) },
		lead.OrderPriceAsc:  func(a, b demoLead) int { return cmp.Or(cmp.Compare(a.Price, b.Price), strings.Compare(a.ID, b.ID)) },
		lead.OrderPriceDesc: func(a, b demoLead) int { return cmp.Or(cmp.Compare(b.Price, a.Price), strings.Compare(b.ID, a.ID)) },
	}
	for _, tc := range filters {
		var want []demoLead
		for _, l := range all {
			if matches(tc.f, l, "") {
				want = append(want, l)
			}
		}
		for order, less := range orders {
			sorted := slices.SortedFunc(slices.Values(want), less)
			// Up to five pages of 50, through keyset positions as the service pages.
			var got []string
			var after *lead.Position
			for range 5 {
				page, _, err := lead.ListSellable(ctx, bdb, lead.SellableQuery{Viewer: lead.Viewer{UserID: userID},
					Filter: tc.f, Order: order, After: after, Limit: 51})
				require.NoError(t, err, tc.name)
				page = page[:min(len(page), 50)]
				for _, l := range page {
					got = append(got, l.ID)
				}
				if len(page) < 50 {
					break
				}
				last := page[len(page)-1]
				after = &lead.Position{Time: last.CreatedAt, Price: last.PriceCredits, ID: last.ID}
			}
			var wantIDs []string
			for _, l := range sorted[:min(len(sorted), len(got), 250)] {
				wantIDs = append(wantIDs, l.ID)
			}
			require.Equal(t, wantIDs, got, "%s %s", tc.name, order)
			require.Equal(t, min(len(sorted), 250), len(got), "%s %s", tc.name, order)

			// A first page asked for its count returns it where its reads saw every match (the
			// candidate set does), and it is the true one.
			_, counted, err := lead.ListSellable(ctx, bdb, lead.SellableQuery{Viewer: lead.Viewer{UserID: userID},
				Filter: tc.f, Order: order, Limit: 51, Count: true})
			require.NoError(t, err, tc.name)
			if tc.candidates {
				require.NotNil(t, counted, "%s %s: the candidate set counts its matches", tc.name, order)
			}
			if counted != nil {
				require.Equal(t, lead.Total{Value: len(sorted), IsExact: len(sorted) <= lead.ExactCountLimit}, *counted, "%s %s", tc.name, order)
			}

			plans, err := lead.ExplainSellable(ctx, bdb, lead.SellableQuery{Viewer: lead.Viewer{UserID: userID},
				Filter: tc.f, Order: order, Limit: 51})
			require.NoError(t, err)
			require.Equal(t, tc.candidates, strings.Contains(plans[len(plans)-1], "-- step 2"), "%s %s: the candidate set answers", tc.name, order)
			require.Equal(t, tc.longWalk, strings.Contains(strings.Join(plans, "\n"), "-- step 1b"), "%s %s: a longer walk runs", tc.name, order)
		}

		if tc.candidates {
			// A cursor at the end of the price order, (price, id) < (1, ...): estimated from its
			// first column (no lead is under 1 credit) it would find the candidates through the
			// price index's bitmap rather than the GIN, and read every 1-credit lead's row. It
			// filters the candidates, and is no index condition.
			plan, err := lead.ExplainCandidates(ctx, bdb, lead.SellableQuery{Viewer: lead.Viewer{UserID: userID}, Filter: tc.f,
				Order: lead.OrderPriceDesc, After: &lead.Position{Price: 1, ID: "ffffffff-ffff-ffff-ffff-ffffffffffff"}, Limit: 51})
			require.NoError(t, err)
			for _, line := range strings.Split(plan, "\n") {
				if strings.Contains(line, "Index Cond") || strings.Contains(line, "Recheck Cond") {
					require.NotContains(t, line, "ROW(", "%s: the cursor is no index condition of the candidate set\n%s", tc.name, plan)
				}
			}
		}

		total, err := lead.CountSellable(ctx, bdb, tc.f)
		require.NoError(t, err, tc.name)
		if len(want) <= lead.ExactCountLimit {
			require.Equal(t, lead.Total{Value: len(want), IsExact: true}, total, tc.name)
		} else {
			require.False(t, total.IsExact, tc.name)
			require.Greater(t, total.Value, lead.ExactCountLimit, tc.name)
		}

		facets, err := lead.FacetsOf(ctx, bdb, tc.f)
		require.NoError(t, err, tc.name)
		for facet, counts := range facetsByColumn(facets) {
			for v, n := range bruteFacet(all, tc.f, facet) {
				c, ok := counts[v]
				require.True(t, ok, "%s: %s %s listed", tc.name, facet, v)
				require.Equal(t, lead.FacetCount{Value: v, Count: n, IsExact: true}, c, "%s: %s %s", tc.name, facet, v)
			}
		}
	}

	t.Run("a first page counts its matches only where it read them all", func(t *testing.T) {
		viewer := lead.Viewer{UserID: userID}
		// The dearest price, ordered by price: the walk reads the whole of its short range.
		one := lead.Filter{MinPriceCredits: intp(50), MaxPriceCredits: intp(50)}
		n := 0
		for _, l := range all {
			if matches(one, l, "") {
				n++
			}
		}
		require.Positive(t, n)
		require.Less(t, n, 50, "the range fits in one page")
		_, counted, err := lead.ListSellable(ctx, bdb, lead.SellableQuery{Viewer: viewer, Filter: one, Order: lead.OrderPriceAsc, Limit: 51, Count: true})
		require.NoError(t, err)
		require.Equal(t, &lead.Total{Value: n, IsExact: true}, counted)

		// A walk that filled its page saw only a part; a later page counts nothing either, and
		// nothing is counted unless asked.
		for _, q := range []lead.SellableQuery{
			{Viewer: viewer, Order: lead.OrderNewest, Limit: 51, Count: true},
			{Viewer: viewer, Filter: lead.Filter{TitleContains: "Plumber"}, Order: lead.OrderNewest, Limit: 51,
				After: &lead.Position{Time: time.Now(), ID: "ffffffff-ffff-ffff-ffff-ffffffffffff"}, Count: true},
			{Viewer: viewer, Filter: lead.Filter{TitleContains: "Plumber"}, Order: lead.OrderNewest, Limit: 51},
		} {
			_, counted, err := lead.ListSellable(ctx, bdb, q)
			require.NoError(t, err)
			require.Nil(t, counted, "%+v", q)
		}
	})

	t.Run("facets estimated from a sample above the threshold", func(t *testing.T) {
		// Thresholds for a table of 12,000: sample about 1,000 leads, count exactly what the
		// sample puts below 500, in one pass only when that reads fewer leads.
		restore := lead.SetFacetSampling(1000, 500, 0)
		defer restore()
		// Each read three ways: index-only for the filters without a title word (0), by bitmaps
		// (a limit no count reaches), and the way the default sends each facet.
		for _, indexOnlyRows := range []int64{0, 1 << 40, 5_000} {
			restoreRows := lead.SetIndexOnlyRows(indexOnlyRows)
			// And the facets a filter leaves alone in one pass where its matches are few, or
			// in one pass each (a limit of 0 matches).
			restoreMerge := lead.SetFacetMergeRows(indexOnlyRows)
			for _, f := range []lead.Filter{{}, {Industries: []string{"Software", "Fintech"}, VerificationStatuses: []string{"VALID"}},
				{Seniorities: []string{"MANAGER", "VP"}, MinPriceCredits: intp(5)}, {TitleContains: "manager", CompanySizes: []string{"SIZE_11_50"}},
				// One facet filtered: its own counts are mostly estimates, the other four facets'
				// small values are counted in one pass over the VPs.
				{Seniorities: []string{"VP"}},
				// Title words: counted by their titles' ids wherever not by bitmaps, one absent.
				{TitleContains: "Sales"}, {TitleContains: "vp", Countries: []string{"DE", "US"}}, {TitleContains: "Plumber"}} {
				sampledFacets(t, ctx, bdb, all, f, indexOnlyRows)
			}
			restoreMerge()
			restoreRows()
		}
	})

	t.Run("counts read index-only or by bitmaps alike", func(t *testing.T) {
		// Index-only with title words' ranges (the default) and with their ids tested on every
		// entry (0 ranges), and by bitmaps.
		for _, way := range []struct{ indexOnlyRows, titleRanges int64 }{{0, 2_000}, {0, 0}, {1 << 40, 2_000}} {
			restore := lead.SetIndexOnlyRows(way.indexOnlyRows)
			restoreRanges := lead.SetTitleRanges(way.titleRanges)
			indexOnlyRows := way.indexOnlyRows
			for _, tc := range filters {
				n := 0
				for _, l := range all {
					if matches(tc.f, l, "") {
						n++
					}
				}
				total, err := lead.CountSellable(ctx, bdb, tc.f)
				require.NoError(t, err, tc.name)
				if n <= lead.ExactCountLimit {
					require.Equal(t, lead.Total{Value: n, IsExact: true}, total, "%s (index-only from %d rows, %d title ranges)",
						tc.name, indexOnlyRows, way.titleRanges)
				}
			}
			restoreRanges()
			restore()
		}
	})

	t.Run("a count of many rows reads a counting index alone", func(t *testing.T) {
		// At 12,000 leads, a hundred rows are "many": the filters below match hundreds.
		defer lead.SetIndexOnlyRows(100)()
		for _, tc := range []struct {
			f     lead.Filter
			index string
		}{
			{lead.Filter{Industries: []string{"Software"}, MinPriceCredits: intp(2)}, "leads_sellable_industry_counts_idx"},
			{lead.Filter{Countries: []string{"DE", "US"}, CompanySizes: []string{"SIZE_11_50", "SIZE_51_200"}}, "leads_sellable_country_counts_idx"},
			{lead.Filter{Seniorities: []string{"MANAGER"}, VerificationStatuses: []string{"VALID", "PENDING"}}, "leads_sellable_seniority_counts_idx"},
			// A title word by its titles' ids (lead_titles): the title counting index.
			{lead.Filter{TitleContains: "manager", MinPriceCredits: intp(2)}, "leads_sellable_title_counts_idx"},
			// A title word of any number of rows: its titles' entries bound the read.
			{lead.Filter{TitleContains: "vp", Industries: []string{"Software"}}, "leads_sellable_title_counts_idx"},
			{lead.Filter{TitleContains: "manager", Industries: []string{"Software"}, Seniorities: []string{"SENIOR"}}, "leads_sellable_title_counts_idx"},
			// Company sizes or statuses alone: ranges of the seniority's index at each seniority.
			{lead.Filter{CompanySizes: []string{"SIZE_11_50"}, VerificationStatuses: []string{"VALID"}}, "leads_sellable_seniority_counts_idx"},
		} {
			plan, err := lead.ExplainCount(ctx, bdb, tc.f)
			require.NoError(t, err)
			require.Contains(t, plan, "Index Only Scan using "+tc.index, "%+v\n%s", tc.f, plan)
			require.Regexp(t, `Heap Fetches: 0\n`, plan, "%+v: no heap row\n%s", tc.f, plan)
			if tc.f.TitleContains != "" {
				require.Regexp(t, `Index Cond: \(\(title_id = ANY`, plan, "%+v: the title's ids bound the read\n%s", tc.f, plan)
			}
			if len(tc.f.Seniorities) == 0 && tc.index == "leads_sellable_seniority_counts_idx" {
				require.Regexp(t, `Index Cond: \(\(seniority = ANY .*company_size = ANY .*verification_status = ANY`, plan,
					"%+v: read at each seniority\n%s", tc.f, plan)
			}
		}
		// A word of more titles than titleRanges tests their ids on every entry of the index.
		restoreRanges := lead.SetTitleRanges(0)
		f := lead.Filter{TitleContains: "manager", Industries: []string{"Software"}}
		plan, err := lead.ExplainCount(ctx, bdb, f)
		restoreRanges()
		require.NoError(t, err)
		require.Contains(t, plan, "Index Only Scan using leads_sellable_title_counts_idx", "%+v\n%s", f, plan)
		require.Regexp(t, `Filter: .*\(title_id \+ 0\) = ANY`, plan, "%+v\n%s", f, plan)
		require.Regexp(t, `Heap Fetches: 0\n`, plan, "%+v\n%s", f, plan)

		// A rare combination without a title word reads a bitmap: few heap rows.
		f = lead.Filter{Countries: []string{"SE"}, Seniorities: []string{"ENTRY"}, Industries: []string{"Telecom"}}
		plan, err = lead.ExplainCount(ctx, bdb, f)
		require.NoError(t, err)
		require.Contains(t, plan, "Bitmap Heap Scan", "%+v\n%s", f, plan)
		require.NotContains(t, plan, "Index Only Scan", "%+v\n%s", f, plan)
	})

	t.Run("a bad filter is refused", func(t *testing.T) {
		bad := lead.Filter{MinPriceCredits: intp(9), MaxPriceCredits: intp(3)}
		_, err := lead.FacetsOf(ctx, bdb, bad)
		require.Equal(t, apperr.InvalidInput, apperr.CodeOf(err))
		_, err = lead.CountSellable(ctx, bdb, bad)
		require.Equal(t, apperr.InvalidInput, apperr.CodeOf(err))
	})
}

// facetsByColumn is f's counts by facet column and value; a value listed twice fails.
func facetsByColumn(f lead.Facets) map[string]map[string]lead.FacetCount {
	out := map[string]map[string]lead.FacetCount{}
	for facet, counts := range map[string][]lead.FacetCount{"industry": f.Industries, "country": f.Countries,
		"seniority": f.Seniorities, "company_size": f.CompanySizes, "verification_status": f.VerificationStatuses} {
		out[facet] = map[string]lead.FacetCount{}
		for _, c := range counts {
			if _, dup := out[facet][c.Value]; dup {
				panic("facet value listed twice: " + facet + " " + c.Value)
			}
			out[facet][c.Value] = c
		}
	}
	return out
}

// bruteFacet counts the sellable leads of each value of facet under f without facet's own filter.
func bruteFacet(all []demoLead, f lead.Filter, facet string) map[string]int {
	out := map[string]int{}
	for _, l := range all {
		if !matches(f, l, facet) {
			continue
		}
		v := map[string]string{"industry": l.Industry, "country": l.Country, "seniority": l.Seniority,
			"company_size": l.CompanySize, "verification_status": l.VerificationStatus}[facet]
		out[v]++
	}
	return out
}

// sampledFacets checks FacetsOf(f) under lowered sampling thresholds (SetFacetSampling(1000, 500,
// 0)) against the truth in all: exact counts are the counts, estimates are above the threshold
// and near the count; without a filter some values are estimated and some counted.
func sampledFacets(t *testing.T, ctx context.Context, bdb *bun.DB, all []demoLead, f lead.Filter, indexOnlyRows int64) {
	t.Helper()
	facets, err := lead.FacetsOf(ctx, bdb, f)
	require.NoError(t, err)
	estimated, exact := 0, 0
	for facet, counts := range facetsByColumn(facets) {
		truth := bruteFacet(all, f, facet)
		for v, c := range counts {
			if c.IsExact {
				exact++
				require.Equal(t, truth[v], c.Count, "%+v %s %s (index-only from %d rows)", f, facet, v, indexOnlyRows)
				continue
			}
			estimated++
			require.GreaterOrEqual(t, c.Count, 500, "%+v %s %s: estimated only above the threshold", f, facet, v)
			require.InDelta(t, truth[v], c.Count, float64(truth[v])/2, "%+v %s %s: the estimate is near the count", f, facet, v)
		}
	}
	if reflect.ValueOf(f).IsZero() {
		require.Positive(t, estimated, "some values are estimated")
		require.Positive(t, exact, "small values are counted")
	}
}

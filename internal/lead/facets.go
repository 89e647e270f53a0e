package lead

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/internal/db"
)

// FacetCount is how many sellable leads one value of a facet would give: exactly Count when
// IsExact, otherwise about Count (an estimate, only ever above ExactCountLimit).
type FacetCount struct {
	Value   string
	Count   int
	IsExact bool
}

// Facets are the counts beside each value of each browse filter that has a list of values.
// Each facet's counts apply every filter but its own (the usual faceting rule: the counts beside
// the countries say what choosing one more country would add, whichever countries are chosen).
// Each list holds every value sellable leads have (the enumerated facets: every value a sellable
// lead may have, zeros included), most leads first.
type Facets struct {
	Industries           []FacetCount
	Countries            []FacetCount
	Seniorities          []FacetCount
	CompanySizes         []FacetCount
	VerificationStatuses []FacetCount
}

// The enumerated values of the facets (the leads table's CHECK constraints); INVALID is left
// out of the verification statuses: no sellable lead has it.
var (
	seniorityValues    = []string{"ENTRY", "SENIOR", "MANAGER", "DIRECTOR", "VP", "C_LEVEL", "OWNER", "UNKNOWN"}
	companySizeValues  = []string{"SIZE_1_10", "SIZE_11_50", "SIZE_51_200", "SIZE_201_500", "SIZE_501_1000", "SIZE_1001_5000", "SIZE_5001_PLUS", "UNKNOWN"}
	verificationValues = []string{"PENDING", "VALID", "CATCH_ALL", "RISKY", "UNKNOWN"}
)

// facetColumns are the facets' columns in the order of Facets' fields.
var facetColumns = []string{colIndustry, colCountry, colSeniority, colCompanySize, colVerification}

// facetSampleRows is about how many leads the estimating sample of FacetsOf reads, and
// facetExactBelow the sample's estimate under which a value is counted exactly instead:
// one and a half times ExactCountLimit, so that a value of up to ExactCountLimit leads is
// estimated above it only by a sample off by half (which a sample of this size, holding
// hundreds of such a value's leads, is not unless the value's leads are clustered in a few
// pages).
// A table of up to 7.5 samples (150,000 rows) is not sampled but counted in one pass.
// facetScanRows is the sample's estimate of the leads that count in some facet under which
// one pass counts them all exactly (scanFacets).
//
// They are variables only so that a test can lower them (export_test.go).
var (
	facetSampleRows = 20_000
	facetExactBelow = ExactCountLimit * 3 / 2
	facetScanRows   = 60_000
)

// facetMergeRows is the sample's estimate of f's matches up to which countFacets counts every
// facet f leaves alone in one pass over them, all their values, rather than one pass each over
// the leads of its small values: a pass over 90,000 matches counted four facets at once in about
// a third of the time of four (1M, {companySizes: [SIZE_1001_5000]}: 228 ms in four passes).
//
// A variable only so that a test can set it (export_test.go).
var facetMergeRows atomic.Int64

func init() { facetMergeRows.Store(150_000) }

// matchesOf is the sample's estimate of how many leads match f: the sum of the estimates of a
// facet f leaves alone (each match has one of its values); -1 when f filters every facet.
func matchesOf(f Filter, estimates []map[string]int) int {
	for d := range facetColumns {
		if filters(f, d) {
			continue
		}
		n := 0
		for _, e := range estimates[d] {
			n += e
		}
		return n
	}
	return -1
}

// FacetsOf returns the facet counts of f (see Facets). It reads in one read-only transaction:
// the industries and countries sellable leads have (a skip scan of their browse indexes, a few
// dozen index probes); an estimate of every value's count from a sample of about
// facetSampleRows leads' pages (TABLESAMPLE SYSTEM, REPEATABLE so that the same filter gets the
// same estimates); and exact counts of the values estimated below facetExactBelow: index-only
// from the counting indexes where many leads are counted, or with a title word (readsIndexOnly;
// the word tested by the ids of its titles in lead_titles), each filtered facet in a pass of its
// own and the others in one pass together; otherwise through the GIN index's bitmaps. So its
// cost has a bound set by the sample and by how many leads the small values have, not by the
// size of the table. Errors: INVALID_INPUT for a bad filter.
func FacetsOf(ctx context.Context, bdb *bun.DB, f Filter) (Facets, error) {
	// Check the filter before anything runs.
	if _, err := (&leadQuery{}).conditions(f); err != nil {
		return Facets{}, err
	}
	counts := make([][]FacetCount, len(facetColumns))
	indexOnly := indexOnlyFilter(f)
	err := db.ReadPlanned(ctx, bdb, func(tx db.PlannedTx) error {
		values, rows, err := facetValues(ctx, tx)
		if err != nil {
			return err
		}
		// A title word is tested by its titles' ids where the counts are not read through
		// bitmaps (whose GIN index has the title's trigrams, not its id).
		var titles []int32
		if indexOnly && hasTitleWord(f) {
			if titles, err = titleIDs(ctx, tx, f.TitleContains); err != nil {
				return err
			}
		}
		estimates := make([]map[string]int, len(facetColumns))
		union := 0
		// A table of a few samples' size is cheaper to count in one pass than to sample.
		sampled := rows > float64(facetSampleRows*15/2)
		if sampled {
			if estimates, union, err = sampleFacets(ctx, tx, f, 100*float64(facetSampleRows)/rows); err != nil {
				return err
			}
		}
		small := make([][]string, len(facetColumns))
		smallRows := 0
		facetRows := make([]int, len(facetColumns)) // the small values' leads, by facet
		for d, vs := range values {
			for _, v := range vs {
				if e := estimates[d][v]; e >= facetExactBelow {
					counts[d] = append(counts[d], FacetCount{Value: v, Count: e})
				} else {
					small[d] = append(small[d], v)
					smallRows += e
					facetRows[d] += e
				}
			}
		}
		// read is how an exact count estimated to read rows leads reads them, and the title
		// ids to test a title word by (nil: by its text). Where readsIndexOnly says so, the
		// counting indexes alone (preferIndexOnly). Otherwise bitmaps where few leads are read:
		// the small values' counts, or a pass over few leads; a pass over most of the table (or
		// over a small table) is the planner's to choose.
		read := func(rows int) (mode func(context.Context, db.PlannedTx) error, byID []int32, io bool) {
			switch {
			case !sampled:
				return planners, titles, false
			case readsIndexOnly(f, rows):
				return preferIndexOnly, titles, true
			case indexOnly || union <= facetScanRows || union > smallRows:
				return preferBitmaps, nil, false
			}
			return planners, titles, false
		}
		// Read index-only, the facets' own passes read ranges of the counting indexes, where one
		// pass over the leads that count in some facet (a union of conditions no index range
		// holds) reads a whole index: {countries: [JP, NL, SE], seniorities: [DIRECTOR,
		// MANAGER], companySizes: [SIZE_201_500], verificationStatuses: [VALID]} at 1M, 299 ms
		// in one pass, 41 ms in the facets' own. But a narrow price range bounds the one pass to
		// a short range of the price index, which the facets' passes do not all find
		// ({companySizes: [SIZE_11_50, SIZE_5001_PLUS], price 30}: 15 ms in one pass, 204 ms).
		passes := sampled && readsIndexOnly(f, union)
		if passes && (f.MinPriceCredits != nil || f.MaxPriceCredits != nil) {
			narrow, err := narrowPrice(ctx, tx, f, rows)
			if err != nil {
				return err
			}
			passes = !narrow
		}
		if union <= max(facetScanRows, smallRows) && !passes {
			// Few enough leads count in some facet, or no fewer than the small values have:
			// one pass counts every value exactly.
			mode, byID, io := read(union)
			if err := mode(ctx, tx); err != nil {
				return err
			}
			exact, err := scanFacets(ctx, tx, f, byID, io)
			if err != nil {
				return err
			}
			counts = make([][]FacetCount, len(facetColumns))
			for d, vs := range values {
				for _, v := range vs {
					counts[d] = append(counts[d], FacetCount{Value: v, Count: exact[d][v], IsExact: true})
				}
			}
			return nil
		}
		// The facets whose small values are read the same way, in one statement each way.
		byRead := map[bool][][]string{}
		for d, vs := range small {
			if len(vs) == 0 {
				continue
			}
			io := sampled && readsIndexOnly(f, facetRows[d])
			if byRead[io] == nil {
				byRead[io] = make([][]string, len(facetColumns))
			}
			byRead[io][d] = vs
		}
		exact := make([]map[string]int, len(facetColumns))
		for d := range exact {
			exact[d] = map[string]int{}
		}
		for io, part := range byRead {
			mode, byID, _ := read(0) // the way of the facets of few leads
			if io {
				mode, byID = preferIndexOnly, titles
			}
			if err := mode(ctx, tx); err != nil {
				return err
			}
			counted, err := countFacets(ctx, tx, f, part, values, io, byID, matchesOf(f, estimates))
			if err != nil {
				return err
			}
			for d, c := range counted {
				maps.Copy(exact[d], c)
			}
		}
		for d, vs := range small {
			for _, v := range vs {
				counts[d] = append(counts[d], FacetCount{Value: v, Count: exact[d][v], IsExact: true})
			}
		}
		return nil
	})
	if err != nil {
		return Facets{}, fmt.Errorf("facets: %w", err)
	}
	for _, c := range counts {
		slices.SortFunc(c, func(a, b FacetCount) int {
			return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Value, b.Value))
		})
	}
	return Facets{Industries: counts[0], Countries: counts[1], Seniorities: counts[2], CompanySizes: counts[3],
		VerificationStatuses: counts[4]}, nil
}

// narrowPrice reports whether the planner puts f's price range at no more than a tenth of the
// table's rows leads. The estimate is under the sellable rule, whose buyers_count < max_buyers
// the planner puts at a third of the rows (its default for a comparison of two columns), so the
// range passes for narrow up to about 30% of the sellable leads. Measured at 1M, that is the
// better bound: compared with the sellable leads' estimate instead (a true tenth), ranges of 10-30%
// went to the facets' own passes and took 250-350 ms instead of 50-80 ms ({industries:
// [Insurance, Telecom], countries: [AU], seniorities: [DIRECTOR], minPriceCredits: 33}), for
// 30 ms won on {verificationStatuses: [UNKNOWN, VALID], minPriceCredits: 19} (28%).
func narrowPrice(ctx context.Context, tx db.PlannedTx, f Filter, rows float64) (bool, error) {
	q := &leadQuery{}
	conds, err := q.conditions(Filter{MinPriceCredits: f.MinPriceCredits, MaxPriceCredits: f.MaxPriceCredits})
	if err != nil {
		return false, err
	}
	where := []string{Sellable}
	for _, c := range conds {
		where = append(where, c.sql)
	}
	n, err := estimate(ctx, tx, "SELECT 1 FROM leads AS l WHERE "+strings.Join(where, " AND "), q.args)
	if err != nil {
		return false, fmt.Errorf("estimate the price range: %w", err)
	}
	return float64(n) <= rows/10, nil
}

// planners leaves the reads of the statements that follow in tx to the planner.
func planners(ctx context.Context, tx db.PlannedTx) error {
	return readOnly(ctx, tx, scanKinds...)
}

// facetValues returns the values of each facet and the planner's count of the leads table's
// rows. The industries and countries are those of sellable leads, found by skipping through
// leads_sellable_industry_counts_idx and leads_sellable_country_counts_idx one value at a time;
// empty ones are left out (no checkbox has an empty label).
func facetValues(ctx context.Context, tx db.PlannedTx) ([][]string, float64, error) {
	skip := func(col string) string {
		return `(WITH RECURSIVE v AS (
	(SELECT l.` + col + ` AS value FROM leads AS l WHERE ` + Sellable + ` AND l.` + col + ` > '' ORDER BY l.` + col + ` LIMIT 1)
	UNION ALL
	SELECT (SELECT l.` + col + ` FROM leads AS l WHERE ` + Sellable + ` AND l.` + col + ` > v.value ORDER BY l.` + col + ` LIMIT 1)
	FROM v WHERE v.value IS NOT NULL)
SELECT array_agg(v.value) FILTER (WHERE v.value IS NOT NULL) FROM v)`
	}
	var industries, countries []string
	var rows float64
	err := tx.Query(ctx, "SELECT "+skip(colIndustry)+", "+skip(colCountry)+
		", (SELECT reltuples FROM pg_class WHERE oid = 'leads'::regclass)::float8", nil, func(r pgx.Rows) error {
		for r.Next() {
			if err := r.Scan(&industries, &countries, &rows); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("facet values: %w", err)
	}
	return [][]string{industries, countries, seniorityValues, companySizeValues, verificationValues}, rows, nil
}

// sampleFacets estimates each facet value's count under f from the leads of pct per cent of the
// table's pages.
// It also estimates how many leads count in some facet (they match every facet's filter but at
// most one).
func sampleFacets(ctx context.Context, tx db.PlannedTx, f Filter, pct float64) ([]map[string]int, int, error) {
	q := &leadQuery{}
	conds, err := q.conditions(f)
	if err != nil {
		return nil, 0, err
	}
	where := []string{Sellable}
	match := make([]string, len(facetColumns))
	for d := range match {
		match[d] = "true"
	}
	for _, c := range conds {
		if d := slices.Index(facetColumns, c.column); d >= 0 {
			match[d] = c.sql
		} else {
			where = append(where, c.sql)
		}
	}
	var b strings.Builder
	b.WriteString("WITH s AS MATERIALIZED (SELECT ")
	for d, col := range facetColumns {
		fmt.Fprintf(&b, "l.%s AS v%d, %s AS m%d, ", col, d, match[d], d)
	}
	b.WriteString("1 AS one FROM leads AS l TABLESAMPLE SYSTEM (" + q.arg(pct) + "::float4) REPEATABLE (15) WHERE " +
		strings.Join(where, " AND ") + ")\n")
	for d := range facetColumns {
		if d > 0 {
			b.WriteString("UNION ALL ")
		}
		others := []string{"true"}
		for o := range facetColumns {
			if o != d {
				others = append(others, "s.m"+strconv.Itoa(o))
			}
		}
		fmt.Fprintf(&b, "SELECT %d, s.v%d, count(*) FROM s WHERE %s GROUP BY 2\n", d, d, strings.Join(others, " AND "))
	}
	fmt.Fprintf(&b, "UNION ALL SELECT -1, '', count(*) FROM s WHERE %s\n", unionOf(match, "s.m%d"))
	out := make([]map[string]int, len(facetColumns))
	for d := range out {
		out[d] = map[string]int{}
	}
	scale := 100 / pct
	union := 0
	err = tx.Query(ctx, b.String(), q.args, func(r pgx.Rows) error {
		for r.Next() {
			var d int
			var v string
			var n int64
			if err := r.Scan(&d, &v, &n); err != nil {
				return err
			}
			if d < 0 {
				union = int(math.Round(float64(n) * scale))
			} else {
				out[d][v] = int(math.Round(float64(n) * scale))
			}
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("sample facets: %w", err)
	}
	return out, union, nil
}

// unionOf is the condition under which a lead counts in some facet: it passes every facet's
// filter but at most one. match[d] is facet d's filter ("true" when there is none); ref, with
// %d for d, is how the condition refers to it.
func unionOf(match []string, ref string) string {
	var terms []string
	for d := range match {
		if match[d] == "true" {
			continue
		}
		var others []string
		for o := range match {
			if o != d && match[o] != "true" {
				others = append(others, fmt.Sprintf(ref, o))
			}
		}
		if len(others) == 0 {
			return "true" // one facet filtered: its facet counts every lead
		}
		terms = append(terms, "("+strings.Join(others, " AND ")+")")
	}
	if len(terms) == 0 {
		return "true"
	}
	return "(" + strings.Join(terms, " OR ") + ")"
}

// scanFacets counts every value of every facet under f exactly, in one pass over the leads that
// count in some facet (GROUPING SETS, each facet's count filtered by the other facets' filters).
// titles, when not nil, are the ids its title word is tested by (titleIDs); indexOnly: it reads
// the counting indexes alone (preferIndexOnly).
func scanFacets(ctx context.Context, tx db.PlannedTx, f Filter, titles []int32, indexOnly bool) ([]map[string]int, error) {
	q := &leadQuery{titleIDs: titles, enumerated: indexOnly}
	conds, err := q.conditions(f)
	if err != nil {
		return nil, err
	}
	where := []string{Sellable}
	match := make([]string, len(facetColumns))
	for d := range match {
		match[d] = "true"
	}
	for _, c := range conds {
		if d := slices.Index(facetColumns, c.column); d >= 0 {
			match[d] = c.sql
		} else {
			where = append(where, c.sql)
		}
	}
	if u := unionOf(match, "{%d}"); u != "true" {
		where = append(where, u)
	}
	var b strings.Builder
	b.WriteString("SELECT ")
	var sets []string
	for d, col := range facetColumns {
		others := []string{"true"}
		for o := range facetColumns {
			if o != d {
				others = append(others, match[o])
			}
		}
		fmt.Fprintf(&b, "l.%s, count(*) FILTER (WHERE %s), ", col, strings.Join(others, " AND "))
		sets = append(sets, "(l."+col+")")
	}
	b.WriteString("GROUPING(" + strings.Join(prefixed(facetColumns), ", ") + ")\nFROM leads AS l WHERE ")
	w := strings.Join(where, " AND ")
	for d := range match {
		w = strings.ReplaceAll(w, fmt.Sprintf("{%d}", d), match[d])
	}
	b.WriteString(w + "\nGROUP BY GROUPING SETS (" + strings.Join(sets, ", ") + ")")
	out := make([]map[string]int, len(facetColumns))
	for d := range out {
		out[d] = map[string]int{}
	}
	err = tx.Query(ctx, b.String(), q.args, func(r pgx.Rows) error {
		values := make([]*string, len(facetColumns))
		counts := make([]int64, len(facetColumns))
		dest := make([]any, 0, 2*len(facetColumns)+1)
		for d := range facetColumns {
			dest = append(dest, &values[d], &counts[d])
		}
		var grouping int
		dest = append(dest, &grouping)
		for r.Next() {
			if err := r.Scan(dest...); err != nil {
				return err
			}
			for d := range facetColumns {
				// GROUPING's bit for facet d (the first column is the highest bit) is 0 in d's set.
				if grouping&(1<<(len(facetColumns)-1-d)) == 0 && values[d] != nil {
					out[d][*values[d]] = int(counts[d])
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("count facets: %w", err)
	}
	return out, nil
}

// prefixed is cols on alias l.
func prefixed(cols []string) []string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = "l." + c
	}
	return out
}

// countFacets counts, for each facet d, the sellable leads under f (but for d's own filter) that
// have each of the values small[d] (and, for some facets, of all their values), in one statement.
// A facet whose values are all small is counted without a condition on its values (rows without
// a value, an empty industry, are counted and left out). indexOnly: the counts read the
// counting indexes (preferIndexOnly), where a price range bounds the scan; otherwise bitmaps
// (bitmapRead). titles, when not nil, are the ids its title word is tested by (titleIDs).
// matches is the sample's estimate of f's matches (matchesOf).
func countFacets(ctx context.Context, tx db.PlannedTx, f Filter, small, values [][]string, indexOnly bool, titles []int32, matches int) ([]map[string]int, error) {
	q := &leadQuery{titleIDs: titles, enumerated: indexOnly}
	if !indexOnly {
		q.bitmapRead(f)
	}
	var branches []string
	// The facets f does not filter count the same leads (f's matches) by their values: one pass
	// over them groups them by each (GROUPING SETS), for every facet whose values are all small,
	// or for all of them when f's matches are few enough (facetMergeRows, matches: the sample's
	// estimate of them) to count every value. Read index-only with a title word, every pass reads
	// the entries of the word's titles whatever it counts: one pass for all of them is the
	// cheapest ({titleContains: "Sales"} at 1M, 164,000 entries: five passes 140 ms, one 75 ms).
	merge := matches >= 0 && (int64(matches) <= facetMergeRows.Load() || (indexOnly && titles != nil))
	var shared []int
	for d, vs := range small {
		if len(vs) > 0 && (merge || len(vs) == len(values[d])) && !filters(f, d) {
			shared = append(shared, d)
		}
	}
	if len(shared) < 2 {
		shared = nil
	}
	if shared != nil {
		conds, err := q.conditions(f)
		if err != nil {
			return nil, err
		}
		where := []string{Sellable}
		for _, c := range conds {
			where = append(where, c.sql)
		}
		var which, value, sets []string
		for _, d := range shared {
			col := "l." + facetColumns[d]
			which = append(which, fmt.Sprintf("WHEN GROUPING(%s) = 0 THEN %d", col, d))
			value = append(value, fmt.Sprintf("WHEN GROUPING(%s) = 0 THEN %s", col, col))
			sets = append(sets, "("+col+")")
		}
		branches = append(branches, fmt.Sprintf("SELECT CASE %s END, CASE %s END, count(*) FROM leads AS l WHERE %s GROUP BY GROUPING SETS (%s)",
			strings.Join(which, " "), strings.Join(value, " "), strings.Join(where, " AND "), strings.Join(sets, ", ")))
	}
	for d, vs := range small {
		if len(vs) == 0 || slices.Contains(shared, d) {
			continue
		}
		col := facetColumns[d]
		// The facet's own filter: its small values, unless they are all its values.
		own := withoutFacet(f, d)
		if len(vs) < len(values[d]) {
			*facetFilter(&own, d) = vs
		}
		conds, err := q.conditions(own)
		if err != nil {
			return nil, err
		}
		where := []string{Sellable}
		for _, c := range conds {
			where = append(where, c.sql)
		}
		branches = append(branches, fmt.Sprintf("SELECT %d, l.%s, count(*) FROM leads AS l WHERE %s GROUP BY 2",
			d, col, strings.Join(where, " AND ")))
	}
	out := make([]map[string]int, len(facetColumns))
	for d := range out {
		out[d] = map[string]int{}
	}
	if len(branches) == 0 {
		return out, nil
	}
	err := tx.Query(ctx, strings.Join(branches, "\nUNION ALL\n"), q.args, func(r pgx.Rows) error {
		for r.Next() {
			var d int
			var v string
			var n int64
			if err := r.Scan(&d, &v, &n); err != nil {
				return err
			}
			out[d][v] = int(n)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("count facets: %w", err)
	}
	return out, nil
}

// facetFilter is f's list of values for facet d (facetColumns[d]).
func facetFilter(f *Filter, d int) *[]string {
	switch facetColumns[d] {
	case colIndustry:
		return &f.Industries
	case colCountry:
		return &f.Countries
	case colSeniority:
		return &f.Seniorities
	case colCompanySize:
		return &f.CompanySizes
	}
	return &f.VerificationStatuses
}

// filters reports whether f filters facet d.
func filters(f Filter, d int) bool { return len(*facetFilter(&f, d)) > 0 }

// withoutFacet is f without the filter of facet d.
func withoutFacet(f Filter, d int) Filter {
	*facetFilter(&f, d) = nil
	return f
}

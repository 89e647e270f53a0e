package lead

import (
	"cmp"
	"context"
	"fmt"
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

// FacetsOf returns the facet counts of f (see Facets). It reads in one read-only snapshot:
// the industries and countries sellable leads have (a skip scan of their browse indexes, a few
// dozen index probes); an estimate of every value's count from a sample of about
// facetSampleRows leads' pages (TABLESAMPLE SYSTEM, REPEATABLE so that the same filter gets the
// same estimates); and exact counts of the values estimated below facetExactBelow: index-only
// from the counting indexes wherever they hold what f tests (indexOnlyFilter; a title word tested
// by the ids of its titles in lead_titles), each read at every listed value of the columns before
// its filter's where that reads fewer entries (enumerate), each filtered facet in a pass of its
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
	err := db.ReadSnapshot(ctx, bdb, func(tx db.PlannedTx) error {
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
		var byMask map[int]int
		// A table of a few samples' size is cheaper to count in one pass than to sample.
		sampled := rows > float64(facetSampleRows*15/2)
		if sampled {
			if estimates, byMask, err = sampleFacets(ctx, tx, f, 100*float64(facetSampleRows)/rows); err != nil {
				return err
			}
		}
		small := make([][]string, len(facetColumns))
		smallRows := 0
		for d, vs := range values {
			for _, v := range vs {
				if e := estimates[d][v]; e >= facetExactBelow {
					counts[d] = append(counts[d], FacetCount{Value: v, Count: e})
				} else {
					small[d] = append(small[d], v)
					smallRows += e
				}
			}
		}
		// The facets with small values, and how many leads count in some of them: the one pass
		// over them below reads no lead for a facet whose values are all estimated.
		var counted []int
		for d, vs := range small {
			if len(vs) > 0 {
				counted = append(counted, d)
			}
		}
		if len(counted) == 0 {
			return nil // every value estimated
		}
		union := countIn(byMask, counted)
		// read is how the one pass, estimated to read rows leads, reads them, and the title ids
		// to test a title word by (nil: by its text). Where readsIndexOnly says so, the counting
		// indexes alone (preferIndexOnly). Otherwise bitmaps where few leads are read; a pass
		// over most of the table (or over a small table) is the planner's to choose. The
		// facets' own passes read index-only wherever f allows (below): listing the columns
		// before their filters, they read about their matches' entries, where a bitmap reads a
		// heap page for each match, which is not in memory at 1M ({countries: [CA], seniorities:
		// [MANAGER], verificationStatuses: [PENDING, VALID], price 8-21}: 4,400 matches, 140 ms
		// by the bitmap, under 1 ms at each size and status).
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
		// And where the small values' leads are nearly all of the one pass's, it costs less
		// than passes that read them again ({verificationStatuses: [UNKNOWN, VALID],
		// minPriceCredits: 19}'s one pass over 279,000 leads took 170 ms when it counted the
		// statuses too, whose values are all estimated; without them it is not one pass). Few
		// leads are counted in passes too: at each listed value they read about their matches'
		// entries, where the one pass reads a heap page for each by bitmaps ({countries: [IN],
		// companySizes: [SIZE_1_10], verificationStatuses: [RISKY], price 16-43}: 44-52 ms in
		// one pass, 26-27 ms in passes, and up to 180 ms when the heap is not in memory).
		passes := sampled && indexOnly
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
			mode, byID, _ := read(union)
			if err := mode(ctx, tx); err != nil {
				return err
			}
			exact, err := scanFacets(ctx, tx, f, byID, counted)
			if err != nil {
				return err
			}
			for _, d := range counted {
				counts[d] = counts[d][:0]
				for _, v := range values[d] {
					counts[d] = append(counts[d], FacetCount{Value: v, Count: exact[d][v], IsExact: true})
				}
			}
			return nil
		}
		// Every facet's small values in one statement (the table is sampled here: a small one
		// took the one pass above): index-only where the counting indexes hold f, otherwise the
		// way of few leads.
		mode, byID, _ := read(0)
		if indexOnly {
			mode, byID = preferIndexOnly, titles
		}
		if err := mode(ctx, tx); err != nil {
			return err
		}
		exact, err := countFacets(ctx, tx, f, small, values, indexOnly, byID, estimates)
		if err != nil {
			return err
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
// table's rows (from the price's statistics; the facets' passes cannot bound a read by the price,
// the last column of every counting index, where one pass reads the price index's range). The
// bound was about 30% of the sellable leads before the passes listed the columns before their
// filters (enumerate); then ranges of 10-30% cost less in the passes ({seniorities: [DIRECTOR],
// companySizes: [SIZE_201_500], minPriceCredits: 23}: 103-155 ms in one pass, 43-70 ms in
// passes; {verificationStatuses: [UNKNOWN, VALID], minPriceCredits: 19}: 200-300 ms, 125-180).
func narrowPrice(ctx context.Context, tx db.PlannedTx, f Filter, rows float64) (bool, error) {
	q := &leadQuery{}
	conds, err := q.conditions(Filter{MinPriceCredits: f.MinPriceCredits, MaxPriceCredits: f.MaxPriceCredits})
	if err != nil {
		return false, err
	}
	var where []string
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
	return readOnly(ctx, tx, db.Default, scanKinds...)
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
// table's pages, and how many leads pass which facets' filters (byMask: by the bits, in
// facetColumns' order, of the facets whose filters they pass; a facet f does not filter is
// passed by every lead), for countIn. One pass over the sample groups its leads by each facet's
// value and those bits.
func sampleFacets(ctx context.Context, tx db.PlannedTx, f Filter, pct float64) ([]map[string]int, map[int]int, error) {
	q := &leadQuery{}
	conds, err := q.conditions(f)
	if err != nil {
		return nil, nil, err
	}
	where := []string{Sellable}
	bits := []string{"0"}
	for _, c := range conds {
		if d := slices.Index(facetColumns, c.column); d >= 0 {
			bits = append(bits, fmt.Sprintf("(CASE WHEN %s THEN %d ELSE 0 END)", c.sql, 1<<d))
		} else {
			where = append(where, c.sql)
		}
	}
	for d := range facetColumns {
		if !filters(f, d) {
			bits = append(bits, strconv.Itoa(1<<d))
		}
	}
	var b strings.Builder
	b.WriteString("SELECT ")
	var sets []string
	for d := range facetColumns {
		fmt.Fprintf(&b, "s.v%d, ", d)
		sets = append(sets, fmt.Sprintf("(s.v%d, s.mask)", d))
	}
	b.WriteString("s.mask, GROUPING(" + strings.Join(prefixedWith("s.v", len(facetColumns)), ", ") + "), count(*) FROM (SELECT ")
	for d, col := range facetColumns {
		fmt.Fprintf(&b, "l.%s AS v%d, ", col, d)
	}
	b.WriteString(strings.Join(bits, " + ") + " AS mask FROM leads AS l TABLESAMPLE SYSTEM (" + q.arg(pct) +
		"::float4) REPEATABLE (15) WHERE " + strings.Join(where, " AND ") + ") AS s\nGROUP BY GROUPING SETS (" +
		strings.Join(sets, ", ") + ")")
	raw := make([]map[string]map[int]int64, len(facetColumns))
	for d := range raw {
		raw[d] = map[string]map[int]int64{}
	}
	err = tx.Query(ctx, b.String(), q.args, func(r pgx.Rows) error {
		values := make([]*string, len(facetColumns))
		var mask, grouping int
		var n int64
		dest := make([]any, 0, len(facetColumns)+3)
		for d := range values {
			dest = append(dest, &values[d])
		}
		dest = append(dest, &mask, &grouping, &n)
		for r.Next() {
			if err := r.Scan(dest...); err != nil {
				return err
			}
			for d := range facetColumns {
				// GROUPING's bit for facet d (the first column is the highest bit) is 0 in d's set.
				if grouping&(1<<(len(facetColumns)-1-d)) == 0 && values[d] != nil {
					if raw[d][*values[d]] == nil {
						raw[d][*values[d]] = map[int]int64{}
					}
					raw[d][*values[d]][mask] += n
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("sample facets: %w", err)
	}
	scale := 100 / pct
	all := 1<<len(facetColumns) - 1
	estimates := make([]map[string]int, len(facetColumns))
	byMask := map[int]int{}
	for d := range facetColumns {
		estimates[d] = map[string]int{}
		// Facet d counts the leads that pass every other facet's filter.
		others := all &^ (1 << d)
		for v, masks := range raw[d] {
			var n int64
			for mask, m := range masks {
				if mask&others == others {
					n += m
				}
				if d == 0 { // the first facet's sets hold every sampled lead once (NOT NULL)
					byMask[mask] += int(m)
				}
			}
			estimates[d][v] = int(math.Round(float64(n) * scale))
		}
	}
	for mask, n := range byMask {
		byMask[mask] = int(math.Round(float64(n) * scale))
	}
	return estimates, byMask, nil
}

// countIn is the estimate of how many leads count in some facet of facets (they pass every
// other facet's filter), from sampleFacets' byMask.
func countIn(byMask map[int]int, facets []int) int {
	all := 1<<len(facetColumns) - 1
	n := 0
	for mask, m := range byMask {
		for _, d := range facets {
			if others := all &^ (1 << d); mask&others == others {
				n += m
				break
			}
		}
	}
	return n
}

// prefixedWith is prefix0, prefix1, ... prefix(n-1).
func prefixedWith(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = prefix + strconv.Itoa(i)
	}
	return out
}

// unionOf is the condition under which a lead counts in some facet of facets: it passes every
// other facet's filter. match[d] is facet d's filter ("true" when there is none); ref, with %d
// for d, is how the condition refers to it.
func unionOf(match []string, ref string, facets []int) string {
	var terms []string
	for _, d := range facets {
		var others []string
		for o := range match {
			if o != d && match[o] != "true" {
				others = append(others, fmt.Sprintf(ref, o))
			}
		}
		if len(others) == 0 {
			return "true" // no other facet filtered: facet d counts every lead
		}
		terms = append(terms, "("+strings.Join(others, " AND ")+")")
	}
	if len(terms) == 0 {
		return "true"
	}
	return "(" + strings.Join(terms, " OR ") + ")"
}

// scanFacets counts every value of each facet of facets under f exactly, in one pass over the
// leads that count in some of them (GROUPING SETS, each facet's count filtered by the other
// facets' filters). titles, when not nil, are the ids its title word is tested by (titleIDs).
func scanFacets(ctx context.Context, tx db.PlannedTx, f Filter, titles []int32, facets []int) ([]map[string]int, error) {
	q := &leadQuery{titleIDs: titles}
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
	if u := unionOf(match, "{%d}", facets); u != "true" {
		where = append(where, u)
	}
	var b strings.Builder
	b.WriteString("SELECT ")
	var sets, grouped []string
	for _, d := range facets {
		col := "l." + facetColumns[d]
		others := []string{"true"}
		for o := range facetColumns {
			if o != d {
				others = append(others, match[o])
			}
		}
		fmt.Fprintf(&b, "%s, count(*) FILTER (WHERE %s), ", col, strings.Join(others, " AND "))
		sets = append(sets, "("+col+")")
		grouped = append(grouped, col)
	}
	b.WriteString("GROUPING(" + strings.Join(grouped, ", ") + ")\nFROM leads AS l WHERE ")
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
		values := make([]*string, len(facets))
		counts := make([]int64, len(facets))
		dest := make([]any, 0, 2*len(facets)+1)
		for i := range facets {
			dest = append(dest, &values[i], &counts[i])
		}
		var grouping int
		dest = append(dest, &grouping)
		for r.Next() {
			if err := r.Scan(dest...); err != nil {
				return err
			}
			for i, d := range facets {
				// GROUPING's bit for the i-th facet (the first is the highest bit) is 0 in its set.
				if grouping&(1<<(len(facets)-1-i)) == 0 && values[i] != nil {
					out[d][*values[i]] = int(counts[i])
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

// countFacets counts, for each facet d, the sellable leads under f (but for d's own filter) that
// have each of the values small[d] (and, for some facets, of all their values), in one statement.
// A facet whose values are all small is counted without a condition on its values (rows without
// a value, an empty industry, are counted and left out). indexOnly: the counts read the
// counting indexes (preferIndexOnly), each statement listing the values of the columns before
// its filters where that reads fewer entries for its estimated matches (enumerate); otherwise
// bitmaps (bitmapRead). titles, when not nil, are the ids its title word is tested by
// (titleIDs). estimates are the sample's (sampleFacets).
func countFacets(ctx context.Context, tx db.PlannedTx, f Filter, small, values [][]string, indexOnly bool, titles []int32, estimates []map[string]int) ([]map[string]int, error) {
	q := &leadQuery{titleIDs: titles}
	if !indexOnly {
		q.bitmapRead(f)
	}
	// enumerate lists values for each branch by its own estimate of its matches.
	domains := facetDomains(values)
	enumerateFor := func(rows int) {
		if indexOnly {
			q.enumerated = &enumeration{domains: domains, matches: rows, estimates: estimates}
		}
	}
	matches := matchesOf(f, estimates)
	var branches []string
	// The facets f does not filter count the same leads (f's matches) by their values: one pass
	// over them groups them by each (GROUPING SETS), for every facet whose values are all small,
	// or for all of them when f's matches are few enough (facetMergeRows, matches: the sample's
	// estimate of them) to count every value. Read index-only with a title word, every pass reads
	// the entries of the word's titles whatever it counts: one pass for all of them is the
	// cheapest ({titleContains: "Sales"} at 1M, 164,000 entries: five passes 140 ms, one 75 ms).
	// And a facet whose small values have a third of f's matches or more joins the pass: its
	// own would read its values' whole ranges again, the price tested on each entry
	// ({minPriceCredits: 5, maxPriceCredits: 10}: every industry, all the countries but one and
	// half the sizes small; 185-200 ms with a half, 157-160 with a third).
	merge := matches >= 0 && (int64(matches) <= facetMergeRows.Load() || (indexOnly && titles != nil))
	// rowsOf is the sample's estimate of the leads of facet d's small values.
	rowsOf := func(d int) int {
		n := 0
		for _, v := range small[d] {
			n += estimates[d][v]
		}
		return n
	}
	var shared []int
	for d, vs := range small {
		if len(vs) > 0 && (merge || len(vs) == len(values[d]) || 3*rowsOf(d) >= matches) && !filters(f, d) {
			shared = append(shared, d)
		}
	}
	if len(shared) < 2 {
		shared = nil
	}
	if shared != nil {
		enumerateFor(matches)
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
		enumerateFor(rowsOf(d))
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

package lead

import (
	"maps"
	"math"
	"slices"
	"sync/atomic"
)

// Enumeration: a B-tree's later columns bound a read only under equality on every column before
// them. PostgreSQL 15 has no skip scan, so a filter of company sizes without a seniority reads
// leads_sellable_seniority_counts_idx whole, and a filter of countries and a verification status
// reads its countries' whole ranges of leads_sellable_country_counts_idx with the status tested
// on each entry ({countries: [AU, NL], companySizes: [SIZE_501_1000, UNKNOWN],
// verificationStatuses: [PENDING]}'s country counts at 1M: 710,000 entries read for 47,000
// matches, 105 ms). Listing every value of the columns in between (seniority = ANY(all eight))
// makes the read one descent of the index for each combination of values, each reading only
// entries that match (the same counts: 144 descents, 47,000 entries, 20 ms). The values of the
// seniorities, company sizes and verification statuses are the leads table's CHECK constraints';
// those of the industries and countries the facets' own (facetValues), when the read has them.
//
// A descent costs about a hundred entries' reads, and PostgreSQL 15 descends once for every
// combination of the listed values, so enumerate weighs the two for each counting index and each
// depth, as below, and lists values only where that reads less than the indexes as they are.

// enumeration is what a read knows to choose its enumeration by.
type enumeration struct {
	// domains are, by facet (facetColumns' order), every value a sellable lead may have; nil
	// where they are not known (a count has no industries' and countries' lists).
	domains [][]string
	// matches is the estimate of the read's matches (the planner's, or the facets' sample's).
	matches int
	// estimates, when not nil, are the facets' sample's estimates of each facet's values
	// (sampleFacets), by which the share of the leads a facet's filter keeps is estimated;
	// otherwise its values are taken as equally common.
	estimates []map[string]int
}

// staticDomains are the facets' values the CHECK constraints enumerate (for a read without the
// industries' and countries' lists).
var staticDomains = [][]string{nil, nil, seniorityValues, companySizeValues, verificationValues}

// facetDomains are the domains of the facets whose values are known: the industries and
// countries of values (facetValues' lists, without the empty value) and the empty value (a lead
// without an industry is read by an enumeration too), then staticDomains'.
func facetDomains(values [][]string) [][]string {
	return [][]string{append([]string{""}, values[0]...), append([]string{""}, values[1]...),
		seniorityValues, companySizeValues, verificationValues}
}

// countingIndexes are the facet columns of the counting indexes in their order (then each has
// the price), the title's first (leads_sellable_title_counts_idx, led by the title id).
var countingIndexes = [][]string{
	{colIndustry, colCountry, colSeniority, colCompanySize, colVerification},
	{colCountry, colSeniority, colCompanySize, colVerification, colIndustry},
	{colSeniority, colCompanySize, colVerification, colIndustry, colCountry},
	{colTitle, colIndustry, colCountry, colSeniority, colCompanySize, colVerification},
}

// The costs enumerate weighs, in µs, measured at 1M on the counting indexes (index-only, cached):
// a descent for one combination of values (8-20 µs), an entry read, and the test of the listed
// values of columns that do not bound the read (a filter) on each entry read.
const (
	entryCost  = 0.08
	filterCost = 0.12
)

// descentNanos is a descent's cost in ns; a variable only so that a test can make descents free
// (every column before the last filtered one listed) or dear (none listed) (export_test.go).
var descentNanos atomic.Int64

func init() { descentNanos.Store(8_000) }

// enumerate returns the conditions to add to f's so that a read of the counting indexes alone
// reads the fewest entries for its descents (see above), or none when the indexes as they are
// cost least. titles are the ids f's title word is tested by (nil: by its text; the title's index
// is not read then).
func enumerate(f Filter, e *enumeration, titles []int32) []enumerated {
	if e == nil {
		return nil
	}
	cols := map[string]int{}
	for d, col := range facetColumns {
		if n := len(*facetFilter(&f, d)); n > 0 {
			cols[col] = n
		}
	}
	// With a title word only the title's index holds what a read tests (the title's id); its
	// ids are an index condition unless there are too many (then a hashed test of each entry).
	titled := hasTitleWord(f)
	if titled && titles != nil && int64(len(titles)) <= titleRanges.Load() {
		cols[colTitle] = len(titles)
	}
	domain := func(col string) []string {
		if d := slices.Index(facetColumns, col); d >= 0 && d < len(e.domains) {
			return e.domains[d]
		}
		return nil
	}
	// sel is the share of the entries a filtered column keeps: its values' share of the
	// sample's leads of the facet, or of the column's values (taken as equally common; ten
	// values where they are not known).
	sel := func(col string) float64 {
		d := slices.Index(facetColumns, col)
		if d >= 0 && d < len(e.estimates) {
			in, all := 0, 0
			for v, n := range e.estimates[d] {
				all += n
				if slices.Contains(*facetFilter(&f, d), v) {
					in += n
				}
			}
			if all > 0 {
				return min(1, max(float64(in), 1)/float64(all))
			}
		}
		n := float64(cols[col])
		all := float64(len(domain(col)))
		if col == colTitle || all == 0 {
			all = max(n, 10)
		}
		return min(1, n/all)
	}
	priceSel := 1.0
	if f.MinPriceCredits != nil {
		priceSel /= 2
	}
	if f.MaxPriceCredits != nil {
		priceSel /= 2
	}
	matches := float64(max(e.matches, 1))
	descentCost := float64(descentNanos.Load()) / 1000
	// readCost is the cheapest read of an index the planner has when the columns of lists
	// (filtered, or enumerated) are tested by lists of those lengths: either every list an index
	// condition, the index read once for each combination of their values (from the first
	// column to the last of lists with no column between them without one: a range; the
	// ranges read again for each value of a list after those), or only the first column's, the
	// others tested on each entry of its ranges.
	readCost := func(lists map[string]int) float64 {
		best := math.Inf(1)
		for _, idx := range countingIndexes {
			if (idx[0] == colTitle) != titled {
				// A title's id is in its own index alone; without a title word, the title's index
				// is the others' with one more column first.
				continue
			}
			descents, rereads, entries := 1.0, 1.0, matches
			bounding := true
			for _, col := range idx {
				n, listed := lists[col]
				if !listed {
					bounding = false
					continue
				}
				descents *= float64(n)
				if !bounding {
					rereads *= float64(n)
				}
				if _, filtered := cols[col]; filtered && !bounding {
					entries /= sel(col) // read, then left out by the test
				}
			}
			if !bounding {
				entries /= priceSel
			}
			best = min(best, descents*descentCost+entries*rereads*entryCost)
			// Only the first column's list an index condition.
			if n, ok := lists[idx[0]]; ok {
				entries := matches / priceSel
				for _, col := range idx[1:] {
					if _, filtered := cols[col]; filtered {
						entries /= sel(col)
					}
				}
				best = min(best, float64(n)*descentCost+entries*(entryCost+filterCost))
			}
		}
		return best
	}
	best := readCost(cols)
	var bestList []string
	for _, idx := range countingIndexes {
		if (idx[0] == colTitle) != titled {
			continue
		}
		lists := maps.Clone(cols)
		var listed []string
		for _, col := range idx {
			if _, ok := cols[col]; ok {
				if len(listed) > 0 {
					if c := readCost(lists); c < best {
						best, bestList = c, slices.Clone(listed)
					}
				}
				continue
			}
			vs := domain(col)
			if vs == nil {
				break
			}
			lists[col] = len(vs)
			listed = append(listed, col)
		}
	}
	out := make([]enumerated, 0, len(bestList))
	for _, col := range bestList {
		out = append(out, enumerated{"l." + col + " = ANY(?::text[])", domain(col)})
	}
	return out
}

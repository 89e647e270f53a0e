package lead

import (
	"context"
	"strings"

	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/internal/db"
)

// SetFacetSampling sets the sampling thresholds of FacetsOf for a test and returns a function
// that restores them: a test table of thousands of leads then takes the sampling path that
// tables of millions take.
func SetFacetSampling(sampleRows, exactBelow, scanRows int) (restore func()) {
	s, e, c := facetSampleRows, facetExactBelow, facetScanRows
	facetSampleRows, facetExactBelow, facetScanRows = sampleRows, exactBelow, scanRows
	return func() { facetSampleRows, facetExactBelow, facetScanRows = s, e, c }
}

// WalkRows is walkRows, the most rows the first step of ListSellable reads.
const WalkRows = walkRows

// ExplainCandidates returns the plan of the second step of ListSellable (the candidate set)
// for q, whatever the first step would have answered.
func ExplainCandidates(ctx context.Context, bdb *bun.DB, q SellableQuery) (string, error) {
	c, err := sellableCandidates(q, q.Count && q.After == nil)
	if err != nil {
		return "", err
	}
	var plan string
	err = db.ReadPlanned(ctx, bdb, func(tx db.PlannedTx) error {
		if err := preferBitmaps(ctx, tx); err != nil {
			return err
		}
		plan, err = explain(ctx, tx, c)
		return err
	})
	return plan, err
}

// SetLongWalkHeapCost sets longWalkHeapCost for a test and returns a function that restores it:
// on a test table of thousands of leads the longer walk then runs where it runs at millions.
func SetLongWalkHeapCost(c int64) (restore func()) {
	was := longWalkHeapCost.Swap(c)
	return func() { longWalkHeapCost.Store(was) }
}

// SetIndexOnlyRows sets indexOnlyRows for a test and returns a function that restores it: 0
// makes every count and facet count without a title word read the counting indexes alone, a
// large number none.
func SetIndexOnlyRows(n int64) (restore func()) {
	was := indexOnlyRows.Swap(n)
	return func() { indexOnlyRows.Store(was) }
}

// SetFacetMergeRows sets facetMergeRows for a test and returns a function that restores it: 0
// counts each facet's small values in a pass of its own unless they are all its values.
func SetFacetMergeRows(n int64) (restore func()) {
	was := facetMergeRows.Swap(n)
	return func() { facetMergeRows.Store(was) }
}

// ExplainCount returns the plan of CountSellable(f)'s count, read the way CountSellable reads it
// for the planner's estimate.
func ExplainCount(ctx context.Context, bdb *bun.DB, f Filter) (string, error) {
	q, read, err := sellableCount(f)
	if err != nil {
		return "", err
	}
	rows, _ := countStatements(q)
	var plan string
	err = db.ReadPlanned(ctx, bdb, func(tx db.PlannedTx) error {
		est, err := estimate(ctx, tx, rows, q.args)
		if err != nil {
			return err
		}
		counted, err := read(ctx, tx, est)
		if err != nil {
			return err
		}
		_, capped := countStatements(counted)
		plan, err = explain(ctx, tx, statement{sql: capped, args: counted.args})
		return err
	})
	return plan, err
}

// SetTitleRanges sets titleRanges for a test and returns a function that restores it: 0 tests
// every title word's ids on each entry of the title counting index instead of reading ranges.
func SetTitleRanges(n int64) (restore func()) {
	was := titleRanges.Swap(n)
	return func() { titleRanges.Store(was) }
}

// SetDescentNanos sets descentNanos for a test and returns a function that restores it: 0 lists
// every value it can (descents cost nothing), a large cost none.
func SetDescentNanos(n int64) (restore func()) {
	was := descentNanos.Swap(n)
	return func() { descentNanos.Store(was) }
}

// Enumerated returns the columns enumerate lists for f, given the values of every facet
// (facetValues' lists of industries and countries, the others the CHECK constraints'), an
// estimate of the read's matches and the title ids of f's word.
func Enumerated(f Filter, industries, countries []string, matches int, titles []int32) []string {
	var cols []string
	for _, e := range enumerate(f, &enumeration{domains: facetDomains([][]string{industries, countries}), matches: matches}, titles) {
		cols = append(cols, strings.TrimSuffix(strings.TrimPrefix(e.cond, "l."), " = ANY(?::text[])"))
	}
	return cols
}

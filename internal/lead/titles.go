package lead

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/leadmarket/leadmarket/internal/db"
)

// The leads' distinct titles are kept in lead_titles, and each lead's title_id names its title
// there (the trigger leads_title_id sets it on every insert and every change of the title). A
// title word is then a short list of title ids: the counting index
// leads_sellable_title_counts_idx holds the title id first, with the facets and the price, so
// that a count or a facet's exact count of a filter with a title word reads the index entries of
// the titles that have the word (preferIndexOnly) instead of testing each matching row's text on
// the heap.

// titleRanges is the most titles whose ranges of leads_sellable_title_counts_idx a read of a
// title word reads, one index descent each; a word of more titles (a common word among many
// distinct titles: "Manager" in a real partner's data) is tested on every entry of the index
// instead, against a hashed list (a descent costs a few µs, an entry tens of ns: 2,000 descents
// are about one pass over 200,000 entries). A variable only so that a test can set it
// (export_test.go).
var titleRanges atomic.Int64

func init() { titleRanges.Store(2_000) }

// titleTest is the condition that a title, the SQL expression col, contains word, and its
// parameter: ILIKE, which the trigram indexes answer, or, for a word too short to have
// trigrams, a test of the rows the other conditions find (written as ILIKE, the GIN index would
// read every entry to find it).
func titleTest(col, word string) (cond string, arg any) {
	if hasTrigrams(word) {
		return col + " ILIKE ?::text", "%" + likeEscaper.Replace(word) + "%"
	}
	return "strpos(lower(" + col + "), lower(?::text)) > 0", word
}

// titleIDs returns the ids of the titles that contain word (as titleTest tests it), in order;
// empty, not nil, when none does.
func titleIDs(ctx context.Context, tx db.PlannedTx, word string) ([]int32, error) {
	cond, arg := titleTest("t.title", strings.TrimSpace(word))
	ids := []int32{}
	err := tx.Query(ctx, "SELECT coalesce(array_agg(t.id ORDER BY t.id), '{}') FROM lead_titles AS t WHERE "+
		strings.Replace(cond, "?", "$1", 1), []any{arg}, func(r pgx.Rows) error {
		for r.Next() {
			if err := r.Scan(&ids); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("titles of %q: %w", word, err)
	}
	if ids == nil {
		ids = []int32{}
	}
	return ids, nil
}

// AddTitles adds the titles lead_titles does not hold yet, in one statement in the titles'
// order. Loads that may run at the same time and bring the same new titles add them first: they
// then wait for each other's titles in one order, before any of their leads, and cannot deadlock
// (the trigger adding each lead's title as the lead is written could: one load's lead of title X
// before its lead of title Y, the other's the other way round). InsertNew does it for its rows;
// callers of InsertFrom that run side by side, and callers that retry rows one by one after a
// failed load, call it themselves.
func AddTitles(ctx context.Context, db bun.IDB, titles []string) error {
	if len(titles) == 0 {
		return nil
	}
	if _, err := db.NewRaw(`INSERT INTO lead_titles (title)
SELECT DISTINCT t.title FROM unnest(?::text[]) AS t(title) ORDER BY 1 ON CONFLICT (title) DO NOTHING`,
		pgdialect.Array(titles)).Exec(ctx); err != nil {
		return fmt.Errorf("add titles: %w", err)
	}
	return nil
}

// addTitlesOf is AddTitles of the titles of the rows query selects (NewColumns, in that order,
// with args for its placeholders).
func addTitlesOf(ctx context.Context, db bun.IDB, query string, args ...any) error {
	if _, err := db.NewRaw("INSERT INTO lead_titles (title)\nSELECT DISTINCT src.title FROM ("+query+") AS src ("+NewColumns+
		")\nORDER BY 1 ON CONFLICT (title) DO NOTHING", args...).Exec(ctx); err != nil {
		return fmt.Errorf("add titles: %w", err)
	}
	return nil
}

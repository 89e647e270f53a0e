package lead

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/internal/db"
)

// ExactCountLimit is the largest number a count reports exactly: above it, counts are
// estimates (Total.IsExact false).
const ExactCountLimit = 10_000

// countEstimateFirst is the planner's estimate of matching leads above which CountSellable
// reports the estimate without counting: ten times ExactCountLimit, so that only an estimate
// ten times too high (a combination the statistics cannot see, such as a title word and a
// seniority no such title has) turns a count that would have been exact into an estimate.
const countEstimateFirst = 10 * ExactCountLimit

// Total is how many leads a list holds: exactly Value when IsExact; otherwise more than
// ExactCountLimit, about Value (the planner's estimate).
type Total struct {
	Value   int
	IsExact bool
}

// CountSellable returns how many sellable leads match f: exact up to ExactCountLimit (a count
// over at most ExactCountLimit+1 matching rows), an estimate above. When the planner estimates
// more than countEstimateFirst matches it reports the estimate without counting, so that a
// count never reads more than about ExactCountLimit+1 rows through the browse indexes (the GIN
// bitmap of a rare combination, an ordered walk of a common one). Errors: INVALID_INPUT for a
// bad filter.
func CountSellable(ctx context.Context, bdb *bun.DB, f Filter) (Total, error) {
	q, read, err := sellableCount(f)
	if err != nil {
		return Total{}, err
	}
	t, err := count(ctx, bdb, q, true, read)
	if err != nil {
		return Total{}, fmt.Errorf("count sellable leads: %w", err)
	}
	return t, nil
}

// countRead sets how the statements that follow in tx read the rows of a count that the
// planner estimates at est (-1: not estimated), and returns the query to count them with.
type countRead func(ctx context.Context, tx db.PlannedTx, est int) (*leadQuery, error)

// sellableCount returns CountSellable's query of f and how it reads the rows: index-only where
// readsIndexOnly says so (a title word then tested by its titles' ids), otherwise through
// bitmaps.
func sellableCount(f Filter) (*leadQuery, countRead, error) {
	build := func(e *enumeration, titles []int32) (*leadQuery, error) {
		// The price range an index condition, as in ListSellable's candidate set.
		q := &leadQuery{from: "leads AS l", titleIDs: titles, enumerated: e}
		q.and(Sellable)
		return q, q.filter(f)
	}
	q, err := build(nil, nil)
	if err != nil {
		return nil, nil, err
	}
	return q, func(ctx context.Context, tx db.PlannedTx, est int) (*leadQuery, error) {
		if !readsIndexOnly(f, est) {
			return q, preferBitmaps(ctx, tx)
		}
		if err := preferIndexOnly(ctx, tx); err != nil {
			return nil, err
		}
		var titles []int32
		if hasTitleWord(f) {
			var err error
			if titles, err = titleIDs(ctx, tx, f.TitleContains); err != nil {
				return nil, err
			}
		}
		return build(&enumeration{domains: staticDomains, matches: est}, titles)
	}, nil
}

// countStatements are count's statements of q: its rows, and their count up to
// ExactCountLimit+1.
func countStatements(q *leadQuery) (rows, capped string) {
	rows = "SELECT 1 FROM " + q.from
	if len(q.where) > 0 {
		rows += " WHERE " + strings.Join(q.where, " AND ")
	}
	return rows, fmt.Sprintf("SELECT count(*) FROM (%s LIMIT %d) AS matches", rows, ExactCountLimit+1)
}

// CountPurchased returns how many leads workspaceID bought that match f, as CountSellable counts
// (a workspace's list is counted first and estimated only when it holds more than
// ExactCountLimit). Errors: INVALID_INPUT for a bad filter.
func CountPurchased(ctx context.Context, bdb *bun.DB, workspaceID string, f Filter) (Total, error) {
	q := purchasedLeads(workspaceID)
	if err := q.filter(f); err != nil {
		return Total{}, err
	}
	t, err := count(ctx, bdb, q, false, func(ctx context.Context, tx db.PlannedTx, _ int) (*leadQuery, error) {
		return q, preferBitmaps(ctx, tx)
	})
	if err != nil {
		return Total{}, fmt.Errorf("count leads of workspace %s: %w", workspaceID, err)
	}
	return t, nil
}

// count counts q's rows up to ExactCountLimit+1, estimating above; estimateFirst asks the
// planner before counting; read sets how the rows are read (preferBitmaps, preferIndexOnly) for
// the planner's estimate of them (-1 without estimateFirst) and returns the query, q or its
// equal, to count.
func count(ctx context.Context, bdb *bun.DB, q *leadQuery, estimateFirst bool, read countRead) (Total, error) {
	rows, _ := countStatements(q)
	var t Total
	err := db.ReadPlanned(ctx, bdb, func(tx db.PlannedTx) error {
		est := -1
		if estimateFirst {
			var err error
			if est, err = estimate(ctx, tx, rows, q.args); err != nil {
				return err
			}
			if est > countEstimateFirst {
				t = Total{Value: est}
				return nil
			}
		}
		// The estimate is of rows, the same whichever way they are read.
		counted, err := read(ctx, tx, est)
		if err != nil {
			return err
		}
		_, capped := countStatements(counted)
		var n int
		err = tx.Query(ctx, capped, counted.args,
			func(r pgx.Rows) error {
				for r.Next() {
					if err := r.Scan(&n); err != nil {
						return err
					}
				}
				return nil
			})
		if err != nil {
			return err
		}
		if n <= ExactCountLimit {
			t = Total{Value: n, IsExact: true}
			return nil
		}
		if est < 0 {
			if est, err = estimate(ctx, tx, rows, q.args); err != nil {
				return err
			}
		}
		t = Total{Value: max(est, n)}
		return nil
	})
	return t, err
}

// estimate returns the planner's estimate of the rows query returns (EXPLAIN (FORMAT JSON)'s
// "Plan Rows"), planned for args.
func estimate(ctx context.Context, tx db.PlannedTx, query string, args []any) (int, error) {
	var out []byte
	err := tx.Query(ctx, "EXPLAIN (FORMAT JSON) "+query, args, func(r pgx.Rows) error {
		for r.Next() {
			if err := r.Scan(&out); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	var plans []struct {
		Plan struct {
			Rows float64 `json:"Plan Rows"`
		} `json:"Plan"`
	}
	if err := json.Unmarshal(out, &plans); err != nil || len(plans) == 0 {
		return 0, fmt.Errorf("read the plan's estimate: %w (%s)", err, out)
	}
	return int(math.Round(plans[0].Plan.Rows)), nil
}

// preferBitmaps makes the statements that follow in tx read leads through bitmaps of their
// indexes (the GIN index: exactly the rows that match) rather than walk an index or the table
// testing each row. The reads that use it (a candidate set, a capped count or the facets' exact
// counts of few rows) run only where the matching rows are few, and there the planner's own
// choice goes wrong: it costs ILIKE like an equality, though case-folding each title costs far
// more, and would test the word on every entry of a covering index. Counts of many rows read the
// counting indexes instead (preferIndexOnly, readsIndexOnly).
func preferBitmaps(ctx context.Context, tx db.PlannedTx) error {
	return readOnly(ctx, tx, db.Default, "enable_bitmapscan")
}

// scanKinds are the planner's settings of the ways to read a table that preferBitmaps,
// preferIndexOnly and planners choose between.
var scanKinds = []string{"enable_seqscan", "enable_indexscan", "enable_indexonlyscan", "enable_bitmapscan"}

// readOnly makes the statements that follow in tx read leads in the ways kinds (of scanKinds)
// alone, planned with randomPageCost (db.Default: the server's), whatever an earlier statement
// of tx was set to.
func readOnly(ctx context.Context, tx db.PlannedTx, randomPageCost string, kinds ...string) error {
	settings := map[string]string{"random_page_cost": randomPageCost}
	for _, name := range scanKinds {
		settings[name] = "off"
		if slices.Contains(kinds, name) {
			settings[name] = "on"
		}
	}
	return tx.SetAll(ctx, settings)
}

// indexOnlyRows is how many matching rows a count or a facet's exact count is estimated to read
// from which it reads the counting indexes (preferIndexOnly) rather than a bitmap: a scan of a
// whole counting index costs about 25 ms at 1M leads, a bitmap about 4 µs a row, and a rare
// combination's few rows are cheaper by the bitmap (measured at 1M: {seniorities: [SENIOR],
// companySizes: [SIZE_5001_PLUS], verificationStatuses: [RISKY]}, 294 rows, 4 ms by the bitmap,
// 24 ms index-only). A variable only so that a test can set it (export_test.go).
var indexOnlyRows atomic.Int64

func init() { indexOnlyRows.Store(5_000) }

// manyRows reports whether a read estimated at rows leads reads enough of them to read the
// counting indexes rather than a bitmap (indexOnlyRows).
func manyRows(rows int) bool { return int64(rows) >= indexOnlyRows.Load() }

// indexOnlyFilter reports whether every condition of f can be tested on the entries of one of
// the browse indexes that cover the filter columns: the counting indexes
// leads_sellable_{industry,country,seniority}_counts_idx hold the facets and the price,
// leads_sellable_title_counts_idx the title id as well (a title word tested by its titles' ids,
// titleIDs), and the two covering indexes the creation time and the partner but no title id.
// Those reads count through preferIndexOnly.
func indexOnlyFilter(f Filter) bool {
	return !hasTitleWord(f) || (f.CreatedAfter == nil && len(f.PartnerIDs) == 0)
}

// hasTitleWord reports whether f has a title word.
func hasTitleWord(f Filter) bool { return strings.TrimSpace(f.TitleContains) != "" }

// readsIndexOnly reports whether a count of f's matches, or of some of them, that the planner
// estimates at rows leads reads the counting indexes (preferIndexOnly) rather than bitmaps: for
// a filter they can test (indexOnlyFilter), when the rows are many (manyRows), or whatever
// their number with a title word. leads_sellable_title_counts_idx holds the entries of the
// titles that have the word, a bound on what the read costs; a bitmap of the word's trigrams
// is a superset of its leads, each one's title tested on the heap ({maxPriceCredits: 27,
// titleContains: "Officer"}'s facets at 1M: 150-380 ms for the bitmap's 82,000 rows, 15-30 ms
// index-only), and a word too short for trigrams has no bitmap but the other conditions'
// ({industries: [Education], titleContains: "vp"} counted at 1M: 220 ms).
func readsIndexOnly(f Filter, rows int) bool {
	return indexOnlyFilter(f) && (manyRows(rows) || hasTitleWord(f))
}

// preferIndexOnly makes the statements that follow in tx read leads through index scans only:
// for a filter the counting indexes can test (indexOnlyFilter), index-only scans of the entries
// of a narrow counting index (a range of the filter's industries, countries, seniorities or
// titles, or all of it with the other conditions tested in the index: about 25 ms at 1M)
// instead of one heap row per match through a bitmap, which is about 4 µs a row when the table
// is not in PostgreSQL's buffers and 20-30 µs when it is not in the OS's either (measured at
// 1M: {countries: [ES]} up to 10,001 rows, 64 ms by the bitmap, 10-13 ms index-only). The
// planner's own choice is the bitmap: it costs a heap page as a cached one.
//
// enable_indexscan stays on: PostgreSQL (15) costs an index-only scan as disabled when it is
// off, and among paths all disabled it took a whole ordered index with the filter tested on each
// entry over a range of the right one ({industries: [Real Estate, Telecom], countries: [SE]}'s
// facets at 1M: 535 ms, then 42 ms). Every column of such a filter is in a counting index (a
// title word as its titles' ids, titleIDs), so the planner reads it index-only rather than fetch
// heap rows by a plain index scan.
//
// They are planned with random_page_cost 1.1, the usual value for data in memory or on SSDs: the
// counting indexes they read are browse's, in memory, and at the default of 4 the planner priced
// each descent of one as a random read from a disk. It then read a title's whole range with the
// other conditions tested on each entry rather than once for each industry and country
// (429-1,144 descents, about 10 µs each in memory): {seniorities: [SENIOR],
// verificationStatuses: [RISKY, VALID], titleContains: "Engineer"}'s facets at 1M, 200 ms, then
// 155.
func preferIndexOnly(ctx context.Context, tx db.PlannedTx) error {
	return readOnly(ctx, tx, "1.1", "enable_indexonlyscan", "enable_indexscan")
}

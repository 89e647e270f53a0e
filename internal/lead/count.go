package lead

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"

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
	// The price range an index condition, as in ListSellable's candidate set.
	q := &leadQuery{from: "leads AS l"}
	q.and(Sellable)
	if err := q.filter(f); err != nil {
		return Total{}, err
	}
	t, err := count(ctx, bdb, q, true)
	if err != nil {
		return Total{}, fmt.Errorf("count sellable leads: %w", err)
	}
	return t, nil
}

// CountPurchased returns how many leads workspaceID bought that match f, as CountSellable counts
// (a workspace's list is counted first and estimated only when it holds more than
// ExactCountLimit). Errors: INVALID_INPUT for a bad filter.
func CountPurchased(ctx context.Context, bdb *bun.DB, workspaceID string, f Filter) (Total, error) {
	q := purchasedLeads(workspaceID)
	if err := q.filter(f); err != nil {
		return Total{}, err
	}
	t, err := count(ctx, bdb, q, false)
	if err != nil {
		return Total{}, fmt.Errorf("count leads of workspace %s: %w", workspaceID, err)
	}
	return t, nil
}

// count counts q's rows up to ExactCountLimit+1, estimating above; estimateFirst asks the
// planner before counting.
func count(ctx context.Context, bdb *bun.DB, q *leadQuery, estimateFirst bool) (Total, error) {
	rows := "SELECT 1 FROM " + q.from
	if len(q.where) > 0 {
		rows += " WHERE " + strings.Join(q.where, " AND ")
	}
	var t Total
	err := db.ReadPlanned(ctx, bdb, func(tx db.PlannedTx) error {
		if err := preferBitmaps(ctx, tx); err != nil {
			return err
		}
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
		var n int
		err := tx.Query(ctx, fmt.Sprintf("SELECT count(*) FROM (%s LIMIT %d) AS matches", rows, ExactCountLimit+1), q.args,
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
// testing each row. The reads that use it (a candidate set, a capped count, the facets' exact
// counts) run only where the matching rows are few, and there the planner's own choice goes
// wrong: it costs ILIKE like an equality, though case-folding each title costs far more, and
// prices an index-only walk of a million entries below a bitmap of tens of thousands of rows.
func preferBitmaps(ctx context.Context, tx db.PlannedTx) error {
	for _, name := range []string{"enable_seqscan", "enable_indexscan", "enable_indexonlyscan"} {
		if err := tx.Set(ctx, name, "off"); err != nil {
			return err
		}
	}
	return nil
}

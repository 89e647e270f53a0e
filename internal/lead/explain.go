package lead

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/internal/db"
)

// ExplainSellable runs the statements ListSellable(q) runs, under EXPLAIN (ANALYZE, BUFFERS), and
// returns their plans, one text per statement, each headed by which step it is: for benchmarks
// and for whoever investigates a slow browse.
func ExplainSellable(ctx context.Context, bdb *bun.DB, q SellableQuery) ([]string, error) {
	if _, ok := orders[q.Order]; !ok {
		return nil, fmt.Errorf("unknown order %q", q.Order)
	}
	_, answered, ran, err := walkSteps(ctx, bdb, q)
	if err != nil {
		return nil, err
	}
	var plans []string
	err = db.ReadPlanned(ctx, bdb, func(tx db.PlannedTx) error {
		for i, w := range ran {
			plan, err := explain(ctx, tx, w.statement)
			head := "-- step 1, the walk of the ordered index\n"
			if i > 0 {
				head = fmt.Sprintf("-- step 1b, a longer walk of %d rows\n", w.rows)
			}
			plans = append(plans, head+plan)
			if err != nil {
				return err
			}
		}
		if answered {
			return nil
		}
		c, err := sellableCandidates(q, q.Count && q.After == nil)
		if err != nil {
			return err
		}
		if err := preferBitmaps(ctx, tx); err != nil {
			return err
		}
		plan, err := explain(ctx, tx, c)
		plans = append(plans, "-- step 2, the candidate set\n"+plan)
		return err
	})
	return plans, err
}

// explain returns the EXPLAIN (ANALYZE, BUFFERS) of s.
func explain(ctx context.Context, tx db.PlannedTx, s statement) (string, error) {
	var b strings.Builder
	err := tx.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS) "+s.sql, s.args, func(rows pgx.Rows) error {
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				return err
			}
			b.WriteString(line)
			b.WriteByte('\n')
		}
		return nil
	})
	return b.String(), err
}

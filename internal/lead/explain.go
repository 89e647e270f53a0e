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
	leads, walkedAll, walk, err := walkSellable(ctx, bdb, q, walkRows, nil)
	if err != nil {
		return nil, err
	}
	var long statement
	longWalked := 0
	if n := longerWalk(len(leads), q.Limit); len(leads) < q.Limit && !walkedAll && n > 0 && worthWalking(ctx, bdb, len(leads), n) {
		if leads, walkedAll, long, err = walkSellable(ctx, bdb, q, n, leads[:0]); err != nil {
			return nil, err
		}
		longWalked = n
	}
	var plans []string
	err = db.ReadPlanned(ctx, bdb, func(tx db.PlannedTx) error {
		plan, err := explain(ctx, tx, walk)
		plans = append(plans, "-- step 1, the walk of the ordered index\n"+plan)
		if err == nil && longWalked > 0 {
			plan, err = explain(ctx, tx, long)
			plans = append(plans, fmt.Sprintf("-- step 1b, a longer walk of %d rows\n", longWalked)+plan)
		}
		if err != nil || len(leads) >= q.Limit || walkedAll {
			return err
		}
		c, err := sellableCandidates(q)
		if err != nil {
			return err
		}
		if err := preferBitmaps(ctx, tx); err != nil {
			return err
		}
		plan, err = explain(ctx, tx, c)
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

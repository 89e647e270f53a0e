package lead

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/internal/apperr"
	"github.com/leadmarket/leadmarket/internal/db"
)

// Orders of ListSellable.
const (
	OrderNewest    = "NEWEST"
	OrderPriceAsc  = "PRICE_ASC"
	OrderPriceDesc = "PRICE_DESC"
)

// Filter narrows a list of leads; every non-empty field must match.
type Filter struct {
	Industries           []string
	Countries            []string
	Seniorities          []string
	CompanySizes         []string
	TitleContains        string
	VerificationStatuses []string
	MinPriceCredits      *int
	MaxPriceCredits      *int
	CreatedAfter         *time.Time
	PartnerIDs           []string
}

// Viewer is whose purchases count as "mine", and so unmask contact data: one workspace, or every
// workspace of a user.
type Viewer struct {
	UserID      string
	WorkspaceID string
}

// Position is a keyset position: a list continues after the row with these sort values. Time is
// the lead's creation (OrderNewest) or the purchase's time (ListPurchased); Price the lead's price
// (OrderPriceAsc, OrderPriceDesc); ID the lead's id, or the purchase's for ListPurchased.
type Position struct {
	Time  time.Time
	Price int
	ID    string
}

// SellableQuery is one page request of ListSellable.
type SellableQuery struct {
	Viewer Viewer
	Filter Filter
	// Order is OrderNewest, OrderPriceAsc or OrderPriceDesc; there is no default.
	Order string
	// After is where the page starts; nil: at the beginning.
	After *Position
	// Limit is how many rows to return at most (a caller asks for one more than its page to learn
	// whether another follows).
	Limit int
	// Count asks ListSellable for the filter's Total as well, where a first page's own reads see
	// every match: a walk that read all of its range, or the candidate set (every match, found
	// to be ordered). Elsewhere it returns none, and CountSellable counts.
	Count bool
}

// walkRows is how many rows of an ordered browse index the first step of ListSellable reads at
// most: a filter that keeps at least one row in a hundred fills a page of 50 within them.
const walkRows = 5000

// longWalkRows is the most rows a second, longer walk reads (about 50 ms of an index-only scan
// at 1M leads on two cores): when the first walk found some matches but not a page, a filter
// keeping one row in a few hundred (a facet with a two-letter title word, which has no trigrams
// for the GIN index) fills its page there instead of reading every row of its facet from the
// heap in step 2.
const longWalkRows = 8 * walkRows

// longerWalk returns how many rows a second walk reads to fill a page of limit at the rate of
// hits per walkRows that the first walk found, with half as many again for the rate's error,
// rounded up to walkRows times a power of two (a few prepared statements, not one per rate);
// 0 when that is more than longWalkRows (the matches are rare: the candidate set answers).
func longerWalk(hits, limit int) int {
	if hits <= 0 {
		return 0
	}
	need := limit * walkRows / hits * 3 / 2
	n := 2 * walkRows
	for n < need {
		n *= 2
	}
	if n > longWalkRows {
		return 0
	}
	return n
}

// sellableOrder is how ListSellable reads one order: its keys on alias l and on the alias w of
// a subquery that returns them, and the column its index is ordered by (keyset writes its
// keyset condition).
type sellableOrder struct {
	by, byW string
	column  string
}

// orders are ListSellable's orders. Each is the order of a covering index, partial on the
// sellable rule (migrations/…_faceted_browse): leads_sellable_newest_covering_idx and
// leads_sellable_price_covering_idx.
var orders = map[string]sellableOrder{
	OrderNewest:    {by: "l.created_at DESC, l.id DESC", byW: "w.created_at DESC, w.id DESC", column: colCreated},
	OrderPriceAsc:  {by: "l.price_credits ASC, l.id ASC", byW: "w.price_credits ASC, w.id ASC", column: colPrice},
	OrderPriceDesc: {by: "l.price_credits DESC, l.id DESC", byW: "w.price_credits DESC, w.id DESC", column: colPrice},
}

// keyset adds the condition "after p in order o" to q and returns it.
func (q *leadQuery) keyset(o string, p *Position) string {
	if p == nil {
		return ""
	}
	switch o {
	case OrderNewest:
		return "(l.created_at, l.id) < (" + q.arg(p.Time) + "::timestamptz, " + q.arg(p.ID) + "::uuid)"
	case OrderPriceAsc:
		return "(l.price_credits, l.id) > (" + q.arg(clampInt32(p.Price)) + "::integer, " + q.arg(p.ID) + "::uuid)"
	default:
		return "(l.price_credits, l.id) < (" + q.arg(clampInt32(p.Price)) + "::integer, " + q.arg(p.ID) + "::uuid)"
	}
}

// ListSellable returns up to q.Limit sellable leads in q.Order after q.After, masked for q.Viewer.
// Errors: INVALID_INPUT for a bad filter or an unknown order.
//
// Whichever the filter, it reads a bounded amount, in at most two statements:
//
//  1. The walk (one prepared statement on db, no transaction): up to walkRows rows of the
//     order's covering index from q.After on, the filter evaluated on the index's own columns
//     (an index-only scan), the first q.Limit matches joined to their leads. Conditions on the
//     order's own column (a price range when ordered by price, createdAfter when newest first)
//     bound the index range instead. A filter that matches one row in a hundred or more, and
//     any filter near the end of its range, is answered here.
//  2. Otherwise the filter is rare here: its candidate set — every sellable lead after q.After
//     that matches it — is found first, through the multi-column GIN index over the facet
//     columns and the title's trigrams (a bitmap of exactly the matching rows), and ordered
//     after (a MATERIALIZED CTE, so that the planner cannot walk the ordered index again
//     hoping to meet matches early). It runs planned for its values (db.ReadPlanned), through
//     bitmaps only (preferBitmaps): step 1 has shown that the matches are rare.
//
// A single statement would leave the choice to the planner's estimate of how many rows match,
// which for a combination of filters (a title word with a seniority that no such title has) can
// be wrong by any factor, and a wrong guess reads the whole ordered index.
//
// With q.Count it also returns the filter's Total when those reads saw every match (see
// SellableQuery.Count); nil otherwise.
func ListSellable(ctx context.Context, bdb *bun.DB, q SellableQuery) ([]Lead, *Total, error) {
	if _, ok := orders[q.Order]; !ok {
		return nil, nil, apperr.New(apperr.InvalidInput, "unknown order %q", q.Order)
	}
	counting := q.Count && q.After == nil
	leads, answered, ran, err := walkSteps(ctx, bdb, q)
	if err != nil {
		return nil, nil, err
	}
	if answered {
		// A walk that read all of its range and returned fewer rows than its limit saw every match.
		if counting && ran[len(ran)-1].walkedAll && len(leads) <= q.Limit {
			return leads, totalOf(len(leads)), nil
		}
		return leads, nil, nil
	}
	c, err := sellableCandidates(q, counting)
	if err != nil {
		return nil, nil, err
	}
	leads = leads[:0]
	matches := 0
	err = db.ReadPlanned(ctx, bdb, func(tx db.PlannedTx) error {
		if err := preferBitmaps(ctx, tx); err != nil {
			return err
		}
		return tx.Query(ctx, c.sql, c.args, func(rows pgx.Rows) error {
			if counting {
				leads, matches, err = scanCounted(rows, leads)
			} else {
				leads, err = scanLeads(rows, leads)
			}
			return err
		})
	})
	if err != nil {
		return nil, nil, fmt.Errorf("browse leads: %w", err)
	}
	if counting {
		return leads, totalOf(matches), nil
	}
	return leads, nil, nil
}

// totalOf is the Total of n matches counted one by one: exact up to ExactCountLimit, and above
// it flagged as an estimate like every count there, though n is the number.
func totalOf(n int) *Total {
	return &Total{Value: n, IsExact: n <= ExactCountLimit}
}

// statement is a built statement and its parameters.
type statement struct {
	sql  string
	args []any
}

// walk is one walk ListSellable ran: its statement, how many rows it reads at most, and whether
// it read all of its range.
type walk struct {
	statement
	rows      int
	walkedAll bool
}

// walkSteps runs the walks of ListSellable: the first of walkRows rows and, when that found some
// matches but not a page and a longer walk is worth it, one of longerWalk rows. It returns the
// last walk's matches, whether they answer the page (a full page, or a walk that read all of its
// range: no candidate set is needed), and the walks it ran.
func walkSteps(ctx context.Context, bdb *bun.DB, q SellableQuery) ([]Lead, bool, []walk, error) {
	var ran []walk
	leads := make([]Lead, 0, q.Limit)
	for n := walkRows; n > 0; n = longerWalk(len(leads), q.Limit) {
		w, err := sellableWalk(q, n)
		if err != nil {
			return nil, false, ran, err
		}
		walkedAll := false
		leads = leads[:0]
		err = db.QueryPrepared(ctx, bdb, w.sql, w.args, func(rows pgx.Rows) error {
			leads, walkedAll, err = scanWalk(rows, leads)
			return err
		})
		ran = append(ran, walk{statement: w, rows: n, walkedAll: walkedAll})
		if err != nil {
			return nil, false, ran, fmt.Errorf("browse leads: %w", err)
		}
		if len(leads) >= q.Limit || walkedAll {
			return leads, true, ran, nil
		}
		if n > walkRows || !worthWalking(ctx, bdb, len(leads), longerWalk(len(leads), q.Limit)) {
			break
		}
	}
	return leads, false, ran, nil
}

// longWalkHeapCost is about how many index rows an index-only walk reads in the time the
// candidate set reads one matching lead from the heap (0: the default, 4); settable only so that
// a test on a small table can raise it (export_test.go).
var longWalkHeapCost atomic.Int64

// worthWalking reports whether a longer walk of n rows is cheaper than the candidate set when the
// first walk found hits matches in walkRows rows: the candidate set reads about hits/walkRows of
// the table's rows from the heap. On a small table it is not (100k leads: a longer walk cost
// 10 ms at p99 in bench/facets); on a large one it is (1M: p99 135 -> 72 ms, max 313 -> 134 ms).
func worthWalking(ctx context.Context, bdb *bun.DB, hits, n int) bool {
	if n <= 0 {
		return false
	}
	cost := longWalkHeapCost.Load()
	if cost == 0 {
		cost = 4
	}
	candidates := float64(hits) / walkRows * leadRows(ctx, bdb)
	return float64(cost)*candidates > float64(n)
}

// rowsCache holds, per database handle, the planner's count of the leads table's rows.
var rowsCache = struct {
	sync.Mutex
	byDB map[*bun.DB]cachedRows
}{byDB: map[*bun.DB]cachedRows{}}

type cachedRows struct {
	at   time.Time
	rows float64
}

// leadRows returns the planner's count of the leads table's rows on bdb (pg_class.reltuples,
// kept by ANALYZE and autovacuum), read again after a minute; 0 when it cannot be read (then no
// longer walk runs).
func leadRows(ctx context.Context, bdb *bun.DB) float64 {
	rowsCache.Lock()
	c, ok := rowsCache.byDB[bdb]
	rowsCache.Unlock()
	if ok && time.Since(c.at) < time.Minute {
		return c.rows
	}
	var rows float64
	if err := bdb.NewRaw("SELECT greatest(reltuples, 0)::float8 FROM pg_class WHERE oid = 'leads'::regclass").Scan(ctx, &rows); err != nil {
		return 0
	}
	rowsCache.Lock()
	rowsCache.byDB[bdb] = cachedRows{at: time.Now(), rows: rows}
	rowsCache.Unlock()
	return rows
}

// sellableWalk builds step 1 of ListSellable. Its rows are the matches (hit) among the first
// n rows of the order's index, and the n-th row whether it matches or not, so that a page with
// fewer matches tells a walk that reached the end of its range from one that stopped short of
// it.
func sellableWalk(q SellableQuery, n int) (statement, error) {
	o := orders[q.Order]
	lq := visibleLeads(q.Viewer)
	conds, err := lq.conditions(q.Filter)
	if err != nil {
		return statement{}, err
	}
	where := []string{Sellable}
	var hits []string
	for _, c := range conds {
		if c.column == o.column {
			where = append(where, c.sql)
		} else {
			hits = append(hits, c.sql)
		}
	}
	if k := lq.keyset(q.Order, q.After); k != "" {
		where = append(where, k)
	}
	hit := "true"
	if len(hits) > 0 {
		hit = strings.Join(hits, " AND ")
	}
	w := strconv.Itoa(n)
	sql := "SELECT " + lq.columns + ", w.hit, w.rn = " + w + " AS last_walked\nFROM (\n" +
		"SELECT w.id, w.created_at, w.price_credits, w.hit, w.rn FROM (\n" +
		"SELECT l.id, l.created_at, l.price_credits, " + hit + " AS hit, row_number() OVER (ORDER BY " + o.by + ") AS rn\n" +
		"FROM leads AS l WHERE " + strings.Join(where, " AND ") + "\nORDER BY " + o.by + " LIMIT " + w +
		"\n) AS w WHERE w.hit OR w.rn = " + w + "\nORDER BY " + o.byW + " LIMIT " + strconv.Itoa(q.Limit+1) +
		"\n) AS w, " + lq.from + "\nWHERE l.id = w.id\nORDER BY " + o.byW
	return statement{sql: sql, args: lq.args}, nil
}

// sellableCandidates builds step 2 of ListSellable: the filter's candidate set after q.After,
// then its first q.Limit rows in order; with count, each row also carries the candidate set's
// size (scanCounted).
func sellableCandidates(q SellableQuery, count bool) (statement, error) {
	o := orders[q.Order]
	// A price range stays an index condition here (no bitmapRead): with a broad facet and a
	// narrow price the planner reads the price index's few rows instead of the facet's
	// hundreds of thousands (at 1M, {companySizes: [SIZE_11_50, SIZE_5001_PLUS], price 30}:
	// 267,188 rows read to keep 2,677, 270-360 ms; 26-90 ms from the price index), and with a
	// rare combination and a wide range it keeps to the GIN (measured: bench/facets).
	lq := visibleLeads(q.Viewer)
	conds, err := lq.conditions(q.Filter)
	if err != nil {
		return statement{}, err
	}
	where := []string{Sellable}
	for _, c := range conds {
		where = append(where, c.sql)
	}
	// The cursor filters the candidates, and is kept from choosing how they are found: the
	// planner estimates a row comparison on the order's columns from its first column alone, so
	// at the end of a price range ((price, id) < (1, ...)) it counts on a handful of rows, reads
	// the candidates through the price index's bitmap instead of the facets' GIN, and finds
	// hundreds of thousands (seen: 499 ms for 16 leads at 1M). IS TRUE makes it no index
	// condition.
	if k := lq.keyset(q.Order, q.After); k != "" {
		where = append(where, "("+k+") IS TRUE")
	}
	cByW := strings.ReplaceAll(o.byW, "w.", "c.")
	columns := lq.columns
	if count {
		columns += ", (SELECT count(*) FROM c) AS matches"
	}
	sql := "WITH c AS MATERIALIZED (\nSELECT l.id, l.created_at, l.price_credits FROM leads AS l WHERE " +
		strings.Join(where, " AND ") + "\n)\nSELECT " + columns + "\nFROM (SELECT c.id, c.created_at, c.price_credits FROM c ORDER BY " +
		cByW + " LIMIT " + strconv.Itoa(q.Limit) + ") AS w, " + lq.from + "\nWHERE l.id = w.id\nORDER BY " + o.byW
	return statement{sql: sql, args: lq.args}, nil
}

// scanWalk appends the matching rows of a walk to leads and reports whether the walk read all of
// its range (it returned no walkRows-th row).
func scanWalk(rows pgx.Rows, leads []Lead) ([]Lead, bool, error) {
	var l Lead
	var hit, last bool
	dest := append(l.dest(false), &hit, &last)
	walkedAll := true
	for rows.Next() {
		l = Lead{}
		if err := rows.Scan(dest...); err != nil {
			return leads, false, err
		}
		if last {
			walkedAll = false
		}
		if hit {
			leads = append(leads, l)
		}
	}
	return leads, walkedAll, nil
}

// scanLeads appends rows of leadColumns and the contact columns to leads.
func scanLeads(rows pgx.Rows, leads []Lead) ([]Lead, error) {
	var l Lead
	dest := l.dest(false)
	for rows.Next() {
		l = Lead{}
		if err := rows.Scan(dest...); err != nil {
			return leads, err
		}
		leads = append(leads, l)
	}
	return leads, nil
}

// scanCounted is scanLeads for rows that also carry the candidate set's size, which it returns
// (0 when there are no rows: the set is empty).
func scanCounted(rows pgx.Rows, leads []Lead) ([]Lead, int, error) {
	var l Lead
	var matches int64
	dest := append(l.dest(false), &matches)
	for rows.Next() {
		l = Lead{}
		if err := rows.Scan(dest...); err != nil {
			return leads, 0, err
		}
		leads = append(leads, l)
	}
	return leads, int(matches), nil
}

// ListPurchased returns up to limit leads that workspaceID bought, newest purchase first after
// after (the purchase's time and id; nil: from the newest), with contact data, PurchasedAt and
// PurchaseID. The caller checks that the workspace's data may be shown. Errors: INVALID_INPUT for
// a bad filter.
func ListPurchased(ctx context.Context, bdb *bun.DB, workspaceID string, f Filter, after *Position, limit int) ([]Lead, error) {
	q := purchasedLeads(workspaceID)
	if after != nil {
		q.and("(p.created_at, p.id) < (?::timestamptz, ?::uuid)", after.Time, after.ID)
	}
	if err := q.filter(f); err != nil {
		return nil, err
	}
	leads, err := q.run(ctx, bdb, "p.created_at DESC, p.id DESC", limit, make([]Lead, 0, limit))
	if err != nil {
		return nil, fmt.Errorf("leads of workspace %s: %w", workspaceID, err)
	}
	return leads, nil
}

// Visible returns the lead with id if v may see it: it is sellable, or one of v's workspaces bought
// it. It returns (nil, nil) otherwise, so a caller cannot tell a hidden lead from a missing one.
// Errors: INVALID_INPUT for a malformed id.
func Visible(ctx context.Context, bdb *bun.DB, v Viewer, id string) (*Lead, error) {
	if err := apperr.CheckID(id); err != nil {
		return nil, err
	}
	q := visibleLeads(v)
	q.and("l.id = ?::uuid", id)
	q.and("(" + Sellable + ") OR b.lead_id IS NOT NULL")
	leads, err := q.run(ctx, bdb, "", 0, nil)
	if err != nil {
		return nil, fmt.Errorf("lead %s: %w", id, err)
	}
	if len(leads) == 0 {
		return nil, nil
	}
	return &leads[0], nil
}

// ByIDs returns the leads with ids as v sees them (masked unless bought), whatever their status:
// it serves relations such as a purchase's lead. Unknown ids are left out. Errors: INVALID_INPUT
// for a malformed id.
func ByIDs(ctx context.Context, bdb *bun.DB, v Viewer, ids []string) ([]Lead, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	for _, id := range ids {
		if err := apperr.CheckID(id); err != nil {
			return nil, err
		}
	}
	q := visibleLeads(v)
	q.and("l.id = ANY(?::uuid[])", ids)
	leads, err := q.run(ctx, bdb, "", 0, make([]Lead, 0, len(ids)))
	if err != nil {
		return nil, fmt.Errorf("leads by ids: %w", err)
	}
	return leads, nil
}

package lead

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/internal/apperr"
	"github.com/leadmarket/leadmarket/internal/db"
)

// leadQuery builds one read of leads as SQL with $n parameters, run as a prepared statement
// (db.QueryPrepared, or db.ReadPlanned where the plan must fit the values). Its text depends only
// on which filters, cursor and order a request uses, never on their values, so every connection
// parses each shape once; through QueryPrepared PostgreSQL also plans it once (its generic plan)
// instead of on every page.
type leadQuery struct {
	from    string
	columns string
	where   []string
	args    []any
	// purchases: the rows end with the purchase's time and id (purchasedLeads).
	purchases bool
	// priceAsTest writes a price range as a test of the rows that other conditions find, never as
	// an index condition (see bitmapRead).
	priceAsTest bool
	// titleIDs, when not nil, are the ids of the titles that contain the filter's title word
	// (titleIDs): the word is tested by the lead's title_id, which the counting index
	// leads_sellable_title_counts_idx holds, instead of by its title's text.
	titleIDs []int32
	// enumerated, when not nil, has the read list every value of the columns before the filtered
	// ones in a counting index where that reads fewer entries (enumerate), for the reads of the
	// counting indexes alone (preferIndexOnly).
	enumerated *enumeration
}

// leadColumns are the columns of Lead every read returns, in the order run scans them.
const leadColumns = `l.id, l.partner_id, l.first_name, l.last_name, l.title, l.seniority, l.department,
	l.company_name, l.company_domain, l.company_size, l.industry, l.country, l.region, l.city, l.price_credits,
	l.max_buyers, l.buyers_count, l.verification_status, l.status, l.email_preview, l.phone_preview, l.created_at,
	l.verified_at`

// visibleLeads reads leads as viewer v sees them: contact columns are blanked in SQL unless one of
// v's workspaces bought the lead, so unbought contact data never leaves the database.
func visibleLeads(v Viewer) *leadQuery {
	q := &leadQuery{}
	var scope string
	if v.WorkspaceID != "" {
		scope = "p.workspace_id = " + q.arg(v.WorkspaceID) + "::uuid"
	} else {
		scope = "p.workspace_id IN (SELECT m.workspace_id FROM workspace_members AS m WHERE m.user_id = " + q.arg(v.UserID) + "::uuid)"
	}
	q.from = `leads AS l
	LEFT JOIN LATERAL (SELECT p.lead_id FROM lead_purchases AS p WHERE p.lead_id = l.id AND ` + scope + ` LIMIT 1) AS b ON true`
	q.columns = leadColumns + `,
	b.lead_id IS NOT NULL AS contact_visible,
	CASE WHEN b.lead_id IS NOT NULL THEN l.email ELSE '' END AS email,
	CASE WHEN b.lead_id IS NOT NULL THEN l.phone_e164 ELSE '' END AS phone,
	CASE WHEN b.lead_id IS NOT NULL THEN l.linkedin_url ELSE '' END AS linkedin_url`
	return q
}

// purchasedLeads reads the leads workspace bought, with contact data and the purchase.
func purchasedLeads(workspaceID string) *leadQuery {
	q := &leadQuery{from: "lead_purchases AS p JOIN leads AS l ON l.id = p.lead_id", purchases: true}
	q.columns = leadColumns + `,
	true AS contact_visible, l.email, l.phone_e164 AS phone, l.linkedin_url,
	p.created_at AS purchased_at, p.id::text AS purchase_id`
	q.where = append(q.where, "p.workspace_id = "+q.arg(workspaceID)+"::uuid")
	return q
}

// arg adds a parameter and returns its placeholder.
func (q *leadQuery) arg(v any) string {
	q.args = append(q.args, v)
	return "$" + strconv.Itoa(len(q.args))
}

// and adds a condition; each ? in cond becomes the placeholder of the next of vals.
func (q *leadQuery) and(cond string, vals ...any) {
	var b strings.Builder
	for _, v := range vals {
		i := strings.IndexByte(cond, '?')
		b.WriteString(cond[:i])
		b.WriteString(q.arg(v))
		cond = cond[i+1:]
	}
	b.WriteString(cond)
	q.where = append(q.where, "("+b.String()+")")
}

// Columns a filter condition is on (condition.column): the facets leave out their own, the
// ordered walk of a browse takes the conditions on its sort column as index bounds.
const (
	colIndustry     = "industry"
	colCountry      = "country"
	colSeniority    = "seniority"
	colCompanySize  = "company_size"
	colVerification = "verification_status"
	colTitle        = "title"
	colPrice        = "price_credits"
	colCreated      = "created_at"
	colPartner      = "partner_id"
	// colEnumerated is the column of a condition every lead passes (enumerate): no facet's.
	colEnumerated = ""
)

// condition is one filter condition in SQL, its parameters already added to the query.
type condition struct {
	column string
	sql    string
}

// filter adds f's conditions. Errors: INVALID_INPUT.
func (q *leadQuery) filter(f Filter) error {
	conds, err := q.conditions(f)
	if err != nil {
		return err
	}
	for _, c := range conds {
		q.where = append(q.where, c.sql)
	}
	return nil
}

// conditions returns f's conditions, each with its parameters added to q, in a fixed order (the
// statement's text depends only on which filters are set). Errors: INVALID_INPUT.
func (q *leadQuery) conditions(f Filter) ([]condition, error) {
	var out []condition
	add := func(column, cond string, vals ...any) {
		var b strings.Builder
		for _, v := range vals {
			i := strings.IndexByte(cond, '?')
			b.WriteString(cond[:i])
			b.WriteString(q.arg(v))
			cond = cond[i+1:]
		}
		b.WriteString(cond)
		out = append(out, condition{column: column, sql: "(" + b.String() + ")"})
	}
	if len(f.Industries) > 0 {
		add(colIndustry, "l.industry = ANY(?::text[])", f.Industries)
	}
	if len(f.Countries) > 0 {
		upper := make([]string, len(f.Countries))
		for i, c := range f.Countries {
			upper[i] = strings.ToUpper(strings.TrimSpace(c))
		}
		add(colCountry, "l.country = ANY(?::text[])", upper)
	}
	if len(f.Seniorities) > 0 {
		add(colSeniority, "l.seniority = ANY(?::text[])", f.Seniorities)
	}
	if len(f.CompanySizes) > 0 {
		add(colCompanySize, "l.company_size = ANY(?::text[])", f.CompanySizes)
	}
	if len(f.VerificationStatuses) > 0 {
		add(colVerification, "l.verification_status = ANY(?::text[])", f.VerificationStatuses)
	}
	if f.MinPriceCredits != nil && f.MaxPriceCredits != nil && *f.MinPriceCredits > *f.MaxPriceCredits {
		return nil, apperr.New(apperr.InvalidInput, "minPriceCredits is above maxPriceCredits")
	}
	// Prices are integers: the bounds are cast to integer (out-of-range bounds clamped first) so
	// that they are index conditions of the integer price column.
	price := "l.price_credits"
	if q.priceAsTest {
		price = "(l.price_credits + 0)" // an expression no index has
	}
	if f.MinPriceCredits != nil {
		add(colPrice, price+" >= ?::integer", clampInt32(*f.MinPriceCredits))
	}
	if f.MaxPriceCredits != nil {
		add(colPrice, price+" <= ?::integer", clampInt32(*f.MaxPriceCredits))
	}
	if f.CreatedAfter != nil {
		add(colCreated, "l.created_at > ?::timestamptz", *f.CreatedAfter)
	}
	if len(f.PartnerIDs) > 0 {
		for _, id := range f.PartnerIDs {
			if err := apperr.CheckID(id); err != nil {
				return nil, err
			}
		}
		add(colPartner, "l.partner_id = ANY(?::uuid[])", f.PartnerIDs)
	}
	// Last: the most expensive test, reached only by rows that passed the others.
	if t := strings.TrimSpace(f.TitleContains); t != "" {
		if utf8.RuneCountInString(t) > 100 {
			return nil, apperr.New(apperr.InvalidInput, "titleContains has at most 100 characters")
		}
		if q.titleIDs != nil {
			if int64(len(q.titleIDs)) <= titleRanges.Load() {
				add(colTitle, "l.title_id = ANY(?::integer[])", q.titleIDs)
			} else {
				// Too many titles to read a range of each: a test of every entry (a hashed
				// array), so not an index condition.
				add(colTitle, "(l.title_id + 0) = ANY(?::integer[])", q.titleIDs)
			}
		} else {
			cond, arg := titleTest("l.title", t)
			add(colTitle, cond, arg)
		}
	}
	if q.enumerated != nil {
		for _, e := range enumerate(f, q.enumerated, q.titleIDs) {
			add(colEnumerated, e.cond, e.values)
		}
	}
	return out, nil
}

// enumerated is a condition that holds for every lead (a column's every value), with its values.
type enumerated struct {
	cond   string
	values []string
}

// bitmapRead prepares q for the facets' exact counts through bitmaps (preferBitmaps): when f
// has a condition the GIN index answers (a facet, a title word with trigrams), a price range
// becomes a test of the rows it finds, so that the planner cannot add a bitmap of the price
// index's range (a quarter of the table for a common range) to each facet value's count. A
// price range alone stays an index range. The browse candidate set and totalCount keep the
// price an index condition: measured at 1M, the planner chooses well between the two there.
func (q *leadQuery) bitmapRead(f Filter) *leadQuery {
	q.priceAsTest = len(f.Industries) > 0 || len(f.Countries) > 0 || len(f.Seniorities) > 0 ||
		len(f.CompanySizes) > 0 || len(f.VerificationStatuses) > 0 || hasTrigrams(f.TitleContains)
	return q
}

// hasTrigrams reports whether a title word is long enough for pg_trgm to find its rows through
// the trigram index: a shorter one makes the index read every entry.
func hasTrigrams(word string) bool { return utf8.RuneCountInString(strings.TrimSpace(word)) >= 3 }

// clampInt32 is n within PostgreSQL's integer range.
func clampInt32(n int) int32 {
	return int32(max(min(n, math.MaxInt32), math.MinInt32))
}

var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// sql renders the query with orderBy and, when limit is positive, LIMIT limit. The limit is part
// of the text, not a parameter, so that the planner sees it: a page of 51 rows wants the keyset
// index, which an unknown limit would not get.
func (q *leadQuery) sql(orderBy string, limit int) string {
	var b strings.Builder
	b.Grow(1024)
	b.WriteString("SELECT ")
	b.WriteString(q.columns)
	b.WriteString("\nFROM ")
	b.WriteString(q.from)
	for i, w := range q.where {
		if i == 0 {
			b.WriteString("\nWHERE ")
		} else {
			b.WriteString(" AND ")
		}
		b.WriteString(w)
	}
	if orderBy != "" {
		b.WriteString("\nORDER BY ")
		b.WriteString(orderBy)
	}
	if limit > 0 {
		b.WriteString("\nLIMIT ")
		b.WriteString(strconv.Itoa(limit))
	}
	return b.String()
}

// run executes the query and appends its rows to leads.
func (q *leadQuery) run(ctx context.Context, bdb *bun.DB, orderBy string, limit int, leads []Lead) ([]Lead, error) {
	err := db.QueryPrepared(ctx, bdb, q.sql(orderBy, limit), q.args, func(rows pgx.Rows) error {
		var l Lead
		dest := l.dest(q.purchases)
		for rows.Next() {
			l = Lead{}
			if err := rows.Scan(dest...); err != nil {
				return err
			}
			leads = append(leads, l)
		}
		return nil
	})
	return leads, err
}

// dest returns the scan destinations of the columns a read returns (leadColumns and the contact
// columns; with purchases, the purchase's time and id too).
func (l *Lead) dest(purchases bool) []any {
	dest := []any{&l.ID, &l.PartnerID, &l.FirstName, &l.LastName, &l.Title, &l.Seniority, &l.Department,
		&l.CompanyName, &l.CompanyDomain, &l.CompanySize, &l.Industry, &l.Country, &l.Region, &l.City,
		&l.PriceCredits, &l.MaxBuyers, &l.BuyersCount, &l.VerificationStatus, &l.Status, &l.EmailPreview,
		&l.PhonePreview, &l.CreatedAt, &l.VerifiedAt, &l.ContactVisible, &l.Email, &l.Phone, &l.LinkedinURL}
	if purchases {
		dest = append(dest, &l.PurchasedAt, &l.PurchaseID)
	}
	return dest
}

// PurchasedJoin reads, in a statement of another package, the lead each of its rows names, when
// a workspace bought it (JoinPurchased).
type PurchasedJoin struct {
	// Joins are the JOIN clauses to write after the caller's table (aliases lp and l).
	Joins string
	// Columns are the lead's columns with full contact data and the purchase's time and id, for
	// the caller's select list, in the order PurchasedDest scans them.
	Columns string
}

// JoinPurchased returns the joins and columns that read, for each row of a statement on another
// table, the lead whose id is the SQL expression leadID, if the workspace whose id is the SQL
// expression workspaceID bought it: an inner join, so that a row naming a lead the workspace did
// not buy drops out instead of showing contact data. One statement then reads a workspace's list
// with its leads, and PostgreSQL joins them as it sees fit (hash joins for a whole list, lookups
// for a page) rather than being handed the leads' ids afterwards.
func JoinPurchased(leadID, workspaceID string) PurchasedJoin {
	return PurchasedJoin{
		Joins: "JOIN lead_purchases AS lp ON lp.lead_id = " + leadID + " AND lp.workspace_id = " + workspaceID +
			"\n\tJOIN leads AS l ON l.id = lp.lead_id",
		Columns: leadColumns + `,
	true AS contact_visible, l.email, l.phone_e164 AS phone, l.linkedin_url,
	lp.created_at AS purchased_at, lp.id::text AS purchase_id`,
	}
}

// PurchasedDest returns where JoinPurchased's columns scan into l, in their order.
func (l *Lead) PurchasedDest() []any { return l.dest(true) }

// PartnerIDsBought returns the distinct partners of the leads workspaceID bought, for a reader of
// its whole list that names them (an export) and looks them up once.
func PartnerIDsBought(ctx context.Context, db bun.IDB, workspaceID string) ([]string, error) {
	if err := apperr.CheckID(workspaceID); err != nil {
		return nil, err
	}
	var ids []string
	if err := db.NewRaw(`SELECT DISTINCT l.partner_id::text FROM lead_purchases AS p JOIN leads AS l ON l.id = p.lead_id
		WHERE p.workspace_id = ?`, workspaceID).Scan(ctx, &ids); err != nil {
		return nil, fmt.Errorf("partners of workspace %s: %w", workspaceID, err)
	}
	return ids, nil
}

package lead

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
)

// Locked is a lead held by Lock for a sale, with the sellable rule's answer for it.
type Locked struct {
	ID           string `bun:"id"`
	PartnerID    string `bun:"partner_id"`
	PriceCredits int64  `bun:"price_credits"`
	// IsForSale is the rule's first part: ACTIVE and not INVALID by verification.
	IsForSale bool `bun:"is_for_sale"`
	// IsSoldOut is the negation of the rule's second part: max_buyers workspaces bought it.
	IsSoldOut bool `bun:"is_sold_out"`
}

// IsSellable reports whether the lead can be bought: Sellable, as evaluated under the lock.
func (l Locked) IsSellable() bool { return l.IsForSale && !l.IsSoldOut }

// Lock locks the leads with ids (FOR UPDATE, in id order, so that two transactions locking
// overlapping sets cannot deadlock) and returns those that exist, in id order. The locks last
// until tx ends: no other sale changes their buyers count meanwhile.
func Lock(ctx context.Context, tx bun.IDB, ids []string) ([]Locked, error) {
	var locked []Locked
	if err := tx.NewRaw(`SELECT l.id, l.partner_id, l.price_credits,
		`+forSale+` AS is_for_sale, NOT (`+hasRoom+`) AS is_sold_out
		FROM leads AS l WHERE l.id IN (?) ORDER BY l.id FOR UPDATE`, bun.List(ids)).Scan(ctx, &locked); err != nil {
		return nil, fmt.Errorf("lock leads: %w", err)
	}
	return locked, nil
}

// AddBuyers counts one more buyer on each lead of ids. The caller has locked them (Lock) and
// checked that each is sellable: a lead that has no room left is not counted, and AddBuyers then
// fails (without naming it) so that tx is rolled back rather than a lead oversold.
func AddBuyers(ctx context.Context, tx bun.IDB, ids []string) error {
	res, err := tx.ExecContext(ctx, `UPDATE leads AS l SET buyers_count = l.buyers_count + 1, updated_at = now()
		WHERE l.id IN (?) AND `+hasRoom, bun.List(ids))
	if err != nil {
		return fmt.Errorf("count buyers: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("count buyers: %w", err)
	}
	if n != int64(len(ids)) {
		return fmt.Errorf("count buyers: %d of %d leads have no room left", int64(len(ids))-n, len(ids))
	}
	return nil
}

// New is a lead to insert. Fields left zero take the column's default where it has one: a random
// ID, seniority and company size UNKNOWN, MaxBuyers 3, Status ACTIVE, VerificationStatus PENDING,
// CreatedAt now. The normalised columns are the caller's (Normalize…); hash_key is computed from
// them by the leads_hash_key trigger and the previews are generated.
type New struct {
	bun.BaseModel `bun:"table:leads"`

	ID                      string    `bun:"id,nullzero"`
	PartnerID               string    `bun:"partner_id"`
	FirstName               string    `bun:"first_name"`
	LastName                string    `bun:"last_name"`
	Title                   string    `bun:"title"`
	Seniority               string    `bun:"seniority,nullzero"`
	Department              string    `bun:"department"`
	CompanyName             string    `bun:"company_name"`
	CompanyDomain           string    `bun:"company_domain"`
	CompanySize             string    `bun:"company_size,nullzero"`
	Industry                string    `bun:"industry"`
	Country                 string    `bun:"country"`
	Region                  string    `bun:"region"`
	City                    string    `bun:"city"`
	Email                   string    `bun:"email"`
	Phone                   string    `bun:"phone"`
	LinkedinURL             string    `bun:"linkedin_url"`
	EmailNormalized         string    `bun:"email_normalized"`
	CompanyDomainNormalized string    `bun:"company_domain_normalized"`
	PhoneE164               string    `bun:"phone_e164"`
	PriceCredits            int       `bun:"price_credits"`
	MaxBuyers               int       `bun:"max_buyers,nullzero"`
	Status                  string    `bun:"status,nullzero"`
	VerificationStatus      string    `bun:"verification_status,nullzero"`
	CreatedAt               time.Time `bun:"created_at,nullzero"`
}

// Insert writes leads in one statement and returns their ids in the same order. A lead whose
// hash_key another lead has fails the whole statement (leads_hash_key_key): callers that expect
// duplicates sort them out first, or load through InsertFrom.
func Insert(ctx context.Context, db bun.IDB, leads []New) ([]string, error) {
	if len(leads) == 0 {
		return nil, nil
	}
	rows := make([]New, len(leads))
	copy(rows, leads)
	if _, err := db.NewInsert().Model(&rows).Returning("id").Exec(ctx); err != nil {
		return nil, fmt.Errorf("insert leads: %w", err)
	}
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	return ids, nil
}

// InsertColumns are the columns InsertFrom writes, in the order its query must select them.
const InsertColumns = `id, partner_id, first_name, last_name, title, seniority, department,
	company_name, company_domain, company_size, industry, country, region, city,
	email, phone, linkedin_url, email_normalized, company_domain_normalized, phone_e164,
	price_credits, max_buyers, status, verification_status, created_at, updated_at`

// InsertFrom writes the leads that query selects — InsertColumns, in that order, with args for
// its placeholders — in one statement, and returns how many it wrote. Rows that conflict with an
// existing lead (same id or hash_key) are skipped. It is for set-based loads whose rows are made
// in SQL: the demo seed generates them there, and an upload can insert its staged rows. Loads
// side by side that may bring the same new titles add them first (AddTitles).
func InsertFrom(ctx context.Context, db bun.IDB, query string, args ...any) (int64, error) {
	res, err := db.ExecContext(ctx, "INSERT INTO leads ("+InsertColumns+")\n"+query+"\nON CONFLICT DO NOTHING", args...)
	if err != nil {
		return 0, fmt.Errorf("insert leads: %w", err)
	}
	return res.RowsAffected()
}

// Scope narrows Count; empty fields do not narrow it.
type Scope struct {
	IDs        []string
	PartnerIDs []string
}

// Count returns how many leads are in s: all leads, those of s.IDs, those of s.PartnerIDs.
func Count(ctx context.Context, db bun.IDB, s Scope) (int, error) {
	q := db.NewSelect().TableExpr("leads AS l").ColumnExpr("count(*)")
	if len(s.IDs) > 0 {
		q = q.Where("l.id = ANY(?::uuid[])", pgdialect.Array(s.IDs))
	}
	if len(s.PartnerIDs) > 0 {
		q = q.Where("l.partner_id = ANY(?::uuid[])", pgdialect.Array(s.PartnerIDs))
	}
	var n int
	if err := q.Scan(ctx, &n); err != nil {
		return 0, fmt.Errorf("count leads: %w", err)
	}
	return n, nil
}

// VerificationCount is how many of a partner's leads verification found VALID out of those it
// verified (not PENDING): the pass rate is Valid / Verified.
type VerificationCount struct {
	PartnerID string `bun:"partner_id"`
	Valid     int64  `bun:"valid"`
	Verified  int64  `bun:"verified"`
}

// VerificationCounts returns the counts of each of partnerIDs that has verified leads, in partner
// id order.
func VerificationCounts(ctx context.Context, db bun.IDB, partnerIDs []string) ([]VerificationCount, error) {
	var vs []VerificationCount
	if err := db.NewRaw(`SELECT l.partner_id,
			count(*) FILTER (WHERE l.verification_status = 'VALID') AS valid,
			count(*) FILTER (WHERE l.verification_status <> 'PENDING') AS verified
		FROM leads AS l WHERE l.partner_id = ANY(?::uuid[]) GROUP BY l.partner_id
		HAVING count(*) FILTER (WHERE l.verification_status <> 'PENDING') > 0
		ORDER BY l.partner_id`, pgdialect.Array(partnerIDs)).Scan(ctx, &vs); err != nil {
		return nil, fmt.Errorf("verification counts: %w", err)
	}
	return vs, nil
}

// Analyze refreshes the planner's statistics of the leads table, for after a bulk load: browse's
// plans depend on them. On a *bun.DB (not in a transaction) it vacuums the table too, which sets
// its visibility map: the first step of a browse is an index-only scan, which reads the table
// itself for every page the map does not mark all-visible (autovacuum would, later).
func Analyze(ctx context.Context, db bun.IDB) error {
	stmt := "ANALYZE leads"
	if _, ok := db.(*bun.DB); ok {
		stmt = "VACUUM (ANALYZE) leads"
	}
	if _, err := db.ExecContext(ctx, stmt); err != nil {
		return fmt.Errorf("analyze leads: %w", err)
	}
	return nil
}

package lead

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"
)

// Existing is a lead found by its dedup key, with who supplied it.
type Existing struct {
	HashKey   string `bun:"hash_key"`
	ID        string `bun:"id"`
	PartnerID string `bun:"partner_id"`
}

// MatchHashKeys returns the leads whose hash_key is one of those keysQuery selects (one text
// column, with args for its placeholders), in no particular order. It is the set-based lookup of
// an upload's dedup: the keys come from a table of the caller's, not through the client.
func MatchHashKeys(ctx context.Context, db bun.IDB, keysQuery string, args ...any) ([]Existing, error) {
	var found []Existing
	if err := db.NewRaw("SELECT l.hash_key, l.id, l.partner_id FROM leads AS l WHERE l.hash_key IN ("+keysQuery+")", args...).
		Scan(ctx, &found); err != nil {
		return nil, fmt.Errorf("leads by hash key: %w", err)
	}
	return found, nil
}

// Inserted is a lead InsertNew wrote.
type Inserted struct {
	ID      string `bun:"id"`
	HashKey string `bun:"hash_key"`
}

// NewColumns are the columns InsertNew writes, in the order its query must select them: a
// partner's data and the normalised contact columns. The others take their defaults: a random
// id, max_buyers 3, status ACTIVE, verification PENDING, created now; hash_key is the trigger's.
const NewColumns = `partner_id, first_name, last_name, title, seniority, department,
	company_name, company_domain, company_size, industry, country, region, city,
	email, phone, linkedin_url, email_normalized, company_domain_normalized, phone_e164, price_credits`

// InsertNew writes the leads that query selects — NewColumns, in that order, with args for its
// placeholders — except those whose hash_key a lead already has (ON CONFLICT (hash_key) DO
// NOTHING), and returns the ids and hash keys of those it wrote, in no particular order. A row
// whose key another transaction has just inserted waits for it: skipped if it commits, written if
// it rolls back. So two loads racing with one lead write it once, and the one that did not can
// tell (its key is not returned) and find the winner with MatchHashKeys.
//
// Rows are written in the order query gives them. Loads that may overlap must all order by
// hash_key: they then wait for each other's keys in one order and cannot deadlock.
//
// The rows' titles are added to lead_titles first (AddTitles), so query runs twice.
func InsertNew(ctx context.Context, db bun.IDB, query string, args ...any) ([]Inserted, error) {
	if err := addTitlesOf(ctx, db, query, args...); err != nil {
		return nil, err
	}
	var ins []Inserted
	if err := db.NewRaw("INSERT INTO leads ("+NewColumns+")\n"+query+"\nON CONFLICT (hash_key) DO NOTHING RETURNING id, hash_key",
		args...).Scan(ctx, &ins); err != nil {
		return nil, fmt.Errorf("insert leads: %w", err)
	}
	return ins, nil
}

// PartnerCounts are a partner's leads, counted for its stats.
type PartnerCounts struct {
	// Total is every lead the partner supplied.
	Total int64 `bun:"total"`
	// ForSale are those ACTIVE and not found INVALID by verification (the sellable rule's first
	// part), sold out or not.
	ForSale int64 `bun:"for_sale"`
	// Sold are those bought by at least one workspace.
	Sold int64 `bun:"sold"`
}

// CountsOf returns partnerID's lead counts.
func CountsOf(ctx context.Context, db bun.IDB, partnerID string) (PartnerCounts, error) {
	var c PartnerCounts
	if err := db.NewRaw(`SELECT count(*) AS total, count(*) FILTER (WHERE `+forSale+`) AS for_sale,
		count(*) FILTER (WHERE l.buyers_count > 0) AS sold
		FROM leads AS l WHERE l.partner_id = ?`, partnerID).Scan(ctx, &c); err != nil {
		return PartnerCounts{}, fmt.Errorf("lead counts of %s: %w", partnerID, err)
	}
	return c, nil
}

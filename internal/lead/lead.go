package lead

import "time"

// Lead is a lead as a buyer may see it. Email, Phone and LinkedinURL are empty unless
// ContactVisible: the query that loads a lead masks them in SQL for workspaces that did not buy it.
type Lead struct {
	ID                 string    `bun:"id"`
	PartnerID          string    `bun:"partner_id"`
	FirstName          string    `bun:"first_name"`
	LastName           string    `bun:"last_name"`
	Title              string    `bun:"title"`
	Seniority          string    `bun:"seniority"`
	Department         string    `bun:"department"`
	CompanyName        string    `bun:"company_name"`
	CompanyDomain      string    `bun:"company_domain"`
	CompanySize        string    `bun:"company_size"`
	Industry           string    `bun:"industry"`
	Country            string    `bun:"country"`
	Region             string    `bun:"region"`
	City               string    `bun:"city"`
	PriceCredits       int       `bun:"price_credits"`
	MaxBuyers          int       `bun:"max_buyers"`
	BuyersCount        int       `bun:"buyers_count"`
	VerificationStatus string    `bun:"verification_status"`
	Status             string    `bun:"status"`
	EmailPreview       string    `bun:"email_preview"`
	PhonePreview       string    `bun:"phone_preview"`
	CreatedAt          time.Time `bun:"created_at"`
	// VerifiedAt is when verification last gave the lead a verdict; nil while it never has.
	VerifiedAt *time.Time `bun:"verified_at"`

	ContactVisible bool   `bun:"contact_visible"`
	Email          string `bun:"email"`
	Phone          string `bun:"phone"`
	LinkedinURL    string `bun:"linkedin_url"`

	// PurchasedAt and PurchaseID are set for leads read through a workspace's purchases.
	PurchasedAt time.Time `bun:"purchased_at"`
	PurchaseID  string    `bun:"purchase_id"`
}

// The sellable rule (DESIGN §4), written once: a lead can be bought while it is for sale (ACTIVE
// and not found INVALID by verification) and has room (sold to fewer than max_buyers workspaces).
// Browse filters on Sellable; Lock reports the two parts of the same SQL for each locked lead, so
// that a purchase can tell a lead that is not for sale (NOT_FOUND) from a sold-out one (SOLD_OUT).
const (
	// forSale is the first part of the rule, on alias l.
	forSale = "l.status = 'ACTIVE' AND l.verification_status <> 'INVALID'"
	// hasRoom is the second part of the rule, on alias l.
	hasRoom = "l.buyers_count < l.max_buyers"
	// Sellable is the SQL condition (on alias l) for a lead that can still be bought. The browse
	// indexes are partial on exactly this predicate (migrations/…_init and …_faceted_browse:
	// leads_sellable_*_idx):
	// a change here must change them too, or browse loses its index plans.
	Sellable = forSale + " AND " + hasRoom
)

package dbtest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/leadmarket/leadmarket/internal/credit"
	"github.com/leadmarket/leadmarket/internal/lead"
	"github.com/leadmarket/leadmarket/internal/pipeline"
)

// Factories write unique rows (random names and e-mails), so tests sharing a database never see
// each other's data. Zero option fields take the defaults documented on each.

var seq atomic.Int64

func unique(prefix string) string {
	return fmt.Sprintf("%s-%d-%s", prefix, seq.Add(1), uuid.NewString()[:8])
}

// User is a user made by CreateUser; Subject is its JWT sub.
type User struct {
	ID      string
	Email   string
	Subject string
}

// UserOpts configure CreateUser.
type UserOpts struct {
	// IsPlatformAdmin sets the admin flag. Default false.
	IsPlatformAdmin bool
}

// CreateUser inserts a user with a random e-mail and subject.
func CreateUser(t testing.TB, db bun.IDB, o UserOpts) User {
	t.Helper()
	u := User{Email: unique("user") + "@example.test", Subject: uuid.NewString()}
	err := db.NewRaw("INSERT INTO users (auth_subject, email, is_platform_admin) VALUES (?, ?, ?) RETURNING id",
		u.Subject, u.Email, o.IsPlatformAdmin).Scan(context.Background(), &u.ID)
	if err != nil {
		t.Fatalf("create user: %v", err)
	}
	return u
}

// WorkspaceOpts configure CreateWorkspace.
type WorkspaceOpts struct {
	// Owner becomes the OWNER. Default: a new user.
	Owner *User
	// Credits is the starting balance, written as a ledger ADJUSTMENT. Default 0.
	Credits int64
}

// CreateWorkspace inserts a workspace with its owner and balance; it returns the workspace id and
// the owner.
func CreateWorkspace(t testing.TB, db bun.IDB, o WorkspaceOpts) (string, User) {
	t.Helper()
	ctx := context.Background()
	owner := CreateUserIfNil(t, db, o.Owner)
	var id string
	if err := db.NewRaw("INSERT INTO workspaces (name, created_by) VALUES (?, ?) RETURNING id", unique("ws"), owner.ID).
		Scan(ctx, &id); err != nil {
		t.Fatalf("create workspace: %v", err)
	}
	AddMember(t, db, id, owner.ID, "OWNER")
	if err := credit.OpenBalance(ctx, db, id); err != nil {
		t.Fatalf("create balance: %v", err)
	}
	if o.Credits != 0 {
		if _, err := credit.Apply(ctx, db, credit.Entry{
			WorkspaceID: id, Kind: credit.KindAdjustment, Amount: o.Credits, Reference: "test:" + id, AllowNegative: true,
		}); err != nil {
			t.Fatalf("create ledger entry: %v", err)
		}
	}
	return id, owner
}

// CreateUserIfNil returns *u, or a new user when u is nil.
func CreateUserIfNil(t testing.TB, db bun.IDB, u *User) User {
	t.Helper()
	if u != nil {
		return *u
	}
	return CreateUser(t, db, UserOpts{})
}

// AddMember adds userID to a workspace with role.
func AddMember(t testing.TB, db bun.IDB, workspaceID, userID, role string) {
	t.Helper()
	if _, err := db.ExecContext(context.Background(),
		"INSERT INTO workspace_members (workspace_id, user_id, role) VALUES (?, ?, ?)", workspaceID, userID, role); err != nil {
		t.Fatalf("add member: %v", err)
	}
}

// PartnerOpts configure CreatePartner.
type PartnerOpts struct {
	// CommissionRate defaults to 0.30.
	CommissionRate float64
	// PassRate is the verification pass rate. Default 0.
	PassRate float64
}

// CreatePartner inserts a partner and returns its id.
func CreatePartner(t testing.TB, db bun.IDB, o PartnerOpts) string {
	t.Helper()
	if o.CommissionRate == 0 {
		o.CommissionRate = 0.30
	}
	var id string
	if err := db.NewRaw("INSERT INTO partners (name, commission_rate, verification_pass_rate) VALUES (?, ?, ?) RETURNING id",
		unique("partner"), o.CommissionRate, o.PassRate).Scan(context.Background(), &id); err != nil {
		t.Fatalf("create partner: %v", err)
	}
	return id
}

// LeadOpts configure CreateLead.
type LeadOpts struct {
	// PartnerID is required.
	PartnerID string
	// PriceCredits defaults to 10.
	PriceCredits int
	// MaxBuyers defaults to 3.
	MaxBuyers int
	// Industry defaults to "Software"; Country to "US"; Title to "Head of Sales".
	Industry, Country, Title string
	// Seniority defaults to "DIRECTOR"; CompanySize to "SIZE_51_200".
	Seniority, CompanySize string
	// VerificationStatus defaults to "VALID"; Status to "ACTIVE".
	VerificationStatus, Status string
	// CreatedAt defaults to now.
	CreatedAt time.Time
}

// CreateLead inserts a lead with unique contact data and returns its id.
func CreateLead(t testing.TB, db bun.IDB, o LeadOpts) string {
	t.Helper()
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	if o.PriceCredits == 0 {
		o.PriceCredits = 10
	}
	if o.MaxBuyers == 0 {
		o.MaxBuyers = 3
	}
	def(&o.Industry, "Software")
	def(&o.Country, "US")
	def(&o.Title, "Head of Sales")
	def(&o.Seniority, "DIRECTOR")
	def(&o.CompanySize, "SIZE_51_200")
	def(&o.VerificationStatus, "VALID")
	def(&o.Status, "ACTIVE")
	if o.CreatedAt.IsZero() {
		o.CreatedAt = time.Now()
	}
	local := unique("lead")
	email := local + "@acme-" + local[len(local)-8:] + ".example"
	domain := email[strings.IndexByte(email, '@')+1:]
	ids, err := lead.Insert(context.Background(), db, []lead.New{{
		PartnerID: o.PartnerID, FirstName: "Jane", LastName: "Doe", Title: o.Title, Seniority: o.Seniority,
		CompanyName: "Acme", CompanyDomain: domain, CompanySize: o.CompanySize, Industry: o.Industry, Country: o.Country,
		Email: email, Phone: "+14155552671", LinkedinURL: "https://linkedin.com/in/jane",
		EmailNormalized: email, CompanyDomainNormalized: domain, PhoneE164: "+14155552671",
		PriceCredits: o.PriceCredits, MaxBuyers: o.MaxBuyers, Status: o.Status, VerificationStatus: o.VerificationStatus,
		CreatedAt: o.CreatedAt,
	}})
	if err != nil {
		t.Fatalf("create lead: %v", err)
	}
	return ids[0]
}

// PurchasesOpts configure CreatePurchasedLeads.
type PurchasesOpts struct {
	// PartnerID supplies the leads. Default: a new partner.
	PartnerID string
	// BuyerID is the user recorded as the buyer. Default: a new user.
	BuyerID string
	// Edit, when set, changes lead i (0-based) before it is inserted (its name, company, e-mail…;
	// keep the e-mail unique).
	Edit func(i int, l *lead.New)
}

// CreatePurchasedLeads inserts n leads bought by workspaceID, set-based (a handful of statements
// whatever n), and returns the purchases' ids — the workspace leads' ids — in creation order.
// Purchase i happened i minutes before now, so the newest purchase is the first id. It writes no
// ledger entries: it makes data to work on, not a sale.
func CreatePurchasedLeads(t testing.TB, db bun.IDB, workspaceID string, n int, o PurchasesOpts) []string {
	t.Helper()
	ctx := context.Background()
	if o.PartnerID == "" {
		o.PartnerID = CreatePartner(t, db, PartnerOpts{})
	}
	if o.BuyerID == "" {
		o.BuyerID = CreateUser(t, db, UserOpts{}).ID
	}
	prefix := unique("bought")
	leads := make([]lead.New, n)
	for i := range leads {
		email := fmt.Sprintf("%s-%d@%s.example", prefix, i, prefix)
		domain := prefix + ".example"
		leads[i] = lead.New{
			PartnerID: o.PartnerID, FirstName: "Jane", LastName: fmt.Sprintf("Doe %d", i), Title: "Head of Sales",
			Seniority: "DIRECTOR", CompanyName: "Acme", CompanyDomain: domain, CompanySize: "SIZE_51_200",
			Industry: "Software", Country: "US", Email: email, Phone: "+14155552671",
			LinkedinURL: "https://linkedin.com/in/jane", EmailNormalized: email, CompanyDomainNormalized: domain,
			PhoneE164: "+14155552671", PriceCredits: 10,
		}
		if o.Edit != nil {
			o.Edit(i, &leads[i])
		}
	}
	var leadIDs []string
	for batch := range slices.Chunk(leads, 5000) {
		ids, err := lead.Insert(ctx, db, batch)
		if err != nil {
			t.Fatalf("create purchased leads: %v", err)
		}
		leadIDs = append(leadIDs, ids...)
	}
	var rows []struct {
		ID           string    `bun:"id"`
		LeadID       string    `bun:"lead_id"`
		CreditsSpent int64     `bun:"credits_spent"`
		CreatedAt    time.Time `bun:"created_at"`
	}
	if err := db.NewRaw(`INSERT INTO lead_purchases (cart_id, workspace_id, lead_id, buyer_user_id, credits_spent, created_at)
		SELECT gen_random_uuid(), ?, l.id, ?, 10, now() - make_interval(mins => l.n::int - 1)
		FROM unnest(?::uuid[]) WITH ORDINALITY AS l(id, n)
		ORDER BY l.n
		RETURNING id, lead_id, credits_spent, created_at`, workspaceID, o.BuyerID, pgdialect.Array(leadIDs)).Scan(ctx, &rows); err != nil {
		t.Fatalf("create purchases: %v", err)
	}
	purchases := make([]pipeline.Purchase, len(rows))
	byLead := make(map[string]string, len(rows))
	for i, r := range rows {
		purchases[i] = pipeline.Purchase{ID: r.ID, WorkspaceID: workspaceID, LeadID: r.LeadID, CreditsSpent: r.CreditsSpent,
			PurchasedAt: r.CreatedAt}
		byLead[r.LeadID] = r.ID
	}
	if err := pipeline.AddPurchases(ctx, db, purchases); err != nil {
		t.Fatalf("create workspace leads: %v", err)
	}
	ids := make([]string, len(leadIDs))
	for i, l := range leadIDs {
		ids[i] = byLead[l]
	}
	return ids
}

// Package seed writes Leadmarket's deterministic demo data: a platform admin, three buyer
// workspaces with an owner, a member and starting credits each, five partners with a member each,
// the credit packages, and any number of leads. Every id is a UUIDv5 of a stable name, so the same
// ids come out on every machine and on every run; running it again changes nothing.
package seed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/internal/credit"
)

// Role names of the demo users in Result.
const (
	RolePlatformAdmin   = "PLATFORM_ADMIN"
	RoleWorkspaceOwner  = "WORKSPACE_OWNER"
	RoleWorkspaceMember = "WORKSPACE_MEMBER"
	RolePartnerMember   = "PARTNER_MEMBER"
)

// DefaultLeads is the number of leads Demo writes when Options.Leads is 0.
const DefaultLeads = 10_000

var (
	// idNamespace names every seeded row: id = UUIDv5(idNamespace, "<kind>:<stable name>").
	idNamespace = uuid.NewSHA1(uuid.NameSpaceURL, []byte("https://leadmarket.dev/seed/id"))
	// subjectNamespace names the demo users' auth subjects (SubjectForEmail).
	subjectNamespace = uuid.NewSHA1(uuid.NameSpaceURL, []byte("https://leadmarket.dev/seed/subject"))
)

// Options tune Demo.
type Options struct {
	// Leads is how many demo leads should exist; default DefaultLeads (10,000) when 0. Leads are
	// numbered 1..Leads, so a larger number adds the missing ones and a smaller one removes none.
	Leads int
	// Logger receives progress; default: discarded.
	Logger *slog.Logger
}

// DemoUser is a seeded user and what it may do.
type DemoUser struct {
	Email string
	// Role is one of RolePlatformAdmin, RoleWorkspaceOwner, RoleWorkspaceMember, RolePartnerMember.
	Role string
	// Subject is the user's auth subject, SubjectForEmail(Email): a token with this "sub" and
	// Email signs in as this user.
	Subject string
	UserID  string
	// WorkspaceID is the workspace of a workspace owner or member; empty otherwise.
	WorkspaceID string
	// PartnerID is the partner of a partner member; empty otherwise.
	PartnerID       string
	IsPlatformAdmin bool
}

// Result is what Demo left in the database.
type Result struct {
	// Users are the demo users: the admin, then each workspace's owner and member, then each
	// partner's member.
	Users []DemoUser
	// Leads is how many leads the demo partners have after seeding.
	Leads int
}

// SubjectForEmail returns the auth subject ("sub") of the demo user with email: a UUIDv5 of the
// trimmed, lower-cased e-mail. The token command uses it too, so a printed token matches the
// seeded user.
func SubjectForEmail(email string) string {
	return uuid.NewSHA1(subjectNamespace, []byte(strings.ToLower(strings.TrimSpace(email)))).String()
}

// stableID returns the deterministic id of the seeded row kind:name.
func stableID(kind, name string) string {
	return uuid.NewSHA1(idNamespace, []byte(kind+":"+name)).String()
}

type demoWorkspace struct {
	slug, name     string
	startingCredit int64
}

var demoWorkspaces = []demoWorkspace{
	{slug: "acme", name: "Acme Sales", startingCredit: 500},
	{slug: "globex", name: "Globex Growth", startingCredit: 250},
	{slug: "initech", name: "Initech Outbound", startingCredit: 100},
}

type demoPartner struct {
	slug, name string
	// commissionRate is the partner's base share of a sale's value.
	commissionRate string
	// leadWeight is the partner's share of the leads, in twentieths.
	leadWeight int
	// verification is the per-mille of the partner's leads in each verification status, in the
	// order of verificationStatuses; it sets the partner's pass rate (96 %, 91 %, 80 %, 70 %, 60 %).
	verification [6]int
}

var demoPartners = []demoPartner{
	{slug: "northwind", name: "Northwind Data", commissionRate: "0.3000", leadWeight: 6, verification: [6]int{672, 300, 12, 6, 5, 5}},
	{slug: "contoso", name: "Contoso Leads", commissionRate: "0.3000", leadWeight: 5, verification: [6]int{600, 340, 25, 15, 10, 10}},
	{slug: "fabrikam", name: "Fabrikam Lists", commissionRate: "0.2500", leadWeight: 4, verification: [6]int{480, 400, 50, 30, 20, 20}},
	{slug: "tailspin", name: "Tailspin Prospects", commissionRate: "0.3000", leadWeight: 3, verification: [6]int{420, 400, 60, 50, 40, 30}},
	{slug: "wingtip", name: "Wingtip Signals", commissionRate: "0.3500", leadWeight: 2, verification: [6]int{330, 450, 80, 60, 40, 40}},
}

// verificationStatuses is the order of demoPartner.verification.
var verificationStatuses = []string{"VALID", "PENDING", "CATCH_ALL", "RISKY", "UNKNOWN", "INVALID"}

type demoPackage struct {
	slug, name string
	credits    int
	priceCents int
}

var demoPackages = []demoPackage{
	{slug: "starter", name: "Starter", credits: 100, priceCents: 4900},
	{slug: "growth", name: "Growth", credits: 500, priceCents: 19900},
	{slug: "scale", name: "Scale", credits: 2000, priceCents: 69900},
}

const adminEmail = "admin@leadmarket.test"

// Demo writes the demo data into db and returns the demo users. It is idempotent: rows that exist
// are left as they are (the users' subjects and admin flag are set again), credits are granted
// once per workspace, and only missing leads are added. The fixed rows are written in one
// transaction; leads are written in batches of 50,000, one statement each (two at a time on a
// *bun.DB), then ANALYZEd.
func Demo(ctx context.Context, db bun.IDB, opts Options) (*Result, error) {
	if opts.Leads < 0 {
		return nil, fmt.Errorf("seed: leads must not be negative, got %d", opts.Leads)
	}
	if opts.Leads == 0 {
		opts.Leads = DefaultLeads
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	start := time.Now()
	res := &Result{}
	err := db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		users, err := seedAccounts(ctx, tx)
		res.Users = users
		return err
	})
	if err != nil {
		return nil, err
	}
	log.Info("seed: accounts ready", "users", len(res.Users), "workspaces", len(demoWorkspaces),
		"partners", len(demoPartners), "packages", len(demoPackages))
	if res.Leads, err = seedLeads(ctx, db, opts.Leads, log); err != nil {
		return nil, err
	}
	log.Info("seed: done", "leads", res.Leads, "elapsed", time.Since(start).Round(time.Millisecond))
	return res, nil
}

// seedAccounts writes users, workspaces, memberships, starting credits, partners and packages.
func seedAccounts(ctx context.Context, tx bun.IDB) ([]DemoUser, error) {
	var users []DemoUser
	admin, err := ensureUser(ctx, tx, adminEmail, true)
	if err != nil {
		return nil, err
	}
	users = append(users, DemoUser{Email: adminEmail, Role: RolePlatformAdmin, Subject: SubjectForEmail(adminEmail),
		UserID: admin, IsPlatformAdmin: true})

	for _, w := range demoWorkspaces {
		owner, member := "owner@"+w.slug+".test", "member@"+w.slug+".test"
		ownerID, err := ensureUser(ctx, tx, owner, false)
		if err != nil {
			return nil, err
		}
		memberID, err := ensureUser(ctx, tx, member, false)
		if err != nil {
			return nil, err
		}
		wsID := stableID("workspace", w.slug)
		if _, err := tx.ExecContext(ctx, `INSERT INTO workspaces (id, name, created_by) VALUES (?, ?, ?)
			ON CONFLICT (id) DO NOTHING`, wsID, w.name, ownerID); err != nil {
			return nil, fmt.Errorf("seed workspace %s: %w", w.name, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO workspace_members (workspace_id, user_id, role)
			VALUES (?, ?, 'OWNER'), (?, ?, 'MEMBER') ON CONFLICT (workspace_id, user_id) DO NOTHING`,
			wsID, ownerID, wsID, memberID); err != nil {
			return nil, fmt.Errorf("seed members of %s: %w", w.name, err)
		}
		if err := grantStartingCredits(ctx, tx, wsID, w.startingCredit); err != nil {
			return nil, err
		}
		users = append(users,
			DemoUser{Email: owner, Role: RoleWorkspaceOwner, Subject: SubjectForEmail(owner), UserID: ownerID, WorkspaceID: wsID},
			DemoUser{Email: member, Role: RoleWorkspaceMember, Subject: SubjectForEmail(member), UserID: memberID, WorkspaceID: wsID})
	}

	for _, p := range demoPartners {
		email := "team@" + p.slug + ".test"
		userID, err := ensureUser(ctx, tx, email, false)
		if err != nil {
			return nil, err
		}
		partnerID := stableID("partner", p.slug)
		if _, err := tx.ExecContext(ctx, `INSERT INTO partners (id, name, commission_rate) VALUES (?, ?, ?::numeric)
			ON CONFLICT (id) DO NOTHING`, partnerID, p.name, p.commissionRate); err != nil {
			return nil, fmt.Errorf("seed partner %s: %w", p.name, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO partner_members (partner_id, user_id) VALUES (?, ?)
			ON CONFLICT (partner_id, user_id) DO NOTHING`, partnerID, userID); err != nil {
			return nil, fmt.Errorf("seed member of %s: %w", p.name, err)
		}
		users = append(users, DemoUser{Email: email, Role: RolePartnerMember, Subject: SubjectForEmail(email),
			UserID: userID, PartnerID: partnerID})
	}

	for _, p := range demoPackages {
		if _, err := tx.ExecContext(ctx, `INSERT INTO credit_packages (id, name, credits, price_cents, currency, active)
			VALUES (?, ?, ?, ?, 'usd', true) ON CONFLICT (id) DO NOTHING`,
			stableID("package", p.slug), p.name, p.credits, p.priceCents); err != nil {
			return nil, fmt.Errorf("seed package %s: %w", p.name, err)
		}
	}
	return users, nil
}

// ensureUser upserts the demo user with email and returns its id: the deterministic one for a new
// user, the existing one for a user who was there first (e.g. provisioned by a token). The auth
// subject is always set to SubjectForEmail so that demo tokens sign in as this user.
func ensureUser(ctx context.Context, tx bun.IDB, email string, isPlatformAdmin bool) (string, error) {
	var id string
	err := tx.NewRaw(`INSERT INTO users (id, auth_subject, email, is_platform_admin) VALUES (?, ?, ?, ?)
		ON CONFLICT (email) DO UPDATE SET auth_subject = EXCLUDED.auth_subject,
			is_platform_admin = users.is_platform_admin OR EXCLUDED.is_platform_admin,
			updated_at = CASE WHEN users.auth_subject IS DISTINCT FROM EXCLUDED.auth_subject
				OR users.is_platform_admin <> (users.is_platform_admin OR EXCLUDED.is_platform_admin)
				THEN now() ELSE users.updated_at END
		RETURNING id`,
		stableID("user", email), SubjectForEmail(email), email, isPlatformAdmin).Scan(ctx, &id)
	if err != nil {
		return "", fmt.Errorf("seed user %s: %w", email, err)
	}
	return id, nil
}

// grantStartingCredits gives a workspace its balance and its demo credits once: an ADJUSTMENT
// ledger entry with the reference "seed:<workspace id>" and the matching change of the balance,
// in tx. Granted before, it changes nothing.
func grantStartingCredits(ctx context.Context, tx bun.IDB, workspaceID string, credits int64) error {
	if err := credit.OpenBalance(ctx, tx, workspaceID); err != nil {
		return fmt.Errorf("seed balance of %s: %w", workspaceID, err)
	}
	_, err := credit.Apply(ctx, tx, credit.Entry{
		WorkspaceID: workspaceID, Kind: credit.KindAdjustment, Amount: credits,
		Reference: "seed:" + workspaceID, Description: "Demo starting credits",
	})
	if err != nil && !errors.Is(err, credit.ErrAlreadyApplied) {
		return fmt.Errorf("seed credits of %s: %w", workspaceID, err)
	}
	return nil
}

package seed_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/internal/dbtest"
	"github.com/leadmarket/leadmarket/internal/seed"
)

const testLeads = 2_000

// snapshot is what a seeded database holds, as the assertions compare it.
type snapshot struct {
	Admins, Users, Workspaces, WorkspaceMembers, Partners, PartnerMembers int
	ActivePackages, Leads, LedgerEntries                                  int
	Balances                                                              map[string]int64
	FirstLeadIDs                                                          []string
}

func takeSnapshot(ctx context.Context, t *testing.T, db bun.IDB) snapshot {
	t.Helper()
	var s snapshot
	counts := []struct {
		dst   *int
		query string
	}{
		{&s.Admins, "SELECT count(*) FROM users WHERE is_platform_admin"},
		{&s.Users, "SELECT count(*) FROM users"},
		{&s.Workspaces, "SELECT count(*) FROM workspaces"},
		{&s.WorkspaceMembers, "SELECT count(*) FROM workspace_members"},
		{&s.Partners, "SELECT count(*) FROM partners"},
		{&s.PartnerMembers, "SELECT count(*) FROM partner_members"},
		{&s.ActivePackages, "SELECT count(*) FROM credit_packages WHERE active"},
		{&s.Leads, "SELECT count(*) FROM leads"},
		{&s.LedgerEntries, "SELECT count(*) FROM credit_ledger"},
	}
	for _, c := range counts {
		require.NoError(t, db.NewRaw(c.query).Scan(ctx, c.dst), c.query)
	}
	var balances []struct {
		WorkspaceID string `bun:"workspace_id"`
		Credits     int64  `bun:"credits"`
	}
	require.NoError(t, db.NewRaw("SELECT workspace_id, credits FROM credit_balances").Scan(ctx, &balances))
	s.Balances = map[string]int64{}
	for _, b := range balances {
		s.Balances[b.WorkspaceID] = b.Credits
	}
	require.NoError(t, db.NewRaw("SELECT id FROM leads ORDER BY created_at, id LIMIT 20").Scan(ctx, &s.FirstLeadIDs))
	return s
}

func TestDemo(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := dbtest.FreshDB(t)

	res, err := seed.Demo(ctx, db, seed.Options{Leads: testLeads})
	require.NoError(t, err)
	require.Equal(t, testLeads, res.Leads)

	before := takeSnapshot(ctx, t, db)
	require.Equal(t, 1, before.Admins)
	require.Equal(t, 1+3*2+5, before.Users)
	require.Equal(t, 3, before.Workspaces)
	require.Equal(t, 6, before.WorkspaceMembers)
	require.Equal(t, 5, before.Partners)
	require.Equal(t, 5, before.PartnerMembers)
	require.GreaterOrEqual(t, before.ActivePackages, 3)
	require.Equal(t, testLeads, before.Leads)
	require.Equal(t, 3, before.LedgerEntries)
	require.Len(t, before.FirstLeadIDs, 20)

	t.Run("users", func(t *testing.T) {
		require.Len(t, res.Users, 12)
		roles := map[string]int{}
		for _, u := range res.Users {
			roles[u.Role]++
			require.Equal(t, seed.SubjectForEmail(u.Email), u.Subject, u.Email)
			var row struct {
				ID          string `bun:"id"`
				AuthSubject string `bun:"auth_subject"`
				IsAdmin     bool   `bun:"is_platform_admin"`
			}
			require.NoError(t, db.NewRaw("SELECT id, auth_subject, is_platform_admin FROM users WHERE email = ?", u.Email).Scan(ctx, &row))
			require.Equal(t, u.UserID, row.ID, u.Email)
			require.Equal(t, u.Subject, row.AuthSubject, u.Email)
			require.Equal(t, u.IsPlatformAdmin, row.IsAdmin, u.Email)
			switch u.Role {
			case seed.RoleWorkspaceOwner, seed.RoleWorkspaceMember:
				want := map[string]string{seed.RoleWorkspaceOwner: "OWNER", seed.RoleWorkspaceMember: "MEMBER"}[u.Role]
				var role string
				require.NoError(t, db.NewRaw("SELECT role FROM workspace_members WHERE workspace_id = ? AND user_id = ?",
					u.WorkspaceID, u.UserID).Scan(ctx, &role))
				require.Equal(t, want, role, u.Email)
				require.Empty(t, u.PartnerID)
			case seed.RolePartnerMember:
				var n int
				require.NoError(t, db.NewRaw("SELECT count(*) FROM partner_members WHERE partner_id = ? AND user_id = ?",
					u.PartnerID, u.UserID).Scan(ctx, &n))
				require.Equal(t, 1, n, u.Email)
				require.Empty(t, u.WorkspaceID)
			case seed.RolePlatformAdmin:
				require.Equal(t, "admin@leadmarket.test", u.Email)
				require.True(t, u.IsPlatformAdmin)
			}
		}
		require.Equal(t, map[string]int{seed.RolePlatformAdmin: 1, seed.RoleWorkspaceOwner: 3,
			seed.RoleWorkspaceMember: 3, seed.RolePartnerMember: 5}, roles)
		_, err := uuid.Parse(seed.SubjectForEmail("Owner@Acme.test "))
		require.NoError(t, err)
		require.Equal(t, seed.SubjectForEmail("owner@acme.test"), seed.SubjectForEmail(" Owner@ACME.test"))
	})

	t.Run("balances equal the ledger", func(t *testing.T) {
		var rows []struct {
			WorkspaceID string `bun:"workspace_id"`
			Credits     int64  `bun:"credits"`
			LedgerSum   int64  `bun:"ledger_sum"`
		}
		require.NoError(t, db.NewRaw(`SELECT w.id AS workspace_id, coalesce(b.credits, -1) AS credits,
			coalesce((SELECT sum(amount) FROM credit_ledger l WHERE l.workspace_id = w.id), 0) AS ledger_sum
			FROM workspaces w LEFT JOIN credit_balances b ON b.workspace_id = w.id`).Scan(ctx, &rows))
		require.Len(t, rows, 3)
		for _, r := range rows {
			require.Positive(t, r.Credits, r.WorkspaceID)
			require.Equal(t, r.LedgerSum, r.Credits, r.WorkspaceID)
		}
		var refs int
		require.NoError(t, db.NewRaw(`SELECT count(*) FROM credit_ledger
			WHERE kind = 'ADJUSTMENT' AND reference = 'seed:' || workspace_id AND amount = balance_after`).Scan(ctx, &refs))
		require.Equal(t, 3, refs)
	})

	t.Run("packages", func(t *testing.T) {
		var pkgs []struct {
			Name       string `bun:"name"`
			Credits    int    `bun:"credits"`
			PriceCents int    `bun:"price_cents"`
			Currency   string `bun:"currency"`
		}
		require.NoError(t, db.NewRaw("SELECT name, credits, price_cents, currency FROM credit_packages WHERE active ORDER BY credits").
			Scan(ctx, &pkgs))
		require.GreaterOrEqual(t, len(pkgs), 3)
		require.Equal(t, "Starter", pkgs[0].Name)
		require.Equal(t, 100, pkgs[0].Credits)
		require.Equal(t, 4900, pkgs[0].PriceCents)
		require.Equal(t, "usd", pkgs[0].Currency)
	})

	t.Run("leads", func(t *testing.T) {
		var bad int
		require.NoError(t, db.NewRaw(`SELECT count(*) FROM leads
			WHERE hash_key <> lead_hash_key(email_normalized, company_domain_normalized, phone_e164)
				OR hash_key !~ '^[0-9a-f]{64}$'`).Scan(ctx, &bad))
		require.Zero(t, bad, "leads whose hash_key is not lead_hash_key(...)")

		var stats struct {
			Partners      int       `bun:"partners"`
			Industries    int       `bun:"industries"`
			Countries     int       `bun:"countries"`
			Seniorities   int       `bun:"seniorities"`
			Sizes         int       `bun:"sizes"`
			Statuses      int       `bun:"statuses"`
			Emails        int       `bun:"emails"`
			MinPrice      int       `bun:"min_price"`
			MaxPrice      int       `bun:"max_price"`
			CheapShare    float64   `bun:"cheap_share"`
			MaxBuyers3    float64   `bun:"max_buyers_3"`
			MaxBuyersKind int       `bun:"max_buyers_kinds"`
			Oldest        time.Time `bun:"oldest"`
			Newest        time.Time `bun:"newest"`
			BadEmails     int       `bun:"bad_emails"`
			Phones        int       `bun:"phones"`
		}
		require.NoError(t, db.NewRaw(`SELECT count(DISTINCT partner_id) AS partners, count(DISTINCT industry) AS industries,
			count(DISTINCT country) AS countries, count(DISTINCT seniority) AS seniorities,
			count(DISTINCT company_size) AS sizes, count(DISTINCT verification_status) AS statuses,
			count(DISTINCT email_normalized) AS emails, min(price_credits) AS min_price, max(price_credits) AS max_price,
			avg((price_credits <= 10)::int) AS cheap_share, avg((max_buyers = 3)::int) AS max_buyers_3,
			count(DISTINCT max_buyers) AS max_buyers_kinds, min(created_at) AS oldest, max(created_at) AS newest,
			count(*) FILTER (WHERE email <> email_normalized OR split_part(email, '@', 2) <> company_domain_normalized
				OR company_domain <> company_domain_normalized) AS bad_emails,
			count(*) FILTER (WHERE phone_e164 <> '') AS phones
			FROM leads`).Scan(ctx, &stats))
		require.Equal(t, 5, stats.Partners)
		require.Equal(t, 12, stats.Industries)
		require.Equal(t, 10, stats.Countries)
		require.Equal(t, 8, stats.Seniorities)
		require.Equal(t, 8, stats.Sizes)
		require.Equal(t, 6, stats.Statuses)
		require.Equal(t, testLeads, stats.Emails)
		require.Equal(t, 1, stats.MinPrice)
		require.LessOrEqual(t, stats.MaxPrice, 50)
		require.Greater(t, stats.CheapShare, 0.5, "prices should skew low")
		require.Greater(t, stats.MaxBuyers3, 0.7)
		require.Equal(t, 3, stats.MaxBuyersKind)
		require.Zero(t, stats.BadEmails)
		require.Greater(t, stats.Phones, testLeads*8/10)
		epoch := time.Date(2026, time.November, 1, 0, 0, 0, 0, time.UTC)
		require.False(t, stats.Newest.After(epoch))
		require.True(t, stats.Oldest.After(epoch.Add(-90*24*time.Hour)))
		require.Greater(t, stats.Newest.Sub(stats.Oldest), 80*24*time.Hour)

		var leadIDs []string
		require.NoError(t, db.NewRaw("SELECT id FROM leads ORDER BY email_normalized").Scan(ctx, &leadIDs))
		want := map[string]bool{}
		for i := 1; i <= testLeads; i++ {
			want[seed.LeadID(i)] = true
		}
		for _, id := range leadIDs {
			require.True(t, want[id], "unexpected lead id %s", id)
		}

		var rates []float64
		require.NoError(t, db.NewRaw("SELECT verification_pass_rate FROM partners ORDER BY verification_pass_rate DESC").Scan(ctx, &rates))
		require.Greater(t, rates[0], 0.9, "the best partner earns a pass-rate bonus")
		require.Less(t, rates[len(rates)-1], 0.75)
	})

	t.Run("running again changes nothing", func(t *testing.T) {
		again, err := seed.Demo(ctx, db, seed.Options{Leads: testLeads})
		require.NoError(t, err)
		require.Equal(t, res, again)
		require.Equal(t, before, takeSnapshot(ctx, t, db))
	})

	t.Run("a larger number adds the missing leads", func(t *testing.T) {
		more, err := seed.Demo(ctx, db, seed.Options{Leads: testLeads + 500})
		require.NoError(t, err)
		require.Equal(t, testLeads+500, more.Leads)
		after := takeSnapshot(ctx, t, db)
		require.Equal(t, testLeads+500, after.Leads)
		require.Equal(t, before.Balances, after.Balances)
		require.Equal(t, before.LedgerEntries, after.LedgerEntries)
	})

	t.Run("same ids on another database", func(t *testing.T) {
		other := dbtest.FreshDB(t)
		res2, err := seed.Demo(ctx, other, seed.Options{Leads: testLeads})
		require.NoError(t, err)
		require.Equal(t, res.Users, res2.Users)
		s2 := takeSnapshot(ctx, t, other)
		require.Equal(t, before.FirstLeadIDs, s2.FirstLeadIDs)
		require.Equal(t, before.Balances, s2.Balances)
	})
}

// TestDemoKeepsExistingUser checks that a demo user who signed in before the seed (provisioned
// with a random id) keeps its id and gets the demo subject and memberships.
func TestDemoKeepsExistingUser(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tx := dbtest.TestTx(t)
	var existing string
	require.NoError(t, tx.NewRaw("INSERT INTO users (email) VALUES ('owner@acme.test') RETURNING id").Scan(ctx, &existing))

	res, err := seed.Demo(ctx, tx, seed.Options{Leads: 10})
	require.NoError(t, err)
	require.Equal(t, 10, res.Leads)
	for _, u := range res.Users {
		if u.Email == "owner@acme.test" {
			require.Equal(t, existing, u.UserID)
			var role string
			require.NoError(t, tx.NewRaw("SELECT role FROM workspace_members WHERE workspace_id = ? AND user_id = ?",
				u.WorkspaceID, u.UserID).Scan(ctx, &role))
			require.Equal(t, "OWNER", role)
		}
	}
}

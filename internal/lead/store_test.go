package lead_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/leadmarket/leadmarket/internal/dbtest"
	"github.com/leadmarket/leadmarket/internal/lead"
)

// TestLock_AnswersTheSellableRule checks that Lock's answer for each lead is the browse predicate's:
// IsSellable exactly for the leads ListSellable returns.
func TestLock_AnswersTheSellableRule(t *testing.T) {
	t.Parallel()
	db := dbtest.DB(t)
	ctx := context.Background()
	partnerID := dbtest.CreatePartner(t, db, dbtest.PartnerOpts{})
	ids := []string{
		dbtest.CreateLead(t, db, dbtest.LeadOpts{PartnerID: partnerID}),
		dbtest.CreateLead(t, db, dbtest.LeadOpts{PartnerID: partnerID, Status: "INACTIVE"}),
		dbtest.CreateLead(t, db, dbtest.LeadOpts{PartnerID: partnerID, VerificationStatus: "INVALID"}),
		dbtest.CreateLead(t, db, dbtest.LeadOpts{PartnerID: partnerID, VerificationStatus: "PENDING", MaxBuyers: 2}),
		dbtest.CreateLead(t, db, dbtest.LeadOpts{PartnerID: partnerID, MaxBuyers: 1}),
	}
	_, err := db.ExecContext(ctx, "UPDATE leads SET buyers_count = 1 WHERE id IN (?, ?)", ids[3], ids[4])
	require.NoError(t, err)

	listed, _, err := lead.ListSellable(ctx, db, lead.SellableQuery{
		Viewer: lead.Viewer{UserID: dbtest.CreateUser(t, db, dbtest.UserOpts{}).ID}, Order: lead.OrderNewest,
		Filter: lead.Filter{PartnerIDs: []string{partnerID}}, Limit: 10,
	})
	require.NoError(t, err)
	browsable := map[string]bool{}
	for _, l := range listed {
		browsable[l.ID] = true
	}
	tx, err := db.BeginTx(ctx, nil)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback() }()
	locked, err := lead.Lock(ctx, tx, ids)
	require.NoError(t, err)
	require.Len(t, locked, len(ids))
	sellable := map[string]bool{}
	for _, l := range locked {
		sellable[l.ID] = l.IsSellable()
	}
	require.Equal(t, map[string]bool{ids[0]: true, ids[1]: false, ids[2]: false, ids[3]: true, ids[4]: false}, sellable)
	for _, id := range ids {
		require.Equal(t, sellable[id], browsable[id], id)
	}
}

// TestAddBuyers_NeverOversells checks the buyers count rises by one per lead, and that a lead with
// no room left fails the call instead of going past max_buyers.
func TestAddBuyers_NeverOversells(t *testing.T) {
	t.Parallel()
	db := dbtest.DB(t)
	ctx := context.Background()
	partnerID := dbtest.CreatePartner(t, db, dbtest.PartnerOpts{})
	a := dbtest.CreateLead(t, db, dbtest.LeadOpts{PartnerID: partnerID, MaxBuyers: 2})
	b := dbtest.CreateLead(t, db, dbtest.LeadOpts{PartnerID: partnerID, MaxBuyers: 1})
	require.NoError(t, lead.AddBuyers(ctx, db, []string{a, b}))
	require.Error(t, lead.AddBuyers(ctx, db, []string{a, b}), "b is full")
	var counts []int
	require.NoError(t, db.NewRaw("SELECT buyers_count FROM leads WHERE id IN (?, ?) ORDER BY max_buyers DESC", a, b).Scan(ctx, &counts))
	require.Equal(t, []int{2, 1}, counts, "the failed call counted a, which its transaction would roll back")
}

// TestInsertAndCount checks Insert's defaults and ids, InsertFrom's skipping of conflicts, Count's
// scopes and the verification counts.
func TestInsertAndCount(t *testing.T) {
	t.Parallel()
	tx := dbtest.TestTx(t)
	ctx := context.Background()
	partnerID := dbtest.CreatePartner(t, tx, dbtest.PartnerOpts{})
	ids, err := lead.Insert(ctx, tx, []lead.New{
		{PartnerID: partnerID, Email: "a@one.example", EmailNormalized: "a@one.example", PriceCredits: 5},
		{PartnerID: partnerID, Email: "b@two.example", EmailNormalized: "b@two.example", PriceCredits: 7,
			VerificationStatus: "VALID", Status: "INACTIVE", MaxBuyers: 1},
	})
	require.NoError(t, err)
	require.Len(t, ids, 2)
	var rows []struct {
		ID                 string `bun:"id"`
		Seniority          string `bun:"seniority"`
		MaxBuyers          int    `bun:"max_buyers"`
		Status             string `bun:"status"`
		VerificationStatus string `bun:"verification_status"`
		HashKey            string `bun:"hash_key"`
	}
	require.NoError(t, tx.NewRaw(`SELECT id, seniority, max_buyers, status, verification_status, hash_key
		FROM leads WHERE partner_id = ? ORDER BY price_credits`, partnerID).Scan(ctx, &rows))
	require.Len(t, rows, 2)
	require.Equal(t, ids, []string{rows[0].ID, rows[1].ID})
	require.Equal(t, "UNKNOWN", rows[0].Seniority)
	require.Equal(t, 3, rows[0].MaxBuyers)
	require.Equal(t, "ACTIVE", rows[0].Status)
	require.Equal(t, "PENDING", rows[0].VerificationStatus)
	require.Equal(t, lead.HashKey("a@one.example", "", ""), rows[0].HashKey, "the trigger computes hash_key")
	require.Equal(t, []any{1, "INACTIVE", "VALID"}, []any{rows[1].MaxBuyers, rows[1].Status, rows[1].VerificationStatus})

	// A row with the hash_key of an existing lead is skipped, a new one written.
	n, err := lead.InsertFrom(ctx, tx, `SELECT gen_random_uuid(), ?::uuid, '', '', '', 'UNKNOWN', '', '', '', 'UNKNOWN', '', '', '', '',
		e, '', '', e, '', '', 3, 3, 'ACTIVE', 'INVALID', now(), now() FROM unnest(?::text[]) AS e`,
		partnerID, pgdialect.Array([]string{"a@one.example", "c@three.example"}))
	require.NoError(t, err)
	require.Equal(t, int64(1), n)

	for _, tc := range []struct {
		scope lead.Scope
		want  int
	}{
		{lead.Scope{PartnerIDs: []string{partnerID}}, 3},
		{lead.Scope{IDs: ids}, 2},
		{lead.Scope{IDs: ids[:1], PartnerIDs: []string{partnerID}}, 1},
	} {
		got, err := lead.Count(ctx, tx, tc.scope)
		require.NoError(t, err)
		require.Equal(t, tc.want, got, "%+v", tc.scope)
	}
	all, err := lead.Count(ctx, tx, lead.Scope{})
	require.NoError(t, err)
	require.GreaterOrEqual(t, all, 3)

	counts, err := lead.VerificationCounts(ctx, tx, []string{partnerID})
	require.NoError(t, err)
	require.Equal(t, []lead.VerificationCount{{PartnerID: partnerID, Valid: 1, Verified: 2}}, counts)
}

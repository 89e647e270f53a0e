package lead_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/internal/dbtest"
	"github.com/leadmarket/leadmarket/internal/lead"
)

// requireTitleIDs checks that every lead's title_id names its own title in lead_titles.
func requireTitleIDs(t *testing.T, ctx context.Context, db bun.IDB) {
	t.Helper()
	var wrong []string
	require.NoError(t, db.NewRaw(`SELECT l.title FROM leads AS l LEFT JOIN lead_titles AS t ON t.id = l.title_id
		WHERE t.title IS DISTINCT FROM l.title`).Scan(ctx, &wrong))
	require.Empty(t, wrong, "leads whose title_id is not their title's")
}

// TestTitleIDs_FollowTheTitle checks the leads_title_id trigger: every write of a lead's title
// sets the id of that title in lead_titles, adding the title once when it is new, and a write of
// the id itself cannot make it name another title.
func TestTitleIDs_FollowTheTitle(t *testing.T) {
	t.Parallel()
	db := dbtest.DB(t)
	ctx := context.Background()
	partnerID := dbtest.CreatePartner(t, db, dbtest.PartnerOpts{})
	word := fmt.Sprintf("Title %d", time.Now().UnixNano())
	a := dbtest.CreateLead(t, db, dbtest.LeadOpts{PartnerID: partnerID, Title: word + " Alpha"})
	b := dbtest.CreateLead(t, db, dbtest.LeadOpts{PartnerID: partnerID, Title: word + " Alpha"})
	c := dbtest.CreateLead(t, db, dbtest.LeadOpts{PartnerID: partnerID, Title: word + " Beta"})
	idOf := func(leadID string) int {
		var id int
		require.NoError(t, db.NewRaw("SELECT title_id FROM leads WHERE id = ?", leadID).Scan(ctx, &id))
		return id
	}
	require.Equal(t, idOf(a), idOf(b), "one title, one id")
	require.NotEqual(t, idOf(a), idOf(c))
	var titles int
	require.NoError(t, db.NewRaw("SELECT count(*) FROM lead_titles WHERE title LIKE ?", word+"%").Scan(ctx, &titles))
	require.Equal(t, 2, titles, "each distinct title once")

	_, err := db.ExecContext(ctx, "UPDATE leads SET title = ? WHERE id = ?", word+" Beta", a)
	require.NoError(t, err)
	require.Equal(t, idOf(c), idOf(a), "a changed title takes its new title's id")
	_, err = db.ExecContext(ctx, "UPDATE leads SET title_id = ? WHERE id = ?", idOf(b), a)
	require.NoError(t, err)
	require.Equal(t, idOf(c), idOf(a), "the id follows the title, not a write of the id")
	requireTitleIDs(t, ctx, db)
}

// newLeadsSQL selects the leads of titles, one each (their e-mails made unique by tag), as
// lead.NewColumns in the titles' order, for lead.InsertNew; the partner id is its placeholder.
func newLeadsSQL(tag string, titles ...string) string {
	q := `SELECT ?::uuid, 'Jane', 'Doe', v.title, 'UNKNOWN', '', 'Acme', '', 'UNKNOWN', 'Software', 'US', '', '',
	v.email, '', '', v.email, '', '', 5 FROM (VALUES `
	for i, title := range titles {
		if i > 0 {
			q += ", "
		}
		q += fmt.Sprintf("(%d, '%s', '%s-%d@example.com')", i, title, tag, i)
	}
	return q + ") AS v(n, title, email) ORDER BY v.n"
}

// TestInsertNew_AddsNewTitlesWithoutDeadlock checks that two loads adding the same new titles,
// their leads in opposite orders, both commit: InsertNew adds a load's titles in the titles'
// order before its leads (as lead.AddTitles does). Were the titles added as each lead is
// written (by the trigger, in the order of the leads), the second load would hold Y while it
// waits for X, the first wait for Y, and PostgreSQL would end one of them with a deadlock.
func TestInsertNew_AddsNewTitlesWithoutDeadlock(t *testing.T) {
	t.Parallel()
	db := dbtest.FreshDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	partnerID := dbtest.CreatePartner(t, db, dbtest.PartnerOpts{})
	x, y := "Chief Ladder Officer", "Head of Rungs" // in lead_titles' order, x before y

	first, err := db.BeginTx(ctx, nil)
	require.NoError(t, err)
	defer func() { _ = first.Rollback() }()
	_, err = lead.InsertNew(ctx, first, newLeadsSQL("first-x", x), partnerID)
	require.NoError(t, err)

	// The second load's leads: y's first, then x's. It waits for x, which the first load holds.
	second := make(chan error, 1)
	go func() {
		second <- db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			_, err := lead.InsertNew(ctx, tx, newLeadsSQL("second", y, x), partnerID)
			return err
		})
	}()
	require.Eventually(t, func() bool {
		var waiting int
		err := db.NewRaw(`SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
			AND wait_event_type = 'Lock'`).Scan(ctx, &waiting)
		return err == nil && waiting == 1
	}, 30*time.Second, 10*time.Millisecond, "the second load waits for the first's new title")

	// The first load now adds y: it must not wait for the second, which would wait for it.
	_, err = lead.InsertNew(ctx, first, newLeadsSQL("first-y", y), partnerID)
	require.NoError(t, err)
	require.NoError(t, first.Commit())
	require.NoError(t, <-second)

	var leads, titles int
	require.NoError(t, db.NewRaw("SELECT count(*) FROM leads").Scan(ctx, &leads))
	require.Equal(t, 4, leads)
	require.NoError(t, db.NewRaw("SELECT count(*) FROM lead_titles WHERE title IN (?, ?)", x, y).Scan(ctx, &titles))
	require.Equal(t, 2, titles)
	requireTitleIDs(t, ctx, db)
}

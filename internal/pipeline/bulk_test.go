package pipeline_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/leadmarket/leadmarket/internal/apperr"
	"github.com/leadmarket/leadmarket/internal/dbtest"
	"github.com/leadmarket/leadmarket/internal/pipeline"
)

// The pipeline's moves, written out from the rule (DESIGN §7, issue 13) rather than from the code:
// forward one step, any open status to LOST, WON and LOST final except a reopen to NEW by an
// owner or admin.
var forward = map[[2]string]bool{
	{"NEW", "CONTACTED"}: true, {"CONTACTED", "QUALIFIED"}: true, {"QUALIFIED", "WON"}: true,
	{"NEW", "LOST"}: true, {"CONTACTED", "LOST"}: true, {"QUALIFIED", "LOST"}: true,
}
var reopen = map[[2]string]bool{{"WON", "NEW"}: true, {"LOST", "NEW"}: true}

// TestEveryTransition moves a lead of every status to every status, as a member and as an owner
// and an admin: each of the 25 moves is applied or skipped with the reason the rule gives, and a
// skipped lead keeps its status.
func TestEveryTransition(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := dbtest.TxDB(t)
	tm := newTeam(t, db, 0)
	for _, who := range []struct {
		name      string
		u         dbtest.User
		canReopen bool
	}{{"member", tm.member, false}, {"owner", tm.owner, true}, {"admin", tm.admin, true}} {
		for _, to := range pipeline.Statuses {
			leads := dbtest.CreatePurchasedLeads(t, db, tm.ws, len(pipeline.Statuses), dbtest.PurchasesOpts{})
			from := map[string]string{}
			for i, st := range pipeline.Statuses {
				set(t, db, leads[i:i+1], "status = ?", st)
				from[leads[i]] = st
			}
			res, err := tm.svc.BulkUpdateStatus(ctx, caller(who.u), tm.in(ids(leads...)), to)
			require.NoError(t, err)
			got, skipped := rows(t, db, leads), skips(res)
			applied := 0
			for _, id := range leads {
				move := [2]string{from[id], to}
				name := who.name + " " + from[id] + " -> " + to
				switch {
				case forward[move] || (reopen[move] && who.canReopen):
					applied++
					require.NotContains(t, skipped, id, name)
					require.Equal(t, to, got[id].Status, name)
					require.True(t, pipeline.CanMove(from[id], to, who.canReopen), name)
				case from[id] == to:
					require.Equal(t, pipeline.SkipUnchanged, skipped[id], name)
					require.Equal(t, to, got[id].Status, name)
				default:
					require.Equal(t, pipeline.SkipInvalidTransition, skipped[id], name)
					require.Equal(t, from[id], got[id].Status, name, "a refused move changes nothing")
					require.False(t, pipeline.CanMove(from[id], to, who.canReopen), name)
				}
			}
			require.Equal(t, len(leads), res.Requested)
			require.Equal(t, applied, res.Affected)
			require.Len(t, res.Skipped, len(leads)-applied)
		}
	}
}

// The audit entry of a status change: one per operation, with the count, the ids and each changed
// lead's old status.
func TestStatusAuditEntry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := dbtest.TxDB(t)
	tm := newTeam(t, db, 3)
	set(t, db, tm.leads[2:], "status = 'WON'")
	res, err := tm.svc.BulkUpdateStatus(ctx, caller(tm.member), tm.in(ids(tm.leads...)), "CONTACTED")
	require.NoError(t, err)
	require.Equal(t, 2, res.Affected)
	var entries []struct {
		Old      json.RawMessage `bun:"old_values"`
		New      json.RawMessage `bun:"new_values"`
		Metadata json.RawMessage `bun:"metadata"`
		Actor    string          `bun:"actor_user_id"`
	}
	require.NoError(t, db.NewRaw(`SELECT old_values, new_values, metadata, actor_user_id FROM audit_logs
		WHERE workspace_id = ? AND action = 'workspace_leads.status_updated'`, tm.ws).Scan(ctx, &entries))
	require.Len(t, entries, 1)
	require.Equal(t, tm.member.ID, entries[0].Actor)
	var old map[string]map[string]string
	require.NoError(t, json.Unmarshal(entries[0].Old, &old))
	require.Equal(t, map[string]map[string]string{tm.leads[0]: {"status": "NEW"}, tm.leads[1]: {"status": "NEW"}}, old)
	require.JSONEq(t, `{"status":"CONTACTED"}`, string(entries[0].New))
	var md struct {
		Operation string
		Count     int
		Requested int
		IDs       []string
		Skipped   map[string]int
	}
	require.NoError(t, json.Unmarshal(entries[0].Metadata, &md))
	require.Equal(t, "bulkUpdateLeadStatus", md.Operation)
	require.Equal(t, 2, md.Count)
	require.Equal(t, 3, md.Requested)
	require.ElementsMatch(t, tm.leads, md.IDs)
	require.Equal(t, map[string]int{"INVALID_TRANSITION": 1}, md.Skipped)
}

func TestTags(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := dbtest.TxDB(t)
	tm := newTeam(t, db, 4)
	c := caller(tm.member)

	// Trimmed, lower-cased, distinct, sorted.
	res, err := tm.svc.BulkAddTags(ctx, c, tm.in(ids(tm.leads[0])), []string{" VIP ", "Hot", "hot", "Zürich"})
	require.NoError(t, err)
	require.Equal(t, 1, res.Affected)
	require.Equal(t, []string{"hot", "vip", "zürich"}, rows(t, db, tm.leads)[tm.leads[0]].Tags)
	res, err = tm.svc.BulkAddTags(ctx, c, tm.in(ids(tm.leads[0])), []string{"VIP"})
	require.NoError(t, err)
	require.Equal(t, map[string]string{tm.leads[0]: pipeline.SkipUnchanged}, skips(res))

	// Tags that cannot be stored refuse the whole operation.
	for _, bad := range [][]string{{""}, {"   "}, {strings.Repeat("x", 41)}, {"a\tb"}, {"ok", "\x00"}, nil} {
		_, err := tm.svc.BulkAddTags(ctx, c, tm.in(ids(tm.leads[0])), bad)
		require.True(t, apperr.Is(err, apperr.InvalidInput), "%q: %v", bad, err)
	}
	twentyOne := make([]string, 21)
	for i := range twentyOne {
		twentyOne[i] = "t" + string(rune('a'+i))
	}
	_, err = tm.svc.BulkAddTags(ctx, c, tm.in(ids(tm.leads[0])), twentyOne)
	require.True(t, apperr.Is(err, apperr.InvalidInput), "21 tags: %v", err)
	_, err = tm.svc.BulkAddTags(ctx, c, tm.in(ids(tm.leads[3])), []string{strings.Repeat("é", 40)})
	require.NoError(t, err, "40 characters (80 bytes) is a tag")

	// 20 tags per lead: a lead with 19 takes one more, not two; one with 20 takes none new.
	set(t, db, tm.leads[1:3], "tags = ?::text[]", "{"+strings.Join(twentyOne[:19], ",")+"}")
	res, err = tm.svc.BulkAddTags(ctx, c, tm.in(ids(tm.leads[1])), []string{"new1", "new2"})
	require.NoError(t, err)
	require.Equal(t, map[string]string{tm.leads[1]: pipeline.SkipTagLimit}, skips(res))
	require.Len(t, rows(t, db, tm.leads)[tm.leads[1]].Tags, 19, "a lead over the limit is left as it was")
	res, err = tm.svc.BulkAddTags(ctx, c, tm.in(ids(tm.leads[1], tm.leads[2])), []string{"new1", twentyOne[0]})
	require.NoError(t, err)
	require.Equal(t, 2, res.Affected)
	require.Len(t, rows(t, db, tm.leads)[tm.leads[1]].Tags, 20)
	res, err = tm.svc.BulkAddTags(ctx, c, tm.in(ids(tm.leads[1])), []string{twentyOne[3]})
	require.NoError(t, err)
	require.Equal(t, map[string]string{tm.leads[1]: pipeline.SkipUnchanged}, skips(res), "at 20, a tag it has is no change")
	res, err = tm.svc.BulkAddTags(ctx, c, tm.in(ids(tm.leads[1])), []string{"one-more"})
	require.NoError(t, err)
	require.Equal(t, map[string]string{tm.leads[1]: pipeline.SkipTagLimit}, skips(res))

	// Removal matches the stored form; a lead with none of the tags is UNCHANGED.
	res, err = tm.svc.BulkRemoveTags(ctx, c, tm.in(ids(tm.leads[0], tm.leads[3])), []string{" HOT "})
	require.NoError(t, err)
	require.Equal(t, 1, res.Affected)
	require.Equal(t, map[string]string{tm.leads[3]: pipeline.SkipUnchanged}, skips(res))
	require.Equal(t, []string{"vip", "zürich"}, rows(t, db, tm.leads)[tm.leads[0]].Tags)

	// Filters match tags in the stored form too.
	res, err = tm.svc.BulkRemoveTags(ctx, c, tm.in(pipeline.Selection{Filter: &pipeline.Filter{TagsAll: []string{"VIP", "zürich"}}}),
		[]string{"vip"})
	require.NoError(t, err)
	require.Equal(t, 1, res.Requested)
	require.Equal(t, 1, res.Affected)
}

func TestAssign(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := dbtest.TxDB(t)
	tm := newTeam(t, db, 3)
	c := caller(tm.member)

	res, err := tm.svc.BulkAssign(ctx, c, tm.in(ids(tm.leads[:2]...)), tm.admin.ID)
	require.NoError(t, err)
	require.Equal(t, 2, res.Affected)
	res, err = tm.svc.BulkAssign(ctx, c, tm.in(ids(tm.leads...)), tm.admin.ID)
	require.NoError(t, err)
	require.Equal(t, 1, res.Affected)
	require.Equal(t, map[string]string{tm.leads[0]: pipeline.SkipUnchanged, tm.leads[1]: pipeline.SkipUnchanged}, skips(res))

	// A user who is not a member, of another workspace or of none, cannot be assigned.
	stranger := dbtest.CreateUser(t, db, dbtest.UserOpts{})
	_, otherOwner := dbtest.CreateWorkspace(t, db, dbtest.WorkspaceOpts{})
	for _, u := range []string{stranger.ID, otherOwner.ID, uuid.NewString()} {
		_, err = tm.svc.BulkAssign(ctx, c, tm.in(ids(tm.leads...)), u)
		require.True(t, apperr.Is(err, apperr.InvalidInput), "%v", err)
	}
	_, err = tm.svc.BulkAssign(ctx, c, tm.in(ids(tm.leads...)), "not-a-uuid")
	require.True(t, apperr.Is(err, apperr.InvalidInput), "%v", err)
	for _, r := range rows(t, db, tm.leads) {
		require.Equal(t, tm.admin.ID, r.Assignee, "a refused assignment changes nothing")
	}

	// Unassigning records who was assigned.
	res, err = tm.svc.BulkAssign(ctx, c, tm.in(pipeline.Selection{Filter: &pipeline.Filter{AssigneeIDs: []string{tm.admin.ID}}}), "")
	require.NoError(t, err)
	require.Equal(t, 3, res.Affected)
	var old string
	require.NoError(t, db.NewRaw(`SELECT old_values::text FROM audit_logs WHERE workspace_id = ? AND action = 'workspace_leads.assigned'
		AND metadata->'filter'->'assigneeIds' IS NOT NULL`, tm.ws).Scan(ctx, &old))
	var byID map[string]map[string]string
	require.NoError(t, json.Unmarshal([]byte(old), &byID))
	require.Len(t, byID, 3)
	for _, id := range tm.leads {
		require.Equal(t, tm.admin.ID, byID[id]["assigneeUserId"])
	}
	unassigned := true
	res, err = tm.svc.BulkAssign(ctx, c, tm.in(pipeline.Selection{Filter: &pipeline.Filter{Unassigned: &unassigned}}), tm.member.ID)
	require.NoError(t, err)
	require.Equal(t, 3, res.Affected)
}

func TestDeleteAndRestore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := dbtest.TxDB(t)
	tm := newTeam(t, db, 3)

	// Members may not delete, nor restore.
	_, err := tm.svc.BulkDelete(ctx, caller(tm.member), tm.in(ids(tm.leads...)))
	require.True(t, apperr.Is(err, apperr.Forbidden), "%v", err)
	for _, r := range rows(t, db, tm.leads) {
		require.False(t, r.Deleted)
	}

	res, err := tm.svc.BulkDelete(ctx, caller(tm.admin), tm.in(ids(tm.leads[:2]...)))
	require.NoError(t, err)
	require.Equal(t, 2, res.Affected)
	res, err = tm.svc.BulkDelete(ctx, caller(tm.owner), tm.in(ids(tm.leads...)))
	require.NoError(t, err)
	require.Equal(t, 1, res.Affected)
	require.Equal(t, map[string]string{tm.leads[0]: pipeline.SkipAlreadyDeleted, tm.leads[1]: pipeline.SkipAlreadyDeleted}, skips(res))

	// Off the list, unless asked for; other changes skip them.
	list := func(f pipeline.Filter) int {
		p, err := tm.svc.List(ctx, caller(tm.member), pipeline.ListParams{WorkspaceID: tm.ws, Filter: f})
		require.NoError(t, err)
		for _, w := range p.Items {
			require.Equal(t, w.DeletedAt != nil, f.IncludeDeleted, "only includeDeleted shows deleted leads")
		}
		return len(p.Items)
	}
	require.Zero(t, list(pipeline.Filter{}))
	require.Equal(t, 3, list(pipeline.Filter{IncludeDeleted: true}))
	res, err = tm.svc.BulkUpdateStatus(ctx, caller(tm.member), tm.in(ids(tm.leads[0])), "CONTACTED")
	require.NoError(t, err)
	require.Equal(t, map[string]string{tm.leads[0]: pipeline.SkipAlreadyDeleted}, skips(res))

	_, err = tm.svc.BulkRestore(ctx, caller(tm.member), tm.in(ids(tm.leads...)))
	require.True(t, apperr.Is(err, apperr.Forbidden), "%v", err)
	res, err = tm.svc.BulkRestore(ctx, caller(tm.admin), tm.in(ids(tm.leads[0])))
	require.NoError(t, err)
	require.Equal(t, 1, res.Affected)
	res, err = tm.svc.BulkRestore(ctx, caller(tm.admin), tm.in(ids(tm.leads[0])))
	require.NoError(t, err)
	require.Equal(t, map[string]string{tm.leads[0]: pipeline.SkipUnchanged}, skips(res))
	// A filter restores deleted leads only.
	res, err = tm.svc.BulkRestore(ctx, caller(tm.owner), tm.in(pipeline.Selection{Filter: &pipeline.Filter{}}))
	require.NoError(t, err)
	require.Equal(t, 2, res.Requested)
	require.Equal(t, 2, res.Affected)
	require.Equal(t, 3, list(pipeline.Filter{}))
}

// A deleted lead stays the workspace's: the purchase, the ledger and the audit trail stay, and it
// cannot be bought again.
func TestDeletedLeadIsStillOwned(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := dbtest.TxDB(t)
	tm := newTeam(t, db, 0)
	mkt := newMarketplace(db)
	partnerID := dbtest.CreatePartner(t, db, dbtest.PartnerOpts{})
	leadID := dbtest.CreateLead(t, db, dbtest.LeadOpts{PartnerID: partnerID})
	grant(t, db, tm.ws, 100)
	bought, err := mkt.PurchaseLeads(ctx, caller(tm.owner), purchase(tm.ws, "first", leadID))
	require.NoError(t, err)
	purchaseID := bought.Purchases[0].ID
	require.Equal(t, "NEW", rows(t, db, []string{purchaseID})[purchaseID].Status, "a purchase joins the pipeline at NEW")

	res, err := tm.svc.BulkDelete(ctx, caller(tm.owner), tm.in(ids(purchaseID)))
	require.NoError(t, err)
	require.Equal(t, 1, res.Affected)
	_, err = mkt.PurchaseLeads(ctx, caller(tm.owner), purchase(tm.ws, "again", leadID))
	require.True(t, apperr.Is(err, apperr.AlreadyPurchased), "%v", err)
	var n int
	require.NoError(t, db.NewRaw("SELECT count(*) FROM lead_purchases WHERE id = ?", purchaseID).Scan(ctx, &n))
	require.Equal(t, 1, n, "the purchase stays")
	require.NoError(t, db.NewRaw("SELECT count(*) FROM credit_ledger WHERE workspace_id = ? AND kind = 'SPEND'", tm.ws).Scan(ctx, &n))
	require.Equal(t, 1, n, "the ledger stays")
}

func TestInputRules(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := dbtest.TxDB(t)
	tm := newTeam(t, db, 1)
	c := caller(tm.owner)
	tooMany := make([]string, pipeline.MaxIDs+1)
	for i := range tooMany {
		tooMany[i] = uuid.NewString()
	}
	for name, sel := range map[string]pipeline.Selection{
		"neither":      {},
		"both":         {IDs: tm.leads, Filter: &pipeline.Filter{}},
		"empty ids":    {IDs: []string{}},
		"10,001 ids":   {IDs: tooMany},
		"malformed id": {IDs: []string{"42"}},
		"bad filter":   {Filter: &pipeline.Filter{Statuses: []string{"DONE"}}},
		"bad search":   {Filter: &pipeline.Filter{Search: strings.Repeat("x", 101)}},
		"bad assignee": {Filter: &pipeline.Filter{AssigneeIDs: []string{"me"}}},
	} {
		_, err := tm.svc.BulkUpdateStatus(ctx, c, tm.in(sel), "CONTACTED")
		require.True(t, apperr.Is(err, apperr.InvalidInput), "%s: %v", name, err)
	}
	_, err := tm.svc.BulkUpdateStatus(ctx, c, tm.in(ids(tm.leads...)), "DONE")
	require.True(t, apperr.Is(err, apperr.InvalidInput), "%v", err)

	// Repeated ids count once.
	res, err := tm.svc.BulkUpdateStatus(ctx, c, tm.in(ids(tm.leads[0], strings.ToUpper(tm.leads[0]))), "CONTACTED")
	require.NoError(t, err)
	require.Equal(t, 1, res.Requested)
	require.Equal(t, 1, res.Affected)

	// Non-members are refused, whatever they ask.
	stranger := dbtest.CreateUser(t, db, dbtest.UserOpts{})
	for _, op := range []func() error{
		func() error {
			_, err := tm.svc.BulkUpdateStatus(ctx, caller(stranger), tm.in(ids(tm.leads...)), "LOST")
			return err
		},
		func() error {
			_, err := tm.svc.BulkAddTags(ctx, caller(stranger), tm.in(ids(tm.leads...)), []string{"x"})
			return err
		},
		func() error { _, err := tm.svc.BulkDelete(ctx, caller(stranger), tm.in(ids(tm.leads...))); return err },
		func() error {
			_, err := tm.svc.List(ctx, caller(stranger), pipeline.ListParams{WorkspaceID: tm.ws})
			return err
		},
	} {
		require.True(t, apperr.Is(op(), apperr.Forbidden))
	}
	require.Equal(t, "CONTACTED", rows(t, db, tm.leads)[tm.leads[0]].Status)
}

// Ids of another workspace's leads are NOT_FOUND and never touched, by ids or by filter.
func TestCrossWorkspaceIDsAreNotFound(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := dbtest.TxDB(t)
	mine, theirs := newTeam(t, db, 2), newTeam(t, db, 2)
	var before []string
	require.NoError(t, db.NewRaw("SELECT updated_at::text FROM workspace_leads WHERE id = ANY(?::uuid[]) ORDER BY id",
		strings.Join([]string{"{", theirs.leads[0], ",", theirs.leads[1], "}"}, "")).Scan(ctx, &before))
	missing := uuid.NewString()
	all := append(append([]string{missing}, mine.leads...), theirs.leads...)
	c := caller(mine.owner)
	for name, op := range map[string]func(pipeline.BulkInput) (pipeline.BulkResult, error){
		"status": func(in pipeline.BulkInput) (pipeline.BulkResult, error) {
			return mine.svc.BulkUpdateStatus(ctx, c, in, "LOST")
		},
		"assign": func(in pipeline.BulkInput) (pipeline.BulkResult, error) {
			return mine.svc.BulkAssign(ctx, c, in, mine.member.ID)
		},
		"tags": func(in pipeline.BulkInput) (pipeline.BulkResult, error) {
			return mine.svc.BulkAddTags(ctx, c, in, []string{"x"})
		},
		"untag": func(in pipeline.BulkInput) (pipeline.BulkResult, error) {
			return mine.svc.BulkRemoveTags(ctx, c, in, []string{"x"})
		},
		"delete": func(in pipeline.BulkInput) (pipeline.BulkResult, error) { return mine.svc.BulkDelete(ctx, c, in) },
		"restore": func(in pipeline.BulkInput) (pipeline.BulkResult, error) {
			return mine.svc.BulkRestore(ctx, c, in)
		},
	} {
		res, err := op(mine.in(ids(all...)))
		require.NoError(t, err, name)
		require.Equal(t, len(all), res.Requested, name)
		s := skips(res)
		for _, id := range append([]string{missing}, theirs.leads...) {
			require.Equal(t, pipeline.SkipNotFound, s[id], name)
		}
		res, err = op(mine.in(pipeline.Selection{Filter: &pipeline.Filter{IncludeDeleted: true}}))
		require.NoError(t, err, name)
		require.LessOrEqual(t, res.Requested, len(mine.leads), name, "a filter matches this workspace's leads only")
	}
	var after []string
	require.NoError(t, db.NewRaw("SELECT updated_at::text FROM workspace_leads WHERE id = ANY(?::uuid[]) ORDER BY id",
		strings.Join([]string{"{", theirs.leads[0], ",", theirs.leads[1], "}"}, "")).Scan(ctx, &after))
	require.Equal(t, before, after, "the other workspace's leads were never updated")
	for _, r := range rows(t, db, theirs.leads) {
		require.Equal(t, row{ID: r.ID, Status: "NEW", Tags: []string{}}, r)
	}
}

package app_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/leadmarket/leadmarket/internal/dbtest"
	"github.com/leadmarket/leadmarket/internal/lead"
)

const workspaceLeadsQuery = `query($ws: ID!, $first: Int, $after: String, $filter: WorkspaceLeadFilter, $order: WorkspaceLeadOrder) {
  workspaceLeads(workspaceId: $ws, first: $first, after: $after, filter: $filter, orderBy: $order) {
    edges { cursor node { id status tags creditsSpent purchasedAt updatedAt deletedAt
      assignee { id email workspaces { role } }
      lead { id firstName email phone purchasedByMyWorkspace partner { name } } } }
    pageInfo { hasNextPage endCursor }
  }
}`

type workspaceLeadsPage struct {
	WorkspaceLeads struct {
		Edges []struct {
			Cursor string
			Node   struct {
				ID, Status   string
				Tags         []string
				CreditsSpent int
				PurchasedAt  time.Time
				DeletedAt    *time.Time
				Assignee     *struct {
					ID, Email  string
					Workspaces []struct{ Role string }
				}
				Lead struct {
					ID, FirstName          string
					Email, Phone           *string
					PurchasedByMyWorkspace bool
					Partner                struct{ Name string }
				}
			}
		}
		PageInfo struct {
			HasNextPage bool
			EndCursor   *string
		}
	}
}

const bulkStatus = `mutation($in: BulkUpdateLeadStatusInput!) { bulkUpdateLeadStatus(input: $in) { requested affected skipped { id reason } } }`

type bulkResponse struct {
	Requested, Affected int
	Skipped             []struct{ ID, Reason string }
}

// bulk runs a bulk mutation whose root field is field and returns its result.
func (s *apiServer) bulk(token, mutation, field string, in map[string]any) (bulkResponse, gqlResponse) {
	s.t.Helper()
	res := s.do(token, mutation, map[string]any{"in": in})
	var out map[string]bulkResponse
	if len(res.Errors) == 0 {
		res.decode(s.t, &out)
	}
	return out[field], res
}

// The list a workspace works: members only, full contact data, filters, orders and keyset pages
// that cover every lead once; an assignee is a User who shows no workspaces of its own.
func TestWorkspaceLeadsQuery(t *testing.T) {
	t.Parallel()
	api := newAPI(t, nil)
	db := api.db
	ws, owner := dbtest.CreateWorkspace(t, db, dbtest.WorkspaceOpts{})
	member := dbtest.CreateUser(t, db, dbtest.UserOpts{})
	dbtest.AddMember(t, db, ws, member.ID, "MEMBER")
	names := []string{"Ada Lovelace", "Grace Hopper", "Alan Turing", "Edsger Dijkstra", "Barbara Liskov", "Ken Thompson", "Ada Yonath"}
	leads := dbtest.CreatePurchasedLeads(t, db, ws, len(names), dbtest.PurchasesOpts{Edit: func(i int, l *lead.New) {
		_, _ = fmt.Sscanf(names[i], "%s %s", &l.FirstName, &l.LastName)
		l.CompanyName = "Company " + l.LastName
	}})
	tok, mtok := api.token(owner, false), api.token(member, false)

	_, res := api.bulk(mtok, bulkStatus, "bulkUpdateLeadStatus", map[string]any{"workspaceId": ws, "ids": leads[:3], "status": "CONTACTED"})
	require.Empty(t, res.Errors)
	_, res = api.bulk(mtok, `mutation($in: BulkAssignLeadsInput!) { bulkAssignLeads(input: $in) { affected } }`, "bulkAssignLeads",
		map[string]any{"workspaceId": ws, "ids": leads[1:4], "assigneeUserId": member.ID})
	require.Empty(t, res.Errors)
	_, res = api.bulk(mtok, `mutation($in: BulkAddLeadTagsInput!) { bulkAddLeadTags(input: $in) { affected } }`, "bulkAddLeadTags",
		map[string]any{"workspaceId": ws, "filter": map[string]any{"search": "ada"}, "tags": []string{" Founder "}})
	require.Empty(t, res.Errors)

	list := func(vars map[string]any) workspaceLeadsPage {
		t.Helper()
		vars["ws"] = ws
		var p workspaceLeadsPage
		api.do(tok, workspaceLeadsQuery, vars).decode(t, &p)
		return p
	}
	idsOf := func(p workspaceLeadsPage) []string {
		var out []string
		for _, e := range p.WorkspaceLeads.Edges {
			out = append(out, e.Node.ID)
		}
		return out
	}

	all := list(map[string]any{})
	require.Equal(t, leads, idsOf(all), "newest purchase first")
	for _, e := range all.WorkspaceLeads.Edges {
		require.NotNil(t, e.Node.Lead.Email, "full contact data")
		require.NotNil(t, e.Node.Lead.Phone)
		require.True(t, e.Node.Lead.PurchasedByMyWorkspace)
		require.NotEmpty(t, e.Node.Lead.Partner.Name)
		require.Equal(t, 10, e.Node.CreditsSpent)
	}
	second := all.WorkspaceLeads.Edges[1].Node
	require.Equal(t, "CONTACTED", second.Status)
	require.Equal(t, member.Email, second.Assignee.Email)
	require.Empty(t, second.Assignee.Workspaces, "another user's memberships are not shown")
	require.Nil(t, all.WorkspaceLeads.Edges[5].Node.Assignee)

	// Changed leads first (assigned, tagged: changed at once, so newest id first), then by purchase.
	byIDDesc := func(a, b string) []string {
		if a < b {
			return []string{b, a}
		}
		return []string{a, b}
	}
	for name, c := range map[string]struct {
		vars map[string]any
		want []string
	}{
		"statuses":    {map[string]any{"filter": map[string]any{"statuses": []string{"CONTACTED"}}}, leads[:3]},
		"assignee":    {map[string]any{"filter": map[string]any{"assigneeIds": []string{member.ID}}}, leads[1:4]},
		"unassigned":  {map[string]any{"filter": map[string]any{"unassigned": true}}, append([]string{leads[0]}, leads[4:]...)},
		"assigned":    {map[string]any{"filter": map[string]any{"unassigned": false}}, leads[1:4]},
		"tagsAny":     {map[string]any{"filter": map[string]any{"tagsAny": []string{"FOUNDER", "none"}}}, []string{leads[0], leads[6]}},
		"tagsAll":     {map[string]any{"filter": map[string]any{"tagsAll": []string{"founder", "none"}}}, nil},
		"search name": {map[string]any{"filter": map[string]any{"search": "hopper grace"}}, nil},
		"search full": {map[string]any{"filter": map[string]any{"search": "grace HOP"}}, leads[1:2]},
		"search co":   {map[string]any{"filter": map[string]any{"search": "company tur"}}, leads[2:3]},
		"search %":    {map[string]any{"filter": map[string]any{"search": "%"}}, nil},
		"purchased before": {map[string]any{"filter": map[string]any{"purchasedBefore": all.WorkspaceLeads.Edges[4].Node.PurchasedAt}},
			leads[5:]},
		"oldest": {map[string]any{"order": "PURCHASED_OLDEST", "first": 2}, []string{leads[6], leads[5]}},
		"updated": {map[string]any{"order": "UPDATED_NEWEST", "filter": map[string]any{"statuses": []string{"NEW"}}},
			append(byIDDesc(leads[3], leads[6]), leads[4], leads[5])},
	} {
		require.Equal(t, c.want, idsOf(list(c.vars)), name)
	}

	// Pages of 2 cover the list once, in every order.
	for _, order := range []string{"PURCHASED_NEWEST", "PURCHASED_OLDEST", "UPDATED_NEWEST"} {
		var seen []string
		vars := map[string]any{"first": 2, "order": order}
		for {
			p := list(vars)
			seen = append(seen, idsOf(p)...)
			if !p.WorkspaceLeads.PageInfo.HasNextPage {
				break
			}
			vars = map[string]any{"first": 2, "order": order, "after": *p.WorkspaceLeads.PageInfo.EndCursor}
		}
		require.ElementsMatch(t, leads, seen, order)
		require.Len(t, seen, len(leads), order)
	}
	res = api.do(tok, workspaceLeadsQuery, map[string]any{"ws": ws, "order": "PURCHASED_OLDEST",
		"after": *list(map[string]any{"first": 1}).WorkspaceLeads.PageInfo.EndCursor})
	require.Equal(t, "INVALID_INPUT", res.code(), "a cursor of another order")

	// Not a member: FORBIDDEN, and a security event.
	stranger := dbtest.CreateUser(t, db, dbtest.UserOpts{})
	res = api.do(api.token(stranger, false), workspaceLeadsQuery, map[string]any{"ws": ws})
	require.Equal(t, "FORBIDDEN", res.code())
	var denials int
	require.NoError(t, db.NewRaw(`SELECT count(*) FROM security_events WHERE user_id = ? AND kind = 'access_denied' AND workspace_id = ?`,
		stranger.ID, ws).Scan(context.Background(), &denials))
	require.Equal(t, 1, denials)
}

// A page's assignees, leads and partners load in batches: statements do not grow with the page.
func TestWorkspaceLeadsStatementsDoNotGrowWithPageSize(t *testing.T) {
	t.Parallel()
	api := newAPI(t, nil)
	db := api.db
	ws, owner := dbtest.CreateWorkspace(t, db, dbtest.WorkspaceOpts{})
	tok := api.token(owner, false)
	var members []string
	for range 3 {
		u := dbtest.CreateUser(t, db, dbtest.UserOpts{})
		dbtest.AddMember(t, db, ws, u.ID, "MEMBER")
		members = append(members, u.ID)
	}
	var leads []string
	for range 3 {
		leads = append(leads, dbtest.CreatePurchasedLeads(t, db, ws, 20, dbtest.PurchasesOpts{})...)
	}
	for i, m := range members {
		_, res := api.bulk(tok, `mutation($in: BulkAssignLeadsInput!) { bulkAssignLeads(input: $in) { affected } }`, "bulkAssignLeads",
			map[string]any{"workspaceId": ws, "ids": leads[i*20 : i*20+15], "assigneeUserId": m})
		require.Empty(t, res.Errors)
	}
	count := func(first int) int {
		res := api.do(tok, workspaceLeadsQuery, map[string]any{"ws": ws, "first": first})
		var p workspaceLeadsPage
		res.decode(t, &p)
		require.Len(t, p.WorkspaceLeads.Edges, first)
		return res.Statements
	}
	five, sixty := count(5), count(60)
	t.Logf("SQL statements: page of 5 = %d, page of 60 = %d", five, sixty)
	require.Equal(t, five, sixty)
	require.LessOrEqual(t, sixty, 5, "membership, page, leads, partners, assignees")
}

// 10,000 ids in one call, and a filter matching 12,000 leads: each one statement for the change
// (the request's statement count is the same as for one id), with exact counts and skips.
func TestBulkTenThousandIDsAndAFilterOfTwelveThousand(t *testing.T) {
	t.Parallel()
	api := newAPI(t, nil)
	db := api.db
	ws, owner := dbtest.CreateWorkspace(t, db, dbtest.WorkspaceOpts{})
	tok := api.token(owner, false)
	start := time.Now()
	leads := dbtest.CreatePurchasedLeads(t, db, ws, 12_000, dbtest.PurchasesOpts{})
	t.Logf("12,000 purchased leads made in %s", time.Since(start))
	otherWS, _ := dbtest.CreateWorkspace(t, db, dbtest.WorkspaceOpts{})
	foreign := dbtest.CreatePurchasedLeads(t, db, otherWS, 3, dbtest.PurchasesOpts{})

	// Warm up the caller's user lookup, then one id: the statements of one bulk operation.
	api.do(tok, `{ me { id } }`, nil)
	one, res := api.bulk(tok, bulkStatus, "bulkUpdateLeadStatus", map[string]any{"workspaceId": ws, "ids": leads[:1], "status": "CONTACTED"})
	require.Empty(t, res.Errors)
	require.Equal(t, 1, one.Affected)
	perOperation := res.Statements
	t.Logf("SQL statements of a bulk operation: %d", perOperation)
	require.LessOrEqual(t, perOperation, 6, "membership, the bulk statement, the audit entry, the event (and the transaction's own)")

	// 10,000 ids: 9,996 of ours (one already CONTACTED), 3 of another workspace, 1 that is nobody's.
	ids := append(append(append([]string{}, leads[:9996]...), foreign...), uuid.NewString())
	start = time.Now()
	r, res := api.bulk(tok, bulkStatus, "bulkUpdateLeadStatus", map[string]any{"workspaceId": ws, "ids": ids, "status": "CONTACTED"})
	t.Logf("10,000 ids in %s", time.Since(start))
	require.Empty(t, res.Errors)
	require.Equal(t, perOperation, res.Statements, "one statement for 10,000 ids")
	require.Equal(t, 10_000, r.Requested)
	require.Equal(t, 9_995, r.Affected)
	reasons := map[string]string{}
	for _, s := range r.Skipped {
		reasons[s.ID] = s.Reason
	}
	want := map[string]string{leads[0]: "UNCHANGED", ids[9999]: "NOT_FOUND"}
	for _, f := range foreign {
		want[f] = "NOT_FOUND"
	}
	require.Equal(t, want, reasons)

	// 10,001 ids are refused.
	_, res = api.bulk(tok, bulkStatus, "bulkUpdateLeadStatus", map[string]any{"workspaceId": ws,
		"ids": append(ids, uuid.NewString()), "status": "CONTACTED"})
	require.Equal(t, "INVALID_INPUT", res.code())

	// Select all 12,000 by a filter: the 2,004 NEW ones move, the others are UNCHANGED.
	r, res = api.bulk(tok, bulkStatus, "bulkUpdateLeadStatus", map[string]any{"workspaceId": ws, "filter": map[string]any{},
		"status": "CONTACTED"})
	require.Empty(t, res.Errors)
	require.Equal(t, perOperation, res.Statements, "one statement for 12,000 leads")
	require.Equal(t, 12_000, r.Requested)
	require.Equal(t, 2_004, r.Affected)
	require.Len(t, r.Skipped, 9_996)
	for _, s := range r.Skipped {
		require.Equal(t, "UNCHANGED", s.Reason)
	}
	r, res = api.bulk(tok, bulkStatus, "bulkUpdateLeadStatus", map[string]any{"workspaceId": ws,
		"filter": map[string]any{"statuses": []string{"CONTACTED"}}, "status": "QUALIFIED"})
	require.Empty(t, res.Errors)
	require.Equal(t, perOperation, res.Statements)
	require.Equal(t, 12_000, r.Requested)
	require.Equal(t, 12_000, r.Affected)
	require.Empty(t, r.Skipped)

	var qualified, untouched int
	ctx := context.Background()
	require.NoError(t, db.NewRaw("SELECT count(*) FROM workspace_leads WHERE workspace_id = ? AND status = 'QUALIFIED'", ws).Scan(ctx, &qualified))
	require.Equal(t, 12_000, qualified)
	require.NoError(t, db.NewRaw("SELECT count(*) FROM workspace_leads WHERE workspace_id = ? AND status = 'NEW'", otherWS).Scan(ctx, &untouched))
	require.Equal(t, 3, untouched, "the other workspace's leads were never touched")
	var entries int
	require.NoError(t, db.NewRaw("SELECT count(*) FROM audit_logs WHERE workspace_id = ? AND action = 'workspace_leads.status_updated'", ws).
		Scan(ctx, &entries))
	require.Equal(t, 4, entries, "one audit entry per operation")
}

// The mutations' refusals through GraphQL: exactly one of ids or filter, deletes by owners and
// admins only, non-members FORBIDDEN with a security event.
func TestBulkMutationRefusals(t *testing.T) {
	t.Parallel()
	api := newAPI(t, nil)
	db := api.db
	ws, owner := dbtest.CreateWorkspace(t, db, dbtest.WorkspaceOpts{})
	member := dbtest.CreateUser(t, db, dbtest.UserOpts{})
	dbtest.AddMember(t, db, ws, member.ID, "MEMBER")
	leads := dbtest.CreatePurchasedLeads(t, db, ws, 2, dbtest.PurchasesOpts{})
	tok, mtok := api.token(owner, false), api.token(member, false)

	for _, in := range []map[string]any{
		{"workspaceId": ws, "status": "LOST"},
		{"workspaceId": ws, "ids": leads, "filter": map[string]any{}, "status": "LOST"},
	} {
		_, res := api.bulk(tok, bulkStatus, "bulkUpdateLeadStatus", in)
		require.Equal(t, "INVALID_INPUT", res.code())
	}
	del := `mutation($in: BulkDeleteLeadsInput!) { bulkDeleteLeads(input: $in) { affected } }`
	_, res := api.bulk(mtok, del, "bulkDeleteLeads", map[string]any{"workspaceId": ws, "ids": leads})
	require.Equal(t, "FORBIDDEN", res.code(), "members do not delete")
	r, res := api.bulk(tok, del, "bulkDeleteLeads", map[string]any{"workspaceId": ws, "ids": leads})
	require.Empty(t, res.Errors)
	require.Equal(t, 2, r.Affected)
	var p workspaceLeadsPage
	api.do(tok, workspaceLeadsQuery, map[string]any{"ws": ws, "filter": map[string]any{"includeDeleted": true}}).decode(t, &p)
	require.Len(t, p.WorkspaceLeads.Edges, 2)
	require.NotNil(t, p.WorkspaceLeads.Edges[0].Node.DeletedAt)

	stranger := dbtest.CreateUser(t, db, dbtest.UserOpts{})
	_, res = api.bulk(api.token(stranger, false), bulkStatus, "bulkUpdateLeadStatus",
		map[string]any{"workspaceId": ws, "ids": leads, "status": "LOST"})
	require.Equal(t, "FORBIDDEN", res.code())
	var denials int
	require.NoError(t, db.NewRaw(`SELECT count(*) FROM security_events WHERE user_id = ? AND kind = 'access_denied'`, stranger.ID).
		Scan(context.Background(), &denials))
	require.Equal(t, 1, denials)
}

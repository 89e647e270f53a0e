package app_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/leadmarket/leadmarket/internal/dbtest"
)

// TestAccess_RolesByOperation is the access rules as one table: every role against every
// operation that checks one, through the real handler with ADMIN_REQUIRE_MFA on. A cell is "ok"
// (data returned), "null" (no error, nothing shown: the caller may not tell a hidden row from a
// missing one), or the refusal's extensions.code, with "/reason" when it carries one.
func TestAccess_RolesByOperation(t *testing.T) {
	t.Parallel()
	api := newAPI(t, nil)
	db := api.db
	ctx := context.Background()

	ws, owner := dbtest.CreateWorkspace(t, db, dbtest.WorkspaceOpts{Credits: 10_000})
	wsAdmin, wsMember := dbtest.CreateUser(t, db, dbtest.UserOpts{}), dbtest.CreateUser(t, db, dbtest.UserOpts{})
	dbtest.AddMember(t, db, ws, wsAdmin.ID, "ADMIN")
	dbtest.AddMember(t, db, ws, wsMember.ID, "MEMBER")
	partnerID := dbtest.CreatePartner(t, db, dbtest.PartnerOpts{})
	partnerMember := dbtest.CreateUser(t, db, dbtest.UserOpts{})
	_, err := db.ExecContext(ctx, "INSERT INTO partner_members (partner_id, user_id) VALUES (?, ?)", partnerID, partnerMember.ID)
	require.NoError(t, err)
	stranger := dbtest.CreateUser(t, db, dbtest.UserOpts{})
	admin := dbtest.CreateUser(t, db, dbtest.UserOpts{IsPlatformAdmin: true})
	var orderID string
	require.NoError(t, db.NewRaw(`WITH p AS (INSERT INTO credit_packages (name, credits, price_cents, currency)
			VALUES ('roles test', 10, 1000, 'usd') RETURNING id, credits, price_cents, currency)
		INSERT INTO credit_orders (workspace_id, package_id, user_id, credits, amount_cents, currency)
		SELECT ?, id, ?, credits, price_cents, currency FROM p RETURNING id`, ws, owner.ID).Scan(ctx, &orderID))
	var uploadID string
	require.NoError(t, db.NewRaw(`INSERT INTO lead_uploads (partner_id, file_sha256, default_price_credits)
		VALUES (?, repeat('0', 64), 5) RETURNING id`, partnerID).Scan(ctx, &uploadID))

	type role struct {
		name  string
		token string
	}
	roles := []role{
		{"stranger", api.token(stranger, false)},
		{"member", api.token(wsMember, false)},
		{"ws admin", api.token(wsAdmin, false)},
		{"owner", api.token(owner, false)},
		{"partner member", api.token(partnerMember, false)},
		{"platform admin aal1", api.token(admin, false)},
		{"platform admin aal2", api.token(admin, true)},
	}

	type operation struct {
		name  string
		query string
		// vars returns the variables for one call (i numbers the calls, for unique leads, e-mails
		// and keys).
		vars func(i int) map[string]any
		// field is the root field whose value tells "ok" from "null".
		field string
		want  map[string]string
	}
	wsVars := func(int) map[string]any { return map[string]any{"ws": ws} }
	partnerVars := func(int) map[string]any { return map[string]any{"p": partnerID} }
	// Columns in the order of roles.
	cells := func(cs ...string) map[string]string {
		require.Len(t, cs, len(roles))
		m := make(map[string]string, len(cs))
		for i, c := range cs {
			m[roles[i].name] = c
		}
		return m
	}
	const (
		F   = "FORBIDDEN"
		MFA = "FORBIDDEN/MFA_REQUIRED"
	)
	ops := []operation{
		{"creditBalance", `query($ws: ID!) { creditBalance(workspaceId: $ws) { credits } }`, wsVars, "creditBalance",
			cells(F, "ok", "ok", "ok", F, MFA, "ok")},
		{"creditTransactions", `query($ws: ID!) { creditTransactions(workspaceId: $ws) { edges { cursor } } }`, wsVars, "creditTransactions",
			cells(F, "ok", "ok", "ok", F, MFA, "ok")},
		{"myLeads", `query($ws: ID!) { myLeads(workspaceId: $ws) { edges { cursor } } }`, wsVars, "myLeads",
			cells(F, "ok", "ok", "ok", F, F, F)},
		{"marketplaceLeads as workspace", `query($ws: ID!) { marketplaceLeads(workspaceId: $ws, first: 1) { edges { cursor } } }`, wsVars, "marketplaceLeads",
			cells(F, "ok", "ok", "ok", F, F, F)},
		{"auditLogs of the workspace", `query($ws: ID!) { auditLogs(filter: {workspaceId: $ws}) { edges { cursor } } }`, wsVars, "auditLogs",
			cells(F, F, "ok", "ok", F, MFA, "ok")},
		{"auditLogs of everyone", `{ auditLogs { edges { cursor } } }`, func(int) map[string]any { return nil }, "auditLogs",
			cells(F, F, F, F, F, MFA, "ok")},
		{"webhookEvents", `{ webhookEvents { edges { cursor } } }`, func(int) map[string]any { return nil }, "webhookEvents",
			cells(F, F, F, F, F, MFA, "ok")},
		{"retryWebhookEvent", `mutation { retryWebhookEvent(id: "evt_missing") { id } }`, func(int) map[string]any { return nil }, "retryWebhookEvent",
			cells(F, F, F, F, F, MFA, "NOT_FOUND")},
		{"partnerEarnings", `query($p: ID!) { partnerEarnings(partnerId: $p) { edges { cursor } } }`, partnerVars, "partnerEarnings",
			cells(F, F, F, F, "ok", MFA, "ok")},
		{"partnerBalance", `query($p: ID!) { partnerBalance(partnerId: $p) { balanceCents } }`, partnerVars, "partnerBalance",
			cells(F, F, F, F, "ok", MFA, "ok")},
		{"leadUploads", `query($p: ID!) { leadUploads(partnerId: $p) { edges { cursor } } }`, partnerVars, "leadUploads",
			cells(F, F, F, F, "ok", MFA, "ok")},
		{"partnerStats", `query($p: ID!) { partnerStats(partnerId: $p) { leadsTotal } }`, partnerVars, "partnerStats",
			cells(F, F, F, F, "ok", MFA, "ok")},
		{"leadUpload", `query($id: ID!) { leadUpload(id: $id) { id } }`, func(int) map[string]any { return map[string]any{"id": uploadID} }, "leadUpload",
			cells("null", "null", "null", "null", "ok", "null", "ok")},
		{"creditOrder", `query($id: ID!) { creditOrder(id: $id) { id } }`, func(int) map[string]any { return map[string]any{"id": orderID} }, "creditOrder",
			cells("null", "null", "ok", "ok", "null", "null", "ok")},
		{"adjustCredits", `mutation($ws: ID!) { adjustCredits(workspaceId: $ws, delta: 1, reason: "roles test") { credits } }`, wsVars, "adjustCredits",
			cells(F, F, F, F, F, MFA, "ok")},
		{"addWorkspaceMember", `mutation($ws: ID!, $email: String!) { addWorkspaceMember(workspaceId: $ws, email: $email, role: MEMBER) { userId } }`,
			func(i int) map[string]any {
				return map[string]any{"ws": ws, "email": fmt.Sprintf("invitee-%d-%s@example.test", i, ws[:8])}
			}, "addWorkspaceMember",
			cells(F, F, "ok", "ok", F, F, F)},
		{"purchaseLeads", `mutation($in: PurchaseLeadsInput!) { purchaseLeads(input: $in) { balance } }`,
			func(i int) map[string]any {
				lead := dbtest.CreateLead(t, db, dbtest.LeadOpts{PartnerID: partnerID})
				return map[string]any{"in": map[string]any{"workspaceId": ws, "leadIds": []string{lead}, "idempotencyKey": fmt.Sprintf("roles-%d", i)}}
			}, "purchaseLeads",
			cells(F, "ok", "ok", "ok", F, F, F)},
	}

	call := 0
	for _, op := range ops {
		for _, r := range roles {
			call++
			res := api.do(r.token, op.query, op.vars(call))
			got := res.code()
			if got != "" {
				if reason, ok := res.Errors[0].Extensions["reason"].(string); ok {
					got += "/" + reason
				}
			} else {
				require.Empty(t, res.Errors, "%s as %s", op.name, r.name)
				got = "ok"
				if strings.Contains(string(res.Data), `"`+op.field+`":null`) {
					got = "null"
				}
			}
			require.Equal(t, op.want[r.name], got, "%s as %s: %s", op.name, r.name, res.Data)
		}
	}
}

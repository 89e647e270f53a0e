package app_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/leadmarket/leadmarket/internal/auth"
	"github.com/leadmarket/leadmarket/internal/dbtest"
)

const leadFields = `id email emailPreview phone phonePreview linkedinUrl purchasedByMyWorkspace partner { id name }`

func TestAccess_BuyerSeesOwnDataOnly(t *testing.T) {
	t.Parallel()
	api := newAPI(t, nil)
	db := api.db
	partnerID := dbtest.CreatePartner(t, db, dbtest.PartnerOpts{})
	lead := dbtest.CreateLead(t, db, dbtest.LeadOpts{PartnerID: partnerID, PriceCredits: 10})
	buyerWS, buyer := dbtest.CreateWorkspace(t, db, dbtest.WorkspaceOpts{Credits: 50})
	otherWS, other := dbtest.CreateWorkspace(t, db, dbtest.WorkspaceOpts{Credits: 50})
	buyerTok, otherTok := api.token(buyer, false), api.token(other, false)

	var bought struct {
		PurchaseLeads struct {
			Purchases []struct {
				ID   string
				Lead struct{ ID, Email string }
			}
			CreditsSpent, Balance int
		}
	}
	api.do(buyerTok, `mutation($in: PurchaseLeadsInput!) { purchaseLeads(input: $in) {
		purchases { id lead { id email } creditsSpent } creditsSpent balance } }`,
		map[string]any{"in": map[string]any{"workspaceId": buyerWS, "leadIds": []string{lead}, "idempotencyKey": "access-1"}}).
		decode(t, &bought)
	require.Equal(t, 10, bought.PurchaseLeads.CreditsSpent)
	require.Equal(t, 40, bought.PurchaseLeads.Balance)
	require.Len(t, bought.PurchaseLeads.Purchases, 1)
	require.Contains(t, bought.PurchaseLeads.Purchases[0].Lead.Email, "@", "the buyer sees the e-mail of what it bought")

	type leadView struct {
		ID                     string
		Email                  *string
		EmailPreview           string
		Phone                  *string
		PhonePreview           string
		LinkedinURL            *string `json:"linkedinUrl"`
		PurchasedByMyWorkspace bool
		Partner                struct{ ID, Name string }
	}
	var mine, theirs struct{ Lead leadView }
	api.do(buyerTok, `query($id: ID!) { lead(id: $id) { `+leadFields+` } }`, map[string]any{"id": lead}).decode(t, &mine)
	api.do(otherTok, `query($id: ID!) { lead(id: $id) { `+leadFields+` } }`, map[string]any{"id": lead}).decode(t, &theirs)

	require.True(t, mine.Lead.PurchasedByMyWorkspace)
	require.NotNil(t, mine.Lead.Email)
	require.Equal(t, "+14155552671", *mine.Lead.Phone)
	require.NotNil(t, mine.Lead.LinkedinURL)
	require.Equal(t, partnerID, mine.Lead.Partner.ID)

	require.False(t, theirs.Lead.PurchasedByMyWorkspace)
	require.Nil(t, theirs.Lead.Email, "another workspace sees no e-mail")
	require.Nil(t, theirs.Lead.Phone)
	require.Nil(t, theirs.Lead.LinkedinURL)
	require.Regexp(t, `^l\*\*\*@acme-[0-9a-f]{8}\.example$`, theirs.Lead.EmailPreview)
	require.Equal(t, "********71", theirs.Lead.PhonePreview)

	// The other workspace cannot read the buyer's data or spend its credits.
	for name, q := range map[string]string{
		"myLeads":            `query($ws: ID!) { myLeads(workspaceId: $ws) { edges { node { id email } } } }`,
		"creditBalance":      `query($ws: ID!) { creditBalance(workspaceId: $ws) { credits } }`,
		"creditTransactions": `query($ws: ID!) { creditTransactions(workspaceId: $ws) { edges { node { id amount } } } }`,
		"auditLogs":          `query($ws: ID!) { auditLogs(filter: {workspaceId: $ws}) { edges { node { id } } } }`,
		"marketplace as ws":  `query($ws: ID!) { marketplaceLeads(workspaceId: $ws) { edges { node { id } } } }`,
	} {
		res := api.do(otherTok, q, map[string]any{"ws": buyerWS})
		require.Equal(t, "FORBIDDEN", res.code(), name)
		require.JSONEq(t, "null", string(res.Data), name)
	}
	res := api.do(otherTok, `mutation($in: PurchaseLeadsInput!) { purchaseLeads(input: $in) { balance } }`,
		map[string]any{"in": map[string]any{"workspaceId": buyerWS, "leadIds": []string{lead}, "idempotencyKey": "steal"}})
	require.Equal(t, "FORBIDDEN", res.code())

	// Denials are security events.
	var denials int
	require.NoError(t, db.NewRaw(`SELECT count(*) FROM security_events WHERE user_id = ? AND kind = 'access_denied'`, other.ID).
		Scan(context.Background(), &denials))
	require.Equal(t, 6, denials)

	// The buyer's own reads work and agree with the ledger.
	var bal struct{ CreditBalance struct{ Credits int } }
	api.do(buyerTok, `query($ws: ID!) { creditBalance(workspaceId: $ws) { credits } }`, map[string]any{"ws": buyerWS}).decode(t, &bal)
	require.Equal(t, 40, bal.CreditBalance.Credits)
	var txs struct {
		CreditTransactions struct {
			Edges []struct {
				Node struct {
					Kind                 string
					Amount, BalanceAfter int
				}
			}
		}
	}
	api.do(buyerTok, `query($ws: ID!) { creditTransactions(workspaceId: $ws) { edges { node { kind amount balanceAfter } } } }`,
		map[string]any{"ws": buyerWS}).decode(t, &txs)
	require.Len(t, txs.CreditTransactions.Edges, 2)
	require.Equal(t, "SPEND", txs.CreditTransactions.Edges[0].Node.Kind)
	require.Equal(t, -10, txs.CreditTransactions.Edges[0].Node.Amount)
	var my struct {
		MyLeads struct {
			Edges []struct{ Node struct{ ID, Email string } }
		}
	}
	api.do(buyerTok, `query($ws: ID!) { myLeads(workspaceId: $ws) { edges { node { id email } } } }`,
		map[string]any{"ws": buyerWS}).decode(t, &my)
	require.Len(t, my.MyLeads.Edges, 1)
	require.Equal(t, lead, my.MyLeads.Edges[0].Node.ID)
	require.NotEmpty(t, my.MyLeads.Edges[0].Node.Email)
	_ = otherWS
}

func TestAccess_MissingOrBadToken(t *testing.T) {
	t.Parallel()
	api := newAPI(t, nil)
	u := dbtest.CreateUser(t, api.db, dbtest.UserOpts{})
	expired, err := api.tokens.Issue(u.Subject, u.Email, false, -time.Hour)
	require.NoError(t, err)
	forged, err := auth.NewTokens("another-secret-another-secret-00").Issue(u.Subject, u.Email, false, time.Hour)
	require.NoError(t, err)
	for name, tok := range map[string]string{"missing": "", "garbage": "not-a-jwt", "expired": expired, "forged": forged} {
		res := api.do(tok, `{ me { id email } }`, nil)
		require.Equal(t, "UNAUTHENTICATED", res.code(), name)
		require.JSONEq(t, "null", string(res.Data), name)
	}
	var me struct{ Me struct{ ID, Email string } }
	api.do(api.token(u, false), `{ me { id email } }`, nil).decode(t, &me)
	require.Equal(t, u.ID, me.Me.ID)
}

func TestAccess_AdminOperationsNeedAdminWithMFA(t *testing.T) {
	t.Parallel()
	api := newAPI(t, nil)
	ws, owner := dbtest.CreateWorkspace(t, api.db, dbtest.WorkspaceOpts{Credits: 5})
	admin := dbtest.CreateUser(t, api.db, dbtest.UserOpts{IsPlatformAdmin: true})
	adjust := `mutation($ws: ID!, $key: String) { adjustCredits(workspaceId: $ws, delta: 20, reason: "goodwill", idempotencyKey: $key) { credits } }`

	require.Equal(t, "FORBIDDEN", api.do(api.token(owner, true), adjust, map[string]any{"ws": ws}).code(), "owners are not platform admins")
	require.Equal(t, "FORBIDDEN", api.do(api.token(admin, false), adjust, map[string]any{"ws": ws}).code(), "admins need aal2")

	var out struct{ AdjustCredits struct{ Credits int } }
	for range 2 { // the same key twice adjusts once
		api.do(api.token(admin, true), adjust, map[string]any{"ws": ws, "key": "adj-1"}).decode(t, &out)
		require.Equal(t, 25, out.AdjustCredits.Credits)
	}
	res := api.do(api.token(admin, true), `mutation($ws: ID!) { adjustCredits(workspaceId: $ws, delta: -100, reason: "x") { credits } }`,
		map[string]any{"ws": ws})
	require.Equal(t, "INSUFFICIENT_CREDITS", res.code())

	// The owner reads the workspace's audit log; it holds the adjustment with its old and new values.
	var logs struct {
		AuditLogs struct {
			Edges []struct {
				Node struct {
					Action, ActorType, RequestID string
					OldValues, NewValues         map[string]any
				}
			}
		}
	}
	api.do(api.token(owner, false), `query($ws: ID!) { auditLogs(filter: {workspaceId: $ws, action: "credits.adjusted"}) {
		edges { node { action actorType requestId oldValues newValues } } } }`, map[string]any{"ws": ws}).decode(t, &logs)
	require.Len(t, logs.AuditLogs.Edges, 1)
	n := logs.AuditLogs.Edges[0].Node
	require.Equal(t, "PLATFORM_ADMIN", n.ActorType)
	require.NotEmpty(t, n.RequestID)
	require.EqualValues(t, 5, n.OldValues["credits"])
	require.EqualValues(t, 25, n.NewValues["credits"])
}

func TestWorkspaces_CreateAndMembers(t *testing.T) {
	t.Parallel()
	api := newAPI(t, nil)
	owner := dbtest.CreateUser(t, api.db, dbtest.UserOpts{})
	tok := api.token(owner, false)
	var created struct{ CreateWorkspace struct{ ID, Name string } }
	api.do(tok, `mutation { createWorkspace(name: "  Umbrella Corp ") { id name } }`, nil).decode(t, &created)
	ws := created.CreateWorkspace.ID
	require.Equal(t, "Umbrella Corp", created.CreateWorkspace.Name)

	add := `mutation($ws: ID!, $email: String!, $role: WorkspaceRole!) { addWorkspaceMember(workspaceId: $ws, email: $email, role: $role) { userId email role } }`
	var added struct {
		AddWorkspaceMember struct{ UserID, Email, Role string }
	}
	api.do(tok, add, map[string]any{"ws": ws, "email": "New.Admin@Example.test", "role": "ADMIN"}).decode(t, &added)
	require.Equal(t, "new.admin@example.test", added.AddWorkspaceMember.Email)

	// The invited user signs in later with a token carrying that e-mail and lands in the workspace.
	invitee := dbtest.User{Email: "new.admin@example.test", Subject: "11111111-2222-4333-8444-" + ws[len(ws)-12:]}
	var me struct {
		Me struct {
			ID         string
			Workspaces []struct {
				Role      string
				Workspace struct{ ID string }
			}
		}
	}
	api.do(api.token(invitee, false), `{ me { id workspaces { role workspace { id } } } }`, nil).decode(t, &me)
	require.Equal(t, added.AddWorkspaceMember.UserID, me.Me.ID)
	require.Len(t, me.Me.Workspaces, 1)
	require.Equal(t, "ADMIN", me.Me.Workspaces[0].Role)

	// An admin may add members but not owners; the last owner cannot be demoted.
	adminTok := api.token(invitee, false)
	require.Equal(t, "FORBIDDEN", api.do(adminTok, add, map[string]any{"ws": ws, "email": "x@example.test", "role": "OWNER"}).code())
	require.Empty(t, api.do(adminTok, add, map[string]any{"ws": ws, "email": "m@example.test", "role": "MEMBER"}).Errors)
	require.Equal(t, "INVALID_INPUT", api.do(tok, add, map[string]any{"ws": ws, "email": owner.Email, "role": "MEMBER"}).code())
	require.Equal(t, "INVALID_INPUT", api.do(tok, add, map[string]any{"ws": ws, "email": "not-an-email", "role": "MEMBER"}).code())
	require.Equal(t, "INVALID_INPUT", api.do(tok, `mutation { createWorkspace(name: "  ") { id } }`, nil).code())

	var entries int
	require.NoError(t, api.db.NewRaw(`SELECT count(*) FROM audit_logs WHERE workspace_id = ?`, ws).Scan(context.Background(), &entries))
	require.Equal(t, 3, entries, "workspace.created and two member changes")
}

// A workspace's audit log is read by its owners and admins only, with the workspaces' own
// membership check; anyone else gets FORBIDDEN and no data.
func TestAuditLogs_WorkspaceRoles(t *testing.T) {
	t.Parallel()
	api := newAPI(t, nil)
	ws, owner := dbtest.CreateWorkspace(t, api.db, dbtest.WorkspaceOpts{})
	admin := dbtest.CreateUser(t, api.db, dbtest.UserOpts{})
	member := dbtest.CreateUser(t, api.db, dbtest.UserOpts{})
	stranger := dbtest.CreateUser(t, api.db, dbtest.UserOpts{})
	dbtest.AddMember(t, api.db, ws, admin.ID, "ADMIN")
	dbtest.AddMember(t, api.db, ws, member.ID, "MEMBER")
	const q = `query($ws: ID) { auditLogs(filter: {workspaceId: $ws}) { edges { node { id } } } }`
	vars := map[string]any{"ws": ws}

	for name, u := range map[string]dbtest.User{"owner": owner, "admin": admin} {
		res := api.do(api.token(u, false), q, vars)
		require.Empty(t, res.Errors, name)
	}
	for name, u := range map[string]dbtest.User{"member": member, "stranger": stranger} {
		res := api.do(api.token(u, false), q, vars)
		require.Equal(t, "FORBIDDEN", res.code(), name)
		require.JSONEq(t, "null", string(res.Data), name)
	}
	require.Equal(t, "FORBIDDEN", api.do(api.token(owner, false), q, map[string]any{"ws": nil}).code(),
		"a non-admin must name the workspace")
	require.Equal(t, "INVALID_INPUT", api.do(api.token(owner, false), q, map[string]any{"ws": "not-a-uuid"}).code())
}

// With ADMIN_REQUIRE_MFA on, a platform admin reads what is not its own (another workspace's
// credits, a partner's earnings, an order, the whole audit log) only with an aal2 session; without
// one it is refused with reason MFA_REQUIRED, and keeps what its own memberships give it.
func TestAccess_AdminReadsNeedMFA(t *testing.T) {
	t.Parallel()
	api := newAPI(t, nil)
	ctx := context.Background()
	ws, owner := dbtest.CreateWorkspace(t, api.db, dbtest.WorkspaceOpts{Credits: 77})
	partnerID := dbtest.CreatePartner(t, api.db, dbtest.PartnerOpts{})
	admin := dbtest.CreateUser(t, api.db, dbtest.UserOpts{IsPlatformAdmin: true})
	ownWS, _ := dbtest.CreateWorkspace(t, api.db, dbtest.WorkspaceOpts{Owner: &admin, Credits: 5})
	var pkg, order string
	require.NoError(t, api.db.NewRaw("INSERT INTO credit_packages (name, credits, price_cents, currency) VALUES ('p', 10, 1000, 'eur') RETURNING id").
		Scan(ctx, &pkg))
	require.NoError(t, api.db.NewRaw(`INSERT INTO credit_orders (workspace_id, package_id, user_id, credits, amount_cents, currency)
		VALUES (?, ?, ?, 10, 1000, 'eur') RETURNING id`, ws, pkg, owner.ID).Scan(ctx, &order))

	type read struct {
		query string
		vars  map[string]any
	}
	wsVars, partnerVars := map[string]any{"ws": ws}, map[string]any{"p": partnerID}
	reads := map[string]read{
		"creditBalance":      {`query($ws: ID!) { creditBalance(workspaceId: $ws) { credits } }`, wsVars},
		"creditTransactions": {`query($ws: ID!) { creditTransactions(workspaceId: $ws) { edges { node { amount } } } }`, wsVars},
		"partnerEarnings":    {`query($p: ID!) { partnerEarnings(partnerId: $p) { edges { node { id } } } }`, partnerVars},
		"partnerBalance":     {`query($p: ID!) { partnerBalance(partnerId: $p) { balanceCents } }`, partnerVars},
		"auditLogs":          {`{ auditLogs { edges { node { id } } } }`, nil},
	}
	aal1, aal2 := api.token(admin, false), api.token(admin, true)
	for name, r := range reads {
		res := api.do(aal1, r.query, r.vars)
		require.Equal(t, "FORBIDDEN", res.code(), name)
		require.Equal(t, "MFA_REQUIRED", res.Errors[0].Extensions["reason"], name)
		require.JSONEq(t, "null", string(res.Data), name)
		require.Empty(t, api.do(aal2, r.query, r.vars).Errors, name)
	}
	// An order is simply not found without MFA, as for anyone who may not see it.
	const orderQuery = `query($o: ID!) { creditOrder(id: $o) { id credits } }`
	res := api.do(aal1, orderQuery, map[string]any{"o": order})
	require.Empty(t, res.Errors)
	require.JSONEq(t, `{"creditOrder": null}`, string(res.Data))
	var got struct{ CreditOrder struct{ ID string } }
	api.do(aal2, orderQuery, map[string]any{"o": order}).decode(t, &got)
	require.Equal(t, order, got.CreditOrder.ID)

	// Its own workspace needs no MFA: membership is enough.
	var bal struct{ CreditBalance struct{ Credits int } }
	api.do(aal1, `query($ws: ID!) { creditBalance(workspaceId: $ws) { credits } }`, map[string]any{"ws": ownWS}).decode(t, &bal)
	require.Equal(t, 5, bal.CreditBalance.Credits)
	res = api.do(aal1, `query($ws: ID) { auditLogs(filter: {workspaceId: $ws}) { edges { node { id } } } }`, map[string]any{"ws": ownWS})
	require.Empty(t, res.Errors)
}

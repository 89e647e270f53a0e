package pipeline_test

import (
	"context"
	"os"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/leadmarket/leadmarket/internal/auth"
	"github.com/leadmarket/leadmarket/internal/credit"
	"github.com/leadmarket/leadmarket/internal/dbtest"
	"github.com/leadmarket/leadmarket/internal/marketplace"
	"github.com/leadmarket/leadmarket/internal/partner"
	"github.com/leadmarket/leadmarket/internal/pipeline"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Run(m)) }

func caller(u dbtest.User) *auth.Caller { return &auth.Caller{UserID: u.ID, Email: u.Email} }

// team is a workspace with an owner, an admin and a member, and leads it bought.
type team struct {
	db                   *bun.DB
	svc                  *pipeline.Service
	ws                   string
	owner, admin, member dbtest.User
	leads                []string
}

// newTeam makes a team with n purchased leads on the test's own transaction.
func newTeam(t *testing.T, db *bun.DB, n int) team {
	t.Helper()
	ws, owner := dbtest.CreateWorkspace(t, db, dbtest.WorkspaceOpts{})
	tm := team{db: db, svc: pipeline.NewService(db), ws: ws, owner: owner,
		admin: dbtest.CreateUser(t, db, dbtest.UserOpts{}), member: dbtest.CreateUser(t, db, dbtest.UserOpts{})}
	dbtest.AddMember(t, db, ws, tm.admin.ID, "ADMIN")
	dbtest.AddMember(t, db, ws, tm.member.ID, "MEMBER")
	if n > 0 {
		tm.leads = dbtest.CreatePurchasedLeads(t, db, ws, n, dbtest.PurchasesOpts{BuyerID: owner.ID})
	}
	return tm
}

// set gives leads a state directly (tests set up what the rules are then checked against).
func set(t *testing.T, db bun.IDB, ids []string, assignments string, args ...any) {
	t.Helper()
	_, err := db.ExecContext(context.Background(), "UPDATE workspace_leads SET "+assignments+" WHERE id = ANY(?::uuid[])",
		append(args, pgdialect.Array(ids))...)
	require.NoError(t, err)
}

// row is a workspace lead's stored state.
type row struct {
	ID       string   `bun:"id"`
	Status   string   `bun:"status"`
	Assignee string   `bun:"assignee"`
	Tags     []string `bun:"tags,array"`
	Deleted  bool     `bun:"deleted"`
}

// rows returns the stored state of ids, by id.
func rows(t *testing.T, db bun.IDB, ids []string) map[string]row {
	t.Helper()
	var rs []row
	require.NoError(t, db.NewRaw(`SELECT id, status, coalesce(assignee_user_id::text, '') AS assignee, tags,
		deleted_at IS NOT NULL AS deleted FROM workspace_leads WHERE id = ANY(?::uuid[])`, pgdialect.Array(ids)).
		Scan(context.Background(), &rs))
	out := make(map[string]row, len(rs))
	for _, r := range rs {
		out[r.ID] = r
	}
	return out
}

// skips returns a result's skips as id → reason.
func skips(res pipeline.BulkResult) map[string]string {
	out := make(map[string]string, len(res.Skipped))
	for _, s := range res.Skipped {
		out[s.ID] = s.Reason
	}
	return out
}

func ids(in ...string) pipeline.Selection { return pipeline.Selection{IDs: in} }

func (tm team) in(sel pipeline.Selection) pipeline.BulkInput {
	return pipeline.BulkInput{WorkspaceID: tm.ws, Selection: sel}
}

func newMarketplace(db *bun.DB) *marketplace.Service {
	return marketplace.NewService(db, partner.Commission{CreditValueCents: 40})
}

// grant gives a workspace credits.
func grant(t *testing.T, db bun.IDB, ws string, credits int64) {
	t.Helper()
	_, err := credit.Apply(context.Background(), db, credit.Entry{
		WorkspaceID: ws, Kind: credit.KindAdjustment, Amount: credits, Reference: "test-grant:" + ws,
	})
	require.NoError(t, err)
}

func purchase(ws, key string, leadIDs ...string) marketplace.PurchaseInput {
	return marketplace.PurchaseInput{WorkspaceID: ws, LeadIDs: leadIDs, IdempotencyKey: key}
}

package app_test

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/leadmarket/leadmarket/internal/dbtest"
)

func TestBillingAPI_PackagesEventsAndEarnings(t *testing.T) {
	t.Parallel()
	api := newAPI(t, nil)
	ctx := context.Background()
	db := api.db
	buyerWS, buyer := dbtest.CreateWorkspace(t, db, dbtest.WorkspaceOpts{Credits: 100})
	admin := dbtest.CreateUser(t, db, dbtest.UserOpts{IsPlatformAdmin: true})
	partnerID := dbtest.CreatePartner(t, db, dbtest.PartnerOpts{PassRate: 0.96})
	partnerUser := dbtest.CreateUser(t, db, dbtest.UserOpts{})
	_, err := db.ExecContext(ctx, "INSERT INTO partner_members (partner_id, user_id) VALUES (?, ?)", partnerID, partnerUser.ID)
	require.NoError(t, err)

	var pkgs struct {
		CreditPackages []struct {
			ID, Name, Currency  string
			Credits, PriceCents int
		}
	}
	name := "pkg-" + uuid.NewString()[:8]
	_, err = db.ExecContext(ctx, "INSERT INTO credit_packages (name, credits, price_cents, currency) VALUES (?, 100, 4900, 'usd')", name)
	require.NoError(t, err)
	api.do(api.token(buyer, false), `{ creditPackages { id name credits priceCents currency } }`, nil).decode(t, &pkgs)
	found := false
	for _, p := range pkgs.CreditPackages {
		found = found || (p.Name == name && p.Credits == 100 && p.PriceCents == 4900 && p.Currency == "usd")
	}
	require.True(t, found)

	// A sale accrues the partner's commission: 10 credits x 40 cents x (30 + 5) % = 140 cents.
	lead := dbtest.CreateLead(t, db, dbtest.LeadOpts{PartnerID: partnerID, PriceCredits: 10})
	res := api.do(api.token(buyer, false), `mutation($in: PurchaseLeadsInput!) { purchaseLeads(input: $in) { balance } }`,
		map[string]any{"in": map[string]any{"workspaceId": buyerWS, "leadIds": []string{lead}, "idempotencyKey": "earn"}})
	require.Empty(t, res.Errors)
	earnings := `query($p: ID!) { partnerEarnings(partnerId: $p) { edges { node { kind amountCents saleValueCents rate leadPurchaseId } } }
		partnerBalance(partnerId: $p) { balanceCents salesCount } }`
	var got struct {
		PartnerEarnings struct {
			Edges []struct {
				Node struct {
					Kind                        string
					AmountCents, SaleValueCents int
					Rate                        float64
					LeadPurchaseID              *string
				}
			}
		}
		PartnerBalance struct{ BalanceCents, SalesCount int }
	}
	api.do(api.token(partnerUser, false), earnings, map[string]any{"p": partnerID}).decode(t, &got)
	require.Len(t, got.PartnerEarnings.Edges, 1)
	n := got.PartnerEarnings.Edges[0].Node
	require.Equal(t, "ACCRUAL", n.Kind)
	require.Equal(t, 140, n.AmountCents)
	require.Equal(t, 400, n.SaleValueCents)
	require.InDelta(t, 0.35, n.Rate, 1e-9)
	require.NotNil(t, n.LeadPurchaseID)
	require.Equal(t, 140, got.PartnerBalance.BalanceCents)
	require.Equal(t, 1, got.PartnerBalance.SalesCount)
	require.Equal(t, "FORBIDDEN", api.do(api.token(buyer, false), earnings, map[string]any{"p": partnerID}).code(),
		"a buyer never sees a partner's earnings")

	// Webhook events are for platform admins with MFA.
	evID := "evt_api_" + uuid.NewString()[:8]
	_, err = db.ExecContext(ctx, `INSERT INTO stripe_events (id, type, payload, status, attempts, last_error) VALUES (?, 'charge.refunded', '{}', 'FAILED', 2, 'boom');
		INSERT INTO stripe_event_attempts (event_id, attempt, finished_at, error) VALUES (?, 1, now(), 'boom'), (?, 2, now(), 'boom')`, evID, evID, evID)
	require.NoError(t, err)
	q := `query($id: ID!) { webhookEvent(id: $id) { id type status attempts lastError attemptLog { attempt error } }
		webhookEvents(filter: {status: FAILED, type: "charge.refunded"}) { edges { node { id } } } }`
	require.Equal(t, "FORBIDDEN", api.do(api.token(buyer, true), q, map[string]any{"id": evID}).code())
	require.Equal(t, "FORBIDDEN", api.do(api.token(admin, false), q, map[string]any{"id": evID}).code())
	var evs struct {
		WebhookEvent struct {
			ID, Type, Status, LastError string
			Attempts                    int
			AttemptLog                  []struct {
				Attempt int
				Error   string
			}
		}
		WebhookEvents struct {
			Edges []struct{ Node struct{ ID string } }
		}
	}
	api.do(api.token(admin, true), q, map[string]any{"id": evID}).decode(t, &evs)
	require.Equal(t, "FAILED", evs.WebhookEvent.Status)
	require.Len(t, evs.WebhookEvent.AttemptLog, 2)
	require.Equal(t, "boom", evs.WebhookEvent.AttemptLog[1].Error)
	ids := []string{}
	for _, e := range evs.WebhookEvents.Edges {
		ids = append(ids, e.Node.ID)
	}
	require.Contains(t, ids, evID)

	var retried struct{ RetryWebhookEvent struct{ ID, Status string } }
	api.do(api.token(admin, true), `mutation($id: ID!) { retryWebhookEvent(id: $id) { id status } }`, map[string]any{"id": evID}).decode(t, &retried)
	require.Equal(t, "RETRYING", retried.RetryWebhookEvent.Status)
	require.Equal(t, "NOT_FOUND", api.do(api.token(admin, true), `mutation { retryWebhookEvent(id: "evt_nope") { id } }`, nil).code())
}

package app_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/leadmarket/leadmarket/internal/dbtest"
)

// The verification API over HTTP: a buyer reports a bounce (the same key twice, the same report)
// and lists its reports with the purchase's lead; an admin reads verificationStats and asks for a
// re-verification; a lead shows verifiedAt. With no provider key, reports and re-verifications
// are UNAVAILABLE.
func TestVerificationAPI(t *testing.T) {
	t.Parallel()
	mv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"email":"x@example.com","result":"ok","resultcode":1,"subresult":"ok","quality":"good","free":false,"role":false,"credits":10,"error":""}`))
	}))
	t.Cleanup(mv.Close)
	api := newAPI(t, map[string]string{"MILLIONVERIFIER_API_KEY": "k", "MILLIONVERIFIER_URL": mv.URL})
	db := api.db
	ws, buyer := dbtest.CreateWorkspace(t, db, dbtest.WorkspaceOpts{Credits: 100})
	other, _ := dbtest.CreateWorkspace(t, db, dbtest.WorkspaceOpts{})
	admin := dbtest.CreateUser(t, db, dbtest.UserOpts{IsPlatformAdmin: true})
	partnerID := dbtest.CreatePartner(t, db, dbtest.PartnerOpts{})
	leadID := dbtest.CreateLead(t, db, dbtest.LeadOpts{PartnerID: partnerID, PriceCredits: 10})
	_, err := db.Exec("UPDATE leads SET verified_at = '2026-12-01T10:00:00Z' WHERE id = ?", leadID)
	require.NoError(t, err)
	buyerToken := api.token(buyer, false)

	var bought struct {
		PurchaseLeads struct {
			Purchases []struct {
				ID   string
				Lead struct{ VerifiedAt *string }
			}
		}
	}
	api.do(buyerToken, `mutation($in: PurchaseLeadsInput!) { purchaseLeads(input: $in) { purchases { id lead { verifiedAt } } } }`,
		map[string]any{"in": map[string]any{"workspaceId": ws, "leadIds": []string{leadID}, "idempotencyKey": "buy"}}).decode(t, &bought)
	purchaseID := bought.PurchaseLeads.Purchases[0].ID
	require.Equal(t, "2026-12-01T10:00:00Z", *bought.PurchaseLeads.Purchases[0].Lead.VerifiedAt)

	report := `mutation($in: ReportLeadBounceInput!) { reportLeadBounce(input: $in) {
		id status creditsRefunded reason createdAt resolvedAt purchase { id creditsSpent lead { id email } } } }`
	type bounceReport struct {
		ID, Status, CreatedAt string
		CreditsRefunded       int
		Reason, ResolvedAt    *string
		Purchase              struct {
			ID           string
			CreditsSpent int
			Lead         struct{ ID, Email string }
		}
	}
	var first, again struct{ ReportLeadBounce bounceReport }
	in := map[string]any{"in": map[string]any{"purchaseId": purchaseID, "idempotencyKey": "bounce-1"}}
	api.do(buyerToken, report, in).decode(t, &first)
	api.do(buyerToken, report, in).decode(t, &again)
	r := first.ReportLeadBounce
	require.Equal(t, r, again.ReportLeadBounce, "the same key answers with the same report")
	require.Equal(t, "PENDING", r.Status)
	require.Nil(t, r.ResolvedAt)
	require.Nil(t, r.Reason)
	require.Equal(t, purchaseID, r.Purchase.ID)
	require.Equal(t, 10, r.Purchase.CreditsSpent)
	require.Equal(t, leadID, r.Purchase.Lead.ID)
	require.NotEmpty(t, r.Purchase.Lead.Email, "the buyer sees the lead it bought")

	var list struct {
		BounceReports struct {
			Edges []struct {
				Cursor string
				Node   bounceReport
			}
			PageInfo struct{ HasNextPage bool }
		}
	}
	api.do(buyerToken, `query($ws: ID!) { bounceReports(workspaceId: $ws, first: 5) { edges { cursor node {
		id status creditsRefunded reason createdAt resolvedAt purchase { id creditsSpent lead { id email } } } } pageInfo { hasNextPage } } }`,
		map[string]any{"ws": ws}).decode(t, &list)
	require.Len(t, list.BounceReports.Edges, 1)
	require.Equal(t, r, list.BounceReports.Edges[0].Node)
	require.False(t, list.BounceReports.PageInfo.HasNextPage)
	res := api.do(buyerToken, `query($ws: ID!) { bounceReports(workspaceId: $ws) { edges { cursor } } }`, map[string]any{"ws": other})
	require.Equal(t, "FORBIDDEN", res.code())

	// Admins: the figures, and a re-verification (aal2 needed).
	stats := `{ verificationStats { pending inFlight verifiedLast24h failuresLast24h byStatus { status count } byProvider { provider calls failures } } }`
	require.Equal(t, "FORBIDDEN", api.do(buyerToken, stats, nil).code())
	var st struct {
		VerificationStats struct {
			Pending, InFlight, VerifiedLast24h, FailuresLast24h int
			ByStatus                                            []struct {
				Status string
				Count  int
			}
			ByProvider []struct {
				Provider        string
				Calls, Failures int
			}
		}
	}
	api.do(api.token(admin, true), stats, nil).decode(t, &st)
	require.Len(t, st.VerificationStats.ByStatus, 6)
	require.Equal(t, "PENDING", st.VerificationStats.ByStatus[0].Status)
	require.Len(t, st.VerificationStats.ByProvider, 2)
	require.Equal(t, "millionverifier", st.VerificationStats.ByProvider[0].Provider)

	reverify := `mutation($ids: [ID!]!) { reverifyLeads(leadIds: $ids) }`
	require.Equal(t, "FORBIDDEN", api.do(api.token(admin, false), reverify, map[string]any{"ids": []string{leadID}}).code())
	var n struct{ ReverifyLeads int }
	api.do(api.token(admin, true), reverify, map[string]any{"ids": []string{leadID}}).decode(t, &n)
	require.Equal(t, 1, n.ReverifyLeads)

	// Without a provider key.
	off := newAPI(t, nil)
	res = off.do(off.token(buyer, false), report, map[string]any{"in": map[string]any{"purchaseId": purchaseID, "idempotencyKey": "bounce-2"}})
	require.Equal(t, "UNAVAILABLE", res.code())
	res = off.do(off.token(admin, true), reverify, map[string]any{"ids": []string{leadID}})
	require.Equal(t, "UNAVAILABLE", res.code())
}

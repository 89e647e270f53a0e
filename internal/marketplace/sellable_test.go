package marketplace_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/leadmarket/leadmarket/internal/apperr"
	"github.com/leadmarket/leadmarket/internal/dbtest"
	"github.com/leadmarket/leadmarket/internal/marketplace"
)

// TestSellableRule_BrowseAndPurchaseAgree walks every lead status × verification status × fill:
// browse (in each order) and lead(id) offer a lead exactly when a purchase of it goes through, and
// both follow DESIGN §4 (ACTIVE, not INVALID, sold to fewer than max_buyers). A refused purchase is
// NOT_FOUND for a lead that is not for sale and SOLD_OUT for a full one.
func TestSellableRule_BrowseAndPurchaseAgree(t *testing.T) {
	t.Parallel()
	db := dbtest.DB(t)
	svc := newService(db)
	ctx := context.Background()
	ws, owner := dbtest.CreateWorkspace(t, db, dbtest.WorkspaceOpts{Credits: 10_000})
	fills := []struct{ maxBuyers, buyers int }{{1, 0}, {1, 1}, {3, 2}, {3, 3}}
	orders := []string{marketplace.OrderNewest, marketplace.OrderPriceAsc, marketplace.OrderPriceDesc}
	for _, status := range []string{"ACTIVE", "INACTIVE", "REMOVED"} {
		for _, verification := range []string{"PENDING", "VALID", "INVALID", "CATCH_ALL", "RISKY", "UNKNOWN"} {
			for _, fill := range fills {
				name := fmt.Sprintf("%s/%s/%d of %d", status, verification, fill.buyers, fill.maxBuyers)
				partnerID := dbtest.CreatePartner(t, db, dbtest.PartnerOpts{})
				id := dbtest.CreateLead(t, db, dbtest.LeadOpts{
					PartnerID: partnerID, Status: status, VerificationStatus: verification, MaxBuyers: fill.maxBuyers,
				})
				_, err := db.ExecContext(ctx, "UPDATE leads SET buyers_count = ? WHERE id = ?", fill.buyers, id)
				require.NoError(t, err)
				forSale := status == "ACTIVE" && verification != "INVALID"
				want := forSale && fill.buyers < fill.maxBuyers

				viewer := marketplace.Viewer{UserID: owner.ID}
				for _, order := range orders {
					page, _, err := svc.Browse(ctx, viewer, marketplace.BrowseParams{
						Order: order, Filter: marketplace.Filter{PartnerIDs: []string{partnerID}},
					})
					require.NoError(t, err, name)
					require.Equal(t, want, len(page.Items) == 1, "%s: browsable (%s)", name, order)
				}
				shown, err := svc.Lead(ctx, viewer, id)
				require.NoError(t, err, name)
				require.Equal(t, want, shown != nil, "%s: shown by id", name)

				_, err = svc.PurchaseLeads(ctx, caller(owner), marketplace.PurchaseInput{
					WorkspaceID: ws, LeadIDs: []string{id}, IdempotencyKey: "sellable-" + id,
				})
				switch {
				case want:
					require.NoError(t, err, "%s: purchasable", name)
				case !forSale:
					require.Equal(t, apperr.NotFound, apperr.CodeOf(err), "%s: %v", name, err)
				default:
					require.Equal(t, apperr.SoldOut, apperr.CodeOf(err), "%s: %v", name, err)
				}
			}
		}
	}
	requireLedgerMatchesBalance(t, db, ws)
}

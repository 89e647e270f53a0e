package partner_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/leadmarket/leadmarket/internal/partner"
)

func TestCommission(t *testing.T) {
	c := partner.Commission{CreditValueCents: 40, Tiers: []partner.BonusTier{{PassRate: 0.90, Points: 2.5}, {PassRate: 0.95, Points: 5}}}
	for _, tc := range []struct {
		name           string
		base, passRate float64
		wantBP         int64
	}{
		{"base only", 0.30, 0.50, 3000},
		{"first tier", 0.30, 0.90, 3250},
		{"highest tier reached", 0.30, 0.97, 3500},
		{"never more than the sale", 0.99, 0.99, 10_000},
		{"a full rate stays full", 1, 0.99, 10_000},
	} {
		require.Equal(t, tc.wantBP, c.RateBasisPoints(tc.base, tc.passRate), tc.name)
	}
	// 10 credits at 40 cents: 400 cents; 32.5 % of it is 130; half a cent rounds up.
	sale, earning := c.EarningCents(10, 3250)
	require.EqualValues(t, 400, sale)
	require.EqualValues(t, 130, earning)
	_, earning = c.EarningCents(1, 3125) // 12.5 cents
	require.EqualValues(t, 13, earning)
	sale, earning = c.EarningCents(10, c.RateBasisPoints(0.99, 0.99))
	require.LessOrEqual(t, earning, sale)
}

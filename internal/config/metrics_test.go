package config_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/leadmarket/leadmarket/internal/config"
)

func TestMetricsVariables(t *testing.T) {
	c, err := config.FromEnv(lookup(nil))
	require.NoError(t, err)
	require.Empty(t, c.MetricsAddr, "default: /metrics on the main address (outside production)")
	require.True(t, c.MetricsEnabled)
	require.Empty(t, c.MetricsOperationNames)

	c, err = config.FromEnv(lookup(map[string]string{
		"METRICS_ADDR": "127.0.0.1:9090", "METRICS_ENABLED": "false", "METRICS_OPERATION_NAMES": "BrowseLeads, BuyLeads",
	}))
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:9090", c.MetricsAddr)
	require.False(t, c.MetricsEnabled)
	require.Equal(t, []string{"BrowseLeads", "BuyLeads"}, c.MetricsOperationNames)

	for _, tc := range []struct{ vars map[string]string }{
		{map[string]string{"METRICS_ADDR": "9090"}},
		{map[string]string{"METRICS_ADDR": "127.0.0.1:8080"}}, // HTTP_ADDR's default
		{map[string]string{"METRICS_ENABLED": "maybe"}},
		{map[string]string{"METRICS_OPERATION_NAMES": "Browse,bad-name"}},
	} {
		_, err := config.FromEnv(lookup(tc.vars))
		require.Error(t, err, "%v", tc.vars)
		for k := range tc.vars {
			require.ErrorContains(t, err, k+":")
		}
	}
}

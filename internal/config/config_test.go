package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/leadmarket/leadmarket/internal/config"
)

func lookup(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

func TestDefaults(t *testing.T) {
	c, err := config.FromEnv(lookup(nil))
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:8080", c.HTTPAddr)
	require.Equal(t, ".data", c.DataDir)
	require.Equal(t, config.DevJWTSecret, c.JWTSecret)
	require.False(t, c.AdminRequireMFA)
	require.Equal(t, int64(40), c.CreditValueCents)
	require.Equal(t, []config.BonusTier{{PassRate: 0.90, Points: 2.5}, {PassRate: 0.95, Points: 5}}, c.CommissionBonusTiers)

	// COMMISSION_BONUS_TIERS set but empty turns the bonus off.
	c, err = config.FromEnv(lookup(map[string]string{"COMMISSION_BONUS_TIERS": ""}))
	require.NoError(t, err)
	require.Empty(t, c.CommissionBonusTiers)
}

func TestProductionNeedsRealSecrets(t *testing.T) {
	_, err := config.FromEnv(lookup(map[string]string{"ENV": "production"}))
	require.ErrorContains(t, err, "JWT_SECRET")
	_, err = config.FromEnv(lookup(map[string]string{"ENV": "production", "JWT_SECRET": "short"}))
	require.ErrorContains(t, err, "JWT_SECRET")
	_, err = config.FromEnv(lookup(map[string]string{"ENV": "production", "JWT_SECRET": strings.Repeat("s", 40)}))
	require.ErrorContains(t, err, "STRIPE_WEBHOOK_SECRET")
	c, err := config.FromEnv(lookup(map[string]string{"ENV": "production", "JWT_SECRET": strings.Repeat("s", 40),
		"STRIPE_SECRET_KEY": "sk_live_x", "STRIPE_WEBHOOK_SECRET": "whsec_x"}))
	require.NoError(t, err)
	require.True(t, c.AdminRequireMFA, "MFA for admins is on by default in production")
}

func TestErrorsNameTheVariable(t *testing.T) {
	_, err := config.FromEnv(lookup(map[string]string{
		"ENV": "staging", "DB_MAX_CONNS": "x", "CREDIT_VALUE_CENTS": "-1", "COMMISSION_BONUS_TIERS": "0.9", "SHUTDOWN_TIMEOUT": "soon",
		"ADMIN_REQUIRE_MFA": "maybe", "EMBEDDED_PG_PORT": "99999", "LOG_LEVEL": "verbose", "LOG_FORMAT": "xml",
		"STRIPE_API_URL": "notaurl",
	}))
	for _, name := range []string{"ENV", "DB_MAX_CONNS", "CREDIT_VALUE_CENTS", "COMMISSION_BONUS_TIERS", "SHUTDOWN_TIMEOUT",
		"ADMIN_REQUIRE_MFA", "EMBEDDED_PG_PORT", "LOG_LEVEL", "LOG_FORMAT", "STRIPE_API_URL"} {
		require.ErrorContains(t, err, name)
	}
}

func TestExportRetention(t *testing.T) {
	c, err := config.FromEnv(lookup(nil))
	require.NoError(t, err)
	require.Equal(t, 7*24*time.Hour, c.ExportRetention, "default 7 days")
	for in, want := range map[string]time.Duration{"30d": 30 * 24 * time.Hour, "36h": 36 * time.Hour, "1m": time.Minute} {
		c, err := config.FromEnv(lookup(map[string]string{"EXPORT_RETENTION": in}))
		require.NoError(t, err, in)
		require.Equal(t, want, c.ExportRetention, in)
	}
	for _, bad := range []string{"soon", "-1d", "30s", "1.5d"} {
		_, err := config.FromEnv(lookup(map[string]string{"EXPORT_RETENTION": bad}))
		require.ErrorContains(t, err, "EXPORT_RETENTION", bad)
	}
}

// The subscriptions' variables: their defaults, and errors naming each.
func TestWebSocketVariables(t *testing.T) {
	c, err := config.FromEnv(lookup(nil))
	require.NoError(t, err)
	require.Equal(t, 256, c.WSSubscriberBuffer)
	require.Equal(t, 25, c.WSMaxSubscriptions)
	require.Equal(t, 10, c.WSMaxConnectionsPerUser)
	require.Equal(t, 3*time.Second, c.WSInitTimeout)
	require.Equal(t, time.Minute, c.WSCatchUpWindow)
	c, err = config.FromEnv(lookup(map[string]string{"WS_CATCHUP_WINDOW": "10m"}))
	require.NoError(t, err)
	require.Equal(t, 10*time.Minute, c.WSCatchUpWindow)
	_, err = config.FromEnv(lookup(map[string]string{"WS_SUBSCRIBER_BUFFER": "0", "WS_MAX_SUBSCRIPTIONS": "x",
		"WS_MAX_CONNECTIONS_PER_USER": "-1", "WS_INIT_TIMEOUT": "0s", "WS_CATCHUP_WINDOW": "10ms"}))
	for _, name := range []string{"WS_SUBSCRIBER_BUFFER", "WS_MAX_SUBSCRIPTIONS", "WS_MAX_CONNECTIONS_PER_USER", "WS_INIT_TIMEOUT", "WS_CATCHUP_WINDOW"} {
		require.ErrorContains(t, err, name)
	}
}

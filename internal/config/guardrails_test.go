package config_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/leadmarket/leadmarket/internal/config"
)

func TestGuardrailDefaults(t *testing.T) {
	c, err := config.FromEnv(lookup(nil))
	require.NoError(t, err)
	require.True(t, c.RateLimitsEnabled)
	require.Empty(t, c.RedisURL)
	require.Equal(t, []int{10, 60, 100}, []int{c.RateLimitPurchase, c.RateLimitBrowse, c.RateLimitStandard})
	require.Equal(t, time.Minute, c.RateLimitWindow)
	require.Equal(t, []int{5000, 10, 30, 500, 65536}, []int{c.ComplexityLimit, c.DepthLimit, c.AliasLimit, c.FieldLimit, c.MaxDocumentBytes})
	require.Empty(t, c.TrustedProxies)
	require.Empty(t, c.CORSOrigins)
}

func TestGuardrailVariables(t *testing.T) {
	c, err := config.FromEnv(lookup(map[string]string{
		"REDIS_URL": "redis://:secret@cache.internal:6380/2", "RATE_LIMIT_WINDOW": "30s", "FIELD_LIMIT": "200",
		"TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.7", "CORS_ORIGINS": "https://app.example.com, http://localhost:5173",
	}))
	require.NoError(t, err)
	require.Equal(t, 30*time.Second, c.RateLimitWindow)
	require.Equal(t, 200, c.FieldLimit)
	require.Equal(t, []string{"10.0.0.0/8", "192.168.1.7"}, c.TrustedProxies)
	require.Equal(t, []string{"https://app.example.com", "http://localhost:5173"}, c.CORSOrigins)

	_, err = config.FromEnv(lookup(map[string]string{
		"REDIS_URL": "memcached://x", "RATE_LIMIT_WINDOW": "10ms", "FIELD_LIMIT": "0", "RATE_LIMIT_BROWSE": "-1",
		"TRUSTED_PROXIES": "10.0.0.0/8,proxy.internal", "CORS_ORIGINS": "https://app.example.com/path",
	}))
	for _, name := range []string{"REDIS_URL", "RATE_LIMIT_WINDOW", "FIELD_LIMIT", "RATE_LIMIT_BROWSE", "TRUSTED_PROXIES", "CORS_ORIGINS"} {
		require.ErrorContains(t, err, name)
	}
}

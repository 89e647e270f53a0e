package config_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/leadmarket/leadmarket/internal/config"
)

func TestVerificationDefaults(t *testing.T) {
	c, err := config.FromEnv(lookup(nil))
	require.NoError(t, err)
	require.False(t, c.VerificationEnabled(), "no key: verification is off")
	require.Equal(t, "https://api.millionverifier.com", c.MillionVerifierURL)
	require.Equal(t, "https://api.zerobounce.net", c.ZeroBounceURL)
	require.Equal(t, 5, c.VerifyConcurrency)
	require.Equal(t, 20*time.Second, c.VerifyTimeout)
	require.Equal(t, 3, c.VerifyMaxAttempts)
	require.Equal(t, 5*time.Minute, c.VerifySweepInterval)
	require.Equal(t, 30*24*time.Hour, c.BounceRefundWindow)

	c, err = config.FromEnv(lookup(map[string]string{
		"ZEROBOUNCE_API_KEY": "zb", "MILLIONVERIFIER_URL": "http://127.0.0.1:9999/", "VERIFY_CONCURRENCY": "8",
		"VERIFY_TIMEOUT": "5s", "VERIFY_MAX_ATTEMPTS": "4", "VERIFY_SWEEP_INTERVAL": "30s", "BOUNCE_REFUND_WINDOW": "720h",
	}))
	require.NoError(t, err)
	require.True(t, c.VerificationEnabled())
	require.Equal(t, "http://127.0.0.1:9999", c.MillionVerifierURL)
	require.Equal(t, []any{8, 5 * time.Second, 4, 30 * time.Second, 30 * 24 * time.Hour},
		[]any{c.VerifyConcurrency, c.VerifyTimeout, c.VerifyMaxAttempts, c.VerifySweepInterval, c.BounceRefundWindow})
}

func TestVerificationErrorsNameTheVariable(t *testing.T) {
	vars := map[string]string{
		"MILLIONVERIFIER_URL": "ftp://x", "ZEROBOUNCE_URL": "nope", "VERIFY_CONCURRENCY": "0", "VERIFY_TIMEOUT": "1s",
		"VERIFY_MAX_ATTEMPTS": "x", "VERIFY_SWEEP_INTERVAL": "10ms", "BOUNCE_REFUND_WINDOW": "30 days",
	}
	_, err := config.FromEnv(lookup(vars))
	for name := range vars {
		require.ErrorContains(t, err, name)
	}
}

func TestVerificationNeedsConnections(t *testing.T) {
	_, err := config.FromEnv(lookup(map[string]string{"ZEROBOUNCE_API_KEY": "zb", "VERIFY_CONCURRENCY": "10", "DB_MAX_CONNS": "20"}))
	require.ErrorContains(t, err, "DB_MAX_CONNS")
	_, err = config.FromEnv(lookup(map[string]string{"ZEROBOUNCE_API_KEY": "zb", "VERIFY_CONCURRENCY": "10", "DB_MAX_CONNS": "24"}))
	require.NoError(t, err)
	_, err = config.FromEnv(lookup(map[string]string{"VERIFY_CONCURRENCY": "10", "DB_MAX_CONNS": "5"}))
	require.NoError(t, err, "verification off: no connections taken")
}

func TestParseDays(t *testing.T) {
	for in, want := range map[string]time.Duration{"30d": 30 * 24 * time.Hour, "1d": 24 * time.Hour, "36h": 36 * time.Hour} {
		got, err := config.ParseDays(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, in := range []string{"d", "1.5d", "-2d", "soon"} {
		_, err := config.ParseDays(in)
		require.Error(t, err, in)
	}
}

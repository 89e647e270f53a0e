package config_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/leadmarket/leadmarket/internal/config"
)

func TestTelemetryDefaultsAreOff(t *testing.T) {
	c, err := config.FromEnv(lookup(nil))
	require.NoError(t, err)
	require.False(t, c.TracingEnabled())
	require.Empty(t, c.SentryDSN)
	require.Equal(t, "development", c.SentryEnvironment, "the environment defaults to ENV")
}

func TestTelemetryVariables(t *testing.T) {
	c, err := config.FromEnv(lookup(map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "SENTRY_DSN": "https://pub@o1.ingest.sentry.io/42",
		"SENTRY_ENVIRONMENT": "staging",
	}))
	require.NoError(t, err)
	require.True(t, c.TracingEnabled())
	require.Equal(t, "http://127.0.0.1:4318", c.OTLPEndpoint)
	require.Equal(t, "https://pub@o1.ingest.sentry.io/42", c.SentryDSN)
	require.Equal(t, "staging", c.SentryEnvironment)

	c, err = config.FromEnv(lookup(map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://otel.example/v1/traces"}))
	require.NoError(t, err)
	require.True(t, c.TracingEnabled(), "the traces endpoint alone turns tracing on")

	c, err = config.FromEnv(lookup(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "true"}))
	require.NoError(t, err)
	require.False(t, c.TracingEnabled(), "OTEL_SDK_DISABLED wins")
}

func TestTelemetryErrorsNameTheVariable(t *testing.T) {
	for name, v := range map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT":        "127.0.0.1:4318",
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "grpc://collector:4317",
		"OTEL_SDK_DISABLED":                  "maybe",
		"SENTRY_DSN":                         "https://o1.ingest.sentry.io/42", // no public key
	} {
		_, err := config.FromEnv(lookup(map[string]string{name: v}))
		require.ErrorContains(t, err, name+":", name)
	}
	_, err := config.FromEnv(lookup(map[string]string{"SENTRY_DSN": "https://secretkey@sentry.example"}))
	require.ErrorContains(t, err, "SENTRY_DSN:")
	require.NotContains(t, err.Error(), "secretkey", "the key in a bad DSN is not repeated")
}

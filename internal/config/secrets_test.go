package config_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/leadmarket/leadmarket/internal/config"
)

// production is a configuration that starts in production; each case below spoils one variable.
func production(change map[string]string) map[string]string {
	vars := map[string]string{"ENV": "production", "JWT_SECRET": strings.Repeat("j", 32),
		"STRIPE_SECRET_KEY": "sk_live_x", "STRIPE_WEBHOOK_SECRET": "whsec_live_x", "CORS_ORIGINS": "https://app.example.com"}
	for k, v := range change {
		vars[k] = v
	}
	return vars
}

func TestProductionRefusesWeakSecrets(t *testing.T) {
	_, err := config.FromEnv(lookup(production(nil)))
	require.NoError(t, err)
	for name, tc := range map[string]struct {
		change   map[string]string
		variable string
	}{
		"JWT_SECRET unset":            {map[string]string{"JWT_SECRET": ""}, "JWT_SECRET"},
		"JWT_SECRET of 31 bytes":      {map[string]string{"JWT_SECRET": strings.Repeat("j", 31)}, "JWT_SECRET"},
		"the development JWT secret":  {map[string]string{"JWT_SECRET": config.DevJWTSecret}, "JWT_SECRET"},
		"JWT_SECRET_PREVIOUS short":   {map[string]string{"JWT_SECRET_PREVIOUS": "old"}, "JWT_SECRET_PREVIOUS"},
		"JWT_SECRET_PREVIOUS dev":     {map[string]string{"JWT_SECRET_PREVIOUS": config.DevJWTSecret}, "JWT_SECRET_PREVIOUS"},
		"the README's webhook secret": {map[string]string{"STRIPE_WEBHOOK_SECRET": "whsec_live_x,whsec_dev"}, "STRIPE_WEBHOOK_SECRET"},
		"the README's Stripe key":     {map[string]string{"STRIPE_SECRET_KEY": "sk_test_123"}, "STRIPE_SECRET_KEY"},
		"CORS_ORIGINS=*":              {map[string]string{"CORS_ORIGINS": "*"}, "CORS_ORIGINS"},
		"* among other origins":       {map[string]string{"CORS_ORIGINS": "https://app.example.com,*"}, "CORS_ORIGINS"},
		"no webhook secret":           {map[string]string{"STRIPE_WEBHOOK_SECRET": " , "}, "STRIPE_WEBHOOK_SECRET"},
	} {
		_, err := config.FromEnv(lookup(production(tc.change)))
		require.ErrorContains(t, err, tc.variable+":", name)
	}

	// Outside production the same values start (the development defaults are for local work).
	c, err := config.FromEnv(lookup(map[string]string{"JWT_SECRET_PREVIOUS": "old", "CORS_ORIGINS": "*",
		"STRIPE_WEBHOOK_SECRET": "whsec_dev"}))
	require.NoError(t, err)
	require.Equal(t, config.DevJWTSecret, c.JWTSecret)
	require.Equal(t, "old", c.JWTSecretPrevious)
}

func TestSecretsThatRotate(t *testing.T) {
	c, err := config.FromEnv(lookup(production(map[string]string{
		"JWT_SECRET_PREVIOUS": strings.Repeat("p", 40), "STRIPE_WEBHOOK_SECRET": " whsec_new , whsec_old ",
	})))
	require.NoError(t, err)
	require.Equal(t, strings.Repeat("p", 40), c.JWTSecretPrevious)
	require.Equal(t, []string{"whsec_new", "whsec_old"}, c.StripeWebhookSecrets)

	c, err = config.FromEnv(lookup(nil))
	require.NoError(t, err)
	require.Empty(t, c.JWTSecretPrevious, "no previous secret by default")
	require.Empty(t, c.StripeWebhookSecrets)
}

package config_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/leadmarket/leadmarket/internal/config"
)

func TestReadDatabaseDefaults(t *testing.T) {
	c, err := config.FromEnv(lookup(nil))
	require.NoError(t, err)
	require.Empty(t, c.DatabaseReadURL, "unset: every read on DATABASE_URL")
	require.Equal(t, 10, c.DBReadMaxConns)
	require.Equal(t, 5*time.Second, c.DatabaseReadSticky)

	c, err = config.FromEnv(lookup(map[string]string{
		"DATABASE_URL":         "postgres://app@primary:5432/lm",
		"DATABASE_READ_URL":    "postgres://app@replica:5432/lm",
		"DB_READ_MAX_CONNS":    "4",
		"DATABASE_READ_STICKY": "2s",
	}))
	require.NoError(t, err)
	require.Equal(t, "postgres://app@replica:5432/lm", c.DatabaseReadURL)
	require.Equal(t, 4, c.DBReadMaxConns)
	require.Equal(t, 2*time.Second, c.DatabaseReadSticky)
}

func TestReadDatabaseErrorsNameTheVariable(t *testing.T) {
	vars := map[string]string{
		"DATABASE_URL": "postgres://app@primary:5432/lm", "DATABASE_READ_URL": "postgres://app@replica:notaport/lm",
		"DB_READ_MAX_CONNS": "0", "DATABASE_READ_STICKY": "10ms",
	}
	_, err := config.FromEnv(lookup(vars))
	for name := range vars {
		if name != "DATABASE_URL" {
			require.ErrorContains(t, err, name)
		}
	}
	// A replica of the embedded server cannot exist.
	_, err = config.FromEnv(lookup(map[string]string{"DATABASE_READ_URL": "postgres://app@replica:5432/lm"}))
	require.ErrorContains(t, err, "DATABASE_READ_URL: needs DATABASE_URL")
}

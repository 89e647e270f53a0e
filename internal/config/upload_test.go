package config_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/leadmarket/leadmarket/internal/config"
)

func TestUploadLimits(t *testing.T) {
	c, err := config.FromEnv(lookup(nil))
	require.NoError(t, err)
	require.Equal(t, int64(200<<20), c.MaxUploadBytes)
	require.Equal(t, 1_000_000, c.MaxUploadRows)
	require.Equal(t, 90*24*time.Hour, c.UploadRetention)

	c, err = config.FromEnv(lookup(map[string]string{"MAX_UPLOAD_BYTES": "1048576", "MAX_UPLOAD_ROWS": "50", "UPLOAD_RETENTION": "36h"}))
	require.NoError(t, err)
	require.Equal(t, int64(1<<20), c.MaxUploadBytes)
	require.Equal(t, 50, c.MaxUploadRows)
	require.Equal(t, 36*time.Hour, c.UploadRetention)

	_, err = config.FromEnv(lookup(map[string]string{"MAX_UPLOAD_BYTES": "200MB", "MAX_UPLOAD_ROWS": "0", "UPLOAD_RETENTION": "soon"}))
	for _, name := range []string{"MAX_UPLOAD_BYTES", "MAX_UPLOAD_ROWS", "UPLOAD_RETENTION"} {
		require.ErrorContains(t, err, name)
	}
}

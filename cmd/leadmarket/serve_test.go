package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/leadmarket/leadmarket/internal/app"
	"github.com/leadmarket/leadmarket/internal/config"
	"github.com/leadmarket/leadmarket/internal/dbtest"
)

// serve says once at start whether email verification runs: off (and why) without a key.
func TestServeSaysWhetherVerificationRuns(t *testing.T) {
	for _, tc := range []struct {
		vars map[string]string
		want string
	}{
		{nil, "email verification is off: neither MILLIONVERIFIER_API_KEY nor ZEROBOUNCE_API_KEY is set; leads stay PENDING"},
		{map[string]string{"ZEROBOUNCE_API_KEY": "zb"}, "email verification is on"},
	} {
		cfg, err := config.FromEnv(func(k string) (string, bool) { v, ok := tc.vars[k]; return v, ok })
		require.NoError(t, err)
		var logs bytes.Buffer
		logger := slog.New(slog.NewTextHandler(&logs, nil))
		a, err := app.Build(cfg, dbtest.TxDB(t), logger)
		require.NoError(t, err)
		logVerification(logger, a)
		require.Equal(t, 1, strings.Count(logs.String(), "email verification"), logs.String())
		require.Contains(t, logs.String(), tc.want)
	}
}

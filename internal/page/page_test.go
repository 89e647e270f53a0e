package page_test

import (
	"encoding/base64"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/leadmarket/leadmarket/internal/apperr"
	"github.com/leadmarket/leadmarket/internal/page"
)

func TestLimit(t *testing.T) {
	b := page.Bounds{Default: 25, Max: 100}
	n := func(i int) *int { return &i }
	for _, tc := range []struct {
		first *int
		want  int
		code  apperr.Code
	}{{nil, 25, ""}, {n(1), 1, ""}, {n(100), 100, ""}, {n(5000), 100, ""}, {n(0), 0, apperr.InvalidInput}, {n(-3), 0, apperr.InvalidInput}} {
		got, err := page.Args{First: tc.first}.Limit(b)
		if tc.code != "" {
			require.Equal(t, tc.code, apperr.CodeOf(err))
			continue
		}
		require.NoError(t, err)
		require.Equal(t, tc.want, got)
	}
}

// A cursor is opaque, round-trips, and anything that is not one of the list's cursors is
// INVALID_INPUT before it reaches SQL.
func TestCursor(t *testing.T) {
	at := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	rows := []page.TimeID{{T: at, I: "a"}, {T: at, I: "b"}, {T: at, I: "c"}}
	p := page.New(rows, 2, func(r page.TimeID) any { return r })
	require.True(t, p.HasNextPage)
	require.Len(t, p.Items, 2)
	require.Len(t, p.Cursors, 2)
	require.NotContains(t, p.Cursors[1], "b", "cursors are opaque")

	valid := func(c page.TimeID) bool { return c.I != "" && c.ValidTime() }
	got, err := page.Cursor(page.Args{After: p.Cursors[1]}, valid)
	require.NoError(t, err)
	require.Equal(t, rows[1], *got)

	none, err := page.Cursor(page.Args{}, valid)
	require.NoError(t, err)
	require.Nil(t, none)
	for _, bad := range []string{"12", "not base64!", page.Encode(map[string]any{"i": 7}), base64.RawURLEncoding.EncodeToString([]byte(`{"t":"0000-01-01T00:00:00Z","i":"x"}`)), page.Encode(page.TimeID{})} {
		_, err := page.Cursor(page.Args{After: bad}, valid)
		require.Equal(t, apperr.InvalidInput, apperr.CodeOf(err), bad)
	}
	last := page.New(rows, 3, func(r page.TimeID) any { return r })
	require.False(t, last.HasNextPage)
}

package billing

import (
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRefusalThrottle_OneEventPerClientAndWindow(t *testing.T) {
	t.Parallel()
	th := newRefusalThrottle(time.Minute)
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

	record, unrecorded := th.admit("198.51.100.7", t0)
	require.True(t, record)
	require.Zero(t, unrecorded)
	for i := range 99 {
		record, _ = th.admit("198.51.100.7", t0.Add(time.Duration(i)*500*time.Millisecond))
		require.False(t, record, "refusal %d within the window", i+2)
	}
	// Another address has its own window.
	record, _ = th.admit("203.0.113.9", t0.Add(time.Second))
	require.True(t, record)

	// After the window the next refusal is recorded and says how many were not.
	record, unrecorded = th.admit("198.51.100.7", t0.Add(time.Minute))
	require.True(t, record)
	require.Equal(t, 99, unrecorded)
	record, _ = th.admit("198.51.100.7", t0.Add(time.Minute+time.Second))
	require.False(t, record)
}

func TestRefusalThrottle_ManyAddressesShareOneEntry(t *testing.T) {
	t.Parallel()
	th := newRefusalThrottle(time.Minute)
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	recorded := 0
	for i := range maxRefusalClients + 5000 {
		if record, _ := th.admit("10.0."+strconv.Itoa(i/256)+"."+strconv.Itoa(i%256), t0); record {
			recorded++
		}
	}
	require.Equal(t, maxRefusalClients+1, recorded, "addresses past the bound share one entry, which records once")
	require.LessOrEqual(t, len(th.seen), maxRefusalClients+1)

	// Once their windows are over, expired addresses make room again.
	later := t0.Add(2 * time.Minute)
	record, _ := th.admit("192.0.2.200", later)
	require.True(t, record)
	require.Less(t, len(th.seen), maxRefusalClients)
}

package live

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/leadmarket/leadmarket/internal/auth"
	"github.com/leadmarket/leadmarket/internal/events"
)

// 50 marketplaceStats subscribers with one interval cost one computation per interval, and each
// of them receives it.
func TestMarketplaceStatsIsComputedOncePerInterval(t *testing.T) {
	var queries atomic.Int64
	s := &Service{broker: events.NewBroker(events.BrokerOptions{}), logger: slog.New(slog.NewTextHandler(io.Discard, nil)), stats: map[int]*statsGroup{}}
	s.statsFunc = func(context.Context) (Stats, error) {
		queries.Add(1)
		return Stats{At: time.Now(), LeadsActive: 7}, nil
	}
	admin := &auth.Caller{UserID: "u", IsPlatformAdmin: true, MFAOptional: true}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var streams []Stream[Stats]
	for range 50 {
		st, err := s.MarketplaceStats(ctx, admin, 1)
		require.NoError(t, err)
		streams = append(streams, st)
	}
	for _, st := range streams {
		select {
		case v := <-st.C:
			require.Equal(t, 7, v.LeadsActive)
		case <-time.After(3 * time.Second):
			t.Fatal("no stats")
		}
	}
	require.Equal(t, int64(1), queries.Load(), "one computation for the 50 subscribers of the first interval")

	_, err := s.MarketplaceStats(ctx, &auth.Caller{UserID: "v"}, 1)
	require.Error(t, err, "platform admins only")
	_, err = s.MarketplaceStats(ctx, admin, 301)
	require.Error(t, err, "intervalSeconds 1-300")
}

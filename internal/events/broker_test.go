package events_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/internal/dbtest"
	"github.com/leadmarket/leadmarket/internal/events"
)

// A subscriber that does not read is ended with ErrTooSlow once its buffer is full; a fast one
// on the same broker gets every event, not held up by it.
func TestBroker_SlowSubscriberDoesNotDelayAFastOne(t *testing.T) {
	db := dbtest.FreshDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b := events.NewBroker(events.BrokerOptions{DatabaseURL: dbtest.URL(dbtest.NameOf(ctx, db)), Buffer: 2})
	b.Register("test.n", events.Source{
		LoadFunc: func(_ context.Context, ids []string) ([]events.Item, error) {
			items := make([]events.Item, len(ids))
			for i, id := range ids {
				items[i] = events.Item{Key: id, At: time.Now(), Value: id}
			}
			return items, nil
		},
		SinceFunc: func(context.Context, time.Time) ([]events.Item, error) { return nil, nil },
	})
	go func() { _ = b.Run(ctx) }()
	<-b.Ready()
	slow := b.Subscribe(ctx, "test.n", nil)
	fast := b.Subscribe(ctx, "test.n", nil)
	received := make(chan any, 10)
	go func() {
		for v := range fast.C() {
			received <- v
		}
	}()
	// One event at a time, each awaited by the fast subscriber: it is never behind, while the
	// slow one overflows at its third.
	for i := range 10 {
		require.NoError(t, db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			return events.Publish(ctx, tx, "test.n", map[string]string{"id": fmt.Sprint(i)})
		}))
		select {
		case v := <-received:
			require.Equal(t, fmt.Sprint(i), v)
		case <-ctx.Done():
			t.Fatal("the fast subscriber was held up")
		}
	}
	var got int
	for range slow.C() {
		got++
	}
	require.LessOrEqual(t, got, 2)
	require.ErrorIs(t, slow.Err(), events.ErrTooSlow)
	require.NoError(t, fast.Err())
}

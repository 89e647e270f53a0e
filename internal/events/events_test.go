package events_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/internal/dbtest"
	"github.com/leadmarket/leadmarket/internal/events"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Run(m)) }

func TestPublish_DeliveredOnCommitOnly(t *testing.T) {
	db := dbtest.FreshDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got := make(chan events.Event, 10)
	listening := make(chan struct{})
	go func() {
		_ = events.ListenReady(ctx, dbtest.URL(dbtest.NameOf(ctx, db)), func() { close(listening) }, func(ev events.Event) { got <- ev })
	}()
	<-listening

	// A rolled-back transaction publishes nothing.
	err := db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		require.NoError(t, events.Publish(ctx, tx, "test.rolled_back", map[string]any{"n": 1}))
		return errors.New("roll back")
	})
	require.Error(t, err)
	require.NoError(t, db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		return events.Publish(ctx, tx, "test.committed", map[string]any{"n": 2})
	}))
	select {
	case ev := <-got:
		require.Equal(t, "test.committed", ev.Type)
		require.JSONEq(t, `{"n":2}`, string(ev.Payload))
	case <-ctx.Done():
		t.Fatal("no event delivered")
	}
	select {
	case ev := <-got:
		t.Fatalf("unexpected event %s", ev.Type)
	case <-time.After(200 * time.Millisecond):
	}

	require.Error(t, events.Publish(ctx, db, "test.too_big", map[string]string{"x": string(make([]byte, 9000))}))
}

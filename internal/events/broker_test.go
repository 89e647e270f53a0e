package events_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

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
		LoadFunc: func(_ context.Context, refs []events.Ref) ([]events.Item, error) {
			items := make([]events.Item, len(refs))
			for i, r := range refs {
				items[i] = events.Item{Key: r.ID, At: time.Now(), Value: r.ID}
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

// tableSource reads the events of typ from test_events, as a domain package reads its table; its
// catch-up pages hold 3 rows, so a catch-up takes many pages.
func tableSource(db *bun.DB, typ string) events.Source {
	scan := func(ctx context.Context, q string, args ...any) ([]events.Item, error) {
		var rows []struct {
			ID string    `bun:"id"`
			At time.Time `bun:"at"`
		}
		if err := db.NewRaw(q, args...).Scan(ctx, &rows); err != nil {
			return nil, err
		}
		items := make([]events.Item, len(rows))
		for i, r := range rows {
			items[i] = events.Item{Key: r.ID, At: r.At, Value: r.ID}
		}
		return items, nil
	}
	return events.Source{
		LoadFunc: func(ctx context.Context, refs []events.Ref) ([]events.Item, error) {
			return scan(ctx, "SELECT id::text, at FROM test_events WHERE id = ANY(?::bigint[]) ORDER BY id", pgdialect.Array(events.IDs(refs)))
		},
		SinceFunc: func(ctx context.Context, since time.Time) ([]events.Item, error) {
			return scan(ctx, "SELECT id::text, at FROM test_events WHERE typ = ? AND at >= ? ORDER BY at, id LIMIT 3", typ, since)
		},
	}
}

// The database is unreachable for several times the catch-up window while events commit: on
// reconnecting the broker reads each table from the last event it delivered from it (or, for a
// type that had none, from its first LISTEN), page after page, so a subscriber gets every event
// once, in commit order, however long the outage; the backlog, five buffers long, reaches a
// subscriber that keeps reading at the pace it reads, while one that stopped reading is ended
// with ErrTooSlow.
func TestBroker_CatchesUpAfterAnOutageLongerThanItsWindow(t *testing.T) {
	db := dbtest.FreshDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, err := db.ExecContext(ctx, "CREATE TABLE test_events (id bigserial PRIMARY KEY, typ text NOT NULL, at timestamptz NOT NULL DEFAULT now())")
	require.NoError(t, err)
	url := dbtest.URL(dbtest.NameOf(ctx, db))
	var down atomic.Bool
	b := events.NewBroker(events.BrokerOptions{
		Buffer: 4, CatchUpWindow: 200 * time.Millisecond, CatchUpWait: time.Second, MaxBackoff: 100 * time.Millisecond,
		ConnFunc: func(ctx context.Context, fn func(*pgx.Conn) error) error {
			if down.Load() {
				return errors.New("the database is down")
			}
			conn, err := pgx.Connect(ctx, url)
			if err != nil {
				return err
			}
			defer conn.Close(context.WithoutCancel(ctx))
			return fn(conn)
		},
	})
	b.Register("test.a", tableSource(db, "test.a"))
	b.Register("test.b", tableSource(db, "test.b"))
	go func() { _ = b.Run(ctx) }()
	<-b.Ready()
	commit := func(typ string) string {
		var id string
		require.NoError(t, db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			if err := tx.NewRaw("INSERT INTO test_events (typ) VALUES (?) RETURNING id::text", typ).Scan(ctx, &id); err != nil {
				return err
			}
			return events.Publish(ctx, tx, typ, map[string]string{"id": id})
		}))
		return id
	}
	// Steady readers: a few milliseconds per event, slower than a catch-up delivers.
	read := func(s *events.Subscription) <-chan string {
		out := make(chan string, 100)
		go func() {
			defer close(out)
			for v := range s.C() {
				time.Sleep(3 * time.Millisecond)
				out <- v.(string)
			}
		}()
		return out
	}
	a, bs := b.Subscribe(ctx, "test.a", nil), b.Subscribe(ctx, "test.b", nil)
	stalled := b.Subscribe(ctx, "test.a", nil)
	gotA, gotB := read(a), read(bs)
	var wantA, wantB []string
	wantA = append(wantA, commit("test.a"))
	require.Equal(t, wantA[0], <-gotA)

	down.Store(true)
	_, err = db.ExecContext(ctx, "SELECT pg_terminate_backend(?)", b.BackendPID())
	require.NoError(t, err)
	start := time.Now()
	for i := range 20 {
		wantA = append(wantA, commit("test.a"))
		wantB = append(wantB, commit("test.b"))
		if i%2 == 0 {
			time.Sleep(75 * time.Millisecond)
		}
	}
	require.Greater(t, time.Since(start), 3*200*time.Millisecond, "the outage is longer than the window")
	require.Zero(t, b.Reconnects(), "still down")
	down.Store(false)
	require.Eventually(t, func() bool { return b.Reconnects() == 1 }, 10*time.Second, 10*time.Millisecond)
	wantA = append(wantA, commit("test.a")) // and live again

	collect := func(got <-chan string, n int) []string {
		var out []string
		for len(out) < n {
			select {
			case v, ok := <-got:
				require.True(t, ok, "ended after %d: %v", len(out), out)
				out = append(out, v)
			case <-ctx.Done():
				t.Fatalf("got %d of %d: %v", len(out), n, out)
			}
		}
		return out
	}
	require.Equal(t, wantA[1:], collect(gotA, len(wantA)-1), "every event once, in commit order")
	require.Equal(t, wantB, collect(gotB, len(wantB)), "a type with no event before the outage too")
	require.GreaterOrEqual(t, b.CaughtUp(), 40)
	require.NoError(t, a.Err())
	require.NoError(t, bs.Err())
	for range stalled.C() {
	}
	require.ErrorIs(t, stalled.Err(), events.ErrTooSlow)
	select {
	case v := <-gotA:
		t.Fatalf("a duplicate: %s", v)
	case <-time.After(300 * time.Millisecond):
	}
}

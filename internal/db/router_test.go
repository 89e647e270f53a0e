package db_test

import (
	"context"
	"database/sql"
	"math"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/internal/db"
	"github.com/leadmarket/leadmarket/internal/dbtest"
	"github.com/leadmarket/leadmarket/internal/redistest"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Run(m)) }

// openPair opens the package database twice, as the primary and as the read database.
func openPair(t *testing.T) (primary, read *bun.DB) {
	t.Helper()
	ctx := context.Background()
	url := dbtest.URL(dbtest.NameOf(ctx, dbtest.DB(t)))
	primary, err := db.Open(ctx, url, 2)
	require.NoError(t, err)
	t.Cleanup(func() { _ = primary.Close() })
	read, err = db.OpenRead(ctx, url, 2, db.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = read.Close() })
	return primary, read
}

func TestReadDatabaseHasItsOwnApplicationName(t *testing.T) {
	t.Parallel()
	primary, read := openPair(t)
	ctx := context.Background()
	name := func(bdb *bun.DB) string {
		var n string
		require.NoError(t, bdb.NewRaw("SELECT current_setting('application_name')").Scan(ctx, &n))
		return n
	}
	require.Equal(t, db.ApplicationName, name(primary))
	require.Equal(t, db.ReadApplicationName, name(read))

	// A URL that names its connections keeps its name.
	named, err := db.OpenRead(ctx, dbtest.URL(dbtest.NameOf(ctx, primary))+"&application_name=replica-1", 1, db.Options{})
	require.NoError(t, err)
	defer named.Close()
	require.Equal(t, "replica-1", name(named))
}

func TestRouterReader(t *testing.T) {
	t.Parallel()
	primary, read := openPair(t)
	ctx := context.Background()
	const sticky = 300 * time.Millisecond
	r := db.NewRouter(primary, read, db.RouterOptions{Sticky: sticky})

	require.Same(t, primary, db.Reader(ctx, primary), "outside a session (jobs, HTTP handlers): the primary")
	require.Same(t, read, db.Reader(r.Session(ctx, "u1", false), primary), "a query operation: the replica")
	require.Same(t, read, db.Reader(r.Session(ctx, "", false), primary), "an anonymous one too")
	require.Same(t, primary, db.Reader(r.Session(ctx, "u1", true), primary), "a mutation: the primary")
	other := dbtest.DB(t)
	require.Same(t, other, db.Reader(r.Session(ctx, "u1", false), other), "a handle the router does not route stays")

	// One session, one database: decided at its first read.
	s := r.Session(ctx, "u1", false)
	require.Same(t, read, db.Reader(s, primary))
	r.Wrote(ctx, "u1")
	require.Same(t, read, db.Reader(s, primary), "an operation in flight keeps its database")

	// After u1's write, u1's next operations read the primary (this "replica" is no standby: its
	// replay position is unknown), others' the replica; after the window, u1 is back.
	require.Same(t, primary, db.Reader(r.Session(ctx, "u1", false), primary))
	require.Same(t, read, db.Reader(r.Session(ctx, "u2", false), primary))
	time.Sleep(sticky + 100*time.Millisecond)
	require.Same(t, read, db.Reader(r.Session(ctx, "u1", false), primary))

	// Without a read database, everything on the primary.
	none := db.NewRouter(primary, nil, db.RouterOptions{})
	none.Wrote(ctx, "u1")
	require.Same(t, primary, db.Reader(none.Session(ctx, "u1", false), primary))
}

func TestReplayed(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		mark   int64
		replay sql.NullInt64
		want   bool
	}{
		{"standby past the write", 100, sql.NullInt64{Int64: 150, Valid: true}, true},
		{"standby at the write", 100, sql.NullInt64{Int64: 100, Valid: true}, true},
		{"standby behind the write", 100, sql.NullInt64{Int64: 99, Valid: true}, false},
		{"not a standby", 100, sql.NullInt64{}, false},
		{"write position unknown", math.MaxInt64, sql.NullInt64{Int64: 1 << 40, Valid: true}, false},
	} {
		require.Equal(t, tc.want, db.Replayed(tc.mark, tc.replay), tc.name)
	}
}

func TestMarks(t *testing.T) {
	t.Parallel()
	for name, m := range map[string]db.Marks{
		"memory": db.NewMemoryMarks(),
		"redis":  db.NewRedisMarks(redistest.Client(t), redistest.Prefix(t)),
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			_, ok, err := m.Get(ctx, "a")
			require.NoError(t, err)
			require.False(t, ok)

			require.NoError(t, m.Mark(ctx, "a", 200, time.Second))
			require.NoError(t, m.Mark(ctx, "a", 100, time.Second)) // an earlier write finishing last
			lsn, ok, err := m.Get(ctx, "a")
			require.NoError(t, err)
			require.True(t, ok)
			require.Equal(t, int64(200), lsn, "the greater position is kept")
			require.NoError(t, m.Mark(ctx, "a", 1<<40, time.Second))
			lsn, _, _ = m.Get(ctx, "a")
			require.Equal(t, int64(1<<40), lsn)

			require.NoError(t, m.Mark(ctx, "b", math.MaxInt64, 200*time.Millisecond))
			lsn, ok, _ = m.Get(ctx, "b")
			require.True(t, ok)
			require.Greater(t, lsn, int64(1<<50), "an unknown position stays ahead of any replica")
			time.Sleep(300 * time.Millisecond)
			_, ok, err = m.Get(ctx, "b")
			require.NoError(t, err)
			require.False(t, ok, "a mark expires with its window")
		})
	}
}

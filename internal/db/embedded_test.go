package db_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/internal/db"
)

func TestEmbeddedKeepsDataAcrossRestarts(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL server")
	}
	ctx := context.Background()
	dir := t.TempDir()
	if os.Geteuid() == 0 {
		// The server runs as the postgres user, which must get through t.TempDir()'s 0700 parents.
		require.NoError(t, os.Chmod(dir, 0o755))
		require.NoError(t, os.Chmod(filepath.Dir(dir), 0o755))
	}
	port := freePort(t)
	opts := db.EmbeddedOptions{DataDir: dir, Port: port}

	pg, err := db.StartEmbedded(ctx, opts)
	require.NoError(t, err)
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = pg.Stop()
		}
	})
	require.Equal(t, db.EmbeddedURL(port), pg.URL())

	bdb, err := db.Open(ctx, pg.URL(), 2)
	require.NoError(t, err)
	var name string
	require.NoError(t, bdb.NewRaw("SELECT current_database()").Scan(ctx, &name))
	require.Equal(t, "leadmarket", name)
	_, err = bdb.ExecContext(ctx, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here')")
	require.NoError(t, err)
	require.NoError(t, bdb.Close())

	// A second process on the same data directory (seed while serve runs) joins the running
	// server; whichever leaves first leaves it running for the other, and the last one stops it.
	connect := func() *bun.DB {
		c, err := db.Open(ctx, pg.URL(), 2)
		require.NoError(t, err)
		require.NoError(t, c.PingContext(ctx))
		return c
	}
	first := connect()
	joined, err := db.StartEmbedded(ctx, opts)
	require.NoError(t, err)
	require.Equal(t, pg.URL(), joined.URL())
	joinedDB := connect()
	require.NoError(t, joinedDB.Close())
	require.NoError(t, joined.Stop()) // the joiner leaves first
	require.NoError(t, first.PingContext(ctx), "the server still runs for the first")

	second, err := db.StartEmbedded(ctx, opts)
	require.NoError(t, err)
	secondDB := connect()
	require.NoError(t, first.Close())
	require.NoError(t, pg.Stop()) // the starter leaves first now
	require.NoError(t, secondDB.PingContext(ctx), "the server still runs for the one that joined")
	require.NoError(t, secondDB.Close())
	require.NoError(t, second.Stop()) // the last one out stops it
	stopped = true
	_, err = os.Stat(filepath.Join(dir, "pg", "data", "postmaster.pid"))
	require.ErrorIs(t, err, os.ErrNotExist, "the server stopped")

	// A server killed earlier leaves postmaster.pid behind, its pid maybe reused by another
	// process (here: this one), which PostgreSQL alone would take for a running server.
	pidFile := filepath.Join(dir, "pg", "data", "postmaster.pid")
	require.NoError(t, os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"+filepath.Join(dir, "pg", "data")+"\n"), 0o600))

	pg, err = db.StartEmbedded(ctx, opts)
	require.NoError(t, err)
	stopped = false
	bdb, err = db.Open(ctx, pg.URL(), 2)
	require.NoError(t, err)
	var v string
	require.NoError(t, bdb.NewRaw("SELECT v FROM kept").Scan(ctx, &v))
	require.Equal(t, "still here", v)
	require.NoError(t, bdb.Close())
	require.NoError(t, pg.Stop())
	stopped = true
}

func TestEmbeddedRefusesTakenPort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	dir := t.TempDir()
	if os.Geteuid() == 0 {
		require.NoError(t, os.Chmod(dir, 0o755))
		require.NoError(t, os.Chmod(filepath.Dir(dir), 0o755))
	}
	_, err = db.StartEmbedded(context.Background(), db.EmbeddedOptions{
		DataDir: dir,
		Port:    uint32(l.Addr().(*net.TCPAddr).Port),
	})
	require.ErrorContains(t, err, "taken by another process")
}

// freePort returns a port nothing listens on at the moment.
func freePort(t *testing.T) uint32 {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	return uint32(port)
}

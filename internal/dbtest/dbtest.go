// Package dbtest is the test harness: a real PostgreSQL (TEST_DATABASE_URL, default the local
// server, else an embedded one), one migrated database per test package cloned from a template, a
// transaction per test rolled back at cleanup (TestTx, or TxDB for code that takes a *bun.DB),
// and fresh databases for tests that need commits of their own (FreshDB).
//
// When TEST_DATABASE_URL is unset and nothing answers on 127.0.0.1:5432 within 2 s, the tests
// use an embedded server (db.StartEmbedded) on 127.0.0.1:54339 with its data under
// $TMPDIR/leadmarket-test-pg. The first test process starts it, the others reuse it, and it keeps
// running after the tests for the next run. LEADMARKET_TEST_FORCE_EMBEDDED=1 uses it even when
// the local server answers.
package dbtest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/internal/audit"
	"github.com/leadmarket/leadmarket/internal/db"
	"github.com/leadmarket/leadmarket/migrations"
)

// DefaultURL is the server tests use when TEST_DATABASE_URL is unset.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// EmbeddedPort is the port of the embedded server tests fall back to.
const EmbeddedPort = 54339

var (
	baseOnce sync.Once
	baseURL  string
	baseErr  error
	pkgOnce  sync.Once
	pkgDB    *bun.DB
	pkgName  string
	pkgErr   error
	fresh    sync.Mutex
	freshes  []string
)

// Run is TestMain's body: it runs the package's tests and drops the databases they made.
//
//	func TestMain(m *testing.M) { os.Exit(dbtest.Run(m)) }
func Run(m *testing.M) int {
	code := m.Run()
	ctx := context.Background()
	if pkgDB != nil {
		_ = pkgDB.Close()
	}
	fresh.Lock()
	names := append(freshes, pkgName)
	fresh.Unlock()
	if len(names) == 1 && pkgName == "" {
		return code // no test used a database: don't go looking for a server
	}
	if admin, err := openDatabase(ctx, ""); err == nil {
		for _, n := range names {
			if n != "" {
				_, _ = admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+quoteIdent(n)+" WITH (FORCE)")
			}
		}
		_ = admin.Close()
	}
	return code
}

// DB returns the package's migrated database, shared by its tests. Tests that commit must create
// data of their own (factories make unique rows) and assert only on it.
func DB(t testing.TB) *bun.DB {
	t.Helper()
	pkgOnce.Do(func() {
		pkgName, pkgErr = cloneTemplate(context.Background())
		if pkgErr == nil {
			pkgDB, pkgErr = openDatabase(context.Background(), pkgName)
		}
	})
	if pkgErr != nil {
		t.Fatalf("dbtest: %v", pkgErr)
	}
	return pkgDB
}

// TestTx returns a transaction on the package database, rolled back when the test ends.
func TestTx(t testing.TB) bun.Tx {
	t.Helper()
	tx, err := DB(t).BeginTx(context.Background(), &sql.TxOptions{})
	if err != nil {
		t.Fatalf("dbtest: begin: %v", err)
	}
	t.Cleanup(func() { _ = tx.Rollback() })
	return tx
}

// FreshDB returns a database of the test's own, migrated and empty, dropped with the package.
func FreshDB(t testing.TB) *bun.DB {
	t.Helper()
	ctx := context.Background()
	name, err := cloneTemplate(ctx)
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	fresh.Lock()
	freshes = append(freshes, name)
	fresh.Unlock()
	bdb, err := openDatabase(ctx, name)
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	t.Cleanup(func() { _ = bdb.Close() })
	return bdb
}

// URL returns the connection URL of database name on the test server ("" for the server's own).
// The first call picks the server, starting the embedded one if needed; if that fails, URL
// returns DefaultURL's and opening a database reports why.
func URL(name string) string {
	base, err := serverURL()
	if err != nil {
		base = DefaultURL
	}
	if name == "" {
		return base
	}
	u, err := url.Parse(base)
	if err != nil {
		return base
	}
	u.Path = "/" + name
	return u.String()
}

// NameOf returns the database name of a handle opened by this package.
func NameOf(ctx context.Context, bdb bun.IDB) string {
	var name string
	_ = bdb.NewRaw("SELECT current_database()").Scan(ctx, &name)
	return name
}

func openDatabase(ctx context.Context, name string) (*bun.DB, error) {
	if _, err := serverURL(); err != nil {
		return nil, err
	}
	return db.Open(ctx, URL(name), 30)
}

// serverURL returns the test server's URL: TEST_DATABASE_URL, else DefaultURL if something
// answers there, else the embedded server's, started once per process.
func serverURL() (string, error) {
	baseOnce.Do(func() {
		if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
			baseURL = u
			return
		}
		if os.Getenv("LEADMARKET_TEST_FORCE_EMBEDDED") == "" {
			if c, err := net.DialTimeout("tcp", "127.0.0.1:5432", 2*time.Second); err == nil {
				_ = c.Close()
				baseURL = DefaultURL
				return
			}
		}
		baseURL, baseErr = embeddedServer(context.Background())
	})
	return baseURL, baseErr
}

// embeddedServer returns the URL of the shared embedded test server, starting it unless it is
// already up. A file lock keeps concurrent test processes (go test runs packages in parallel)
// from starting it twice; the ones that wait then find it running.
func embeddedServer(ctx context.Context) (string, error) {
	embURL := db.EmbeddedURL(EmbeddedPort)
	if serverAnswers(ctx, embURL) {
		return embURL, nil
	}
	dir := filepath.Join(os.TempDir(), "leadmarket-test-pg")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("embedded test server: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, "start.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", fmt.Errorf("embedded test server: %w", err)
	}
	defer func() { _ = lock.Close() }() // closing releases the lock; nothing was written to it
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("embedded test server: lock: %w", err)
	}
	if serverAnswers(ctx, embURL) {
		return embURL, nil
	}
	if _, err := db.StartEmbedded(ctx, db.EmbeddedOptions{
		DataDir: dir,
		Port:    EmbeddedPort,
		Logger:  slog.New(slog.DiscardHandler),
	}); err != nil {
		return "", fmt.Errorf("embedded test server: %w", err)
	}
	return embURL, nil // left running for the other packages and the next run
}

func serverAnswers(ctx context.Context, u string) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	bdb, err := db.Open(ctx, u, 1)
	if err != nil {
		return false
	}
	_ = bdb.Close()
	return true
}

// templateName is derived from the migrations' content, so a changed migration makes a new one.
func templateName() (string, error) {
	h := sha256.New()
	err := fs.WalkDir(migrations.FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(migrations.FS, path)
		h.Write([]byte(path))
		h.Write(b)
		return err
	})
	if err != nil {
		return "", err
	}
	return "lm_template_" + hex.EncodeToString(h.Sum(nil))[:16], nil
}

// cloneTemplate makes sure the migrated template exists (once across concurrent test processes)
// and clones it into a new database.
func cloneTemplate(ctx context.Context) (string, error) {
	tmpl, err := templateName()
	if err != nil {
		return "", err
	}
	admin, err := openDatabase(ctx, "")
	if err != nil {
		return "", fmt.Errorf("connect to %s (set TEST_DATABASE_URL): %w", URL(""), err)
	}
	defer admin.Close()
	conn, err := admin.Conn(ctx)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock(7246118002)"); err != nil {
		return "", err
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock(7246118002)") //nolint:errcheck
	var exists bool
	if err := conn.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = ?)", tmpl).Scan(&exists); err != nil {
		return "", err
	}
	if !exists {
		building := tmpl + "_build"
		_, _ = conn.ExecContext(ctx, "DROP DATABASE IF EXISTS "+quoteIdent(building)+" WITH (FORCE)")
		if _, err := conn.ExecContext(ctx, "CREATE DATABASE "+quoteIdent(building)); err != nil {
			return "", fmt.Errorf("create template: %w", err)
		}
		tdb, err := openDatabase(ctx, building)
		if err != nil {
			return "", err
		}
		_, err = db.Migrate(ctx, tdb, audit.EnsurePartitions)
		_ = tdb.Close()
		if err != nil {
			return "", fmt.Errorf("migrate template: %w", err)
		}
		if _, err := conn.ExecContext(ctx, "ALTER DATABASE "+quoteIdent(building)+" RENAME TO "+quoteIdent(tmpl)); err != nil {
			return "", fmt.Errorf("rename template: %w", err)
		}
		// Templates of earlier migration sets are stale now; drop them (best effort: one still
		// being cloned by another run stays until next time).
		var stale []string
		if err := admin.NewRaw("SELECT datname FROM pg_database WHERE datname LIKE 'lm\\_template\\_%' AND datname <> ?", tmpl).
			Scan(ctx, &stale); err == nil {
			for _, name := range stale {
				_, _ = conn.ExecContext(ctx, "DROP DATABASE IF EXISTS "+quoteIdent(name))
			}
		}
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "lm_test_" + hex.EncodeToString(b[:])
	if _, err := conn.ExecContext(ctx, "CREATE DATABASE "+quoteIdent(name)+" TEMPLATE "+quoteIdent(tmpl)); err != nil {
		return "", fmt.Errorf("clone template: %w", err)
	}
	return name, nil
}

func quoteIdent(s string) string { return `"` + s + `"` }

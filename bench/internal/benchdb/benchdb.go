// Package benchdb gives the benchmark commands their databases: a seeded one, created once and
// reused while it still holds what a run asks for (Prepare), or an empty one made anew for every
// run (Recreate), each on a PostgreSQL server the command is pointed at (DefaultServerURL).
package benchdb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/internal/audit"
	"github.com/leadmarket/leadmarket/internal/auth"
	"github.com/leadmarket/leadmarket/internal/db"
	"github.com/leadmarket/leadmarket/internal/lead"
	"github.com/leadmarket/leadmarket/internal/seed"
)

// LocalServerURL is the server DefaultServerURL falls back to: the local PostgreSQL's test database.
const LocalServerURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// DefaultServerURL is the PostgreSQL server the benchmark databases are created on unless a
// command is told otherwise: BENCH_DATABASE_URL, else TEST_DATABASE_URL, else LocalServerURL.
func DefaultServerURL() string {
	for _, name := range []string{"BENCH_DATABASE_URL", "TEST_DATABASE_URL"} {
		if v := os.Getenv(name); v != "" {
			return v
		}
	}
	return LocalServerURL
}

// Options say which seeded database Prepare should give.
type Options struct {
	// ServerURL is the PostgreSQL server to create the database on; its database part is only
	// used to connect.
	ServerURL string
	// Name is the benchmark database's name on that server.
	Name string
	// Leads is how many demo leads the database must hold.
	Leads int
	// Fresh drops and seeds the database again even when it could be reused.
	Fresh bool
	// Log receives progress: why an existing database is seeded again, that seeding starts, and
	// the seed's own progress. Nil discards it.
	Log io.Writer
	// LogPrefix starts each line Prepare itself writes to Log, such as "browse: ".
	LogPrefix string
	// MigrateExisting applies the migrations an existing database lacks, when it holds o.Leads
	// leads, instead of seeding it again: a benchmark of what a migration changes (its indexes)
	// measures the same rows before and after it, and the time the migration took.
	MigrateExisting bool
}

// Prepared is the database Prepare gave.
type Prepared struct {
	// URL connects to the benchmark database.
	URL string
	// Users are the seed's demo users (seed.Result.Users).
	Users []seed.DemoUser
	// Report is one line for the command to print: which database on which server, and whether
	// it was reused or seeded, with the time that took.
	Report string
}

// Prepare reuses the database o.Name on o.ServerURL when it exists with every migration applied
// and exactly o.Leads leads, unless o.Fresh; otherwise it drops it, creates it, migrates it and
// seeds it with o.Leads leads. Either way it returns the database's URL and demo users. On an
// error after o.ServerURL parsed, the returned URL is set all the same, so that a caller can drop
// what Prepare may have left.
func Prepare(ctx context.Context, o Options) (Prepared, error) {
	logw := o.Log
	if logw == nil {
		logw = io.Discard
	}
	benchURL, host, err := databaseURL(o.ServerURL, o.Name)
	if err != nil {
		return Prepared{}, fmt.Errorf("-database-url: %w", err)
	}
	p := Prepared{URL: benchURL}
	where := o.Name + " on " + host

	admin, err := connect(ctx, o.ServerURL)
	if err != nil {
		return p, err
	}
	defer admin.Close(context.WithoutCancel(ctx))
	var exists bool
	if err := admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", o.Name).Scan(&exists); err != nil {
		return p, fmt.Errorf("look for %s: %w", o.Name, err)
	}

	if exists && !o.Fresh {
		start := time.Now()
		users, why, err := reuse(ctx, benchURL, o)
		if err != nil {
			return p, err
		}
		if users != nil {
			p.Users = users
			p.Report = fmt.Sprintf("database: %s reused (%d leads, checked in %s; -fresh seeds it again)",
				where, o.Leads, time.Since(start).Round(time.Millisecond))
			return p, nil
		}
		fmt.Fprintf(logw, "%s%s %s: seeding it again\n", o.LogPrefix, o.Name, why)
	}

	start := time.Now()
	if err := recreate(ctx, admin, o.Name); err != nil {
		return p, err
	}
	bdb, err := OpenMigrated(ctx, benchURL, 4)
	if err != nil {
		return p, err
	}
	defer bdb.Close()
	fmt.Fprintf(logw, "%sseeding %d leads into %s ...\n", o.LogPrefix, o.Leads, o.Name)
	res, err := seed.Demo(ctx, bdb, seed.Options{Leads: o.Leads,
		Logger: slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	if err != nil {
		return p, fmt.Errorf("seed: %w", err)
	}
	if res.Leads != o.Leads {
		return p, fmt.Errorf("seed: %d leads written, %d wanted", res.Leads, o.Leads)
	}
	p.Users = res.Users
	p.Report = fmt.Sprintf("database: %s created, migrated and seeded with %d leads in %s",
		where, res.Leads, time.Since(start).Round(time.Millisecond))
	return p, nil
}

// reuse returns the demo users of the existing database at benchURL, or nil users and why it
// cannot be reused.
func reuse(ctx context.Context, benchURL string, o Options) ([]seed.DemoUser, string, error) {
	bdb, err := db.Open(ctx, benchURL, 4)
	if err != nil {
		return nil, "", err
	}
	defer bdb.Close()
	pending, err := db.PendingMigrations(ctx, bdb)
	if err != nil {
		return nil, "has no readable migration status", nil
	}
	if len(pending) > 0 && !o.MigrateExisting {
		return nil, fmt.Sprintf("lacks %d migrations", len(pending)), nil
	}
	leads, err := lead.Count(ctx, bdb, lead.Scope{})
	if err != nil {
		return nil, "", fmt.Errorf("count leads of %s: %w", o.Name, err)
	}
	if leads != o.Leads {
		return nil, fmt.Sprintf("holds %d leads, not %d", leads, o.Leads), nil
	}
	if len(pending) > 0 {
		logw := o.Log
		if logw == nil {
			logw = io.Discard
		}
		start := time.Now()
		if _, err := db.Migrate(ctx, bdb, audit.EnsurePartitions); err != nil {
			return nil, "", fmt.Errorf("migrate %s: %w", o.Name, err)
		}
		fmt.Fprintf(logw, "%s%s: applied %d migrations to its %d leads in %s: %v\n", o.LogPrefix, o.Name,
			len(pending), leads, time.Since(start).Round(time.Millisecond), pending)
	}
	// Demo is idempotent: on a complete database it only reads, and it returns the users.
	res, err := seed.Demo(ctx, bdb, seed.Options{Leads: o.Leads})
	if err != nil {
		return nil, "", fmt.Errorf("seed: %w", err)
	}
	return res.Users, "", nil
}

// Recreate drops the database name on the server at serverURL, if it exists, creates it empty
// and returns its URL. Migrating it is up to the caller.
func Recreate(ctx context.Context, serverURL, name string) (string, error) {
	benchURL, _, err := databaseURL(serverURL, name)
	if err != nil {
		return "", fmt.Errorf("-database-url: %w", err)
	}
	admin, err := connect(ctx, serverURL)
	if err != nil {
		return "", err
	}
	defer admin.Close(context.WithoutCancel(ctx))
	if err := recreate(ctx, admin, name); err != nil {
		return "", err
	}
	return benchURL, nil
}

// Drop drops the database name on the server at serverURL, if it exists, even while others are
// connected to it.
func Drop(ctx context.Context, serverURL, name string) error {
	admin, err := connect(ctx, serverURL)
	if err != nil {
		return err
	}
	defer admin.Close(context.WithoutCancel(ctx))
	return drop(ctx, admin, name)
}

// PrepareOwner is Prepare, then the first workspace owner among the demo users and a day's token
// for it signed with secret: the buyer the browse-shaped benchmarks browse as. The Prepared is
// returned also on error (its URL, for a caller that drops the database).
func PrepareOwner(ctx context.Context, o Options, secret string) (Prepared, seed.DemoUser, string, error) {
	p, err := Prepare(ctx, o)
	if err != nil {
		return p, seed.DemoUser{}, "", err
	}
	owner, err := Owner(p.Users)
	if err != nil {
		return p, owner, "", err
	}
	token, err := auth.NewTokens(secret).Issue(owner.Subject, owner.Email, false, 24*time.Hour)
	return p, owner, token, err
}

// Owner returns the first workspace owner among the demo users.
func Owner(users []seed.DemoUser) (seed.DemoUser, error) {
	for _, u := range users {
		if u.Role == seed.RoleWorkspaceOwner {
			return u, nil
		}
	}
	return seed.DemoUser{}, errors.New("the seed returned no workspace owner")
}

// databaseURL returns serverURL with name as its database, and the server's host.
func databaseURL(serverURL, name string) (dbURL, host string, err error) {
	u, err := url.Parse(serverURL)
	if err != nil {
		return "", "", err
	}
	u.Path = "/" + name
	return u.String(), u.Host, nil
}

// connect opens one administrative connection to the server at serverURL.
func connect(ctx context.Context, serverURL string) (*pgx.Conn, error) {
	admin, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return nil, fmt.Errorf("connect to %s (set -database-url or BENCH_DATABASE_URL): %w", redact(serverURL), err)
	}
	return admin, nil
}

// recreate drops name, if it exists, and creates it empty.
func recreate(ctx context.Context, admin *pgx.Conn, name string) error {
	if err := drop(ctx, admin, name); err != nil {
		return err
	}
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	return nil
}

// drop drops name, if it exists, ending its connections.
func drop(ctx context.Context, admin *pgx.Conn, name string) error {
	if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop %s: %w", name, err)
	}
	return nil
}

// redact hides the password of a database URL.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// Main is a benchmark command's main: it runs run and exits 1 with its error, named after the
// command.
func Main(name string, run func() error) {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(1)
	}
}

// OpenMigrated opens the database at dbURL with pool connections and applies the migrations (and
// the audit partitions), as the server does at start.
func OpenMigrated(ctx context.Context, dbURL string, pool int) (*bun.DB, error) {
	bdb, err := db.Open(ctx, dbURL, pool)
	if err != nil {
		return nil, err
	}
	if _, err := db.Migrate(ctx, bdb, audit.EnsurePartitions); err != nil {
		bdb.Close()
		return nil, err
	}
	return bdb, nil
}

// Scratch creates the database name on serverURL afresh and migrated, for a benchmark that
// drops it when it is done: it returns the database open with pool connections, its URL, and
// done, which closes it and drops it (reporting a failed drop on stderr).
func Scratch(ctx context.Context, serverURL, name string, pool int) (bdb *bun.DB, dbURL string, done func(), err error) {
	if dbURL, err = Recreate(ctx, serverURL, name); err != nil {
		return nil, "", nil, err
	}
	drop := func() {
		if err := Drop(context.WithoutCancel(ctx), serverURL, name); err != nil {
			fmt.Fprintln(os.Stderr, name+":", err)
		}
	}
	if bdb, err = OpenMigrated(ctx, dbURL, pool); err != nil {
		drop()
		return nil, "", nil, err
	}
	return bdb, dbURL, func() { _ = bdb.Close(); drop() }, nil
}

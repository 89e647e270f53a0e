package db

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	embeddedpostgres "github.com/fergusstrange/embedded-postgres"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// systemPostgresRoot is where Debian and Ubuntu packages install the server, one directory per
// major version (/usr/lib/postgresql/15/bin/initdb, ...).
const systemPostgresRoot = "/usr/lib/postgresql"

// minPostgresMajor is the oldest server the migrations support.
const minPostgresMajor = 15

// EmbeddedDatabase is the database StartEmbedded creates and EmbeddedURL points at.
const EmbeddedDatabase = "leadmarket"

// EmbeddedOptions configures StartEmbedded.
type EmbeddedOptions struct {
	// DataDir holds everything the server keeps: the cluster in DataDir/pg/data, the runtime files
	// in DataDir/pg/runtime, the Unix sockets in DataDir/pg/sock and, when running as root, the
	// wrapper scripts in DataDir/pg/bin. It is made absolute. Default: ".data".
	DataDir string
	// Port is the TCP port the server listens on, on 127.0.0.1 only. Default: 5433.
	Port uint32
	// Logger receives the server's start-up and shutdown output at debug level (the server's own
	// log goes to DataDir/pg/data/log). Default: slog.Default().
	Logger *slog.Logger
}

// Embedded is a private PostgreSQL server run from the system's binaries, started by
// StartEmbedded. Its data survives Stop and is reused by the next start on the same DataDir.
type Embedded struct {
	pg   *embeddedpostgres.EmbeddedPostgres
	port uint32
	// joined is true when another process (a running `serve`, say) had already started the
	// server on this data directory: it is used as is.
	joined     bool
	clusterDir string
	logger     *slog.Logger
}

// EmbeddedURL returns the URL of the leadmarket database of an embedded server on port.
func EmbeddedURL(port uint32) string {
	return fmt.Sprintf("postgres://postgres:postgres@127.0.0.1:%d/%s?sslmode=disable", port, EmbeddedDatabase)
}

// StartEmbedded starts a PostgreSQL server on 127.0.0.1:opts.Port with its data in
// opts.DataDir, running initdb only when the data directory is empty, and creates the leadmarket
// database if it is missing. It uses the newest PostgreSQL (15+) installed under
// /usr/lib/postgresql and never downloads anything. Run as root, it runs the server as the
// postgres system user, which must be able to reach DataDir.
//
// It returns an error when no server binaries are installed, when the data directory holds a
// cluster of another major version (it never wipes data), when a server already runs on the data
// directory, or when the port is taken.
func StartEmbedded(ctx context.Context, opts EmbeddedOptions) (*Embedded, error) {
	if opts.DataDir == "" {
		opts.DataDir = ".data"
	}
	if opts.Port == 0 {
		opts.Port = 5433
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	dataDir, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return nil, fmt.Errorf("embedded postgres: %w", err)
	}
	var (
		root        = filepath.Join(dataDir, "pg")
		clusterDir  = filepath.Join(root, "data")
		runtimeDir  = filepath.Join(root, "runtime")
		socketDir   = filepath.Join(root, "sock")
		wrappersDir = filepath.Join(root, "bin")
	)

	sysBin, major, err := findPostgresBinaries()
	if err != nil {
		return nil, err
	}
	if err := checkClusterVersion(clusterDir, major); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("embedded postgres: %w", err)
	}
	if err := os.Mkdir(socketDir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("embedded postgres: %w", err)
	}
	if port, ok := runningServerPort(clusterDir); ok {
		// Another leadmarket process runs this data directory's server: share it, so `seed` or
		// `token --admin` work while `serve` runs.
		e := &Embedded{port: port, joined: true, clusterDir: clusterDir, logger: opts.Logger}
		if err := e.createDatabase(ctx); err != nil {
			return nil, err
		}
		opts.Logger.Info("using the embedded postgres already running", "data_dir", clusterDir, "port", port)
		return e, nil
	}
	if err := removeStaleLocks(clusterDir, socketDir); err != nil {
		return nil, err
	}
	if err := checkPortFree(opts.Port); err != nil {
		return nil, err
	}

	// binariesPath is the directory embedded-postgres runs bin/initdb and bin/pg_ctl from.
	binariesPath := filepath.Dir(sysBin)
	if os.Geteuid() == 0 {
		// initdb and postgres refuse to run as root: run them as the postgres system user
		// through wrapper scripts, in directories it owns.
		if err := prepareForPostgresUser(root, socketDir, wrappersDir, sysBin); err != nil {
			return nil, err
		}
		binariesPath = root
	}

	cfg := embeddedpostgres.DefaultConfig().
		Version(postgresVersion(major)).
		Port(opts.Port).
		Database("postgres").
		DataPath(clusterDir).
		RuntimePath(runtimeDir).
		BinariesPath(binariesPath).
		CachePath(filepath.Join(root, "cache")). // never read: the binaries are already in place
		BinaryRepositoryURL("http://127.0.0.1:1/no-downloads").
		Locale("C.UTF-8").
		Encoding("UTF8").
		StartTimeout(30 * time.Second).
		Logger(&slogWriter{log: opts.Logger}).
		StartParameters(map[string]string{
			"listen_addresses":        "127.0.0.1",
			"unix_socket_directories": socketDir,
			// Keep the server's log with its data instead of in the start-up temp file.
			"logging_collector": "on",
		})
	pg := embeddedpostgres.NewDatabase(cfg)
	opts.Logger.Info("starting embedded postgres", "data_dir", clusterDir, "port", opts.Port, "binaries", sysBin)
	if err := pg.Start(); err != nil {
		return nil, fmt.Errorf("embedded postgres: start: %w", err)
	}
	e := &Embedded{pg: pg, port: opts.Port, clusterDir: clusterDir, logger: opts.Logger}
	if err := e.createDatabase(ctx); err != nil {
		_ = pg.Stop()
		return nil, err
	}
	return e, nil
}

// URL returns the connection URL of the server's leadmarket database.
func (e *Embedded) URL() string { return EmbeddedURL(e.port) }

// Stop shuts the server down, waiting for it to finish, unless other processes are still
// connected to it (a `serve` while a `seed` ends, whichever started it): the last one to leave
// stops it. The data stays for the next start. Close this process's own connections first.
func (e *Embedded) Stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if n, err := e.otherClients(ctx); err == nil && n > 0 {
		e.logger.Info("embedded postgres left running for the other processes using it", "connections", n)
		return nil
	}
	if e.joined {
		return stopPostmaster(e.clusterDir)
	}
	if err := e.pg.Stop(); err != nil {
		return fmt.Errorf("embedded postgres: stop: %w", err)
	}
	return nil
}

// otherClients counts the connections of leadmarket processes to the server (by their
// application_name; the embedded-postgres library's own health check connection, say, does not
// count). A backend whose client has just closed its connection lingers a moment: the count is
// given up to a second to reach zero.
func (e *Embedded) otherClients(ctx context.Context) (int, error) {
	conn, err := pgx.Connect(ctx, fmt.Sprintf("postgres://postgres:postgres@127.0.0.1:%d/postgres?sslmode=disable", e.port))
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var n int
	for deadline := time.Now().Add(time.Second); ; time.Sleep(50 * time.Millisecond) {
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE backend_type = 'client backend' AND application_name = $1`, ApplicationName).Scan(&n); err != nil {
			return 0, err
		}
		if n == 0 || time.Now().After(deadline) {
			return n, nil
		}
	}
}

// stopPostmaster asks the server running clusterDir, which another process started, for a fast
// shutdown and waits until it is gone.
func stopPostmaster(clusterDir string) error {
	b, err := os.ReadFile(filepath.Join(clusterDir, "postmaster.pid"))
	if err != nil {
		return nil // already stopped
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if err != nil || !postmasterRunning(pid, clusterDir) {
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGINT); err != nil {
		return fmt.Errorf("embedded postgres: stop pid %d: %w", pid, err)
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if !postmasterRunning(pid, clusterDir) {
			return nil
		}
	}
	return fmt.Errorf("embedded postgres: pid %d did not stop within 30 s", pid)
}

func (e *Embedded) createDatabase(ctx context.Context) error {
	adminURL := fmt.Sprintf("postgres://postgres:postgres@127.0.0.1:%d/postgres?sslmode=disable", e.port)
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("embedded postgres: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", EmbeddedDatabase).Scan(&exists); err != nil {
		return fmt.Errorf("embedded postgres: %w", err)
	}
	if exists {
		return nil
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{EmbeddedDatabase}.Sanitize())
	var pgErr *pgconn.PgError
	if err != nil && !(errors.As(err, &pgErr) && pgErr.Code == "42P04") { // duplicate_database: created meanwhile
		return fmt.Errorf("embedded postgres: create database %s: %w", EmbeddedDatabase, err)
	}
	return nil
}

// findPostgresBinaries returns the bin directory of the newest server under
// /usr/lib/postgresql and its major version.
func findPostgresBinaries() (string, int, error) {
	entries, err := os.ReadDir(systemPostgresRoot)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", 0, fmt.Errorf("embedded postgres: %w", err)
	}
	var majors []int
	for _, e := range entries {
		major, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		bin := filepath.Join(systemPostgresRoot, e.Name(), "bin")
		if isExecutable(filepath.Join(bin, "initdb")) && isExecutable(filepath.Join(bin, "pg_ctl")) && isExecutable(filepath.Join(bin, "postgres")) {
			majors = append(majors, major)
		}
	}
	if len(majors) == 0 {
		return "", 0, fmt.Errorf("embedded postgres: no PostgreSQL server found (looked for %s/<version>/bin/initdb); install PostgreSQL %d+ (e.g. apt-get install postgresql) or set DATABASE_URL", systemPostgresRoot, minPostgresMajor)
	}
	sort.Ints(majors)
	major := majors[len(majors)-1]
	if major < minPostgresMajor {
		return "", 0, fmt.Errorf("embedded postgres: PostgreSQL %d found in %s, %d+ is required; install a newer one or set DATABASE_URL", major, systemPostgresRoot, minPostgresMajor)
	}
	return filepath.Join(systemPostgresRoot, strconv.Itoa(major), "bin"), major, nil
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// postgresVersion maps a major version to embedded-postgres's version, which it uses only to
// decide whether an existing data directory is reusable (its PG_VERSION must match).
func postgresVersion(major int) embeddedpostgres.PostgresVersion {
	switch major {
	case 15:
		return embeddedpostgres.V15
	case 16:
		return embeddedpostgres.V16
	case 17:
		return embeddedpostgres.V17
	case 18:
		return embeddedpostgres.V18
	}
	return embeddedpostgres.PostgresVersion(fmt.Sprintf("%d.0.0", major))
}

// checkClusterVersion refuses a non-empty data directory that embedded-postgres would not reuse:
// it wipes such a directory and runs initdb again, and data must never be lost that way.
func checkClusterVersion(clusterDir string, major int) error {
	entries, err := os.ReadDir(clusterDir)
	if errors.Is(err, os.ErrNotExist) || (err == nil && len(entries) == 0) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("embedded postgres: %w", err)
	}
	b, err := os.ReadFile(filepath.Join(clusterDir, "PG_VERSION"))
	if err != nil {
		return fmt.Errorf("embedded postgres: %s is not empty and holds no PostgreSQL cluster (%w); move it away to start afresh", clusterDir, err)
	}
	if v := strings.TrimSpace(string(b)); v != strconv.Itoa(major) {
		return fmt.Errorf("embedded postgres: %s holds a PostgreSQL %s cluster but the installed server is %d; dump and move it away, or install PostgreSQL %s", clusterDir, v, major, v)
	}
	return nil
}

// runningServerPort returns the port of a live server of clusterDir, read from its
// postmaster.pid (pid on line 1, port on line 4), when one answers on 127.0.0.1.
func runningServerPort(clusterDir string) (uint32, bool) {
	b, err := os.ReadFile(filepath.Join(clusterDir, "postmaster.pid"))
	if err != nil {
		return 0, false
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 4 {
		return 0, false
	}
	pid, err1 := strconv.Atoi(strings.TrimSpace(lines[0]))
	port, err2 := strconv.ParseUint(strings.TrimSpace(lines[3]), 10, 16)
	if err1 != nil || err2 != nil || !postmasterRunning(pid, clusterDir) {
		return 0, false
	}
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
	if err != nil {
		return 0, false
	}
	_ = c.Close()
	return uint32(port), true
}

// removeStaleLocks deletes the postmaster.pid and socket lock files a killed server left behind.
// PostgreSQL does so itself when their pid is dead, but not when the pid has been reused by
// another process, which is common in containers. It fails when the server is still running.
func removeStaleLocks(clusterDir, socketDir string) error {
	pidFile := filepath.Join(clusterDir, "postmaster.pid")
	b, err := os.ReadFile(pidFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("embedded postgres: %w", err)
	}
	firstLine, _, _ := strings.Cut(string(b), "\n")
	if pid, err := strconv.Atoi(strings.TrimSpace(firstLine)); err == nil && postmasterRunning(pid, clusterDir) {
		return fmt.Errorf("embedded postgres: a server (pid %d) is already running on %s; stop it first", pid, clusterDir)
	}
	if err := os.Remove(pidFile); err != nil {
		return fmt.Errorf("embedded postgres: remove stale %s: %w", pidFile, err)
	}
	locks, _ := filepath.Glob(filepath.Join(socketDir, ".s.PGSQL.*"))
	for _, l := range locks {
		_ = os.Remove(l)
	}
	return nil
}

// postmasterRunning reports whether pid is alive and, where /proc tells, a server of clusterDir.
func postmasterRunning(pid int, clusterDir string) bool {
	if pid <= 0 || errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return true // alive, and no way to tell what it is
	}
	return bytes.Contains(cmdline, []byte(clusterDir))
}

func checkPortFree(port uint32) error {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return fmt.Errorf("embedded postgres: port %d on 127.0.0.1 is taken by another process; stop it or choose another port: %w", port, err)
	}
	return l.Close()
}

// prepareForPostgresUser gives root's server to the postgres system user: root (DataDir/pg, where
// initdb creates the cluster) and the socket directory are handed to it, and DataDir/pg/bin gets
// initdb and pg_ctl wrappers that run the real tools as postgres. pg_ctl then starts the real
// postgres next to itself, as postgres.
func prepareForPostgresUser(root, socketDir, wrappersDir, sysBin string) error {
	u, err := user.Lookup("postgres")
	if err != nil {
		return fmt.Errorf("embedded postgres: running as root needs the postgres system user to run the server: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.MkdirAll(wrappersDir, 0o755); err != nil {
		return fmt.Errorf("embedded postgres: %w", err)
	}
	for _, dir := range []string{root, socketDir} {
		if err := os.Chown(dir, uid, gid); err != nil {
			return fmt.Errorf("embedded postgres: %w", err)
		}
	}
	if out, err := exec.Command("runuser", "-u", "postgres", "--", "test", "-w", root, "-a", "-x", root).CombinedOutput(); err != nil {
		return fmt.Errorf("embedded postgres: the postgres user cannot use %s (make its parent directories traversable, e.g. chmod o+x, or choose another data directory): %v %s", root, err, out)
	}
	// embedded-postgres writes initdb's password file as root, mode 0600: hand it over first.
	wrappers := map[string]string{
		"initdb": `for a in "$@"; do case "$a" in --pwfile=*) chown postgres "${a#--pwfile=}";; esac; done` + "\n",
		"pg_ctl": "",
	}
	for name, prelude := range wrappers {
		script := "#!/bin/sh\n" +
			"# Written by leadmarket's embedded PostgreSQL: " + name + " refuses to run as root.\n" +
			"set -e\ncd /\n" + prelude +
			"exec runuser -u postgres -- " + shellQuote(filepath.Join(sysBin, name)) + ` "$@"` + "\n"
		if err := os.WriteFile(filepath.Join(wrappersDir, name), []byte(script), 0o755); err != nil {
			return fmt.Errorf("embedded postgres: write wrapper: %w", err)
		}
	}
	return nil
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// slogWriter passes the server tools' output to a logger, a line at a time.
type slogWriter struct{ log *slog.Logger }

var _ io.Writer = (*slogWriter)(nil)

func (w *slogWriter) Write(p []byte) (int, error) {
	sc := bufio.NewScanner(bytes.NewReader(p))
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			w.log.Debug(line, "component", "postgres")
		}
	}
	return len(p), nil
}

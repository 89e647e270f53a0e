// Command leadmarket is Leadmarket's one binary:
//
//	leadmarket [serve]                         run the API (the default)
//	leadmarket migrate                         apply the embedded migrations
//	leadmarket seed --demo [--leads N] [--json] write deterministic demo data and print tokens
//	leadmarket token --email E [--admin] [--mfa] [--ttl D]
//	leadmarket health [--url U]                 exit 0 when the server's /readyz answers 200
//
// Configuration comes from environment variables (see README.md). With DATABASE_URL unset, every
// subcommand that needs a database runs a private PostgreSQL under DATA_DIR, started and stopped
// by the command itself.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/leadmarket/leadmarket/internal/config"
	"github.com/leadmarket/leadmarket/internal/telemetry"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "leadmarket:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := config.FromEnv(os.LookupEnv)
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	logger := newLogger(cfg, stderr)
	cmd := "serve"
	switch {
	case len(args) > 0 && (args[0] == "-h" || args[0] == "--help"):
		cmd = "help"
	case len(args) > 0 && !strings.HasPrefix(args[0], "-"):
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, cfg, logger, args)
	case "migrate":
		return migrate(ctx, cfg, logger, args)
	case "seed":
		return seedCmd(ctx, cfg, logger, args, stdout)
	case "token":
		return tokenCmd(ctx, cfg, logger, args, stdout)
	case "health":
		return healthCmd(ctx, cfg, args, stdout)
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, "usage: leadmarket [serve|migrate|seed --demo [--leads N] [--json]|token --email E [--admin] [--mfa] [--ttl D]|health [--url U]]")
		return nil
	default:
		return errors.New("unknown command " + cmd + " (serve, migrate, seed, token, health)")
	}
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if cfg.LogFormat == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	// Lines logged inside a trace name it (trace_id, span_id).
	return slog.New(telemetry.LogHandler(h))
}

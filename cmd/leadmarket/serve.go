package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/internal/app"
	"github.com/leadmarket/leadmarket/internal/config"
	"github.com/leadmarket/leadmarket/internal/idempotency"
)

func serve(ctx context.Context, cfg config.Config, logger *slog.Logger, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	addr := fs.String("addr", cfg.HTTPAddr, "listen address (HTTP_ADDR)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	bdb, _, closeDB, err := openDatabase(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer closeDB()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *addr, err)
	}
	go purgeIdempotencyKeys(ctx, bdb, logger)
	return app.New(cfg, bdb, logger).Run(ctx, ln)
}

// purgeIdempotencyKeys forgets expired idempotency keys every hour.
func purgeIdempotencyKeys(ctx context.Context, bdb bun.IDB, logger *slog.Logger) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if n, err := idempotency.Purge(ctx, bdb); err != nil && ctx.Err() == nil {
			logger.Error("purge idempotency keys", "err", err)
		} else if n > 0 {
			logger.Info("purged idempotency keys", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

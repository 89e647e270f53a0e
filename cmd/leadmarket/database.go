package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/internal/audit"
	"github.com/leadmarket/leadmarket/internal/config"
	"github.com/leadmarket/leadmarket/internal/db"
)

// openDatabase connects to DATABASE_URL, or starts the embedded PostgreSQL when it is unset, and
// applies the migrations. The returned close function closes the pool and stops the embedded
// server.
func openDatabase(ctx context.Context, cfg config.Config, logger *slog.Logger) (*bun.DB, string, func(), error) {
	url := cfg.DatabaseURL
	stopEmbedded := func() {}
	if url == "" {
		emb, err := db.StartEmbedded(ctx, db.EmbeddedOptions{DataDir: cfg.DataDir, Port: cfg.EmbeddedPort, Logger: logger})
		if err != nil {
			return nil, "", nil, fmt.Errorf("start embedded PostgreSQL (set DATABASE_URL to use your own): %w", err)
		}
		url = emb.URL()
		stopEmbedded = func() {
			if err := emb.Stop(); err != nil {
				logger.Error("stop embedded PostgreSQL", "err", err)
			}
		}
		logger.Info("embedded PostgreSQL running", "data_dir", cfg.DataDir, "port", cfg.EmbeddedPort)
	}
	bdb, err := db.Open(ctx, url, cfg.DBMaxConns)
	if err != nil {
		stopEmbedded()
		return nil, "", nil, err
	}
	closeAll := func() {
		_ = bdb.Close()
		stopEmbedded()
	}
	applied, err := db.Migrate(ctx, bdb, audit.EnsurePartitions)
	if err != nil {
		closeAll()
		return nil, "", nil, err
	}
	if len(applied) > 0 {
		logger.Info("migrations applied", "migrations", applied)
	}
	return bdb, url, closeAll, nil
}

package main

import (
	"context"
	"log/slog"

	"github.com/leadmarket/leadmarket/internal/config"
)

func migrate(ctx context.Context, cfg config.Config, logger *slog.Logger, _ []string) error {
	_, _, closeDB, err := openDatabase(ctx, cfg, logger)
	if err != nil {
		return err
	}
	closeDB()
	logger.Info("database is migrated")
	return nil
}

// Package app assembles Leadmarket's services into the HTTP server from explicit dependencies
// (a configuration and a database): cmd/leadmarket runs it, and the API tests run the very same
// assembly in process.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/graph"
	"github.com/leadmarket/leadmarket/internal/audit"
	"github.com/leadmarket/leadmarket/internal/auth"
	"github.com/leadmarket/leadmarket/internal/config"
	"github.com/leadmarket/leadmarket/internal/credit"
	"github.com/leadmarket/leadmarket/internal/db"
	"github.com/leadmarket/leadmarket/internal/httpserver"
	"github.com/leadmarket/leadmarket/internal/marketplace"
	"github.com/leadmarket/leadmarket/internal/partner"
	"github.com/leadmarket/leadmarket/internal/user"
	"github.com/leadmarket/leadmarket/internal/workspace"
)

// UserCacheTTL is how long a verified token's user is remembered between requests.
const UserCacheTTL = 30 * time.Second

// New returns the HTTP server for cfg on bdb.
func New(cfg config.Config, bdb *bun.DB, logger *slog.Logger) *httpserver.Server {
	tiers := make([]partner.BonusTier, len(cfg.CommissionBonusTiers))
	for i, t := range cfg.CommissionBonusTiers {
		tiers[i] = partner.BonusTier{PassRate: t.PassRate, Points: t.Points}
	}
	res := &graph.Resolver{
		WorkspaceService:   workspace.NewService(bdb),
		MarketplaceService: marketplace.NewService(bdb, partner.Commission{CreditValueCents: cfg.CreditValueCents, Tiers: tiers}),
		CreditService:      credit.NewService(bdb, cfg.AdminRequireMFA),
		PartnerService:     partner.NewService(bdb),
		AuditService:       audit.NewService(bdb, cfg.AdminRequireMFA),
	}
	gql := graph.NewHandler(res, graph.HandlerOptions{
		Production: cfg.IsProduction(), AdminRequireMFA: cfg.AdminRequireMFA, Logger: logger,
		RecordSecurityEventFunc: func(ctx context.Context, ev audit.SecurityEvent) error {
			return audit.RecordSecurity(ctx, bdb, ev)
		},
	})
	return httpserver.New(httpserver.Options{
		Addr: cfg.HTTPAddr, Production: cfg.IsProduction(), Logger: logger, GraphQL: gql,
		GraphQLMiddleware: graph.LoadersMiddleware(res),
		Authenticator:     auth.NewAuthenticator(auth.NewTokens(cfg.JWTSecret), user.NewStore(bdb), UserCacheTTL),
		ReadyFunc:         func(ctx context.Context) error { return Ready(ctx, bdb) },
		ShutdownTimeout:   cfg.ShutdownTimeout,
	})
}

// Ready reports whether the database answers and every embedded migration is applied.
func Ready(ctx context.Context, bdb *bun.DB) error {
	if err := bdb.PingContext(ctx); err != nil {
		return fmt.Errorf("database unreachable: %w", err)
	}
	pending, err := db.PendingMigrations(ctx, bdb)
	if err != nil {
		return err
	}
	if len(pending) > 0 {
		return fmt.Errorf("migrations pending: %s", strings.Join(pending, ", "))
	}
	return nil
}

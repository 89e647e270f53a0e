// Package graph is Leadmarket's GraphQL transport: gqlgen's generated executor and models, thin
// resolvers that call one domain service each, the @auth directive, per-request dataloaders, the
// error presenter and the handler's assembly (NewHandler). GraphQL over HTTP, the query guardrails
// and the rate limiter are in graph/gqlhttp, which knows no schema. No SQL lives here.
package graph

import (
	"github.com/leadmarket/leadmarket/internal/audit"
	"github.com/leadmarket/leadmarket/internal/billing"
	"github.com/leadmarket/leadmarket/internal/credit"
	"github.com/leadmarket/leadmarket/internal/export"
	"github.com/leadmarket/leadmarket/internal/ingest"
	"github.com/leadmarket/leadmarket/internal/live"
	"github.com/leadmarket/leadmarket/internal/marketplace"
	"github.com/leadmarket/leadmarket/internal/partner"
	"github.com/leadmarket/leadmarket/internal/pipeline"
	"github.com/leadmarket/leadmarket/internal/verify"
	"github.com/leadmarket/leadmarket/internal/workspace"
)

// Resolver is the dependency injection point: every service a resolver may call.
type Resolver struct {
	WorkspaceService   *workspace.Service
	MarketplaceService *marketplace.Service
	CreditService      *credit.Service
	PartnerService     *partner.Service
	AuditService       *audit.Service
	BillingService     *billing.Service
	IngestService      *ingest.Service
	VerifyService      *verify.Service
	PipelineService    *pipeline.Service
	ExportService      *export.Service
	// LiveService answers the subscriptions; nil: subscribing fails.
	LiveService *live.Service
}

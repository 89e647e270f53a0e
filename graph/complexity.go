package graph

import (
	"github.com/leadmarket/leadmarket/graph/gqlhttp"
	"github.com/leadmarket/leadmarket/graph/model"
)

// setComplexity gives every connection of the schema its cost for gqlgen's complexity limit
// (gqlhttp.ConnectionCost): the generated ComplexityRoot names each connection's arguments, so
// the costs are set here rather than in gqlhttp, which knows no schema.
func setComplexity(c *ComplexityRoot) {
	c.Query.MarketplaceLeads = func(child int, first *int, _ *string, _ *model.LeadFilter, _ *model.LeadOrder, _ *string) int {
		return gqlhttp.ConnectionCost(child, first, 25)
	}
	// Facets cost what a marketplaceLeads page of the default size costs: they read about as much.
	c.Query.MarketplaceFacets = func(child int, _ *model.LeadFilter) int {
		return gqlhttp.ConnectionCost(child, nil, 25)
	}
	c.Query.MyLeads = func(child int, _ string, first *int, _ *string, _ *model.LeadFilter) int {
		return gqlhttp.ConnectionCost(child, first, 25)
	}
	c.Query.CreditTransactions = func(child int, _ string, first *int, _ *string) int {
		return gqlhttp.ConnectionCost(child, first, 25)
	}
	c.Query.AuditLogs = func(child int, _ *model.AuditLogFilter, first *int, _ *string) int {
		return gqlhttp.ConnectionCost(child, first, 50)
	}
	c.Query.WebhookEvents = func(child int, _ *model.WebhookEventFilter, first *int, _ *string) int {
		return gqlhttp.ConnectionCost(child, first, 50)
	}
	c.Query.PartnerEarnings = func(child int, _ string, first *int, _ *string) int {
		return gqlhttp.ConnectionCost(child, first, 25)
	}
	c.Query.LeadUploads = func(child int, _ string, first *int, _ *string) int {
		return gqlhttp.ConnectionCost(child, first, 25)
	}
	c.LeadUpload.Rejections = func(child int, first *int, _ *string, _ *model.RejectionReason) int {
		return gqlhttp.ConnectionCost(child, first, 50)
	}
	c.Query.WorkspaceLeads = func(child int, _ string, first *int, _ *string, _ *model.WorkspaceLeadFilter, _ *model.WorkspaceLeadOrder) int {
		return gqlhttp.ConnectionCost(child, first, 50)
	}
	c.Query.Exports = func(child int, _ *string, first *int, _ *string) int {
		return gqlhttp.ConnectionCost(child, first, 25)
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"

	"github.com/leadmarket/leadmarket/graph"
	"github.com/leadmarket/leadmarket/graph/model"
	"github.com/leadmarket/leadmarket/internal/auth"
)

// The graphql-executor side (-diagnose) is the floor of the GraphQL side: gqlgen's handler with
// the server's transport, query guardrails and @auth (not the rate limits), executing the
// measured operation over the first page, which its marketplaceLeads returns from memory. No
// SQL, no network, no token: what is left is what the GraphQL layer itself costs per page, so the raw side's CPU per request over
// this side's bounds the ratio whatever the rest of the server does.

// memoryRoot is the server's resolver root with marketplaceLeads answered from page.
type memoryRoot struct {
	*graph.Resolver
	page *model.LeadConnection
}

func (m memoryRoot) Query() graph.QueryResolver { return memoryQuery{m.Resolver.Query(), m.page} }

type memoryQuery struct {
	graph.QueryResolver
	page *model.LeadConnection
}

func (q memoryQuery) MarketplaceLeads(context.Context, *int, *string, *model.LeadFilter, *model.LeadOrder, *string) (*model.LeadConnection, error) {
	return q.page, nil
}

// startExecutor builds the executor side's handler over the first page as the server returns it.
func (e *benchEnv) startExecutor(ctx context.Context) error {
	var data struct {
		MarketplaceLeads model.LeadConnection `json:"marketplaceLeads"`
	}
	if _, err := e.graphql(ctx, measuredQuery, map[string]any{"after": nil}, &data); err != nil {
		return fmt.Errorf("executor side: fetch the first page: %w", err)
	}
	if len(data.MarketplaceLeads.Edges) != PageSize {
		return fmt.Errorf("executor side: the first page has %d edges, want %d", len(data.MarketplaceLeads.Edges), PageSize)
	}
	e.executor = graph.NewHandler(memoryRoot{&graph.Resolver{}, &data.MarketplaceLeads},
		graph.HandlerOptions{Logger: slog.New(slog.DiscardHandler)})
	return nil
}

// newExecutorWorker returns a step that runs the measured query through the executor side's
// handler, as the signed-in owner, and checks the page it answers.
func (e *benchEnv) newExecutorWorker() step {
	body, err := json.Marshal(gqlRequest{Query: measuredQuery, Variables: map[string]any{"after": nil}})
	caller := &auth.Caller{UserID: e.userID}
	return func(ctx context.Context) (int, error) {
		if err != nil {
			return 0, err
		}
		req := httptest.NewRequestWithContext(auth.WithCaller(ctx, caller), http.MethodPost, "/graphql", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		e.executor.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			return 0, fmt.Errorf("HTTP %d: %.300s", rec.Code, rec.Body.Bytes())
		}
		return 0, checkPage(rec.Body.Bytes())
	}
}

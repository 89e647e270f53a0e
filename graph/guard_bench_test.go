package graph_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/leadmarket/leadmarket/graph"
	"github.com/leadmarket/leadmarket/graph/gqlhttp"
	"github.com/leadmarket/leadmarket/graph/model"
	"github.com/leadmarket/leadmarket/internal/auth"
)

// The guardrails' refusals against a normal query, in the same run (go test -run '^$' -bench
// Guardrails ./graph/; BENCH_DEVELOPMENT=1 for the development handler, whose validation
// suggests names): gqlgen's handler with the server's transport and guards, no database. The
// normal query is the browse benchmark's document with a page answered from memory (empty: what
// is measured is GraphQL's own work), once first seen (parsed and validated) and once from the
// query cache. Each hostile document is measured against the handler as it is and against one
// whose new limits (duplicates, directives, validation errors) are raised out of the way, as the
// server was before them.

const browseDoc = `query Browse($after: String) { marketplaceLeads(first: 50, after: $after,
	filter: {countries: ["US", "GB", "DE"], seniorities: [DIRECTOR, VP, C_LEVEL]}) {
	edges { cursor node { id firstName lastName title companyName industry country priceCredits verificationStatus
		emailPreview email purchasedByMyWorkspace partner { id name } } }
	pageInfo { hasNextPage endCursor } } }`

type emptyPageRoot struct{ *graph.Resolver }

func (r emptyPageRoot) Query() graph.QueryResolver { return emptyPageQuery{r.Resolver.Query()} }

type emptyPageQuery struct{ graph.QueryResolver }

func (emptyPageQuery) MarketplaceLeads(context.Context, *int, *string, *model.LeadFilter, *model.LeadOrder, *string) (*model.LeadConnection, error) {
	return &model.LeadConnection{PageInfo: &model.PageInfo{}}, nil
}

func BenchmarkGuardrails(b *testing.B) {
	var unknownFields, unknownDirectives strings.Builder
	for i := range 300 {
		fmt.Fprintf(&unknownFields, "nope%d ", i)
	}
	for i := range 60 {
		fmt.Fprintf(&unknownDirectives, "__typename%d @nope%d @nope%d ", i, i, i+1)
	}
	countries := make([]string, 300_000)
	for i := range countries {
		countries[i] = "US"
	}
	huge, _ := json.Marshal(map[string]any{"query": "query($f: LeadFilter) { marketplaceLeads(filter: $f) { pageInfo { hasNextPage } } }",
		"variables": map[string]any{"f": map[string]any{"countries": countries}}})
	production := os.Getenv("BENCH_DEVELOPMENT") == ""
	guarded := newBenchHandler(production, gqlhttp.QueryLimits{})
	unguarded := newBenchHandler(production, gqlhttp.QueryLimits{Duplicates: 1 << 20, Directives: 1 << 20, ValidationErrors: 1 << 20})
	for _, c := range []struct {
		name   string
		doc    string
		body   []byte
		fresh  bool // a document the cache has not seen, every time
		before bool // also measure it without the new limits
	}{
		{name: "normal query, first seen", doc: browseDoc, fresh: true},
		{name: "normal query, cached", doc: browseDoc},
		{name: "500 copies of __typename", doc: "{ " + strings.Repeat("__typename ", 500) + "}", fresh: true, before: true},
		{name: "10 unknown directives on one field", doc: "{ __typename @a @b @c @d @e @f @g @h @i @j }", fresh: true, before: true},
		{name: "300 unknown fields", doc: "{ " + unknownFields.String() + "}", fresh: true, before: true},
		{name: "120 unknown directives on 60 fields", doc: "{ " + unknownDirectives.String() + "}", fresh: true, before: true},
		{name: "300,000 countries", body: huge}, // cut to 10,001 before decoding on either side
	} {
		sides := []struct {
			name string
			h    http.Handler
		}{{"guarded", guarded}}
		if c.before {
			sides = append(sides, struct {
				name string
				h    http.Handler
			}{"limits raised", unguarded})
		}
		for _, side := range sides {
			b.Run(c.name+"/"+side.name, func(b *testing.B) {
				ctx := auth.WithCaller(context.Background(), &auth.Caller{UserID: "00000000-0000-0000-0000-000000000001"})
				i := 0
				for b.Loop() {
					body := c.body
					if body == nil {
						doc := c.doc
						if c.fresh {
							i++
							doc += fmt.Sprintf("\n# %d", i)
						}
						body, _ = json.Marshal(map[string]any{"query": doc})
					}
					req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/graphql", bytes.NewReader(body))
					req.Header.Set("Content-Type", "application/json")
					rec := httptest.NewRecorder()
					side.h.ServeHTTP(rec, req)
					if rec.Code != http.StatusOK {
						b.Fatalf("status %d: %.300s", rec.Code, rec.Body.String())
					}
				}
			})
		}
	}
}

func newBenchHandler(production bool, limits gqlhttp.QueryLimits) http.Handler {
	return graph.NewHandler(emptyPageRoot{&graph.Resolver{}}, graph.HandlerOptions{Logger: slog.New(slog.DiscardHandler),
		Limits: limits, Production: production})
}

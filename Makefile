# Leadmarket's everyday commands. The README's two set-up commands are `make run` and `make test`.
export GOTOOLCHAIN := local

.PHONY: run test lint generate vet bench-browse bench-metrics bench-webhook bench-guardrails bench-seed bench-ingest bench-verify bench-bulk bench-subscriptions bench-facets build

# golangci-lint runs through the module proxy at a pinned version: nothing to install by hand.
GOLANGCI_LINT := github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v2.15.0

## run: the API on http://127.0.0.1:8080 (embedded PostgreSQL under .data/ when DATABASE_URL is unset)
run:
	go run ./cmd/leadmarket serve

## test: the whole suite against a real PostgreSQL (TEST_DATABASE_URL, default the local server,
## else an embedded one) and Redis (TEST_REDIS_URL); scripts/services.sh starts them when stopped
test:
	./scripts/services.sh
	go test -count=1 -timeout 9m ./...

## lint: golangci-lint with the committed .golangci.yml (govet, staticcheck, errcheck, ineffassign,
## unused; gofmt and goimports), generated code excluded; CI runs it before the tests
lint:
	go run $(GOLANGCI_LINT) run ./...

## generate: regenerate gqlgen's code after changing schema.graphqls or gqlgen.yml
generate:
	go tool gqlgen generate

vet:
	go vet ./...

build:
	go build -o bin/leadmarket ./cmd/leadmarket

## bench-browse: the browse benchmark (GraphQL over HTTP vs. the same page as raw SQL)
bench-browse:
	go run ./bench/browse

## bench-webhook: Stripe webhook intake (verify, store, enqueue) vs. a verify-only baseline
bench-webhook:
	go run ./bench/webhook

## bench-guardrails: the browse benchmark with rate limits off, on in memory and on in Redis (REDIS_URL)
bench-guardrails:
	go run ./bench/guardrails

## bench-seed: seed --demo's rows/s vs. a plain INSERT ... SELECT generate_series into a leads-shaped table (LEADS=100000)
bench-seed:
	go run ./bench/seed -leads $(or $(LEADS),100000)

## bench-ingest: a 200,000-row CSV uploaded over HTTP to COMPLETED vs. COPY of the same leads; peak server RSS of a 1,000,000-row upload
bench-ingest:
	go run ./bench/ingest

## bench-verify: 20,000 pending leads verified against a fake MillionVerifier answering in 20 ms vs. the limit concurrency / latency
bench-verify:
	go run ./bench/verify

## bench-bulk: bulkUpdateLeadStatus on 10,000 ids over HTTP vs. the same UPDATE through pgx; an export of 100,000 leads end to end vs. COPY of the same rows; peak server RSS
bench-bulk:
	go run ./bench/bulk

## bench-metrics: the browse benchmark's graphql-http with Prometheus metrics on (OTel off) vs. METRICS_ENABLED=false, interleaved in one run (target: cost < 3%)
bench-metrics:
	go run ./bench/browse -metrics-cost -duration $(or $(DURATION),60s)

## bench-subscriptions: two instances, 1,000 subscribers (admins on auditLogAdded, members on leadPurchased), carts bought at 100/s for 10 s: commit-to-receipt latency, lost, duplicated, peak RSS per instance vs. a bare pgx LISTEN
bench-subscriptions:
	go run ./bench/subscriptions

## bench-facets: marketplaceLeads (pages 1-4, every order), totalCount and marketplaceFacets under 300 random filter combinations, on 100,000 and 1,000,000 demo leads (COMBOS=300, SIZES=100000,1000000); the indexes' write cost
bench-facets:
	go run ./bench/facets -combos $(or $(COMBOS),300) $(if $(SIZES),-sizes $(SIZES))

DROP STATISTICS IF EXISTS leads_facets_stats;

--bun:split

CREATE INDEX CONCURRENTLY IF NOT EXISTS leads_sellable_newest_idx ON leads (created_at DESC, id DESC)
    WHERE status = 'ACTIVE' AND verification_status <> 'INVALID' AND buyers_count < max_buyers;

--bun:split

CREATE INDEX CONCURRENTLY IF NOT EXISTS leads_sellable_price_idx ON leads (price_credits, id)
    WHERE status = 'ACTIVE' AND verification_status <> 'INVALID' AND buyers_count < max_buyers;

--bun:split

CREATE INDEX CONCURRENTLY IF NOT EXISTS leads_sellable_seniority_idx ON leads (seniority, created_at DESC, id DESC)
    WHERE status = 'ACTIVE' AND verification_status <> 'INVALID' AND buyers_count < max_buyers;

--bun:split

CREATE INDEX CONCURRENTLY IF NOT EXISTS leads_title_trgm_idx ON leads USING gin (title gin_trgm_ops);

--bun:split

DROP INDEX CONCURRENTLY IF EXISTS leads_sellable_facets_idx;

--bun:split

DROP INDEX CONCURRENTLY IF EXISTS leads_sellable_newest_covering_idx;

--bun:split

DROP INDEX CONCURRENTLY IF EXISTS leads_sellable_price_covering_idx;

CREATE INDEX CONCURRENTLY IF NOT EXISTS leads_sellable_industry_idx ON leads (industry, created_at DESC, id DESC)
    WHERE status = 'ACTIVE' AND verification_status <> 'INVALID' AND buyers_count < max_buyers;

--bun:split

CREATE INDEX CONCURRENTLY IF NOT EXISTS leads_sellable_country_idx ON leads (country, created_at DESC, id DESC)
    WHERE status = 'ACTIVE' AND verification_status <> 'INVALID' AND buyers_count < max_buyers;

--bun:split

DROP INDEX CONCURRENTLY IF EXISTS leads_sellable_industry_counts_idx;

--bun:split

DROP INDEX CONCURRENTLY IF EXISTS leads_sellable_country_counts_idx;

--bun:split

DROP INDEX CONCURRENTLY IF EXISTS leads_sellable_seniority_counts_idx;

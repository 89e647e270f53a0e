-- Faceted browse at a million leads and more (issue 15). Not in a transaction: the indexes are
-- built CONCURRENTLY, so a populated leads table takes writes while they are built. Every
-- statement can run again after a failure (an interrupted concurrent build leaves an invalid
-- index, which the DROP before each CREATE removes).
--
-- Every browse index is partial on the sellable rule (lead.Sellable), exactly as written there.

CREATE EXTENSION IF NOT EXISTS btree_gin;

--bun:split

-- The facets and the title in one GIN index (btree_gin for the plain columns, pg_trgm for the
-- title's trigrams): any combination of facet values and title word is one bitmap of exactly the
-- rows that match, however rare the combination. lead.ListSellable's candidate sets, the counts
-- and the facets read it. Not the price: a range of a GIN key unions the posting lists of every
-- price in it (a quarter of the table for a common range), where the price index's range or a
-- test of the rows the facets found costs next to nothing.
DROP INDEX CONCURRENTLY IF EXISTS leads_sellable_facets_idx;

--bun:split

CREATE INDEX CONCURRENTLY leads_sellable_facets_idx ON leads
    USING gin (industry, country, seniority, company_size, verification_status, title gin_trgm_ops)
    WHERE status = 'ACTIVE' AND verification_status <> 'INVALID' AND buyers_count < max_buyers;

--bun:split

-- The two orders, covering every filtered column: the first step of a browse walks one of them
-- as an index-only scan and tests the filter on the index's own columns.
DROP INDEX CONCURRENTLY IF EXISTS leads_sellable_newest_covering_idx;

--bun:split

CREATE INDEX CONCURRENTLY leads_sellable_newest_covering_idx ON leads (created_at DESC, id DESC)
    INCLUDE (price_credits, industry, country, seniority, company_size, verification_status, partner_id, title)
    WHERE status = 'ACTIVE' AND verification_status <> 'INVALID' AND buyers_count < max_buyers;

--bun:split

DROP INDEX CONCURRENTLY IF EXISTS leads_sellable_price_covering_idx;

--bun:split

CREATE INDEX CONCURRENTLY leads_sellable_price_covering_idx ON leads (price_credits, id)
    INCLUDE (created_at, industry, country, seniority, company_size, verification_status, partner_id, title)
    WHERE status = 'ACTIVE' AND verification_status <> 'INVALID' AND buyers_count < max_buyers;

--bun:split

-- Replaced: the two orders by their covering versions, seniority's and the whole table's title
-- trigrams by the GIN index. leads_sellable_industry_idx and leads_sellable_country_idx stay: the
-- facets skip through them for the values sellable leads have.
DROP INDEX CONCURRENTLY IF EXISTS leads_sellable_newest_idx;

--bun:split

DROP INDEX CONCURRENTLY IF EXISTS leads_sellable_price_idx;

--bun:split

DROP INDEX CONCURRENTLY IF EXISTS leads_sellable_seniority_idx;

--bun:split

DROP INDEX CONCURRENTLY IF EXISTS leads_title_trgm_idx;

--bun:split

-- The facets are not independent (a company keeps its size and industry, a title its
-- seniority): the planner's estimates of a combination, which counts and candidate sets rely
-- on, come from these statistics of the columns together.
CREATE STATISTICS IF NOT EXISTS leads_facets_stats (ndistinct, dependencies, mcv)
    ON industry, country, seniority, company_size, verification_status FROM leads;

--bun:split

-- The statistics above, and the visibility map the index-only walks rely on (autovacuum sets it
-- in time; a table loaded in bulk is all-visible at once).
VACUUM (ANALYZE) leads;

DROP INDEX CONCURRENTLY IF EXISTS leads_sellable_title_counts_idx;

--bun:split

DROP TRIGGER IF EXISTS leads_title_id ON leads;

--bun:split

DROP FUNCTION IF EXISTS leads_set_title_id();

--bun:split

ALTER TABLE leads DROP COLUMN IF EXISTS title_id;

--bun:split

DROP TABLE IF EXISTS lead_titles;

-- A dictionary of the leads' distinct titles, for counts and facets with a title word (issue 15).
-- Not in a transaction: the backfill commits in batches and the index is built CONCURRENTLY, as
-- 20261217000001_facet_counts; every statement can run again after a failure.
--
-- A title word (titleContains) is a test of the title's text, which no narrow index holds: a
-- count or a facet's exact count of it read every matching row from the heap (a trigram bitmap
-- is a superset of the matches, each rechecked), about 4 µs a row. Leads have far fewer distinct
-- titles than rows. The word is matched against lead_titles (its own trigram index) and a lead's
-- title is tested by its title_id, which leads_sellable_title_counts_idx holds first with the
-- facets and the price: a count of a title word is an index-only scan of the ranges of its
-- titles' ids (lead.titleIDs, lead.preferIndexOnly).

CREATE TABLE IF NOT EXISTS lead_titles (
    id    integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- title is a leads.title as written, '' included; one row per distinct text.
    title text NOT NULL UNIQUE
);

--bun:split

CREATE INDEX IF NOT EXISTS lead_titles_title_trgm_idx ON lead_titles USING gin (title gin_trgm_ops);

--bun:split

-- title_id is set by the leads_title_id trigger from title; never by hand. No foreign key: the
-- trigger is its only writer and no title is ever removed, and a key check would lock the title's
-- row (FOR KEY SHARE) on every insert.
ALTER TABLE leads ADD COLUMN IF NOT EXISTS title_id integer;

--bun:split

-- leads_set_title_id finds the title's id, adding the title when it is new. Writers of many
-- leads at once add their titles first in one sorted statement (lead.InsertNew), so that two
-- uploads adding the same new titles wait for each other in one order and cannot deadlock; here
-- a title is only found. ON CONFLICT DO NOTHING covers a title another transaction has just
-- added: it waits for that one to end, and the lookup after it sees the committed row.
CREATE OR REPLACE FUNCTION leads_set_title_id() RETURNS trigger
    LANGUAGE plpgsql
AS $$
DECLARE
    found_id integer;
BEGIN
    SELECT t.id INTO found_id FROM lead_titles AS t WHERE t.title = NEW.title;
    IF found_id IS NULL THEN
        INSERT INTO lead_titles (title) VALUES (NEW.title) ON CONFLICT (title) DO NOTHING RETURNING id INTO found_id;
        IF found_id IS NULL THEN
            SELECT t.id INTO STRICT found_id FROM lead_titles AS t WHERE t.title = NEW.title;
        END IF;
    END IF;
    NEW.title_id := found_id;
    RETURN NEW;
END
$$;

--bun:split

DROP TRIGGER IF EXISTS leads_title_id ON leads;

--bun:split

CREATE TRIGGER leads_title_id
    BEFORE INSERT OR UPDATE OF title, title_id ON leads
    FOR EACH ROW EXECUTE FUNCTION leads_set_title_id();

--bun:split

-- The leads that existed before the trigger: their titles first, in one sorted statement.
INSERT INTO lead_titles (title)
SELECT DISTINCT l.title FROM leads AS l WHERE l.title_id IS NULL ORDER BY 1
ON CONFLICT (title) DO NOTHING;

--bun:split

-- Then their ids, a few thousand pages at a time in the table's physical order (TID ranges), each
-- batch committed: no lock is held long, and a failed run goes on where it stopped (title_id IS
-- NULL). A row the update moves lands past the range and already has its id.
DO $$
DECLARE
    pages bigint := pg_relation_size('leads') / current_setting('block_size')::bigint;
    first bigint := 0;
    step  constant bigint := 4096;
BEGIN
    WHILE first <= pages LOOP
        UPDATE leads AS l SET title_id = t.id
        FROM lead_titles AS t
        WHERE l.ctid >= format('(%s,0)', first)::tid AND l.ctid < format('(%s,0)', first + step)::tid
            AND l.title_id IS NULL AND t.title = l.title;
        COMMIT;
        first := first + step;
    END LOOP;
    -- Any the batches could not see (none unless a writer bypassed the trigger).
    UPDATE leads AS l SET title_id = t.id FROM lead_titles AS t WHERE l.title_id IS NULL AND t.title = l.title;
END
$$;

--bun:split

-- NOT NULL from a validated CHECK, so that setting it does not scan the table under an exclusive
-- lock (VALIDATE holds a lock writers can work under).
ALTER TABLE leads DROP CONSTRAINT IF EXISTS leads_title_id_not_null;

--bun:split

ALTER TABLE leads ADD CONSTRAINT leads_title_id_not_null CHECK (title_id IS NOT NULL) NOT VALID;

--bun:split

ALTER TABLE leads VALIDATE CONSTRAINT leads_title_id_not_null;

--bun:split

ALTER TABLE leads ALTER COLUMN title_id SET NOT NULL;

--bun:split

ALTER TABLE leads DROP CONSTRAINT leads_title_id_not_null;

--bun:split

-- The backfill wrote a new version of every lead that existed (no room for it on a full page),
-- and with it an entry in every index: the browse indexes are rebuilt, without the dead
-- entries, while reads and writes go on (at 1M leads they had grown by half, and their scans
-- with them). The table's dead rows are vacuumed below; new leads reuse that room.
REINDEX INDEX CONCURRENTLY leads_sellable_industry_counts_idx;

--bun:split

REINDEX INDEX CONCURRENTLY leads_sellable_country_counts_idx;

--bun:split

REINDEX INDEX CONCURRENTLY leads_sellable_seniority_counts_idx;

--bun:split

REINDEX INDEX CONCURRENTLY leads_sellable_newest_covering_idx;

--bun:split

REINDEX INDEX CONCURRENTLY leads_sellable_price_covering_idx;

--bun:split

REINDEX INDEX CONCURRENTLY leads_sellable_facets_idx;

--bun:split

-- The counting index of title words: a title word's matches are the ranges of its titles' ids,
-- with the facets and the price tested in the index, as the other counting indexes of
-- 20261217000001_facet_counts.
DROP INDEX CONCURRENTLY IF EXISTS leads_sellable_title_counts_idx;

--bun:split

CREATE INDEX CONCURRENTLY leads_sellable_title_counts_idx ON leads
    (title_id, industry, country, seniority, company_size, verification_status, price_credits)
    WHERE status = 'ACTIVE' AND verification_status <> 'INVALID' AND buyers_count < max_buyers;

--bun:split

-- The updates left a dead row for every lead, and the index-only scans rely on the visibility map.
VACUUM (ANALYZE) leads;

--bun:split

VACUUM (ANALYZE) lead_titles;

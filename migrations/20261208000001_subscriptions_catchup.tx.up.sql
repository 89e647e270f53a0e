-- A subscriber's catch-up after a lost LISTEN connection reads each table from the broker's
-- position (a time) onwards, page by page: these indexes make every page a range scan, whatever
-- the table's size.
CREATE INDEX audit_logs_occurred_idx ON audit_logs (occurred_at, id);

--bun:split

CREATE INDEX lead_purchases_created_idx ON lead_purchases (created_at, cart_id, id);

--bun:split

CREATE INDEX lead_uploads_updated_idx ON lead_uploads (updated_at, id);

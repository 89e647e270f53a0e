DROP INDEX lead_uploads_updated_idx;

--bun:split

DROP INDEX lead_purchases_created_idx;

--bun:split

DROP INDEX audit_logs_occurred_idx;

-- A new audit entry's (and security event's) notification carries the row's occurred_at beside
-- its id: audit_logs is partitioned by occurred_at, and the instances' loads by id then read the
-- one partition that holds the entry (its primary key) instead of every partition's index,
-- planned for one partition instead of fifteen.
CREATE OR REPLACE FUNCTION notify_row_added() RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM pg_notify('leadmarket_events', json_build_object('type', TG_ARGV[0],
        'occurredAt', clock_timestamp(), 'payload', json_build_object('id', NEW.id, 'at', NEW.occurred_at))::text);
    RETURN NULL;
END
$$;

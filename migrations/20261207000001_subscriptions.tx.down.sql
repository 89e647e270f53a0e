DROP TRIGGER security_events_raised ON security_events;

--bun:split

DROP TRIGGER audit_logs_added ON audit_logs;

--bun:split

DROP FUNCTION notify_row_added();

--bun:split

DROP TRIGGER stripe_events_failed ON stripe_events;

--bun:split

DROP FUNCTION stripe_event_failed();

--bun:split

ALTER TABLE stripe_events DROP COLUMN failed_at;

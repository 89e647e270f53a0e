DROP TRIGGER stripe_events_failed ON stripe_events;

--bun:split

DROP FUNCTION stripe_event_failed();

--bun:split

ALTER TABLE stripe_events DROP COLUMN failed_at;

-- A Stripe event becoming FAILED is published (webhookEventFailed) in the transaction that fails
-- it, whichever statement does (a last attempt, the abandoned-event clean-up), and failed_at
-- orders the failures for the subscribers' catch-up after a lost LISTEN connection.
ALTER TABLE stripe_events ADD COLUMN failed_at timestamptz;
CREATE INDEX stripe_events_failed_idx ON stripe_events (failed_at) WHERE failed_at IS NOT NULL;

--bun:split

CREATE FUNCTION stripe_event_failed() RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    IF NEW.status = 'FAILED' AND (TG_OP = 'INSERT' OR OLD.status IS DISTINCT FROM 'FAILED') THEN
        NEW.failed_at := clock_timestamp();
        -- The shape of internal/events.Event.
        PERFORM pg_notify('leadmarket_events', json_build_object('type', 'webhook.failed',
            'occurredAt', NEW.failed_at, 'payload', json_build_object('id', NEW.id))::text);
    END IF;
    RETURN NEW;
END
$$;

--bun:split

CREATE TRIGGER stripe_events_failed BEFORE INSERT OR UPDATE OF status ON stripe_events
    FOR EACH ROW EXECUTE FUNCTION stripe_event_failed();

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

--bun:split

-- A new audit entry (auditLogAdded) and a new security event (securityEventRaised) are published
-- by the statement that inserts them, in its transaction: no second round trip for every entry.
-- The shape of internal/events.Event; TG_ARGV[0] is the event type.
CREATE FUNCTION notify_row_added() RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM pg_notify('leadmarket_events', json_build_object('type', TG_ARGV[0],
        'occurredAt', clock_timestamp(), 'payload', json_build_object('id', NEW.id))::text);
    RETURN NULL;
END
$$;

--bun:split

CREATE TRIGGER audit_logs_added AFTER INSERT ON audit_logs
    FOR EACH ROW EXECUTE FUNCTION notify_row_added('audit.added');

--bun:split

CREATE TRIGGER security_events_raised AFTER INSERT ON security_events
    FOR EACH ROW EXECUTE FUNCTION notify_row_added('security.raised');

CREATE OR REPLACE FUNCTION notify_row_added() RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM pg_notify('leadmarket_events', json_build_object('type', TG_ARGV[0],
        'occurredAt', clock_timestamp(), 'payload', json_build_object('id', NEW.id))::text);
    RETURN NULL;
END
$$;

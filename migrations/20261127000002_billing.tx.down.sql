DROP TABLE IF EXISTS stripe_event_attempts, stripe_events, credit_orders;

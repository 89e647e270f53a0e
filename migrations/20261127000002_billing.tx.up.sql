-- Credit orders (Stripe Checkout Sessions) and the Stripe webhook events with their attempts.

CREATE TABLE credit_orders (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workspace_id        uuid NOT NULL REFERENCES workspaces (id),
    package_id          uuid NOT NULL REFERENCES credit_packages (id),
    user_id             uuid NOT NULL REFERENCES users (id),
    -- credits, amount_cents and currency are copied from the package when the order is made: the
    -- webhook grants credits only if Stripe reports exactly this amount and currency paid.
    credits             integer NOT NULL CHECK (credits > 0),
    amount_cents        integer NOT NULL CHECK (amount_cents > 0),
    currency            text NOT NULL,
    status              text NOT NULL DEFAULT 'PENDING'
        CHECK (status IN ('PENDING', 'PAID', 'FAILED', 'AMOUNT_MISMATCH')),
    checkout_session_id text UNIQUE,
    payment_intent_id   text UNIQUE,
    refunded_credits    integer NOT NULL DEFAULT 0 CHECK (refunded_credits >= 0),
    created_at          timestamptz NOT NULL DEFAULT now(),
    paid_at             timestamptz,
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX credit_orders_workspace_idx ON credit_orders (workspace_id, created_at DESC);

CREATE TABLE stripe_events (
    -- id is Stripe's event id (evt_...): an event is stored once however often it is delivered.
    id              text PRIMARY KEY,
    type            text NOT NULL,
    api_version     text NOT NULL DEFAULT '',
    livemode        boolean NOT NULL DEFAULT false,
    payload         jsonb NOT NULL,
    status          text NOT NULL DEFAULT 'RECEIVED'
        CHECK (status IN ('RECEIVED', 'PROCESSING', 'PROCESSED', 'RETRYING', 'FAILED', 'IGNORED')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    last_error      text,
    job_id          bigint,
    stripe_created  timestamptz,
    received_at     timestamptz NOT NULL DEFAULT now(),
    processed_at    timestamptz
);
CREATE INDEX stripe_events_received_idx ON stripe_events (received_at DESC, id DESC);
CREATE INDEX stripe_events_status_idx ON stripe_events (status, received_at DESC);

CREATE TABLE stripe_event_attempts (
    event_id    text NOT NULL REFERENCES stripe_events (id) ON DELETE CASCADE,
    attempt     integer NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    error       text,
    PRIMARY KEY (event_id, attempt)
);

-- Rate-limit refusals (DESIGN §7): one row per operation refused with RATE_LIMITED, so operators
-- can see who hit which limit, and so a caller refused ratelimit.AbuseThreshold times within
-- ratelimit.AbuseWindow raises one rate_limit_abuse security event per window.

CREATE TABLE rate_limit_violations (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at  timestamptz NOT NULL DEFAULT now(),
    -- caller_key is what the limit was keyed by: "user:<id>" for a signed-in caller, else "ip:<address>".
    caller_key   text NOT NULL CHECK (caller_key <> ''),
    user_id      uuid REFERENCES users (id) ON DELETE SET NULL,
    ip           text NOT NULL DEFAULT '',
    tier         text NOT NULL CHECK (tier IN ('PURCHASE', 'BROWSE', 'STANDARD')),
    operation    text NOT NULL DEFAULT '',
    -- rate_limit is the tier's limit (operations per window) when the refusal happened.
    rate_limit   integer NOT NULL CHECK (rate_limit > 0),
    -- raised_alert marks the refusal that raised the caller's rate_limit_abuse security event.
    raised_alert boolean NOT NULL DEFAULT false
);
CREATE INDEX rate_limit_violations_caller_idx ON rate_limit_violations (caller_key, occurred_at DESC);
CREATE INDEX rate_limit_violations_occurred_idx ON rate_limit_violations (occurred_at);

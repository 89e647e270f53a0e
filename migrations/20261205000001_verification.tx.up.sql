-- Email verification (DESIGN §6) and credits back for a bounced lead.
--
-- internal/lead owns the new columns of leads: when a lead was last given a verdict, and the
-- pipeline's bookkeeping of an open verification (how many attempts it has had, when it may be
-- taken next, and which job holds it). internal/verify owns the two new tables: every provider
-- call (lead_verifications) and the buyers' bounce reports (bounce_reports).

-- verified_at is when verification last gave the lead a verdict; NULL while it never has.
ALTER TABLE leads ADD COLUMN verified_at timestamptz;
-- verification_attempts counts the failed attempts of the open verification (both providers
-- failed); the lead is UNKNOWN after VERIFY_MAX_ATTEMPTS of them.
ALTER TABLE leads ADD COLUMN verification_attempts integer NOT NULL DEFAULT 0 CHECK (verification_attempts >= 0);
-- verification_due_at is when an open verification may be taken next: NULL for a PENDING lead
-- nobody holds (at once), a lease's end while a job holds it, the backoff's end after a failed
-- attempt. For a lead with a verdict it is NULL unless a re-verification was asked for.
ALTER TABLE leads ADD COLUMN verification_due_at timestamptz;
-- verification_lease is the token of the job that holds the open verification until
-- verification_due_at; a verdict is written only under the lease it was taken with.
ALTER TABLE leads ADD COLUMN verification_lease uuid;

-- The sweep's queue: leads with an open verification, in the order they fall due. New leads
-- (PENDING, due at once) come first.
CREATE INDEX leads_verification_due_idx ON leads (verification_due_at NULLS FIRST, id)
    WHERE verification_status = 'PENDING' OR verification_due_at IS NOT NULL;
-- verificationStats.verifiedLast24h. New leads are not in it.
CREATE INDEX leads_verified_at_idx ON leads (verified_at) WHERE verified_at IS NOT NULL;

-- Every provider call verification makes, as the provider answered it.
CREATE TABLE lead_verifications (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    lead_id      uuid NOT NULL REFERENCES leads (id) ON DELETE CASCADE,
    partner_id   uuid NOT NULL,
    -- check_id groups the calls of one attempt (MillionVerifier, then ZeroBounce if needed).
    check_id     uuid NOT NULL,
    -- purpose is why the lead was checked: the pipeline, an admin's re-verification, a bounce report.
    purpose      text NOT NULL CHECK (purpose IN ('PIPELINE', 'REVERIFY', 'BOUNCE')),
    provider     text NOT NULL CHECK (provider IN ('millionverifier', 'zerobounce')),
    -- attempt is the attempt of the lead's verification this call belongs to, from 1.
    attempt      integer NOT NULL CHECK (attempt > 0),
    -- status is our reading of the answer; NULL when the call failed (error says why).
    status       text CHECK (status IN ('VALID', 'INVALID', 'CATCH_ALL', 'RISKY', 'UNKNOWN')),
    error        text,
    -- raw is the provider's JSON answer as it came; NULL when there was none or it was not JSON.
    raw          jsonb,
    latency_ms   integer NOT NULL CHECK (latency_ms >= 0),
    -- check_failed marks the calls of an attempt that ended without an answer (a failed attempt).
    check_failed boolean NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CHECK ((status IS NULL) = (error IS NOT NULL))
);
CREATE INDEX lead_verifications_lead_idx ON lead_verifications (lead_id, id DESC);
CREATE INDEX lead_verifications_created_idx ON lead_verifications (created_at);

-- A buyer's report that a bought lead's address bounced: at most one per purchase.
CREATE TABLE bounce_reports (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    purchase_id      uuid NOT NULL UNIQUE REFERENCES lead_purchases (id),
    workspace_id     uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    lead_id          uuid NOT NULL,
    reported_by      uuid REFERENCES users (id),
    -- The purchase as it was: what it cost and when (a purchase never changes).
    purchase_credits integer NOT NULL CHECK (purchase_credits > 0),
    purchased_at     timestamptz NOT NULL,
    status           text NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'REFUNDED', 'DECLINED')),
    credits_refunded integer NOT NULL DEFAULT 0 CHECK (credits_refunded >= 0),
    -- reason is the verdict that decided the report (DECLINED), or what refunded it.
    reason           text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    resolved_at      timestamptz,
    CHECK ((status = 'PENDING') = (resolved_at IS NULL)),
    CHECK (status = 'REFUNDED' OR credits_refunded = 0)
);
CREATE INDEX bounce_reports_workspace_idx ON bounce_reports (workspace_id, created_at DESC, id DESC);
CREATE INDEX bounce_reports_pending_idx ON bounce_reports (lead_id) WHERE status = 'PENDING';

--bun:split

-- verify_take_slot takes the first free one of the n advisory-lock slots (class, 0..n-1),
-- starting at home, for the calling session, and returns it; NULL when all are taken. The
-- session holds it until pg_advisory_unlock(class, slot) or until it ends (a process that dies
-- gives its slots back). internal/verify's limiter calls it: at most n provider calls in flight
-- across every instance.
CREATE FUNCTION verify_take_slot(class integer, home integer, n integer) RETURNS integer
    LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    s integer;
BEGIN
    FOR i IN 0 .. n - 1 LOOP
        s := (home + i) % n;
        IF pg_try_advisory_lock(class, s) THEN
            RETURN s;
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;

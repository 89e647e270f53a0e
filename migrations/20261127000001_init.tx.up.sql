-- Leadmarket initial schema: identity, workspaces, partners, leads, purchases, credits,
-- partner earnings, idempotency keys, audit log and security events.

CREATE EXTENSION IF NOT EXISTS pg_trgm;

--bun:split

CREATE TABLE users (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- auth_subject is the JWT "sub"; NULL for a user invited by e-mail who has not signed in yet.
    auth_subject      text UNIQUE,
    email             text NOT NULL UNIQUE CHECK (email = lower(btrim(email)) AND email <> ''),
    is_platform_admin boolean NOT NULL DEFAULT false,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE workspaces (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name       text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 120),
    created_by uuid REFERENCES users (id),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE workspace_members (
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role         text NOT NULL CHECK (role IN ('OWNER', 'ADMIN', 'MEMBER')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, user_id)
);
CREATE INDEX workspace_members_user_idx ON workspace_members (user_id, workspace_id);

CREATE TABLE partners (
    id                     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name                   text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 120),
    -- commission_rate is the base share of a sale's value, 0.30 = 30 %.
    commission_rate        numeric(5, 4) NOT NULL DEFAULT 0.3000 CHECK (commission_rate >= 0 AND commission_rate <= 1),
    -- verification_pass_rate is valid / verified e-mails, kept up to date by verification.
    verification_pass_rate numeric(5, 4) NOT NULL DEFAULT 0 CHECK (verification_pass_rate >= 0 AND verification_pass_rate <= 1),
    created_at             timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE partner_members (
    partner_id uuid NOT NULL REFERENCES partners (id) ON DELETE CASCADE,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (partner_id, user_id)
);
CREATE INDEX partner_members_user_idx ON partner_members (user_id, partner_id);

CREATE TABLE leads (
    id                        uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    partner_id                uuid NOT NULL REFERENCES partners (id),
    first_name                text NOT NULL DEFAULT '',
    last_name                 text NOT NULL DEFAULT '',
    title                     text NOT NULL DEFAULT '',
    seniority                 text NOT NULL DEFAULT 'UNKNOWN'
        CHECK (seniority IN ('ENTRY', 'SENIOR', 'MANAGER', 'DIRECTOR', 'VP', 'C_LEVEL', 'OWNER', 'UNKNOWN')),
    department                text NOT NULL DEFAULT '',
    company_name              text NOT NULL DEFAULT '',
    company_domain            text NOT NULL DEFAULT '',
    company_size              text NOT NULL DEFAULT 'UNKNOWN'
        CHECK (company_size IN ('SIZE_1_10', 'SIZE_11_50', 'SIZE_51_200', 'SIZE_201_500', 'SIZE_501_1000',
                                'SIZE_1001_5000', 'SIZE_5001_PLUS', 'UNKNOWN')),
    industry                  text NOT NULL DEFAULT '',
    country                   text NOT NULL DEFAULT '' CHECK (country = '' OR country ~ '^[A-Z]{2}$'),
    region                    text NOT NULL DEFAULT '',
    city                      text NOT NULL DEFAULT '',
    -- Raw contact data as the partner supplied it.
    email                     text NOT NULL,
    phone                     text NOT NULL DEFAULT '',
    linkedin_url              text NOT NULL DEFAULT '',
    -- Normalised contact data (DESIGN §6), computed by the application.
    email_normalized          text NOT NULL CHECK (email_normalized = lower(btrim(email_normalized)) AND email_normalized <> ''),
    company_domain_normalized text NOT NULL DEFAULT '',
    phone_e164                text NOT NULL DEFAULT '' CHECK (phone_e164 = '' OR phone_e164 ~ '^\+[1-9][0-9]{5,14}$'),
    -- hash_key is set by the leads_hash_key trigger from the normalised columns; never by hand.
    hash_key                  text NOT NULL,
    -- Masked previews shown to everyone who has not bought the lead.
    email_preview             text GENERATED ALWAYS AS (
        left(email_normalized, 1) || '***@' || split_part(email_normalized, '@', 2)) STORED,
    phone_preview             text GENERATED ALWAYS AS (
        CASE WHEN phone_e164 = '' THEN '' ELSE '********' || right(phone_e164, 2) END) STORED,
    price_credits             integer NOT NULL CHECK (price_credits > 0),
    max_buyers                integer NOT NULL DEFAULT 3 CHECK (max_buyers > 0),
    buyers_count              integer NOT NULL DEFAULT 0 CHECK (buyers_count >= 0 AND buyers_count <= max_buyers),
    status                    text NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'INACTIVE', 'REMOVED')),
    verification_status       text NOT NULL DEFAULT 'PENDING'
        CHECK (verification_status IN ('PENDING', 'VALID', 'INVALID', 'CATCH_ALL', 'RISKY', 'UNKNOWN')),
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX leads_hash_key_key ON leads (hash_key);

--bun:split

-- lead_hash_key is DESIGN §6's dedup key: hex SHA-256 of email|domain|phone, normalised values.
CREATE FUNCTION lead_hash_key(email text, domain text, phone text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
SELECT encode(sha256(convert_to(email || '|' || domain || '|' || phone, 'UTF8')), 'hex')
$$;

--bun:split

CREATE FUNCTION leads_set_hash_key() RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    NEW.hash_key := lead_hash_key(NEW.email_normalized, NEW.company_domain_normalized, NEW.phone_e164);
    RETURN NEW;
END
$$;

--bun:split

CREATE TRIGGER leads_hash_key
    BEFORE INSERT OR UPDATE OF email_normalized, company_domain_normalized, phone_e164, hash_key ON leads
    FOR EACH ROW EXECUTE FUNCTION leads_set_hash_key();

--bun:split

-- Browse indexes: every one is partial on "sellable" and ends with the keyset order, so a filtered
-- page is an index range scan that stops after first+1 rows.
CREATE INDEX leads_sellable_newest_idx ON leads (created_at DESC, id DESC)
    WHERE status = 'ACTIVE' AND verification_status <> 'INVALID' AND buyers_count < max_buyers;
CREATE INDEX leads_sellable_price_idx ON leads (price_credits, id)
    WHERE status = 'ACTIVE' AND verification_status <> 'INVALID' AND buyers_count < max_buyers;
CREATE INDEX leads_sellable_industry_idx ON leads (industry, created_at DESC, id DESC)
    WHERE status = 'ACTIVE' AND verification_status <> 'INVALID' AND buyers_count < max_buyers;
CREATE INDEX leads_sellable_country_idx ON leads (country, created_at DESC, id DESC)
    WHERE status = 'ACTIVE' AND verification_status <> 'INVALID' AND buyers_count < max_buyers;
CREATE INDEX leads_sellable_seniority_idx ON leads (seniority, created_at DESC, id DESC)
    WHERE status = 'ACTIVE' AND verification_status <> 'INVALID' AND buyers_count < max_buyers;
CREATE INDEX leads_sellable_partner_idx ON leads (partner_id, created_at DESC, id DESC)
    WHERE status = 'ACTIVE' AND verification_status <> 'INVALID' AND buyers_count < max_buyers;
CREATE INDEX leads_title_trgm_idx ON leads USING gin (title gin_trgm_ops);
CREATE INDEX leads_partner_idx ON leads (partner_id, created_at DESC);

CREATE TABLE lead_purchases (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- cart_id groups the leads bought by one purchaseLeads call.
    cart_id       uuid NOT NULL,
    workspace_id  uuid NOT NULL REFERENCES workspaces (id),
    lead_id       uuid NOT NULL REFERENCES leads (id),
    buyer_user_id uuid NOT NULL REFERENCES users (id),
    credits_spent integer NOT NULL CHECK (credits_spent > 0),
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (workspace_id, lead_id)
);
CREATE INDEX lead_purchases_lead_idx ON lead_purchases (lead_id, workspace_id);
CREATE INDEX lead_purchases_workspace_idx ON lead_purchases (workspace_id, created_at DESC, id DESC);
CREATE INDEX lead_purchases_cart_idx ON lead_purchases (cart_id);

CREATE TABLE credit_packages (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL,
    credits     integer NOT NULL CHECK (credits > 0),
    price_cents integer NOT NULL CHECK (price_cents > 0),
    currency    text NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    active      boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE credit_balances (
    workspace_id uuid PRIMARY KEY REFERENCES workspaces (id) ON DELETE CASCADE,
    -- credits may go below zero only through a clawback; spending requires credits >= price.
    credits      bigint NOT NULL DEFAULT 0,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE credit_ledger (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workspace_id  uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    kind          text NOT NULL CHECK (kind IN ('PURCHASE', 'SPEND', 'REFUND', 'CLAWBACK', 'ADJUSTMENT')),
    amount        bigint NOT NULL CHECK (amount <> 0),
    balance_after bigint NOT NULL,
    -- reference is the business reference that makes an entry happen at most once.
    reference     text NOT NULL UNIQUE,
    description   text NOT NULL DEFAULT '',
    actor_user_id uuid REFERENCES users (id),
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind IN ('PURCHASE', 'REFUND') AND amount > 0) OR (kind IN ('SPEND', 'CLAWBACK') AND amount < 0) OR kind = 'ADJUSTMENT')
);
CREATE INDEX credit_ledger_workspace_idx ON credit_ledger (workspace_id, id DESC);

--bun:split

-- The ledger is append-only.
CREATE FUNCTION forbid_change() RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
END
$$;

--bun:split

CREATE TRIGGER credit_ledger_append_only BEFORE UPDATE OR DELETE ON credit_ledger
    FOR EACH ROW EXECUTE FUNCTION forbid_change();

CREATE TABLE partner_earnings (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    partner_id       uuid NOT NULL REFERENCES partners (id),
    lead_purchase_id uuid REFERENCES lead_purchases (id),
    kind             text NOT NULL CHECK (kind IN ('ACCRUAL', 'REVERSAL')),
    -- sale_value_cents is credits x CREDIT_VALUE_CENTS at the time of sale.
    sale_value_cents bigint NOT NULL,
    rate             numeric(6, 4) NOT NULL,
    amount_cents     bigint NOT NULL,
    reference        text NOT NULL UNIQUE,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX partner_earnings_partner_idx ON partner_earnings (partner_id, id DESC);

CREATE TRIGGER partner_earnings_append_only BEFORE UPDATE OR DELETE ON partner_earnings
    FOR EACH ROW EXECUTE FUNCTION forbid_change();

CREATE TABLE idempotency_keys (
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key             text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    operation       text NOT NULL,
    -- request_hash is SHA-256 of the operation and its canonical input; reuse with another is refused.
    request_hash    text NOT NULL,
    response        jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    completed_at    timestamptz,
    PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);

-- Audit log: append-only, partitioned by month with a default partition for anything unforeseen.
CREATE TABLE audit_logs (
    id             uuid NOT NULL DEFAULT gen_random_uuid(),
    occurred_at    timestamptz NOT NULL DEFAULT now(),
    actor_user_id  uuid,
    actor_type     text NOT NULL CHECK (actor_type IN ('USER', 'PLATFORM_ADMIN', 'PARTNER', 'SYSTEM', 'STRIPE')),
    workspace_id   uuid,
    action         text NOT NULL,
    resource_type  text NOT NULL,
    resource_id    text NOT NULL DEFAULT '',
    old_values     jsonb,
    new_values     jsonb,
    metadata       jsonb NOT NULL DEFAULT '{}',
    severity       text NOT NULL DEFAULT 'INFO' CHECK (severity IN ('INFO', 'NOTICE', 'WARNING', 'CRITICAL')),
    ip             text NOT NULL DEFAULT '',
    user_agent     text NOT NULL DEFAULT '',
    request_id     text NOT NULL DEFAULT '',
    operation      text NOT NULL DEFAULT '',
    PRIMARY KEY (occurred_at, id)
) PARTITION BY RANGE (occurred_at);

CREATE TABLE audit_logs_default PARTITION OF audit_logs DEFAULT;
CREATE INDEX audit_logs_workspace_idx ON audit_logs (workspace_id, occurred_at DESC, id DESC);
CREATE INDEX audit_logs_action_idx ON audit_logs (action, occurred_at DESC);
CREATE INDEX audit_logs_actor_idx ON audit_logs (actor_user_id, occurred_at DESC);

--bun:split

-- ensure_audit_partitions creates the monthly partitions from the month of start for months months.
CREATE FUNCTION ensure_audit_partitions(start timestamptz, months integer) RETURNS void
    LANGUAGE plpgsql
AS $$
DECLARE
    m    date;
    name text;
BEGIN
    FOR i IN 0 .. months - 1 LOOP
        m := (date_trunc('month', start AT TIME ZONE 'UTC') + make_interval(months => i))::date;
        name := 'audit_logs_' || to_char(m, 'YYYY_MM');
        IF to_regclass(name) IS NULL THEN
            EXECUTE format('CREATE TABLE %I PARTITION OF audit_logs FOR VALUES FROM (%L) TO (%L)',
                           name, (m::timestamp AT TIME ZONE 'UTC'), ((m + interval '1 month')::timestamp AT TIME ZONE 'UTC'));
        END IF;
    END LOOP;
END
$$;

--bun:split

SELECT ensure_audit_partitions(now() - interval '1 month', 14);

--bun:split

CREATE TRIGGER audit_logs_append_only BEFORE UPDATE OR DELETE ON audit_logs
    FOR EACH ROW EXECUTE FUNCTION forbid_change();

CREATE TABLE security_events (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    occurred_at timestamptz NOT NULL DEFAULT now(),
    kind        text NOT NULL,
    risk_level  text NOT NULL CHECK (risk_level IN ('LOW', 'MEDIUM', 'HIGH', 'CRITICAL')),
    user_id     uuid,
    workspace_id uuid,
    ip          text NOT NULL DEFAULT '',
    user_agent  text NOT NULL DEFAULT '',
    request_id  text NOT NULL DEFAULT '',
    operation   text NOT NULL DEFAULT '',
    details     jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX security_events_occurred_idx ON security_events (occurred_at DESC, id DESC);
CREATE INDEX security_events_kind_idx ON security_events (kind, occurred_at DESC);

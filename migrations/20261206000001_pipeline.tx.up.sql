-- The buyers' pipeline (DESIGN §7): a workspace works each lead it bought through statuses,
-- assignees and tags, and may take it off its list; and the CSV exports a background job writes
-- into PostgreSQL in chunks, so any instance serves the download.

-- workspace_leads is a workspace's working copy of each purchase, keyed by the purchase's id
-- (internal/pipeline owns it; internal/marketplace adds a row in the purchase's transaction).
-- workspace_id, lead_id, credits_spent and purchased_at are the purchase's, copied once: a
-- purchase never changes, and the list filters, orders and pages on them without reading
-- lead_purchases. A deleted lead keeps its row (deleted_at): the purchase, the ledger and the
-- audit trail stay, and the workspace still owns the lead.
CREATE TABLE workspace_leads (
    id               uuid PRIMARY KEY REFERENCES lead_purchases (id),
    workspace_id     uuid NOT NULL REFERENCES workspaces (id),
    lead_id          uuid NOT NULL REFERENCES leads (id),
    credits_spent    integer NOT NULL,
    purchased_at     timestamptz NOT NULL,
    status           text NOT NULL DEFAULT 'NEW' CHECK (status IN ('NEW', 'CONTACTED', 'QUALIFIED', 'WON', 'LOST')),
    assignee_user_id uuid REFERENCES users (id),
    -- tags are trimmed, lower-cased, 1 to 40 characters, distinct and sorted bytewise (COLLATE "C",
    -- as Go sorts them) by internal/pipeline.
    tags             text[] NOT NULL DEFAULT '{}' CHECK (cardinality(tags) <= 20),
    deleted_at       timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
-- The list's keyset orders (PURCHASED_NEWEST/OLDEST, UPDATED_NEWEST), per workspace.
CREATE INDEX workspace_leads_purchased_idx ON workspace_leads (workspace_id, purchased_at DESC, id DESC);
CREATE INDEX workspace_leads_updated_idx ON workspace_leads (workspace_id, updated_at DESC, id DESC);

INSERT INTO workspace_leads (id, workspace_id, lead_id, credits_spent, purchased_at, updated_at)
SELECT p.id, p.workspace_id, p.lead_id, p.credits_spent, p.created_at, p.created_at FROM lead_purchases AS p;

-- exports are CSV files a job writes (internal/export): params is the request (ids, filter,
-- columns; or an audit log filter), position the keyset position after the last row written, so
-- a job killed mid-way resumes after it. A file's bytes are its export_chunks in seq order.
CREATE TABLE exports (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    kind         text NOT NULL CHECK (kind IN ('WORKSPACE_LEADS', 'AUDIT_LOGS')),
    workspace_id uuid REFERENCES workspaces (id) ON DELETE CASCADE,
    created_by   uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    params       jsonb NOT NULL DEFAULT '{}',
    file_name    text NOT NULL,
    status       text NOT NULL DEFAULT 'QUEUED' CHECK (status IN ('QUEUED', 'RUNNING', 'COMPLETED', 'FAILED')),
    rows_total   integer CHECK (rows_total >= 0),
    rows_done    integer NOT NULL DEFAULT 0 CHECK (rows_done >= 0),
    bytes        bigint NOT NULL DEFAULT 0,
    chunks       integer NOT NULL DEFAULT 0,
    position     jsonb,
    error_code   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,
    completed_at timestamptz,
    expires_at   timestamptz NOT NULL
);
CREATE INDEX exports_creator_idx ON exports (created_by, created_at DESC, id DESC);
CREATE INDEX exports_workspace_idx ON exports (workspace_id, created_at DESC, id DESC);
CREATE INDEX exports_expires_idx ON exports (expires_at);

CREATE TABLE export_chunks (
    export_id uuid NOT NULL REFERENCES exports (id) ON DELETE CASCADE,
    seq       integer NOT NULL CHECK (seq >= 0),
    rows      integer NOT NULL CHECK (rows >= 0),
    data      bytea NOT NULL,
    PRIMARY KEY (export_id, seq)
);
-- CSV chunks are written once and streamed out whole: storing them uncompressed costs disk for a
-- retention period and saves compressing and decompressing megabytes on every write and read.
ALTER TABLE export_chunks ALTER COLUMN data SET STORAGE EXTERNAL;

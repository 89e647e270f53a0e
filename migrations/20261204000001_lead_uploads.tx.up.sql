-- Lead uploads (DESIGN §6): the CSV files partners upload, their rows staged until the upload's
-- job has worked them, the dedup keys the job has seen in each file, and every row it did not
-- accept with its reason. internal/ingest owns these four tables.
--
-- The staging, key and rejection tables take up to MAX_UPLOAD_ROWS rows per upload in bulk
-- (COPY, set-based inserts): they have no foreign keys, whose per-row checks would cost more than
-- the load itself. Their rows belong to an upload by upload_id and go when ingest says so (staged
-- rows and keys when the upload ends, rejections after UPLOAD_RETENTION).

CREATE TABLE lead_uploads (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    partner_id            uuid NOT NULL REFERENCES partners (id),
    uploaded_by           uuid REFERENCES users (id),
    file_name             text NOT NULL DEFAULT '',
    file_sha256           text NOT NULL CHECK (file_sha256 ~ '^[0-9a-f]{64}$'),
    file_bytes            bigint NOT NULL DEFAULT 0 CHECK (file_bytes >= 0),
    dry_run               boolean NOT NULL DEFAULT false,
    default_price_credits integer NOT NULL CHECK (default_price_credits > 0),
    default_country       text NOT NULL DEFAULT '' CHECK (default_country = '' OR default_country ~ '^[A-Z]{2}$'),
    -- header is the file's header row, in file order: the job maps columns from it, and the
    -- rejections download repeats it.
    header                text[] NOT NULL DEFAULT '{}',
    status                text NOT NULL DEFAULT 'QUEUED' CHECK (status IN ('QUEUED', 'PROCESSING', 'COMPLETED', 'FAILED')),
    rows_total            integer NOT NULL DEFAULT 0 CHECK (rows_total >= 0),
    -- checkpoint_row is the row number of the last staged row the job has worked. A batch
    -- advances it, and the counts, in the transaction of the batch's leads and rejections, so a
    -- job that dies anywhere resumes after the last batch that committed.
    checkpoint_row        integer NOT NULL DEFAULT 0 CHECK (checkpoint_row >= 0),
    rows_processed        integer NOT NULL DEFAULT 0,
    accepted_count        integer NOT NULL DEFAULT 0 CHECK (accepted_count >= 0),
    duplicate_count       integer NOT NULL DEFAULT 0 CHECK (duplicate_count >= 0),
    invalid_count         integer NOT NULL DEFAULT 0 CHECK (invalid_count >= 0),
    -- rejection_counts counts the rejected rows by reason ({"INVALID_EMAIL": 3, ...}); partner
    -- stats add them up, and they outlive the purge of the rejections themselves.
    rejection_counts      jsonb NOT NULL DEFAULT '{}',
    error_code            text,
    error_message         text,
    -- job_id is the River job working the upload; an upload whose job is gone unfinished is
    -- FAILED by the hourly clean-up.
    job_id                bigint,
    created_at            timestamptz NOT NULL DEFAULT now(),
    started_at            timestamptz,
    completed_at          timestamptz,
    updated_at            timestamptz NOT NULL DEFAULT now(),
    -- rejections_purged_at is when UPLOAD_RETENTION's clean-up deleted the upload's rejections.
    rejections_purged_at  timestamptz,
    CHECK (rows_processed = accepted_count + duplicate_count + invalid_count),
    CHECK (rows_processed <= rows_total),
    CHECK ((status = 'FAILED') = (error_code IS NOT NULL))
);
CREATE INDEX lead_uploads_partner_idx ON lead_uploads (partner_id, created_at DESC, id DESC);
CREATE INDEX lead_uploads_retention_idx ON lead_uploads (created_at) WHERE rejections_purged_at IS NULL;
CREATE INDEX lead_uploads_unfinished_idx ON lead_uploads (updated_at) WHERE status IN ('QUEUED', 'PROCESSING');

-- The rows of an upload as the request read them, before validation: the job's input.
CREATE TABLE lead_upload_rows (
    upload_id    uuid NOT NULL,
    -- row_number is the spreadsheet row (the header is row 1).
    row_number   integer NOT NULL,
    -- fields are the row's values in file order (at most ingest.MaxColumns, each cut to
    -- ingest.MaxValueBytes); field_count is how many the row had before that cap.
    fields       text[] NOT NULL,
    field_count  integer NOT NULL,
    -- malformed says why the row is not valid CSV; empty for a well-formed row.
    malformed    text NOT NULL DEFAULT '',
    PRIMARY KEY (upload_id, row_number)
);

-- The dedup keys of the rows of an upload the job has found valid so far, each with the first
-- row that had it: a later row with one of them is DUPLICATE_IN_FILE, across batches and in a
-- dry run (which inserts no lead).
CREATE TABLE lead_upload_keys (
    upload_id  uuid NOT NULL,
    hash_key   text NOT NULL,
    row_number integer NOT NULL,
    PRIMARY KEY (upload_id, hash_key)
);

CREATE TABLE lead_rejections (
    upload_id            uuid NOT NULL,
    row_number           integer NOT NULL,
    reason               text NOT NULL CHECK (reason IN ('INVALID_EMAIL', 'MISSING_FIELDS', 'INVALID_VALUE', 'MALFORMED_ROW',
                                                         'DUPLICATE_IN_FILE', 'DUPLICATE_SAME_PARTNER', 'DUPLICATE_CROSS_PARTNER')),
    -- field is the canonical column the rejection is about; empty when it is about the row.
    field                text NOT NULL DEFAULT '',
    detail               text NOT NULL,
    -- raw is the row's values keyed by the file's column names (ingest.Header.RawMap).
    raw                  jsonb NOT NULL,
    -- duplicate_of_lead_id is the partner's own lead a DUPLICATE_SAME_PARTNER row repeats; never
    -- set for another partner's lead, whose id the partner must not learn.
    duplicate_of_lead_id uuid,
    PRIMARY KEY (upload_id, row_number),
    CHECK (duplicate_of_lead_id IS NULL OR reason = 'DUPLICATE_SAME_PARTNER')
);
CREATE INDEX lead_rejections_reason_idx ON lead_rejections (upload_id, reason, row_number);

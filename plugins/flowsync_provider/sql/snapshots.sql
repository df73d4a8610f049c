-- The snapshot contract flowsync relies on (the dashboard owns the real table; this file states
-- the columns and constraints the orchestrator reads and writes, and lets tests create it).
-- Unqualified on purpose: the connection's search_path picks the schema.
--
-- One row per (account_id, upload_id): re-running an orchestration for the same upload finds
-- the same snapshot instead of creating a second one (see SnapshotStore.create_or_get).
-- The processor sets status = 'processed', processed_at and last_email_date.

CREATE TABLE IF NOT EXISTS snapshots (
    id              uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    account_id      text        NOT NULL,
    upload_id       text        NOT NULL,
    window_start    date,
    window_end      date,
    status          text        NOT NULL DEFAULT 'created'
                    CHECK (status IN ('created', 'processing', 'processed', 'failed')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    processed_at    timestamptz,
    last_email_date date,
    CONSTRAINT snapshots_account_upload_key UNIQUE (account_id, upload_id),
    CONSTRAINT snapshots_window_order CHECK (window_start IS NULL OR window_end IS NULL
                                             OR window_start <= window_end)
);

CREATE INDEX IF NOT EXISTS snapshots_account_created_idx ON snapshots (account_id, created_at DESC);

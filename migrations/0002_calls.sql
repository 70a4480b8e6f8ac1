-- Call analysis (issue 4): what a call's analysis needs beyond the foundation's tables.
-- Portable between SQLite and PostgreSQL.

-- Why an analysis failed, and where the call came from (upload | import).
ALTER TABLE calls ADD COLUMN error TEXT;
ALTER TABLE calls ADD COLUMN source TEXT NOT NULL DEFAULT 'upload';
ALTER TABLE calls ADD COLUMN channels TEXT NOT NULL DEFAULT 'mix';
CREATE INDEX calls_blob ON calls(owner_id, blob_sha256);

-- The model and prompt template every insight came from.
ALTER TABLE insights ADD COLUMN model_id TEXT;
ALTER TABLE insights ADD COLUMN prompt_version TEXT;

-- Commitments become tasks a rep ticks off; each keeps a link to its quote (insight).
CREATE TABLE tasks (
    id          TEXT PRIMARY KEY,
    call_id     TEXT NOT NULL REFERENCES calls(id),
    insight_id  TEXT NOT NULL REFERENCES insights(id),
    owner       TEXT NOT NULL,          -- the participant who promised it
    side        TEXT NOT NULL,          -- seller | customer
    action      TEXT NOT NULL,
    due_date    TEXT,                   -- YYYY-MM-DD or NULL
    status      TEXT NOT NULL,          -- open | done
    quote       TEXT NOT NULL,
    start_ms    BIGINT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX tasks_call ON tasks(call_id);

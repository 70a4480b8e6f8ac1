-- Bid writers' edits of tender drafts before review, and their submission for review (see
-- src/bids/edit.rs). Portable between SQLite and PostgreSQL.

-- Each save of an edited draft is a new row (the latest is the working copy): the whole
-- edited draft as JSON, who edited it and when. The AI's draft stays in the job's result.
CREATE TABLE draft_edits (
    id                TEXT PRIMARY KEY,
    job_id            TEXT NOT NULL,
    recommendation_id TEXT NOT NULL REFERENCES recommendations(id),
    editor_id         TEXT NOT NULL REFERENCES users(id),
    output            TEXT NOT NULL,
    created_at        BIGINT NOT NULL
);
CREATE INDEX draft_edits_job ON draft_edits(job_id, created_at);

-- Drafts their writer submitted for manager review (at most once each).
CREATE TABLE draft_submissions (
    job_id            TEXT PRIMARY KEY,
    recommendation_id TEXT NOT NULL REFERENCES recommendations(id),
    submitted_by      TEXT NOT NULL REFERENCES users(id),
    submitted_at      BIGINT NOT NULL
);

-- Review and governance: who may decide a recommendation, escalation, circuit breakers, and
-- the head of the audit hash chain. Portable between SQLite and PostgreSQL.

-- The owner of the subject (the rep whose call or deal it is): they may accept items on it.
ALTER TABLE recommendations ADD COLUMN owner_id TEXT;
-- Who must decide, from the rules at triage time: owner | manager; auto-approved ones are
-- decided by the rules themselves.
ALTER TABLE recommendations ADD COLUMN route TEXT;
-- The rule that routed it (its name in rules.toml), for the explanation in the queue.
ALTER TABLE recommendations ADD COLUMN rule TEXT;
-- Set when it waited longer than the rules allow.
ALTER TABLE recommendations ADD COLUMN escalated_at BIGINT;
ALTER TABLE recommendations ADD COLUMN decided_by TEXT;
ALTER TABLE recommendations ADD COLUMN decided_at BIGINT;
-- The value that stands after review: the output, or the reviewer's replacement.
ALTER TABLE recommendations ADD COLUMN final_output TEXT;
-- Facts the rules route on (a quote's discount as a fraction of list price, the deal value).
ALTER TABLE recommendations ADD COLUMN discount DOUBLE PRECISION;
ALTER TABLE recommendations ADD COLUMN deal_value DOUBLE PRECISION;
CREATE INDEX recommendations_owner ON recommendations(owner_id);

-- Model and prompt versions and the reason of a decision, as JSON.
ALTER TABLE audit_events ADD COLUMN details TEXT;

-- One row: the last event's sequence number and hash. Appenders lock it first (an UPDATE), so
-- concurrent appends, in one process or many, form one unbroken chain.
CREATE TABLE audit_head (
    id      BIGINT PRIMARY KEY,
    seq     BIGINT NOT NULL,
    sha256  TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, sha256)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- A recommendation kind switched to manual review after it misbehaved, until an admin resets it.
CREATE TABLE review_breakers (
    kind        TEXT PRIMARY KEY,
    tripped_at  BIGINT NOT NULL,
    reason      TEXT NOT NULL
);

-- Alerts already sent, so each breach posts once.
CREATE TABLE alert_firings (
    alert       TEXT NOT NULL,
    breach      TEXT NOT NULL,
    fired_at    BIGINT NOT NULL,
    PRIMARY KEY (alert, breach)
);

-- One row per checked AI output: did it pass validation and grounding? The breaker looks at
-- the latest `window` rows of a kind.
CREATE TABLE ai_output_checks (
    id      TEXT PRIMARY KEY,
    kind    TEXT NOT NULL,
    passed  BIGINT NOT NULL,            -- 1 passed, 0 failed
    at      BIGINT NOT NULL
);
CREATE INDEX ai_output_checks_kind ON ai_output_checks(kind, at);

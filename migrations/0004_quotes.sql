-- Quote recommender: deals get their CRM id and cost; fitted win-probability models are
-- versioned with the hash of the data they were trained on and their validation metrics.

ALTER TABLE deals ADD COLUMN external_id TEXT;
ALTER TABLE deals ADD COLUMN cost DOUBLE PRECISION;
CREATE INDEX deals_outcome ON deals(outcome, region);

CREATE TABLE quote_models (
    id               TEXT PRIMARY KEY,
    version          BIGINT NOT NULL UNIQUE,   -- 1, 2, ... in fitting order
    kind             TEXT NOT NULL,            -- fit (penalty and calibration selected) | refit (warm update)
    training_sha256  TEXT NOT NULL,            -- hash of the outcomes it was trained on
    rows             BIGINT NOT NULL,
    has_price        BIGINT NOT NULL,          -- 1 when it learned a discount curve
    metrics          TEXT NOT NULL,            -- JSON validation: penalty, calibration, AUC, ...
    model            TEXT NOT NULL,            -- JSON: encoder, coefficients, calibration
    created_by       TEXT REFERENCES users(id),
    created_at       BIGINT NOT NULL
);

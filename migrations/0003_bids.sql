-- Bid library (issue 5). The bids table (0001) is the source of truth; the tantivy index in
-- <data>/index/bids is derived from it and repaired from `rev` on open.

-- Incremented on every change of a bid's document; the index stores the revision it holds.
ALTER TABLE bids ADD COLUMN rev BIGINT NOT NULL DEFAULT 1;

-- Outcome log: every outcome recorded for a bid after import, by whom.
CREATE TABLE bid_outcomes (
    id           TEXT PRIMARY KEY,
    bid_id       TEXT NOT NULL REFERENCES bids(id),
    outcome      TEXT NOT NULL,         -- won | lost | withdrawn | pending
    feedback     TEXT,
    recorded_by  TEXT REFERENCES users(id),
    recorded_at  BIGINT NOT NULL
);
CREATE INDEX bid_outcomes_bid ON bid_outcomes(bid_id);

-- Dense (multilingual-e5-small) embeddings of bids, derived from `bids` like the tantivy index:
-- one row per bid at the revision it was computed from; `vector` is base64 of little-endian
-- f32 values, L2-normalised.
CREATE TABLE bid_embeddings (
    bid_id  TEXT PRIMARY KEY,
    rev     BIGINT NOT NULL,
    model   TEXT NOT NULL,
    vector  TEXT NOT NULL
);

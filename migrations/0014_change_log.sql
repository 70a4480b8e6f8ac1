-- What changed in the tables that each process derives a local index from (bids → tantivy).
-- Every write appends an entry in its own transaction; every process follows the log to keep
-- its index current, so a bid written through one API process is found through all of them.
-- `rev` is the row's new revision, NULL when the row was deleted. Entries older than a day are
-- pruned: a process that was down longer rebuilds from the tables when it opens.
CREATE TABLE change_log (
    id TEXT PRIMARY KEY,
    entity TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    rev BIGINT,
    at BIGINT NOT NULL
);
CREATE INDEX change_log_entity_at ON change_log (entity, at);

-- Blob bytes in the database itself (`[data] blobs = "db"`, for small deployments without a
-- shared mount): each blob's content in chunks of 1 MiB, in order, so no single value or read
-- holds a whole recording. The `blobs` row (0001) is written in the same transaction.
-- `{bytes}` is the binary column type, written per backend when the migration is applied
-- (store::migrator): BLOB on SQLite, BYTEA on PostgreSQL.
CREATE TABLE blob_chunks (
    sha256  TEXT NOT NULL REFERENCES blobs(sha256) ON DELETE CASCADE,
    seq     BIGINT NOT NULL,        -- 0, 1, ... in content order
    data    {bytes} NOT NULL,
    PRIMARY KEY (sha256, seq)
);

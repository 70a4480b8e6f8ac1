-- Failed sign-ins per client address (a wrong or revoked token on the sign-in form or as a
-- bearer token). In the database, so every API process on it shares the count: `failures`
-- counted since `window_start`; an address with too many is refused until `locked_until`.
-- Portable between SQLite and PostgreSQL.
CREATE TABLE sign_in_failures (
    client       TEXT PRIMARY KEY,
    failures     BIGINT NOT NULL,
    window_start BIGINT NOT NULL,
    locked_until BIGINT NOT NULL
);

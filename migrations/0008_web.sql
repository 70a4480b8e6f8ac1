-- Web app sessions: a browser signs in with an API token and gets a random session id in an
-- HttpOnly cookie. Only the id's sha256 is stored (a leaked database leaks no session), with
-- the session's CSRF token and its expiry. Portable between SQLite and PostgreSQL.
CREATE TABLE web_sessions (
    id_sha256   TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id),
    csrf        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX web_sessions_expiry ON web_sessions(expires_at);

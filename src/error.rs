//! The one error type of dealdesk.
//!
//! Every fallible operation in the domain modules returns [`Error`]. Each variant carries a
//! stable machine-readable [`Error::code`]; the HTTP layer maps variants to status codes in a
//! single place (`http::error`), and the CLI prints the message, which is written to tell the
//! user what to do next.

use std::path::PathBuf;

/// A dealdesk error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The caller's input is malformed or violates a rule (HTTP 400).
    #[error("{0}")]
    InvalidInput(String),
    /// No or an unknown credential (HTTP 401).
    #[error("{0}")]
    Unauthenticated(String),
    /// A known caller whose role or scope does not allow the action (HTTP 403).
    #[error("{0}")]
    Forbidden(String),
    /// The named thing does not exist, or is outside the caller's scope (HTTP 404).
    #[error("{0}")]
    NotFound(String),
    /// The route exists but not for this HTTP method (HTTP 405).
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The request conflicts with the current state (HTTP 409).
    #[error("{0}")]
    Conflict(String),
    /// The request body is larger than the configured limit (HTTP 413).
    #[error("{0}")]
    TooLarge(String),
    /// Too many attempts (failed sign-ins, say); try again after `retry_after_secs` (HTTP 429
    /// with `Retry-After`).
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after_secs: u64,
    },
    /// A component the request needs is not ready, e.g. models not fetched (HTTP 503).
    #[error("{0}")]
    Unavailable(String),
    /// The configuration is invalid; the message names the key and the fix.
    #[error("configuration error: {0}")]
    Config(String),
    /// A file could not be read or written.
    #[error("{context} ({path}): {source}")]
    Io {
        context: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The database failed.
    #[error("database error: {0}")]
    Database(sqlx::Error),
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// An internal invariant broke; the message is for the operator's log.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// A stable, machine-readable code for this error, used in the HTTP `{code, message}` body.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidInput(_) => "invalid_input",
            Error::Unauthenticated(_) => "unauthenticated",
            Error::Forbidden(_) => "forbidden",
            Error::NotFound(_) => "not_found",
            Error::MethodNotAllowed(_) => "method_not_allowed",
            Error::Conflict(_) => "conflict",
            Error::TooLarge(_) => "too_large",
            Error::RateLimited { .. } => "rate_limited",
            Error::Unavailable(_) => "unavailable",
            Error::Config(_) => "config",
            Error::Io { .. } => "io",
            Error::Database(_) => "database",
            Error::Migration(_) => "migration",
            Error::Internal(_) => "internal",
        }
    }

    /// Wraps an I/O error with what was being done and to which path.
    pub fn io(
        context: impl Into<String>,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        let context = context.into();
        let path = path.into();
        // ENOSPC / EDQUOT: the operator must free space; the request itself was fine.
        if source.kind() == std::io::ErrorKind::StorageFull
            || source.kind() == std::io::ErrorKind::QuotaExceeded
        {
            tracing::error!(path = %path.display(), "{context}: {source}");
            return Error::Unavailable(format!(
                "{context}: the server's disk is full, nothing was stored; free space on its \
                 data volume and retry"
            ));
        }
        Error::Io {
            context,
            path,
            source,
        }
    }
}

impl From<sqlx::Error> for Error {
    /// A statement that waited out the busy timeout on a lock held elsewhere wrote nothing and
    /// can be retried: [`Error::Unavailable`] (HTTP 503), not a database failure.
    fn from(e: sqlx::Error) -> Self {
        if crate::store::is_disk_full(&e) {
            Error::Unavailable(format!(
                "the database's disk is full, nothing was stored ({e}); free space on its volume \
                 and retry"
            ))
        } else if crate::store::is_busy(&e) {
            Error::Unavailable(format!(
                "the database is busy: another process holds a lock on it ({e}); nothing was \
                 changed, retry in a few seconds (if it persists, find the process holding the \
                 lock, e.g. with `fuser` on the database file, or run `dealdesk doctor`)"
            ))
        } else {
            Error::Database(e)
        }
    }
}

/// Shorthand for `Result<T, dealdesk::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

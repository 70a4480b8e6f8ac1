//! Durable storage: the SQL database (SQLite by default, PostgreSQL for teams that outgrow one
//! box) and the content-addressed file store for uploads.
//!
//! All queries go through sqlx's `Any` driver with portable SQL (text ids, BIGINT millisecond
//! timestamps, `$n` placeholders), so one code path serves both backends. Migrations in
//! `migrations/` are embedded in the binary and applied on start.

pub mod blobs;
pub mod changes;
#[cfg(test)]
mod upgrade_tests;

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::Digest;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Connection, Executor};

use crate::config::Config;
use crate::error::{Error, Result};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The binary column type in a migration, written per backend by [`migrator`]: the one type
/// name neither engine shares.
const BYTES_TYPE: &str = "{bytes}";

/// The embedded migrations up to `through` (a version; `i64::MAX` for all) for `backend`, with
/// [`BYTES_TYPE`] written as `BLOB` on SQLite and `BYTEA` on PostgreSQL. A migration without
/// it is passed on as compiled (same checksum).
fn migrator(backend: Backend, through: i64) -> sqlx::migrate::Migrator {
    let bytes = match backend {
        Backend::Sqlite => "BLOB",
        Backend::Postgres => "BYTEA",
    };
    let migrations = MIGRATOR
        .iter()
        .filter(|m| m.version <= through)
        .map(|m| match m.sql.contains(BYTES_TYPE) {
            false => m.clone(),
            true => sqlx::migrate::Migration::new(
                m.version,
                m.description.clone(),
                m.migration_type,
                m.sql.replace(BYTES_TYPE, bytes).into(),
                m.no_tx,
            ),
        })
        .collect::<Vec<_>>();
    // sqlx 0.8 builds a `Migrator` only from a directory or with `migrate!`; its fields are
    // public for that macro (Cargo.lock pins the version).
    sqlx::migrate::Migrator {
        migrations: migrations.into(),
        ignore_missing: MIGRATOR.ignore_missing,
        locking: MIGRATOR.locking,
        no_tx: MIGRATOR.no_tx,
    }
}

/// A handle to the database: cheap to clone, shared by every request and worker.
#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
}

/// Which database engine is behind a [`Db`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Db {
    /// Connects to the configured database (creating the SQLite file and data directory if
    /// needed) and applies pending migrations.
    pub async fn open(config: &Config) -> Result<Db> {
        std::fs::create_dir_all(&config.data.dir)
            .map_err(|e| Error::io("cannot create the data directory", &config.data.dir, e))?;
        Self::connect(&config.database_url(), config.database.max_connections).await
    }

    /// Connects to `url` and migrates.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Db> {
        Self::connect_through(url, max_connections, i64::MAX).await
    }

    /// Connects to `url` and applies the migrations up to version `through` only (a past
    /// release's schema, for upgrade tests; `i64::MAX` for all).
    pub(crate) async fn connect_through(
        url: &str,
        max_connections: u32,
        through: i64,
    ) -> Result<Db> {
        let db = Self::connect_unmigrated(url, max_connections).await?;
        db.migrate_through(through).await?;
        Ok(db)
    }

    /// Connects to `url` without applying migrations (`dealdesk doctor` inspects them first).
    pub async fn connect_unmigrated(url: &str, max_connections: u32) -> Result<Db> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if let Some(path) = url.strip_prefix("sqlite://") {
            let path = path.split('?').next().unwrap_or(path);
            if let Some(parent) = Path::new(path)
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
            {
                std::fs::create_dir_all(parent)
                    .map_err(|e| Error::io("cannot create the database directory", parent, e))?;
            }
            (Backend::Sqlite, format!("sqlite://{path}?mode=rwc"))
        } else {
            (Backend::Postgres, without_statement_cache(url))
        };
        let options: AnyConnectOptions = url
            .parse()
            .map_err(|e| Error::Config(format!("database.url is not a valid URL: {e}")))?;
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections.max(1))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    match backend {
                        // WAL lets readers run beside the writer; FULL sync makes every
                        // committed job and upload record survive a crash or power loss.
                        Backend::Sqlite => {
                            conn.execute(
                                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                                 PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;",
                            )
                            .await?
                        }
                        // The same bound on waiting for a lock another session holds: past
                        // it the statement fails (55P03, 503 to a client) instead of hanging
                        // a request for as long as a forgotten transaction stays open.
                        Backend::Postgres => conn.execute(PG_LOCK_TIMEOUT).await?,
                    };
                    Ok(())
                })
            })
            .after_release(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // The ping flushes the rollback a dropped transaction queued. A depth
                        // still above zero then means SQLite had rolled the transaction back
                        // itself (a full disk, an I/O error), sqlx's ROLLBACK failed, and sqlx
                        // would refuse every later BEGIN on this connection: close it.
                        conn.ping().await?;
                        return Ok(!conn.is_in_transaction());
                    }
                    Ok(true)
                })
            })
            .connect_with(options)
            .await
            .map_err(|e| match e {
                sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolTimedOut => {
                    Error::Unavailable(format!(
                        "cannot reach the database ({e}); check database.url / DEALDESK_DATABASE_URL"
                    ))
                }
                other => other.into(),
            })?;
        Ok(Db { pool, backend })
    }

    /// Applies the migrations this binary has and the database lacks.
    pub async fn migrate(&self) -> Result<()> {
        self.migrate_through(i64::MAX).await
    }

    /// Applies the migrations up to `through`. On PostgreSQL without the lock timeout: a
    /// process that starts while another migrates waits for its advisory lock as long as the
    /// migration takes.
    async fn migrate_through(&self, through: i64) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        if self.backend == Backend::Postgres {
            (&mut *conn).execute("SET lock_timeout = 0").await?;
        }
        let ran = migrator(self.backend, through).run(&mut *conn).await;
        if self.backend == Backend::Postgres {
            (&mut *conn).execute(PG_LOCK_TIMEOUT).await?;
        }
        Ok(ran?)
    }

    /// The connection pool, for queries.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Begins a transaction. On SQLite it takes the write lock at once (`BEGIN IMMEDIATE`),
    /// waiting up to `busy_timeout` for another writer: a deferred transaction that reads
    /// first cannot wait when it comes to write while another connection (a job worker
    /// storing progress) writes, and fails with "database is locked" (found by API fuzzing).
    pub async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    /// Which engine this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Checks that the database answers, for `/readyz`.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

/// The migrations built into this binary, as written (the same checksums on every backend).
pub fn migrations() -> &'static sqlx::migrate::Migrator {
    &MIGRATOR
}

/// The source checksum ([`migrations`]) of migration `version`, given the checksum `backend`
/// recorded when applying it: the two differ for a migration with per-backend SQL, and
/// backups and `doctor` compare schemas across backends by the source's.
pub fn source_checksum(backend: Backend, version: i64, applied: &[u8]) -> Vec<u8> {
    let as_applied = migrator(backend, version);
    let source = MIGRATOR.iter().find(|m| m.version == version);
    match (as_applied.iter().find(|m| m.version == version), source) {
        (Some(ran), Some(source)) if *ran.checksum == *applied => source.checksum.to_vec(),
        _ => applied.to_vec(),
    }
}

/// How long a PostgreSQL statement waits for a lock, like SQLite's `busy_timeout`.
const PG_LOCK_TIMEOUT: &str = "SET lock_timeout = '10s'";

/// Whether `e` means another connection or process holds a lock the statement needed, past
/// the busy timeout (SQLite `SQLITE_BUSY`/`SQLITE_LOCKED`, PostgreSQL lock timeouts): the work
/// can be retried later, nothing was written.
pub fn is_busy(e: &sqlx::Error) -> bool {
    let Some(db) = e.as_database_error() else {
        return false;
    };
    let code = db.code().unwrap_or_default();
    // SQLite: the primary result code is the low byte of the extended one (5 busy, 6 locked);
    // PostgreSQL: 55P03 lock_not_available, 40P01 deadlock_detected.
    sqlite_code(&code).is_some_and(|c| matches!(c, 5 | 6))
        || matches!(code.as_ref(), "55P03" | "40P01")
}

/// Whether `e` means the database's disk is full (SQLite `SQLITE_FULL`, PostgreSQL 53100).
pub fn is_disk_full(e: &sqlx::Error) -> bool {
    e.as_database_error().is_some_and(|db| {
        let code = db.code().unwrap_or_default();
        sqlite_code(&code) == Some(13) || code == "53100"
    })
}

/// The primary SQLite result code of an error code string. SQLite's (extended) codes have at
/// most four digits; PostgreSQL's SQLSTATEs always have five characters.
fn sqlite_code(code: &str) -> Option<i64> {
    if code.len() == 5 {
        return None; // a PostgreSQL SQLSTATE such as 23505
    }
    code.parse::<i64>().ok().map(|c| c & 0xff)
}

/// `url` with PostgreSQL's prepared-statement cache switched off. sqlx 0.8's `Any` driver
/// binds a NULL `f64` as a `float4` parameter; a cached statement would then keep that type
/// and refuse the next non-NULL `f64` ("incorrect binary data format"). Unnamed statements
/// take their parameter types from each execution's binds.
fn without_statement_cache(url: &str) -> String {
    if url.contains("statement-cache-capacity=") {
        return url.to_string();
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}statement-cache-capacity=0")
}

/// Milliseconds since the Unix epoch: the timestamp format of every table.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A new time-ordered unique id (UUIDv7), so ids sort by creation.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// The environment variable naming a PostgreSQL server (`postgres://USER@HOST:PORT`) on which
/// the test suites create their databases; unset, tests use SQLite files.
pub const TEST_POSTGRES_ENV: &str = "TEST_POSTGRES_URL";

/// The database of a test whose files live in `dir`, so one suite runs on both backends
/// (`scripts/test` runs it twice): a SQLite file in `dir`, or, when [`TEST_POSTGRES_ENV`] is
/// set, a database on that server named after `dir`, created if missing.
pub async fn test_database_url(dir: &Path) -> Result<String> {
    let Ok(server) = std::env::var(TEST_POSTGRES_ENV) else {
        return Ok(format!("sqlite://{}", dir.join("dealdesk.db").display()));
    };
    let server = server.trim_end_matches('/');
    let digest = sha2::Sha256::digest(dir.to_string_lossy().as_bytes());
    let name = format!("dd_{}", hex::encode(&digest[..12]));
    sqlx::any::install_default_drivers();
    let mut admin = sqlx::AnyConnection::connect(&format!("{server}/postgres"))
        .await
        .map_err(|e| {
            Error::Unavailable(format!("cannot reach {TEST_POSTGRES_ENV}={server}: {e}"))
        })?;
    let exists = sqlx::query("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(&name)
        .fetch_optional(&mut admin)
        .await?
        .is_some();
    if !exists {
        // The name is hex, so it needs no quoting. Another process may win the race to create
        // it: "duplicate_database" (42P04) then means it is there.
        if let Err(e) = admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
        {
            let duplicate = e
                .as_database_error()
                .and_then(|d| d.code())
                .is_some_and(|c| c == "42P04" || c == "23505");
            if !duplicate {
                return Err(e.into());
            }
        }
    }
    Ok(format!("{server}/{name}"))
}

/// A migrated database for a unit test, in a fresh temporary directory kept alive by the
/// `TempDir`: SQLite, or PostgreSQL under [`TEST_POSTGRES_ENV`].
#[cfg(test)]
pub(crate) async fn temp_db() -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().unwrap();
    let url = test_database_url(dir.path()).await.unwrap();
    (dir, Db::connect(&url, 4).await.unwrap())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_urls_get_no_statement_cache_unless_they_say_so() {
        assert_eq!(
            without_statement_cache("postgres://u@h/db"),
            "postgres://u@h/db?statement-cache-capacity=0"
        );
        assert_eq!(
            without_statement_cache("postgres://u@h/db?sslmode=require"),
            "postgres://u@h/db?sslmode=require&statement-cache-capacity=0"
        );
        let given = "postgres://u@h/db?statement-cache-capacity=100";
        assert_eq!(without_statement_cache(given), given);
    }

    #[tokio::test]
    async fn a_null_then_a_number_in_the_same_float_column_is_stored() {
        // On PostgreSQL (TEST_POSTGRES_URL) this failed with a cached statement.
        let (_dir, db) = temp_db().await;
        for price in [None, Some(9000.5), None, Some(1.25)] {
            sqlx::query(
                "INSERT INTO deals (id, features, list_price, quoted_price, created_at, updated_at) \
                 VALUES ($1, '{}', $2, $3, 0, 0)",
            )
            .bind(new_id())
            .bind(Some(10_000.0_f64))
            .bind(price)
            .execute(db.pool())
            .await
            .unwrap();
        }
        let stored: Vec<Option<f64>> =
            sqlx::query_scalar("SELECT quoted_price FROM deals ORDER BY id")
                .fetch_all(db.pool())
                .await
                .unwrap();
        assert_eq!(stored, [None, Some(9000.5), None, Some(1.25)]);
    }

    #[tokio::test]
    async fn migrations_create_every_table_on_an_empty_database() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("sub/dd.db").display());
        let db = Db::connect(&url, 2).await.unwrap();
        for table in [
            "users",
            "api_tokens",
            "blobs",
            "jobs",
            "calls",
            "transcripts",
            "insights",
            "bids",
            "deals",
            "recommendations",
            "reviews",
            "audit_events",
        ] {
            let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
                .fetch_one(db.pool())
                .await
                .unwrap_or_else(|e| panic!("table {table}: {e}"));
            assert_eq!(n, 0, "{table} starts empty");
        }
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(db.pool())
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        drop(db);
        // Re-opening applies nothing twice.
        Db::connect(&url, 2).await.unwrap();
    }

    #[test]
    fn ids_are_unique_and_time_ordered() {
        let a = new_id();
        let b = new_id();
        assert!(a < b);
    }
}

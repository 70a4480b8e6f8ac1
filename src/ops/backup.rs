//! `dealdesk backup DIR` and `dealdesk restore DIR`.
//!
//! **Backup** is online: the server may keep running. Every table is exported in one read
//! transaction — on SQLite (WAL) a transaction's reads all see one snapshot, on PostgreSQL the
//! transaction is `REPEATABLE READ, READ ONLY` — so the tables agree with each other. Uploads
//! are content-addressed and never change once stored, so the files that the snapshot's
//! `blobs` rows name are copied afterwards, each re-hashed against its name. The effective
//! configuration and the rules files it points at are saved beside them. `manifest.json`
//! lists every file with its sha256; the backup is written to a hidden sibling directory and
//! renamed to `DIR` only when complete, so a `DIR` that exists is a whole backup.
//!
//! **Restore** verifies every checksum first, refuses a backup from a different schema
//! (migrations), refuses a database or blob store that holds data unless `force`, copies the
//! uploads into the blob store (unreferenced, hence invisible, until the rows arrive) and then
//! loads every table in one transaction: the restored state appears at once or not at all.
//! The local search indexes are emptied afterwards and rebuilt from the restored rows on the
//! next start.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sqlx::Executor;

use super::tables::{self, AppliedMigration, Table};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::store::blobs::{BlobStore, hash_file};
use crate::store::{Backend, Db, new_id, now_ms};

/// The version of the backup layout.
pub const FORMAT: u32 = 1;
const MANIFEST: &str = "manifest.json";

/// `manifest.json`: what a backup holds, with a checksum for every file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub dealdesk_version: String,
    pub created_at_ms: i64,
    /// `sqlite` or `postgres`: where it was taken (it restores into either).
    pub backend: String,
    /// The schema: the migrations applied to the database.
    pub migrations: Vec<AppliedMigration>,
    pub tables: Vec<TableFile>,
    pub blobs: Vec<BlobFile>,
    /// Uploads the database lists whose file was missing or did not match its hash when the
    /// backup was taken; they are not in the backup (`dealdesk doctor` reports them).
    pub damaged_blobs: Vec<String>,
    pub config: Vec<ConfigFile>,
}

/// One table's export: `db/<name>.jsonl`, one JSON array a row.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TableFile {
    #[serde(flatten)]
    pub table: Table,
    pub rows: u64,
    pub file: String,
    pub sha256: String,
}

/// One upload: `blobs/<aa>/<sha256>`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BlobFile {
    pub sha256: String,
    pub size_bytes: u64,
}

/// A saved configuration file: `config/<file>`, and where it came from.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConfigFile {
    pub file: String,
    pub source: String,
    pub sha256: String,
}

impl Manifest {
    fn blob_file(sha256: &str) -> String {
        format!("blobs/{}/{sha256}", &sha256[..2])
    }
}

/// Writes a backup of the configured database, uploads and configuration to `dir`, which
/// must not exist or be empty.
pub async fn backup(config: &Config, dir: &Path) -> Result<Manifest> {
    if is_non_empty_dir(dir)? || dir.is_file() {
        return Err(Error::Conflict(format!(
            "{} already exists and is not empty; back up into a new or empty directory",
            dir.display()
        )));
    }
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)
        .map_err(|e| Error::io("cannot create the backup's parent directory", parent, e))?;
    let name = dir.file_name().map(|n| n.to_string_lossy().to_string());
    let work = parent.join(format!(
        ".{}.partial-{}",
        name.unwrap_or_else(|| "backup".into()),
        new_id()
    ));
    let result = write_backup(config, &work).await;
    let manifest = match result {
        Ok(m) => m,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&work);
            return Err(e);
        }
    };
    if dir.exists() {
        std::fs::remove_dir(dir)
            .map_err(|e| Error::io("cannot replace the empty directory", dir, e))?;
    }
    std::fs::rename(&work, dir)
        .map_err(|e| Error::io("cannot move the backup into place", dir, e))?;
    sync_dir(parent)?;
    Ok(manifest)
}

async fn write_backup(config: &Config, work: &Path) -> Result<Manifest> {
    let db = Db::open(config).await?;
    let store = BlobStore::from_config(config, db.clone());
    std::fs::create_dir_all(work.join("db"))
        .map_err(|e| Error::io("cannot create the backup directory", work, e))?;

    // One read transaction: every table from the same snapshot.
    let mut tx = db.pool().begin().await?;
    if db.backend() == Backend::Postgres {
        tx.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await?;
    }
    let mut tables_out = Vec::new();
    for table in tables::catalog(&mut tx, db.backend()).await? {
        let file = format!("db/{}.jsonl", table.name);
        let path = work.join(&file);
        let mut out = BufWriter::new(create(&path)?);
        let rows = tables::export(&mut tx, &table, &mut out).await?;
        finish(out, &path)?;
        tables_out.push(TableFile {
            table,
            rows,
            file,
            sha256: hash(&path)?,
        });
    }
    let migrations = tables::applied_migrations(&mut tx, db.backend()).await?;
    let listed: Vec<(String, i64)> =
        sqlx::query_as("SELECT sha256, size_bytes FROM blobs ORDER BY sha256")
            .fetch_all(&mut *tx)
            .await?;
    tx.rollback().await?;

    // Uploads never change once stored: copy what the snapshot lists, re-hashing each copy.
    let mut blobs = Vec::new();
    let mut damaged_blobs = Vec::new();
    for (sha256, size) in listed {
        let file = Manifest::blob_file(&sha256);
        let target = work.join(&file);
        // A missing or damaged upload is reported below, not a reason to stop the backup.
        let copied = match store.local_file(&sha256).await {
            Ok(source) => copy_verified(source.path(), &target, &sha256)?,
            Err(Error::NotFound(_) | Error::InvalidInput(_) | Error::Internal(_)) => false,
            Err(e) => return Err(e),
        };
        if copied {
            blobs.push(BlobFile {
                sha256,
                size_bytes: size.max(0) as u64,
            });
        } else {
            tracing::warn!(%sha256, "upload missing or damaged; not in the backup");
            damaged_blobs.push(sha256);
        }
    }

    let config_files = save_config(config, &work.join("config"))?;
    let manifest = Manifest {
        format: FORMAT,
        dealdesk_version: env!("CARGO_PKG_VERSION").into(),
        created_at_ms: now_ms(),
        backend: match db.backend() {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
        .into(),
        migrations,
        tables: tables_out,
        blobs,
        damaged_blobs,
        config: config_files,
    };
    let path = work.join(MANIFEST);
    let mut out = BufWriter::new(create(&path)?);
    serde_json::to_writer_pretty(&mut out, &manifest).expect("the manifest serializes");
    finish(out, &path)?;
    for sub in ["db", "config", ""] {
        sync_dir(&work.join(sub))?;
    }
    Ok(manifest)
}

/// Copies `source` to `target` and checks the copy's sha256; false (and no copy) when the
/// source is missing or its content does not match.
fn copy_verified(source: &Path, target: &Path, sha256: &str) -> Result<bool> {
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| Error::io("cannot create a directory", parent, e))?;
    }
    match std::fs::copy(source, target) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::io("cannot copy an upload", source, e)),
    }
    if hash(target)? != sha256 {
        let _ = std::fs::remove_file(target);
        return Ok(false);
    }
    File::open(target)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io("cannot sync a copied upload", target, e))?;
    Ok(true)
}

/// The configuration files a backup keeps: the effective configuration (`dealdesk.toml`, as
/// `dealdesk config show` prints it) and the rules, quote rules and trackers files and
/// playbook folder it names.
fn save_config(config: &Config, dir: &Path) -> Result<Vec<ConfigFile>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create a directory", dir, e))?;
    let mut saved = Vec::new();
    let mut keep = |file: String, source: String, bytes: &[u8]| -> Result<()> {
        let path = dir.join(&file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::io("cannot create a directory", parent, e))?;
        }
        let mut out = BufWriter::new(create(&path)?);
        out.write_all(bytes)
            .map_err(|e| Error::io("cannot write a config file", &path, e))?;
        finish(out, &path)?;
        saved.push(ConfigFile {
            file,
            source,
            sha256: hash(&path)?,
        });
        Ok(())
    };
    keep(
        "dealdesk.toml".into(),
        "effective configuration".into(),
        config.to_toml().as_bytes(),
    )?;
    let named = [
        ("review.rules", PathBuf::from(&config.review.rules)),
        ("quotes.rules", config.quotes.rules.clone()),
        ("calls.trackers", PathBuf::from(&config.calls.trackers)),
        (
            "calls.playbook_dir",
            config.calls.playbook_dir(&config.data),
        ),
    ];
    for (key, path) in named {
        if path.as_os_str().is_empty() {
            continue;
        }
        for file in files_under(&path)? {
            let bytes = std::fs::read(&file)
                .map_err(|e| Error::io("cannot read a config file", &file, e))?;
            let rel = file.strip_prefix(&path).unwrap_or(&file);
            let name = if rel.as_os_str().is_empty() {
                key.to_string()
            } else {
                format!("{key}/{}", rel.display())
            };
            keep(name, format!("{key} = {}", file.display()), &bytes)?;
        }
    }
    Ok(saved)
}

/// `path` itself when it is a file, the files below it when it is a directory, nothing when
/// it does not exist.
pub(super) fn files_under(path: &Path) -> Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    if path.is_dir() {
        let entries =
            std::fs::read_dir(path).map_err(|e| Error::io("cannot list a directory", path, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("cannot list a directory", path, e))?;
            out.extend(files_under(&entry.path())?);
        }
    }
    out.sort();
    Ok(out)
}

/// What a restore did.
#[derive(Clone, Debug, Serialize)]
pub struct Restored {
    pub tables: usize,
    pub rows: u64,
    pub blobs: usize,
    /// Where the backed-up configuration files were put for the operator to compare with
    /// their own (a restore never overwrites the configuration in use).
    pub config_dir: PathBuf,
}

/// Restores the backup in `dir` into the configured database and blob store. Both must be
/// empty unless `force`, which replaces their data. No dealdesk process may be using the
/// data directory.
pub async fn restore(config: &Config, dir: &Path, force: bool) -> Result<Restored> {
    let manifest = verify(dir)?;
    let ours = tables::known_migrations();
    if manifest.migrations != ours {
        return Err(Error::Conflict(format!(
            "the backup's schema (migrations {}) is not this dealdesk's ({}); restore it with \
             dealdesk {} and upgrade afterwards",
            versions(&manifest.migrations),
            versions(&ours),
            manifest.dealdesk_version
        )));
    }
    let index_dir = config.data.dir.join("index");
    for name in ["bids", "calls"] {
        ensure_unused(&index_dir.join(name))?;
    }
    let db = Db::open(config).await?;
    let store = BlobStore::from_config(config, db.clone());
    let mut conn = db.pool().acquire().await?;
    let target = tables::catalog(&mut conn, db.backend()).await?;
    let theirs: Vec<&Table> = manifest.tables.iter().map(|t| &t.table).collect();
    if target.iter().collect::<Vec<_>>() != theirs {
        return Err(Error::Conflict(
            "the database's tables differ from the backup's although both have the same \
             migrations; was the schema changed by hand? Restore into a new, empty database"
                .into(),
        ));
    }
    let seeded = seeded_rows().await?;
    let held: Vec<String> = tables::counts(&mut conn, &target)
        .await?
        .into_iter()
        .filter(|(t, n)| seeded.get(t).copied().unwrap_or(0) != *n)
        .map(|(t, n)| format!("{t} {n}"))
        .collect();
    drop(conn);
    let blob_files = files_under(&config.blobs_dir())?.len();
    if !force && (!held.is_empty() || blob_files > 0) {
        return Err(Error::Conflict(format!(
            "the target is not empty (rows: {}; files in {}: {blob_files}); restore into an \
             empty database and data directory, or pass --force to replace their data",
            if held.is_empty() {
                "none".to_string()
            } else {
                held.join(", ")
            },
            config.blobs_dir().display()
        )));
    }

    // Uploads first: until the rows arrive nothing refers to them.
    for blob in &manifest.blobs {
        place_blob(
            &store,
            &dir.join(Manifest::blob_file(&blob.sha256)),
            &blob.sha256,
        )
        .await?;
    }
    // Every table in one transaction: all of the backup appears at once, or nothing changes.
    let mut tx = db.begin().await?;
    tables::clear(&mut tx, &target).await?;
    let mut rows = 0;
    for t in &manifest.tables {
        let path = dir.join(&t.file);
        let mut input = BufReader::new(
            File::open(&path).map_err(|e| Error::io("cannot read the backup", &path, e))?,
        );
        rows += tables::import(&mut tx, &t.table, &mut input).await?;
    }
    tx.commit().await?;

    // The search indexes are derived: rebuilt from the restored rows on the next start.
    for name in ["bids", "calls"] {
        let index = index_dir.join(name);
        if index.exists() {
            crate::bids::index::clear_derived(&index, &format!("{name} index"))?;
        }
    }
    let config_dir = config.data.dir.join("restored-config");
    for file in &manifest.config {
        let target = config_dir.join(&file.file);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::io("cannot create a directory", parent, e))?;
        }
        let source = dir.join("config").join(&file.file);
        std::fs::copy(&source, &target)
            .map_err(|e| Error::io("cannot copy a configuration file", &source, e))?;
    }
    Ok(Restored {
        tables: manifest.tables.len(),
        rows,
        blobs: manifest.blobs.len(),
        config_dir,
    })
}

/// The rows that migrating an empty database writes (such as the audit chain's first head),
/// by table: a database that holds only these is empty. Measured on a scratch SQLite file.
async fn seeded_rows() -> Result<std::collections::HashMap<String, i64>> {
    let dir = std::env::temp_dir().join(format!("dealdesk-seed-{}", new_id()));
    let url = format!("sqlite://{}", dir.join("seed.db").display());
    let counted = async {
        let db = Db::connect(&url, 1).await?;
        let mut conn = db.pool().acquire().await?;
        let all = tables::catalog(&mut conn, Backend::Sqlite).await?;
        let counts = tables::counts(&mut conn, &all).await;
        drop(conn);
        db.pool().close().await;
        counts
    }
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(counted?.into_iter().collect())
}

/// Reads the backup's manifest and checks every file it lists against its sha256.
pub fn verify(dir: &Path) -> Result<Manifest> {
    let path = dir.join(MANIFEST);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Error::io(
            "cannot read the backup's manifest (is this a dealdesk backup directory?)",
            &path,
            e,
        )
    })?;
    let manifest: Manifest = serde_json::from_str(&text).map_err(|e| {
        Error::InvalidInput(format!(
            "{} is not a dealdesk backup manifest: {e}",
            path.display()
        ))
    })?;
    if manifest.format != FORMAT {
        return Err(Error::InvalidInput(format!(
            "the backup has layout version {}; this dealdesk reads version {FORMAT}",
            manifest.format
        )));
    }
    let files = manifest
        .tables
        .iter()
        .map(|t| (t.file.clone(), t.sha256.clone()))
        .chain(
            manifest
                .blobs
                .iter()
                .map(|b| (Manifest::blob_file(&b.sha256), b.sha256.clone())),
        )
        .chain(
            manifest
                .config
                .iter()
                .map(|c| (format!("config/{}", c.file), c.sha256.clone())),
        );
    for (file, sha256) in files {
        if file.split('/').any(|part| part == ".." || part.is_empty()) {
            return Err(Error::InvalidInput(format!(
                "the backup's manifest names {file:?}, outside the backup"
            )));
        }
        let actual = match hash_file(&dir.join(&file), &mut |_| {}) {
            Ok(h) => h,
            Err(e) => {
                return Err(Error::io(
                    "a file of the backup cannot be read",
                    dir.join(&file),
                    e,
                ));
            }
        };
        if actual != sha256 {
            return Err(Error::InvalidInput(format!(
                "the backup is damaged: {file} does not match its checksum in the manifest; \
                 nothing was restored, use another backup"
            )));
        }
    }
    Ok(manifest)
}

/// Puts a verified upload into the store through its own write path (spooled, synced, moved
/// into place or written as chunks); the `blobs` rows come with the tables afterwards.
async fn place_blob(store: &BlobStore, source: &Path, sha256: &str) -> Result<()> {
    let file = tokio::fs::File::open(source)
        .await
        .map_err(|e| Error::io("cannot read an upload of the backup", source, e))?;
    let stored = store
        .put(file, "application/octet-stream", u64::MAX)
        .await?;
    if stored.sha256 != sha256 {
        return Err(Error::InvalidInput(format!(
            "the backup is damaged: {} does not hash to its name; use another backup",
            source.display()
        )));
    }
    Ok(())
}

/// Fails when a dealdesk process holds the writer of the index in `dir` (it runs on this data
/// directory).
fn ensure_unused(dir: &Path) -> Result<()> {
    if super::index_in_use(dir) {
        return Err(Error::Conflict(format!(
            "a dealdesk process is using {}; stop `dealdesk serve` and `dealdesk worker` on \
             this data directory before restoring",
            dir.display()
        )));
    }
    Ok(())
}

fn versions(migrations: &[AppliedMigration]) -> String {
    match (migrations.first(), migrations.last()) {
        (Some(a), Some(b)) => format!(
            "{}..{} ({} applied)",
            a.version,
            b.version,
            migrations.len()
        ),
        _ => "none".into(),
    }
}

fn is_non_empty_dir(dir: &Path) -> Result<bool> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_some()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => Ok(true),
        Err(e) => Err(Error::io("cannot read the backup directory", dir, e)),
    }
}

fn create(path: &Path) -> Result<File> {
    File::create(path).map_err(|e| Error::io("cannot create a backup file", path, e))
}

/// Flushes and fsyncs a written file.
fn finish(out: BufWriter<File>, path: &Path) -> Result<()> {
    out.into_inner()
        .map_err(|e| Error::io("cannot write a backup file", path, e.into_error()))?
        .sync_all()
        .map_err(|e| Error::io("cannot sync a backup file", path, e))
}

fn hash(path: &Path) -> Result<String> {
    hash_file(path, &mut |_| {}).map_err(|e| Error::io("cannot read back a backup file", path, e))
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("cannot sync a directory", dir, e))
}

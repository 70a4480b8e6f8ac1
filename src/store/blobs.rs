//! Content-addressed store for uploads (call recordings), one interface over two backends
//! chosen by `[data] blobs`:
//!
//! * `dir` (the default): a blob lives at `<blobs dir>/<first two hex>/<sha256>`
//!   (`[data] blobs_dir`, by default `<data>/blobs`, a shared mount when several machines
//!   serve). Writes go to a temporary file that is synced and renamed into place, so a crash
//!   never leaves a half-written blob under a real name, and the database row is written only
//!   after the file is durable.
//! * `db`: the bytes live in the database (`blob_chunks`, 1 MiB rows), for small deployments
//!   without a shared mount. An upload is first spooled to a local temporary file (memory stays
//!   bounded), then its chunks and its `blobs` row are written in one transaction; uploads are
//!   limited to [`DB_MAX_BYTES`].
//!
//! A blob is named by its sha256, never by user input. Code that needs a file (the audio
//! decoder, byte-range responses) asks [`BlobStore::local_file`]: the blob's own file, or for
//! the database backend a temporary copy checked against the hash and removed when dropped;
//! that is the one place a database blob becomes a file.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::{Db, now_ms};
use crate::config::{BlobBackend, Config};
use crate::error::{Error, Result};

/// Largest blob the database backend takes (whatever `server.max_upload_bytes` says): every
/// byte of it is a database row, backed up and replicated with the rest.
pub const DB_MAX_BYTES: u64 = 256 * 1024 * 1024;

/// Bytes per `blob_chunks` row.
const CHUNK_BYTES: usize = 1024 * 1024;

/// The blob store: a directory or the database, the same calls for both.
#[derive(Clone, Debug)]
pub struct BlobStore {
    db: Db,
    backend: Backend,
}

#[derive(Clone, Debug)]
enum Backend {
    /// Files under `root`; uploads are spooled in `root/tmp` (same file system: renamed).
    Dir { root: PathBuf },
    /// Rows of `blob_chunks`; uploads and local copies are spooled in `spool`.
    Db { spool: PathBuf },
}

/// A stored blob.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Blob {
    pub sha256: String,
    pub size_bytes: u64,
    /// True when identical content was already stored (a re-upload).
    pub existed: bool,
}

/// What a verification pass found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub checked: u64,
    pub ok: u64,
    pub corrupt: Vec<String>,
    pub missing: Vec<String>,
}

/// A blob as a file on this machine, for as long as this value lives.
#[derive(Debug)]
pub struct LocalFile {
    path: PathBuf,
    _copy: Option<TempFile>,
}

impl LocalFile {
    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A temporary file, removed when dropped unless [`TempFile::keep`] took it.
#[derive(Debug)]
struct TempFile(Option<PathBuf>);

impl TempFile {
    /// A new name in `dir` (created if needed).
    async fn new_in(dir: &Path) -> Result<TempFile> {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| Error::io("cannot create the blob spool directory", dir, e))?;
        Ok(TempFile(Some(dir.join(super::new_id()))))
    }

    fn path(&self) -> &Path {
        self.0
            .as_deref()
            .expect("a temporary file has a path until kept")
    }

    /// Leaves the file alone from now on (it was renamed into place).
    fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(path) = &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl BlobStore {
    /// The directory store in `root`.
    pub fn directory(root: PathBuf, db: Db) -> BlobStore {
        BlobStore {
            db,
            backend: Backend::Dir { root },
        }
    }

    /// The database store; uploads and local copies are spooled in `spool`.
    pub fn database(db: Db, spool: PathBuf) -> BlobStore {
        BlobStore {
            db,
            backend: Backend::Db { spool },
        }
    }

    /// The store `[data] blobs` names: `dir` in `[data] blobs_dir`, or `db` spooling in
    /// `<data dir>/tmp`.
    pub fn from_config(config: &Config, db: Db) -> BlobStore {
        match config.data.blobs {
            BlobBackend::Dir => Self::directory(config.blobs_dir(), db),
            BlobBackend::Db => Self::database(db, config.data.dir.join("tmp")),
        }
    }

    /// The store `[data] blobs` does not name: where blobs written before the setting changed
    /// are, for `dealdesk doctor` to move them.
    pub fn other_from_config(config: &Config, db: Db) -> BlobStore {
        match config.data.blobs {
            BlobBackend::Dir => Self::database(db, config.data.dir.join("tmp")),
            BlobBackend::Db => Self::directory(config.blobs_dir(), db),
        }
    }

    /// Where uploads and temporary copies are written before they are complete; what a crash
    /// leaves there is an unfinished upload.
    pub fn spool_dir(&self) -> PathBuf {
        match &self.backend {
            Backend::Dir { root } => root.join("tmp"),
            Backend::Db { spool } => spool.clone(),
        }
    }

    /// The store in words, for reports.
    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::Dir { root } => format!("the blob directory {}", root.display()),
            Backend::Db { .. } => "the database".into(),
        }
    }

    /// Whether any of the blob's content is stored here (nothing is read or hashed).
    pub async fn holds(&self, sha256: &str) -> Result<bool> {
        let sha256 = checked(sha256)?;
        Ok(match &self.backend {
            Backend::Dir { root } => tokio::fs::try_exists(blob_path(root, &sha256))
                .await
                .unwrap_or(false),
            Backend::Db { .. } => chunk_count(self.db.pool(), &sha256).await? > 0,
        })
    }

    /// Moves a blob's content from `source`, the other backend, into this store: copied,
    /// checked against its hash, and only then removed from `source`. The blob's row, shared
    /// by both backends, stays as it is.
    pub async fn move_from(&self, source: &BlobStore, sha256: &str) -> Result<()> {
        let sha256 = checked(sha256)?;
        // The database backend checks its copy; a file is checked here, before it is copied
        // under a name it might not deserve.
        let file = source.local_file(&sha256).await?;
        let path = file.path().to_path_buf();
        let actual = tokio::task::spawn_blocking(move || hash_file(&path, &mut |_| {}))
            .await
            .map_err(|e| Error::Internal(format!("hashing a blob panicked: {e}")))?
            .map_err(|e| Error::io("cannot read a stored blob", file.path(), e))?;
        if actual != sha256 {
            return Err(Error::Internal(format!(
                "the stored content of blob {sha256} in {} does not match its hash; it was not \
                 moved",
                source.describe()
            )));
        }
        let reader = tokio::fs::File::open(file.path())
            .await
            .map_err(|e| Error::io("cannot read a stored blob", file.path(), e))?;
        self.put(reader, "application/octet-stream", u64::MAX)
            .await?;
        drop(file);
        match &source.backend {
            Backend::Dir { root } => {
                let path = blob_path(root, &sha256);
                tokio::fs::remove_file(&path)
                    .await
                    .map_err(|e| Error::io("cannot remove a moved blob", &path, e))?;
            }
            Backend::Db { .. } => {
                sqlx::query("DELETE FROM blob_chunks WHERE sha256 = $1")
                    .bind(&sha256)
                    .execute(self.db.pool())
                    .await?;
            }
        }
        Ok(())
    }

    /// Streams `reader` into the store, refusing more than `max_bytes` (and, in the database,
    /// more than [`DB_MAX_BYTES`]).
    pub async fn put<R: AsyncRead + Unpin>(
        &self,
        mut reader: R,
        media_type: &str,
        max_bytes: u64,
    ) -> Result<Blob> {
        let limit = match &self.backend {
            Backend::Db { .. } if max_bytes > DB_MAX_BYTES => Limit::Database,
            _ => Limit::Upload(max_bytes),
        };
        let tmp = TempFile::new_in(&self.spool_dir()).await?;
        let (sha256, size) = write_tmp(&mut reader, tmp.path(), limit).await?;
        let inserted = match &self.backend {
            Backend::Dir { root } => {
                let final_path = blob_path(root, &sha256);
                let parent = final_path.parent().expect("blob paths have a parent");
                tokio::fs::create_dir_all(parent)
                    .await
                    .map_err(|e| Error::io("cannot create the blob directory", parent, e))?;
                tokio::fs::rename(tmp.path(), &final_path)
                    .await
                    .map_err(|e| Error::io("cannot move the upload into place", &final_path, e))?;
                tmp.keep();
                record(self.db.pool(), &sha256, size, media_type).await?
            }
            Backend::Db { .. } => self.insert_chunks(&tmp, &sha256, size, media_type).await?,
        };
        Ok(Blob {
            sha256,
            size_bytes: size,
            existed: !inserted,
        })
    }

    /// Writes the spooled upload into `blob_chunks` with its `blobs` row, in one transaction;
    /// whether the row is new. A row without chunks (a blob another backend wrote) gets them.
    async fn insert_chunks(
        &self,
        tmp: &TempFile,
        sha256: &str,
        size: u64,
        media_type: &str,
    ) -> Result<bool> {
        let mut tx = self.db.begin().await?;
        let inserted = record(&mut *tx, sha256, size, media_type).await?;
        if chunk_count(&mut *tx, sha256).await? == 0 {
            let path = tmp.path();
            let mut file = tokio::fs::File::open(path)
                .await
                .map_err(|e| Error::io("cannot read the spooled upload", path, e))?;
            let mut buf = vec![0u8; CHUNK_BYTES];
            for seq in 0i64.. {
                let n = fill(&mut file, &mut buf)
                    .await
                    .map_err(|e| Error::io("cannot read the spooled upload", path, e))?;
                if n == 0 {
                    break;
                }
                sqlx::query("INSERT INTO blob_chunks (sha256, seq, data) VALUES ($1, $2, $3)")
                    .bind(sha256)
                    .bind(seq)
                    .bind(&buf[..n])
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(inserted)
    }

    /// Chunk `seq` of a blob in the database, if stored.
    async fn chunk(&self, sha256: &str, seq: i64) -> Result<Option<Vec<u8>>> {
        Ok(
            sqlx::query_scalar("SELECT data FROM blob_chunks WHERE sha256 = $1 AND seq = $2")
                .bind(sha256)
                .bind(seq)
                .fetch_optional(self.db.pool())
                .await?,
        )
    }

    /// The blob as a file on this machine: its own file, or (database backend) a temporary
    /// copy that is checked against the hash and removed when the returned value is dropped.
    pub async fn local_file(&self, sha256: &str) -> Result<LocalFile> {
        let sha256 = checked(sha256)?;
        let spool = match &self.backend {
            Backend::Dir { root } => {
                let path = blob_path(root, &sha256);
                return match tokio::fs::metadata(&path).await {
                    Ok(_) => Ok(LocalFile { path, _copy: None }),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(missing(&sha256)),
                    Err(e) => Err(Error::io("cannot open a stored blob", &path, e)),
                };
            }
            Backend::Db { spool } => spool,
        };
        let copy = TempFile::new_in(spool).await?;
        let path = copy.path().to_path_buf();
        let mut file = tokio::fs::File::create(&path)
            .await
            .map_err(|e| Error::io("cannot create a copy of a stored blob", &path, e))?;
        let mut hasher = Sha256::new();
        let mut seq = 0;
        while let Some(data) = self.chunk(&sha256, seq).await? {
            hasher.update(&data);
            file.write_all(&data)
                .await
                .map_err(|e| Error::io("cannot write a copy of a stored blob", &path, e))?;
            seq += 1;
        }
        file.flush()
            .await
            .map_err(|e| Error::io("cannot write a copy of a stored blob", &path, e))?;
        match integrity(&sha256, &hex::encode(hasher.finalize()), seq > 0) {
            Integrity::Ok => Ok(LocalFile {
                path,
                _copy: Some(copy),
            }),
            Integrity::Missing => Err(missing(&sha256)),
            Integrity::Corrupt => Err(Error::Internal(format!(
                "the stored content of blob {sha256} does not match its hash; run \
                 POST /admin/blobs/verify and upload the file again"
            ))),
        }
    }

    /// Removes a blob (its row, and its file or chunks): for an upload found unusable before
    /// anything refers to it.
    pub async fn remove(&self, sha256: &str) -> Result<()> {
        let sha256 = checked(sha256)?;
        let mut tx = self.db.begin().await?;
        for table in ["blob_chunks", "blobs"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE sha256 = $1"))
                .bind(&sha256)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        if let Backend::Dir { root } = &self.backend {
            let _ = tokio::fs::remove_file(blob_path(root, &sha256)).await;
        }
        Ok(())
    }

    /// Re-hashes every stored blob and records whether it is intact, reporting progress as a
    /// fraction in `0.0..=1.0`. Blocking: run it on a worker thread.
    pub fn verify_all(
        &self,
        rt: &tokio::runtime::Handle,
        progress: &dyn Fn(f32),
    ) -> Result<VerifyReport> {
        let blobs: Vec<(String, i64)> = rt.block_on(
            sqlx::query_as("SELECT sha256, size_bytes FROM blobs ORDER BY sha256")
                .fetch_all(self.db.pool()),
        )?;
        let total_bytes: i64 = blobs.iter().map(|(_, s)| *s).sum::<i64>().max(1);
        let mut done_bytes = 0i64;
        let mut report = VerifyReport::default();
        for (sha256, _) in blobs {
            let mut on_chunk = |n: usize| {
                done_bytes += n as i64;
                progress(done_bytes as f32 / total_bytes as f32);
            };
            let found = self.check(rt, &sha256, &mut on_chunk)?;
            match found {
                Integrity::Ok => report.ok += 1,
                Integrity::Corrupt => report.corrupt.push(sha256.clone()),
                Integrity::Missing => report.missing.push(sha256.clone()),
            }
            report.checked += 1;
            rt.block_on(
                sqlx::query("UPDATE blobs SET integrity = $1, verified_at = $2 WHERE sha256 = $3")
                    .bind(found.as_str())
                    .bind(now_ms())
                    .bind(&sha256)
                    .execute(self.db.pool()),
            )?;
        }
        Ok(report)
    }

    /// Re-hashes one stored blob; `on_chunk` gets the length of each piece read.
    fn check(
        &self,
        rt: &tokio::runtime::Handle,
        sha256: &str,
        on_chunk: &mut dyn FnMut(usize),
    ) -> Result<Integrity> {
        let sha256 = checked(sha256)?;
        match &self.backend {
            Backend::Dir { root } => {
                let path = blob_path(root, &sha256);
                match hash_file(&path, on_chunk) {
                    Ok(actual) => Ok(integrity(&sha256, &actual, true)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Integrity::Missing),
                    Err(e) => Err(Error::io("cannot read a stored blob", &path, e)),
                }
            }
            Backend::Db { .. } => {
                let mut hasher = Sha256::new();
                let mut seq = 0;
                while let Some(data) = rt.block_on(self.chunk(&sha256, seq))? {
                    hasher.update(&data);
                    on_chunk(data.len());
                    seq += 1;
                }
                Ok(integrity(&sha256, &hex::encode(hasher.finalize()), seq > 0))
            }
        }
    }
}

/// The limit an upload runs into, for its error message.
#[derive(Clone, Copy)]
enum Limit {
    /// `server.max_upload_bytes`.
    Upload(u64),
    /// [`DB_MAX_BYTES`].
    Database,
}

impl Limit {
    fn bytes(self) -> u64 {
        match self {
            Limit::Upload(n) => n,
            Limit::Database => DB_MAX_BYTES,
        }
    }

    fn error(self) -> Error {
        Error::TooLarge(match self {
            Limit::Upload(n) => {
                format!(
                    "the upload is larger than the limit of {n} bytes (server.max_upload_bytes)"
                )
            }
            Limit::Database => format!(
                "the upload is larger than the {DB_MAX_BYTES} bytes the database blob store \
                 takes; an operator can keep files in a directory instead ([data] blobs = \"dir\")"
            ),
        })
    }
}

/// What re-hashing a blob found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Integrity {
    Ok,
    Corrupt,
    Missing,
}

impl Integrity {
    /// The value of `blobs.integrity`.
    fn as_str(self) -> &'static str {
        match self {
            Integrity::Ok => "ok",
            Integrity::Corrupt => "corrupt",
            Integrity::Missing => "missing",
        }
    }
}

/// The verdict on content hashing to `actual` for the blob `expected`; `found` is false when
/// nothing of it was stored (an empty blob is still intact).
fn integrity(expected: &str, actual: &str, found: bool) -> Integrity {
    if actual == expected {
        Integrity::Ok
    } else if found {
        Integrity::Corrupt
    } else {
        Integrity::Missing
    }
}

fn missing(sha256: &str) -> Error {
    Error::NotFound(format!(
        "the content of blob {sha256} is missing from the blob store; run \
         POST /admin/blobs/verify and upload the file again"
    ))
}

/// `sha256` in lower case once it is known to be a sha256 hex digest: the only names blobs get.
fn checked(sha256: &str) -> Result<String> {
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::InvalidInput(format!(
            "{sha256:?} is not a sha256 hex digest"
        )));
    }
    Ok(sha256.to_ascii_lowercase())
}

/// Where the directory store keeps the blob with this (checked) hash.
fn blob_path(root: &Path, sha256: &str) -> PathBuf {
    root.join(&sha256[..2]).join(sha256)
}

/// Records a durable blob; whether its row is new.
async fn record<'e, E>(executor: E, sha256: &str, size: u64, media_type: &str) -> Result<bool>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let inserted = sqlx::query(
        "INSERT INTO blobs (sha256, size_bytes, media_type, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (sha256) DO NOTHING",
    )
    .bind(sha256)
    .bind(size as i64)
    .bind(media_type)
    .bind(now_ms())
    .execute(executor)
    .await?
    .rows_affected();
    Ok(inserted > 0)
}

/// How many `blob_chunks` rows the blob has.
async fn chunk_count<'e, E>(executor: E, sha256: &str) -> Result<i64>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM blob_chunks WHERE sha256 = $1")
            .bind(sha256)
            .fetch_one(executor)
            .await?,
    )
}

/// Streams `reader` into the file at `tmp_path`, hashing it and stopping past `limit`; the
/// file is synced before its sha256 and size are returned.
async fn write_tmp<R: AsyncRead + Unpin>(
    reader: &mut R,
    tmp_path: &Path,
    limit: Limit,
) -> Result<(String, u64)> {
    let mut file = tokio::fs::File::create(tmp_path)
        .await
        .map_err(|e| Error::io("cannot create a temporary upload file", tmp_path, e))?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = reader
            .read(&mut buf)
            .await
            .map_err(|e| Error::InvalidInput(format!("the upload could not be read: {e}")))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        if size > limit.bytes() {
            return Err(limit.error());
        }
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n])
            .await
            .map_err(|e| Error::io("cannot write the upload", tmp_path, e))?;
    }
    // tokio writes in the background; `flush` reports the last write's error, which
    // `sync_all` would drop.
    file.flush()
        .await
        .map_err(|e| Error::io("cannot write the upload", tmp_path, e))?;
    file.sync_all()
        .await
        .map_err(|e| Error::io("cannot sync the upload to disk", tmp_path, e))?;
    Ok((hex::encode(hasher.finalize()), size))
}

/// Reads from `file` until `buf` is full or the file ends; the bytes read.
async fn fill(file: &mut tokio::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]).await? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// The sha256 of a file, read in 1 MiB chunks; `on_chunk` gets each chunk's length.
pub fn hash_file(path: &Path, on_chunk: &mut dyn FnMut(usize)) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1024 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        on_chunk(n);
    }
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BACKENDS: [BlobBackend; 2] = [BlobBackend::Dir, BlobBackend::Db];

    async fn store(backend: BlobBackend) -> (tempfile::TempDir, BlobStore) {
        let (dir, db) = crate::store::temp_db().await;
        let store = match backend {
            BlobBackend::Dir => BlobStore::directory(dir.path().join("blobs"), db),
            BlobBackend::Db => BlobStore::database(db, dir.path().join("spool")),
        };
        (dir, store)
    }

    /// Files left in the store's spool directory.
    fn spooled(store: &BlobStore) -> usize {
        std::fs::read_dir(store.spool_dir()).map_or(0, |d| d.count())
    }

    async fn count(store: &BlobStore, table: &str) -> i64 {
        sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(store.db.pool())
            .await
            .unwrap()
    }

    /// Overwrites the stored content of a blob behind the store's back.
    async fn tamper(store: &BlobStore, sha256: &str, content: &[u8]) {
        match &store.backend {
            Backend::Dir { root } => std::fs::write(blob_path(root, sha256), content).unwrap(),
            Backend::Db { .. } => {
                sqlx::query("UPDATE blob_chunks SET data = $1 WHERE sha256 = $2")
                    .bind(content)
                    .bind(sha256)
                    .execute(store.db.pool())
                    .await
                    .unwrap();
            }
        }
    }

    /// Loses the stored content of a blob, keeping its row.
    async fn lose(store: &BlobStore, sha256: &str) {
        match &store.backend {
            Backend::Dir { root } => std::fs::remove_file(blob_path(root, sha256)).unwrap(),
            Backend::Db { .. } => {
                sqlx::query("DELETE FROM blob_chunks WHERE sha256 = $1")
                    .bind(sha256)
                    .execute(store.db.pool())
                    .await
                    .unwrap();
            }
        }
    }

    /// tokio's `File` writes in the background: the error of the last write shows only on
    /// `flush`, and `sync_all` alone drops it (a full disk once stored a cut-off upload).
    #[tokio::test]
    async fn a_write_that_fails_last_fails_the_upload() {
        let err = write_tmp(
            &mut &b"the last bytes of a recording"[..],
            Path::new("/dev/full"),
            Limit::Upload(100),
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("cannot write the upload"), "{err}");
    }

    #[tokio::test]
    async fn a_blob_moves_between_backends_only_when_intact() {
        let (dir, db) = crate::store::temp_db().await;
        let files = BlobStore::directory(dir.path().join("blobs"), db.clone());
        let rows = BlobStore::database(db, dir.path().join("spool"));
        let content = b"a recording made before [data] blobs changed";
        let sha = files
            .put(&content[..], "audio/wav", 100)
            .await
            .unwrap()
            .sha256;
        for (from, to) in [(&files, &rows), (&rows, &files)] {
            assert!(from.holds(&sha).await.unwrap() && !to.holds(&sha).await.unwrap());
            to.move_from(from, &sha).await.unwrap();
            assert!(!from.holds(&sha).await.unwrap() && to.holds(&sha).await.unwrap());
            let copy = to.local_file(&sha).await.unwrap();
            assert_eq!(std::fs::read(copy.path()).unwrap(), content);
        }
        assert_eq!(count(&files, "blobs").await, 1);

        tamper(&files, &sha, b"damaged").await;
        let err = rows.move_from(&files, &sha).await.unwrap_err();
        assert!(err.to_string().contains("does not match its hash"), "{err}");
        assert!(files.holds(&sha).await.unwrap() && !rows.holds(&sha).await.unwrap());
        assert_eq!(spooled(&files) + spooled(&rows), 0);
    }

    #[tokio::test]
    async fn put_stores_by_hash_and_detects_reuploads() {
        for backend in BACKENDS {
            let (_dir, store) = store(backend).await;
            let a = store.put(&b"hello"[..], "text/plain", 100).await.unwrap();
            assert_eq!(
                a.sha256,
                "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
            );
            assert!(!a.existed);
            let file = store.local_file(&a.sha256).await.unwrap();
            assert_eq!(std::fs::read(file.path()).unwrap(), b"hello", "{backend:?}");
            drop(file);
            let b = store.put(&b"hello"[..], "text/plain", 100).await.unwrap();
            assert!(b.existed);
            assert_eq!(count(&store, "blobs").await, 1);
            assert_eq!(spooled(&store), 0, "{backend:?}: the spool is emptied");
        }
    }

    #[tokio::test]
    async fn a_large_blob_round_trips_in_chunks_and_its_copy_is_removed() {
        // 2.5 MiB of varied bytes: three chunks in the database, the last one short.
        let content: Vec<u8> = (0..CHUNK_BYTES * 5 / 2)
            .map(|i| (i * 7 + i / 251) as u8)
            .collect();
        for backend in BACKENDS {
            let (_dir, store) = store(backend).await;
            let blob = store
                .put(&content[..], "audio/wav", u64::MAX)
                .await
                .unwrap();
            assert_eq!(blob.size_bytes, content.len() as u64);
            assert_eq!(blob.sha256, hex::encode(Sha256::digest(&content)));
            let file = store.local_file(&blob.sha256).await.unwrap();
            let path = file.path().to_path_buf();
            assert_eq!(std::fs::read(&path).unwrap(), content, "{backend:?}");
            drop(file);
            match backend {
                BlobBackend::Dir => {
                    assert!(
                        path.exists(),
                        "the directory store hands out the blob itself"
                    );
                    assert_eq!(count(&store, "blob_chunks").await, 0);
                }
                BlobBackend::Db => {
                    assert!(!path.exists(), "the database copy is removed when dropped");
                    assert_eq!(count(&store, "blob_chunks").await, 3);
                }
            }
        }
    }

    #[tokio::test]
    async fn oversized_uploads_leave_nothing_behind() {
        for backend in BACKENDS {
            let (_dir, store) = store(backend).await;
            let e = store.put(&[7u8; 1000][..], "x", 999).await.unwrap_err();
            assert!(matches!(&e, Error::TooLarge(m) if m.contains("max_upload_bytes")));
            assert_eq!(spooled(&store), 0);
            assert_eq!(count(&store, "blobs").await, 0);
            assert_eq!(count(&store, "blob_chunks").await, 0);
        }
    }

    #[tokio::test]
    async fn the_database_store_caps_uploads_below_the_server_limit() {
        let (_dir, store) = store(BlobBackend::Db).await;
        let big = tokio::io::repeat(7).take(DB_MAX_BYTES + 1);
        let e = store.put(big, "x", u64::MAX).await.unwrap_err();
        assert!(
            matches!(&e, Error::TooLarge(m) if m.contains("blobs = \"dir\"")),
            "{e}"
        );
        assert_eq!(spooled(&store), 0);
        assert_eq!(count(&store, "blobs").await, 0);
    }

    #[tokio::test]
    async fn hostile_hashes_are_never_paths() {
        for backend in BACKENDS {
            let (_dir, store) = store(backend).await;
            for name in [
                "../../etc/passwd",
                &"g".repeat(64),
                &format!("../{}", "a".repeat(61)),
            ] {
                assert!(matches!(
                    store.local_file(name).await,
                    Err(Error::InvalidInput(_))
                ));
                assert!(store.remove(name).await.is_err());
            }
        }
    }

    #[tokio::test]
    async fn a_missing_or_corrupt_blob_is_an_error_not_a_file() {
        for backend in BACKENDS {
            let (_dir, store) = store(backend).await;
            let gone = store.put(&b"gone"[..], "x", 100).await.unwrap();
            lose(&store, &gone.sha256).await;
            let e = store.local_file(&gone.sha256).await.unwrap_err();
            assert!(matches!(e, Error::NotFound(_)), "{backend:?}: {e}");
            if backend == BlobBackend::Db {
                // The directory store hands out its file unread; the database copy is checked.
                let bad = store.put(&b"bad"[..], "x", 100).await.unwrap();
                tamper(&store, &bad.sha256, b"tampered").await;
                let e = store.local_file(&bad.sha256).await.unwrap_err();
                assert!(matches!(e, Error::Internal(_)), "{e}");
                assert_eq!(spooled(&store), 0, "no copy is left behind");
            }
        }
    }

    #[tokio::test]
    async fn remove_takes_the_row_and_the_content() {
        for backend in BACKENDS {
            let (_dir, store) = store(backend).await;
            let blob = store.put(&b"not audio"[..], "x", 100).await.unwrap();
            store.remove(&blob.sha256).await.unwrap();
            assert_eq!(count(&store, "blobs").await, 0);
            assert_eq!(count(&store, "blob_chunks").await, 0);
            assert!(matches!(
                store.local_file(&blob.sha256).await,
                Err(Error::NotFound(_))
            ));
            let again = store.put(&b"not audio"[..], "x", 100).await.unwrap();
            assert!(!again.existed);
        }
    }

    #[test]
    fn verify_finds_corrupt_and_missing_blobs() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        for backend in BACKENDS {
            let (_dir, store) = rt.block_on(store(backend));
            let good = rt.block_on(store.put(&b"good"[..], "x", 100)).unwrap();
            let bad = rt.block_on(store.put(&b"bad"[..], "x", 100)).unwrap();
            let gone = rt.block_on(store.put(&b"gone"[..], "x", 100)).unwrap();
            let empty = rt.block_on(store.put(&b""[..], "x", 100)).unwrap();
            rt.block_on(tamper(&store, &bad.sha256, b"tampered"));
            rt.block_on(lose(&store, &gone.sha256));
            let last = std::sync::Mutex::new(0.0f32);
            let report = store
                .verify_all(rt.handle(), &|p| *last.lock().unwrap() = p)
                .unwrap();
            assert_eq!(report.checked, 4, "{backend:?}");
            assert_eq!(report.ok, 2, "{backend:?}: the good and the empty blob");
            assert_eq!(report.corrupt, vec![bad.sha256]);
            assert_eq!(report.missing, vec![gone.sha256]);
            for (sha, expected) in [(&good.sha256, "ok"), (&empty.sha256, "ok")] {
                let integrity: String = rt
                    .block_on(
                        sqlx::query_scalar("SELECT integrity FROM blobs WHERE sha256 = $1")
                            .bind(sha)
                            .fetch_one(store.db.pool()),
                    )
                    .unwrap();
                assert_eq!(integrity, expected);
            }
            assert!(*last.lock().unwrap() > 0.0);
        }
    }
}

//! Content-addressed file store for uploads (recordings, tender files).
//!
//! A blob lives at `<blobs dir>/<first two hex>/<sha256>` (`[data] blobs_dir`, by default
//! `<data>/blobs`, a shared mount when several machines serve): its path comes from its hash,
//! never from user input. Writes go to a temporary file that is synced and renamed into place,
//! so a crash never leaves a half-written blob under a real name, and the database row is
//! written only after the file is durable.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::{Db, now_ms};
use crate::error::{Error, Result};

/// The blob store in one directory.
#[derive(Clone, Debug)]
pub struct BlobStore {
    root: PathBuf,
    db: Db,
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

impl BlobStore {
    /// The store in `root`.
    pub fn new(root: PathBuf, db: Db) -> BlobStore {
        BlobStore { root, db }
    }

    /// Where the blob with this hash lives.
    pub fn path_of(&self, sha256: &str) -> Result<PathBuf> {
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::InvalidInput(format!(
                "{sha256:?} is not a sha256 hex digest"
            )));
        }
        let sha = sha256.to_ascii_lowercase();
        Ok(self.root.join(&sha[..2]).join(sha))
    }

    /// Streams `reader` into the store, refusing more than `max_bytes`.
    pub async fn put<R: AsyncRead + Unpin>(
        &self,
        mut reader: R,
        media_type: &str,
        max_bytes: u64,
    ) -> Result<Blob> {
        let tmp_dir = self.root.join("tmp");
        tokio::fs::create_dir_all(&tmp_dir)
            .await
            .map_err(|e| Error::io("cannot create the blob directory", &tmp_dir, e))?;
        let tmp_path = tmp_dir.join(super::new_id());
        let result = self.write_tmp(&mut reader, &tmp_path, max_bytes).await;
        let (sha256, size) = match result {
            Ok(v) => v,
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp_path).await;
                return Err(e);
            }
        };
        let final_path = self.path_of(&sha256)?;
        let parent = final_path.parent().expect("blob paths have a parent");
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| Error::io("cannot create the blob directory", parent, e))?;
        tokio::fs::rename(&tmp_path, &final_path)
            .await
            .map_err(|e| Error::io("cannot move the upload into place", &final_path, e))?;
        let inserted = sqlx::query(
            "INSERT INTO blobs (sha256, size_bytes, media_type, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (sha256) DO NOTHING",
        )
        .bind(&sha256)
        .bind(size as i64)
        .bind(media_type)
        .bind(now_ms())
        .execute(self.db.pool())
        .await?
        .rows_affected();
        Ok(Blob {
            sha256,
            size_bytes: size,
            existed: inserted == 0,
        })
    }

    async fn write_tmp<R: AsyncRead + Unpin>(
        &self,
        reader: &mut R,
        tmp_path: &Path,
        max_bytes: u64,
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
            if size > max_bytes {
                return Err(Error::TooLarge(format!(
                    "the upload is larger than the limit of {max_bytes} bytes (server.max_upload_bytes)"
                )));
            }
            hasher.update(&buf[..n]);
            file.write_all(&buf[..n])
                .await
                .map_err(|e| Error::io("cannot write the upload", tmp_path, e))?;
        }
        file.sync_all()
            .await
            .map_err(|e| Error::io("cannot sync the upload to disk", tmp_path, e))?;
        Ok((hex::encode(hasher.finalize()), size))
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
            let path = self.path_of(&sha256)?;
            let integrity = match hash_file(&path, &mut |n| {
                done_bytes += n as i64;
                progress(done_bytes as f32 / total_bytes as f32);
            }) {
                Ok(actual) if actual == sha256 => "ok",
                Ok(_) => "corrupt",
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => "missing",
                Err(e) => return Err(Error::io("cannot read a stored blob", &path, e)),
            };
            match integrity {
                "ok" => report.ok += 1,
                "corrupt" => report.corrupt.push(sha256.clone()),
                _ => report.missing.push(sha256.clone()),
            }
            report.checked += 1;
            rt.block_on(
                sqlx::query("UPDATE blobs SET integrity = $1, verified_at = $2 WHERE sha256 = $3")
                    .bind(integrity)
                    .bind(now_ms())
                    .bind(&sha256)
                    .execute(self.db.pool()),
            )?;
        }
        Ok(report)
    }
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

    async fn store() -> (tempfile::TempDir, BlobStore) {
        let (dir, db) = crate::store::temp_db().await;
        let store = BlobStore::new(dir.path().join("blobs"), db);
        (dir, store)
    }

    #[tokio::test]
    async fn put_stores_by_hash_and_detects_reuploads() {
        let (_dir, store) = store().await;
        let a = store.put(&b"hello"[..], "text/plain", 100).await.unwrap();
        assert_eq!(
            a.sha256,
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert!(!a.existed);
        assert_eq!(
            std::fs::read(store.path_of(&a.sha256).unwrap()).unwrap(),
            b"hello"
        );
        let b = store.put(&b"hello"[..], "text/plain", 100).await.unwrap();
        assert!(b.existed);
    }

    #[tokio::test]
    async fn oversized_uploads_leave_nothing_behind() {
        let (_dir, store) = store().await;
        let e = store.put(&[7u8; 1000][..], "x", 999).await.unwrap_err();
        assert!(matches!(e, Error::TooLarge(_)));
        let tmp: Vec<_> = std::fs::read_dir(store.root.join("tmp")).unwrap().collect();
        assert!(tmp.is_empty());
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM blobs")
            .fetch_one(store.db.pool())
            .await
            .unwrap();
        assert_eq!(n, 0);
    }

    #[test]
    fn hostile_hashes_are_rejected_as_paths() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let (_dir, store) = rt.block_on(store());
        assert!(store.path_of("../../etc/passwd").is_err());
        assert!(store.path_of(&"g".repeat(64)).is_err());
    }

    #[test]
    fn verify_finds_corrupt_and_missing_blobs() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let (_dir, store) = rt.block_on(store());
        let good = rt.block_on(store.put(&b"good"[..], "x", 100)).unwrap();
        let bad = rt.block_on(store.put(&b"bad"[..], "x", 100)).unwrap();
        let gone = rt.block_on(store.put(&b"gone"[..], "x", 100)).unwrap();
        std::fs::write(store.path_of(&bad.sha256).unwrap(), b"tampered").unwrap();
        std::fs::remove_file(store.path_of(&gone.sha256).unwrap()).unwrap();
        let last = std::sync::Mutex::new(0.0f32);
        let report = store
            .verify_all(rt.handle(), &|p| *last.lock().unwrap() = p)
            .unwrap();
        assert_eq!(report.checked, 3);
        assert_eq!(report.ok, 1);
        assert_eq!(report.corrupt, vec![bad.sha256]);
        assert_eq!(report.missing, vec![gone.sha256]);
        let integrity: String = rt
            .block_on(
                sqlx::query_scalar("SELECT integrity FROM blobs WHERE sha256 = $1")
                    .bind(&good.sha256)
                    .fetch_one(store.db.pool()),
            )
            .unwrap();
        assert_eq!(integrity, "ok");
    }
}

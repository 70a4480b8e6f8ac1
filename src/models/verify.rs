//! Checksums, verification stamps and cheap readiness checks of final files.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use sha2::{Digest, Sha256};

use super::Progress;
use super::manifest::{FileSpec, Format};
use crate::error::{Error, Result};

const BUF: usize = 1 << 20;

/// sha256 of a file, as lower-case hex, reporting bytes to `progress`.
pub fn sha256_file(path: &Path, progress: &dyn Progress) -> Result<String> {
    let file = File::open(path).map_err(|e| Error::io("cannot open for hashing", path, e))?;
    let total = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut reader = BufReader::with_capacity(BUF, file);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; BUF];
    let mut done = 0u64;
    loop {
        let n = reader
            .read(&mut buf)
            .map_err(|e| Error::io("cannot read for hashing", path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        done += n as u64;
        progress.bytes(done, total);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// A writer that hashes and counts what passes through it.
pub struct HashingWriter<W> {
    pub inner: W,
    hasher: Sha256,
    pub written: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            written: 0,
        }
    }

    /// The hex sha256 of everything written.
    pub fn finish(self) -> (W, String, u64) {
        (
            self.inner,
            hex::encode(self.hasher.finalize()),
            self.written,
        )
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The sidecar stamp of a final file: `<file>.sha256`.
pub fn stamp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".sha256");
    PathBuf::from(s)
}

/// `size mtime_ns` of a file: the key under which a stamp is valid.
fn stamp_key(path: &Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    let mtime = meta.modified().ok()?.duration_since(UNIX_EPOCH).ok()?;
    Some(format!("{} {}", meta.len(), mtime.as_nanos()))
}

/// Records that `path` (as it is now) has sha256 `sha`. Best effort: a stamp only saves time.
pub fn write_stamp(path: &Path, sha: &str) {
    if let Some(key) = stamp_key(path) {
        let _ = std::fs::write(stamp_path(path), format!("{sha} {key}\n"));
    }
}

/// The sha256 recorded for `path`, if the stamp matches the file's current size and mtime.
pub fn read_stamp(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(stamp_path(path)).ok()?;
    let (sha, key) = text.trim().split_once(' ')?;
    (Some(key.to_string()) == stamp_key(path)).then(|| sha.to_string())
}

/// Outcome of checking one final file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileCheck {
    /// Present, right size and sha256.
    Ok,
    /// Not there.
    Missing,
    /// There but wrong; the message says what and what to do.
    Bad(String),
}

/// Full check of a final file against its pin: size, then sha256 (from a valid stamp when
/// `trust_stamp`, else hashed — and the stamp refreshed).
pub fn check_file(
    path: &Path,
    spec: &FileSpec,
    trust_stamp: bool,
    progress: &dyn Progress,
) -> Result<FileCheck> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(FileCheck::Missing),
        Err(e) => return Err(Error::io("cannot inspect model file", path, e)),
    };
    if meta.len() != spec.size {
        return Ok(FileCheck::Bad(format!(
            "{} is {} bytes, manifest pins {}: delete it and run `dealdesk models fetch` again",
            spec.name,
            meta.len(),
            spec.size
        )));
    }
    if trust_stamp && read_stamp(path).as_deref() == Some(spec.sha256.as_str()) {
        return Ok(FileCheck::Ok);
    }
    let sha = sha256_file(path, progress)?;
    if sha != spec.sha256 {
        return Ok(FileCheck::Bad(format!(
            "sha256 of {} is {sha}, manifest pins {}: delete the file and run \
             `dealdesk models fetch` again",
            spec.name, spec.sha256
        )));
    }
    write_stamp(path, &sha);
    Ok(FileCheck::Ok)
}

/// Cheap check: present, right size, and a valid header for its format.
pub fn quick_check(path: &Path, spec: &FileSpec) -> std::result::Result<(), String> {
    let fetch = "run `dealdesk models fetch`";
    let meta = std::fs::metadata(path).map_err(|_| format!("{} is missing: {fetch}", spec.name))?;
    if meta.len() != spec.size {
        return Err(format!(
            "{} is {} bytes, manifest pins {}: delete it and {fetch}",
            spec.name,
            meta.len(),
            spec.size
        ));
    }
    let bad = |what: &str| format!("{} {what}: delete it and {fetch}", spec.name);
    let mut f = File::open(path).map_err(|e| format!("{} cannot be opened: {e}", spec.name))?;
    let mut head = [0u8; 8];
    match spec.format {
        Format::Gguf => {
            f.read_exact(&mut head[..4])
                .map_err(|_| bad("is truncated"))?;
            if &head[..4] != b"GGUF" {
                return Err(bad("is not a GGUF file (bad magic)"));
            }
        }
        Format::Ggml => {
            f.read_exact(&mut head[..4])
                .map_err(|_| bad("is truncated"))?;
            if u32::from_le_bytes([head[0], head[1], head[2], head[3]]) != 0x6767_6d6c {
                return Err(bad("is not a whisper.cpp ggml file (bad magic)"));
            }
        }
        Format::Safetensors => {
            f.read_exact(&mut head).map_err(|_| bad("is truncated"))?;
            let n = u64::from_le_bytes(head);
            if n == 0 || n > 100 << 20 || n + 8 > meta.len() {
                return Err(bad("has an impossible safetensors header length"));
            }
            let mut json = vec![0u8; n as usize];
            f.read_exact(&mut json).map_err(|_| bad("is truncated"))?;
            serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&json)
                .map_err(|_| bad("has a safetensors header that is not a JSON object"))?;
        }
        Format::Json => {
            serde_json::from_reader::<_, serde::de::IgnoredAny>(BufReader::with_capacity(BUF, f))
                .map_err(|e| bad(&format!("is not valid JSON ({e})")))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::NoProgress;
    use super::super::manifest::Convert;
    use super::*;

    fn spec(name: &str, format: Format, data: &[u8]) -> FileSpec {
        FileSpec {
            name: name.into(),
            format,
            size: data.len() as u64,
            sha256: hex::encode(Sha256::digest(data)),
            from: vec![],
            input_sha256: None,
            convert: Convert::Concat,
        }
    }

    #[test]
    fn check_file_reports_checksum_and_size_mismatches() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.gguf");
        let good = spec("m.gguf", Format::Gguf, b"GGUF1234");
        assert_eq!(
            check_file(&path, &good, true, &NoProgress).unwrap(),
            FileCheck::Missing
        );
        std::fs::write(&path, b"GGUF1234").unwrap();
        assert_eq!(
            check_file(&path, &good, true, &NoProgress).unwrap(),
            FileCheck::Ok
        );
        assert_eq!(read_stamp(&path).as_deref(), Some(good.sha256.as_str()));
        // Same size, different bytes: caught by the full check and, since the stamp is keyed
        // by size + mtime, by the quick one once the mtime moves.
        std::fs::write(&path, b"GGUF9999").unwrap();
        let f = File::options().write(true).open(&path).unwrap();
        f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(5))
            .unwrap();
        drop(f);
        match check_file(&path, &good, true, &NoProgress).unwrap() {
            FileCheck::Bad(msg) => {
                assert!(
                    msg.contains("sha256 of m.gguf is") && msg.contains("models fetch"),
                    "{msg}"
                )
            }
            other => panic!("{other:?}"),
        }
        std::fs::write(&path, b"GGUF").unwrap();
        match check_file(&path, &good, false, &NoProgress).unwrap() {
            FileCheck::Bad(msg) => assert!(msg.contains("4 bytes"), "{msg}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn quick_check_validates_headers() {
        let dir = tempfile::tempdir().unwrap();
        let cases: Vec<(&str, Format, Vec<u8>, bool)> = vec![
            ("a.gguf", Format::Gguf, b"GGUF....".to_vec(), true),
            ("b.gguf", Format::Gguf, b"GGML....".to_vec(), false),
            (
                "c.bin",
                Format::Ggml,
                0x6767_6d6cu32.to_le_bytes().to_vec(),
                true,
            ),
            ("d.bin", Format::Ggml, b"ggml".to_vec(), false),
            ("e.json", Format::Json, br#"{"a": [1, 2]}"#.to_vec(), true),
            ("f.json", Format::Json, br#"{"a": [1, 2"#.to_vec(), false),
            (
                "g.safetensors",
                Format::Safetensors,
                {
                    let h = br#"{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
                    let mut v = (h.len() as u64).to_le_bytes().to_vec();
                    v.extend_from_slice(h);
                    v.extend_from_slice(&[0; 4]);
                    v
                },
                true,
            ),
            ("h.safetensors", Format::Safetensors, vec![255; 16], false),
        ];
        for (name, format, data, ok) in cases {
            let path = dir.path().join(name);
            std::fs::write(&path, &data).unwrap();
            let s = spec(name, format, &data);
            assert_eq!(
                quick_check(&path, &s).is_ok(),
                ok,
                "{name}: {:?}",
                quick_check(&path, &s)
            );
        }
        let s = spec("missing.gguf", Format::Gguf, b"GGUF");
        assert!(
            quick_check(&dir.path().join("missing.gguf"), &s)
                .unwrap_err()
                .contains("missing")
        );
    }
}

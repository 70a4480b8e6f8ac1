//! `dealdesk eval diarization`: DER (250 ms collar) and speaker-count accuracy on a directory
//! of labelled calls, each a folder with `call.wav` and `turns.tsv`
//! (`turn<TAB>speaker<TAB>start_ms<TAB>end_ms<TAB>text`, one header line).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use super::der::{DerScore, score};
use super::{DiarizeOptions, Diarizer, SpeakerTurn};
use crate::asr::{Channels, decode_file};
use crate::error::{Error, Result};

/// The no-score collar around reference boundaries.
pub const COLLAR_MS: u64 = 250;

/// One call's result.
#[derive(Debug, Clone, Serialize)]
pub struct CallResult {
    pub call: String,
    pub audio_s: f64,
    pub reference_speakers: usize,
    pub speakers: usize,
    pub der: f64,
    pub score: DerScore,
    /// Wall time of diarization (decoding excluded).
    pub compute_s: f64,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub calls: Vec<CallResult>,
    /// DER over all calls (errors and reference time summed).
    pub der: f64,
    /// Share of calls whose speaker count was estimated exactly (1.0 when the count was given).
    pub speaker_count_accuracy: f64,
    /// Seconds of diarization per minute of audio.
    pub compute_s_per_audio_min: f64,
    pub collar_ms: u64,
    /// Whether each call's true speaker count was given to the diarizer.
    pub count_given: bool,
    pub min_similarity: f32,
}

/// The reference turns of a `turns.tsv`, speakers numbered by first appearance.
pub fn read_turns(path: &Path) -> Result<Vec<SpeakerTurn>> {
    let text =
        std::fs::read_to_string(path).map_err(|e| Error::io("cannot read turns", path, e))?;
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut turns = Vec::new();
    for (n, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split('\t').collect();
        let bad = || {
            Error::InvalidInput(format!(
                "{} line {}: expected turn, speaker, start_ms, end_ms, text separated by tabs",
                path.display(),
                n + 1
            ))
        };
        if f.len() < 4 {
            return Err(bad());
        }
        let (start_ms, end_ms) = match (f[2].trim().parse::<u64>(), f[3].trim().parse::<u64>()) {
            (Ok(a), Ok(b)) if a < b => (a, b),
            _ => return Err(bad()),
        };
        let next = names.len();
        let speaker = *names.entry(f[1].trim().to_string()).or_insert(next);
        turns.push(SpeakerTurn {
            start_ms,
            end_ms,
            speaker,
        });
    }
    Ok(turns)
}

fn speakers(turns: &[SpeakerTurn]) -> usize {
    turns.iter().map(|t| t.speaker + 1).max().unwrap_or(0)
}

/// Diarizes every call under `dir` (sorted by folder name) and scores it.
pub fn evaluate(
    diarizer: &Diarizer,
    dir: &Path,
    count_given: bool,
    opts: &DiarizeOptions,
) -> Result<EvalReport> {
    let rd =
        std::fs::read_dir(dir).map_err(|e| Error::io("cannot read the eval folder", dir, e))?;
    let mut calls: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("call.wav").is_file() && p.join("turns.tsv").is_file())
        .collect();
    calls.sort();
    if calls.is_empty() {
        return Err(Error::InvalidInput(format!(
            "{} has no call folders (each needs call.wav and turns.tsv)",
            dir.display()
        )));
    }
    let mut results = Vec::new();
    let mut total = DerScore::default();
    let (mut audio_s, mut compute_s) = (0.0, 0.0);
    for call in calls {
        let reference = read_turns(&call.join("turns.tsv"))?;
        let audio = decode_file(&call.join("call.wav"), Channels::Mix)?;
        let wav = audio.channel(0);
        let mut o = *opts;
        if count_given {
            o.speakers = Some(speakers(&reference).max(1));
        }
        let t = Instant::now();
        let hyp = diarizer.diarize(wav, &o)?;
        let secs = t.elapsed().as_secs_f64();
        let s = score(&reference, &hyp, COLLAR_MS);
        total.add(&s);
        let dur = wav.len() as f64 / 16_000.0;
        audio_s += dur;
        compute_s += secs;
        results.push(CallResult {
            call: call
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            audio_s: dur,
            reference_speakers: speakers(&reference),
            speakers: speakers(&hyp),
            der: s.der(),
            score: s,
            compute_s: secs,
        });
    }
    let exact = results
        .iter()
        .filter(|r| r.speakers == r.reference_speakers)
        .count();
    Ok(EvalReport {
        der: total.der(),
        speaker_count_accuracy: exact as f64 / results.len() as f64,
        compute_s_per_audio_min: compute_s / (audio_s / 60.0).max(1e-9),
        calls: results,
        collar_ms: COLLAR_MS,
        count_given,
        min_similarity: opts.min_similarity,
    })
}

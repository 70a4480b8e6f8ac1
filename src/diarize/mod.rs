//! Speaker diarization of mono recordings: who spoke when.
//!
//! Pipeline: energy voice activity ([`vad`]) → speech regions cut into pieces of at most
//! 4.8 s → one CAM++ speaker embedding per piece, from its Kaldi fbank frames ([`fbank`],
//! [`campplus`]: the `campplus-zh-en` model run with candle) → agglomerative clustering with
//! a similarity threshold (number of speakers estimated) or a fixed count ([`cluster`]) →
//! speaker turns. [`assign`] maps turns onto
//! transcript segments, splitting a segment at a speaker change when word timestamps exist.
//! [`der`] scores turns against a reference; [`eval`] runs a directory of labelled calls.
//!
//! Stereo recordings with one party per channel do not need this: keep the per-channel path.

pub mod align;
pub mod campplus;
pub mod cluster;
pub mod der;
pub mod eval;
mod fbank;
pub mod vad;

use serde::Serialize;

pub use align::{SpeakerSegment, TimedSegment, Word, assign};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::models::{Manifest, model_path};
use campplus::CamPlus;
use cluster::Stop;
use fbank::{Fbank, HOP, N_MELS, SAMPLE_RATE};

/// The manifest id of the default speaker-embedding model (`[asr] diarization_model`).
pub const MODEL_ID: &str = "campplus-zh-en";

/// Who spoke from `start_ms` to `end_ms`: `speaker` is 0-based, numbered by first appearance
/// ("Speaker 1" is 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SpeakerTurn {
    pub start_ms: u64,
    pub end_ms: u64,
    pub speaker: usize,
}

/// How to diarize.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DiarizeOptions {
    /// The number of speakers when the caller knows it (e.g. the participant count); `None`
    /// estimates it.
    pub speakers: Option<usize>,
    /// Upper bound for the estimate.
    pub max_speakers: usize,
    /// Two clusters whose mean cosine similarity is at least this are one speaker.
    pub min_similarity: f32,
}

/// Cosine similarity above which two groups of CAM++ embeddings are taken for one voice. On
/// the dev calls one voice's 4.8 s pieces average 0.74–0.85 with each other, clearly different
/// voices 0.24–0.50; 0.7 scored best over the whole set (0.65 merged two Mandarin voices,
/// 0.75–0.86 split one). See `eval/reports/diarization.md`.
pub const DEFAULT_MIN_SIMILARITY: f32 = 0.7;

impl Default for DiarizeOptions {
    fn default() -> Self {
        DiarizeOptions {
            speakers: None,
            max_speakers: 8,
            min_similarity: DEFAULT_MIN_SIMILARITY,
        }
    }
}

/// Pieces shorter than this give unreliable embeddings: they are not clustered but join the
/// nearest cluster afterwards.
const MIN_CLUSTERED_MS: u64 = 700;
/// Speech regions longer than this are cut into equal pieces, each with its own speaker: the
/// resolution for speaker changes without a pause.
const MAX_PIECE_MS: u64 = 4800;
/// A silence shorter than this between two stretches of the same speaker is a pause inside
/// one turn.
const MAX_PAUSE_MS: u64 = 1000;
/// A cluster with less speech than this (seconds) is not taken for a speaker of its own: it
/// joins the nearest cluster (a couple of short CAM++ pieces of one voice can stray apart).
const MIN_SPEAKER_S: f32 = 5.0;
/// With the count given, up to this many extra small clusters are tried before absorbing them.
const MAX_STRAY_CLUSTERS: usize = 4;

/// A loaded diarizer (the speaker encoder); cheap to share across threads by reference.
pub struct Diarizer {
    encoder: CamPlus,
    fbank: Fbank,
}

impl Diarizer {
    /// Loads the speaker-embedding model named by `[asr] diarization_model` from the model
    /// cache.
    pub fn load(config: &Config, manifest: &Manifest) -> Result<Self> {
        let id = &config.asr.diarization_model;
        let path = model_path(config, manifest.get(id)?);
        if !path.is_file() {
            return Err(Error::Unavailable(format!(
                "the speaker-embedding model is not at {}: run `dealdesk models fetch {id}`",
                path.display()
            )));
        }
        Self::from_file(&path)
    }

    /// Loads the speaker encoder from a converted safetensors file.
    pub fn from_file(path: &std::path::Path) -> Result<Self> {
        Ok(Diarizer {
            encoder: CamPlus::load(path)?,
            fbank: Fbank::new(),
        })
    }

    /// Speaker turns of 16 kHz mono audio, in time order (empty when nobody speaks).
    pub fn diarize(&self, audio: &[f32], opts: &DiarizeOptions) -> Result<Vec<SpeakerTurn>> {
        if opts.speakers == Some(0) || opts.max_speakers == 0 {
            return Err(Error::InvalidInput(
                "the number of speakers must be at least 1".into(),
            ));
        }
        if !(-1.0..=1.0).contains(&opts.min_similarity) {
            return Err(Error::InvalidInput(format!(
                "min_similarity {} is not a cosine similarity (between -1 and 1)",
                opts.min_similarity
            )));
        }
        if audio.iter().any(|x| !x.is_finite()) {
            return Err(Error::InvalidInput(
                "the audio has NaN or infinite samples".into(),
            ));
        }
        let (pieces, embeddings) = self.embed_pieces(audio)?;
        if pieces.is_empty() {
            return Ok(Vec::new());
        }
        let labels = label(&pieces, &embeddings, opts);
        Ok(turns(&pieces, &labels))
    }

    /// The speech pieces of `audio` and a unit-length speaker embedding for each.
    fn embed_pieces(&self, audio: &[f32]) -> Result<(Vec<vad::Region>, Vec<[f32; campplus::DIM]>)> {
        let pieces = pieces(&vad::speech_regions(audio));
        if pieces.is_empty() {
            return Ok((pieces, Vec::new()));
        }
        let frames = self.fbank.frames(audio);
        let n_frames = frames.len() / N_MELS;
        // Each piece is one window of the encoder (CAM++ pools statistics over any length).
        let windows: Vec<&[f32]> = pieces
            .iter()
            .map(|p| {
                let a = (p.start_ms as usize * SAMPLE_RATE / 1000 / HOP).min(n_frames);
                let b = (p.end_ms as usize * SAMPLE_RATE / 1000 / HOP).clamp(a, n_frames);
                &frames[a * N_MELS..b * N_MELS]
            })
            .collect();
        let mut embeddings = self.encoder.embed(&windows)?;
        for e in &mut embeddings {
            let norm = e.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
            e.iter_mut().for_each(|x| *x /= norm);
        }
        Ok((pieces, embeddings))
    }
}

/// Cuts regions into equal pieces of at most [`MAX_PIECE_MS`].
fn pieces(regions: &[vad::Region]) -> Vec<vad::Region> {
    let max_ms = MAX_PIECE_MS;
    regions
        .iter()
        .flat_map(|r| {
            let n = r.len_ms().div_ceil(max_ms).max(1);
            (0..n).map(move |i| vad::Region {
                start_ms: r.start_ms + r.len_ms() * i / n,
                end_ms: r.start_ms + r.len_ms() * (i + 1) / n,
            })
        })
        .collect()
}

/// A speaker label per piece: long pieces are clustered, short ones join the nearest cluster.
fn label(
    pieces: &[vad::Region],
    emb: &[[f32; campplus::DIM]],
    opts: &DiarizeOptions,
) -> Vec<usize> {
    let reliable: Vec<usize> = (0..pieces.len())
        .filter(|&i| pieces[i].len_ms() >= MIN_CLUSTERED_MS)
        .collect();
    // With no long piece at all, cluster everything.
    let chosen: Vec<usize> = if reliable.is_empty() {
        (0..pieces.len()).collect()
    } else {
        reliable
    };
    let items: Vec<&[f32]> = chosen.iter().map(|&i| emb[i].as_slice()).collect();
    let weights: Vec<f32> = chosen
        .iter()
        .map(|&i| pieces[i].len_ms() as f32 / 1000.0)
        .collect();
    let labels = match opts.speakers {
        // A stray piece (a laugh, a cough) would hold one of the k clusters to the end: stop
        // at the fewest clusters that leave k once clusters under MIN_SPEAKER_S are absorbed.
        Some(k) => (k..k + MAX_STRAY_CLUSTERS)
            .map(|n| {
                let labels = cluster::cluster(&items, &weights, Stop::Count(n));
                cluster::absorb_small(&items, &weights, labels, MIN_SPEAKER_S)
            })
            .find(|l| l.iter().max().map_or(0, |m| m + 1) == k.min(items.len()))
            .unwrap_or_else(|| cluster::cluster(&items, &weights, Stop::Count(k))),
        None => {
            let stop = Stop::Threshold {
                min_similarity: opts.min_similarity,
                max: opts.max_speakers,
            };
            let labels = cluster::cluster(&items, &weights, stop);
            cluster::absorb_small(&items, &weights, labels, MIN_SPEAKER_S)
        }
    };
    let centroids = cluster::centroids(&items, &weights, &labels);
    let mut all: Vec<Option<usize>> = vec![None; pieces.len()];
    for (&i, &l) in chosen.iter().zip(&labels) {
        all[i] = Some(l);
    }
    let all: Vec<usize> = all
        .iter()
        .zip(emb)
        .map(|(l, e)| l.unwrap_or_else(|| cluster::nearest(&centroids, e)))
        .collect();
    cluster::renumber(&all)
}

/// Pieces with their labels → turns: consecutive pieces of one speaker less than
/// [`MAX_PAUSE_MS`] apart are one turn (a pause inside a turn is part of it).
fn turns(pieces: &[vad::Region], labels: &[usize]) -> Vec<SpeakerTurn> {
    let mut out: Vec<SpeakerTurn> = Vec::new();
    for (p, &speaker) in pieces.iter().zip(labels) {
        match out.last_mut() {
            Some(last) if last.speaker == speaker && p.start_ms - last.end_ms < MAX_PAUSE_MS => {
                last.end_ms = p.end_ms
            }
            _ => out.push(SpeakerTurn {
                start_ms: p.start_ms,
                end_ms: p.end_ms,
                speaker,
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests;

//! Evaluation against labelled calls (`../shared/eval/calls`): commitment and objection
//! precision/recall/F1 under the evaluator's matching rule (quotes overlap by at least half
//! of the shorter normalized quote, same person, one-to-one by highest overlap), due-date and
//! category accuracy on matched pairs, injection failures, ungrounded drops, the recall of the
//! cue pass, WER (English) or CER (Mandarin) of the transcript against `turns.tsv`, and time.

use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::candidates;
use super::extract::{ExtractOptions, Extraction, extract};
use super::grounding::{normalize, overlap};
use super::pipeline::{self, CallInfo};
use super::transcript::{CallTranscript, same_name};
use crate::engines::Engines;
use crate::error::{Error, Result};
use crate::llm::LlmHandle;

/// `labels.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct Gold {
    pub call_id: String,
    pub commitments: Vec<GoldCommitment>,
    pub objections: Vec<GoldObjection>,
    #[serde(default)]
    pub non_commitments: Vec<GoldQuote>,
    #[serde(default)]
    pub injections: Vec<GoldQuote>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct GoldCommitment {
    pub owner: String,
    pub due_date: Option<String>,
    pub quote: String,
    pub turn: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct GoldObjection {
    pub category: String,
    pub raised_by: String,
    pub quote: String,
    pub turn: u32,
    pub resolved: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct GoldQuote {
    pub quote: String,
    #[serde(default)]
    pub why: Option<String>,
}

/// Precision, recall, F1 from counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Prf {
    pub tp: u32,
    pub fp: u32,
    #[serde(rename = "fn")]
    pub fn_: u32,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

impl Prf {
    fn new(tp: u32, fp: u32, fn_: u32) -> Prf {
        let ratio = |a: u32, b: u32| if b == 0 { 1.0 } else { a as f64 / b as f64 };
        let (precision, recall) = (ratio(tp, tp + fp), ratio(tp, tp + fn_));
        let f1 = if precision + recall == 0.0 {
            0.0
        } else {
            2.0 * precision * recall / (precision + recall)
        };
        Prf {
            tp,
            fp,
            fn_,
            precision,
            recall,
            f1,
        }
    }

    fn add(self, o: Prf) -> Prf {
        Prf::new(self.tp + o.tp, self.fp + o.fp, self.fn_ + o.fn_)
    }
}

/// Correct out of total, with the share.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Accuracy {
    pub correct: u32,
    pub total: u32,
    pub accuracy: Option<f64>,
}

impl Accuracy {
    fn new(correct: u32, total: u32) -> Accuracy {
        Accuracy {
            correct,
            total,
            accuracy: (total > 0).then(|| correct as f64 / total as f64),
        }
    }

    fn add(self, o: Accuracy) -> Accuracy {
        Accuracy::new(self.correct + o.correct, self.total + o.total)
    }
}

/// One call's scores.
#[derive(Debug, Clone, Serialize)]
pub struct CallScore {
    pub call_id: String,
    pub language: String,
    pub commitments: Prf,
    pub due_date: Accuracy,
    pub objections: Prf,
    pub category: Accuracy,
    pub resolved: Accuracy,
    /// Predictions ignored because they repeat a gold commitment (`restatement`).
    pub restatements_ignored: u32,
    pub ungrounded_dropped: u32,
    pub injection_failures: u32,
    /// Share of gold items whose quote a cue-pass candidate sentence overlaps.
    pub candidate_recall_commitments: Accuracy,
    pub candidate_recall_objections: Accuracy,
    pub candidates: u32,
    pub sentences: u32,
    /// Word (English) or character (Mandarin) error rate of the transcript.
    pub error_rate: f64,
    pub reference_units: u32,
    pub seconds: f64,
    /// From audio: how many segments and items got a participant, and how many segments the
    /// right one.
    pub attribution: Option<Attribution>,
    pub extraction: Extraction,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub from: String,
    pub model_id: String,
    pub commitment_f1: f64,
    pub commitment_precision: f64,
    pub commitment_recall: f64,
    pub objection_f1: f64,
    pub objection_precision: f64,
    pub objection_recall: f64,
    pub objection_category_accuracy: Option<f64>,
    pub objection_resolved_accuracy: Option<f64>,
    pub due_date_accuracy: Option<f64>,
    pub injection_failures: u32,
    pub ungrounded_dropped: u32,
    pub candidate_recall_commitments: Option<f64>,
    pub candidate_recall_objections: Option<f64>,
    /// Mean WER of the English calls (null without any).
    pub wer: Option<f64>,
    /// Mean CER of the Mandarin calls (null without any).
    pub cer: Option<f64>,
    pub seconds: f64,
    /// From audio: speaker attribution summed over the calls.
    pub attribution: Option<Attribution>,
    pub calls: Vec<CallScore>,
}

/// Where the transcript comes from.
pub enum Source<'a> {
    /// The labelled `transcript.json`.
    Transcript,
    /// `call.wav` through the upload path ([`pipeline::transcribe`]): Whisper, diarization
    /// with the participant count, speakers mapped to the participants on evidence.
    Audio(&'a Engines),
}

/// Evaluates every call folder in `dir` (or those named in `only`).
pub fn run(
    dir: &Path,
    only: &[String],
    source: &Source,
    llm: &LlmHandle,
    opts: &ExtractOptions,
    progress: &dyn Fn(&str),
) -> Result<Report> {
    let started = Instant::now();
    let mut calls: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| Error::io("cannot read the evaluation directory", dir, e))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("labels.json").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| only.is_empty() || only.contains(name))
        .collect();
    calls.sort();
    if calls.is_empty() {
        return Err(Error::InvalidInput(format!(
            "no call folders with labels.json in {} (check --dir and --calls)",
            dir.display()
        )));
    }
    let mut scores = Vec::new();
    for call in &calls {
        progress(call);
        scores.push(evaluate_call(&dir.join(call), source, llm, opts)?);
    }
    Ok(summarize(
        scores,
        source,
        opts,
        started.elapsed().as_secs_f64(),
    ))
}

fn summarize(
    calls: Vec<CallScore>,
    source: &Source,
    opts: &ExtractOptions,
    seconds: f64,
) -> Report {
    let sum = |f: fn(&CallScore) -> Prf| calls.iter().map(f).fold(Prf::default(), Prf::add);
    let acc = |f: fn(&CallScore) -> Accuracy| {
        calls.iter().map(f).fold(Accuracy::default(), Accuracy::add)
    };
    let mean_rate = |lang: &str| {
        let rates: Vec<f64> = calls
            .iter()
            .filter(|c| c.language == lang)
            .map(|c| c.error_rate)
            .collect();
        (!rates.is_empty()).then(|| rates.iter().sum::<f64>() / rates.len() as f64)
    };
    let (c, o) = (sum(|c| c.commitments), sum(|c| c.objections));
    Report {
        from: match source {
            Source::Transcript => "transcript",
            Source::Audio(_) => "audio",
        }
        .into(),
        model_id: opts.model_id.clone(),
        commitment_f1: c.f1,
        commitment_precision: c.precision,
        commitment_recall: c.recall,
        objection_f1: o.f1,
        objection_precision: o.precision,
        objection_recall: o.recall,
        objection_category_accuracy: acc(|c| c.category).accuracy,
        objection_resolved_accuracy: acc(|c| c.resolved).accuracy,
        due_date_accuracy: acc(|c| c.due_date).accuracy,
        injection_failures: calls.iter().map(|c| c.injection_failures).sum(),
        ungrounded_dropped: calls.iter().map(|c| c.ungrounded_dropped).sum(),
        candidate_recall_commitments: acc(|c| c.candidate_recall_commitments).accuracy,
        candidate_recall_objections: acc(|c| c.candidate_recall_objections).accuracy,
        wer: mean_rate("en"),
        cer: mean_rate("zh"),
        seconds,
        attribution: calls
            .iter()
            .filter_map(|c| c.attribution)
            .reduce(Attribution::add),
        calls,
    }
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io("cannot read", path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::InvalidInput(format!("{}: {e}", path.display())))
}

/// Scores one call folder.
pub fn evaluate_call(
    dir: &Path,
    source: &Source,
    llm: &LlmHandle,
    opts: &ExtractOptions,
) -> Result<CallScore> {
    let started = Instant::now();
    let reference = CallTranscript::load(&dir.join("transcript.json"))?;
    let gold: Gold = read_json(&dir.join("labels.json"))?;
    let transcript = match source {
        Source::Transcript => reference.clone(),
        Source::Audio(engines) => {
            let info = CallInfo {
                language: reference.language.parse()?,
                call_date: reference.call_date,
                participants: reference.participants.clone(),
                channels: crate::asr::Channels::Mix,
            };
            pipeline::transcribe(engines, &dir.join("call.wav"), &info, &|_| {})?
        }
    };
    let extraction = extract(&transcript, llm, opts, &|_| {})?;
    let attributed = match source {
        Source::Transcript => None,
        Source::Audio(_) => Some(attribution(&transcript, &reference, &extraction)),
    };
    let mut score = score(&gold, &transcript, extraction);
    score.attribution = attributed;
    let hypothesis = transcript.text();
    score.error_rate = error_rate(&reference.text(), &hypothesis, &reference.language);
    score.reference_units = units(&reference.text(), &reference.language).len() as u32;
    score.seconds = started.elapsed().as_secs_f64();
    Ok(score)
}

/// Segments and items attributed to a participant, from a transcript of the audio.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Attribution {
    pub segments: u32,
    /// Segments whose speaker is a participant.
    pub segments_mapped: u32,
    /// Segments whose speaker is a participant and the one of the reference turn they overlap
    /// most in time.
    pub segments_correct: u32,
    /// Commitments and objections.
    pub items: u32,
    /// Items owned by a participant (the rest by an unmapped "Speaker N").
    pub items_with_participant: u32,
    /// Items owned by the participant of the reference turn they overlap most in time.
    pub items_owner_correct: u32,
}

impl Attribution {
    fn add(self, o: Attribution) -> Attribution {
        Attribution {
            segments: self.segments + o.segments,
            segments_mapped: self.segments_mapped + o.segments_mapped,
            segments_correct: self.segments_correct + o.segments_correct,
            items: self.items + o.items,
            items_with_participant: self.items_with_participant + o.items_with_participant,
            items_owner_correct: self.items_owner_correct + o.items_owner_correct,
        }
    }
}

/// How the speakers of `t` compare with the reference transcript's turns.
pub fn attribution(t: &CallTranscript, reference: &CallTranscript, ex: &Extraction) -> Attribution {
    // Whether `who` is a participant and the speaker of the reference turn that overlaps
    // [start, end) most.
    let right = |who: &str, start: u64, end: u64| {
        t.participant(who).is_some()
            && reference
                .segments
                .iter()
                .map(|r| (r, r.end_ms.min(end).saturating_sub(r.start_ms.max(start))))
                .filter(|(_, o)| *o > 0)
                .max_by_key(|(_, o)| *o)
                .and_then(|(r, _)| r.speaker.as_deref())
                .is_some_and(|truth| same_name(truth, who))
    };
    let mapped: Vec<_> = t
        .segments
        .iter()
        .filter_map(|s| Some((s.speaker.as_deref()?, s)))
        .filter(|(who, _)| t.participant(who).is_some())
        .collect();
    let owners: Vec<(&str, u64, u64)> = ex
        .commitments
        .iter()
        .map(|c| (c.owner.as_str(), c.start_ms, c.end_ms))
        .chain(
            ex.objections
                .iter()
                .map(|o| (o.raised_by.as_str(), o.start_ms, o.end_ms)),
        )
        .collect();
    Attribution {
        segments: t.segments.len() as u32,
        segments_mapped: mapped.len() as u32,
        segments_correct: mapped
            .iter()
            .filter(|(who, s)| right(who, s.start_ms, s.end_ms))
            .count() as u32,
        items: owners.len() as u32,
        items_with_participant: owners
            .iter()
            .filter(|(who, ..)| t.participant(who).is_some())
            .count() as u32,
        items_owner_correct: owners
            .iter()
            .filter(|(who, start, end)| right(who, *start, *end))
            .count() as u32,
    }
}

/// One-to-one matching, highest overlap first: pairs (prediction, gold).
fn matches(pred: &[(&str, &str)], gold: &[(&str, &str)]) -> Vec<(usize, usize)> {
    let mut pairs: Vec<(f64, usize, usize)> = Vec::new();
    for (i, (pq, pp)) in pred.iter().enumerate() {
        for (j, (gq, gp)) in gold.iter().enumerate() {
            let o = overlap(pq, gq);
            if o >= 0.5 && same_name(pp, gp) {
                pairs.push((o, i, j));
            }
        }
    }
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (mut used_p, mut used_g) = (vec![false; pred.len()], vec![false; gold.len()]);
    let mut out = Vec::new();
    for (_, i, j) in pairs {
        if !used_p[i] && !used_g[j] {
            used_p[i] = true;
            used_g[j] = true;
            out.push((i, j));
        }
    }
    out
}

/// (quote, person) of each item.
fn keyed<'a, T>(
    items: &'a [T],
    f: impl Fn(&'a T) -> (&'a String, &'a String),
) -> Vec<(&'a str, &'a str)> {
    items
        .iter()
        .map(|x| {
            let (q, p) = f(x);
            (q.as_str(), p.as_str())
        })
        .collect()
}

/// Scores an extraction against the gold labels (the README's matching rule).
pub fn score(gold: &Gold, t: &CallTranscript, ex: Extraction) -> CallScore {
    let pc = keyed(&ex.commitments, |c| (&c.quote, &c.owner));
    let gc = keyed(&gold.commitments, |c| (&c.quote, &c.owner));
    let cm = matches(&pc, &gc);
    let restatements_ignored = (0..pc.len())
        .filter(|i| !cm.iter().any(|(p, _)| p == i))
        .filter(|&i| {
            gold.non_commitments.iter().any(|n| {
                n.why.as_deref() == Some("restatement") && overlap(pc[i].0, &n.quote) >= 0.5
            })
        })
        .count() as u32;
    let commitments = Prf::new(
        cm.len() as u32,
        (pc.len() - cm.len()) as u32 - restatements_ignored,
        (gc.len() - cm.len()) as u32,
    );
    let due_ok = cm
        .iter()
        .filter(|(p, g)| {
            ex.commitments[*p].due_date.map(|d| d.to_string()) == gold.commitments[*g].due_date
        })
        .count() as u32;

    let po = keyed(&ex.objections, |o| (&o.quote, &o.raised_by));
    let go = keyed(&gold.objections, |o| (&o.quote, &o.raised_by));
    let om = matches(&po, &go);
    let objections = Prf::new(
        om.len() as u32,
        (po.len() - om.len()) as u32,
        (go.len() - om.len()) as u32,
    );
    let category_ok = om
        .iter()
        .filter(|(p, g)| ex.objections[*p].category.as_str() == gold.objections[*g].category)
        .count() as u32;
    let resolved_ok = om
        .iter()
        .filter(|(p, g)| ex.objections[*p].resolved == gold.objections[*g].resolved)
        .count() as u32;

    let injection_failures = pc
        .iter()
        .chain(po.iter())
        .filter(|(q, _)| gold.injections.iter().any(|i| overlap(q, &i.quote) >= 0.5))
        .count() as u32;

    let cands = candidates::find(t);
    // By quote overlap alone: segments of an ASR transcript are not the reference turns.
    let covered = |pool: &[candidates::Sentence], quote: &str| {
        pool.iter().any(|s| overlap(&s.text, quote) >= 0.5)
    };
    let recall_c = gold
        .commitments
        .iter()
        .filter(|g| covered(&cands.commitments, &g.quote))
        .count() as u32;
    let recall_o = gold
        .objections
        .iter()
        .filter(|g| covered(&cands.objections, &g.quote))
        .count() as u32;
    CallScore {
        call_id: gold.call_id.clone(),
        language: t.language.clone(),
        commitments,
        due_date: Accuracy::new(due_ok, cm.len() as u32),
        objections,
        category: Accuracy::new(category_ok, om.len() as u32),
        resolved: Accuracy::new(resolved_ok, om.len() as u32),
        restatements_ignored,
        ungrounded_dropped: ex.dropped.ungrounded,
        injection_failures,
        candidate_recall_commitments: Accuracy::new(recall_c, gold.commitments.len() as u32),
        candidate_recall_objections: Accuracy::new(recall_o, gold.objections.len() as u32),
        candidates: (cands.commitments.len() + cands.objections.len()) as u32,
        sentences: cands.sentences as u32,
        error_rate: 0.0,
        reference_units: 0,
        seconds: 0.0,
        attribution: None,
        extraction: ex,
    }
}

/// Words (English: lower-cased, punctuation removed) or characters (Mandarin).
fn units(text: &str, language: &str) -> Vec<String> {
    if language == "zh" {
        normalize(text).into_iter().map(String::from).collect()
    } else {
        text.split_whitespace()
            .map(|w| normalize(w).into_iter().collect::<String>())
            .filter(|w| !w.is_empty())
            .collect()
    }
}

/// Edit distance over units divided by the reference length.
pub fn error_rate(reference: &str, hypothesis: &str, language: &str) -> f64 {
    let (r, h) = (units(reference, language), units(hypothesis, language));
    if r.is_empty() {
        return if h.is_empty() { 0.0 } else { 1.0 };
    }
    let mut prev: Vec<usize> = (0..=h.len()).collect();
    for (i, ru) in r.iter().enumerate() {
        let mut cur = vec![i + 1; h.len() + 1];
        for (j, hu) in h.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ru != hu))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[h.len()] as f64 / r.len() as f64
}

#[cfg(test)]
mod tests;

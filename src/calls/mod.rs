//! Call analysis: a recording (or an imported transcript) becomes a timestamped transcript,
//! grounded commitments that turn into tasks, and categorized objections with playbook answers.
//!
//! * [`transcript`] — the transcript model and the validated JSON import format.
//! * [`candidates`] — the cheap high-recall cue pass (English and Mandarin), the guideline's
//!   surface rules for non-commitments, and injection detection.
//! * [`dates`] — deadline phrases resolved against the call date in code, never by the LLM.
//! * [`extract`] — one small schema-constrained question per candidate, then deterministic
//!   checks (owner is a participant, quote grounded, withdrawn and duplicate items removed).
//! * [`grounding`] — the evaluator's quote normalization and overlap.
//! * [`playbook`] — suggested answers per objection category and language, editable files.
//! * [`tasks`] — commitments as tasks; CSV, iCalendar and CRM webhook.
//! * [`speakers`] — speaker attribution of mono recordings: diarized turns onto segments,
//!   labels mapped to participants only on clear evidence (introductions, names addressed).
//! * [`records`] — persistence and rep/manager scoping.
//! * [`relabel`] — users map speaker labels to participants; stored items are re-attributed.
//! * [`pipeline`] — recording → Whisper → extraction; the `call.analyze` job.
//! * [`eval`] — scores against the labelled development calls.
//! * [`trackers`] — topic trackers from `trackers.toml` and where each fired.
//! * [`analytics`] — talk metrics per call, and per rep and team over a date range.
//! * [`search`] — the tantivy index of transcript segments and scoped search across calls.

pub mod analytics;
pub mod candidates;
pub mod dates;
pub mod eval;
pub mod extract;
pub mod grounding;
pub mod pipeline;
pub mod playbook;
pub mod records;
pub mod relabel;
pub mod search;
pub mod speakers;
pub mod tasks;
pub mod trackers;
pub mod transcript;

use std::time::Duration;

use crate::config::Config;

/// Extraction settings from the configuration.
pub fn extract_options(config: &Config) -> extract::ExtractOptions {
    extract::ExtractOptions {
        model_id: config.llm.model.clone(),
        timeout: Duration::from_secs(config.llm.timeout_secs),
        playbook: playbook::Playbook::new(Some(&config.calls.playbook_dir(&config.data))),
    }
}

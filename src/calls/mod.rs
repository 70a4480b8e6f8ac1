//! Call analysis: a recording (or an imported transcript) becomes a timestamped transcript,
//! grounded commitments that turn into tasks, and categorized objections with playbook answers.
//!
//! * [`dates`] — deadline phrases (English, Mandarin) resolved against the call date in code.
pub mod candidates;
pub mod dates;
pub mod eval;
pub mod extract;
pub mod grounding;
pub mod pipeline;
pub mod playbook;
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
pub mod records;
pub mod tasks;

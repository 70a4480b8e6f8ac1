//! Call analysis: a recording (or an imported transcript) becomes a timestamped transcript,
//! grounded commitments that turn into tasks, and categorized objections with playbook answers.
//!
//! * [`dates`] — deadline phrases (English, Mandarin) resolved against the call date in code.
pub mod dates;
pub mod transcript;
pub mod grounding;
pub mod candidates;
pub mod extract;
pub mod playbook;

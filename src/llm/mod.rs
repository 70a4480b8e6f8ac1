//! Local LLM inference on the CPU: load a GGUF model, chat, and generate JSON that is
//! guaranteed to match a schema.
//!
//! * [`Llm`] — a loaded model ([`Llm::load`] with [`LoadOptions`]: a GGUF path and an optional
//!   `tokenizer.json`): [`Llm::generate`] (greedy or seeded sampling, streaming, token budget,
//!   deadline, cancellation) and [`Llm::generate_json`] (llguidance-constrained decoding, then
//!   validated against the schema in code — never fails open).
//! * [`LlmService`] / [`LlmHandle`] — one model instance on a dedicated thread serving a queue
//!   of requests; the handle is `Clone + Send + Sync` and async.
//!
//! Families: `llama` (SmolLM2 …), `qwen2`, `qwen3` run on our own forward pass ([`model`],
//! batched dense prefill, fused projections, reusable KV prefix); `gemma3` on
//! candle-transformers'. Every request logs its prefill and decode speed; [`cpu_features`]
//! tells which SIMD paths candle was built with.
//!
//! Threads: candle's quantized matmul uses a spin-waiting thread pool sized by
//! `CANDLE_NUM_THREADS` (dense matmuls use rayon, `RAYON_NUM_THREADS`), read once at first use.
//! On a 2-core machine that is busy with other work (ASR jobs, builds) two spinning threads
//! collapse decode speed (measured 4 tok/s instead of 45 for SmolLM2); set both to 1 there.
//!
//! Not done yet: a multi-slot prompt cache (today only the previous request's KV state is
//! reused, as far as its tokens match the new prompt).

mod chat;
mod constrained;
mod engine;
pub mod model;
mod service;
mod tokenizer;

pub use chat::{ChatMessage, ChatTemplate, Role};
pub use constrained::{compile_validator, parse_and_validate};
pub use engine::{
    CancelToken, FinishReason, GenerateParams, Generation, GenerationStats, JsonGeneration, Llm,
    LoadOptions, Sampling, cpu_features,
};
pub use model::PrefillWeights;
pub use service::{DEFAULT_QUEUE_CAPACITY, LlmHandle, LlmService, ModelInfo};
pub use tokenizer::Tokenizer;

use crate::config::Config;
use crate::error::Result;
use crate::models::{Manifest, model_path};

/// How to load the model `[llm]` names: its GGUF and tokenizer from the model cache.
pub fn load_options(config: &Config, manifest: &Manifest) -> Result<LoadOptions> {
    let gguf = model_path(config, manifest.get(&config.llm.model)?);
    let mut options = LoadOptions::new(gguf);
    if !config.llm.tokenizer.is_empty() {
        options = options.with_tokenizer(model_path(config, manifest.get(&config.llm.tokenizer)?));
    }
    options.max_context = Some(config.llm.max_context);
    Ok(options)
}

/// Sizes candle's thread pools from `[llm] threads`. Call once at start-up, before any thread
/// is spawned: both pools read their variables on first use.
pub fn set_threads(config: &Config) {
    for var in ["CANDLE_NUM_THREADS", "RAYON_NUM_THREADS"] {
        if std::env::var_os(var).is_none() {
            // SAFETY: called from `main` before the runtime or any other thread starts, so
            // no other thread can read the environment concurrently.
            unsafe { std::env::set_var(var, config.llm.threads.to_string()) };
        }
    }
}

#[cfg(test)]
mod tests;

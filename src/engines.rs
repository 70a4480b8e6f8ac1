//! The models every request and job shares, each loaded once, on first use.
//!
//! Loading Whisper, the speaker encoder or the LLM takes seconds and hundreds of megabytes, so a process holds one
//! of each and hands out cheap clones. Nothing is loaded at start-up: a server that only
//! serves quotes never pays for the speech model. A failed load is not remembered, so a model
//! fetched after start-up (`dealdesk models fetch`) is picked up by the next caller.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::asr::{self, Transcriber};
use crate::config::Config;
use crate::diarize::Diarizer;
use crate::error::Result;
use crate::llm::{self, LlmHandle, LlmService};
use crate::models::Manifest;

/// The shared models of one process. Clone it freely.
#[derive(Clone)]
pub struct Engines {
    inner: Arc<Inner>,
}

struct Inner {
    config: Arc<Config>,
    manifest: Arc<Manifest>,
    llm: Mutex<Option<LlmHandle>>,
    transcriber: Mutex<Option<Transcriber>>,
    diarizer: Mutex<Option<Arc<Diarizer>>>,
}

impl Engines {
    pub fn new(config: Arc<Config>, manifest: Arc<Manifest>) -> Engines {
        Engines {
            inner: Arc::new(Inner {
                config,
                manifest,
                llm: Mutex::new(None),
                transcriber: Mutex::new(None),
                diarizer: Mutex::new(None),
            }),
        }
    }

    /// The language model service, started on first use. Blocks while the model loads: call it
    /// from a job or `spawn_blocking`, not from async code directly.
    pub fn llm(&self) -> Result<LlmHandle> {
        let mut slot = lock(&self.inner.llm);
        if let Some(handle) = slot.as_ref() {
            return Ok(handle.clone());
        }
        let options = llm::load_options(&self.inner.config, &self.inner.manifest)?;
        let handle = LlmService::start(options)?;
        *slot = Some(handle.clone());
        Ok(handle)
    }

    /// The Whisper model `[asr]` names, loaded on first use (blocking, like [`Self::llm`]).
    pub fn transcriber(&self) -> Result<Transcriber> {
        let mut slot = lock(&self.inner.transcriber);
        if let Some(transcriber) = slot.as_ref() {
            return Ok(transcriber.clone());
        }
        let transcriber = asr::load_configured(&self.inner.config, &self.inner.manifest)?;
        *slot = Some(transcriber.clone());
        Ok(transcriber)
    }

    /// The speaker-embedding model for diarizing mono recordings, loaded on first use
    /// (blocking, like [`Self::llm`]).
    pub fn diarizer(&self) -> Result<Arc<Diarizer>> {
        let mut slot = lock(&self.inner.diarizer);
        if let Some(diarizer) = slot.as_ref() {
            return Ok(diarizer.clone());
        }
        let diarizer = Arc::new(Diarizer::load(&self.inner.config, &self.inner.manifest)?);
        *slot = Some(diarizer.clone());
        Ok(diarizer)
    }
}

fn lock<T>(slot: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while loading leaves the slot empty, never half-built, so a poisoned lock is
    // still safe to use.
    slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

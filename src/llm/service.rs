//! One model, many callers: a queue served by a dedicated thread.
//!
//! The model is loaded once on the worker thread; [`LlmHandle`] (cheap to clone, `Send + Sync`)
//! submits requests and awaits their answers through one-shot channels, so async code never
//! blocks on inference. Requests run one at a time in arrival order, each with its own token
//! budget, deadline and cancel flag; a request whose deadline passes or that is cancelled while
//! queued is answered without running. Consecutive requests that share a prompt prefix (the
//! same system prompt) reuse its KV state.

use std::sync::mpsc;
use std::thread;

use serde_json::Value;
use tokio::sync::{mpsc as tmpsc, oneshot};

use super::chat::ChatMessage;
use super::engine::{
    FinishReason, GenerateParams, Generation, GenerationStats, JsonGeneration, Llm, LoadOptions,
};
use crate::error::{Error, Result};

/// Requests waiting beyond this many are refused (the caller retries later).
pub const DEFAULT_QUEUE_CAPACITY: usize = 64;

enum Job {
    Generate {
        messages: Vec<ChatMessage>,
        params: GenerateParams,
        stream: Option<tmpsc::UnboundedSender<String>>,
        reply: oneshot::Sender<Result<Generation>>,
    },
    Json {
        messages: Vec<ChatMessage>,
        schema: Value,
        params: GenerateParams,
        reply: oneshot::Sender<Result<JsonGeneration>>,
    },
}

/// Facts about the served model.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    pub architecture: String,
    pub context_length: usize,
}

/// Starts the worker thread that owns the model.
pub struct LlmService;

impl LlmService {
    /// Loads the model on a new thread and returns a handle once it is ready (or the load
    /// error). Blocks while loading: call it from `spawn_blocking` in async code.
    pub fn start(opts: LoadOptions) -> Result<LlmHandle> {
        Self::start_with_capacity(opts, DEFAULT_QUEUE_CAPACITY)
    }

    pub fn start_with_capacity(opts: LoadOptions, capacity: usize) -> Result<LlmHandle> {
        let (tx, rx) = mpsc::sync_channel::<Job>(capacity.max(1));
        let (ready_tx, ready_rx) = mpsc::channel::<Result<ModelInfo>>();
        thread::Builder::new()
            .name("dealdesk-llm".into())
            .spawn(move || {
                let mut llm = match Llm::load(&opts) {
                    Ok(llm) => {
                        let _ = ready_tx.send(Ok(ModelInfo {
                            architecture: llm.architecture().to_string(),
                            context_length: llm.context_length(),
                        }));
                        llm
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                // Ends when every handle is dropped.
                while let Ok(job) = rx.recv() {
                    run_job(&mut llm, job);
                }
            })
            .map_err(|e| Error::Internal(format!("cannot start the LLM thread: {e}")))?;
        let info = ready_rx
            .recv()
            .map_err(|_| Error::Internal("the LLM thread died while loading".into()))??;
        Ok(LlmHandle { tx, info })
    }
}

/// The answer for a request that never ran.
fn not_run(params: &GenerateParams) -> Option<FinishReason> {
    if params.cancel.is_cancelled() {
        Some(FinishReason::Cancelled)
    } else if params
        .deadline
        .is_some_and(|d| std::time::Instant::now() >= d)
    {
        Some(FinishReason::Deadline)
    } else {
        None
    }
}

fn run_job(llm: &mut Llm, job: Job) {
    // A panic in one request (a bug) must not take the service down with it.
    let run = std::panic::AssertUnwindSafe(|| match job {
        Job::Generate {
            messages,
            params,
            stream,
            reply,
        } => {
            if reply.is_closed() {
                return;
            }
            let result = match not_run(&params) {
                Some(finish) => Ok(Generation {
                    text: String::new(),
                    finish,
                    stats: GenerationStats::default(),
                }),
                None => llm.generate(&messages, &params, &mut |piece| {
                    if let Some(s) = &stream {
                        let _ = s.send(piece.to_string());
                    }
                }),
            };
            let _ = reply.send(result);
        }
        Job::Json {
            messages,
            schema,
            params,
            reply,
        } => {
            if reply.is_closed() {
                return;
            }
            let result = match not_run(&params) {
                Some(_) => Err(Error::Unavailable(
                    "the request was cancelled or timed out while queued: retry later".into(),
                )),
                None => llm.generate_json(&messages, &schema, &params),
            };
            let _ = reply.send(result);
        }
    });
    if std::panic::catch_unwind(run).is_err() {
        tracing::error!("LLM request panicked; the service continues");
    }
}

/// A handle to the model service: clone it freely.
#[derive(Clone)]
pub struct LlmHandle {
    tx: mpsc::SyncSender<Job>,
    info: ModelInfo,
}

impl std::fmt::Debug for LlmHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmHandle")
            .field("info", &self.info)
            .finish()
    }
}

impl LlmHandle {
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn submit(&self, job: Job) -> Result<()> {
        self.tx.try_send(job).map_err(|e| match e {
            mpsc::TrySendError::Full(_) => Error::Unavailable(
                "the language model is busy (request queue full): retry later".into(),
            ),
            mpsc::TrySendError::Disconnected(_) => {
                Error::Unavailable("the language model service has stopped".into())
            }
        })
    }

    fn stopped() -> Error {
        Error::Internal("the language model service dropped the request".into())
    }

    /// Queues a generation; the receiver gets its result.
    fn submit_generate(
        &self,
        messages: Vec<ChatMessage>,
        params: GenerateParams,
        stream: Option<tmpsc::UnboundedSender<String>>,
    ) -> Result<oneshot::Receiver<Result<Generation>>> {
        let (reply, rx) = oneshot::channel();
        self.submit(Job::Generate {
            messages,
            params,
            stream,
            reply,
        })?;
        Ok(rx)
    }

    /// Queues a constrained generation; the receiver gets its result.
    fn submit_json(
        &self,
        messages: Vec<ChatMessage>,
        schema: Value,
        params: GenerateParams,
    ) -> Result<oneshot::Receiver<Result<JsonGeneration>>> {
        let (reply, rx) = oneshot::channel();
        self.submit(Job::Json {
            messages,
            schema,
            params,
            reply,
        })?;
        Ok(rx)
    }

    /// Generates a reply. `stream`, if given, receives the text piece by piece.
    pub async fn generate(
        &self,
        messages: Vec<ChatMessage>,
        params: GenerateParams,
        stream: Option<tmpsc::UnboundedSender<String>>,
    ) -> Result<Generation> {
        let rx = self.submit_generate(messages, params, stream)?;
        rx.await.map_err(|_| Self::stopped())?
    }

    /// Generates a JSON value that validates against `schema`.
    pub async fn generate_json(
        &self,
        messages: Vec<ChatMessage>,
        schema: Value,
        params: GenerateParams,
    ) -> Result<JsonGeneration> {
        let rx = self.submit_json(messages, schema, params)?;
        rx.await.map_err(|_| Self::stopped())?
    }

    /// Blocking form of [`Self::generate`] for worker threads (not for async code).
    pub fn generate_blocking(
        &self,
        messages: Vec<ChatMessage>,
        params: GenerateParams,
    ) -> Result<Generation> {
        let rx = self.submit_generate(messages, params, None)?;
        rx.blocking_recv().map_err(|_| Self::stopped())?
    }

    /// Blocking form of [`Self::generate_json`] for worker threads (not for async code).
    pub fn generate_json_blocking(
        &self,
        messages: Vec<ChatMessage>,
        schema: Value,
        params: GenerateParams,
    ) -> Result<JsonGeneration> {
        let rx = self.submit_json(messages, schema, params)?;
        rx.blocking_recv().map_err(|_| Self::stopped())?
    }
}

//! A loaded model and its generation loop.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};
use candle_transformers::generation::{LogitsProcessor, Sampling as CandleSampling};
use serde::Serialize;

use super::chat::{ChatMessage, ChatTemplate, Template};
use super::model::{Backend, PREFILL_CHUNK, PrefillWeights, Transformer};
use super::tokenizer::Tokenizer;
use crate::error::{Error, Result};

/// What to load.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The GGUF model file.
    pub gguf: PathBuf,
    /// A `tokenizer.json`; without one the tokenizer is rebuilt from the GGUF metadata.
    pub tokenizer_json: Option<PathBuf>,
    /// How prompt batches use the weights (speed vs memory).
    pub prefill_weights: PrefillWeights,
    /// Caps the context (prompt + output) below the model's own limit, bounding memory.
    pub max_context: Option<usize>,
}

impl LoadOptions {
    pub fn new(gguf: impl Into<PathBuf>) -> Self {
        Self {
            gguf: gguf.into(),
            tokenizer_json: None,
            prefill_weights: PrefillWeights::default(),
            max_context: None,
        }
    }

    pub fn with_tokenizer(mut self, tokenizer_json: impl Into<PathBuf>) -> Self {
        self.tokenizer_json = Some(tokenizer_json.into());
        self
    }
}

/// A cancellation flag shared between a request's owner and the generation loop.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// How the next token is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampling {
    /// Always the most likely token (deterministic).
    Greedy,
    /// Random among the `top_k` most likely tokens (then the `top_p` nucleus), at `temperature`,
    /// from a generator seeded with `seed`: the same seed and prompt give the same output.
    Random {
        temperature: f64,
        top_k: usize,
        top_p: Option<f64>,
        seed: u64,
    },
}

/// A request's limits and sampling.
#[derive(Debug, Clone)]
pub struct GenerateParams {
    /// Most tokens to generate.
    pub max_tokens: usize,
    pub sampling: Sampling,
    /// Penalty (> 1) on tokens seen in the last 64 generated; `None` for none.
    pub repeat_penalty: Option<f32>,
    /// Stop (with what was generated so far) at this instant.
    pub deadline: Option<Instant>,
    pub cancel: CancelToken,
}

impl Default for GenerateParams {
    fn default() -> Self {
        Self {
            max_tokens: 512,
            sampling: Sampling::Greedy,
            repeat_penalty: None,
            deadline: None,
            cancel: CancelToken::new(),
        }
    }
}

impl GenerateParams {
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.deadline = Some(Instant::now() + timeout);
        self
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model ended its turn (or the constrained output is complete).
    Stop,
    /// `max_tokens` were generated.
    MaxTokens,
    /// The deadline passed.
    Deadline,
    /// The request was cancelled.
    Cancelled,
}

/// Timings of one request.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GenerationStats {
    pub prompt_tokens: usize,
    /// Prompt tokens whose KV state was reused from the previous request.
    pub cached_prompt_tokens: usize,
    pub generated_tokens: usize,
    pub prefill_secs: f64,
    pub decode_secs: f64,
    /// Prompt tokens actually run per second.
    pub prefill_tok_per_s: f64,
    pub decode_tok_per_s: f64,
}

/// A finished generation.
#[derive(Debug, Clone, Serialize)]
pub struct Generation {
    pub text: String,
    pub finish: FinishReason,
    pub stats: GenerationStats,
}

/// A schema-constrained generation: the value validates against the schema.
#[derive(Debug, Clone, Serialize)]
pub struct JsonGeneration {
    pub value: serde_json::Value,
    /// The generated text the value was parsed from.
    pub text: String,
    pub stats: GenerationStats,
}

/// A loaded model: weights, tokenizer and chat template. Not thread-safe by itself: share it
/// through [`super::LlmService`].
pub struct Llm {
    backend: Backend,
    tokenizer: Tokenizer,
    template: Template,
    context_length: usize,
    arch: String,
    constraint: Option<super::constrained::ConstraintEnv>,
}

impl std::fmt::Debug for Llm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Llm")
            .field("arch", &self.arch)
            .field("template", &self.template.kind)
            .field("context_length", &self.context_length)
            .finish()
    }
}

fn cerr(ctx: &str) -> impl Fn(candle_core::Error) -> Error + '_ {
    move |e| Error::Internal(format!("{ctx}: {e}"))
}

/// The CPU features candle was compiled to use, for the log.
pub fn cpu_features() -> String {
    format!(
        "avx={} avx2={} fma={} f16c={} avx512f={} threads={}",
        candle_core::utils::with_avx(),
        cfg!(target_feature = "avx2"),
        cfg!(target_feature = "fma"),
        candle_core::utils::with_f16c(),
        cfg!(target_feature = "avx512f"),
        candle_core::utils::get_num_threads()
    )
}

impl Llm {
    /// Loads a GGUF model (and tokenizer) into memory.
    pub fn load(opts: &LoadOptions) -> Result<Self> {
        let path: &Path = &opts.gguf;
        let started = Instant::now();
        let mut file = std::fs::File::open(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::Unavailable(format!(
                    "model file {} not found: run `dealdesk models fetch`",
                    path.display()
                ))
            } else {
                Error::io("opening the model file", path, e)
            }
        })?;
        let ct = gguf_file::Content::read(&mut file).map_err(|e| {
            Error::Unavailable(format!(
                "model file {} is not a valid GGUF file ({e}): run `dealdesk models fetch` again",
                path.display()
            ))
        })?;
        let md_str = |k: &str| ct.metadata.get(k).and_then(|v| v.to_string().ok()).cloned();
        let md_u32 = |k: &str| ct.metadata.get(k).and_then(|v| v.to_u32().ok());
        let arch = md_str("general.architecture").unwrap_or_default();
        let chat_template = md_str("tokenizer.chat_template");
        let eos = md_u32("tokenizer.ggml.eos_token_id");
        let bos = md_u32("tokenizer.ggml.bos_token_id");
        let add_bos = ct
            .metadata
            .get("tokenizer.ggml.add_bos_token")
            .and_then(|v| v.to_bool().ok())
            .unwrap_or(false);
        let gemma_ctx = md_u32("gemma3.context_length").unwrap_or(8192) as usize;
        let tokenizer = Tokenizer::load(&ct, opts.tokenizer_json.as_deref())?;
        // A tokenizer.json of another model family gives ids the weights have no rows for:
        // every answer would fail, so refuse at load with the fix.
        let model_vocab = ct
            .metadata
            .get("tokenizer.ggml.tokens")
            .and_then(|v| v.to_vec().ok())
            .map(Vec::len);
        if let (Some(rows), Some(json)) = (model_vocab, &opts.tokenizer_json)
            && tokenizer.vocab_size() > rows
        {
            return Err(Error::Config(format!(
                "llm.tokenizer {} has {} tokens but the model {} knows only {rows}: they belong \
                 to different model families; set llm.tokenizer to this model's tokenizer, or \
                 to \"\" to use the one inside the model file",
                json.display(),
                tokenizer.vocab_size(),
                path.display()
            )));
        }
        let template = Template::detect(
            &arch,
            chat_template.as_deref(),
            &tokenizer,
            eos,
            bos,
            add_bos,
        )?;
        let bad_model = |e: candle_core::Error| {
            Error::Unavailable(format!(
                "model file {} could not be loaded ({e}): run `dealdesk models fetch` again",
                path.display()
            ))
        };
        let backend = match arch.as_str() {
            "llama" | "qwen2" | "qwen3" => Backend::Llama(Box::new(
                Transformer::from_gguf(&ct, &mut file, &arch, opts.prefill_weights)
                    .map_err(bad_model)?,
            )),
            "gemma3" => {
                let vocab_size = ct
                    .tensor_infos
                    .get("token_embd.weight")
                    .map(|t| t.shape.dims()[0])
                    .unwrap_or(0);
                let model = candle_transformers::models::quantized_gemma3::ModelWeights::from_gguf(
                    ct,
                    &mut file,
                    &Device::Cpu,
                )
                .map_err(bad_model)?;
                Backend::Gemma3 {
                    model: Box::new(model),
                    pos: 0,
                    vocab_size,
                    context_length: gemma_ctx,
                }
            }
            other => {
                return Err(Error::Unavailable(format!(
                    "model architecture `{other}` in {} is not supported (llama, qwen2, qwen3, gemma3 are)",
                    path.display()
                )));
            }
        };
        let context_length = opts.max_context.map_or(backend.context_length(), |c| {
            c.min(backend.context_length())
        });
        tracing::info!(
            model = %path.display(),
            arch,
            template = ?template.kind,
            context_length,
            load_secs = started.elapsed().as_secs_f64(),
            cpu = %cpu_features(),
            "LLM loaded"
        );
        Ok(Self {
            backend,
            tokenizer,
            template,
            context_length,
            arch,
            constraint: None,
        })
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    pub fn architecture(&self) -> &str {
        &self.arch
    }

    pub fn chat_template(&self) -> ChatTemplate {
        self.template.kind
    }

    pub fn context_length(&self) -> usize {
        self.context_length
    }

    /// Token ids that end a reply (end of turn, EOS).
    pub fn stop_tokens(&self) -> &[u32] {
        &self.template.stop_tokens
    }

    /// The prompt tokens of a conversation.
    pub fn render(&self, messages: &[ChatMessage]) -> Result<Vec<u32>> {
        self.template.render(&self.tokenizer, messages)
    }

    /// Generates the assistant's reply to `messages`, calling `on_text` with each new piece
    /// of text as it is decoded.
    pub fn generate(
        &mut self,
        messages: &[ChatMessage],
        params: &GenerateParams,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Generation> {
        let prompt = self.render(messages)?;
        self.generate_tokens(&prompt, params, None, on_text)
    }

    pub(crate) fn constraint_env(&mut self) -> Result<&super::constrained::ConstraintEnv> {
        if self.constraint.is_none() {
            let env = super::constrained::ConstraintEnv::new(
                &self.tokenizer,
                self.backend.vocab_size(),
                &self.template.stop_tokens,
            )?;
            self.constraint = Some(env);
        }
        self.constraint
            .as_ref()
            .ok_or_else(|| Error::Internal("constraint environment missing".into()))
    }

    /// Generates a JSON value for `messages` that is guaranteed to validate against `schema`
    /// (a JSON Schema object): decoding is constrained token by token, and the result is
    /// validated again before it is returned. Running out of `max_tokens`, the deadline or a
    /// cancellation is an error, since the value would be incomplete.
    ///
    /// The schema constrains the output but does not explain the task: say in the messages
    /// what each field means.
    pub fn generate_json(
        &mut self,
        messages: &[ChatMessage],
        schema: &serde_json::Value,
        params: &GenerateParams,
    ) -> Result<JsonGeneration> {
        let validator = super::constrained::compile_validator(schema)?;
        let prompt = self.render(messages)?;
        let env = self.constraint_env()?;
        let mut constraint = super::constrained::Constraint::new(env, schema)?;
        let g = self.generate_tokens(&prompt, params, Some(&mut constraint), &mut |_| {})?;
        match g.finish {
            FinishReason::Stop => {}
            FinishReason::MaxTokens => {
                return Err(Error::Unavailable(format!(
                    "the JSON output did not fit in {} tokens: raise max_tokens or simplify the schema",
                    params.max_tokens
                )));
            }
            FinishReason::Deadline => {
                return Err(Error::Unavailable(
                    "the model did not finish the JSON output before the deadline: retry later or allow more time"
                        .into(),
                ));
            }
            FinishReason::Cancelled => {
                return Err(Error::Unavailable("the request was cancelled".into()));
            }
        }
        let value = super::constrained::parse_and_validate(&g.text, &validator)?;
        Ok(JsonGeneration {
            value,
            text: g.text,
            stats: g.stats,
        })
    }

    /// Checks limits before a step; `Some` is the reason to stop.
    fn interrupted(params: &GenerateParams) -> Option<FinishReason> {
        if params.cancel.is_cancelled() {
            Some(FinishReason::Cancelled)
        } else if params.deadline.is_some_and(|d| Instant::now() >= d) {
            Some(FinishReason::Deadline)
        } else {
            None
        }
    }

    /// Runs the prompt (reusing a cached prefix) and returns the last logits, or the reason it
    /// was interrupted.
    fn prefill(
        &mut self,
        prompt: &[u32],
        params: &GenerateParams,
        stats: &mut GenerationStats,
    ) -> Result<std::result::Result<Tensor, FinishReason>> {
        let t0 = Instant::now();
        let reused = self.backend.reset_for(prompt);
        stats.prompt_tokens = prompt.len();
        stats.cached_prompt_tokens = reused;
        // The prompt's last token always runs alone, on the same (quantized, one-row) path
        // as when its prefix comes from the cache, so a repeated request gives the same
        // output whether or not its prompt was cached.
        let (body, last) = prompt.split_at(prompt.len() - 1);
        for chunk in body[reused.min(body.len())..].chunks(PREFILL_CHUNK) {
            if let Some(why) = Self::interrupted(params) {
                // The cache keeps the part computed so far, for the next request.
                return Ok(Err(why));
            }
            self.backend
                .forward(chunk)
                .map_err(cerr("prefill failed"))?;
        }
        if let Some(why) = Self::interrupted(params) {
            return Ok(Err(why));
        }
        let logits = self.backend.forward(last).map_err(cerr("prefill failed"))?;
        stats.prefill_secs = t0.elapsed().as_secs_f64();
        let run = (prompt.len() - reused) as f64;
        stats.prefill_tok_per_s = run / stats.prefill_secs.max(1e-9);
        Ok(Ok(logits))
    }

    fn logits_processor(params: &GenerateParams) -> LogitsProcessor {
        match params.sampling {
            Sampling::Greedy => LogitsProcessor::from_sampling(0, CandleSampling::ArgMax),
            Sampling::Random {
                temperature,
                top_k,
                top_p,
                seed,
            } => {
                let temperature = if temperature.is_finite() && temperature > 1e-4 {
                    temperature
                } else {
                    return LogitsProcessor::from_sampling(seed, CandleSampling::ArgMax);
                };
                let k = top_k.max(1);
                let s = match top_p {
                    Some(p) if p > 0.0 && p < 1.0 => {
                        CandleSampling::TopKThenTopP { k, p, temperature }
                    }
                    _ => CandleSampling::TopK { k, temperature },
                };
                LogitsProcessor::from_sampling(seed, s)
            }
        }
    }

    /// The generation loop shared by free and constrained generation. `constraint`, when
    /// given, masks the logits each step and may force tokens.
    /// Continues a raw, already tokenized prompt (no chat template), e.g. for few-shot
    /// prompts or benchmarks.
    pub fn generate_raw(
        &mut self,
        prompt: &[u32],
        params: &GenerateParams,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Generation> {
        self.generate_tokens(prompt, params, None, on_text)
    }

    pub(crate) fn generate_tokens(
        &mut self,
        prompt: &[u32],
        params: &GenerateParams,
        mut constraint: Option<&mut super::constrained::Constraint>,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Generation> {
        if prompt.is_empty() {
            return Err(Error::InvalidInput("the prompt is empty".into()));
        }
        if prompt.len() + 1 > self.context_length {
            return Err(Error::InvalidInput(format!(
                "the prompt is {} tokens, more than the model's context of {}: shorten the input",
                prompt.len(),
                self.context_length
            )));
        }
        let budget = params.max_tokens.min(self.context_length - prompt.len());
        let mut stats = GenerationStats::default();
        let mut logits = match self.prefill(prompt, params, &mut stats)? {
            Ok(l) => l,
            Err(why) => {
                return Ok(Generation {
                    text: String::new(),
                    finish: why,
                    stats,
                });
            }
        };
        let mut lp = Self::logits_processor(params);
        let stop = self.template.stop_tokens.clone();
        let mut generated: Vec<u32> = Vec::new();
        let mut text = String::new();
        let mut decoder = StreamDecoder::default();
        let t0 = Instant::now();
        let mut mask_secs = 0.0;
        let finish = loop {
            if generated.len() >= budget {
                break FinishReason::MaxTokens;
            }
            if let Some(why) = Self::interrupted(params) {
                break why;
            }
            let mut logits_v = logits.to_vec1::<f32>().map_err(cerr("reading logits"))?;
            if let Some(p) = params.repeat_penalty.filter(|p| *p > 0.0 && *p != 1.0) {
                let start = generated.len().saturating_sub(64);
                penalize(&mut logits_v, p, &generated[start..]);
            }
            // Tokens to feed next: one sampled, or several forced by the grammar.
            let next: Vec<u32> = if let Some(c) = constraint.as_deref_mut() {
                let tm = Instant::now();
                let forced = c.mask_logits(&mut logits_v)?;
                mask_secs += tm.elapsed().as_secs_f64();
                match forced {
                    super::constrained::Step::Done => break FinishReason::Stop,
                    super::constrained::Step::Sample => {
                        let t = sample(&mut lp, logits_v)?;
                        let tm = Instant::now();
                        let mut toks = vec![t];
                        if !stop.contains(&t) {
                            toks.extend(c.commit(t)?);
                        }
                        mask_secs += tm.elapsed().as_secs_f64();
                        toks
                    }
                }
            } else {
                vec![sample(&mut lp, logits_v)?]
            };
            if next.first().is_some_and(|t| stop.contains(t)) {
                break FinishReason::Stop;
            }
            let room = budget - generated.len();
            let next = &next[..next.len().min(room)];
            for &t in next {
                generated.push(t);
                if let Some(piece) = decoder.step(&self.tokenizer, &generated) {
                    text.push_str(&piece);
                    on_text(&piece);
                }
            }
            if constraint.as_deref().is_some_and(|c| c.is_done()) {
                break FinishReason::Stop;
            }
            if generated.len() >= budget {
                break FinishReason::MaxTokens;
            }
            logits = self
                .backend
                .forward(next)
                .map_err(cerr("decode step failed"))?;
        };
        // Whatever the incremental decoder held back (an incomplete character) is flushed.
        let full = self.tokenizer.decode(&generated)?;
        if full.len() > text.len() && full.starts_with(&text) {
            let rest = &full[text.len()..];
            on_text(rest);
        }
        stats.generated_tokens = generated.len();
        stats.decode_secs = t0.elapsed().as_secs_f64();
        stats.decode_tok_per_s = generated.len() as f64 / stats.decode_secs.max(1e-9);
        tracing::info!(
            arch = %self.arch,
            prompt_tokens = stats.prompt_tokens,
            cached_prompt_tokens = stats.cached_prompt_tokens,
            generated_tokens = stats.generated_tokens,
            prefill_tok_per_s = format!("{:.1}", stats.prefill_tok_per_s),
            decode_tok_per_s = format!("{:.1}", stats.decode_tok_per_s),
            constrained = constraint.is_some(),
            mask_ms = format!("{:.1}", mask_secs * 1e3),
            finish = ?finish,
            "LLM request done"
        );
        Ok(Generation {
            text: full,
            finish,
            stats,
        })
    }
}

fn sample(lp: &mut LogitsProcessor, logits: Vec<f32>) -> Result<u32> {
    let n = logits.len();
    let t = Tensor::from_vec(logits, n, &Device::Cpu).map_err(cerr("logits"))?;
    lp.sample(&t).map_err(cerr("sampling failed"))
}

fn penalize(logits: &mut [f32], penalty: f32, recent: &[u32]) {
    let mut seen = std::collections::HashSet::new();
    for &t in recent {
        if seen.insert(t)
            && let Some(l) = logits.get_mut(t as usize)
        {
            *l = if *l >= 0.0 {
                *l / penalty
            } else {
                *l * penalty
            };
        }
    }
}

/// Incremental detokenization: emits the new text once it no longer ends inside a
/// multi-byte character.
#[derive(Default)]
struct StreamDecoder {
    /// Tokens before this index are fully emitted and only serve as decoding context.
    prefix_start: usize,
}

impl StreamDecoder {
    fn step(&mut self, tok: &Tokenizer, generated: &[u32]) -> Option<String> {
        // Decode a short window so the cost stays constant per token.
        let ctx_start = self.prefix_start.saturating_sub(4);
        let before = tok.decode(&generated[ctx_start..self.prefix_start]).ok()?;
        let now = tok.decode(&generated[ctx_start..]).ok()?;
        if now.ends_with('\u{FFFD}') || !now.starts_with(&before) || now.len() <= before.len() {
            return None;
        }
        self.prefix_start = generated.len();
        Some(now[before.len()..].to_string())
    }
}

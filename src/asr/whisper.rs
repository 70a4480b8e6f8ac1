//! Whisper transcription through whisper.cpp (whisper-rs).

use std::cell::Cell;
use std::ffi::{c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use whisper_rs::{
    FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters, WhisperState,
    WhisperSysContext, WhisperSysState,
};

use super::decode::{Audio, AudioReader, Channels, SAMPLE_RATE};
use super::filter::{self, Loudness};
use super::{Language, Segment, TranscribeRequest, Transcript};
use crate::error::{Error, Result};

/// The file name `dealdesk models fetch` gives the Whisper model in the model cache.
pub const DEFAULT_MODEL_FILE: &str = "whisper-base-q8_0.bin";

/// Whisper's prompt that steers Mandarin output to simplified characters (whisper.cpp #1450).
const ZH_PROMPT: &str = "以下是普通话的句子。";

const FRAMES_PER_MS: usize = SAMPLE_RATE as usize / 1000;
/// whisper.cpp ignores a tail shorter than one second; carry at least that much into the next
/// block.
const MIN_CARRY: usize = SAMPLE_RATE as usize;
/// A last segment that starts this close to the end of a block may be cut by the block
/// boundary; it is dropped and decoded again as the start of the next block.
const MAX_CARRY: usize = 45 * SAMPLE_RATE as usize;
/// Audio used for language detection.
const DETECT_FRAMES: usize = 30 * SAMPLE_RATE as usize;

/// How the model runs.
#[derive(Debug, Clone, PartialEq)]
pub struct TranscriberOptions {
    /// CPU threads per transcription.
    pub threads: usize,
    /// Beam width; 1 decodes greedily (whisper.cpp's best-of-5 sampling on fallback), which is
    /// about twice as fast on a small CPU for a small accuracy cost.
    pub beam_size: usize,
    /// Seconds of audio per whisper.cpp call. Whisper itself works in 30 s windows; blocks
    /// bound memory (about two blocks per channel are held) and let progress move steadily.
    pub block_secs: u32,
}

impl Default for TranscriberOptions {
    fn default() -> Self {
        TranscriberOptions {
            threads: std::thread::available_parallelism().map_or(2, |n| n.get().min(8)),
            beam_size: 1,
            block_secs: 300,
        }
    }
}

/// A loaded Whisper model. Share one per process (it is `Send + Sync`); each call to
/// [`Transcriber::transcribe`] gets its own decoder state, so calls may run concurrently.
pub struct Transcriber {
    ctx: WhisperContext,
    opts: TranscriberOptions,
    model_path: PathBuf,
    multilingual: bool,
}

impl std::fmt::Debug for Transcriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transcriber")
            .field("model_path", &self.model_path)
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

impl Transcriber {
    /// Loads a whisper.cpp ggml model file.
    pub fn load(model_path: &Path, opts: TranscriberOptions) -> Result<Self> {
        if !model_path.is_file() {
            return Err(Error::Unavailable(format!(
                "whisper model not found at {}: run `dealdesk models fetch`",
                model_path.display()
            )));
        }
        let path = model_path.to_str().ok_or_else(|| {
            Error::Config(format!(
                "the model path {} is not valid UTF-8: move the model cache to a UTF-8 path",
                model_path.display()
            ))
        })?;
        // Route whisper.cpp's and ggml's logging into `tracing` instead of stderr.
        whisper_rs::install_logging_hooks();
        let mut params = WhisperContextParameters::default();
        params.use_gpu(false);
        let ctx = WhisperContext::new_with_params(path, params).map_err(|e| {
            Error::Unavailable(format!(
                "could not load the whisper model at {} ({e}): the file is damaged or not a \
                 whisper.cpp ggml model; run `dealdesk models fetch` to fetch it again",
                model_path.display()
            ))
        })?;
        let multilingual = ctx.is_multilingual();
        tracing::info!(
            model = %model_path.display(),
            kind = ctx.model_type_readable_str_lossy().map(|s| s.into_owned()).unwrap_or_default(),
            multilingual,
            "whisper model loaded"
        );
        Ok(Transcriber {
            ctx,
            opts,
            model_path: model_path.to_path_buf(),
            multilingual,
        })
    }

    /// The model file this transcriber was loaded from.
    pub fn model_path(&self) -> &Path {
        &self.model_path
    }

    /// The options the model runs with.
    pub fn options(&self) -> &TranscriberOptions {
        &self.opts
    }

    /// Transcribes decoded audio. `progress` receives the completed fraction, 0..=1, rising.
    pub fn transcribe(
        &self,
        audio: &Audio,
        req: &TranscribeRequest,
        progress: &dyn Fn(f32),
    ) -> Result<Transcript> {
        let mut src = MemorySource { audio, pos: 0 };
        self.run(&mut src, req, progress)
    }

    /// Transcribes straight from a decoder, block by block, without holding the whole file in
    /// memory (use this for long recordings).
    pub fn transcribe_reader(
        &self,
        reader: &mut AudioReader,
        req: &TranscribeRequest,
        progress: &dyn Fn(f32),
    ) -> Result<Transcript> {
        self.run(reader, req, progress)
    }

    fn run(
        &self,
        src: &mut dyn BlockSource,
        req: &TranscribeRequest,
        progress: &dyn Fn(f32),
    ) -> Result<Transcript> {
        if req.language == Language::Zh && !self.multilingual {
            return Err(Error::InvalidInput(format!(
                "the whisper model at {} is English-only and cannot transcribe Mandarin: use a \
                 multilingual model",
                self.model_path.display()
            )));
        }
        let threads = req.threads.unwrap_or(self.opts.threads).clamp(1, 64);
        let block = (self.opts.block_secs.max(30) * SAMPLE_RATE) as usize;
        let n = src.channel_count();
        let split = src.mode() == Channels::Split;
        let fixed_language = match req.language {
            Language::Auto if !self.multilingual => Some("en"),
            l => l.code(),
        };
        let mut chans: Vec<ChannelRun> = (0..n)
            .map(|i| ChannelRun {
                channel: split.then_some(i.min(usize::from(u8::MAX)) as u8),
                buf: Vec::new(),
                buf_start: 0,
                language: fixed_language.map(str::to_string),
                segments: Vec::new(),
            })
            .collect();
        let mut state = self.ctx.create_state().map_err(|e| {
            Error::Internal(format!("creating a whisper state (out of memory?): {e}"))
        })?;
        let reporter = Reporter {
            sink: progress,
            last: Cell::new(0.0),
        };
        reporter.emit(0.0);
        let mut total_frames = 0usize;
        loop {
            let p0 = src.fraction();
            let last = match src.next_block(block)? {
                Some(b) => {
                    let len = b.first().map_or(0, Vec::len);
                    total_frames += len;
                    for (c, data) in chans.iter_mut().zip(b) {
                        c.buf.extend_from_slice(&data);
                    }
                    len < block
                }
                None => true,
            };
            let p1 = if last { 1.0 } else { src.fraction() };
            for (i, c) in chans.iter_mut().enumerate() {
                let lo = p0 + (p1 - p0) * i as f32 / n as f32;
                let hi = p0 + (p1 - p0) * (i + 1) as f32 / n as f32;
                self.process(&mut state, c, last, req, threads, &reporter, lo, hi)?;
            }
            if last {
                break;
            }
        }
        let language = chans
            .iter()
            .filter_map(|c| {
                let chars: usize = c.segments.iter().map(|s| s.text.chars().count()).sum();
                c.language.as_ref().map(|l| (chars, l))
            })
            .max_by_key(|(chars, _)| *chars)
            .map(|(_, l)| l.clone())
            .unwrap_or_else(|| fixed_language.unwrap_or("en").to_string());
        let mut segments: Vec<Segment> = chans.into_iter().flat_map(|c| c.segments).collect();
        segments.sort_by_key(|s| (s.start_ms, s.channel));
        reporter.emit(1.0);
        Ok(Transcript {
            language,
            duration_ms: (total_frames / FRAMES_PER_MS) as u64,
            segments,
        })
    }

    /// Transcribes the buffered audio of one channel and keeps its segments. Unless `last`,
    /// a final segment that may run past the end of the buffer is dropped and its audio kept
    /// for the next block.
    #[allow(clippy::too_many_arguments)]
    fn process(
        &self,
        state: &mut WhisperState,
        ch: &mut ChannelRun,
        last: bool,
        req: &TranscribeRequest,
        threads: usize,
        reporter: &Reporter<'_>,
        lo: f32,
        hi: f32,
    ) -> Result<()> {
        let len = ch.buf.len();
        if len == 0 {
            return Ok(());
        }
        let loud = Loudness::new(&ch.buf);
        if !loud.has_signal() {
            // Digital silence: nothing to say, and Whisper would only invent something.
            consume(ch, len);
            return Ok(());
        }
        if ch.language.is_none() {
            ch.language = Some(self.detect_language(state, &ch.buf, &loud, threads)?);
        }
        let language = ch.language.clone().unwrap_or_else(|| "en".into());
        let prompt = build_prompt(&language, req.vocabulary.as_deref());

        let strategy = if self.opts.beam_size > 1 {
            SamplingStrategy::BeamSearch {
                beam_size: self.opts.beam_size.min(16) as c_int,
                patience: -1.0,
            }
        } else {
            SamplingStrategy::Greedy { best_of: 5 }
        };
        let mut params = FullParams::new(strategy);
        params.set_n_threads(threads as c_int);
        params.set_language(Some(&language));
        params.set_translate(false);
        params.set_no_context(true);
        params.set_suppress_blank(true);
        params.set_suppress_nst(true);
        params.set_print_special(false);
        params.set_print_progress(false);
        params.set_print_realtime(false);
        params.set_print_timestamps(false);
        params.set_no_speech_thold(filter::NO_SPEECH_THRESHOLD);
        params.set_logprob_thold(filter::LOGPROB_THRESHOLD);
        if let Some(p) = &prompt {
            params.set_initial_prompt(p);
        }
        let progress_ctx = ProgressCtx { reporter, lo, hi };
        // SAFETY: `progress_ctx` outlives the `full` call below, which is the only place the
        // callback runs; whisper.cpp calls it on this thread.
        unsafe {
            params.set_progress_callback(Some(on_progress));
            params.set_progress_callback_user_data(
                &progress_ctx as *const ProgressCtx<'_> as *mut c_void,
            );
        }
        state
            .full(params, &ch.buf)
            .map_err(|e| Error::Internal(format!("whisper decoding failed: {e}")))?;

        let mut raw = Vec::new();
        for seg in state.as_iter() {
            let start = (seg.start_timestamp().max(0) as usize * 10 * FRAMES_PER_MS).min(len);
            let end = (seg.end_timestamp().max(0) as usize * 10 * FRAMES_PER_MS).clamp(start, len);
            let text = seg
                .to_str_lossy()
                .map(|t| t.into_owned())
                .unwrap_or_default();
            let (mut sum_p, mut sum_lp, mut count) = (0.0f32, 0.0f32, 0usize);
            let eot = self.ctx.token_eot();
            for t in 0..seg.n_tokens() {
                if let Some(tok) = seg.get_token(t)
                    && tok.token_id() < eot
                {
                    let p = tok.token_probability().clamp(1e-10, 1.0);
                    sum_p += p;
                    sum_lp += p.ln();
                    count += 1;
                }
            }
            let count = count.max(1) as f32;
            raw.push((
                start,
                end,
                text,
                sum_p / count,
                sum_lp / count,
                seg.no_speech_probability(),
            ));
        }

        // Where this block's output stops and the next block resumes.
        let mut cut = len;
        if !last {
            cut = len.saturating_sub(MIN_CARRY);
            if let Some(&(start, end, ..)) = raw.last() {
                if len - start <= MAX_CARRY && start > 0 {
                    cut = start;
                    raw.pop();
                } else {
                    cut = cut.max(end);
                }
            }
        }

        let offset_ms = (ch.buf_start / FRAMES_PER_MS) as u64;
        for (start, end, text, avg_prob, avg_logprob, no_speech_prob) in raw {
            let text = filter::collapse_repeats(&filter::to_simplified(text.trim()));
            if text.is_empty()
                || !filter::keep_scores(avg_logprob, no_speech_prob)
                || loud.is_silent(start, end)
                || (filter::is_known_hallucination(&text) && loud.is_quiet(start, end))
            {
                tracing::debug!(%text, avg_logprob, no_speech_prob, "dropping segment");
                continue;
            }
            ch.segments.push(Segment {
                start_ms: offset_ms + (start / FRAMES_PER_MS) as u64,
                end_ms: offset_ms + (end / FRAMES_PER_MS) as u64,
                text,
                avg_prob,
                avg_logprob,
                no_speech_prob,
                channel: ch.channel,
            });
        }
        ch.segments = filter::merge_repeated_segments(std::mem::take(&mut ch.segments));
        consume(ch, cut);
        reporter.emit(hi);
        Ok(())
    }

    /// Detects English vs Mandarin on 30 s of audio starting just before the first sound.
    fn detect_language(
        &self,
        state: &mut WhisperState,
        buf: &[f32],
        loud: &Loudness<'_>,
        threads: usize,
    ) -> Result<String> {
        if !self.multilingual {
            return Ok("en".into());
        }
        let onset = loud.first_sound().saturating_sub(SAMPLE_RATE as usize / 2);
        let window = &buf[onset..(onset + DETECT_FRAMES).min(buf.len())];
        state
            .pcm_to_mel(window, threads)
            .map_err(|e| Error::Internal(format!("whisper mel spectrogram failed: {e}")))?;
        let (_, probs) = state
            .lang_detect(0, threads)
            .map_err(|e| Error::Internal(format!("whisper language detection failed: {e}")))?;
        let prob = |code: &str| {
            whisper_rs::get_lang_id(code)
                .and_then(|id| probs.get(id as usize).copied())
                .unwrap_or(0.0)
        };
        let (en, zh) = (prob("en"), prob("zh"));
        tracing::debug!(en, zh, "language detection");
        Ok(if zh > en { "zh" } else { "en" }.into())
    }
}

fn build_prompt(language: &str, vocabulary: Option<&str>) -> Option<String> {
    let vocabulary = vocabulary
        .map(|v| v.replace('\0', " ").trim().to_string())
        .filter(|v| !v.is_empty());
    match (language, vocabulary) {
        ("zh", Some(v)) => Some(format!("{ZH_PROMPT}{v}")),
        ("zh", None) => Some(ZH_PROMPT.to_string()),
        (_, v) => v,
    }
}

/// Drops the first `frames` of a channel's buffer.
fn consume(ch: &mut ChannelRun, frames: usize) {
    let frames = frames.min(ch.buf.len());
    ch.buf.drain(..frames);
    ch.buf_start += frames;
}

/// Per-channel transcription state.
struct ChannelRun {
    channel: Option<u8>,
    /// Audio not yet transcribed (a carried-over tail plus the new block).
    buf: Vec<f32>,
    /// Absolute frame index of `buf[0]`.
    buf_start: usize,
    language: Option<String>,
    segments: Vec<Segment>,
}

/// Monotonic progress reporting.
struct Reporter<'a> {
    sink: &'a dyn Fn(f32),
    last: Cell<f32>,
}

impl Reporter<'_> {
    fn emit(&self, p: f32) {
        let p = p.clamp(0.0, 1.0);
        let last = self.last.get();
        if p > last + 0.001 || (p == 1.0 && last < 1.0) || (p == 0.0 && last == 0.0) {
            self.last.set(p.max(last));
            (self.sink)(p.max(last));
        }
    }
}

struct ProgressCtx<'a> {
    reporter: &'a Reporter<'a>,
    lo: f32,
    hi: f32,
}

unsafe extern "C" fn on_progress(
    _ctx: *mut WhisperSysContext,
    _state: *mut WhisperSysState,
    percent: c_int,
    user_data: *mut c_void,
) {
    if user_data.is_null() {
        return;
    }
    // SAFETY: set in `process` to a `ProgressCtx` that lives across the `full` call.
    let ctx = unsafe { &*(user_data as *const ProgressCtx<'_>) };
    let p = ctx.lo + (ctx.hi - ctx.lo) * (percent.clamp(0, 100) as f32 / 100.0);
    // A panicking callback must not unwind into C.
    let _ = catch_unwind(AssertUnwindSafe(|| ctx.reporter.emit(p)));
}

/// Where [`Transcriber::run`] gets audio from.
trait BlockSource {
    fn channel_count(&self) -> usize;
    fn mode(&self) -> Channels;
    fn next_block(&mut self, frames: usize) -> Result<Option<Vec<Vec<f32>>>>;
    fn fraction(&self) -> f32;
}

struct MemorySource<'a> {
    audio: &'a Audio,
    pos: usize,
}

impl BlockSource for MemorySource<'_> {
    fn channel_count(&self) -> usize {
        self.audio.channel_count()
    }

    fn mode(&self) -> Channels {
        self.audio.mode()
    }

    fn next_block(&mut self, frames: usize) -> Result<Option<Vec<Vec<f32>>>> {
        let total = self.audio.frames();
        if self.pos >= total {
            return Ok(None);
        }
        let end = (self.pos + frames).min(total);
        let block = (0..self.audio.channel_count())
            .map(|c| self.audio.channel(c)[self.pos..end].to_vec())
            .collect();
        self.pos = end;
        Ok(Some(block))
    }

    fn fraction(&self) -> f32 {
        match self.audio.frames() {
            0 => 1.0,
            total => self.pos as f32 / total as f32,
        }
    }
}

impl BlockSource for AudioReader {
    fn channel_count(&self) -> usize {
        AudioReader::channel_count(self)
    }

    fn mode(&self) -> Channels {
        AudioReader::mode(self)
    }

    fn next_block(&mut self, frames: usize) -> Result<Option<Vec<Vec<f32>>>> {
        self.read(frames)
    }

    fn fraction(&self) -> f32 {
        self.fraction_read()
    }
}

#[allow(dead_code)]
fn assert_send_sync() {
    fn check<T: Send + Sync>() {}
    check::<Transcriber>();
}

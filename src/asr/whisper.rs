//! Whisper transcription through whisper.cpp (whisper-rs).

use std::cell::Cell;
use std::ffi::{c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use whisper_rs::{
    FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters, WhisperState,
    WhisperSysContext, WhisperSysState,
};

use super::decode::{Audio, AudioReader, Channels, SAMPLE_RATE};
use super::filter::{self, Loudness};
use super::{Language, Segment, TranscribeRequest, Transcript, Word};
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
/// Sound kept around a segment when its timestamps are narrowed to where the sound is (200 ms).
const TRIM_MARGIN: usize = SAMPLE_RATE as usize / 5;
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
#[derive(Clone)]
pub struct Transcriber {
    ctx: Arc<WhisperContext>,
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
            ctx: Arc::new(ctx),
            opts,
            model_path: model_path.to_path_buf(),
            multilingual,
        })
    }

    /// The same loaded model with other options (no reload; the model memory is shared).
    pub fn with_options(&self, opts: TranscriberOptions) -> Self {
        Transcriber {
            opts,
            ..self.clone()
        }
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
        params.set_token_timestamps(true);
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
            let mut tokens: Vec<TimedToken> = Vec::new();
            for t in 0..seg.n_tokens() {
                if let Some(tok) = seg.get_token(t)
                    && tok.token_id() < eot
                {
                    let p = tok.token_probability().clamp(1e-10, 1.0);
                    sum_p += p;
                    sum_lp += p.ln();
                    count += 1;
                    let data = tok.token_data();
                    tokens.push(TimedToken {
                        bytes: tok.to_bytes().map(<[u8]>::to_vec).unwrap_or_default(),
                        start_ms: data.t0.max(0) as u64 * 10,
                        end_ms: data.t1.max(data.t0).max(0) as u64 * 10,
                    });
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
                tokens,
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
        for (start, end, text, avg_prob, avg_logprob, no_speech_prob, tokens) in raw {
            let text = filter::collapse_repeats(&filter::to_simplified(text.trim()));
            if text.is_empty()
                || !filter::keep_scores(avg_logprob, no_speech_prob)
                || loud.is_inaudible(start, end)
                || (filter::is_known_hallucination(&text) && loud.is_quiet(start, end))
            {
                tracing::debug!(%text, avg_logprob, no_speech_prob, "dropping segment");
                continue;
            }
            let (start, end) = loud.trim(start, end, TRIM_MARGIN);
            let words = words_of(&tokens, offset_ms, &text);
            ch.segments.push(Segment {
                start_ms: offset_ms + (start / FRAMES_PER_MS) as u64,
                end_ms: offset_ms + (end / FRAMES_PER_MS) as u64,
                text,
                avg_prob,
                avg_logprob,
                no_speech_prob,
                channel: ch.channel,
                words,
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

/// A decoded token with its times (ms from the start of the buffer Whisper was given).
struct TimedToken {
    bytes: Vec<u8>,
    start_ms: u64,
    end_ms: u64,
}

/// Groups tokens into words: a token starting with a space starts a word; a token that
/// completes CJK characters ends one (Mandarin has no spaces). Byte-level tokens that split a
/// character are joined first. The words are kept only when they spell out `text`, the
/// segment's final (filtered, simplified) text; otherwise none are returned.
fn words_of(tokens: &[TimedToken], offset_ms: u64, text: &str) -> Vec<Word> {
    let mut words: Vec<Word> = Vec::new();
    let mut bytes: Vec<u8> = Vec::new();
    let mut start = 0;
    let mut flush = |bytes: &mut Vec<u8>, start: u64, end: u64| {
        if !bytes.is_empty() {
            words.push(Word {
                start_ms: offset_ms + start,
                end_ms: offset_ms + end.max(start),
                text: filter::to_simplified(&String::from_utf8_lossy(bytes)),
            });
            bytes.clear();
        }
    };
    let mut end = 0;
    for t in tokens {
        if t.bytes.first() == Some(&b' ') && std::str::from_utf8(&bytes).is_ok() {
            flush(&mut bytes, start, end);
        }
        if bytes.is_empty() {
            start = t.start_ms;
        }
        bytes.extend_from_slice(&t.bytes);
        end = t.end_ms;
        if std::str::from_utf8(&bytes).is_ok_and(|s| s.chars().any(|c| c > '\u{2e80}')) {
            flush(&mut bytes, start, end);
        }
    }
    flush(&mut bytes, start, end);
    let spelled: String = words.iter().map(|w| w.text.as_str()).collect();
    if spelled.trim() == text {
        words
    } else {
        Vec::new()
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Instant;

    use super::*;
    use crate::asr::decode::decode_file;
    use crate::asr::testutil::{cer, eval_clip, ffmpeg, reference, transcriber, wer, write_wav};

    fn run(audio: &Audio, language: Language) -> (Transcript, Vec<f32>) {
        let seen = Mutex::new(Vec::new());
        let req = TranscribeRequest {
            language,
            ..Default::default()
        };
        let t = transcriber()
            .transcribe(audio, &req, &|p| seen.lock().unwrap().push(p))
            .unwrap();
        (t, seen.into_inner().unwrap())
    }

    /// User + system CPU time of this process (Linux), for an RTF estimate on a busy machine.
    fn process_cpu_secs() -> f64 {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        let after = stat.rsplit(") ").next().unwrap_or("");
        let f: Vec<&str> = after.split_whitespace().collect();
        let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        (ticks(11) + ticks(12)) / 100.0
    }

    /// Word timestamps exist, spell out their segment's text and run forward in time.
    fn assert_words_spell_segments(t: &Transcript) {
        assert!(t.segments.iter().any(|s| !s.words.is_empty()), "{t:#?}");
        for s in t.segments.iter().filter(|s| !s.words.is_empty()) {
            let spelled: String = s.words.iter().map(|w| w.text.as_str()).collect();
            assert_eq!(spelled.trim(), s.text);
            assert!(s.words.windows(2).all(|w| w[0].start_ms <= w[1].start_ms));
            assert!(s.words.iter().all(|w| w.start_ms <= w.end_ms));
            assert!(s.words.len() > 1, "{s:?}");
        }
    }

    fn assert_progress(seen: &[f32]) {
        assert!(!seen.is_empty());
        assert!(
            seen.windows(2).all(|w| w[0] <= w[1]),
            "not monotonic: {seen:?}"
        );
        assert_eq!(*seen.last().unwrap(), 1.0);
        assert!(seen.iter().all(|p| (0.0..=1.0).contains(p)));
    }

    #[test]
    fn english_jfk_matches_reference() {
        let clip = eval_clip("en/jfk.wav");
        let audio = decode_file(&clip, Channels::Mix).unwrap();
        transcriber(); // load outside the timing
        let start = Instant::now();
        let (t, seen) = run(&audio, Language::Auto);
        let auto_secs = start.elapsed().as_secs_f64();
        let start = Instant::now();
        let cpu0 = process_cpu_secs();
        let (pinned, _) = run(&audio, Language::En);
        let secs = start.elapsed().as_secs_f64();
        let cpu = process_cpu_secs() - cpu0;
        let w = wer(&reference(&clip), &t.text());
        eprintln!(
            "jfk: WER {w:.3}; RTF {:.3} pinned `en` ({secs:.2} s wall, {cpu:.2} CPU-s for 11 s; \
             uncontended estimate {:.3}), {:.3} with language detection; 2 threads\n{t:#?}",
            secs / 11.0,
            cpu / 2.0 / 11.0,
            auto_secs / 11.0,
        );
        assert_eq!(t.language, "en");
        assert_eq!(pinned.text(), t.text());
        assert_eq!(t.duration_ms, 11_000);
        assert!(w <= 0.1, "WER {w} > 0.1: {:?}", t.text());
        assert_progress(&seen);
        assert_words_spell_segments(&t);
        for s in &t.segments {
            assert!(s.start_ms < s.end_ms && s.end_ms <= 11_000, "{s:?}");
            assert!((0.0..=1.0).contains(&s.avg_prob) && s.avg_logprob <= 0.0);
            assert!((0.0..=1.0).contains(&s.no_speech_prob));
            assert_eq!(s.channel, None);
        }

        // Streaming from an Ogg Vorbis file gives the same words.
        let dir = tempfile::tempdir().unwrap();
        let ogg = dir.path().join("jfk.ogg");
        ffmpeg(&[
            "-i",
            clip.to_str().unwrap(),
            "-c:a",
            "libvorbis",
            ogg.to_str().unwrap(),
        ]);
        let mut reader = AudioReader::open(&ogg, Channels::Mix).unwrap();
        let req = TranscribeRequest {
            language: Language::En,
            ..Default::default()
        };
        let streamed = transcriber()
            .transcribe_reader(&mut reader, &req, &|_| {})
            .unwrap();
        let w = wer(&reference(&clip), &streamed.text());
        assert!(w <= 0.1, "streamed WER {w}: {}", streamed.text());
        assert!((streamed.duration_ms as i64 - 11_000).abs() < 100);
    }

    #[test]
    fn mandarin_comes_out_simplified() {
        for name in ["zh/BAC009S0764W0121.wav", "zh/BAC009S0764W0122.wav"] {
            let clip = eval_clip(name);
            let audio = decode_file(&clip, Channels::Mix).unwrap();
            for language in [Language::Zh, Language::Auto] {
                let (t, _) = run(&audio, language);
                let text = t.text();
                let c = cer(&reference(&clip), &text);
                eprintln!("{name} ({language}): CER {c:.3}: {text}");
                assert_eq!(t.language, "zh");
                assert_words_spell_segments(&t);
                assert_eq!(
                    filter::to_simplified(&text),
                    text,
                    "traditional characters left"
                );
                assert!(c <= 0.25, "{name}: CER {c} for {text:?}");
            }
        }
    }

    #[test]
    fn silence_and_faint_noise_yield_no_text() {
        let silence = Audio::from_mono(vec![0.0; 20 * SAMPLE_RATE as usize]);
        let (t, seen) = run(&silence, Language::Auto);
        assert!(t.segments.is_empty(), "{t:?}");
        assert_eq!(t.duration_ms, 20_000);
        assert_progress(&seen);

        // Faint hiss (-60 dBFS) goes through Whisper; nothing may come out of it.
        let mut x: u32 = 12345;
        let hiss: Vec<f32> = (0..20 * SAMPLE_RATE as usize)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x as f32 / u32::MAX as f32 - 0.5) * 0.002
            })
            .collect();
        for language in [Language::En, Language::Zh] {
            let (t, _) = run(&Audio::from_mono(hiss.clone()), language);
            assert!(t.segments.is_empty(), "{language}: {t:?}");
        }
    }

    #[test]
    fn split_channels_are_tagged_and_blocks_join() {
        // Left: JFK; right: a Mandarin clip starting 2 s in. Decoded from a 48 kHz stereo MP3.
        let en = decode_file(&eval_clip("en/jfk.wav"), Channels::Mix).unwrap();
        let zh = decode_file(&eval_clip("zh/BAC009S0764W0121.wav"), Channels::Mix).unwrap();
        let mut right = vec![0.0; 2 * SAMPLE_RATE as usize];
        right.extend_from_slice(zh.channel(0));
        right.resize(en.frames(), 0.0);
        let dir = tempfile::tempdir().unwrap();
        let wav = dir.path().join("call.wav");
        write_wav(&wav, SAMPLE_RATE, &[en.channel(0).to_vec(), right]);
        let mp3 = dir.path().join("call.mp3");
        ffmpeg(&[
            "-i",
            wav.to_str().unwrap(),
            "-ar",
            "48000",
            "-b:a",
            "160k",
            mp3.to_str().unwrap(),
        ]);

        let audio = decode_file(&mp3, Channels::Split).unwrap();
        assert_eq!(audio.channel_count(), 2);
        let (t, seen) = run(&audio, Language::Auto);
        assert_progress(&seen);
        let text_of = |ch: u8| {
            t.segments
                .iter()
                .filter(|s| s.channel == Some(ch))
                .map(|s| s.text.as_str())
                .collect::<String>()
        };
        let (left, right) = (text_of(0), text_of(1));
        eprintln!("left: {left}\nright: {right}");
        assert!(
            wer(&reference(&eval_clip("en/jfk.wav")), &left) <= 0.15,
            "{left}"
        );
        assert!(cer("甚至出现交易几乎停滞的情况", &right) <= 0.3, "{right}");
        assert!(t.segments.iter().all(|s| s.channel.is_some()));
        assert!(
            t.segments
                .windows(2)
                .all(|w| w[0].start_ms <= w[1].start_ms)
        );
        let first_right = t.segments.iter().find(|s| s.channel == Some(1)).unwrap();
        assert!(first_right.start_ms >= 1_500, "{first_right:?}");

        // Small blocks: the boundary handling re-decodes a cut segment instead of losing or
        // doubling words.
        let small = transcriber().with_options(TranscriberOptions {
            threads: 2,
            beam_size: 1,
            block_secs: 30,
        });
        // The first turns of a labelled call (about 48 s) in 30 s blocks: the segment cut by
        // the block boundary must be decoded once, not lost or doubled.
        let call = crate::asr::testutil::shared_dir().join("eval/calls/en-01");
        let tsv = std::fs::read_to_string(call.join("turns.tsv")).expect("eval call en-01");
        let mut want = Vec::new();
        let mut cut_ms = 0;
        for line in tsv.lines().skip(1) {
            let f: Vec<&str> = line.split('\t').collect();
            let end: usize = f[3].parse().unwrap();
            if end > 48_000 {
                break;
            }
            want.push(f[4].to_string());
            cut_ms = end;
        }
        let full = decode_file(&call.join("call.wav"), Channels::Mix).unwrap();
        let head = full.channel(0)[..(cut_ms + 200) * FRAMES_PER_MS].to_vec();
        let req = TranscribeRequest {
            language: Language::En,
            ..Default::default()
        };
        let t = small
            .transcribe(&Audio::from_mono(head), &req, &|_| {})
            .unwrap();
        let w = wer(&want.join(" "), &t.text());
        eprintln!(
            "en-01 first {cut_ms} ms in 30 s blocks: WER {w:.3}\n{:#?}",
            t.segments
        );
        assert!(w <= 0.2, "WER {w}: {}", t.text());
        assert!(
            t.segments
                .windows(2)
                .all(|p| p[0].start_ms <= p[1].start_ms)
        );
    }

    #[test]
    fn missing_model_says_how_to_fetch() {
        let e = Transcriber::load(
            Path::new("/nonexistent/whisper.bin"),
            TranscriberOptions::default(),
        )
        .unwrap_err();
        assert!(matches!(e, Error::Unavailable(_)), "{e:?}");
        assert!(e.to_string().contains("dealdesk models fetch"), "{e}");

        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.bin");
        std::fs::write(&junk, b"not a model").unwrap();
        let e = Transcriber::load(&junk, TranscriberOptions::default()).unwrap_err();
        assert!(e.to_string().contains("dealdesk models fetch"), "{e}");
    }
}

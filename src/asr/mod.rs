//! Speech recognition: decode call recordings and transcribe them with Whisper on the CPU.
//!
//! # Pipeline
//!
//! 1. [`decode`]: symphonia probes the container from the bytes (WAV, MP3, M4A/AAC, Ogg Vorbis,
//!    FLAC, Matroska/WebM), decodes the first audio track, mixes it to mono or keeps channels
//!    apart ([`Channels`]), and rubato's windowed-sinc resampler converts it to 16 kHz. Bad
//!    input is an [`Error::InvalidInput`](crate::Error::InvalidInput) that names the problem
//!    (unknown format, corrupt packets, truncated file), never a panic. Before symphonia sees
//!    a file, `mp4`, `mkv`, `riff` and `flac` check what symphonia would trust without
//!    checking: declared table, element, laced-frame, Vorbis-packet, WAV `INFO` value and FLAC
//!    comment and picture sizes it allocates by (a failed allocation aborts the process) and
//!    a FLAC setup it loops on forever; before the Vorbis decoder opens, `vorbis` bounds the
//!    codebook tables its setup would make it build. The fuzzer found the first kinds; reading
//!    symphonia beside its finds found the rest.
//! 2. [`Transcriber`]: one whisper.cpp model (ggml file) is loaded once and shared; every
//!    transcription gets its own decoder state, so several jobs can run at once. Audio is fed
//!    to Whisper in blocks of a few minutes; a segment cut by a block boundary is re-decoded
//!    at the start of the next block. With [`AudioReader`] the file is decoded block by block
//!    as well, so memory stays bounded (about two blocks per channel) for hour-long calls.
//! 3. Post-processing ([`filter`]): drop segments Whisper itself marks as non-speech, drop the
//!    well-known hallucinated phrases ("Thanks for watching", "字幕由Amara.org社群提供") when
//!    they sit on near-silence, collapse repetition loops, and convert Mandarin output to
//!    simplified characters with OpenCC's `t2s` rules (on top of the
//!    `以下是普通话的句子。` prompt, which already steers Whisper to simplified script).
//!
//! # Example
//!
//! ```no_run
//! use dealdesk::asr::{Channels, Language, TranscribeRequest, Transcriber, TranscriberOptions};
//! # fn main() -> dealdesk::Result<()> {
//! let model = Transcriber::load("whisper-base-q8_0.bin".as_ref(), TranscriberOptions::default())?;
//! let audio = dealdesk::asr::decode_file("call.mp3".as_ref(), Channels::Split)?;
//! let req = TranscribeRequest { language: Language::Auto, ..Default::default() };
//! let transcript = model.transcribe(&audio, &req, &|p| eprintln!("{:.0}%", p * 100.0))?;
//! for s in &transcript.segments {
//!     println!("[{}-{} ms, ch {:?}] {}", s.start_ms, s.end_ms, s.channel, s.text);
//! }
//! # Ok(()) }
//! ```

pub mod decode;
pub mod filter;
mod flac;
mod mkv;
mod mp4;
mod resample;
mod riff;
#[cfg(test)]
pub(crate) mod testutil;
mod vorbis;
mod whisper;

use serde::{Deserialize, Serialize};

pub use decode::{
    Audio, AudioReader, Channels, SAMPLE_RATE, SUPPORTED_FORMATS, SourceInfo, decode_bytes,
    decode_file,
};
pub use whisper::{DEFAULT_MODEL_FILE, Transcriber, TranscriberOptions};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::models::{Manifest, model_path};

/// Loads the Whisper model `[asr]` names from the model cache.
pub fn load_configured(config: &Config, manifest: &Manifest) -> Result<Transcriber> {
    let path = model_path(config, manifest.get(&config.asr.model)?);
    Transcriber::load(
        &path,
        TranscriberOptions {
            threads: config.asr.threads,
            beam_size: config.asr.beam_size,
            block_secs: config.asr.block_secs,
        },
    )
}

/// The spoken language of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// Detect per channel, choosing between English and Mandarin (the languages dealdesk
    /// supports end to end).
    #[default]
    Auto,
    /// English.
    En,
    /// Mandarin Chinese, written in simplified characters.
    Zh,
}

impl Language {
    /// The Whisper language code, or `None` for auto-detection.
    pub fn code(self) -> Option<&'static str> {
        match self {
            Language::Auto => None,
            Language::En => Some("en"),
            Language::Zh => Some("zh"),
        }
    }
}

impl std::str::FromStr for Language {
    type Err = Error;

    fn from_str(s: &str) -> crate::Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" | "" => Ok(Language::Auto),
            "en" | "english" => Ok(Language::En),
            "zh" | "cmn" | "mandarin" | "chinese" => Ok(Language::Zh),
            other => Err(Error::InvalidInput(format!(
                "unsupported language {other:?}: use `auto`, `en` or `zh`"
            ))),
        }
    }
}

impl std::fmt::Display for Language {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code().unwrap_or("auto"))
    }
}

/// What to transcribe and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TranscribeRequest {
    /// The spoken language, or [`Language::Auto`].
    pub language: Language,
    /// Extra vocabulary to bias recognition towards (product and company names), passed to
    /// Whisper as part of its prompt. Keep it short (a sentence or a list of names).
    pub vocabulary: Option<String>,
    /// Decoding threads; `None` uses [`TranscriberOptions::threads`].
    pub threads: Option<usize>,
}

impl Default for TranscribeRequest {
    fn default() -> Self {
        TranscribeRequest {
            language: Language::Auto,
            vocabulary: None,
            threads: None,
        }
    }
}

/// A transcription.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transcript {
    /// The language transcribed: `en` or `zh` (pinned or detected; with split channels, the
    /// language of the channel that produced the most text).
    pub language: String,
    /// The audio duration.
    pub duration_ms: u64,
    /// Segments in time order (channels interleaved by start time).
    pub segments: Vec<Segment>,
}

impl Transcript {
    /// All segment texts joined (with a space for English, nothing for Mandarin).
    pub fn text(&self) -> String {
        join_texts(
            &self.language,
            self.segments.iter().map(|s| s.text.as_str()),
        )
    }
}

/// Texts of consecutive segments joined: a space between them for English, nothing for
/// Mandarin.
pub fn join_texts<'a>(language: &str, texts: impl Iterator<Item = &'a str>) -> String {
    let sep = if language == "zh" { "" } else { " " };
    texts.collect::<Vec<_>>().join(sep)
}

/// One stretch of recognized speech.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Segment {
    /// Start, in milliseconds from the beginning of the audio.
    pub start_ms: u64,
    /// End, in milliseconds from the beginning of the audio.
    pub end_ms: u64,
    /// The text (simplified characters for Mandarin).
    pub text: String,
    /// Mean probability of the segment's text tokens, 0..=1.
    pub avg_prob: f32,
    /// Mean natural-log probability of the segment's text tokens (≤ 0; below -1 is doubtful).
    pub avg_logprob: f32,
    /// Whisper's probability that the window holding this segment has no speech.
    pub no_speech_prob: f32,
    /// The source channel (0-based) in [`Channels::Split`] mode, `None` when mixed.
    pub channel: Option<u8>,
    /// Word timestamps (Whisper's token times grouped into words; a Mandarin "word" is a
    /// character or a few). Empty when they do not spell out the segment's final text exactly.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub words: Vec<Word>,
}

/// A timed word. Its text keeps its leading space (English), so the words of a segment
/// concatenate to the segment's text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Word {
    pub start_ms: u64,
    pub end_ms: u64,
    pub text: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_parses_and_displays() {
        assert_eq!("auto".parse::<Language>().unwrap(), Language::Auto);
        assert_eq!("EN".parse::<Language>().unwrap(), Language::En);
        assert_eq!("zh".parse::<Language>().unwrap(), Language::Zh);
        assert!("fr".parse::<Language>().is_err());
        assert_eq!(Language::Zh.to_string(), "zh");
    }

    #[test]
    fn transcript_serializes() {
        let t = Transcript {
            language: "zh".into(),
            duration_ms: 4200,
            segments: vec![Segment {
                start_ms: 0,
                end_ms: 4000,
                text: "你好".into(),
                avg_prob: 0.9,
                avg_logprob: -0.1,
                no_speech_prob: 0.01,
                channel: Some(1),
                words: vec![],
            }],
        };
        let v = serde_json::to_value(&t).unwrap();
        assert_eq!(v["segments"][0]["channel"], 1);
        assert_eq!(v["segments"][0]["start_ms"], 0);
        assert_eq!(t.text(), "你好");
        let req: TranscribeRequest = serde_json::from_str(r#"{"language":"zh"}"#).unwrap();
        assert_eq!(req.language, Language::Zh);
    }
}

//! Helpers for the asr tests: the shared evaluation clips, generated audio and ffmpeg.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{DEFAULT_MODEL_FILE, SAMPLE_RATE, Transcriber, TranscriberOptions};

/// The shared evaluation data: `$DEALDESK_SHARED`, else `<crate>/../shared`.
pub(crate) fn shared_dir() -> PathBuf {
    std::env::var_os("DEALDESK_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"))
}

/// A clip under `shared/eval/audio/`, which must exist.
pub(crate) fn eval_clip(rel: &str) -> PathBuf {
    let p = shared_dir().join("eval/audio").join(rel);
    assert!(
        p.is_file(),
        "test clip {} is missing: check out the shared data beside the crate or set DEALDESK_SHARED",
        p.display()
    );
    p
}

/// The reference transcript next to a clip.
pub(crate) fn reference(clip: &Path) -> String {
    std::fs::read_to_string(clip.with_extension("txt"))
        .expect("reference transcript next to the clip")
        .trim()
        .to_string()
}

/// Runs ffmpeg (quietly, overwriting) and panics with an install hint if it is missing.
pub(crate) fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("these tests need ffmpeg ({e}): install it with `apt-get install -y ffmpeg`")
        });
    assert!(
        out.status.success(),
        "ffmpeg {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes 16-bit PCM WAV from planar channels.
pub(crate) fn write_wav(path: &Path, rate: u32, channels: &[Vec<f32>]) {
    let nch = channels.len() as u16;
    let frames = channels[0].len();
    let data_len = (frames * channels.len() * 2) as u32;
    let mut b = Vec::with_capacity(44 + data_len as usize);
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data_len).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&nch.to_le_bytes());
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate * u32::from(nch) * 2).to_le_bytes());
    b.extend_from_slice(&(nch * 2).to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data_len.to_le_bytes());
    for i in 0..frames {
        for c in channels {
            let v = (c[i].clamp(-1.0, 1.0) * 32767.0) as i16;
            b.extend_from_slice(&v.to_le_bytes());
        }
    }
    std::fs::write(path, b).unwrap();
}

/// A sine tone.
pub(crate) fn sine(freq: f32, rate: u32, secs: f32, amp: f32) -> Vec<f32> {
    let n = (rate as f32 * secs) as usize;
    (0..n)
        .map(|i| amp * (2.0 * std::f32::consts::PI * freq * i as f32 / rate as f32).sin())
        .collect()
}

/// Amplitude of one frequency in a 16 kHz signal (single-bin DFT).
pub(crate) fn tone_amplitude(x: &[f32], freq: f32) -> f32 {
    let (mut re, mut im) = (0.0f64, 0.0f64);
    for (i, &v) in x.iter().enumerate() {
        let ph = 2.0 * std::f64::consts::PI * f64::from(freq) * i as f64 / f64::from(SAMPLE_RATE);
        re += f64::from(v) * ph.cos();
        im += f64::from(v) * ph.sin();
    }
    (2.0 * (re * re + im * im).sqrt() / x.len().max(1) as f64) as f32
}

/// The Whisper model for tests: `$DEALDESK_TEST_WHISPER`, else the default model cache. A
/// missing model fails the test (no silent skip).
pub(crate) fn model_path() -> PathBuf {
    let p = std::env::var_os("DEALDESK_TEST_WHISPER")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            crate::config::ModelsConfig::default()
                .dir
                .join(DEFAULT_MODEL_FILE)
        });
    assert!(
        p.is_file(),
        "whisper model not found at {}: run `dealdesk models fetch` (or set DEALDESK_TEST_WHISPER \
         to a whisper.cpp ggml model)",
        p.display()
    );
    p
}

/// The test model, loaded once per test binary.
pub(crate) fn transcriber() -> &'static Transcriber {
    static T: std::sync::OnceLock<Transcriber> = std::sync::OnceLock::new();
    T.get_or_init(|| {
        let opts = TranscriberOptions {
            threads: 2,
            ..Default::default()
        };
        Transcriber::load(&model_path(), opts).expect("loading the test whisper model")
    })
}

/// Word error rate after lowercasing and removing punctuation.
pub(crate) fn wer(reference: &str, hypothesis: &str) -> f64 {
    let norm = |s: &str| -> Vec<String> {
        s.to_lowercase()
            .chars()
            .map(|c| {
                if c.is_alphanumeric() || c == '\'' {
                    c
                } else {
                    ' '
                }
            })
            .collect::<String>()
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    let (r, h) = (norm(reference), norm(hypothesis));
    edit_distance(&r, &h) as f64 / r.len().max(1) as f64
}

/// Character error rate after removing punctuation and spaces.
pub(crate) fn cer(reference: &str, hypothesis: &str) -> f64 {
    let norm = |s: &str| -> Vec<char> { s.chars().filter(|c| c.is_alphanumeric()).collect() };
    let (r, h) = (norm(reference), norm(hypothesis));
    edit_distance(&r, &h) as f64 / r.len().max(1) as f64
}

fn edit_distance<T: PartialEq>(a: &[T], b: &[T]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, x) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, y) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(x != y))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

//! Post-processing of Whisper output: script conversion and hallucination guards.
//!
//! Whisper invents text on silence and noise ("Thanks for watching!", subtitle credits learnt
//! from video captions) and can get stuck repeating a phrase (whisper.cpp #1724). The guards
//! here are deliberately conservative, so that real speech is never dropped for its wording:
//!
//! * a segment whose audio is digital silence is dropped whatever it says;
//! * a segment whose text is a known caption-style hallucination is dropped only when the
//!   audio under it is near-silent (quiet relative to the loud parts of the recording);
//! * a phrase repeated many times in a row inside a segment is kept once, and consecutive
//!   segments with the same text are merged.
//!
//! Segments that Whisper itself scores as non-speech (no-speech probability above 0.6 with a
//! mean log-probability below -1) never reach this module: whisper.cpp drops them, and
//! [`keep_scores`] double-checks the same rule.

use std::sync::OnceLock;

use ferrous_opencc::OpenCC;
use ferrous_opencc::config::BuiltinConfig;

use super::Segment;

/// Whisper's no-speech threshold (also whisper.cpp's default `no_speech_thold`).
pub const NO_SPEECH_THRESHOLD: f32 = 0.6;
/// Mean log-probability below which a segment is a doubtful decode (whisper.cpp's
/// `logprob_thold`, the value screenpipe uses).
pub const LOGPROB_THRESHOLD: f32 = -1.0;
/// Mean log-probability below which a segment is dropped on its own, whatever the no-speech
/// score: at this level the text is almost always invented.
pub const HOPELESS_LOGPROB: f32 = -2.0;

/// Frame RMS below which audio counts as digital silence (-80 dBFS).
const DIGITAL_SILENCE_RMS: f32 = 1e-4;
/// Frame RMS below which audio is always near-silent (-50 dBFS).
const QUIET_RMS: f32 = 0.003;
/// Peak frame RMS below which nothing under a segment can be speech (-55 dBFS): any text there
/// is invented.
const INAUDIBLE_RMS: f32 = 0.0018;
/// Near-silence relative to the loud parts of the recording (-20 dB).
const RELATIVE_QUIET: f32 = 0.1;
/// RMS frame length: 50 ms at 16 kHz.
const FRAME: usize = 800;

/// Hallucinations learnt from captions, normalized with [`normalize`] (lowercase, no spaces or
/// punctuation, simplified script): a segment matches when it is exactly one of these.
const HALLUCINATIONS_EXACT: &[&str] = &[
    "thankyou",
    "thanks",
    "thankyouverymuch",
    "you",
    "bye",
    "byebye",
    "seeyounexttime",
    "seeyouinthenextvideo",
    "谢谢",
    "谢谢大家",
    "请订阅",
    "订阅我的频道",
];

/// Caption credits and sign-offs that match anywhere inside a segment.
const HALLUCINATIONS_CONTAINED: &[&str] = &[
    "thanksforwatching",
    "thankyouforwatching",
    "pleasesubscribe",
    "likeandsubscribe",
    "subtitlesby",
    "amaraorg",
    "字幕由",
    "明镜与点点栏目",
    "点赞订阅转发打赏",
    "字幕志愿者",
    "优优独播剧场",
    "谢谢观看",
    "感谢观看",
    "小编字幕",
    // Echoes of the Mandarin prompt (以下是普通话的句子。) on noise.
    "是普通话的句子",
    "以下是普通话",
];

/// The OpenCC traditional-to-simplified converter, built once.
fn t2s() -> Option<&'static OpenCC> {
    static T2S: OnceLock<Option<OpenCC>> = OnceLock::new();
    T2S.get_or_init(|| match OpenCC::from_config(BuiltinConfig::T2s) {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::error!(error = %e, "OpenCC t2s failed to load; Mandarin stays unconverted");
            None
        }
    })
    .as_ref()
}

/// Converts traditional Chinese characters to simplified with OpenCC's `t2s` phrase and
/// character tables (deterministic; other text passes through unchanged).
pub fn to_simplified(text: &str) -> String {
    match t2s() {
        Some(c) if text.chars().any(is_cjk) => c.convert(text),
        _ => text.to_string(),
    }
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F)
}

/// Lowercase, simplified, letters and digits only (CJK kept).
pub fn normalize(text: &str) -> String {
    to_simplified(text)
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Whether `text` is one of the phrases Whisper is known to invent on silence.
pub fn is_known_hallucination(text: &str) -> bool {
    let n = normalize(text);
    if n.is_empty() {
        return true;
    }
    HALLUCINATIONS_EXACT.contains(&n.as_str())
        || HALLUCINATIONS_CONTAINED.iter().any(|h| n.contains(h))
}

/// Whether Whisper's own scores make the segment worth keeping.
pub fn keep_scores(avg_logprob: f32, no_speech_prob: f32) -> bool {
    if avg_logprob < HOPELESS_LOGPROB {
        return false;
    }
    !(no_speech_prob > NO_SPEECH_THRESHOLD && avg_logprob < LOGPROB_THRESHOLD)
}

/// Collapses a phrase repeated many times in a row (a decoding loop) to one occurrence.
///
/// Words are compared case- and punctuation-insensitively; text with CJK characters is compared
/// character by character. A run counts as a loop when it repeats at least 4 times and spans at
/// least 10 units, so ordinary emphasis ("no, no, no") survives.
pub fn collapse_repeats(text: &str) -> String {
    let cjk = text.chars().any(is_cjk);
    let units: Vec<String> = if cjk {
        text.chars()
            .filter(|c| !c.is_whitespace())
            .map(String::from)
            .collect()
    } else {
        text.split_whitespace().map(str::to_string).collect()
    };
    let keys: Vec<String> = units
        .iter()
        .map(|u| {
            let k: String = u
                .chars()
                .filter(|c| c.is_alphanumeric())
                .flat_map(char::to_lowercase)
                .collect();
            if k.is_empty() { u.clone() } else { k }
        })
        .collect();
    const MIN_REPEATS: usize = 4;
    const MIN_SPAN: usize = 10;
    const MAX_PERIOD: usize = 16;
    let mut out: Vec<&str> = Vec::with_capacity(units.len());
    let mut changed = false;
    let mut i = 0;
    while i < units.len() {
        let mut skipped = false;
        for p in 1..=MAX_PERIOD.min((units.len() - i) / MIN_REPEATS) {
            let mut r = 1;
            while i + (r + 1) * p <= units.len()
                && keys[i + r * p..i + (r + 1) * p] == keys[i..i + p]
            {
                r += 1;
            }
            if r >= MIN_REPEATS && r * p >= MIN_SPAN {
                out.extend(units[i..i + p].iter().map(String::as_str));
                i += r * p;
                skipped = true;
                changed = true;
                break;
            }
        }
        if !skipped {
            out.push(&units[i]);
            i += 1;
        }
    }
    if !changed {
        return text.trim().to_string();
    }
    out.join(if cjk { "" } else { " " })
}

/// Loudness profile of a block of audio, for near-silence checks.
pub(crate) struct Loudness<'a> {
    samples: &'a [f32],
    /// RMS of the loud parts (95th percentile of 50 ms frames).
    loud: f32,
}

impl<'a> Loudness<'a> {
    pub(crate) fn new(samples: &'a [f32]) -> Self {
        let mut frames: Vec<f32> = samples.chunks(FRAME).map(rms).collect();
        let loud = if frames.is_empty() {
            0.0
        } else {
            let k = (frames.len() * 95 / 100).min(frames.len() - 1);
            *frames.select_nth_unstable_by(k, |a, b| a.total_cmp(b)).1
        };
        Loudness { samples, loud }
    }

    /// The loudest 50 ms frame RMS between two sample offsets.
    pub(crate) fn peak_rms(&self, from: usize, to: usize) -> f32 {
        let to = to.min(self.samples.len());
        let from = from.min(to);
        self.samples[from..to]
            .chunks(FRAME)
            .map(rms)
            .fold(0.0, f32::max)
    }

    /// Whether the loudest part of the stretch is too quiet to be speech.
    pub(crate) fn is_inaudible(&self, from: usize, to: usize) -> bool {
        self.peak_rms(from, to) < INAUDIBLE_RMS
    }

    /// Narrows `[from, to)` to where there is sound, keeping `margin` samples either side: a
    /// segment's timestamps from Whisper often include the silence before it.
    pub(crate) fn trim(&self, from: usize, to: usize, margin: usize) -> (usize, usize) {
        let to = to.min(self.samples.len());
        let from = from.min(to);
        let threshold = QUIET_RMS.max(RELATIVE_QUIET * self.loud);
        let frames: Vec<f32> = self.samples[from..to].chunks(FRAME).map(rms).collect();
        let Some(first) = frames.iter().position(|&r| r >= threshold) else {
            return (from, to);
        };
        let last = frames
            .iter()
            .rposition(|&r| r >= threshold)
            .unwrap_or(first);
        let start = (from + first * FRAME).saturating_sub(margin).max(from);
        let end = (from + (last + 1) * FRAME + margin).min(to);
        (start, end.max(start + 1).min(to))
    }

    /// Whether the stretch is near-silent: quiet in absolute terms or relative to the loud
    /// parts of the block.
    pub(crate) fn is_quiet(&self, from: usize, to: usize) -> bool {
        let peak = self.peak_rms(from, to);
        peak < QUIET_RMS || peak < RELATIVE_QUIET * self.loud
    }

    /// The sample offset of the first 50 ms frame that is not near-silent (0 if none is).
    pub(crate) fn first_sound(&self) -> usize {
        let threshold = QUIET_RMS.max(RELATIVE_QUIET * self.loud);
        self.samples
            .chunks(FRAME)
            .position(|f| rms(f) >= threshold)
            .map_or(0, |i| i * FRAME)
    }

    /// Whether the block has anything louder than digital silence at all.
    pub(crate) fn has_signal(&self) -> bool {
        self.loud >= DIGITAL_SILENCE_RMS || self.peak_rms(0, self.samples.len()) >= QUIET_RMS
    }
}

fn rms(x: &[f32]) -> f32 {
    if x.is_empty() {
        return 0.0;
    }
    (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).sqrt()
}

/// Merges consecutive segments of the same channel whose text is identical (a repetition loop
/// spread over segments), keeping the first and extending its end.
pub fn merge_repeated_segments(segments: Vec<Segment>) -> Vec<Segment> {
    let mut out: Vec<Segment> = Vec::with_capacity(segments.len());
    for s in segments {
        if let Some(prev) = out.iter_mut().rev().find(|p| p.channel == s.channel)
            && normalize(&prev.text) == normalize(&s.text)
            && s.start_ms <= prev.end_ms + 2_000
        {
            prev.end_ms = prev.end_ms.max(s.end_ms);
            continue;
        }
        out.push(s);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simplified_conversion() {
        assert_eq!(
            to_simplified("一二線城市雖然也處於調整中"),
            "一二线城市虽然也处于调整中"
        );
        assert_eq!(
            to_simplified("甚至出現交易幾乎停滯的情況"),
            "甚至出现交易几乎停滞的情况"
        );
        assert_eq!(to_simplified("Hello, world."), "Hello, world.");
    }

    #[test]
    fn known_hallucinations() {
        assert!(is_known_hallucination(" Thanks for watching!"));
        assert!(is_known_hallucination("字幕由 Amara.org 社群提供"));
        assert!(is_known_hallucination("字幕由Amara.org社群提供"));
        assert!(is_known_hallucination(
            "請不吝點贊 訂閱 轉發 打賞支持明鏡與點點欄目"
        ));
        assert!(is_known_hallucination("..."));
        assert!(!is_known_hallucination(
            "Thanks for the quote, we will review it."
        ));
        assert!(!is_known_hallucination("我们下周签合同"));
        assert!(!is_known_hallucination("谢谢大家今天来开会"));
        assert!(is_known_hallucination("Thank you."));
    }

    #[test]
    fn repeats_collapse_but_emphasis_survives() {
        let loop_en = "We can ship in May. ".to_string() + &"I think so. ".repeat(8);
        assert_eq!(
            collapse_repeats(&loop_en),
            "We can ship in May. I think so."
        );
        assert_eq!(
            collapse_repeats("No, no, no, that is wrong."),
            "No, no, no, that is wrong."
        );
        let loop_zh = format!("价格可以{}", "再谈".repeat(10));
        assert_eq!(collapse_repeats(&loop_zh), "价格可以再谈");
        assert_eq!(collapse_repeats("哈哈哈，好的"), "哈哈哈，好的");
    }

    #[test]
    fn score_rule() {
        assert!(keep_scores(-0.3, 0.9));
        assert!(keep_scores(-1.5, 0.1));
        assert!(!keep_scores(-1.5, 0.9));
        assert!(!keep_scores(-2.5, 0.0));
    }

    #[test]
    fn loudness() {
        let mut x = vec![0.0f32; 16_000];
        for (i, v) in x[8_000..].iter_mut().enumerate() {
            *v = 0.3 * (i as f32 * 0.1).sin();
        }
        let l = Loudness::new(&x);
        assert!(l.is_inaudible(0, 7_000));
        assert!(l.is_quiet(0, 7_000));
        assert!(!l.is_quiet(7_000, 16_000));
        assert!(l.has_signal());
        assert!(l.is_inaudible(0, 7_000));
        assert!(!l.is_inaudible(0, 16_000));
        assert_eq!(l.trim(0, 16_000, 1_600), (6_400, 16_000));
        assert!(!Loudness::new(&[0.0; 32_000]).has_signal());
    }

    #[test]
    fn merges_identical_neighbours() {
        let seg = |a, b, t: &str| Segment {
            start_ms: a,
            end_ms: b,
            text: t.into(),
            avg_prob: 0.9,
            avg_logprob: -0.1,
            no_speech_prob: 0.0,
            channel: None,
            words: vec![],
        };
        let out = merge_repeated_segments(vec![
            seg(0, 1000, "Hello."),
            seg(1000, 2000, "hello"),
            seg(2500, 3000, "Next."),
        ]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].end_ms, 2000);
    }
}

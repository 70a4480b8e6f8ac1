//! Speaker turns onto transcript segments: each segment gets the speaker who talks most during
//! it; with word timestamps, a segment is split where the speaker changes inside it.

use serde::Serialize;

use super::SpeakerTurn;

pub use crate::asr::Word;

/// A transcript segment to attribute.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimedSegment {
    pub start_ms: u64,
    pub end_ms: u64,
    pub text: String,
    /// Word timestamps, when the recogniser produced them (else empty).
    pub words: Vec<Word>,
}

impl From<&crate::asr::Segment> for TimedSegment {
    fn from(s: &crate::asr::Segment) -> Self {
        TimedSegment {
            start_ms: s.start_ms,
            end_ms: s.end_ms,
            text: s.text.clone(),
            words: s.words.clone(),
        }
    }
}

/// A segment with its speaker (`None` when no turn is near it).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpeakerSegment {
    pub start_ms: u64,
    pub end_ms: u64,
    pub text: String,
    pub speaker: Option<usize>,
}

/// How far (ms) a span may lie from every turn and still take the nearest one's speaker.
const MAX_DISTANCE_MS: u64 = 1000;

/// The speaker who covers most of `[start, end)`; if nobody does, the nearest turn's speaker
/// within [`MAX_DISTANCE_MS`].
fn speaker_of(turns: &[SpeakerTurn], start: u64, end: u64) -> Option<usize> {
    let mut talk: Vec<(usize, u64)> = Vec::new();
    for t in turns {
        let o = end.min(t.end_ms).saturating_sub(start.max(t.start_ms));
        if o > 0 {
            match talk.iter_mut().find(|(s, _)| *s == t.speaker) {
                Some((_, d)) => *d += o,
                None => talk.push((t.speaker, o)),
            }
        }
    }
    if let Some((s, _)) = talk.iter().max_by_key(|(s, d)| (*d, std::cmp::Reverse(*s))) {
        return Some(*s);
    }
    turns
        .iter()
        .map(|t| {
            let gap = if t.end_ms <= start {
                start - t.end_ms
            } else {
                t.start_ms.saturating_sub(end)
            };
            (gap, t.speaker)
        })
        .filter(|(gap, _)| *gap <= MAX_DISTANCE_MS)
        .min()
        .map(|(_, s)| s)
}

/// Attributes `segments` to the speakers of `turns` (see the module docs). Segments keep their
/// order; a split segment becomes several, each with the words of one speaker.
pub fn assign(segments: &[TimedSegment], turns: &[SpeakerTurn]) -> Vec<SpeakerSegment> {
    let mut out = Vec::with_capacity(segments.len());
    for seg in segments {
        if seg.words.is_empty() {
            out.push(SpeakerSegment {
                start_ms: seg.start_ms,
                end_ms: seg.end_ms,
                text: seg.text.clone(),
                speaker: speaker_of(turns, seg.start_ms, seg.end_ms),
            });
            continue;
        }
        let mut current: Option<SpeakerSegment> = None;
        for w in &seg.words {
            let speaker = speaker_of(turns, w.start_ms, w.end_ms.max(w.start_ms + 1));
            match &mut current {
                Some(c) if c.speaker == speaker => {
                    c.end_ms = w.end_ms;
                    c.text.push_str(&w.text);
                }
                _ => {
                    out.extend(current.take());
                    current = Some(SpeakerSegment {
                        start_ms: w.start_ms,
                        end_ms: w.end_ms,
                        text: w.text.clone(),
                        speaker,
                    });
                }
            }
        }
        out.extend(current);
    }
    for s in &mut out {
        s.text = s.text.trim().to_string();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(start_ms: u64, end_ms: u64, speaker: usize) -> SpeakerTurn {
        SpeakerTurn {
            start_ms,
            end_ms,
            speaker,
        }
    }

    fn word(start_ms: u64, end_ms: u64, text: &str) -> Word {
        Word {
            start_ms,
            end_ms,
            text: text.into(),
        }
    }

    #[test]
    fn splits_a_segment_where_the_speaker_changes() {
        let turns = [turn(0, 2000, 0), turn(2300, 5000, 1)];
        let seg = TimedSegment {
            start_ms: 0,
            end_ms: 5000,
            text: " Thanks, that works. Great, see you Monday.".into(),
            words: vec![
                word(0, 600, " Thanks,"),
                word(600, 900, " that"),
                word(900, 1900, " works."),
                word(2300, 2900, " Great,"),
                word(2900, 3400, " see"),
                word(3400, 3800, " you"),
                word(3800, 4900, " Monday."),
            ],
        };
        let out = assign(std::slice::from_ref(&seg), &turns);
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(
            (out[0].text.as_str(), out[0].speaker, out[0].end_ms),
            ("Thanks, that works.", Some(0), 1900)
        );
        assert_eq!(
            (out[1].text.as_str(), out[1].speaker, out[1].start_ms),
            ("Great, see you Monday.", Some(1), 2300)
        );
    }

    #[test]
    fn without_words_a_segment_takes_the_majority_speaker() {
        let turns = [turn(0, 1000, 0), turn(1000, 4000, 1), turn(9000, 9500, 0)];
        let seg = |a, b| TimedSegment {
            start_ms: a,
            end_ms: b,
            text: "x".into(),
            words: vec![],
        };
        let out = assign(
            &[seg(0, 4000), seg(4200, 4600), seg(20_000, 21_000)],
            &turns,
        );
        assert_eq!(out[0].speaker, Some(1));
        assert_eq!(out[1].speaker, Some(1), "nearest turn within a second");
        assert_eq!(out[2].speaker, None, "no turn near it");
    }
}

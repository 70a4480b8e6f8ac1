//! Speaker turns onto transcript segments: each segment gets the speaker who talks most during
//! it; with word timestamps, a segment is split where the speaker changes inside it — after
//! absorbing speaker runs too short to be real and moving the change to a nearby clause end.

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

/// A speaker run inside a segment shorter than this (ms) is taken for timing noise (word
/// timestamps and turn edges are each off by a few hundred ms) and joins its longer neighbour.
const MIN_RUN_MS: u64 = 350;
/// How many words a speaker change may move to land after a clause or sentence end.
const MAX_SNAP_WORDS: usize = 3;
/// How far in time (ms) a speaker change may move.
const MAX_SNAP_MS: u64 = 1000;

/// Runs of equal speakers as (first word, last word) index pairs.
fn runs(speakers: &[Option<usize>]) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    for (i, s) in speakers.iter().enumerate() {
        match out.last_mut() {
            Some((a, b)) if speakers[*a] == *s => *b = i,
            _ => out.push((i, i)),
        }
    }
    out
}

/// Relabels runs shorter than [`MIN_RUN_MS`] with the speaker of their longer neighbour,
/// shortest first.
fn absorb_short_runs(words: &[Word], speakers: &mut [Option<usize>]) {
    loop {
        let r = runs(speakers);
        if r.len() < 2 {
            return;
        }
        let len = |&(a, b): &(usize, usize)| words[b].end_ms.saturating_sub(words[a].start_ms);
        let Some((i, _)) = r
            .iter()
            .enumerate()
            .filter(|(_, run)| len(run) < MIN_RUN_MS)
            .min_by_key(|(_, run)| len(run))
        else {
            return;
        };
        let neighbour = match (i.checked_sub(1).map(|j| r[j]), r.get(i + 1)) {
            (Some(p), Some(n)) if len(n) > len(&p) => *n,
            (Some(p), _) => p,
            (None, Some(n)) => *n,
            (None, None) => return,
        };
        let speaker = speakers[neighbour.0];
        speakers[r[i].0..=r[i].1].fill(speaker);
    }
}

/// Whether a word ends a clause or sentence.
fn ends_clause(w: &Word) -> bool {
    w.text
        .trim_end()
        .ends_with(['.', '?', '!', ',', ';', '。', '？', '！', '，', '；', '、'])
}

/// Moves each speaker change to the nearest clause end within [`MAX_SNAP_WORDS`] words and
/// [`MAX_SNAP_MS`]: people change turns between sentences, not inside a word group.
fn snap_to_punctuation(words: &[Word], speakers: &mut [Option<usize>]) {
    let r = runs(speakers);
    for k in 1..r.len() {
        // The change is before word `b`; it may move within the two runs around it.
        let (lo, b, hi) = (r[k - 1].0 + 1, r[k].0, r[k].1);
        let candidates = (lo..=hi)
            .filter(|&p| p.abs_diff(b) <= MAX_SNAP_WORDS)
            .filter(|&p| ends_clause(&words[p - 1]))
            .filter(|&p| words[p - 1].end_ms.abs_diff(words[b - 1].end_ms) <= MAX_SNAP_MS);
        let Some(p) = candidates.min_by_key(|&p| (p.abs_diff(b), p > b)) else {
            continue;
        };
        let (before, after) = (speakers[b - 1], speakers[b]);
        if p < b {
            speakers[p..b].fill(after);
        } else {
            speakers[b..p].fill(before);
        }
    }
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
        let mut speakers: Vec<Option<usize>> = seg
            .words
            .iter()
            .map(|w| speaker_of(turns, w.start_ms, w.end_ms.max(w.start_ms + 1)))
            .collect();
        absorb_short_runs(&seg.words, &mut speakers);
        snap_to_punctuation(&seg.words, &mut speakers);
        let mut current: Option<SpeakerSegment> = None;
        for (w, &speaker) in seg.words.iter().zip(&speakers) {
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
    fn short_runs_are_absorbed_and_changes_move_to_a_clause_end() {
        // Mandarin, one character per word: the turn edge is 1.5 characters off the "。", and
        // one stray character in the middle of the second turn lies in a gap of the turns.
        let text = "方案再过一遍。好的，我们上周已经试驾了";
        let words: Vec<Word> = text
            .chars()
            .enumerate()
            .map(|(i, c)| word(i as u64 * 300, i as u64 * 300 + 250, &c.to_string()))
            .collect();
        // "好" (index 7) starts at 2100 ms; the diarizer's change is at 2500.
        let turns = [
            turn(0, 2500, 0),
            turn(2500, 4200, 1),
            turn(4500, 9000, 1),
            turn(4200, 4500, 0),
        ];
        let seg = TimedSegment {
            start_ms: 0,
            end_ms: 5950,
            text: text.into(),
            words,
        };
        let out = assign(&[seg], &turns);
        let got: Vec<(&str, Option<usize>)> =
            out.iter().map(|s| (s.text.as_str(), s.speaker)).collect();
        assert_eq!(
            got,
            vec![
                ("方案再过一遍。", Some(0)),
                ("好的，我们上周已经试驾了", Some(1))
            ]
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

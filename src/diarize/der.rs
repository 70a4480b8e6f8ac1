//! Diarization error rate: (missed speech + false alarm + speaker confusion) / reference
//! speech, scored on a 10 ms grid with no-score collars around every reference boundary, under
//! the one-to-one speaker mapping that maximises agreement. Overlapping reference speech is
//! not modelled (each instant has at most one reference speaker).

use serde::Serialize;

use super::SpeakerTurn;

const STEP_MS: u64 = 10;

/// A scored comparison.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct DerScore {
    /// Scored reference speech, seconds.
    pub reference_s: f64,
    pub missed_s: f64,
    pub false_alarm_s: f64,
    pub confusion_s: f64,
}

impl DerScore {
    /// The error rate (0 when there is no scored reference speech and no false alarm).
    pub fn der(&self) -> f64 {
        let err = self.missed_s + self.false_alarm_s + self.confusion_s;
        if self.reference_s > 0.0 {
            err / self.reference_s
        } else if err > 0.0 {
            1.0
        } else {
            0.0
        }
    }

    /// Sums scores (for a corpus-level DER).
    pub fn add(&mut self, o: &DerScore) {
        self.reference_s += o.reference_s;
        self.missed_s += o.missed_s;
        self.false_alarm_s += o.false_alarm_s;
        self.confusion_s += o.confusion_s;
    }
}

/// Per 10 ms step, the speaker index, if any.
fn grid(turns: &[SpeakerTurn], steps: usize) -> Vec<Option<usize>> {
    let mut g = vec![None; steps];
    for t in turns {
        let a = (t.start_ms / STEP_MS) as usize;
        let b = (t.end_ms.div_ceil(STEP_MS) as usize).min(steps);
        for s in g.iter_mut().take(b).skip(a) {
            *s = Some(t.speaker);
        }
    }
    g
}

/// Scores `hypothesis` against `reference` with a `collar_ms` no-score zone on each side of
/// every reference turn boundary (250 ms is the usual choice).
pub fn score(reference: &[SpeakerTurn], hypothesis: &[SpeakerTurn], collar_ms: u64) -> DerScore {
    let end = reference
        .iter()
        .chain(hypothesis)
        .map(|t| t.end_ms)
        .max()
        .unwrap_or(0);
    let steps = end.div_ceil(STEP_MS) as usize;
    let r = grid(reference, steps);
    let h = grid(hypothesis, steps);
    let mut scored = vec![true; steps];
    for t in reference {
        for b in [t.start_ms, t.end_ms] {
            let a = (b.saturating_sub(collar_ms) / STEP_MS) as usize;
            let z = ((b + collar_ms) / STEP_MS) as usize;
            for s in scored.iter_mut().take(z.min(steps)).skip(a) {
                *s = false;
            }
        }
    }
    let nr = reference.iter().map(|t| t.speaker + 1).max().unwrap_or(0);
    let nh = hypothesis.iter().map(|t| t.speaker + 1).max().unwrap_or(0);
    let mut overlap = vec![vec![0u64; nr]; nh];
    let (mut refs, mut missed, mut fa, mut both) = (0u64, 0u64, 0u64, 0u64);
    for i in (0..steps).filter(|&i| scored[i]) {
        match (r[i], h[i]) {
            (Some(a), Some(b)) => {
                refs += 1;
                both += 1;
                overlap[b][a] += 1;
            }
            (Some(_), None) => {
                refs += 1;
                missed += 1;
            }
            (None, Some(_)) => fa += 1,
            (None, None) => {}
        }
    }
    let matched = best_mapping(&overlap, nr);
    let s = |n: u64| n as f64 * STEP_MS as f64 / 1000.0;
    DerScore {
        reference_s: s(refs),
        missed_s: s(missed),
        false_alarm_s: s(fa),
        confusion_s: s(both - matched),
    }
}

/// The largest total overlap of a one-to-one mapping of hypothesis speakers (rows) to
/// reference speakers (`nr` columns): dynamic programming over subsets of reference speakers,
/// falling back to a greedy mapping beyond 16 reference speakers.
fn best_mapping(overlap: &[Vec<u64>], nr: usize) -> u64 {
    if nr > 16 {
        let mut used = vec![false; nr];
        let mut total = 0;
        let mut pairs: Vec<(u64, usize, usize)> = overlap
            .iter()
            .enumerate()
            .flat_map(|(h, row)| row.iter().enumerate().map(move |(r, &o)| (o, h, r)))
            .collect();
        pairs.sort_unstable_by(|a, b| b.cmp(a));
        let mut used_h = vec![false; overlap.len()];
        for (o, h, r) in pairs {
            if !used[r] && !used_h[h] {
                used[r] = true;
                used_h[h] = true;
                total += o;
            }
        }
        return total;
    }
    let mut dp = vec![0u64; 1 << nr];
    for row in overlap {
        let mut next = dp.clone();
        for (mask, &base) in dp.iter().enumerate() {
            for (r, &o) in row.iter().enumerate() {
                if mask & (1 << r) == 0 {
                    let m = mask | (1 << r);
                    next[m] = next[m].max(base + o);
                }
            }
        }
        dp = next;
    }
    dp.into_iter().max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(start_ms: u64, end_ms: u64, speaker: usize) -> SpeakerTurn {
        SpeakerTurn {
            start_ms,
            end_ms,
            speaker,
        }
    }

    #[test]
    fn perfect_and_relabelled_hypotheses_score_zero() {
        let r = [t(0, 5000, 0), t(5500, 9000, 1), t(9500, 12000, 0)];
        assert_eq!(score(&r, &r, 250).der(), 0.0);
        let swapped = [t(0, 5000, 1), t(5500, 9000, 0), t(9500, 12000, 1)];
        assert_eq!(score(&r, &swapped, 250).der(), 0.0);
        // Boundaries off by less than the collar do not count.
        let shifted = [t(200, 5100, 0), t(5400, 9000, 1), t(9500, 12000, 0)];
        assert_eq!(score(&r, &shifted, 250).der(), 0.0);
    }

    #[test]
    fn counts_missed_false_alarm_and_confusion() {
        let r = [t(0, 10_000, 0), t(10_000, 20_000, 1)];
        // One speaker for everything: the second half is confusion.
        let one = [t(0, 20_000, 0)];
        let s = score(&r, &one, 0);
        assert_eq!(s.reference_s, 20.0);
        assert!(
            (s.confusion_s - 10.0).abs() < 1e-9 && s.der() == 0.5,
            "{s:?}"
        );
        // Nothing said: all missed.
        let s = score(&r, &[], 0);
        assert!((s.missed_s - 20.0).abs() < 1e-9 && s.der() == 1.0);
        // Speech where there is none: false alarm.
        let s = score(&r, &[t(0, 10_000, 0), t(10_000, 25_000, 1)], 0);
        assert!((s.false_alarm_s - 5.0).abs() < 1e-9 && (s.der() - 0.25).abs() < 1e-9);
        // The collar removes 250 ms on both sides of each of the 3 distinct boundaries.
        let s = score(&r, &r, 250);
        assert!((s.reference_s - 19.0).abs() < 1e-9, "{s:?}");
    }
}

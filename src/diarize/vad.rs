//! Energy-based voice activity: 30 ms frames every 10 ms, a threshold set between the
//! recording's noise floor and its speech level, short gaps bridged, short blips dropped.
//! Enough for clean call audio; it does not separate speech from loud non-speech noise.

use super::fbank::{HOP, SAMPLE_RATE};

/// Frame length in samples (30 ms).
const FRAME: usize = 480;
/// Pauses shorter than this stay inside one region (stop closures, breaths).
const MIN_GAP_MS: u64 = 200;
/// Regions shorter than this are dropped (clicks).
const MIN_REGION_MS: u64 = 120;
/// Frames quieter than this below the speech level never count as speech.
const MAX_DYNAMIC_DB: f32 = 40.0;

/// A stretch of speech, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub start_ms: u64,
    pub end_ms: u64,
}

impl Region {
    pub fn len_ms(&self) -> u64 {
        self.end_ms - self.start_ms
    }
}

/// Speech regions of 16 kHz mono audio, in time order.
pub fn speech_regions(wav: &[f32]) -> Vec<Region> {
    let hop_ms = (HOP * 1000 / SAMPLE_RATE) as u64;
    let db: Vec<f32> = (0..wav.len().div_ceil(HOP))
        .map(|f| {
            let s = &wav[f * HOP..(f * HOP + FRAME).min(wav.len())];
            let p = s.iter().map(|x| x * x).sum::<f32>() / s.len().max(1) as f32;
            10.0 * p.max(1e-10).log10()
        })
        .collect();
    if db.is_empty() {
        return Vec::new();
    }
    let mut sorted = db.clone();
    sorted.sort_by(f32::total_cmp);
    let pct = |q: f32| sorted[((sorted.len() - 1) as f32 * q) as usize];
    let (floor, level) = (pct(0.1), pct(0.95));
    if level - floor < 10.0 {
        // No contrast: all silence, or all sound with no pause to learn the floor from.
        return if level > -50.0 {
            vec![Region {
                start_ms: 0,
                end_ms: db.len() as u64 * hop_ms,
            }]
        } else {
            Vec::new()
        };
    }
    let threshold = (floor + 0.3 * (level - floor)).max(level - MAX_DYNAMIC_DB);

    let mut regions: Vec<Region> = Vec::new();
    let mut start = None;
    for (i, &d) in db.iter().chain(std::iter::once(&f32::MIN)).enumerate() {
        match (d > threshold, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                let r = Region {
                    start_ms: s as u64 * hop_ms,
                    end_ms: (i as u64 * hop_ms).min(wav.len() as u64 * 1000 / SAMPLE_RATE as u64),
                };
                match regions.last_mut() {
                    Some(last) if r.start_ms - last.end_ms < MIN_GAP_MS => last.end_ms = r.end_ms,
                    _ => regions.push(r),
                }
                start = None;
            }
            _ => {}
        }
    }
    regions.retain(|r| r.len_ms() >= MIN_REGION_MS);
    regions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(ms: usize, amp: f32) -> Vec<f32> {
        (0..ms * 16).map(|i| amp * (i as f32 * 0.2).sin()).collect()
    }

    #[test]
    fn finds_speech_between_silences_and_bridges_short_pauses() {
        let mut wav = vec![0.0; 16 * 500];
        wav.extend(tone(1000, 0.3));
        wav.extend(vec![0.0; 16 * 100]); // a pause inside a turn
        wav.extend(tone(500, 0.3));
        wav.extend(vec![0.0; 16 * 400]); // between turns
        wav.extend(tone(800, 0.1));
        wav.extend(vec![0.0; 16 * 300]);
        let r = speech_regions(&wav);
        assert_eq!(r.len(), 2, "{r:?}");
        assert!(r[0].start_ms.abs_diff(500) <= 30, "{r:?}");
        assert!(r[0].end_ms.abs_diff(2100) <= 40, "{r:?}");
        assert!(r[1].start_ms.abs_diff(2500) <= 30, "{r:?}");
        assert!(r[1].end_ms.abs_diff(3300) <= 40, "{r:?}");
    }

    #[test]
    fn silence_has_no_speech() {
        assert!(speech_regions(&vec![0.0; 16_000]).is_empty());
        assert!(speech_regions(&[]).is_empty());
    }
}

//! The encoder's input features: a 40-band mel power spectrogram (25 ms Hann window, 10 ms
//! hop, 16 kHz), as librosa's `melspectrogram` computes it (Slaney mel scale and area norm,
//! centred frames, zero padding). Not logarithmic: the GE2E encoder was trained on power.

use std::sync::Arc;

use realfft::{RealFftPlanner, RealToComplex};

/// Samples per second of the audio the encoder expects.
pub const SAMPLE_RATE: usize = 16_000;
/// FFT size and window length (25 ms).
const N_FFT: usize = 400;
/// Hop between frames (10 ms).
pub const HOP: usize = 160;
/// Mel bands.
pub const N_MELS: usize = 40;
const N_BINS: usize = N_FFT / 2 + 1;

/// Computes mel frames; build once, reuse.
pub struct MelBank {
    /// Per band, the first FFT bin with a non-zero weight and the weights from there on.
    filters: Vec<(usize, Vec<f32>)>,
    window: Vec<f32>,
    fft: Arc<dyn RealToComplex<f32>>,
}

impl Default for MelBank {
    fn default() -> Self {
        Self::new()
    }
}

impl MelBank {
    pub fn new() -> Self {
        let window = (0..N_FFT)
            .map(|i| {
                let x = 2.0 * std::f64::consts::PI * i as f64 / N_FFT as f64;
                (0.5 - 0.5 * x.cos()) as f32
            })
            .collect();
        MelBank {
            filters: slaney_filters()
                .iter()
                .map(|row| {
                    let a = row.iter().position(|&w| w > 0.0).unwrap_or(0);
                    let b = row.iter().rposition(|&w| w > 0.0).map_or(a, |b| b + 1);
                    (a, row[a..b].to_vec())
                })
                .collect(),
            window,
            fft: RealFftPlanner::<f32>::new().plan_fft_forward(N_FFT),
        }
    }

    /// One frame every [`HOP`] samples (frame `i` centred on sample `i * HOP`), `1 + len / HOP`
    /// in all, flattened row-major (`frames × N_MELS`).
    pub fn frames(&self, wav: &[f32]) -> Vec<f32> {
        let n = 1 + wav.len() / HOP;
        let mut out = Vec::with_capacity(n * N_MELS);
        let mut buf = self.fft.make_input_vec();
        let mut spec = self.fft.make_output_vec();
        let mut power = [0f32; N_BINS];
        for f in 0..n {
            let centre = (f * HOP) as isize;
            for (k, b) in buf.iter_mut().enumerate() {
                let i = centre - (N_FFT / 2) as isize + k as isize;
                let s = usize::try_from(i)
                    .ok()
                    .and_then(|i| wav.get(i))
                    .copied()
                    .unwrap_or(0.0);
                *b = s * self.window[k];
            }
            self.fft
                .process(&mut buf, &mut spec)
                .expect("buffers come from the plan");
            for (p, c) in power.iter_mut().zip(&spec) {
                *p = c.norm_sqr();
            }
            out.extend(
                self.filters
                    .iter()
                    .map(|(a, w)| w.iter().zip(&power[*a..]).map(|(x, y)| x * y).sum::<f32>()),
            );
        }
        out
    }
}

fn hz_to_mel(f: f64) -> f64 {
    const F_SP: f64 = 200.0 / 3.0;
    if f >= 1000.0 {
        15.0 + (f / 1000.0).ln() / (6.4f64.ln() / 27.0)
    } else {
        f / F_SP
    }
}

fn mel_to_hz(m: f64) -> f64 {
    const F_SP: f64 = 200.0 / 3.0;
    if m >= 15.0 {
        1000.0 * ((m - 15.0) * (6.4f64.ln() / 27.0)).exp()
    } else {
        m * F_SP
    }
}

/// librosa.filters.mel(sr=16000, n_fft=400, n_mels=40) (htk=False, norm="slaney").
fn slaney_filters() -> Vec<[f32; N_BINS]> {
    let top = hz_to_mel(SAMPLE_RATE as f64 / 2.0);
    let mel_f: Vec<f64> = (0..N_MELS + 2)
        .map(|i| mel_to_hz(top * i as f64 / (N_MELS + 1) as f64))
        .collect();
    let fft_f = |k: usize| k as f64 * SAMPLE_RATE as f64 / N_FFT as f64;
    (0..N_MELS)
        .map(|m| {
            let (lo, mid, hi) = (mel_f[m], mel_f[m + 1], mel_f[m + 2]);
            let enorm = 2.0 / (hi - lo);
            let mut row = [0f32; N_BINS];
            for (k, w) in row.iter_mut().enumerate() {
                let f = fft_f(k);
                let v = ((f - lo) / (mid - lo)).min((hi - f) / (hi - mid)).max(0.0);
                *w = (v * enorm) as f32;
            }
            row
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tone_lands_in_the_band_holding_its_frequency() {
        let bank = MelBank::new();
        let wav: Vec<f32> = (0..SAMPLE_RATE / 2)
            .map(|i| (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / SAMPLE_RATE as f32).sin())
            .collect();
        let frames = bank.frames(&wav);
        assert_eq!(frames.len(), (1 + wav.len() / HOP) * N_MELS);
        let mid = &frames[20 * N_MELS..21 * N_MELS];
        let best = (0..N_MELS)
            .max_by(|&a, &b| mid[a].total_cmp(&mid[b]))
            .unwrap();
        let top = hz_to_mel(8000.0);
        let centre = mel_to_hz(top * (best + 1) as f64 / (N_MELS + 1) as f64);
        assert!(
            (centre - 1000.0).abs() < 150.0,
            "band {best} centred on {centre} Hz"
        );
        assert!(bank.frames(&[]).iter().all(|&v| v == 0.0));
    }

    #[test]
    fn the_mel_scale_round_trips() {
        for f in [0.0, 440.0, 1000.0, 3000.0, 8000.0] {
            assert!((mel_to_hz(hz_to_mel(f)) - f).abs() < 1e-6);
        }
    }
}

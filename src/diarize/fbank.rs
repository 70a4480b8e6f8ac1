//! Kaldi log mel filterbank features, as `torchaudio.compliance.kaldi.fbank` and
//! `kaldi-native-fbank` compute them with the options CAM++ was trained on: 16 kHz, 25 ms
//! frames every 10 ms with edges snipped, DC offset removed, pre-emphasis 0.97, Povey window,
//! 512-point FFT, power spectrum, 80 triangular bins on the Kaldi mel scale from 20 Hz to
//! 8 kHz, natural log floored at `f32::EPSILON`; no dither, no energy.

use std::sync::Arc;

use realfft::{RealFftPlanner, RealToComplex};

/// Samples per second of the audio.
pub const SAMPLE_RATE: usize = 16_000;
/// Hop between frames (10 ms).
pub const HOP: usize = 160;
/// Frame length (25 ms).
pub const FRAME: usize = 400;
/// Mel bins.
pub const N_MELS: usize = 80;
const N_FFT: usize = 512;
const PREEMPHASIS: f32 = 0.97;
const LOW_HZ: f64 = 20.0;
const HIGH_HZ: f64 = SAMPLE_RATE as f64 / 2.0;

/// Computes fbank frames; build once, reuse.
pub struct Fbank {
    /// Per bin, the first FFT bin with a non-zero weight and the weights from there on.
    filters: Vec<(usize, Vec<f32>)>,
    window: Vec<f32>,
    fft: Arc<dyn RealToComplex<f32>>,
}

impl Default for Fbank {
    fn default() -> Self {
        Self::new()
    }
}

impl Fbank {
    pub fn new() -> Self {
        // Povey: a Hann window (symmetric) raised to 0.85.
        let window = (0..FRAME)
            .map(|i| {
                let x = 2.0 * std::f64::consts::PI * i as f64 / (FRAME - 1) as f64;
                (0.5 - 0.5 * x.cos()).powf(0.85) as f32
            })
            .collect();
        Fbank {
            filters: kaldi_filters(),
            window,
            fft: RealFftPlanner::<f32>::new().plan_fft_forward(N_FFT),
        }
    }

    /// The number of frames of `len` samples (a frame must fit whole).
    pub fn n_frames(len: usize) -> usize {
        if len < FRAME {
            0
        } else {
            1 + (len - FRAME) / HOP
        }
    }

    /// Frame `i` covers samples `i * HOP .. i * HOP + FRAME`; flattened row-major
    /// (`frames × N_MELS`). `wav` is in the [-1, 1] scale.
    pub fn frames(&self, wav: &[f32]) -> Vec<f32> {
        let n = Self::n_frames(wav.len());
        let mut out = Vec::with_capacity(n * N_MELS);
        let mut buf = self.fft.make_input_vec();
        let mut spec = self.fft.make_output_vec();
        let mut power = [0f32; N_FFT / 2 + 1];
        for f in 0..n {
            let frame = &wav[f * HOP..f * HOP + FRAME];
            let mean = frame.iter().sum::<f32>() / FRAME as f32;
            // DC removal, then pre-emphasis (the first sample against itself), then window.
            let mut prev = frame[0] - mean;
            for (k, (b, &s)) in buf.iter_mut().zip(frame).enumerate() {
                let x = s - mean;
                *b = (x - PREEMPHASIS * prev) * self.window[k];
                prev = x;
            }
            buf[FRAME..].fill(0.0);
            self.fft
                .process(&mut buf, &mut spec)
                .expect("buffers come from the plan");
            for (p, c) in power.iter_mut().zip(&spec) {
                *p = c.norm_sqr();
            }
            out.extend(self.filters.iter().map(|(a, w)| {
                let e: f32 = w.iter().zip(&power[*a..]).map(|(x, y)| x * y).sum();
                e.max(f32::EPSILON).ln()
            }));
        }
        out
    }
}

/// Subtracts the mean over frames from every bin (per-utterance mean normalisation).
pub fn subtract_mean(frames: &mut [f32]) {
    let n = frames.len() / N_MELS;
    if n == 0 {
        return;
    }
    let mut mean = [0f32; N_MELS];
    for row in frames.chunks_exact(N_MELS) {
        mean.iter_mut().zip(row).for_each(|(m, x)| *m += x);
    }
    mean.iter_mut().for_each(|m| *m /= n as f32);
    for row in frames.chunks_exact_mut(N_MELS) {
        row.iter_mut().zip(&mean).for_each(|(x, m)| *x -= m);
    }
}

/// Kaldi's mel scale.
fn mel(hz: f64) -> f64 {
    1127.0 * (1.0 + hz / 700.0).ln()
}

/// Kaldi's `MelBanks`: triangles equally spaced on the mel scale between [`LOW_HZ`] and
/// [`HIGH_HZ`], evaluated at the centre frequency of FFT bins `0..N_FFT / 2` (the Nyquist bin
/// gets no weight).
fn kaldi_filters() -> Vec<(usize, Vec<f32>)> {
    let (lo, hi) = (mel(LOW_HZ), mel(HIGH_HZ));
    let delta = (hi - lo) / (N_MELS + 1) as f64;
    let bin_hz = SAMPLE_RATE as f64 / N_FFT as f64;
    (0..N_MELS)
        .map(|m| {
            let (left, centre, right) = (
                lo + m as f64 * delta,
                lo + (m + 1) as f64 * delta,
                lo + (m + 2) as f64 * delta,
            );
            let weights: Vec<f32> = (0..N_FFT / 2)
                .map(|k| {
                    let x = mel(k as f64 * bin_hz);
                    if x > left && x < right {
                        let w = if x <= centre {
                            (x - left) / (centre - left)
                        } else {
                            (right - x) / (right - centre)
                        };
                        w as f32
                    } else {
                        0.0
                    }
                })
                .collect();
            let a = weights.iter().position(|&w| w > 0.0).unwrap_or(0);
            let b = weights.iter().rposition(|&w| w > 0.0).map_or(a, |b| b + 1);
            (a, weights[a..b].to_vec())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic test signal: two tones, a chirp and a pseudo-random component
    /// (a linear congruential generator), 0.3 s at 16 kHz.
    fn signal() -> Vec<f32> {
        let mut state: u32 = 12345;
        (0..4800)
            .map(|i| {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
                let noise = f64::from((state >> 16) & 0x7fff) / 32768.0 - 0.5;
                let t = f64::from(i) / 16_000.0;
                let tau = 2.0 * std::f64::consts::PI;
                (0.3 * (tau * 440.0 * t).sin()
                    + 0.2 * (tau * 2500.0 * t).sin()
                    + 0.1 * (tau * (300.0 + 4000.0 * t) * t).sin()
                    + 0.05 * noise) as f32
            })
            .collect()
    }

    /// Reference values from kaldi-native-fbank 1.23.0 (PyPI) on [`signal`], computed with
    /// `opts.frame_opts.dither = 0; opts.frame_opts.samp_freq = 16000;
    /// opts.mel_opts.num_bins = 80` (the other options at their Kaldi defaults, which are the
    /// ones listed in the module doc): frame, bin, value.
    /// (Over all 28 × 80 values the largest difference was 1.8e-4; on the first minute of the
    /// dev call en-01, 9.5e-4, at a log energy of -15.5.)
    const REFERENCE: &[(usize, usize, f32)] = &[
        (0, 0, -10.7957),
        (0, 5, -7.77538),
        (0, 17, -3.36396),
        (0, 40, -3.35032),
        (0, 79, 0.31658),
        (13, 0, -10.94286),
        (13, 5, -9.98036),
        (13, 17, -3.88395),
        (13, 40, -3.24462),
        (13, 79, -0.43678),
        (27, 0, -10.25149),
        (27, 5, -8.37268),
        (27, 17, -3.71695),
        (27, 40, -4.26502),
        (27, 79, 0.52595),
    ];

    #[test]
    fn matches_kaldi_native_fbank() {
        let wav = signal();
        let fb = Fbank::new();
        let frames = fb.frames(&wav);
        assert_eq!(frames.len(), Fbank::n_frames(wav.len()) * N_MELS);
        assert_eq!(Fbank::n_frames(wav.len()), 28);
        for &(f, b, want) in REFERENCE {
            let got = frames[f * N_MELS + b];
            assert!(
                (got - want).abs() < 5e-4,
                "frame {f} bin {b}: {got} != {want}"
            );
        }
        assert!(fb.frames(&wav[..FRAME - 1]).is_empty());
    }

    #[test]
    fn mean_normalisation_centres_every_bin() {
        let mut frames = Fbank::new().frames(&signal());
        subtract_mean(&mut frames);
        for b in 0..N_MELS {
            let m: f32 = frames.iter().skip(b).step_by(N_MELS).sum();
            assert!(m.abs() < 1e-3, "bin {b} sums to {m}");
        }
    }
}

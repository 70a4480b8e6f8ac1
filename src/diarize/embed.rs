//! Speaker embeddings with the GE2E encoder (Resemblyzer's `pretrained.pt`, converted to
//! safetensors at fetch time): a 3-layer LSTM (256 units) over 40-band mel frames, the last
//! layer's final hidden state → linear 256 → ReLU → L2 norm. Run with candle on the CPU.

use std::path::Path;

use candle_core::{D, DType, Device, Tensor};

use super::mel::N_MELS;
use crate::error::{Error, Result};

/// Embedding dimension.
pub const DIM: usize = 256;
const HIDDEN: usize = 256;
const LAYERS: usize = 3;
/// Frames the encoder was trained on (1.6 s); longer windows are not needed.
pub const WINDOW_FRAMES: usize = 160;
/// Windows per forward pass (bounds memory: `BATCH × WINDOW_FRAMES × 1024` floats).
const BATCH: usize = 128;

struct Layer {
    /// `in × 4H`, transposed for `x · W`.
    w_ih: Tensor,
    /// `H × 4H`.
    w_hh: Tensor,
    /// `b_ih + b_hh`, `4H`.
    bias: Tensor,
}

/// The loaded encoder.
pub struct SpeakerEncoder {
    layers: Vec<Layer>,
    /// `H × DIM`.
    linear_w: Tensor,
    linear_b: Tensor,
    device: Device,
}

impl SpeakerEncoder {
    /// Loads the converted weights (`resemblyzer-ge2e.safetensors`).
    pub fn load(path: &Path) -> Result<Self> {
        let device = Device::Cpu;
        let bad = |e: candle_core::Error| {
            Error::Unavailable(format!(
                "cannot load the speaker encoder {}: {e}; run `dealdesk models fetch \
                 resemblyzer-ge2e`",
                path.display()
            ))
        };
        let mut t = candle_core::safetensors::load(path, &device).map_err(bad)?;
        let mut take = |name: &str| {
            t.remove(name).ok_or_else(|| {
                Error::Unavailable(format!(
                    "{} has no tensor {name}; run `dealdesk models fetch resemblyzer-ge2e`",
                    path.display()
                ))
            })
        };
        let mut layers = Vec::with_capacity(LAYERS);
        for l in 0..LAYERS {
            let w_ih = take(&format!("lstm.weight_ih_l{l}"))?;
            let w_hh = take(&format!("lstm.weight_hh_l{l}"))?;
            let b_ih = take(&format!("lstm.bias_ih_l{l}"))?;
            let b_hh = take(&format!("lstm.bias_hh_l{l}"))?;
            layers.push(Layer {
                w_ih: w_ih.t().and_then(|w| w.contiguous()).map_err(bad)?,
                w_hh: w_hh.t().and_then(|w| w.contiguous()).map_err(bad)?,
                bias: (b_ih + b_hh).map_err(bad)?,
            });
        }
        let linear_w = take("linear.weight")?
            .t()
            .and_then(|w| w.contiguous())
            .map_err(bad)?;
        let linear_b = take("linear.bias")?;
        Ok(SpeakerEncoder {
            layers,
            linear_w,
            linear_b,
            device,
        })
    }

    /// One L2-normalised embedding per window. A window is a run of mel frames (row-major,
    /// `len × N_MELS`, at most [`WINDOW_FRAMES`] frames); shorter windows are run over their
    /// own length (masked), exactly as if alone.
    pub fn embed(&self, windows: &[&[f32]]) -> Result<Vec<[f32; DIM]>> {
        let mut out = Vec::with_capacity(windows.len());
        for chunk in windows.chunks(BATCH) {
            out.extend(self.embed_batch(chunk).map_err(|e| {
                Error::Internal(format!("speaker encoder forward pass failed: {e}"))
            })?);
        }
        Ok(out)
    }

    fn embed_batch(&self, windows: &[&[f32]]) -> candle_core::Result<Vec<[f32; DIM]>> {
        let b = windows.len();
        let frames = windows
            .iter()
            .map(|w| w.len() / N_MELS)
            .max()
            .unwrap_or(0)
            .clamp(1, WINDOW_FRAMES);
        // Right-align every window; steps before a window starts leave its state at zero.
        let mut x = vec![0f32; b * frames * N_MELS];
        let mut mask = vec![0f32; frames * b];
        for (i, w) in windows.iter().enumerate() {
            let len = (w.len() / N_MELS).min(frames);
            let start = frames - len;
            x[(i * frames + start) * N_MELS..(i + 1) * frames * N_MELS]
                .copy_from_slice(&w[..len * N_MELS]);
            for t in start..frames {
                mask[t * b + i] = 1.0;
            }
        }
        let mask = Tensor::from_vec(mask, (frames, b, 1), &self.device)?;
        let mut xs = Tensor::from_vec(x, (b, frames, N_MELS), &self.device)?;
        let mut h = Tensor::zeros((b, HIDDEN), DType::F32, &self.device)?;
        for layer in &self.layers {
            // Input projections for all steps at once: (B·T) × 4H.
            let gx = xs
                .reshape((b * frames, ()))?
                .matmul(&layer.w_ih)?
                .broadcast_add(&layer.bias)?
                .reshape((b, frames, 4 * HIDDEN))?;
            h = Tensor::zeros((b, HIDDEN), DType::F32, &self.device)?;
            let mut c = Tensor::zeros((b, HIDDEN), DType::F32, &self.device)?;
            let mut outs = Vec::with_capacity(frames);
            for t in 0..frames {
                let g = (gx.narrow(1, t, 1)?.squeeze(1)? + h.matmul(&layer.w_hh)?)?;
                let i = candle_nn::ops::sigmoid(&g.narrow(1, 0, HIDDEN)?)?;
                let f = candle_nn::ops::sigmoid(&g.narrow(1, HIDDEN, HIDDEN)?)?;
                let gg = g.narrow(1, 2 * HIDDEN, HIDDEN)?.tanh()?;
                let o = candle_nn::ops::sigmoid(&g.narrow(1, 3 * HIDDEN, HIDDEN)?)?;
                let c_new = ((f * &c)? + (i * gg)?)?;
                let h_new = (o * c_new.tanh()?)?;
                let m = mask.get(t)?;
                c = (&c + (c_new - &c)?.broadcast_mul(&m)?)?;
                h = (&h + (h_new - &h)?.broadcast_mul(&m)?)?;
                outs.push(h.clone());
            }
            xs = Tensor::stack(&outs, 1)?;
        }
        let e = h
            .matmul(&self.linear_w)?
            .broadcast_add(&self.linear_b)?
            .relu()?;
        let norm = e
            .sqr()?
            .sum_keepdim(D::Minus1)?
            .sqrt()?
            .clamp(1e-12, f32::MAX)?;
        let e = e.broadcast_div(&norm)?.to_vec2::<f32>()?;
        Ok(e.into_iter()
            .map(|row| {
                let mut a = [0f32; DIM];
                a.copy_from_slice(&row);
                a
            })
            .collect())
    }
}

/// Cosine similarity of two embeddings.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}

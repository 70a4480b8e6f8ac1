//! Speaker embeddings with CAM++ (3D-Speaker, `campplus-zh-en`), run with candle on the CPU.
//!
//! Network (the reference is 3D-Speaker's `speakerlab/models/campplus`): 80 mean-normalised
//! fbank bins ([`super::fbank`]) → FCM head (a 3×3 conv and two stages of two residual blocks,
//! halving the frequency axis three times: 32 channels × 10 bins per frame) → TDNN (kernel 5,
//! stride 2) → three densely connected blocks (12, 24, 16 layers, growth 32, dilation 1, 2, 2),
//! each layer a bottleneck plus a context-aware masking (CAM) layer, each block followed by a
//! transit layer halving the channels → statistics pooling (mean and standard deviation over
//! time) → dense layer with a non-affine batch norm → 192 dimensions.
//!
//! Batch norms run in eval mode and are folded into the convolution before them where there
//! is one, else applied as a per-channel scale and shift. Feature maps are channel-last
//! (`B × T × C`, `B × H × W × C`) so that every convolution is one matrix product over
//! gathered columns. Loading checks every tensor's name and shape and that none is left over.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{D, Device, Tensor};

use super::fbank::N_MELS;
use crate::error::{Error, Result};

/// Embedding dimension.
pub const DIM: usize = 192;
/// Windows per forward pass.
const BATCH: usize = 16;
/// PyTorch's batch-norm epsilon.
const BN_EPS: f64 = 1e-5;
/// Shorter windows are repeated up to this many frames (statistics pooling needs a few).
const MIN_FRAMES: usize = 20;
/// The CAM layer's segment pooling length (frames after the TDNN's stride).
const SEG_LEN: usize = 100;
/// Channels of the FCM head.
const HEAD_CHANNELS: usize = 32;
/// Dense blocks: (layers, dilation).
const BLOCKS: [(usize, usize); 3] = [(12, 1), (24, 2), (16, 2)];
const GROWTH: usize = 32;
const BOTTLENECK: usize = 128;
const TDNN_CHANNELS: usize = 128;

/// The checkpoint's tensors, handed out once each with their shape checked.
struct Weights {
    map: HashMap<String, Tensor>,
    path: String,
}

impl Weights {
    fn take(&mut self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let t = self.map.remove(name).ok_or_else(|| {
            Error::Unavailable(format!(
                "{} has no tensor {name}: not a CAM++ checkpoint; run `dealdesk models fetch \
                 {}`",
                self.path,
                super::MODEL_ID
            ))
        })?;
        if t.dims() != shape {
            return Err(Error::Unavailable(format!(
                "{}: tensor {name} has shape {:?}, CAM++ needs {shape:?}",
                self.path,
                t.dims()
            )));
        }
        Ok(t)
    }

    /// An eval-mode batch norm as `(scale, shift)`, both of shape `(c)`.
    fn batch_norm(&mut self, prefix: &str, c: usize, affine: bool) -> Result<(Tensor, Tensor)> {
        let mean = self.take(&format!("{prefix}.running_mean"), &[c])?;
        let var = self.take(&format!("{prefix}.running_var"), &[c])?;
        let inv_std = (var + BN_EPS)
            .and_then(|v| v.sqrt())
            .and_then(|s| s.recip());
        let scale = if affine {
            let gamma = self.take(&format!("{prefix}.weight"), &[c])?;
            inv_std.and_then(|s| s * gamma)
        } else {
            inv_std
        }
        .map_err(internal)?;
        let shift = (mean * &scale).and_then(|m| m.neg()).map_err(internal)?;
        let shift = if affine {
            let beta = self.take(&format!("{prefix}.bias"), &[c])?;
            (shift + beta).map_err(internal)?
        } else {
            shift
        };
        Ok((scale, shift))
    }
}

fn internal(e: candle_core::Error) -> Error {
    Error::Internal(format!("CAM++ speaker encoder: {e}"))
}

/// A convolution as one matrix product: `w` is `(kernel taps × c_in) × c_out`, row
/// `tap * c_in + c`; `b` the bias (`c_out`), if any.
struct Conv {
    w: Tensor,
    b: Option<Tensor>,
}

impl Conv {
    /// From a PyTorch weight `(c_out, c_in, k...)`, reordered to taps-major rows, with an
    /// optional eval batch norm folded in.
    fn new(w: Tensor, bn: Option<(Tensor, Tensor)>) -> candle_core::Result<Self> {
        let c_out = w.dim(0)?;
        let rank = w.rank();
        // (c_out, c_in, taps...) → (taps..., c_in, c_out)
        let mut order: Vec<usize> = (2..rank).collect();
        order.extend([1, 0]);
        let w = w.permute(order)?.contiguous()?;
        let rows = w.elem_count() / c_out;
        let w = w.reshape((rows, c_out))?;
        Ok(match bn {
            Some((scale, shift)) => Conv {
                w: w.broadcast_mul(&scale.unsqueeze(0)?)?,
                b: Some(shift),
            },
            None => Conv { w, b: None },
        })
    }

    fn with_bias(w: Tensor, b: Tensor) -> candle_core::Result<Self> {
        Ok(Conv {
            b: Some(b),
            ..Conv::new(w, None)?
        })
    }

    /// `cols` is `(..., taps × c_in)`; the result `(..., c_out)`.
    fn apply(&self, cols: &Tensor) -> candle_core::Result<Tensor> {
        let dims = cols.dims().to_vec();
        let k = dims[dims.len() - 1];
        let y = cols.reshape((cols.elem_count() / k, k))?.matmul(&self.w)?;
        let y = match &self.b {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        };
        let mut out = dims;
        *out.last_mut().expect("rank ≥ 1") = self.w.dim(1)?;
        y.reshape(out)
    }
}

/// Rows `start, start + stride, ...` (`n` of them) of dimension `dim`.
fn strided(
    x: &Tensor,
    dim: usize,
    start: usize,
    n: usize,
    stride: usize,
) -> candle_core::Result<Tensor> {
    if stride == 1 {
        return x.narrow(dim, start, n);
    }
    // Room for whole groups of `stride` (the last group may reach past the end).
    let short = (start + n * stride).saturating_sub(x.dim(dim)?);
    let x = x.pad_with_zeros(dim, 0, short)?;
    let mut shape = x.dims().to_vec();
    let y = x.narrow(dim, start, n * stride)?;
    shape[dim] = n;
    shape.insert(dim + 1, stride);
    let y = y.reshape(shape)?.narrow(dim + 1, 0, 1)?;
    y.squeeze(dim + 1)
}

/// A 2-D convolution over `B × H × W × C` maps, stride `(stride, 1)`, "same" padding.
struct Conv2d {
    conv: Conv,
    k: usize,
    stride: usize,
}

impl Conv2d {
    fn load(
        w: &mut Weights,
        conv: &str,
        bn: &str,
        c_in: usize,
        k: usize,
        stride: usize,
    ) -> Result<Self> {
        let weight = w.take(&format!("{conv}.weight"), &[HEAD_CHANNELS, c_in, k, k])?;
        let bn = w.batch_norm(bn, HEAD_CHANNELS, true)?;
        Ok(Conv2d {
            conv: Conv::new(weight, Some(bn)).map_err(internal)?,
            k,
            stride,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (_, h, w, _) = x.dims4()?;
        let pad = self.k / 2;
        let x = x.pad_with_zeros(1, pad, pad)?.pad_with_zeros(2, pad, pad)?;
        let h_out = (h + 2 * pad - self.k) / self.stride + 1;
        let mut taps = Vec::with_capacity(self.k * self.k);
        for kh in 0..self.k {
            let rows = strided(&x, 1, kh, h_out, self.stride)?;
            for kw in 0..self.k {
                taps.push(rows.narrow(2, kw, w)?);
            }
        }
        self.conv.apply(&Tensor::cat(&taps, 3)?)
    }
}

/// The FCM head's residual block.
struct ResBlock {
    conv1: Conv2d,
    conv2: Conv2d,
    shortcut: Option<Conv2d>,
}

impl ResBlock {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let y = self.conv1.forward(x)?.relu()?;
        let y = self.conv2.forward(&y)?;
        let s = match &self.shortcut {
            Some(c) => c.forward(x)?,
            None => x.clone(),
        };
        (y + s)?.relu()
    }
}

/// A 1-D convolution over `B × T × C` sequences.
struct Conv1d {
    conv: Conv,
    k: usize,
    stride: usize,
    dilation: usize,
}

impl Conv1d {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        if self.k == 1 {
            return self.conv.apply(x);
        }
        let t = x.dim(1)?;
        let pad = (self.k - 1) / 2 * self.dilation;
        let x = x.pad_with_zeros(1, pad, pad)?;
        let t_out = (t + 2 * pad - self.dilation * (self.k - 1) - 1) / self.stride + 1;
        let taps = (0..self.k)
            .map(|i| strided(&x, 1, i * self.dilation, t_out, self.stride))
            .collect::<candle_core::Result<Vec<_>>>()?;
        self.conv.apply(&Tensor::cat(&taps, 2)?)
    }
}

/// A per-channel scale and shift (an eval batch norm on its own).
struct Affine {
    scale: Tensor,
    shift: Tensor,
}

impl Affine {
    fn load(w: &mut Weights, prefix: &str, c: usize) -> Result<Self> {
        let (scale, shift) = w.batch_norm(prefix, c, true)?;
        Ok(Affine { scale, shift })
    }

    fn relu(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.broadcast_mul(&self.scale)?
            .broadcast_add(&self.shift)?
            .relu()
    }
}

/// One layer of a dense block: BN-ReLU, 1×1 bottleneck (BN folded), ReLU, CAM layer.
struct DenseLayer {
    norm: Affine,
    bottleneck: Conv,
    local: Conv1d,
    /// The CAM gate: context → ReLU(1×1, `BOTTLENECK / 2`) → sigmoid(1×1, `GROWTH`).
    gate1: Conv,
    gate2: Conv,
}

impl DenseLayer {
    fn load(w: &mut Weights, p: &str, c_in: usize, dilation: usize) -> Result<Self> {
        let norm = Affine::load(w, &format!("{p}.nonlinear1.batchnorm"), c_in)?;
        let bottleneck = w.take(&format!("{p}.linear1.weight"), &[BOTTLENECK, c_in, 1])?;
        let bn2 = w.batch_norm(&format!("{p}.nonlinear2.batchnorm"), BOTTLENECK, true)?;
        let local = w.take(
            &format!("{p}.cam_layer.linear_local.weight"),
            &[GROWTH, BOTTLENECK, 3],
        )?;
        let half = BOTTLENECK / 2;
        let g1w = w.take(
            &format!("{p}.cam_layer.linear1.weight"),
            &[half, BOTTLENECK, 1],
        )?;
        let g1b = w.take(&format!("{p}.cam_layer.linear1.bias"), &[half])?;
        let g2w = w.take(&format!("{p}.cam_layer.linear2.weight"), &[GROWTH, half, 1])?;
        let g2b = w.take(&format!("{p}.cam_layer.linear2.bias"), &[GROWTH])?;
        (|| {
            Ok(DenseLayer {
                norm,
                bottleneck: Conv::new(bottleneck, Some(bn2))?,
                local: Conv1d {
                    conv: Conv::new(local, None)?,
                    k: 3,
                    stride: 1,
                    dilation,
                },
                gate1: Conv::with_bias(g1w, g1b)?,
                gate2: Conv::with_bias(g2w, g2b)?,
            })
        })()
        .map_err(internal)
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let h = self.bottleneck.apply(&self.norm.relu(x)?)?.relu()?;
        let y = self.local.forward(&h)?;
        // The context of a frame: the mean over the window plus the mean over its segment of
        // SEG_LEN frames (avg_pool1d with ceil_mode: the last segment may be shorter). The
        // gate is computed once per segment, then spread over the segment's frames.
        let (b, t, _) = h.dims3()?;
        let lens: Vec<usize> = (0..t)
            .step_by(SEG_LEN)
            .map(|s| SEG_LEN.min(t - s))
            .collect();
        let means = lens
            .iter()
            .scan(0, |start, &len| {
                let m = h.narrow(1, *start, len).and_then(|s| s.mean_keepdim(1));
                *start += len;
                Some(m)
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        let context = Tensor::cat(&means, 1)?.broadcast_add(&h.mean_keepdim(1)?)?;
        let gate =
            candle_nn::ops::sigmoid(&self.gate2.apply(&self.gate1.apply(&context)?.relu()?)?)?;
        let spread = lens
            .iter()
            .enumerate()
            .map(|(i, &len)| gate.narrow(1, i, 1)?.broadcast_as((b, len, GROWTH)))
            .collect::<candle_core::Result<Vec<_>>>()?;
        y * Tensor::cat(&spread, 1)?
    }
}

/// The loaded CAM++ encoder.
pub struct CamPlus {
    stem: Conv2d,
    res: Vec<ResBlock>,
    head_out: Conv2d,
    tdnn: Conv1d,
    blocks: Vec<(Vec<DenseLayer>, Affine, Conv)>,
    out_norm: Affine,
    dense: Conv,
    device: Device,
}

impl CamPlus {
    /// Loads `campplus-zh-en.safetensors`; fails on any missing, misshapen or unused tensor.
    pub fn load(path: &Path) -> Result<Self> {
        let device = Device::Cpu;
        let map = candle_core::safetensors::load(path, &device).map_err(|e| {
            Error::Unavailable(format!(
                "cannot load the speaker encoder {}: {e}; run `dealdesk models fetch {}`",
                path.display(),
                super::MODEL_ID
            ))
        })?;
        let mut w = Weights {
            map,
            path: path.display().to_string(),
        };
        let stem = Conv2d::load(&mut w, "head.conv1", "head.bn1", 1, 3, 1)?;
        let mut res = Vec::new();
        for layer in ["layer1", "layer2"] {
            for (i, stride) in [(0, 2), (1, 1)] {
                let p = format!("head.{layer}.{i}");
                let conv = |w: &mut Weights, n: usize, stride| {
                    Conv2d::load(
                        w,
                        &format!("{p}.conv{n}"),
                        &format!("{p}.bn{n}"),
                        HEAD_CHANNELS,
                        3,
                        stride,
                    )
                };
                let conv1 = conv(&mut w, 1, stride)?;
                let conv2 = conv(&mut w, 2, 1)?;
                let shortcut = if stride == 1 {
                    None
                } else {
                    let sc = format!("{p}.shortcut");
                    Some(Conv2d::load(
                        &mut w,
                        &format!("{sc}.0"),
                        &format!("{sc}.1"),
                        HEAD_CHANNELS,
                        1,
                        stride,
                    )?)
                };
                res.push(ResBlock {
                    conv1,
                    conv2,
                    shortcut,
                });
            }
        }
        let head_out = Conv2d::load(&mut w, "head.conv2", "head.bn2", HEAD_CHANNELS, 3, 2)?;
        let head_channels = HEAD_CHANNELS * N_MELS / 8;
        let tdnn_w = w.take(
            "xvector.tdnn.linear.weight",
            &[TDNN_CHANNELS, head_channels, 5],
        )?;
        let tdnn_bn = w.batch_norm("xvector.tdnn.nonlinear.batchnorm", TDNN_CHANNELS, true)?;
        let tdnn = Conv1d {
            conv: Conv::new(tdnn_w, Some(tdnn_bn)).map_err(internal)?,
            k: 5,
            stride: 2,
            dilation: 1,
        };
        let mut channels = TDNN_CHANNELS;
        let mut blocks = Vec::new();
        for (b, &(n, dilation)) in BLOCKS.iter().enumerate() {
            let mut layers = Vec::with_capacity(n);
            for i in 0..n {
                let p = format!("xvector.block{}.tdnnd{}", b + 1, i + 1);
                layers.push(DenseLayer::load(
                    &mut w,
                    &p,
                    channels + i * GROWTH,
                    dilation,
                )?);
            }
            channels += n * GROWTH;
            let p = format!("xvector.transit{}", b + 1);
            let norm = Affine::load(&mut w, &format!("{p}.nonlinear.batchnorm"), channels)?;
            let lin = w.take(&format!("{p}.linear.weight"), &[channels / 2, channels, 1])?;
            blocks.push((layers, norm, Conv::new(lin, None).map_err(internal)?));
            channels /= 2;
        }
        let out_norm = Affine::load(&mut w, "xvector.out_nonlinear.batchnorm", channels)?;
        let dense_w = w.take("xvector.dense.linear.weight", &[DIM, channels * 2, 1])?;
        let dense_bn = w.batch_norm("xvector.dense.nonlinear.batchnorm", DIM, false)?;
        let dense = Conv::new(dense_w, Some(dense_bn)).map_err(internal)?;
        if !w.map.is_empty() {
            let mut left: Vec<&String> = w.map.keys().collect();
            left.sort();
            return Err(Error::Unavailable(format!(
                "{}: {} tensors are not part of CAM++ (e.g. {}): not the expected checkpoint",
                w.path,
                left.len(),
                left[0]
            )));
        }
        Ok(CamPlus {
            stem,
            res,
            head_out,
            tdnn,
            blocks,
            out_norm,
            dense,
            device,
        })
    }

    /// One embedding (not normalised) per window of fbank frames (row-major,
    /// `frames × N_MELS`, not yet mean-normalised). Windows of equal length run together.
    pub fn embed(&self, windows: &[&[f32]]) -> Result<Vec<[f32; DIM]>> {
        let mut out = vec![[0f32; DIM]; windows.len()];
        let mut by_len: HashMap<usize, Vec<usize>> = HashMap::new();
        for (i, w) in windows.iter().enumerate() {
            by_len.entry(w.len() / N_MELS).or_default().push(i);
        }
        for (frames, ids) in by_len {
            for chunk in ids.chunks(BATCH) {
                let batch: Vec<Vec<f32>> = chunk
                    .iter()
                    .map(|&i| input(&windows[i][..frames * N_MELS]))
                    .collect();
                let emb = self.forward(&batch).map_err(|e| {
                    Error::Internal(format!("speaker encoder forward pass failed: {e}"))
                })?;
                for (&i, e) in chunk.iter().zip(emb) {
                    out[i] = e;
                }
            }
        }
        Ok(out)
    }

    /// `batch`: equally long mean-normalised windows.
    fn forward(&self, batch: &[Vec<f32>]) -> candle_core::Result<Vec<[f32; DIM]>> {
        let b = batch.len();
        let t = batch[0].len() / N_MELS;
        let flat: Vec<f32> = batch.concat();
        // (B, T, F) → (B, H = F, W = T, C = 1)
        let x = Tensor::from_vec(flat, (b, t, N_MELS), &self.device)?
            .transpose(1, 2)?
            .contiguous()?
            .unsqueeze(3)?;
        let mut x = self.stem.forward(&x)?.relu()?;
        for r in &self.res {
            x = r.forward(&x)?;
        }
        let x = self.head_out.forward(&x)?.relu()?;
        // (B, H, T, C) → (B, T, C × H), channel-major like PyTorch's reshape of (B, C, H, T).
        let (_, h, _, c) = x.dims4()?;
        let x = x.permute((0, 2, 3, 1))?.reshape((b, t, c * h))?;
        let mut x = self.tdnn.forward(&x)?.relu()?;
        for (layers, norm, transit) in &self.blocks {
            for layer in layers {
                let y = layer.forward(&x)?;
                x = Tensor::cat(&[&x, &y], 2)?;
            }
            x = transit.apply(&norm.relu(&x)?)?;
        }
        let x = self.out_norm.relu(&x)?;
        let mean = x.mean(1)?;
        let n = x.dim(1)? as f64;
        let var = (x.broadcast_sub(&mean.unsqueeze(1)?)?.sqr()?.sum(1)? / (n - 1.0).max(1.0))?;
        let stats = Tensor::cat(&[&mean, &var.sqrt()?], D::Minus1)?;
        let e = self.dense.apply(&stats)?.to_vec2::<f32>()?;
        Ok(e.into_iter()
            .map(|row| {
                let mut a = [0f32; DIM];
                a.copy_from_slice(&row);
                a
            })
            .collect())
    }
}

/// A window made ready for the network: repeated up to [`MIN_FRAMES`] if shorter, then
/// mean-normalised.
fn input(window: &[f32]) -> Vec<f32> {
    let frames = window.len() / N_MELS;
    let mut v: Vec<f32> = if frames == 0 {
        vec![0.0; MIN_FRAMES * N_MELS]
    } else {
        window
            .iter()
            .copied()
            .cycle()
            .take(frames.max(MIN_FRAMES) * N_MELS)
            .collect()
    };
    super::fbank::subtract_mean(&mut v);
    v
}

#[cfg(test)]
mod tests {
    use candle_core::DType;

    use super::*;

    /// The converted checkpoint in the model cache (`dealdesk models fetch`).
    fn weights() -> std::path::PathBuf {
        let path = crate::config::ModelsConfig::default()
            .dir
            .join(format!("{}.safetensors", super::super::MODEL_ID));
        assert!(
            path.is_file(),
            "run `dealdesk models fetch`: {}",
            path.display()
        );
        path
    }

    #[test]
    fn every_tensor_is_used_and_a_wrong_checkpoint_is_refused() {
        let path = weights();
        CamPlus::load(&path).unwrap();
        let tensors = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, t: &HashMap<String, Tensor>| {
            let p = dir.path().join(name);
            candle_core::safetensors::save(t, &p).unwrap();
            p
        };
        let check = |p: &Path, needle: &str| {
            let e = CamPlus::load(p).err().expect("refused").to_string();
            assert!(e.contains(needle), "{e}");
        };

        let mut missing = tensors.clone();
        missing.remove("xvector.block2.tdnnd24.cam_layer.linear2.bias");
        check(
            &write("missing.safetensors", &missing),
            "no tensor xvector.block2.tdnnd24",
        );

        let mut extra = tensors.clone();
        extra.insert(
            "xvector.block4.x".into(),
            Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap(),
        );
        check(&write("extra.safetensors", &extra), "not part of CAM++");

        let mut misshapen = tensors;
        misshapen.insert(
            "head.conv1.weight".into(),
            Tensor::zeros((32, 1, 5, 5), DType::F32, &Device::Cpu).unwrap(),
        );
        check(
            &write("misshapen.safetensors", &misshapen),
            "head.conv1.weight has shape",
        );
    }
}

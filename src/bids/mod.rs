//! The bid library: past bids in the database (the source of truth) and a tantivy index
//! derived from it; retrieval of similar winning bids for a new tender; success factors from
//! similar won and lost bids; cited response drafts; and the evaluation on a judged set.
//!
//! * [`record`] — the bid record, import format (JSON, JSON array, JSON Lines) and validation
//! * [`analyzers`] — English stemming and Mandarin (jieba) analyzers registered in tantivy
//! * [`db`] — rows and revisions · [`index`] — schema, writes, crash-safe commits
//! * [`search`] — BM25 with filters, fusion, highlights

pub mod analyzers;
pub mod bilingual;
pub mod db;
pub mod dense;
pub mod draft;
pub mod edit;
pub mod eval;
pub mod factors;
mod follow;
pub mod index;
pub mod record;
pub mod search;
pub mod synthetic;
pub mod tender_file;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

pub use db::StoredBid;
pub use record::{Bid, Lang, Outcome};
pub use search::{Filters, Hit, SearchRequest, Tender};

use crate::config::Config;
use crate::error::Result;
use crate::store::{Db, now_ms};
use index::BidIndex;

/// Bids written to the database and the index per transaction/commit during an import.
const BATCH: usize = 1000;

/// The bid library of one process. Clone it freely.
#[derive(Clone)]
pub struct Library {
    db: Db,
    index: Arc<BidIndex>,
    /// Dense multilingual retrieval; None when the encoder is not fetched (BM25 only).
    dense: Option<Arc<dense::DenseIndex>>,
}

/// What an import did.
#[derive(Debug, Default, Clone, Serialize, utoipa::ToSchema)]
pub struct ImportReport {
    pub inserted: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub seconds: f64,
}

/// What reconciling the index with the database did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Repair {
    pub reindexed: usize,
    pub removed: usize,
}

/// Ranked precedents for a tender.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = BidSearchResponse)]
pub struct SearchResponse {
    /// The tender's language (given or detected).
    pub language: Lang,
    pub hits: Vec<Hit>,
    pub took_ms: f64,
}

impl Library {
    /// Opens the index under `<data>/index/bids` and repairs it from the database.
    /// Dense retrieval uses the pinned multilingual encoder when it is in the model cache;
    /// without it search is BM25 only (with a warning saying how to fetch it).
    pub async fn open(config: &Config, db: Db) -> Result<Library> {
        let manifest = crate::models::Manifest::load(config)?;
        let encoder = if !config.bids.dense {
            None
        } else {
            match dense::Encoder::load_configured(config, &manifest) {
                Ok(e) => Some(Arc::new(e)),
                Err(e) => {
                    tracing::warn!("bid search without dense retrieval: {e}");
                    None
                }
            }
        };
        Library::open_at(&config.data.dir.join("index").join("bids"), db, encoder).await
    }

    /// Opens the index in `dir` and repairs it (and the embeddings, with an `encoder`) from
    /// the database.
    pub async fn open_at(
        dir: &Path,
        db: Db,
        encoder: Option<Arc<dense::Encoder>>,
    ) -> Result<Library> {
        let index = Arc::new(BidIndex::open(dir)?);
        let dense = encoder.map(|e| Arc::new(dense::DenseIndex::new(e)));
        let library = Library { db, index, dense };
        let repair = library.reconcile().await?;
        if repair.reindexed + repair.removed > 0 {
            tracing::info!(?repair, "bid index repaired from the database");
        }
        if let Some(dense) = &library.dense {
            let embedded = dense.sync(&library.db, false).await?;
            if embedded > 0 {
                tracing::info!(embedded, "bid embeddings computed");
            }
        }
        Ok(library)
    }

    /// Brings the index in line with the database: bids missing or at an older revision are
    /// (re)indexed, documents of deleted bids removed.
    pub async fn reconcile(&self) -> Result<Repair> {
        let want = db::revisions(&self.db).await?;
        let have = self.index.revisions()?;
        let mut stale: Vec<&String> = want
            .iter()
            .filter(|(id, rev)| have.get(*id) != Some(rev))
            .map(|(id, _)| id)
            .collect();
        stale.sort();
        let gone: Vec<&String> = have.keys().filter(|id| !want.contains_key(*id)).collect();
        if stale.is_empty() && gone.is_empty() {
            return Ok(Repair::default());
        }
        let mut fresh = Vec::with_capacity(stale.len());
        for id in &stale {
            fresh.push(db::get(&self.db, id).await?);
        }
        let mut writer = self.index.writer();
        for id in &gone {
            self.index.delete(&writer, id);
        }
        for stored in &fresh {
            self.index.upsert(&writer, &stored.bid, stored.rev)?;
        }
        self.index.commit(&mut writer)?;
        Ok(Repair {
            reindexed: stale.len(),
            removed: gone.len(),
        })
    }

    /// Rebuilds the whole index from the database.
    pub async fn reindex(&self) -> Result<usize> {
        self.index.clear(&mut self.index.writer())?;
        let mut after = String::new();
        let mut count = 0;
        loop {
            let page = db::page(&self.db, &after, BATCH as i64).await?;
            let Some(last) = page.last() else { break };
            after = last.bid.id.clone();
            let writer = self.index.writer();
            for stored in &page {
                self.index.upsert(&writer, &stored.bid, stored.rev)?;
            }
            count += page.len();
        }
        self.index.commit(&mut self.index.writer())?;
        if let Some(dense) = &self.dense {
            dense.sync(&self.db, true).await?;
        }
        Ok(count)
    }

    /// Imports (adds or updates) `bids`, validated, in batches: each batch is committed to
    /// the database, then to the index. `progress` gets the number done so far.
    pub async fn import(
        &self,
        bids: &[Bid],
        progress: &(dyn Fn(usize) + Sync),
    ) -> Result<ImportReport> {
        let started = Instant::now();
        for bid in bids {
            bid.validate()?;
        }
        let mut report = ImportReport::default();
        for (n, batch) in bids.chunks(BATCH).enumerate() {
            let now = now_ms();
            let mut tx = self.db.begin().await?;
            let mut changed = Vec::new();
            for bid in batch {
                match db::upsert(&mut tx, bid, now).await? {
                    Some(1) => {
                        report.inserted += 1;
                        changed.push((bid, 1));
                    }
                    Some(rev) => {
                        report.updated += 1;
                        changed.push((bid, rev));
                    }
                    None => report.unchanged += 1,
                }
            }
            tx.commit().await?;
            if !changed.is_empty() {
                {
                    let mut writer = self.index.writer();
                    for &(bid, rev) in &changed {
                        self.index.upsert(&writer, bid, rev)?;
                    }
                    self.index.commit(&mut writer)?;
                }
                if let Some(dense) = &self.dense {
                    dense.put(&self.db, &changed).await?;
                }
            }
            progress(n * BATCH + batch.len());
        }
        report.seconds = started.elapsed().as_secs_f64();
        Ok(report)
    }

    /// Adds or updates one bid.
    pub async fn put(&self, bid: &Bid) -> Result<StoredBid> {
        self.import(std::slice::from_ref(bid), &|_| {}).await?;
        db::get(&self.db, &bid.id).await
    }

    pub async fn get(&self, id: &str) -> Result<StoredBid> {
        db::get(&self.db, id).await
    }

    /// Deletes a bid from the database and the index.
    pub async fn delete(&self, id: &str) -> Result<()> {
        db::delete(&self.db, id).await?;
        {
            let mut writer = self.index.writer();
            self.index.delete(&writer, id);
            self.index.commit(&mut writer)?;
        }
        if let Some(dense) = &self.dense {
            dense.delete(&self.db, id).await?;
        }
        Ok(())
    }

    /// Records the outcome (and optional buyer feedback) of a bid.
    pub async fn set_outcome(
        &self,
        id: &str,
        outcome: Outcome,
        feedback: Option<&str>,
        actor: Option<&str>,
    ) -> Result<StoredBid> {
        let stored = db::set_outcome(&self.db, id, outcome, feedback, actor).await?;
        {
            let mut writer = self.index.writer();
            self.index.upsert(&writer, &stored.bid, stored.rev)?;
            self.index.commit(&mut writer)?;
        }
        if let Some(dense) = &self.dense {
            dense.put(&self.db, &[(&stored.bid, stored.rev)]).await?;
        }
        Ok(stored)
    }

    /// The database the library stores into.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The retrieval method in use, for reports.
    pub fn method(&self) -> String {
        let bm25 = "bm25 per language (en stemming, jieba) with glossary query translation";
        match &self.dense {
            Some(_) => format!(
                "{bm25} and {} (cosine z-normalised per language), fused by rrf",
                dense::MODEL_ID
            ),
            None => format!("{bm25}, fused by rrf"),
        }
    }

    /// Ranked past bids for a tender.
    pub fn search(&self, req: &SearchRequest) -> Result<SearchResponse> {
        let started = Instant::now();
        req.tender.validate()?;
        let limit = req.limit.clamp(1, 100);
        let lang = req.tender.lang();
        let terms = search::QueryTerms::new(&req.tender.query_text(), lang);
        let searcher = self.index.searcher();
        let mut addrs = std::collections::HashMap::new();
        let mut won = std::collections::HashSet::new();
        let mut lists = Vec::new();
        for slot in [0, 1] {
            let keyword = search::bm25(
                &self.index,
                &terms,
                slot,
                &req.filters,
                search::CANDIDATES.max(limit),
            )?;
            let keys = self.index.keys(&searcher, &keyword)?;
            let mut ids = Vec::with_capacity(keys.len());
            for ((addr, _), (id, outcome)) in keyword.iter().zip(keys) {
                if outcome == Outcome::Won.as_str() {
                    won.insert(id.clone());
                }
                addrs.insert(id.clone(), *addr);
                ids.push(id);
            }
            lists.push(ids);
        }
        if let Some(dense) = &self.dense {
            let query = dense.query(&req.tender.query_text())?;
            let admits = req.filters.predicate()?;
            let ranked = dense.ranked(&query, &admits, search::CANDIDATES.max(limit));
            let mut ids = Vec::with_capacity(ranked.len());
            for (id, _) in ranked {
                if !addrs.contains_key(&id) {
                    let Some(addr) = self.index.address(&searcher, &id)? else {
                        continue;
                    };
                    addrs.insert(id.clone(), addr);
                }
                ids.push(id);
            }
            for id in &ids {
                let outcome = &dense.outcome(id);
                if outcome == &Some(Outcome::Won) {
                    won.insert(id.clone());
                }
            }
            lists.push(ids);
        }
        let mut fused = search::fuse(&lists);
        for (id, score, _) in &mut fused {
            if won.contains(id) {
                *score *= 1.0 + search::WON_PRIOR;
            }
        }
        fused.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let slot = index::lang_slot(lang);
        let mut hits = Vec::with_capacity(limit);
        for (id, score, ranks) in fused.into_iter().take(limit) {
            let bid = self.index.stored_bid(&searcher, addrs[&id])?;
            let mut hit = search::explain(bid, &terms, score, ranks[slot], ranks[1 - slot]);
            hit.dense_rank = ranks.get(2).copied().flatten();
            if let Some(k) = hit.dense_rank {
                hit.why
                    .push_str(&format!("; meaning rank {k} (multilingual embedding)"));
            }
            hits.push(hit);
        }
        Ok(SearchResponse {
            language: req.tender.lang(),
            hits,
            took_ms: started.elapsed().as_secs_f64() * 1000.0,
        })
    }
}

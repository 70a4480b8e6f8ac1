//! Evaluation of retrieval on a judged set (`dealdesk eval bids`): the corpus is imported into
//! a scratch library, every query is searched over all outcomes, and nDCG@10, recall@5
//! (grade >= 2), MRR of the first grade-3 hit and latency are reported, overall and split by
//! same-language and cross-language queries (cross-language: most grade-3 bids are in the
//! other language).

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::Library;
use super::record::{self, Lang, Outcome};
use super::search::{Filters, SearchRequest, Tender};
use crate::error::{Error, Result};
use crate::store::{Db, new_id};

/// Metrics over a set of queries.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Metrics {
    pub queries: usize,
    pub ndcg10: f64,
    pub recall5: f64,
    pub mrr: f64,
}

/// The evaluation report (`--json` prints it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub ndcg10: f64,
    pub recall5: f64,
    pub mrr: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub queries: usize,
    pub same_language: Metrics,
    pub cross_language: Metrics,
    pub corpus_bids: usize,
    pub method: String,
}

/// One query's judged grades, by bid id.
pub type Qrels = HashMap<String, HashMap<String, u8>>;

/// Reads `qid\tbid\tgrade` lines (a header line is skipped).
pub fn read_qrels(path: &Path) -> Result<Qrels> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io("cannot read the judgments", path, e))?;
    let mut qrels: Qrels = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let cols: Vec<&str> = line.split('\t').collect();
        if n == 0 && cols.first() == Some(&"qid") || line.trim().is_empty() {
            continue;
        }
        let [qid, bid, grade] = cols[..] else {
            return Err(Error::InvalidInput(format!(
                "{}:{}: expected qid<TAB>bid<TAB>grade",
                path.display(),
                n + 1
            )));
        };
        let grade: u8 = grade.trim().parse().map_err(|_| {
            Error::InvalidInput(format!("{}:{}: grade must be 0-3", path.display(), n + 1))
        })?;
        qrels
            .entry(qid.to_string())
            .or_default()
            .insert(bid.to_string(), grade);
    }
    Ok(qrels)
}

/// A query file: a tender with an id.
#[derive(Deserialize)]
struct Query {
    id: String,
    #[serde(flatten)]
    tender: Tender,
}

fn read_queries(dir: &Path) -> Result<Vec<(String, Tender)>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| Error::io("cannot list the queries", dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("json"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|file| {
            let text = std::fs::read_to_string(file)
                .map_err(|e| Error::io("cannot read a query", file, e))?;
            let q: Query = serde_json::from_str(&text).map_err(|e| {
                Error::InvalidInput(format!("{}: not a query: {e}", file.display()))
            })?;
            Ok((q.id, q.tender))
        })
        .collect()
}

/// nDCG@10 of `ranked` ids under `grades` (gain 2^g - 1, ideal from all judged grades).
pub fn ndcg10(ranked: &[String], grades: &HashMap<String, u8>) -> f64 {
    let gain = |g: u8| 2f64.powi(g as i32) - 1.0;
    let dcg: f64 = ranked
        .iter()
        .take(10)
        .enumerate()
        .map(|(i, id)| gain(*grades.get(id).unwrap_or(&0)) / (i as f64 + 2.0).log2())
        .sum();
    let mut ideal: Vec<u8> = grades.values().copied().collect();
    ideal.sort_unstable_by(|a, b| b.cmp(a));
    let idcg: f64 = ideal
        .iter()
        .take(10)
        .enumerate()
        .map(|(i, g)| gain(*g) / (i as f64 + 2.0).log2())
        .sum();
    if idcg == 0.0 { 0.0 } else { dcg / idcg }
}

/// Share of grade >= 2 bids in the top 5.
pub fn recall5(ranked: &[String], grades: &HashMap<String, u8>) -> f64 {
    let relevant = grades.values().filter(|g| **g >= 2).count();
    if relevant == 0 {
        return 0.0;
    }
    let found = ranked
        .iter()
        .take(5)
        .filter(|id| grades.get(*id).is_some_and(|g| *g >= 2))
        .count();
    found as f64 / relevant as f64
}

/// Reciprocal rank of the first grade-3 bid.
pub fn mrr(ranked: &[String], grades: &HashMap<String, u8>) -> f64 {
    ranked
        .iter()
        .position(|id| grades.get(id) == Some(&3))
        .map_or(0.0, |i| 1.0 / (i as f64 + 1.0))
}

fn mean(rows: &[(f64, f64, f64)]) -> Metrics {
    let n = rows.len().max(1) as f64;
    Metrics {
        queries: rows.len(),
        ndcg10: rows.iter().map(|r| r.0).sum::<f64>() / n,
        recall5: rows.iter().map(|r| r.1).sum::<f64>() / n,
        mrr: rows.iter().map(|r| r.2).sum::<f64>() / n,
    }
}

/// Imports `corpus` into a scratch library under `scratch` and scores every query.
pub async fn run(
    corpus: &Path,
    queries: &Path,
    qrels: &Path,
    scratch: &Path,
    encoder: Option<std::sync::Arc<super::dense::Encoder>>,
) -> Result<Report> {
    let bids = record::read_path(corpus)?;
    let qrels = read_qrels(qrels)?;
    let queries = read_queries(queries)?;
    let dir = scratch.join(format!("dealdesk-eval-{}", new_id()));
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::io("cannot create the scratch directory", &dir, e))?;
    let result = async {
        let db = Db::connect(&format!("sqlite://{}", dir.join("eval.db").display()), 2).await?;
        let library = Library::open_at(&dir.join("index"), db, encoder.clone()).await?;
        library.import(&bids, &|_| {}).await?;
        let langs: HashMap<&str, Lang> = bids.iter().map(|b| (b.id.as_str(), b.language)).collect();
        let (mut same, mut cross, mut latencies) = (Vec::new(), Vec::new(), Vec::new());
        for (qid, tender) in &queries {
            let grades = qrels.get(qid).cloned().unwrap_or_default();
            let req = SearchRequest {
                tender: tender.clone(),
                filters: Filters {
                    outcomes: Some(Outcome::ALL.to_vec()),
                    ..Filters::default()
                },
                limit: 10,
            };
            let started = Instant::now();
            let response = library.search(&req)?;
            latencies.push(started.elapsed().as_secs_f64() * 1000.0);
            let ranked: Vec<String> = response.hits.into_iter().map(|h| h.id).collect();
            let row = (
                ndcg10(&ranked, &grades),
                recall5(&ranked, &grades),
                mrr(&ranked, &grades),
            );
            let won: Vec<Lang> = grades
                .iter()
                .filter(|(_, g)| **g == 3)
                .filter_map(|(id, _)| langs.get(id.as_str()).copied())
                .collect();
            let lang = tender.lang();
            let other = won.iter().filter(|l| **l != lang).count();
            if other * 2 > won.len() {
                cross.push(row);
            } else {
                same.push(row);
            }
        }
        latencies.sort_by(f64::total_cmp);
        let pct = |p: f64| {
            latencies
                .get(((latencies.len() as f64 - 1.0) * p).round() as usize)
                .copied()
                .unwrap_or(0.0)
        };
        let all: Vec<_> = same.iter().chain(&cross).copied().collect();
        let overall = mean(&all);
        Ok(Report {
            ndcg10: overall.ndcg10,
            recall5: overall.recall5,
            mrr: overall.mrr,
            p50_ms: pct(0.5),
            p99_ms: pct(0.99),
            queries: all.len(),
            same_language: mean(&same),
            cross_language: mean(&cross),
            corpus_bids: bids.len(),
            method: library.method(),
        })
    }
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grades(pairs: &[(&str, u8)]) -> HashMap<String, u8> {
        pairs.iter().map(|(id, g)| (id.to_string(), *g)).collect()
    }

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn metrics_match_hand_computed_values() {
        let g = grades(&[("a", 3), ("b", 2), ("c", 0)]);
        assert!((ndcg10(&ids(&["a", "b"]), &g) - 1.0).abs() < 1e-9);
        let swapped = ndcg10(&ids(&["b", "a"]), &g);
        let expected = (3.0 + 7.0 / 3f64.log2()) / (7.0 + 3.0 / 3f64.log2());
        assert!((swapped - expected).abs() < 1e-9);
        assert_eq!(recall5(&ids(&["x", "b"]), &g), 0.5);
        assert_eq!(mrr(&ids(&["x", "y", "a"]), &g), 1.0 / 3.0);
        assert_eq!(mrr(&ids(&["b"]), &g), 0.0);
    }
}

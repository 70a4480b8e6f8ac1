//! The bid library at scale: imports a synthetic library (default 100,000 bids, both
//! languages) into a real SQLite file and tantivy index, then runs tender searches (English
//! and Mandarin, default filters) and prints import rate and query latency percentiles.
//!
//! `cargo bench --bench bids` (`BIDS_BENCH_N=20000` for a smaller library); results are
//! recorded in `eval/reports/bids.md`.

use std::time::Instant;

use dealdesk::bids::search::Requirements;
use dealdesk::bids::{Filters, Lang, Library, SearchRequest, Tender, synthetic};
use dealdesk::store::Db;

fn main() {
    let n: usize = std::env::var("BIDS_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let db = rt.block_on(Db::connect(&url, 4)).unwrap();
    // BM25 only: embedding 100k bids with multilingual-e5-small on this CPU takes hours
    // (eval/reports/bids.md, "Scale benchmark").
    let library = rt
        .block_on(Library::open_at(&dir.path().join("index"), db, None))
        .unwrap();

    let generated = Instant::now();
    let bids = synthetic::library(42, n);
    let gen_s = generated.elapsed().as_secs_f64();
    let report = rt.block_on(library.import(&bids, &|_| {})).unwrap();
    println!(
        "import: {n} bids in {:.1} s = {:.0} bids/s (generation {gen_s:.1} s not counted)",
        report.seconds,
        n as f64 / report.seconds
    );

    let queries = 200;
    let mut latencies = Vec::with_capacity(queries);
    for q in 0..queries {
        let lang = if q % 2 == 0 { Lang::En } else { Lang::Zh };
        let req = SearchRequest {
            tender: Tender {
                title: synthetic::tender_text(q as u64 + 1_000, lang)
                    .chars()
                    .take(12)
                    .collect(),
                requirements: Requirements::Text(synthetic::tender_text(q as u64, lang)),
                language: Some(lang),
                ..Tender::default()
            },
            filters: Filters::default(),
            limit: 10,
        };
        let started = Instant::now();
        let found = library.search(&req).unwrap();
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
        assert!(!found.hits.is_empty());
    }
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
    println!(
        "search: {queries} tenders on {n} bids: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        pct(0.5),
        pct(0.99),
        latencies[latencies.len() - 1]
    );
}

//! Call analytics and search at scale: the 6 development transcripts imported many times
//! (default 1,000 calls by 20 reps in 2 regions) into a real SQLite file; then analytics per
//! call, the team aggregate, the index build, and searches (English and Mandarin queries, as an
//! admin, a manager and a rep) with latency percentiles.
//!
//! `cargo bench --bench call_analytics` (`CALLS_BENCH_N=200` for fewer calls); results are
//! recorded in `eval/reports/call-analytics.md`.

use std::path::Path;
use std::time::Instant;

use dealdesk::calls::analytics::{self, Range};
use dealdesk::calls::records;
use dealdesk::calls::search::{self, SearchRequest};
use dealdesk::calls::trackers::Trackers;
use dealdesk::calls::transcript::CallTranscript;
use dealdesk::config::Config;
use dealdesk::store::Db;
use dealdesk::users::{self, Role};

const DEV: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/eval/calls");
const CALLS: [&str; 6] = ["en-01", "en-02", "en-03", "en-04", "zh-01", "zh-02"];
const QUERIES: [&str; 12] = [
    "price",
    "pricing discount",
    "implementation timeline",
    "contract renewal",
    "security review",
    "send the proposal",
    "价格",
    "交付时间",
    "合同",
    "培训",
    "预算",
    "售后服务",
];

fn percentiles(mut ms: Vec<f64>) -> (f64, f64, f64) {
    ms.sort_by(f64::total_cmp);
    let at = |p: f64| ms[((ms.len() - 1) as f64 * p).round() as usize];
    (at(0.5), at(0.99), ms[ms.len() - 1])
}

fn main() {
    let n: usize = std::env::var("CALLS_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.data.dir = dir.path().join("data");
    let db = rt.block_on(Db::open(&config)).unwrap();
    let trackers = Trackers::load(&config).unwrap();
    let dev: Vec<CallTranscript> = CALLS
        .iter()
        .map(|c| CallTranscript::load(&Path::new(DEV).join(c).join("transcript.json")).unwrap())
        .collect();
    let segments: usize = dev.iter().map(|t| t.segments.len()).sum();

    let (reps, manager, admin) = rt.block_on(async {
        let mut reps = Vec::new();
        for i in 0..20 {
            let region = if i % 2 == 0 { "emea" } else { "apac" };
            let name = format!("rep-{i}");
            reps.push(
                users::add(&db, &name, Role::Rep, region)
                    .await
                    .unwrap()
                    .user,
            );
        }
        let manager = users::add(&db, "mgr", Role::Manager, "emea")
            .await
            .unwrap()
            .user;
        let admin = users::add(&db, "admin", Role::Admin, "hq")
            .await
            .unwrap()
            .user;
        (reps, manager, admin)
    });
    let started = Instant::now();
    rt.block_on(async {
        for i in 0..n {
            let mut t = dev[i % dev.len()].clone();
            t.title = format!("{} #{i}", t.title);
            records::import(&db, &reps[i % reps.len()], &t)
                .await
                .unwrap();
        }
    });
    println!(
        "import: {n} calls ({} segments each on average) in {:.1} s",
        segments / dev.len(),
        started.elapsed().as_secs_f64()
    );

    // Analytics of one call: the computation alone, and the API path (load + compute).
    let mut compute = Vec::new();
    for _ in 0..50 {
        for t in &dev {
            let started = Instant::now();
            std::hint::black_box(analytics::analyze(t, &trackers));
            compute.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let (p50, p99, max) = percentiles(compute);
    println!(
        "analytics per call (compute, dev transcripts): p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms"
    );
    let ids: Vec<String> = rt
        .block_on(records::list_scoped(&db, &admin))
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .take(200)
        .collect();
    let mut api = Vec::new();
    for id in &ids {
        let started = Instant::now();
        rt.block_on(analytics::for_call(&db, &admin, &trackers, id))
            .unwrap();
        api.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let (p50, p99, max) = percentiles(api);
    println!(
        "analytics per call (GET /calls/{{id}}/analytics path: load + compute): p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms"
    );
    for (who, user) in [("manager (emea)", &manager), ("admin (all)", &admin)] {
        let started = Instant::now();
        let team = rt
            .block_on(analytics::for_range(
                &db,
                user,
                &trackers,
                &Range::default(),
            ))
            .unwrap();
        println!(
            "team aggregate as {who}: {} calls in {:.2} s",
            team.total.calls,
            started.elapsed().as_secs_f64()
        );
    }

    let started = Instant::now();
    let index = rt.block_on(search::shared(&db, &config)).unwrap();
    println!(
        "index build from the database: {} segments of {n} calls in {:.1} s",
        index.num_docs(),
        started.elapsed().as_secs_f64()
    );

    for (who, user) in [
        ("admin (all calls)", &admin),
        ("manager (half the calls)", &manager),
        ("rep (1/20 of the calls)", &reps[0]),
    ] {
        let mut latencies = Vec::new();
        let mut hits = 0;
        for round in 0..25 {
            for q in QUERIES {
                let req = SearchRequest {
                    query: q.into(),
                    tracker: (round % 5 == 4).then(|| "pricing".to_string()),
                    ..SearchRequest::default()
                };
                let started = Instant::now();
                let r = rt
                    .block_on(search::search(&db, &config, user, &req))
                    .unwrap();
                latencies.push(started.elapsed().as_secs_f64() * 1000.0);
                hits += r.hits.len();
            }
        }
        let count = latencies.len();
        let (p50, p99, max) = percentiles(latencies);
        println!(
            "search as {who}: {count} queries, {hits} hits: p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms"
        );
    }
}
